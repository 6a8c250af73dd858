//! Minting tokens with a configured HMAC key: `sessiongate token` and the
//! demo's two ready tokens (for tests and demos; production tokens come from
//! the identity provider).

use std::time::Duration;

use jsonwebtoken::{AlgorithmFamily, EncodingKey, Header};
use serde_json::json;

use super::settings::{KeyMaterial, TokenConfig};

/// Mints an HS* token with the first HMAC key of `config`: `user_claim`
/// `sub`, `session_claim` `sid`, `iat`, `exp` = `iat` + `ttl`, and `iss` /
/// `aud` when configured. Errors when no HMAC key is configured.
pub fn mint(
    config: &TokenConfig,
    sub: &str,
    sid: &str,
    iat: i64,
    ttl: Duration,
) -> Result<String, String> {
    let key = config
        .keys
        .iter()
        .find(|k| {
            matches!(k.material, KeyMaterial::Secret(_))
                && k.algorithm
                    .is_some_and(|a| a.family() == AlgorithmFamily::Hmac)
        })
        .ok_or("token.keys: no HMAC key (secret, secret_env or secret_base64) to mint with")?;
    let (KeyMaterial::Secret(secret), Some(alg)) = (&key.material, key.algorithm) else {
        return Err("token.keys: no HMAC key".into());
    };
    let mut header = Header::new(alg);
    header.kid = key.kid.clone();
    let mut claims = json!({
        config.user_claim.clone(): sub,
        config.session_claim.clone(): sid,
        "iat": iat,
        "exp": iat.saturating_add(ttl.as_secs().min(i64::MAX as u64) as i64),
    });
    if let Some(iss) = &config.issuer {
        claims["iss"] = json!(iss);
    }
    if let Some(aud) = config.audiences.first() {
        claims["aud"] = json!(aud);
    }
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret))
        .map_err(|e| e.to_string())
}
