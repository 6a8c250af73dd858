//! `[token]` validated: sources, claims, time rules, and every
//! `[[token.keys]]` entry loaded once so a bad key is a config error.

use super::validate::{non_empty, positive_secs, resolve, InDir, MAX_INTERVAL_S};
use super::*;

impl TryFrom<InDir<'_, raw::RawToken>> for TokenConfig {
    type Error = KeyError;

    fn try_from(InDir { raw, dir }: InDir<'_, raw::RawToken>) -> Result<Self, KeyError> {
        token(raw, dir)
    }
}

fn token(raw: raw::RawToken, dir: &Path) -> Result<TokenConfig, KeyError> {
    if raw.sources.is_empty() {
        return Err(KeyError::new("token.sources", "needs at least one source"));
    }
    let mut sources = Vec::new();
    for (i, s) in raw.sources.iter().enumerate() {
        let key = format!("token.sources[{i}]");
        let source = match s.split_once(':') {
            Some(("header", name)) if name.eq_ignore_ascii_case("authorization") => {
                TokenSource::Bearer
            }
            Some(("header", name)) if !name.is_empty() => {
                let lower = name.to_ascii_lowercase();
                let header = http::HeaderName::from_bytes(lower.as_bytes()).map_err(|_| {
                    KeyError::new(&key, format!("{name:?} is not a valid header name"))
                })?;
                TokenSource::Header(header)
            }
            Some(("cookie", name))
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)) =>
            {
                TokenSource::Cookie(name.to_string())
            }
            _ => {
                return Err(KeyError::new(
                    key,
                    format!("{s:?} is not header:authorization, header:NAME or cookie:NAME"),
                ))
            }
        };
        sources.push(source);
    }
    if raw.session_claim.is_empty() {
        return Err(KeyError::new("token.session_claim", "must not be empty"));
    }
    if raw.user_claim.is_empty() {
        return Err(KeyError::new("token.user_claim", "must not be empty"));
    }
    if raw.max_token_bytes < 16 {
        return Err(KeyError::new(
            "token.max_token_bytes",
            format!("{} is too small for any token", raw.max_token_bytes),
        ));
    }
    // Both end up in expiry times stored in Redis (EXAT) and SQLite.
    positive_secs("token.max_session_lifetime_s", raw.max_session_lifetime_s)?;
    if raw.leeway_s > MAX_INTERVAL_S {
        return Err(KeyError::new(
            "token.leeway_s",
            format!(
                "must be at most {MAX_INTERVAL_S} seconds, not {}",
                raw.leeway_s
            ),
        ));
    }
    // No [[token.keys]] at all is refused in `validate` unless an [idp]
    // supplies the keys.
    let mut keys = Vec::new();
    for (i, k) in raw.keys.into_iter().enumerate() {
        keys.push(validate_key(i, k, dir)?);
    }
    let config = TokenConfig {
        sources,
        session_claim: raw.session_claim,
        user_claim: raw.user_claim,
        issuer: non_empty(raw.issuer),
        audiences: non_empty(raw.audience).into_iter().collect(),
        leeway_s: raw.leeway_s,
        max_token_bytes: raw.max_token_bytes,
        max_session_lifetime_s: raw.max_session_lifetime_s,
        require_exp: raw.require_exp,
        cache_entries: raw.cache_entries,
        jwks_reload: positive_secs("token.jwks_reload_s", raw.jwks_reload_s)?,
        keys,
    };
    // Load every key once now, so that a bad PEM or JWKS file is a config error.
    let loaded = crate::token::KeySet::load(&config.keys)
        .map_err(|e| KeyError::new(format!("token.keys[{}].{}", e.index, e.field), e.message))?;
    if loaded.is_empty() && !config.keys.is_empty() {
        let skipped: Vec<&str> = loaded.skipped().iter().map(|k| k.reason.as_str()).collect();
        return Err(KeyError::new(
            "token.keys",
            format!("no usable key (skipped: {})", skipped.join("; ")),
        ));
    }
    Ok(config)
}

fn validate_key(i: usize, k: RawKey, dir: &Path) -> Result<KeyConfig, KeyError> {
    let at = |field: &str| format!("token.keys[{i}].{field}");
    let algorithm = if k.algorithm.is_empty() {
        None
    } else {
        let alg: Algorithm = k.algorithm.parse().map_err(|_| {
            KeyError::new(
                at("algorithm"),
                format!(
                    "unknown algorithm {:?} (HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA)",
                    k.algorithm
                ),
            )
        })?;
        Some(alg)
    };
    let given = [
        k.secret.is_some(),
        k.secret_env.is_some(),
        k.secret_base64.is_some(),
        k.public_key_file.is_some(),
        k.jwks_file.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given != 1 {
        return Err(KeyError::new(
            format!("token.keys[{i}]"),
            "needs exactly one of secret, secret_env, secret_base64, public_key_file, jwks_file",
        ));
    }
    let family = algorithm.map(|a| a.family());
    let material = if let Some(s) = k.secret {
        KeyMaterial::Secret(s.into_bytes())
    } else if let Some(var) = k.secret_env {
        match std::env::var(&var) {
            Ok(v) if !v.is_empty() => KeyMaterial::Secret(v.into_bytes()),
            _ => {
                return Err(KeyError::new(
                    at("secret_env"),
                    format!("environment variable {var:?} is not set or empty"),
                ))
            }
        }
    } else if let Some(b) = k.secret_base64 {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .map_err(|e| KeyError::new(at("secret_base64"), format!("not standard base64: {e}")))?;
        KeyMaterial::Secret(bytes)
    } else if let Some(p) = k.public_key_file {
        KeyMaterial::PublicKeyFile(resolve(dir, &p))
    } else if let Some(p) = k.jwks_file {
        KeyMaterial::JwksFile(resolve(dir, &p))
    } else {
        unreachable!("exactly one material was counted above")
    };
    match (&material, family) {
        (KeyMaterial::Secret(s), Some(AlgorithmFamily::Hmac)) if s.is_empty() => {
            return Err(KeyError::new(at("secret"), "must not be empty"));
        }
        (KeyMaterial::Secret(_), Some(AlgorithmFamily::Hmac)) => {}
        (KeyMaterial::Secret(_), _) => {
            return Err(KeyError::new(
                at("algorithm"),
                format!(
                    "a secret needs an HMAC algorithm (HS256, HS384, HS512), not {:?}",
                    k.algorithm
                ),
            ))
        }
        (KeyMaterial::PublicKeyFile(_), None) => {
            return Err(KeyError::new(
                at("algorithm"),
                "required with public_key_file",
            ))
        }
        (KeyMaterial::PublicKeyFile(_), Some(AlgorithmFamily::Hmac)) => {
            return Err(KeyError::new(
                at("algorithm"),
                format!(
                    "{:?} is an HMAC algorithm; a public key needs RS*, PS*, ES* or EdDSA",
                    k.algorithm
                ),
            ))
        }
        _ => {}
    }
    Ok(KeyConfig {
        algorithm,
        kid: non_empty(k.kid),
        material,
    })
}

impl Default for raw::RawToken {
    /// Every key at its default, as an empty `[token]` table reads.
    fn default() -> Self {
        raw::RawToken {
            sources: raw::default_token_sources(),
            session_claim: raw::d_session_claim(),
            user_claim: raw::d_user_claim(),
            issuer: String::new(),
            audience: String::new(),
            leeway_s: raw::d_leeway(),
            max_token_bytes: raw::d_max_token_bytes(),
            max_session_lifetime_s: raw::d_max_session_lifetime(),
            require_exp: false,
            jwks_reload_s: raw::d_jwks_reload(),
            cache_entries: raw::d_cache_entries(),
            keys: Vec::new(),
        }
    }
}
