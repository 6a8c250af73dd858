//! Durable state behind the in-memory sets, as four narrow traits by
//! concern ([`RevocationLog`], [`AuditLog`], [`SessionMetadata`],
//! [`Secrets`]; [`Store`] is all four). The rules that decide between
//! values live above them (`UserCutoff::supersedes`,
//! [`SessionRecord::merged`]); `tests/store_conformance.rs` holds both
//! backends to them. A revocation is acknowledged
//! only after [`RevocationLog::revoke_session`] or [`RevocationLog::revoke_user`] returned
//! `Ok`: that is, after it (and its audit entry) is durable.
//!
//! Every gateway process follows the store's change log
//! ([`RevocationLog::changes_since`]) so that revocations written by another process
//! sharing the store are enforced here too.

pub mod embedded;
pub mod redis;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::audit::AuditEntry;
use crate::revocation::{Revocation, SessionRevocation, UserCutoff};

pub use self::redis::RedisStore;
pub use embedded::Embedded;

/// A session as stored durably.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SessionRecord {
    /// The session id (`sid`, `jti`, or the token digest).
    pub session_id: String,
    /// The user id, when the token has one.
    pub user_id: Option<String>,
    /// Client address last seen.
    pub ip: String,
    /// `User-Agent` first seen.
    pub user_agent: String,
    /// ISO 3166-1 alpha-2 country last seen.
    pub country: Option<String>,
    /// City last seen (with a City database).
    pub city: Option<String>,
    /// Coordinates last seen.
    pub latitude: Option<f64>,
    /// Coordinates last seen.
    pub longitude: Option<f64>,
    /// First sighting, UNIX milliseconds.
    pub first_seen_ms: i64,
    /// Last sighting, UNIX milliseconds.
    pub last_seen_ms: i64,
    /// Requests seen.
    pub requests: u64,
    /// The token's `iat`, for the user's cutoffs.
    pub iat: Option<i64>,
    /// When the token last seen stops being valid.
    pub exp: Option<i64>,
    /// First seen from a country new for its user.
    pub new_location: bool,
    /// That new location was confirmed by the user.
    pub confirmed: bool,
    /// Why the session is suspicious (`device_changed`,
    /// `impossible_travel`); the first mark sticks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspicious: Option<String>,
}

/// Audit entries kept by default (the newest; `store.audit_max_entries`).
pub const DEFAULT_AUDIT_MAX_ENTRIES: usize = 1_000_000;

/// Most sessions [`SessionMetadata::user_sessions`] answers (the newest by `last_seen`).
pub const USER_SESSIONS_MAX: usize = 1000;

impl SessionRecord {
    /// The rule for two gateways writing the same session: first seen is
    /// the earliest, last seen the latest, the request count the larger,
    /// new-location and confirmed flags stick; the rest (address, device,
    /// location, token times) comes from the later sighting; the first
    /// suspicious mark sticks. Every store
    /// merges by it (the conformance suite holds them to this function).
    pub fn merged(&self, other: &SessionRecord) -> SessionRecord {
        let (older, newer) = if other.last_seen_ms >= self.last_seen_ms {
            (self, other)
        } else {
            (other, self)
        };
        SessionRecord {
            first_seen_ms: older.first_seen_ms.min(newer.first_seen_ms),
            requests: older.requests.max(newer.requests),
            new_location: older.new_location || newer.new_location,
            confirmed: older.confirmed || newer.confirmed,
            suspicious: older
                .suspicious
                .clone()
                .or_else(|| newer.suspicious.clone()),
            ..newer.clone()
        }
    }
}

/// The store could not do what was asked. Maps to 503 `store_unavailable`.
#[derive(Debug, thiserror::Error)]
#[error("store unavailable: {0}")]
pub struct StoreError(pub String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

impl From<tokio::task::JoinError> for StoreError {
    fn from(e: tokio::task::JoinError) -> Self {
        StoreError(e.to_string())
    }
}

/// Revocations read from the store, and where to continue from.
#[derive(Debug, Default)]
pub struct Changes {
    /// Revocations written after the cursor asked for, in change-log order.
    pub revocations: Vec<Revocation>,
    /// Position in the change log after these revocations (opaque: a
    /// sequence number in SQLite, a stream id in Redis).
    pub cursor: String,
    /// The change log no longer holds everything after the cursor (trimmed
    /// while this process was away): reload the whole state.
    pub reload: bool,
}

/// Where [`RevocationLog::load`] hands each revocation.
pub type Sink = std::sync::Arc<dyn Fn(Revocation) + Send + Sync>;

/// What [`RevocationLog::load`] answers.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Revocations handed to the sink.
    pub count: usize,
    /// Change-log position the loaded state reflects: follow
    /// [`RevocationLog::changes_since`] from here.
    pub cursor: String,
}

/// When this process last heard from its store, for
/// `enforcement.fail_closed_after_s`.
#[derive(Debug)]
pub struct Health {
    last_ok_ms: AtomicI64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            last_ok_ms: AtomicI64::new(crate::clock::now_ms()),
        }
    }
}

impl Health {
    /// Records that the store answered at `now_ms` (UNIX milliseconds).
    pub fn contact(&self, now_ms: i64) {
        self.last_ok_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Milliseconds since the store last answered.
    #[inline]
    pub fn silent_for_ms(&self, now_ms: i64) -> i64 {
        now_ms - self.last_ok_ms.load(Ordering::Relaxed)
    }
}

/// The durable store: revocations and their change log, the audit trail,
/// session metadata and shared secrets. [`Embedded`] is SQLite on one host;
/// [`RedisStore`] is shared by a cluster. Every failure is a [`StoreError`].
/// The durable revocation log: revocations with their audit entries, the
/// state a gateway loads, and the change log it follows.
#[async_trait]
pub trait RevocationLog: Send + Sync + 'static {
    /// Makes a session revocation and its audit entry durable. Answers the
    /// revocation in force: an earlier one when the session was already
    /// revoked (revoking is idempotent).
    async fn revoke_session(
        &self,
        revocation: SessionRevocation,
        audit: AuditEntry,
    ) -> Result<SessionRevocation, StoreError>;

    /// Makes a user cutoff and its audit entry durable.
    async fn revoke_user(
        &self,
        cutoff: UserCutoff,
        audit: AuditEntry,
    ) -> Result<UserCutoff, StoreError>;

    /// Every revocation still in force at `now_s`, oldest first, handed to
    /// `sink` one at a time (a store may hold millions: nothing is collected);
    /// answers how many and the change-log position they reflect.
    async fn load(&self, now_s: i64, sink: Sink) -> Result<Loaded, StoreError>;

    /// Revocations written after `cursor` (by this process or another),
    /// waiting up to `wait` for some to arrive.
    async fn changes_since(&self, cursor: &str, wait: Duration) -> Result<Changes, StoreError>;

    /// The `limit` most recent revocations still in force at `now_s`,
    /// newest first.
    async fn recent_revocations(
        &self,
        limit: usize,
        now_s: i64,
    ) -> Result<Vec<Revocation>, StoreError>;

    /// Revokes many sessions at once (`sessiongate import`), each with its
    /// audit entry; answers how many were new. The default takes them one by
    /// one; a store may do better.
    async fn import_sessions(
        &self,
        revocations: Vec<(SessionRevocation, AuditEntry)>,
    ) -> Result<usize, StoreError> {
        let mut new = 0;
        for (r, a) in revocations {
            let at = r.revoked_at_ms;
            if self.revoke_session(r, a).await?.revoked_at_ms == at {
                new += 1;
            }
        }
        Ok(new)
    }

    /// Deletes revocations that expired before `now_s`; answers how many.
    async fn purge_expired(&self, now_s: i64) -> Result<usize, StoreError>;

    /// Succeeds when the store can be read.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The audit trail.
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Appends an audit entry on its own (actions that revoke nothing).
    async fn append_audit(&self, entry: AuditEntry) -> Result<(), StoreError>;

    /// The `limit` most recent audit entries at or after `since_ms`, newest first.
    async fn audit(
        &self,
        limit: usize,
        since_ms: Option<i64>,
    ) -> Result<Vec<AuditEntry>, StoreError>;
}

/// Session metadata (device, location, first and last seen) shared by the
/// gateways of one store.
#[async_trait]
pub trait SessionMetadata: Send + Sync + 'static {
    /// Writes session metadata (insert or replace by session id).
    async fn save_sessions(&self, sessions: Vec<SessionRecord>) -> Result<(), StoreError>;

    /// Sessions last seen at or after `since_ms`.
    async fn load_sessions(&self, since_ms: i64) -> Result<Vec<SessionRecord>, StoreError>;

    /// One session's metadata.
    async fn session(&self, session_id: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// A user's sessions.
    async fn user_sessions(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError>;

    /// Deletes sessions last seen before `before_ms`; answers how many.
    async fn purge_sessions(&self, before_ms: i64) -> Result<usize, StoreError>;
}

/// Secrets shared by every process on one store.
#[async_trait]
pub trait Secrets: Send + Sync + 'static {
    /// A random 32-byte secret shared by every process on this store,
    /// created on first use (signing CSRF tokens).
    async fn secret(&self, name: &str) -> Result<[u8; 32], StoreError>;
}

/// The audit trail read as an outbox (webhooks): positions in it, the
/// durable position of each reader, and a lease so that one process of a
/// cluster delivers. An entry is in the trail in the same transaction as
/// the change it records, so what it reports is never lost.
#[async_trait]
pub trait Delivery: Send + Sync + 'static {
    /// The position of the newest audit entry (`""`: none yet), where a new
    /// reader starts.
    async fn audit_head(&self) -> Result<String, StoreError>;

    /// Up to `limit` audit entries written after position `after` (`""`:
    /// from the oldest), oldest first, each with its position.
    async fn audit_after(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, AuditEntry)>, StoreError>;

    /// The durable position `name` (a webhook's last delivered entry).
    async fn cursor(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Sets the durable position `name`.
    async fn set_cursor(&self, name: &str, position: &str) -> Result<(), StoreError>;

    /// Takes or renews the lease `name` for `holder` until `ttl` from now
    /// (`now_ms`); true when `holder` holds it.
    async fn lead(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
}

/// A whole store: every concern, as `store.backend` opens it. Implemented
/// by every type that implements the five.
pub trait Store: RevocationLog + AuditLog + SessionMetadata + Secrets + Delivery {}

impl<T: RevocationLog + AuditLog + SessionMetadata + Secrets + Delivery> Store for T {}
