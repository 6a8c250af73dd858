//! The in-memory revocation state every request is checked against: revoked
//! session ids, and per-user not-before cutoffs with one exempt session.
//!
//! Reads are lock-free-ish DashMap lookups on the hot path; writes happen at
//! revocation time (admin API, store follower) and in the purge task, never
//! while serving a request.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use dashmap::DashMap;

mod record;
pub use record::{Retention, Revocation, RevocationView, SessionRevocation, UserCutoff};

/// Why a session is refused: what the `session_revoked` body reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// When the session or cutoff was revoked (UNIX milliseconds).
    pub revoked_at_ms: i64,
    /// The revocation's reason; empty when none was given, or for a session
    /// revoked once [`MAX_REASONS`] distinct texts were already held.
    pub reason: Arc<str>,
}

/// A session id as the revocation set knows it: its 128-bit xxh3 hash,
/// seeded once per process. Strings would cost ~100 bytes a revoked session;
/// this costs 16. Two ids with the same hash can only make a live session
/// look revoked (refused: the safe side, with odds of about n/2^128), never
/// let a revoked one through, since a revoked id always hashes to its key.
pub type SessionKey = u128;

fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(rand::random)
}

/// The [`SessionKey`] of a session id.
#[inline]
pub fn session_key(session_id: &str) -> SessionKey {
    xxhash_rust::xxh3::xxh3_128_with_seed(session_id.as_bytes(), seed())
}

/// Keys are already uniform hashes: use their bits instead of hashing again.
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.0 = (i as u64) ^ ((i >> 64) as u64);
    }
}

/// Builds [`KeyHasher`]s, for maps keyed by [`SessionKey`].
pub type KeyBuild = BuildHasherDefault<KeyHasher>;

/// The low 96 bits of a [`SessionKey`], as the revocation set stores it
/// (12 bytes, 4-byte aligned, so a map slot is 24 bytes instead of 32).
/// Truncating only makes collisions likelier: with 10 M revoked and 10 M
/// live sessions the odds that any live one is refused are about 10^-15,
/// and a revoked session still always matches its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StoredKey([u32; 3]);

impl StoredKey {
    #[inline]
    fn of(key: SessionKey) -> StoredKey {
        StoredKey([key as u32, (key >> 32) as u32, (key >> 64) as u32])
    }
}

impl std::hash::Hash for StoredKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from(self.0[0]) | (u64::from(self.0[1]) << 32));
    }
}

/// Bits of [`SessionEntry::packed`] holding the reason index.
const REASON_BITS: u32 = 22;

/// 12 bytes a revoked session (24 with its key).
#[derive(Debug, Clone, Copy)]
struct SessionEntry {
    /// UNIX seconds of the revocation (u32 holds dates until 2106).
    revoked_at_s: u32,
    /// UNIX seconds.
    expires_at: u32,
    /// Milliseconds of the revocation time (10 bits) over the index into the
    /// interned reasons (22 bits; [`MAX_REASONS`] fits).
    packed: u32,
}

impl SessionEntry {
    fn new(revoked_at_ms: i64, expires_at: i64, reason: u32) -> SessionEntry {
        let ms = revoked_at_ms.rem_euclid(1000) as u32;
        SessionEntry {
            revoked_at_s: clamp_expiry(revoked_at_ms.div_euclid(1000)),
            expires_at: clamp_expiry(expires_at),
            packed: (ms << REASON_BITS) | (reason & ((1 << REASON_BITS) - 1)),
        }
    }

    fn revoked_at_ms(&self) -> i64 {
        i64::from(self.revoked_at_s) * 1000 + i64::from(self.packed >> REASON_BITS)
    }

    fn reason(&self) -> u32 {
        self.packed & ((1 << REASON_BITS) - 1)
    }
}

#[derive(Debug)]
struct CutoffEntry {
    not_before: i64,
    except: Option<Box<str>>,
    revoked_at_ms: i64,
    expires_at: i64,
    reason: Arc<str>,
}

/// Distinct reason texts, interned: most revocations share a handful.
/// Past [`MAX_REASONS`] distinct texts, new ones are kept in the store and
/// the audit trail but shown as empty in refusals.
#[derive(Debug, Default)]
struct Reasons {
    index: HashMap<Arc<str>, u32>,
    texts: Vec<Arc<str>>,
}

/// Most distinct reason texts kept in memory.
pub const MAX_REASONS: usize = 100_000;
const _: () = assert!(MAX_REASONS < 1 << REASON_BITS);

fn clamp_expiry(s: i64) -> u32 {
    s.clamp(0, u32::MAX as i64) as u32
}

/// Revoked sessions and user cutoffs, shared by every worker thread.
#[derive(Debug)]
pub struct RevocationSet {
    sessions: DashMap<StoredKey, SessionEntry, KeyBuild>,
    cutoffs: DashMap<Box<str>, CutoffEntry>,
    /// Set (for good) before the first cutoff is inserted, so requests skip
    /// the user lookup while there has never been one. `DashMap::is_empty`
    /// would lock every shard.
    any_cutoffs: AtomicBool,
    reasons: RwLock<Reasons>,
}

impl Default for RevocationSet {
    fn default() -> Self {
        let mut reasons = Reasons::default();
        reasons.texts.push(Arc::from(""));
        reasons.index.insert(Arc::from(""), 0);
        RevocationSet {
            sessions: DashMap::with_hasher(KeyBuild::default()),
            cutoffs: DashMap::new(),
            any_cutoffs: AtomicBool::new(false),
            reasons: RwLock::new(reasons),
        }
    }
}

impl RevocationSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    fn intern(&self, reason: &str) -> u32 {
        if let Ok(r) = self.reasons.read() {
            if let Some(i) = r.index.get(reason) {
                return *i;
            }
            if r.texts.len() >= MAX_REASONS {
                return 0;
            }
        }
        let Ok(mut r) = self.reasons.write() else {
            return 0;
        };
        if let Some(i) = r.index.get(reason) {
            return *i;
        }
        let i = r.texts.len() as u32;
        let text: Arc<str> = Arc::from(reason);
        r.texts.push(text.clone());
        r.index.insert(text, i);
        i
    }

    fn reason(&self, i: u32) -> Arc<str> {
        self.reasons
            .read()
            .ok()
            .and_then(|r| r.texts.get(i as usize).cloned())
            .unwrap_or_else(|| Arc::from(""))
    }

    /// Is this session refused? `iat` is the token's issued-at; a user with a
    /// cutoff and a token without `iat` is refused (its age is unknown).
    #[inline]
    pub fn check(
        &self,
        session_id: &str,
        user_id: Option<&str>,
        iat: Option<i64>,
    ) -> Option<Revoked> {
        self.check_key(session_key(session_id), session_id, user_id, iat)
    }

    /// [`Self::check`] with the session's key already computed.
    #[inline]
    pub fn check_key(
        &self,
        key: SessionKey,
        session_id: &str,
        user_id: Option<&str>,
        iat: Option<i64>,
    ) -> Option<Revoked> {
        if let Some(e) = self.sessions.get(&StoredKey::of(key)) {
            let e = *e;
            return Some(Revoked {
                revoked_at_ms: e.revoked_at_ms(),
                reason: self.reason(e.reason()),
            });
        }
        let user_id = user_id?;
        if !self.any_cutoffs.load(Ordering::Acquire) {
            return None;
        }
        let c = self.cutoffs.get(user_id)?;
        let before_cutoff = iat.is_none_or(|iat| iat < c.not_before);
        let exempt = c.except.as_deref() == Some(session_id);
        (before_cutoff && !exempt).then(|| Revoked {
            revoked_at_ms: c.revoked_at_ms,
            reason: c.reason.clone(),
        })
    }

    /// Applies a revocation of either kind; see [`Self::apply_session`] and
    /// [`Self::apply_cutoff`].
    pub fn apply(&self, r: &Revocation) -> bool {
        match r {
            Revocation::Session(s) => self.apply_session(s),
            Revocation::User(u) => self.apply_cutoff(u),
        }
    }

    /// Adds a revoked session; the first revocation of a session wins.
    /// Returns true when the set changed.
    pub fn apply_session(&self, r: &SessionRevocation) -> bool {
        let key = StoredKey::of(session_key(&r.session_id));
        if self.sessions.contains_key(&key) {
            return false;
        }
        let reason = self.intern(&r.reason);
        let mut changed = false;
        self.sessions.entry(key).or_insert_with(|| {
            changed = true;
            SessionEntry::new(r.revoked_at_ms, r.expires_at, reason)
        });
        changed
    }

    /// Sets a user's cutoff unless a later one is already in force.
    /// Returns true when the set changed (the same cutoff again, as when a
    /// gateway reads its own back from the change log, changes nothing).
    pub fn apply_cutoff(&self, c: &UserCutoff) -> bool {
        let entry = CutoffEntry {
            not_before: c.not_before,
            except: c.except.as_deref().map(Box::from),
            revoked_at_ms: c.revoked_at_ms,
            expires_at: c.expires_at,
            reason: Arc::from(c.reason.as_str()),
        };
        match self.cutoffs.entry(Box::from(c.user_id.as_str())) {
            dashmap::Entry::Occupied(mut o) => {
                let cur = o.get();
                let current = UserCutoff {
                    user_id: String::new(),
                    not_before: cur.not_before,
                    except: cur.except.as_deref().map(String::from),
                    revoked_at_ms: cur.revoked_at_ms,
                    expires_at: cur.expires_at,
                    reason: String::new(),
                    actor: String::new(),
                };
                if c.supersedes(&current) {
                    o.insert(entry);
                    true
                } else {
                    false
                }
            }
            dashmap::Entry::Vacant(v) => {
                self.any_cutoffs.store(true, Ordering::Release);
                v.insert(entry);
                true
            }
        }
    }

    /// Drops revocations whose tokens can no longer be valid at `now`
    /// (UNIX seconds). Returns how many entries were removed.
    pub fn purge_expired(&self, now: i64) -> usize {
        let before = self.sessions.len() + self.cutoffs.len();
        let now_u32 = clamp_expiry(now);
        self.sessions.retain(|_, e| e.expires_at > now_u32);
        self.cutoffs.retain(|_, e| e.expires_at > now);
        before - (self.sessions.len() + self.cutoffs.len())
    }

    /// Number of revoked sessions held.
    pub fn revoked_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Number of user cutoffs held.
    pub fn user_cutoffs(&self) -> usize {
        self.cutoffs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(sid: &str, expires_at: i64) -> SessionRevocation {
        SessionRevocation {
            session_id: sid.into(),
            revoked_at_ms: 1_000,
            expires_at,
            reason: "r".into(),
            actor: "admin".into(),
        }
    }

    fn cutoff(user: &str, not_before: i64, except: Option<&str>) -> UserCutoff {
        UserCutoff {
            user_id: user.into(),
            not_before,
            except: except.map(String::from),
            revoked_at_ms: not_before * 1000 - 500,
            expires_at: not_before + 3600,
            reason: "password reset".into(),
            actor: "admin".into(),
        }
    }

    #[test]
    fn revoked_session_is_refused_others_are_not() {
        let set = RevocationSet::new();
        assert!(set.apply_session(&session("s1", 100)));
        assert!(
            !set.apply_session(&session("s1", 200)),
            "first revocation wins"
        );
        assert!(set.check("s1", None, None).is_some());
        assert!(set.check("s2", Some("alice"), Some(1)).is_none());
    }

    #[test]
    fn refusal_keeps_revocation_time_to_the_millisecond_and_reason() {
        let set = RevocationSet::new();
        let mut r = session("s1", 4_000_000_000);
        r.revoked_at_ms = 1_764_000_000_999;
        r.reason = "stolen laptop".into();
        set.apply_session(&r);
        let mut other = session("s2", 100);
        other.reason = "other".into();
        set.apply_session(&other);
        let got = set.check("s1", None, None).expect("revoked");
        assert_eq!(got.revoked_at_ms, 1_764_000_000_999);
        assert_eq!(&*got.reason, "stolen laptop");
        let got = set.check("s2", None, None).expect("revoked");
        assert_eq!((got.revoked_at_ms, &*got.reason), (1_000, "other"));
        assert_eq!(std::mem::size_of::<(StoredKey, SessionEntry)>(), 24);
    }

    #[test]
    fn the_same_cutoff_again_changes_nothing() {
        let set = RevocationSet::new();
        assert!(set.apply_cutoff(&cutoff("u", 100, Some("keep"))));
        assert!(!set.apply_cutoff(&cutoff("u", 100, Some("keep"))));
        assert!(set.apply_cutoff(&cutoff("u", 100, None)), "other exemption");
        assert!(!set.apply_cutoff(&cutoff("u", 99, None)), "older");
        assert!(set.apply_cutoff(&cutoff("u", 101, None)), "newer");
    }

    #[test]
    fn cutoff_refuses_older_tokens_except_one_session() {
        let set = RevocationSet::new();
        set.apply_cutoff(&cutoff("alice", 1000, Some("keep")));
        assert!(set.check("old", Some("alice"), Some(999)).is_some());
        assert!(set.check("keep", Some("alice"), Some(999)).is_none());
        assert!(set.check("new", Some("alice"), Some(1000)).is_none());
        assert!(
            set.check("noiat", Some("alice"), None).is_some(),
            "unknown age fails closed"
        );
        assert!(set.check("old", Some("bob"), Some(999)).is_none());
        assert!(set.check("old", None, Some(999)).is_none());
    }

    #[test]
    fn later_cutoff_replaces_earlier_and_not_the_reverse() {
        let set = RevocationSet::new();
        set.apply_cutoff(&cutoff("alice", 1000, Some("a")));
        set.apply_cutoff(&cutoff("alice", 2000, Some("b")));
        assert!(!set.apply_cutoff(&cutoff("alice", 1500, None)));
        assert!(set.check("a", Some("alice"), Some(1500)).is_some());
        assert!(set.check("b", Some("alice"), Some(1500)).is_none());
    }

    #[test]
    fn revocations_outlive_the_longest_session_and_the_token_seen() {
        let r = Retention::new(3600, 30);
        assert_eq!(r.session_until(1000, None), 1000 + 3600 + 30);
        assert_eq!(
            r.session_until(1000, Some(1300)),
            1000 + 3600 + 30,
            "short token"
        );
        assert_eq!(
            r.session_until(1000, Some(9000)),
            9000 + 30,
            "token lives longer"
        );
        assert_eq!(r.cutoff_until(1001), 1001 + 3600 + 30);
    }

    #[test]
    fn purge_drops_only_expired() {
        let set = RevocationSet::new();
        set.apply_session(&session("old", 100));
        set.apply_session(&session("live", 300));
        set.apply_cutoff(&cutoff("alice", 10, None)); // expires at 3610
        assert_eq!(set.purge_expired(200), 1);
        assert!(set.check("old", None, None).is_none());
        assert!(set.check("live", None, None).is_some());
        assert_eq!(set.user_cutoffs(), 1);
    }
}
