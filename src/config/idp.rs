//! `[idp]` and `[ssf]` validated: URLs `https://` (or `http://` to
//! loopback), a CA file that loads, and what each receiver needs.

use super::*;
use crate::idp::settings::check_url;

fn url_key(key: &str, value: String) -> Result<Option<String>, KeyError> {
    if value.is_empty() {
        return Ok(None);
    }
    check_url(&value).map_err(|e| KeyError::new(key, e))?;
    Ok(Some(value.trim_end_matches('/').to_string()))
}

pub(super) fn ca_file(key: &str, value: &str, dir: &Path) -> Result<Option<PathBuf>, KeyError> {
    if value.is_empty() {
        return Ok(None);
    }
    let path = validate::resolve(dir, value);
    let pem = std::fs::read(&path)
        .map_err(|e| KeyError::new(key, format!("cannot read {}: {e}", path.display())))?;
    reqwest::Certificate::from_pem_bundle(&pem)
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| KeyError::new(key, format!("{}: no PEM certificate", path.display())))?;
    Ok(Some(path))
}

impl TryFrom<validate::InDir<'_, raw::RawIdp>> for IdpConfig {
    type Error = KeyError;

    fn try_from(
        validate::InDir { raw, dir }: validate::InDir<'_, raw::RawIdp>,
    ) -> Result<Self, KeyError> {
        // The issuer is compared with `iss` as written: only a trailing `/`
        // is dropped for discovery (OIDC Discovery 4).
        let issuer = if raw.issuer.is_empty() {
            None
        } else {
            check_url(&raw.issuer).map_err(|e| KeyError::new("idp.issuer", e))?;
            Some(raw.issuer)
        };
        let jwks_url = url_key("idp.jwks_url", raw.jwks_url)?;
        if issuer.is_none() && jwks_url.is_none() {
            return Err(KeyError::new(
                "idp.issuer",
                "set idp.issuer (discovery) or idp.jwks_url",
            ));
        }
        if raw.backchannel_logout && issuer.is_none() {
            return Err(KeyError::new(
                "idp.issuer",
                "required with idp.backchannel_logout: a logout token's iss must equal it",
            ));
        }
        if raw.backchannel_logout && raw.audiences.is_empty() {
            return Err(KeyError::new(
                "idp.audiences",
                "required with idp.backchannel_logout: a logout token's aud must be one of them",
            ));
        }
        if let Some(i) = raw.audiences.iter().position(String::is_empty) {
            return Err(KeyError::new(format!("idp.audiences[{i}]"), "is empty"));
        }
        Ok(IdpConfig {
            issuer,
            jwks_url,
            audiences: raw.audiences,
            ca_file: ca_file("idp.ca_file", &raw.ca_file, dir)?,
            refresh: validate::positive_secs("idp.refresh_s", raw.refresh_s)?,
            backchannel_logout: raw.backchannel_logout,
            cache_file: validate::resolve(dir, &raw.cache_file),
        })
    }
}

impl TryFrom<validate::InDir<'_, raw::RawSsf>> for SsfConfig {
    type Error = KeyError;

    fn try_from(
        validate::InDir { raw, dir }: validate::InDir<'_, raw::RawSsf>,
    ) -> Result<Self, KeyError> {
        let transmitter = url_key("ssf.transmitter", raw.transmitter)?
            .ok_or_else(|| KeyError::new("ssf.transmitter", "is empty"))?;
        if raw.audience.is_empty() {
            return Err(KeyError::new("ssf.audience", "is empty"));
        }
        let push_token = match std::env::var(&raw.push_token_env) {
            Ok(v) if v.len() >= 16 => v,
            Ok(_) => {
                return Err(KeyError::new(
                    "ssf.push_token_env",
                    format!("{:?} holds fewer than 16 bytes", raw.push_token_env),
                ))
            }
            Err(_) => {
                return Err(KeyError::new(
                    "ssf.push_token_env",
                    format!("environment variable {:?} is not set", raw.push_token_env),
                ))
            }
        };
        Ok(SsfConfig {
            transmitter,
            audience: raw.audience,
            push_token,
            ca_file: ca_file("ssf.ca_file", &raw.ca_file, dir)?,
            refresh: validate::positive_secs("ssf.refresh_s", raw.refresh_s)?,
            cache_file: validate::resolve(dir, &raw.cache_file),
        })
    }
}
