//! Events out: what the app is told (a session revoked, a user's sessions
//! cut off, a new location, a new session), read from the audit trail
//! (written in the same transaction as each change, so a crash loses
//! none) and delivered at least once, in order, signed the way Stripe
//! signs (`X-Sessiongate-Signature: t=<unix>,v1=<hex HMAC-SHA256>`).
//! The delivery loop is `crate::outbox`; this module holds what config and
//! the loop share, with no dependency on the gateway's state.

use std::path::PathBuf;

use crate::audit::{Action, AuditEntry};

/// The event types a webhook may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// A session was revoked (admin, the user, the IdP, a transmitter).
    SessionRevoked,
    /// A user's sessions were cut off.
    UserRevoked,
    /// A session was first seen from a country new for its user.
    NewLocation,
    /// A session was marked suspicious (device change, impossible travel).
    Suspicious,
    /// A session was first seen.
    Created,
}

impl EventType {
    /// Every type, as `webhooks.events` lists them.
    pub const ALL: [EventType; 5] = [
        EventType::SessionRevoked,
        EventType::UserRevoked,
        EventType::NewLocation,
        EventType::Suspicious,
        EventType::Created,
    ];

    /// Its name in `webhooks.events` and the body's `type`.
    pub fn name(self) -> &'static str {
        match self {
            EventType::SessionRevoked => "session.revoked",
            EventType::UserRevoked => "user.revoked",
            EventType::NewLocation => "session.new_location",
            EventType::Suspicious => "session.suspicious",
            EventType::Created => "session.created",
        }
    }

    /// The type named `s`.
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.name() == s)
    }

    /// The event an audit entry reports, if any.
    pub fn of(action: Action) -> Option<EventType> {
        match action {
            Action::RevokeSession => Some(EventType::SessionRevoked),
            Action::RevokeUser => Some(EventType::UserRevoked),
            Action::NewLocation => Some(EventType::NewLocation),
            Action::SessionCreated => Some(EventType::Created),
            Action::SuspiciousSession => Some(EventType::Suspicious),
            Action::ConfirmLocation | Action::UnmatchedEvent => None,
        }
    }
}

/// One `[[webhooks]]` entry, validated.
#[derive(Clone)]
pub struct WebhookConfig {
    /// Where events are POSTed (`https://`, or `http://` to loopback).
    pub url: String,
    /// The types sent.
    pub events: Vec<EventType>,
    /// The signing secret (from `secret_env`).
    pub secret: Vec<u8>,
    /// PEM roots for a private receiver.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// The event id of the audit entry at `position` (stable across retries
/// and restarts). A new session gets an id of its own session id, so the
/// gateways of a cluster that each see it first send one id.
pub fn event_id(position: &str, entry: &AuditEntry, kind: EventType) -> String {
    match kind {
        EventType::Created => {
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, entry.target.as_bytes());
            format!("evt_created_{}", hex::encode(&d.as_ref()[..12]))
        }
        _ => format!("evt_{position}"),
    }
}

/// `X-Sessiongate-Signature` of `body` sent at UNIX time `t`:
/// `t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (Stripe's scheme).
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
    ctx.update(t.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("t={t},v1={}", hex::encode(ctx.sign().as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_stripes() {
        // HMAC-SHA256("secret", "1700000000.{}"), computed independently
        // (Python's hmac module).
        let s = signature(b"secret", 1_700_000_000, b"{}");
        assert_eq!(
            s,
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
        assert_ne!(s, signature(b"other", 1_700_000_000, b"{}"));
        assert_ne!(s, signature(b"secret", 1_700_000_001, b"{}"));
    }

    #[test]
    fn every_type_round_trips_and_audit_actions_map() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.name()), Some(t));
        }
        assert_eq!(EventType::parse("session.deleted"), None);
        assert_eq!(EventType::of(Action::ConfirmLocation), None);
        assert_eq!(
            EventType::of(Action::RevokeUser),
            Some(EventType::UserRevoked)
        );
    }
}
