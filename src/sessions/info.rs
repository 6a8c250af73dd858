//! A session as the pages and the admin API show it, and how the stored
//! and in-memory views of a user's sessions are merged into one list.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::clock;
use crate::geoip::Geo;
use crate::revocation::Revoked;

/// A session as the pages and the admin API show it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The session id (the token's session claim).
    pub session_id: String,
    /// The user (the token's user claim), when the token names one.
    pub user_id: Option<String>,
    /// Client address of the session's latest tracked request.
    pub ip: String,
    /// Approximate location of `ip`, when the database knows it.
    pub geo: Option<Arc<Geo>>,
    /// The device parsed from the session's User-Agent.
    pub device: Arc<Device>,
    /// First request seen (UNIX milliseconds).
    pub first_seen_ms: i64,
    /// Latest request seen (UNIX milliseconds).
    pub last_seen_ms: i64,
    /// Allowed requests counted for the session.
    pub requests: u64,
    /// The latest token's `iat` (UNIX seconds), when it had one.
    pub iat: Option<i64>,
    /// The latest token's `exp` (UNIX seconds), when it had one.
    pub exp: Option<i64>,
    /// Appeared from a country none of the user's recent sessions came from.
    pub new_location: bool,
    /// The user confirmed that new location from another session.
    pub confirmed: bool,
}

impl SessionInfo {
    /// The session object of the admin API and self-service (README, "Revoking sessions"). `current` is added for
    /// self-service.
    pub fn view(&self, revoked: Option<&Revoked>, current: Option<bool>) -> Value {
        let geo = self.geo.as_ref().map(|g| {
            json!({"country": g.country, "city": g.city, "latitude": g.latitude, "longitude": g.longitude})
        });
        let mut v = json!({
            "session_id": self.session_id,
            "user_id": self.user_id,
            "ip": self.ip,
            "geo": geo,
            "device": {
                "browser": self.device.browser,
                "os": self.device.os,
                "kind": self.device.kind,
                "user_agent": self.device.user_agent,
            },
            "first_seen": clock::rfc3339_ms(self.first_seen_ms),
            "last_seen": clock::rfc3339_ms(self.last_seen_ms),
            "requests": self.requests,
            "revoked": revoked.is_some(),
            "revoked_at": revoked.map(|r| clock::rfc3339_ms(r.revoked_at_ms)),
            "expires_at": self.exp.map(clock::rfc3339_s),
            "new_location": self.new_location && !self.confirmed,
        });
        if let Some(c) = current {
            v["current"] = json!(c);
        }
        v
    }

    pub(super) fn from_record(r: SessionRecord) -> SessionInfo {
        let geo = (r.country.is_some() || r.city.is_some() || r.latitude.is_some())
            .then(|| Arc::new(Geo::from_parts(r.country, r.city, r.latitude, r.longitude)));
        SessionInfo {
            device: Arc::new(Device::parse(&r.user_agent)),
            session_id: r.session_id,
            user_id: r.user_id,
            ip: r.ip,
            geo,
            first_seen_ms: r.first_seen_ms,
            last_seen_ms: r.last_seen_ms,
            requests: r.requests,
            iat: r.iat,
            exp: r.exp,
            new_location: r.new_location,
            confirmed: r.confirmed,
        }
    }
}

/// Merges stored and in-memory views of a user's sessions (memory is
/// fresher), newest `last_seen` first.
pub fn merge(stored: Vec<SessionRecord>, live: Vec<SessionInfo>) -> Vec<SessionInfo> {
    let mut by_id: HashMap<String, SessionInfo> = stored
        .into_iter()
        .map(|r| (r.session_id.clone(), SessionInfo::from_record(r)))
        .collect();
    for s in live {
        match by_id.get(&s.session_id) {
            Some(old) if old.last_seen_ms > s.last_seen_ms => {}
            _ => {
                by_id.insert(s.session_id.clone(), s);
            }
        }
    }
    let mut all: Vec<SessionInfo> = by_id.into_values().collect();
    all.sort_by(|a, b| {
        b.last_seen_ms
            .cmp(&a.last_seen_ms)
            .then(a.session_id.cmp(&b.session_id))
    });
    all
}
