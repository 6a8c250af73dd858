//! `[[webhooks]]` validated: a URL the gateway may POST to, known event
//! types, a signing secret from the environment, a CA file that loads.

use super::*;
use crate::idp::settings::check_url;
use crate::webhooks::{EventType, WebhookConfig};

/// Shortest signing secret accepted (bytes).
const MIN_SECRET_BYTES: usize = 16;

impl TryFrom<validate::InDir<'_, (usize, raw::RawWebhook)>> for WebhookConfig {
    type Error = KeyError;

    fn try_from(
        validate::InDir { raw: (i, raw), dir }: validate::InDir<'_, (usize, raw::RawWebhook)>,
    ) -> Result<Self, KeyError> {
        let key = |k: &str| format!("webhooks[{i}].{k}");
        check_url(&raw.url).map_err(|e| KeyError::new(key("url"), e))?;
        if raw.events.is_empty() {
            return Err(KeyError::new(
                key("events"),
                "needs at least one event type",
            ));
        }
        let mut events = Vec::new();
        for (j, e) in raw.events.iter().enumerate() {
            let t = EventType::parse(e).ok_or_else(|| {
                let known: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
                KeyError::new(
                    format!("webhooks[{i}].events[{j}]"),
                    format!(
                        "unknown event type {e:?} (expected one of: {})",
                        known.join(", ")
                    ),
                )
            })?;
            if !events.contains(&t) {
                events.push(t);
            }
        }
        let secret = match std::env::var(&raw.secret_env) {
            Ok(v) if v.len() >= MIN_SECRET_BYTES => v.into_bytes(),
            Ok(_) => {
                return Err(KeyError::new(
                    key("secret_env"),
                    format!(
                        "{:?} holds fewer than {MIN_SECRET_BYTES} bytes",
                        raw.secret_env
                    ),
                ))
            }
            Err(_) => {
                return Err(KeyError::new(
                    key("secret_env"),
                    format!("environment variable {:?} is not set", raw.secret_env),
                ))
            }
        };
        Ok(WebhookConfig {
            url: raw.url,
            events,
            secret,
            ca_file: super::idp::ca_file(&key("ca_file"), &raw.ca_file, dir)?,
        })
    }
}
