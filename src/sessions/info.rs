//! A session as the pages and the admin API show it, and how the stored
//! and in-memory views of a user's sessions are merged into one list.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::clock;
use crate::geoip::Geo;
use crate::revocation::Revoked;

/// A session as the pages and the admin API show it: its record (ids,
/// address, times, counts, flags; read through `Deref`), its location and
/// its parsed device.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The session as stored.
    pub record: SessionRecord,
    /// Approximate location of the record's `ip`, when the database knows it.
    pub geo: Option<Arc<Geo>>,
    /// The device parsed from the session's User-Agent.
    pub device: Arc<Device>,
}

impl std::ops::Deref for SessionInfo {
    type Target = SessionRecord;

    fn deref(&self) -> &SessionRecord {
        &self.record
    }
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
            "suspicious": self.suspicious,
        });
        if let Some(c) = current {
            v["current"] = json!(c);
        }
        v
    }

    pub(super) fn from_record(r: SessionRecord) -> SessionInfo {
        let geo = (r.country.is_some() || r.city.is_some() || r.latitude.is_some()).then(|| {
            Arc::new(Geo::from_parts(
                r.country.clone(),
                r.city.clone(),
                r.latitude,
                r.longitude,
            ))
        });
        SessionInfo {
            device: Arc::new(Device::parse(&r.user_agent)),
            geo,
            record: r,
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
        // One rule for two views of a session (SessionRecord::merged); the
        // location and device come with the later sighting.
        let merged = match by_id.remove(&s.session_id) {
            Some(old) if old.last_seen_ms > s.last_seen_ms => SessionInfo {
                record: old.record.merged(&s.record),
                ..old
            },
            Some(old) => SessionInfo {
                record: old.record.merged(&s.record),
                ..s
            },
            None => s,
        };
        by_id.insert(merged.session_id.clone(), merged);
    }
    let mut all: Vec<SessionInfo> = by_id.into_values().collect();
    all.sort_by(|a, b| {
        b.last_seen_ms
            .cmp(&a.last_seen_ms)
            .then(a.session_id.cmp(&b.session_id))
    });
    all
}
