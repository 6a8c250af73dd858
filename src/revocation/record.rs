//! Revocations as records: one session's, a user's cutoff, either kind for
//! lists and change logs, their JSON view, and how long each is kept
//! ([`Retention`]). The rule "the later cutoff wins" is
//! [`UserCutoff::supersedes`].

use serde::{Deserialize, Serialize};

use crate::clock;

/// One revoked session, as stored durably and listed by the admin API.
/// Serialised as a store writes it: the id is the record's key, not a field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRevocation {
    /// The revoked session id (the token's session claim).
    #[serde(default, skip_serializing)]
    pub session_id: String,
    /// When it was revoked (UNIX milliseconds).
    pub revoked_at_ms: i64,
    /// When the token it revokes can no longer be valid (UNIX seconds).
    pub expires_at: i64,
    /// Free-text reason given with the revocation (may be empty).
    pub reason: String,
    /// Who revoked it: `admin`, `user:<sub>` or `import`.
    pub actor: String,
}

/// A per-user cutoff: tokens of `user_id` issued before `not_before` are
/// refused, except those of session `except`.
/// Serialised as a store writes it: the user is the record's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCutoff {
    /// The user (the token's user claim) whose sessions are cut off.
    #[serde(default, skip_serializing)]
    pub user_id: String,
    /// UNIX seconds; a token is refused when `iat < not_before`.
    pub not_before: i64,
    /// The one session id the cutoff spares, if any.
    pub except: Option<String>,
    /// When the cutoff was made (UNIX milliseconds).
    pub revoked_at_ms: i64,
    /// When the cutoff may be dropped (UNIX seconds).
    pub expires_at: i64,
    /// Free-text reason given with the cutoff (may be empty).
    pub reason: String,
    /// Who made it: `admin` or `user:<sub>`.
    pub actor: String,
}

impl UserCutoff {
    /// The rule "the later cutoff wins": `self` replaces `current` when it
    /// cuts off later (`not_before`, then the time it was taken), or at the
    /// same moment with another exemption. Every store and the in-memory
    /// set decide by it.
    pub fn supersedes(&self, current: &UserCutoff) -> bool {
        let (new, cur) = (
            (self.not_before, self.revoked_at_ms),
            (current.not_before, current.revoked_at_ms),
        );
        new > cur || (new == cur && self.except != current.except)
    }
}

/// Either kind of revocation, for lists and for changes read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// One revoked session.
    Session(SessionRevocation),
    /// A per-user cutoff.
    User(UserCutoff),
}

impl Revocation {
    /// When the revocation may be dropped (UNIX seconds).
    pub fn expires_at(&self) -> i64 {
        match self {
            Revocation::Session(s) => s.expires_at,
            Revocation::User(u) => u.expires_at,
        }
    }

    /// When the revocation was made (UNIX milliseconds).
    pub fn revoked_at_ms(&self) -> i64 {
        match self {
            Revocation::Session(s) => s.revoked_at_ms,
            Revocation::User(u) => u.revoked_at_ms,
        }
    }
}

/// The JSON shape of a revocation in `GET /v1/revocations` (README, "Revoking sessions").
#[derive(Debug, Serialize)]
pub struct RevocationView {
    /// `session` or `user`.
    pub kind: &'static str,
    /// The session id or the user id.
    pub target: String,
    /// When it was made, RFC 3339 UTC with milliseconds.
    pub at: String,
    /// Free-text reason (may be empty).
    pub reason: String,
    /// Who made it.
    pub actor: String,
    /// When it may be dropped, RFC 3339 UTC to the second.
    pub expires_at: String,
    /// For a user cutoff, the session it spares; always `None` for a session.
    pub except: Option<String>,
}

impl From<&Revocation> for RevocationView {
    fn from(r: &Revocation) -> Self {
        match r {
            Revocation::Session(s) => RevocationView {
                kind: "session",
                target: s.session_id.clone(),
                at: clock::rfc3339_ms(s.revoked_at_ms),
                reason: s.reason.clone(),
                actor: s.actor.clone(),
                expires_at: clock::rfc3339_s(s.expires_at),
                except: None,
            },
            Revocation::User(u) => RevocationView {
                kind: "user",
                target: u.user_id.clone(),
                at: clock::rfc3339_ms(u.revoked_at_ms),
                reason: u.reason.clone(),
                actor: u.actor.clone(),
                expires_at: clock::rfc3339_s(u.expires_at),
                except: u.except.clone(),
            },
        }
    }
}

/// How long a revocation is kept. A session revocation outlives both the
/// longest session (`token.max_session_lifetime_s` from the moment it was
/// made: tokens are refreshed under the same `sid`) and the token seen for
/// it; a user cutoff lasts `max_session_lifetime_s` after its `not_before`.
/// Both add `token.leeway_s`, since a token is still accepted that long
/// after its `exp`. Purging after that is safe because the verifier refuses
/// any token older than `max_session_lifetime_s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    max_lifetime_s: i64,
    leeway_s: i64,
}

impl Retention {
    /// From `token.max_session_lifetime_s` and `token.leeway_s` (seconds).
    pub fn new(max_session_lifetime_s: u64, leeway_s: u64) -> Retention {
        let clamp = |v: u64| v.min(i64::MAX as u64 / 4) as i64;
        Retention {
            max_lifetime_s: clamp(max_session_lifetime_s),
            leeway_s: clamp(leeway_s),
        }
    }

    /// Until when (UNIX seconds) a session revoked at `revoked_at_s`, whose
    /// token was last seen expiring at `seen_exp`, stays revoked.
    pub fn session_until(&self, revoked_at_s: i64, seen_exp: Option<i64>) -> i64 {
        revoked_at_s
            .saturating_add(self.max_lifetime_s)
            .max(seen_exp.unwrap_or(i64::MIN))
            .saturating_add(self.leeway_s)
    }

    /// Until when a user cutoff at `not_before` is kept.
    pub fn cutoff_until(&self, not_before: i64) -> i64 {
        not_before
            .saturating_add(self.max_lifetime_s)
            .saturating_add(self.leeway_s)
    }
}
