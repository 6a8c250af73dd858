//! The audit trail: who ended which session, when, from where and why.
//! Entries are written to the store in the same transaction as the action
//! they record, then echoed as one JSON line to the log (target `audit`).

use serde::Serialize;

use crate::clock;

/// What was done. Serialised in snake_case, as the audit API answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// One session was revoked (`revoke_session`).
    RevokeSession,
    /// A user's sessions were cut off (`revoke_user`).
    RevokeUser,
    /// A session was first seen from a country new for its user (`new_location`).
    NewLocation,
    /// The user confirmed a session's new location (`confirm_location`).
    ConfirmLocation,
    /// An IdP or transmitter event named a user or session the gateway
    /// cannot match (`unmatched_event`): acknowledged, nothing revoked.
    UnmatchedEvent,
    /// A session was first seen (`session_created`; recorded only when a
    /// webhook subscribes to `session.created`).
    SessionCreated,
    /// A session was marked suspicious (`suspicious_session`; the reason
    /// says why: `device_changed`, `impossible_travel`).
    SuspiciousSession,
}

impl Action {
    /// The snake_case name, as stored and serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::RevokeSession => "revoke_session",
            Action::RevokeUser => "revoke_user",
            Action::NewLocation => "new_location",
            Action::ConfirmLocation => "confirm_location",
            Action::UnmatchedEvent => "unmatched_event",
            Action::SessionCreated => "session_created",
            Action::SuspiciousSession => "suspicious_session",
        }
    }

    /// The action named by [`Action::as_str`]; `None` for any other string.
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "revoke_session" => Action::RevokeSession,
            "revoke_user" => Action::RevokeUser,
            "new_location" => Action::NewLocation,
            "confirm_location" => Action::ConfirmLocation,
            "unmatched_event" => Action::UnmatchedEvent,
            "session_created" => Action::SessionCreated,
            "suspicious_session" => Action::SuspiciousSession,
            _ => return None,
        })
    }
}

/// One audit record (serialised as a store writes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// When it happened, UNIX milliseconds.
    pub at_ms: i64,
    /// `admin` for the admin token, `user:<sub>` for self-service.
    pub actor: String,
    /// Client address of the request that caused it, when known.
    pub actor_ip: Option<String>,
    /// What was done.
    pub action: Action,
    /// `session:<sid>` or `user:<sub>`.
    pub target: String,
    /// Free-text reason given with the action (may be empty).
    pub reason: String,
}

/// JSON shape of an entry in `GET /v1/audit` and in the log.
#[derive(Debug, Serialize)]
pub struct AuditView<'a> {
    /// [`AuditEntry::at_ms`] as RFC 3339 UTC with milliseconds.
    pub time: String,
    /// [`AuditEntry::actor`].
    pub actor: &'a str,
    /// [`AuditEntry::actor_ip`].
    pub actor_ip: Option<&'a str>,
    /// [`AuditEntry::action`].
    pub action: Action,
    /// [`AuditEntry::target`].
    pub target: &'a str,
    /// [`AuditEntry::reason`].
    pub reason: &'a str,
}

impl AuditEntry {
    /// The entry in its JSON shape, borrowing from `self`.
    pub fn view(&self) -> AuditView<'_> {
        AuditView {
            time: clock::rfc3339_ms(self.at_ms),
            actor: &self.actor,
            actor_ip: self.actor_ip.as_deref(),
            action: self.action,
            target: &self.target,
            reason: &self.reason,
        }
    }

    /// Writes the entry as one JSON line to the log.
    pub fn log(&self) {
        if let Ok(line) = serde_json::to_string(&self.view()) {
            tracing::info!(target: "audit", "{line}");
        }
    }
}
