//! Tokens for every algorithm, signed with the test keys.

use super::*;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// Standard claims for user `sub`, session `sid`, issued now, valid 1 h.
pub fn claims(sub: &str, sid: &str) -> Value {
    let now = now();
    json!({"sub": sub, "sid": sid, "iat": now, "exp": now + 3600})
}

pub fn hs256(claims: &Value) -> String {
    sign(Algorithm::HS256, None, claims)
}

fn private_key(alg: Algorithm) -> EncodingKey {
    let read = |name: &str| std::fs::read(keys_dir().join(name)).unwrap();
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            EncodingKey::from_secret(SECRET.as_bytes())
        }
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => EncodingKey::from_rsa_pem(&read("rsa.key.pem")).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&read("es256.key.pem")).unwrap(),
        Algorithm::ES384 => EncodingKey::from_ec_pem(&read("es384.key.pem")).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&read("ed25519.key.pem")).unwrap(),
        _ => unreachable!(),
    }
}

/// Signs `claims` with the test key of `alg` (HMAC: [`SECRET`]).
pub fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    sign_with(alg, kid, claims, &private_key(alg))
}

pub fn sign_with(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(String::from);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// The `[[token.keys]]` body verifying tokens of `alg` made by [`sign`].
pub fn key_config(alg: Algorithm) -> String {
    let pem = |name: &str| keys_dir().join(name).display().to_string();
    let name = format!("{alg:?}");
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            format!("algorithm = \"{name}\"\nsecret = \"{SECRET}\"")
        }
        Algorithm::ES256 => format!(
            "algorithm = \"{name}\"\npublic_key_file = \"{}\"",
            pem("es256.pub.pem")
        ),
        Algorithm::ES384 => format!(
            "algorithm = \"{name}\"\npublic_key_file = \"{}\"",
            pem("es384.pub.pem")
        ),
        Algorithm::EdDSA => format!(
            "algorithm = \"{name}\"\npublic_key_file = \"{}\"",
            pem("ed25519.pub.pem")
        ),
        _ => format!(
            "algorithm = \"{name}\"\npublic_key_file = \"{}\"",
            pem("rsa.pub.pem")
        ),
    }
}
