//! The registry of live sessions: who, from which device and where, first
//! and last seen, how many requests. It feeds the "where you're logged in"
//! page, the admin session endpoints and the `X-Geo-*` headers.
//!
//! Every allowed request calls [`SessionRegistry::observe`]. For a session
//! already seen with the same User-Agent and address that is a map update
//! (no parsing, no lookup, no allocation); a new session, or one whose
//! address or browser changed, parses the User-Agent, looks the address up
//! (cached) and checks for a new location. Changes are written to the store
//! in batches by a background task ([`SessionRegistry::take_dirty`]), not
//! once per request.

pub mod device;
mod info;
pub mod sync;
pub mod theft;

pub use info::{merge, SessionInfo};
use theft::Suspicion;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;

use crate::audit::{Action, AuditEntry};
use crate::geoip::{Geo, GeoIp};
use crate::metrics::Metrics;
use crate::revocation::{session_key, KeyBuild, SessionKey};
pub use device::{Device, DeviceKind};

/// How far back a user's sessions count when deciding whether a location
/// is new.
pub const NEW_LOCATION_WINDOW_MS: i64 = 30 * 24 * 3600 * 1000;

pub use crate::store::SessionRecord;

/// One request's facts about its session.
#[derive(Debug, Clone, Copy)]
pub struct Sighting<'a> {
    /// The token's session id.
    pub session_id: &'a str,
    /// `session_key(session_id)`, computed once per token.
    pub session_key: SessionKey,
    /// The token's user id, if any.
    pub user_id: Option<&'a str>,
    /// The token's `iat` (UNIX seconds).
    pub iat: Option<i64>,
    /// The token's `exp` (UNIX seconds).
    pub exp: Option<i64>,
    /// The client address (after trusted-proxy resolution).
    pub ip: IpAddr,
    /// The raw `User-Agent` header (empty when absent).
    pub user_agent: &'a [u8],
    /// When the request was seen (UNIX milliseconds).
    pub now_ms: i64,
}

/// What the request path needs back.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Approximate location of the client address, for the `X-Geo-*` headers.
    pub geo: Option<Arc<Geo>>,
    /// A new location not yet confirmed by the user.
    pub unconfirmed_new_location: bool,
    /// This sighting is the session's first from a country new for its
    /// user: the audit entry to record (through the authority).
    pub new_location: Option<AuditEntry>,
    /// The session's first sighting here, with
    /// [`RegistryLimits::record_created`]: the audit entry to record.
    pub created: Option<AuditEntry>,
    /// The session's first sighting here (a session limit is checked).
    pub first_seen: bool,
    /// This sighting marked the session suspicious: why, and the audit
    /// entry to record.
    pub suspicious: Option<(Suspicion, AuditEntry)>,
}

#[derive(Debug)]
struct Entry {
    session_id: Arc<str>,
    user: Option<Arc<str>>,
    ip: IpAddr,
    user_agent: Arc<str>,
    device: Arc<Device>,
    geo: Option<Arc<Geo>>,
    first_seen_ms: i64,
    // Updated on every request under the map's read lock.
    last_seen_ms: AtomicI64,
    requests: AtomicU64,
    dirty: AtomicBool,
    iat: Option<i64>,
    exp: Option<i64>,
    new_location: bool,
    confirmed: bool,
    /// The device the session was first seen with (here, or as stored).
    first_device: Arc<Device>,
    /// Marked once; the mark sticks.
    suspicious: Option<Suspicion>,
}

impl Entry {
    fn info(&self) -> SessionInfo {
        SessionInfo {
            record: self.record(),
            geo: self.geo.clone(),
            device: self.device.clone(),
        }
    }

    fn record(&self) -> SessionRecord {
        SessionRecord {
            session_id: self.session_id.to_string(),
            user_id: self.user.as_deref().map(String::from),
            ip: self.ip.to_string(),
            user_agent: self.user_agent.to_string(),
            country: self.geo.as_ref().and_then(|g| g.country.clone()),
            city: self.geo.as_ref().and_then(|g| g.city.clone()),
            latitude: self.geo.as_ref().and_then(|g| g.latitude),
            longitude: self.geo.as_ref().and_then(|g| g.longitude),
            first_seen_ms: self.first_seen_ms,
            last_seen_ms: self.last_seen_ms.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            iat: self.iat,
            exp: self.exp,
            new_location: self.new_location,
            confirmed: self.confirmed,
            suspicious: self.suspicious.map(|s| s.name().to_string()),
        }
    }
}

/// Settings of the registry, from `[sessions]`.
#[derive(Debug, Clone, Copy)]
pub struct RegistryLimits {
    /// `sessions.max_tracked`: most sessions held; past it, new sessions are
    /// not tracked (their requests still go on).
    pub max_tracked: usize,
    /// `sessions.idle_ttl_s`, in milliseconds: sessions idle longer are
    /// forgotten by [`SessionRegistry::purge`].
    pub idle_ttl_ms: i64,
    /// Report a session's first sighting in [`Observation::created`] (a
    /// webhook subscribes to `session.created`).
    pub record_created: bool,
    /// `sessions.max_travel_kmh`: faster between two sightings is
    /// impossible travel.
    pub max_travel_kmh: f64,
}

/// Live sessions, by id and by user.
pub struct SessionRegistry {
    /// Keyed by the session id's hash (as in the revocation set): no string
    /// hashing or comparison on the request path.
    sessions: DashMap<SessionKey, Entry, KeyBuild>,
    /// `sessions.len()` without locking every shard: kept on insert, reset
    /// by `load` and `purge`.
    tracked: AtomicUsize,
    by_user: DashMap<Arc<str>, HashSet<SessionKey>>,
    dirty: Mutex<Vec<SessionKey>>,
    geoip: Arc<GeoIp>,
    metrics: Arc<Metrics>,
    limits: RegistryLimits,
}

impl std::fmt::Debug for SessionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRegistry")
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl SessionRegistry {
    /// An empty registry: locations from `geoip`, size reported in
    /// `metrics` (changes are written by [`sync::SessionSync`]).
    pub fn new(
        geoip: Arc<GeoIp>,
        metrics: Arc<Metrics>,
        limits: RegistryLimits,
    ) -> SessionRegistry {
        SessionRegistry {
            sessions: DashMap::with_hasher(KeyBuild::default()),
            tracked: AtomicUsize::new(0),
            by_user: DashMap::new(),
            dirty: Mutex::new(Vec::new()),
            geoip,
            metrics,
            limits,
        }
    }

    /// The location database sessions are looked up in.
    pub fn geoip(&self) -> &Arc<GeoIp> {
        &self.geoip
    }

    fn mark_dirty(&self, key: SessionKey, e: &Entry) {
        if !e.dirty.swap(true, Ordering::Relaxed) {
            if let Ok(mut d) = self.dirty.lock() {
                d.push(key);
            }
        }
    }

    /// Records one allowed request of a session.
    #[inline]
    pub fn observe(&self, s: &Sighting) -> Observation {
        if let Some(e) = self.sessions.get(&s.session_key) {
            let same = e.ip == s.ip
                && e.user_agent.as_bytes() == s.user_agent
                && (s.exp.is_none() || s.exp == e.exp);
            if same {
                e.last_seen_ms.store(s.now_ms, Ordering::Relaxed);
                e.requests.fetch_add(1, Ordering::Relaxed);
                self.mark_dirty(s.session_key, &e);
                return Observation {
                    geo: e.geo.clone(),
                    unconfirmed_new_location: e.new_location && !e.confirmed,
                    new_location: None,
                    created: None,
                    first_seen: false,
                    suspicious: None,
                };
            }
        }
        self.observe_changed(s)
    }

    /// A new session, or one whose address or browser changed.
    fn observe_changed(&self, s: &Sighting) -> Observation {
        let geo = self.geoip.lookup(s.ip);
        let previous = self.sessions.get(&s.session_key).map(|e| {
            (
                e.geo.as_ref().and_then(|g| g.country.clone()),
                e.new_location,
                e.confirmed,
                (
                    e.first_device.clone(),
                    e.geo.clone(),
                    e.last_seen_ms.load(Ordering::Relaxed),
                    e.suspicious,
                ),
            )
        });
        if previous.is_none() && self.tracked.load(Ordering::Relaxed) >= self.limits.max_tracked {
            // Full: the request goes on, the session is not tracked (and its
            // User-Agent is not parsed).
            return Observation {
                geo,
                unconfirmed_new_location: false,
                new_location: None,
                created: None,
                first_seen: false,
                suspicious: None,
            };
        }
        let user_agent = String::from_utf8_lossy(s.user_agent);
        let device = Arc::new(Device::parse(&user_agent));
        let suspicion = match previous.as_ref().map(|p| &p.3) {
            Some((first, prev_geo, prev_at, None)) => {
                let at = |g: &Option<Arc<Geo>>| theft::place(g.as_deref());
                if theft::device_changed(first, &device) {
                    Some(Suspicion::DeviceChanged)
                } else if let (Some(from), Some(to)) = (at(prev_geo), at(&geo)) {
                    theft::impossible_travel(
                        (from, *prev_at),
                        (to, s.now_ms),
                        self.limits.max_travel_kmh,
                    )
                    .then_some(Suspicion::ImpossibleTravel)
                } else {
                    None
                }
            }
            _ => None,
        };
        let country = geo.as_ref().and_then(|g| g.country.clone());
        let new_here = match (&country, s.user_id) {
            (Some(c), Some(u)) => self.is_new_location(
                u,
                s.session_key,
                c,
                previous.as_ref().and_then(|p| p.0.as_deref()),
                s.now_ms,
            ),
            _ => false,
        };
        let (was_new, was_confirmed) = previous
            .as_ref()
            .map(|p| (p.1, p.2))
            .unwrap_or((false, false));
        let new_location = was_new || new_here;
        let confirmed = was_confirmed && !new_here;

        let key = s.session_key;
        let user: Option<Arc<str>> = s.user_id.map(Arc::from);
        let is_new;
        {
            let mut entry = self.sessions.entry(key).or_insert_with(|| Entry {
                session_id: Arc::from(s.session_id),
                user: user.clone(),
                ip: s.ip,
                user_agent: Arc::from(user_agent.as_ref()),
                device: device.clone(),
                geo: geo.clone(),
                first_seen_ms: s.now_ms,
                last_seen_ms: AtomicI64::new(s.now_ms),
                requests: AtomicU64::new(0),
                dirty: AtomicBool::new(false),
                iat: s.iat,
                exp: s.exp,
                new_location,
                confirmed,
                first_device: device.clone(),
                suspicious: None,
            });
            let e = entry.value_mut();
            is_new = *e.requests.get_mut() == 0;
            e.ip = s.ip;
            e.user_agent = Arc::from(user_agent.as_ref());
            e.device = device;
            e.geo = geo.clone();
            *e.last_seen_ms.get_mut() = s.now_ms;
            *e.requests.get_mut() += 1;
            e.iat = s.iat.or(e.iat);
            e.exp = s.exp.or(e.exp);
            e.new_location = new_location;
            e.confirmed = confirmed;
            e.suspicious = e.suspicious.or(suspicion);
            self.mark_dirty(key, entry.value());
        }
        if is_new {
            if let Some(u) = &user {
                self.by_user.entry(u.clone()).or_default().insert(key);
            }
            let tracked = self.tracked.fetch_add(1, Ordering::Relaxed) + 1;
            self.metrics.tracked_sessions.set(tracked as i64);
        }
        let audit = new_here.then(|| {
            self.metrics.new_locations.inc();
            AuditEntry {
                at_ms: s.now_ms,
                actor: "gateway".into(),
                actor_ip: Some(s.ip.to_string()),
                action: Action::NewLocation,
                target: format!("session:{}", s.session_id),
                reason: format!(
                    "user {} seen from {}",
                    s.user_id.unwrap_or(""),
                    country.as_deref().unwrap_or("?")
                ),
            }
        });
        let first_seen = is_new && previous.is_none();
        let created = (first_seen && self.limits.record_created).then(|| AuditEntry {
            at_ms: s.now_ms,
            actor: "gateway".into(),
            actor_ip: Some(s.ip.to_string()),
            action: Action::SessionCreated,
            target: format!("session:{}", s.session_id),
            reason: String::new(),
        });
        let suspicious = suspicion.map(|kind| {
            self.metrics
                .suspicious_sessions
                .with_label_values(&[kind.name()])
                .inc();
            (
                kind,
                AuditEntry {
                    at_ms: s.now_ms,
                    actor: "gateway".into(),
                    actor_ip: Some(s.ip.to_string()),
                    action: Action::SuspiciousSession,
                    target: format!("session:{}", s.session_id),
                    reason: kind.name().into(),
                },
            )
        });
        Observation {
            geo,
            unconfirmed_new_location: new_location && !confirmed,
            new_location: audit,
            created,
            first_seen,
            suspicious,
        }
    }

    /// True when `user` has recent sessions (other than this one's previous
    /// state), none of them from `country`.
    fn is_new_location(
        &self,
        user: &str,
        session_key: SessionKey,
        country: &str,
        previous_country: Option<&str>,
        now_ms: i64,
    ) -> bool {
        if previous_country == Some(country) {
            return false;
        }
        let since = now_ms - NEW_LOCATION_WINDOW_MS;
        let others: Vec<SessionKey> = self
            .by_user
            .get(user)
            .map(|s| s.iter().filter(|k| **k != session_key).copied().collect())
            .unwrap_or_default();
        let mut history = previous_country.is_some();
        for k in others {
            let Some(e) = self.sessions.get(&k) else {
                continue;
            };
            if e.last_seen_ms.load(Ordering::Relaxed) < since {
                continue;
            }
            let c = e.geo.as_ref().and_then(|g| g.country.as_deref());
            if c == Some(country) {
                return false;
            }
            history |= c.is_some();
        }
        history
    }

    /// The user confirms the new location of `session_id`.
    pub fn confirm_location(&self, session_id: &str) -> bool {
        let key = session_key(session_id);
        match self.sessions.get_mut(&key) {
            Some(mut e) => {
                e.confirmed = true;
                self.mark_dirty(key, &e);
                true
            }
            None => false,
        }
    }

    /// One session, from memory.
    pub fn get(&self, session_id: &str) -> Option<SessionInfo> {
        self.sessions
            .get(&session_key(session_id))
            .map(|e| e.info())
    }

    /// The user's sessions in memory.
    pub fn for_user(&self, user: &str) -> Vec<SessionInfo> {
        let keys: Vec<SessionKey> = self
            .by_user
            .get(user)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        keys.iter()
            .filter_map(|k| self.sessions.get(k).map(|e| e.info()))
            .collect()
    }

    /// Sessions changed since the last call, as records to persist.
    pub fn take_dirty(&self) -> Vec<SessionRecord> {
        let keys = match self.dirty.lock() {
            Ok(mut d) => std::mem::take(&mut *d),
            Err(_) => return Vec::new(),
        };
        keys.iter()
            .filter_map(|k| {
                self.sessions.get(k).map(|e| {
                    e.dirty.store(false, Ordering::Relaxed);
                    e.record()
                })
            })
            .collect()
    }

    /// Marks sessions dirty again (their write failed).
    pub fn retry_dirty(&self, records: &[SessionRecord]) {
        for r in records {
            let key = session_key(&r.session_id);
            if let Some(e) = self.sessions.get(&key) {
                self.mark_dirty(key, &e);
            }
        }
    }

    /// Loads persisted sessions (start-up); memory wins where both exist.
    pub fn load(&self, records: Vec<SessionRecord>) {
        for r in records {
            let Ok(ip) = r.ip.parse::<IpAddr>() else {
                continue;
            };
            let key = session_key(&r.session_id);
            if self.sessions.contains_key(&key) {
                continue;
            }
            let info = SessionInfo::from_record(r.clone());
            let user: Option<Arc<str>> = r.user_id.as_deref().map(Arc::from);
            self.sessions.insert(
                key,
                Entry {
                    session_id: Arc::from(r.session_id.as_str()),
                    user: user.clone(),
                    ip,
                    user_agent: Arc::from(r.user_agent.as_str()),
                    device: info.device.clone(),
                    geo: info.geo,
                    first_seen_ms: r.first_seen_ms,
                    last_seen_ms: AtomicI64::new(r.last_seen_ms),
                    requests: AtomicU64::new(r.requests),
                    dirty: AtomicBool::new(false),
                    iat: r.iat,
                    exp: r.exp,
                    new_location: r.new_location,
                    confirmed: r.confirmed,
                    first_device: info.device.clone(),
                    suspicious: r.suspicious.as_deref().and_then(Suspicion::parse),
                },
            );
            if let Some(u) = user {
                self.by_user.entry(u).or_default().insert(key);
            }
        }
        self.recount();
    }

    fn recount(&self) {
        let n = self.sessions.len();
        self.tracked.store(n, Ordering::Relaxed);
        self.metrics.tracked_sessions.set(n as i64);
    }

    /// Forgets sessions idle longer than the idle TTL, then the least
    /// recently seen ones while above `max_tracked`. Answers how many.
    pub fn purge(&self, now_ms: i64) -> usize {
        let cutoff = now_ms - self.limits.idle_ttl_ms;
        let mut removed: Vec<(SessionKey, Option<Arc<str>>)> = Vec::new();
        self.sessions.retain(|k, e| {
            let keep = e.last_seen_ms.load(Ordering::Relaxed) >= cutoff;
            if !keep {
                removed.push((*k, e.user.clone()));
            }
            keep
        });
        let over = self.sessions.len().saturating_sub(self.limits.max_tracked);
        if over > 0 {
            let mut by_age: Vec<(i64, SessionKey)> = self
                .sessions
                .iter()
                .map(|e| (e.last_seen_ms.load(Ordering::Relaxed), *e.key()))
                .collect();
            by_age.sort_unstable_by_key(|(t, _)| *t);
            for (_, k) in by_age.into_iter().take(over) {
                if let Some((k, e)) = self.sessions.remove(&k) {
                    removed.push((k, e.user));
                }
            }
        }
        for (k, user) in &removed {
            if let Some(u) = user {
                if let dashmap::Entry::Occupied(mut o) = self.by_user.entry(u.clone()) {
                    o.get_mut().remove(k);
                    if o.get().is_empty() {
                        o.remove();
                    }
                }
            }
        }
        self.recount();
        removed.len()
    }
}
