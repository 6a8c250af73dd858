//! What the receivers' unit tests share: an HMAC key set and a signer.

use serde_json::{json, Value};

use crate::token::KeySet;

/// The `kid` of the test key.
pub(crate) const KID: &str = "k1";
/// The test key's secret.
pub(crate) const SECRET: &[u8] = b"receiver-test-secret-0123456789abcdef";

/// The receivers' key set in the tests: [`SECRET`] as [`KID`].
pub(crate) fn keys() -> KeySet {
    oct_keys(KID, SECRET)
}

/// `claims` signed with [`SECRET`], header `typ` as given.
pub(crate) fn sign(typ: &str, claims: &Value) -> String {
    sign_raw(
        SECRET,
        json!({"alg": "HS256", "kid": KID, "typ": typ}),
        &claims.to_string(),
    )
}

/// `base` with `edit` applied to its claims, signed with `typ`.
pub(crate) fn sign_edited(
    typ: &str,
    base: Value,
    edit: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> String {
    sign(typ, &edited(base, edit))
}

/// Runs a receiver's check with the test keys and a fresh replay cache.
pub(crate) fn fresh<T>(check: impl FnOnce(&KeySet, &super::replay::ReplayCache) -> T) -> T {
    check(&keys(), &super::replay::ReplayCache::default())
}

/// `base` with `edit` applied to its claims.
pub(crate) fn edited(
    mut base: Value,
    edit: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Value {
    if let Some(map) = base.as_object_mut() {
        edit(map);
    }
    base
}

/// A JWKS of one HS256 secret named `kid`, loaded as the receivers load one.
pub(crate) fn oct_keys(kid: &str, secret: &[u8]) -> KeySet {
    let k = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, secret);
    let jwks = json!({"keys": [{"kty": "oct", "alg": "HS256", "kid": kid, "k": k}]});
    KeySet::from_jwks_json(&jwks.to_string(), None)
        .expect("a JWKS")
        .keys
}

/// `header.payload` signed HS256 with `secret`, the payload as written
/// (so a test can repeat a claim).
pub(crate) fn sign_raw(secret: &[u8], header: Value, payload: &str) -> String {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.as_bytes())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let sig = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(sig.as_ref()))
}
