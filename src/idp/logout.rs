//! OIDC Back-Channel Logout 1.0: the checks a logout token must pass
//! (section 2.6 of the spec, as docs/ARCHITECTURE.md lists them) and the
//! order it gives: revoke one session (`sid`) or cut off a user (`sub`).
//! Pure: the receiver does the I/O.

use serde::Deserialize;

use super::claims::{seconds, Audience};
use super::replay::{Replay, ReplayCache};
use crate::token::{verify_jws, KeySet, TokenError, Typ};

/// The event a logout token's `events` claim must hold.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// What a logout token is checked against.
#[derive(Debug, Clone, Copy)]
pub struct LogoutRules<'a> {
    /// `iss` must equal it.
    pub issuer: &'a str,
    /// `aud` must hold one of these.
    pub audiences: &'a [String],
    /// `token.leeway_s`: how far `iat` may be from now, and `exp` past.
    pub leeway_s: i64,
}

/// What the IdP logged out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutTarget {
    /// The IdP session `sid`: the session whose tokens carry it.
    Session(String),
    /// Every session of user `sub`.
    User(String),
}

/// A logout token that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutOrder {
    /// Its issuer (the audit actor is `idp:<iss>`).
    pub issuer: String,
    /// Its `jti`, held in the replay cache.
    pub jti: String,
    /// What to revoke.
    pub target: LogoutTarget,
}

/// Why a logout token is refused: 400 `invalid_request` with this as the
/// description (or 503 while the IdP's keys are unknown).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutError {
    /// No `logout_token` form field, or more than one.
    #[error("the body must have exactly one logout_token form field")]
    NoToken,
    /// The signature or header did not verify ([`TokenError`]).
    #[error("logout token: {}", .0.description())]
    Jws(TokenError),
    /// The payload is not a JSON object of the expected claim types, or
    /// repeats a claim.
    #[error("logout token claims are malformed: {0}")]
    Claims(String),
    /// `iss` is not the IdP's issuer.
    #[error("iss is not the identity provider's issuer")]
    Issuer,
    /// `aud` holds none of `idp.audiences`.
    #[error("aud names none of this gateway's client ids")]
    Audience,
    /// `iat` is missing, or further from now than the leeway.
    #[error("iat is missing or not within the leeway of now")]
    IssuedAt,
    /// `exp` has passed.
    #[error("the logout token has expired")]
    Expired,
    /// No `jti`.
    #[error("jti is missing")]
    NoJti,
    /// The `jti` was seen before.
    #[error("this logout token was already received (jti replayed)")]
    Replayed,
    /// Too many logout tokens are held in the replay cache.
    #[error("too many logout tokens at once; try again later")]
    ReplayCacheFull,
    /// `events` does not hold the back-channel logout event.
    #[error("events does not hold the back-channel logout event")]
    NoEvent,
    /// A `nonce` claim: an ID token, not a logout token.
    #[error("a logout token must not have a nonce")]
    Nonce,
    /// Neither `sid` nor `sub`.
    #[error("a logout token needs sid, sub or both")]
    NoSubject,
}

/// The claims read; serde refuses a repeated one.
#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Audience>,
    iat: Option<serde_json::Number>,
    exp: Option<serde_json::Number>,
    jti: Option<String>,
    events: Option<serde_json::Map<String, serde_json::Value>>,
    sid: Option<String>,
    sub: Option<String>,
    nonce: Option<serde::de::IgnoredAny>,
}

/// Checks a logout token at UNIX time `now` and takes its `jti` in
/// `replay`: signature with the IdP's keys only, `typ` `logout+jwt` when
/// present, `iss`, `aud`, `iat` within the leeway, `exp` not passed, a `jti`
/// not seen, the logout event, no `nonce`, and `sid` or `sub`. On success
/// the `jti` is held; give it back with [`ReplayCache::release`] when the
/// revocation fails, so the IdP may send the token again.
pub fn check_logout_token(
    keys: &KeySet,
    token: &[u8],
    rules: &LogoutRules<'_>,
    replay: &ReplayCache,
    now: i64,
) -> Result<LogoutOrder, LogoutError> {
    let jws =
        verify_jws(keys, token, Typ::OneOf(&["logout+jwt"], false)).map_err(LogoutError::Jws)?;
    let claims: Claims =
        serde_json::from_slice(&jws.payload).map_err(|e| LogoutError::Claims(e.to_string()))?;
    if claims.iss.as_deref() != Some(rules.issuer) {
        return Err(LogoutError::Issuer);
    }
    let aud_ok = claims
        .aud
        .as_ref()
        .is_some_and(|a| a.names_any(rules.audiences));
    if !aud_ok {
        return Err(LogoutError::Audience);
    }
    let iat = claims
        .iat
        .as_ref()
        .and_then(seconds)
        .ok_or(LogoutError::IssuedAt)?;
    if (now - iat).abs() > rules.leeway_s {
        return Err(LogoutError::IssuedAt);
    }
    let exp = match &claims.exp {
        Some(n) => Some(seconds(n).ok_or(LogoutError::Claims("exp is not a number".into()))?),
        None => None,
    };
    if exp.is_some_and(|exp| now >= exp.saturating_add(rules.leeway_s)) {
        return Err(LogoutError::Expired);
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty())
        .ok_or(LogoutError::NoJti)?;
    let event_ok = claims
        .events
        .as_ref()
        .and_then(|e| e.get(BACKCHANNEL_LOGOUT_EVENT))
        .is_some_and(|v| v.is_object());
    if !event_ok {
        return Err(LogoutError::NoEvent);
    }
    if claims.nonce.is_some() {
        return Err(LogoutError::Nonce);
    }
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let target = match (non_empty(claims.sid), non_empty(claims.sub)) {
        (Some(sid), _) => LogoutTarget::Session(sid),
        (None, Some(sub)) => LogoutTarget::User(sub),
        (None, None) => return Err(LogoutError::NoSubject),
    };
    // Held as long as the token could be presented again.
    let until = exp
        .unwrap_or(iat)
        .max(iat)
        .saturating_add(2 * rules.leeway_s);
    replay
        .take(rules.issuer, &jti, until, now)
        .map_err(|r| match r {
            Replay::Seen => LogoutError::Replayed,
            Replay::Full => LogoutError::ReplayCacheFull,
        })?;
    Ok(LogoutOrder {
        issuer: rules.issuer.to_string(),
        jti,
        target,
    })
}

/// The `logout_token` of an `application/x-www-form-urlencoded` body:
/// exactly one.
pub fn logout_token_field(body: &[u8]) -> Result<String, LogoutError> {
    let mut found = form_urlencoded::parse(body).filter(|(k, _)| k == "logout_token");
    match (found.next(), found.next()) {
        (Some((_, v)), None) if !v.is_empty() => Ok(v.into_owned()),
        _ => Err(LogoutError::NoToken),
    }
}

#[cfg(test)]
mod tests;
