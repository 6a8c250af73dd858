//! Shared Signals (SSF 1.0, CAEP 1.0 / the CAEP interoperability profile):
//! the checks a Security Event Token pushed to the gateway (RFC 8935) must
//! pass, and what it asks for: a session revoked, a user's sessions cut
//! off, a stream verified. Pure: the receiver does the I/O. Each refusal
//! carries its RFC 8935 error code ([`SetError::code`]).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::claims::{seconds, Audience};
use super::replay::{Replay, ReplayCache};
use crate::token::{verify_jws, KeySet, TokenError, Typ};

/// CAEP: a session was revoked at the transmitter.
pub const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// CAEP: a credential changed (a password reset logs every session out).
pub const CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";
/// SSF: the transmitter checks that the stream works.
pub const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
/// Oldest `iat` a SET may have: a transmitter retries for a while, and its
/// `jti` is held this long.
pub const SET_MAX_AGE_S: i64 = 24 * 3600;

/// What a SET is checked against.
#[derive(Debug, Clone, Copy)]
pub struct SetRules<'a> {
    /// `iss` must equal it (the transmitter's issuer).
    pub issuer: &'a str,
    /// `aud` must be or hold it.
    pub audience: &'a str,
    /// How far in the future `iat` may be.
    pub leeway_s: i64,
}

/// Why a SET is refused: 400 with `{"err": code, "description": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// Malformed: not a SET of the expected form (`invalid_request`).
    #[error("{0}")]
    InvalidRequest(String),
    /// No key of the transmitter's for its `kid` and `alg` (`invalid_key`).
    #[error("{0}")]
    InvalidKey(String),
    /// `iss` is not the transmitter's (`invalid_issuer`).
    #[error("iss is not the transmitter's issuer")]
    InvalidIssuer,
    /// `aud` is not this receiver's (`invalid_audience`).
    #[error("aud is not this receiver's audience")]
    InvalidAudience,
    /// The signature does not verify (`authentication_failed`).
    #[error("the SET's signature does not verify")]
    AuthenticationFailed,
    /// The push request lacks the transmitter's bearer token (`access_denied`).
    #[error("missing or wrong bearer token")]
    AccessDenied,
}

impl SetError {
    /// The RFC 8935 error code.
    pub fn code(&self) -> &'static str {
        match self {
            SetError::InvalidRequest(_) => "invalid_request",
            SetError::InvalidKey(_) => "invalid_key",
            SetError::InvalidIssuer => "invalid_issuer",
            SetError::InvalidAudience => "invalid_audience",
            SetError::AuthenticationFailed => "authentication_failed",
            SetError::AccessDenied => "access_denied",
        }
    }
}

/// A user a subject names (RFC 9493 formats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    /// `iss_sub`: the subject `sub` at issuer `iss`.
    IssSub {
        /// The issuer of `sub`.
        iss: String,
        /// The subject.
        sub: String,
    },
    /// `email`.
    Email(String),
}

/// Who an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A session (`complex` with a `session`, or the `opaque` session
    /// format), with its user when named.
    Session {
        /// The session id (the IdP's, as access tokens carry it).
        id: String,
        /// Its user, when the subject names one.
        user: Option<UserRef>,
    },
    /// A user only.
    User(UserRef),
    /// A format the gateway cannot act on (`phone_number`, `account`...).
    Other(String),
}

/// A SET that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedSet {
    /// Its issuer (the audit actor is `ssf:<iss>`).
    pub issuer: String,
    /// Its `jti`, held in the replay cache.
    pub jti: String,
    /// The one event's type URI.
    pub event_type: String,
    /// Who it is about (`sub_id`, or the event's own `subject`), when named.
    pub subject: Option<Subject>,
    /// The event's `event_timestamp`, else the SET's `iat` (UNIX seconds).
    pub at: i64,
    /// The verification event's `state`, when it has one.
    pub state: Option<String>,
}

/// The claims read; serde refuses a repeated one.
#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Audience>,
    iat: Option<serde_json::Number>,
    jti: Option<String>,
    events: Option<Map<String, Value>>,
    sub_id: Option<Map<String, Value>>,
    sub: Option<serde::de::IgnoredAny>,
    exp: Option<serde::de::IgnoredAny>,
}

fn string(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

fn user_ref(m: &Map<String, Value>) -> Option<UserRef> {
    match m.get("format").and_then(Value::as_str)? {
        "iss_sub" => Some(UserRef::IssSub {
            iss: string(m, "iss")?,
            sub: string(m, "sub")?,
        }),
        "email" => Some(UserRef::Email(string(m, "email")?)),
        _ => None,
    }
}

/// A subject identifier (RFC 9493, with the CAEP `complex` format).
fn subject(m: &Map<String, Value>) -> Result<Subject, SetError> {
    let bad = |what: &str| SetError::InvalidRequest(format!("subject: {what}"));
    let format = m
        .get("format")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no format"))?;
    Ok(match format {
        "complex" => {
            let object = |k: &str| m.get(k).and_then(Value::as_object);
            let user = match object("user") {
                Some(u) => Some(user_ref(u).ok_or_else(|| bad("user of an unusable format"))?),
                None => None,
            };
            let session = object("session")
                .map(|s| string(s, "id").ok_or_else(|| bad("session without an id")))
                .transpose()?;
            match (session, user) {
                (Some(id), user) => Subject::Session { id, user },
                (None, Some(u)) => Subject::User(u),
                (None, None) => Subject::Other("complex".into()),
            }
        }
        "iss_sub" | "email" => Subject::User(user_ref(m).ok_or_else(|| bad("incomplete"))?),
        other => Subject::Other(other.to_string()),
    })
}

/// Checks a SET at UNIX time `now` and takes its `jti` in `replay`:
/// signature with the transmitter's keys, `typ` `secevent+jwt`, `iss`,
/// `aud`, `iat` (not ahead of the leeway, not older than
/// [`SET_MAX_AGE_S`]), a `jti` not seen, no `sub` and no `exp` claim,
/// exactly one event. Give the `jti` back with [`ReplayCache::release`]
/// when acting on it fails.
pub fn check_set(
    keys: &KeySet,
    token: &[u8],
    rules: &SetRules<'_>,
    replay: &ReplayCache,
    now: i64,
) -> Result<CheckedSet, SetError> {
    let invalid = |s: &str| SetError::InvalidRequest(s.to_string());
    let jws =
        verify_jws(keys, token, Typ::OneOf(&["secevent+jwt"], true)).map_err(|e| match e {
            TokenError::BadSignature => SetError::AuthenticationFailed,
            TokenError::NoMatchingKey | TokenError::UnsupportedAlgorithm => {
                SetError::InvalidKey(e.description().to_string())
            }
            TokenError::WrongType => invalid("typ must be secevent+jwt"),
            other => SetError::InvalidRequest(other.description().to_string()),
        })?;
    let claims: Claims = serde_json::from_slice(&jws.payload)
        .map_err(|e| SetError::InvalidRequest(format!("claims are malformed: {e}")))?;
    if claims.iss.as_deref() != Some(rules.issuer) {
        return Err(SetError::InvalidIssuer);
    }
    let aud_ok = claims
        .aud
        .as_ref()
        .is_some_and(|a| a.names_any(&[rules.audience]));
    if !aud_ok {
        return Err(SetError::InvalidAudience);
    }
    let iat = claims
        .iat
        .as_ref()
        .and_then(seconds)
        .ok_or_else(|| invalid("iat is missing"))?;
    if iat > now.saturating_add(rules.leeway_s) {
        return Err(invalid("iat is in the future"));
    }
    if iat < now - SET_MAX_AGE_S {
        return Err(invalid("iat is too old"));
    }
    if claims.sub.is_some() {
        return Err(invalid("a SET must not have a sub claim (RFC 8417 2.2)"));
    }
    if claims.exp.is_some() {
        return Err(invalid("a SET must not have an exp claim (RFC 8417 2.2)"));
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty())
        .ok_or_else(|| invalid("jti is missing"))?;
    let events = claims.events.ok_or_else(|| invalid("events is missing"))?;
    if events.len() != 1 {
        return Err(invalid("a SET must hold exactly one event"));
    }
    let (event_type, payload) = events
        .into_iter()
        .next()
        .ok_or_else(|| invalid("events is empty"))?;
    let payload = payload
        .as_object()
        .cloned()
        .ok_or_else(|| invalid("the event is not an object"))?;
    let subject = match (
        &claims.sub_id,
        payload.get("subject").and_then(Value::as_object),
    ) {
        (Some(s), _) | (None, Some(s)) => Some(subject(s)?),
        (None, None) => None,
    };
    let at = match payload.get("event_timestamp") {
        Some(v) => v
            .as_number()
            .and_then(seconds)
            .ok_or_else(|| invalid("event_timestamp is not a number"))?,
        None => iat,
    };
    replay
        .take(rules.issuer, &jti, iat.saturating_add(SET_MAX_AGE_S), now)
        .map_err(|r| match r {
            Replay::Seen => invalid("this SET was already received (jti replayed)"),
            Replay::Full => invalid("too many SETs at once; try again later"),
        })?;
    Ok(CheckedSet {
        issuer: rules.issuer.to_string(),
        jti,
        event_type,
        subject,
        at,
        state: string(&payload, "state"),
    })
}

#[cfg(test)]
mod tests;
