//! One JWK as a verification key, or why it cannot be one: the rules of
//! [`super::KeySet::from_jwks_json`] for a single key (use and key_ops,
//! algorithm against key type and curve, HMAC secret length, RSA rules).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use super::keys::{hmac_key, public_key, Key};

/// The signature algorithm named by a JWK's `alg`, or `None` when it is
/// not one the gateway supports.
fn signature_algorithm(alg: &str) -> Option<Algorithm> {
    Some(match alg {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

/// One JWK as a verification key, or why it cannot be one (see
/// [`KeySet::from_jwks_json`]).
pub(super) fn jwk_key(v: &serde_json::Value, configured: Option<Algorithm>) -> Result<Key, String> {
    let text = |name: &str| v.get(name).and_then(|x| x.as_str());
    if let Some(u) = v.get("use") {
        if u.as_str() != Some("sig") {
            return Err(format!("use is {u}, not \"sig\""));
        }
    }
    if let Some(ops) = v.get("key_ops") {
        let verify = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|o| o.as_str() == Some("verify")));
        if !verify {
            return Err(format!("key_ops {ops} do not include \"verify\""));
        }
    }
    let kty = text("kty").ok_or("no kty")?;
    let crv = text("crv");
    let algorithm = match (v.get("alg"), configured) {
        (Some(alg), configured) => {
            let name = alg.as_str().ok_or("alg is not a string")?;
            let alg = signature_algorithm(name)
                .ok_or_else(|| format!("alg {name:?} is not a supported signature algorithm"))?;
            if configured.is_some_and(|c| c != alg) {
                return Err(format!(
                    "alg {alg:?} differs from the configured algorithm {configured:?}"
                ));
            }
            alg
        }
        (None, Some(c)) => c,
        (None, None) => match (kty, crv) {
            ("EC", Some("P-256")) => Algorithm::ES256,
            ("EC", Some("P-384")) => Algorithm::ES384,
            ("OKP", Some("Ed25519")) => Algorithm::EdDSA,
            _ => return Err("no alg; set algorithm for this jwks_file".into()),
        },
    };
    let fits = match algorithm {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => kty == "oct",
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => kty == "RSA",
        Algorithm::ES256 => kty == "EC" && crv == Some("P-256"),
        Algorithm::ES384 => kty == "EC" && crv == Some("P-384"),
        Algorithm::EdDSA => kty == "OKP" && crv == Some("Ed25519"),
        _ => false,
    };
    if !fits {
        return Err(format!(
            "a {kty} key{} cannot verify {algorithm:?}",
            crv.map(|c| format!(" on {c}")).unwrap_or_default()
        ));
    }
    let kid = text("kid").map(Box::from);
    let jwk: Jwk =
        serde_json::from_value(v.clone()).map_err(|e| format!("not a valid JWK: {e}"))?;
    if algorithm.family() == AlgorithmFamily::Hmac {
        let AlgorithmParameters::OctetKey(p) = &jwk.algorithm else {
            return Err("an HMAC key must be kty oct".into());
        };
        let secret = URL_SAFE_NO_PAD
            .decode(p.value.as_bytes())
            .map_err(|_| "k is not base64url".to_string())?;
        if secret.len() < min_hmac_bytes(algorithm) {
            return Err(format!(
                "a {algorithm:?} secret needs at least {} bytes (RFC 7518 3.2), this one has {}",
                min_hmac_bytes(algorithm),
                secret.len()
            ));
        }
        return hmac_key(algorithm, kid, &secret).ok_or_else(|| "bad HMAC key".to_string());
    }
    let decoded = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    public_key(algorithm, kid, &decoded)
}

/// RFC 7518 3.2: an HMAC key at least as long as the hash output.
pub(super) fn min_hmac_bytes(algorithm: Algorithm) -> usize {
    match algorithm {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}
