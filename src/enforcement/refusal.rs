//! Every refusal the gateway sends, typed once ([`Refusal`]) and mapped in
//! one place to status, headers, body, log field and metric label
//! ([`Outcome`]).

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::json;

use crate::clock;
use crate::revocation::Revoked;
use crate::token::extract::CredentialError;
use crate::token::TokenError;

/// The decision label of a request, as counted in `sessiongate_requests_total`.
/// The discriminant indexes that metric's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Verified, not revoked: forwarded with its identity.
    Allowed = 0,
    /// Under a public prefix: forwarded whatever its token.
    Public = 1,
    /// No configured source carried a token.
    MissingToken = 2,
    /// The token did not verify (any [`TokenError`] but `Expired`), or its
    /// identity cannot travel in headers.
    InvalidToken = 3,
    /// The token has expired ([`TokenError::Expired`]).
    TokenExpired = 4,
    /// The session is revoked, or its user's cutoff covers it.
    SessionRevoked = 5,
    /// Seen from an unconfirmed new country (`sessions.refuse_new_location`).
    NewLocation = 6,
    /// The store has been silent longer than `enforcement.fail_closed_after_s`.
    StoreUnavailable = 7,
    /// The request's credentials are ambiguous.
    InvalidRequest = 8,
    /// A step-up route asks for a stronger or fresher authentication.
    InsufficientUserAuthentication = 9,
}

impl Outcome {
    /// Every outcome, in discriminant order (one counter each).
    pub const ALL: [Outcome; 10] = [
        Outcome::Allowed,
        Outcome::Public,
        Outcome::MissingToken,
        Outcome::InvalidToken,
        Outcome::TokenExpired,
        Outcome::SessionRevoked,
        Outcome::NewLocation,
        Outcome::StoreUnavailable,
        Outcome::InvalidRequest,
        Outcome::InsufficientUserAuthentication,
    ];

    /// The metric label, also the `error` code of a refusal's JSON body.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Public => "public",
            Outcome::MissingToken => "missing_token",
            Outcome::InvalidToken => "invalid_token",
            Outcome::TokenExpired => "token_expired",
            Outcome::SessionRevoked => "session_revoked",
            Outcome::NewLocation => "new_location",
            Outcome::StoreUnavailable => "store_unavailable",
            Outcome::InvalidRequest => "invalid_request",
            Outcome::InsufficientUserAuthentication => "insufficient_user_authentication",
        }
    }
}

/// Why the gateway refuses a request: the request path's refusals (a
/// token's check, the store's state, ambiguous credentials), the transport's
/// (a body too large, an upstream down) and the errors of the gateway's own
/// endpoints (admin API, self-service). One place ([`Refusal::render`])
/// turns each into status, headers and body; [`Refusal::code`] is its
/// `error` code and log field, [`Refusal::outcome`] its label in
/// `sessiongate_requests_total` (request-path refusals only; the admin API
/// counts by status). Each 401 of the request path is a 302 to
/// `enforcement.login_url` instead when one is set and the client asks for
/// HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No configured source carried a token: 401 with a bare `Bearer`
    /// challenge.
    MissingToken,
    /// The token did not verify, or its identity cannot travel in headers:
    /// 401 `invalid_token`.
    InvalidToken(TokenError),
    /// The token has expired ([`TokenError::Expired`]): 401 `token_expired`.
    Expired,
    /// The session is revoked, or its user's cutoff covers it (issued before
    /// it, or without `iat`): 401 `session_revoked`, with when and why.
    Revoked(Revoked),
    /// Seen from a new country; refused until the user confirms it
    /// (`sessions.refuse_new_location`): 403 `new_location`.
    NewLocation,
    /// The store has been unreachable longer than
    /// `enforcement.fail_closed_after_s`: revocation state may be stale.
    /// 503 `store_unavailable` with `Retry-After`.
    StoreUnavailable,
    /// The request's credentials are ambiguous (two `Authorization`
    /// headers, conflicting credential cookies): 400 `invalid_request`.
    InvalidRequest(CredentialError),
    /// A step-up route (or a self-service action) needs a stronger or
    /// fresher authentication: 401 `insufficient_user_authentication` with
    /// the RFC 9470 challenge; a browser is sent to `login_url` with
    /// `acr_values` and `max_age` as query parameters.
    StepUp(StepUp),
    /// A body over the limit of the endpoint (its bytes named): 413
    /// `payload_too_large`; the connection is not reused.
    PayloadTooLarge(usize),
    /// The upstream could not be reached: 502 `upstream_unavailable`.
    UpstreamUnavailable,
    /// A write the store did not acknowledge, or a read it could not
    /// answer: 503 `store_unavailable` with the store's error. Nothing was
    /// acknowledged.
    StoreFailed(String),
    /// The admin API without its bearer token, or with a wrong one: 401
    /// `unauthorized` with `WWW-Authenticate: Bearer realm="sessiongate-admin"`.
    AdminUnauthorized,
    /// A token-less admin listener asked for another host: 421
    /// `misdirected_request`.
    MisdirectedRequest,
    /// Malformed input to the admin API (what is wrong named): 400
    /// `bad_request`.
    BadRequest(String),
    /// No such endpoint, session or page: 404 `not_found`.
    NotFound(Cow<'static, str>),
    /// A method the endpoint does not take: 405 `method_not_allowed`, with
    /// `Allow` listing those it does.
    MethodNotAllowed(&'static str),
    /// A self-service action the session may not take: 403.
    Forbidden(Forbidden),
    /// A logout token that fails a check (what is wrong named): 400
    /// `invalid_request` (OIDC Back-Channel Logout 2.8).
    InvalidLogoutToken(String),
    /// The IdP's keys are not known yet (neither fetched nor cached): 503
    /// `temporarily_unavailable`, with `Retry-After`.
    KeysUnavailable,
    /// A Security Event Token refused (RFC 8935 2.3): 400 with the body
    /// `{"err": code, "description": ...}` that RFC defines.
    SetRefused {
        /// The RFC 8935 error code.
        err: &'static str,
        /// What is wrong.
        description: String,
    },
}

/// What a step-up route asks for: the RFC 9470 challenge parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUp {
    /// `acr_values`, space-separated; `None` when the route names none.
    pub acr_values: Option<std::sync::Arc<str>>,
    /// `max_age` (seconds); `None` when the route checks no `auth_time`.
    pub max_age: Option<u64>,
    /// Why the token falls short, in words.
    pub reason: &'static str,
}

/// Why a self-service action is refused to an authenticated session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    /// The session's token names no user, so it has no list of sessions.
    NoUser,
    /// The CSRF token was missing, stale or from another session.
    CsrfTokenInvalid,
    /// A new location is confirmed from one of the user's other sessions.
    ConfirmFromAnotherSession,
}

/// A refusal ready to be written: status, extra headers, JSON body.
#[derive(Debug, Clone)]
pub struct RenderedRefusal {
    /// The status of [`Refusal::status`], or 302 for a login redirect.
    pub status: StatusCode,
    /// Headers besides `Content-Type` and `Content-Length` (which the writer
    /// adds): `WWW-Authenticate`, `Location`, `Cache-Control`, `Retry-After`,
    /// `Allow`.
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
    /// The JSON body ([`Refusal::body`]).
    pub body: Bytes,
}

impl Refusal {
    /// Its label in `sessiongate_requests_total`: `None` for the errors of
    /// the gateway's own endpoints and the transport, counted elsewhere.
    pub fn outcome(&self) -> Option<Outcome> {
        Some(match self {
            Refusal::MissingToken => Outcome::MissingToken,
            Refusal::InvalidToken(_) => Outcome::InvalidToken,
            Refusal::Expired => Outcome::TokenExpired,
            Refusal::Revoked(_) => Outcome::SessionRevoked,
            Refusal::NewLocation => Outcome::NewLocation,
            Refusal::StoreUnavailable => Outcome::StoreUnavailable,
            Refusal::InvalidRequest(_) => Outcome::InvalidRequest,
            Refusal::StepUp(_) => Outcome::InsufficientUserAuthentication,
            _ => return None,
        })
    }

    /// The `error` code of the JSON body, also the log field.
    pub fn code(&self) -> &'static str {
        if let Some(o) = self.outcome() {
            return o.label();
        }
        match self {
            Refusal::PayloadTooLarge(_) => "payload_too_large",
            Refusal::InvalidLogoutToken(_) => "invalid_request",
            Refusal::SetRefused { err, .. } => err,
            Refusal::KeysUnavailable => "temporarily_unavailable",
            Refusal::UpstreamUnavailable => "upstream_unavailable",
            Refusal::StoreFailed(_) => "store_unavailable",
            Refusal::AdminUnauthorized => "unauthorized",
            Refusal::MisdirectedRequest => "misdirected_request",
            Refusal::BadRequest(_) => "bad_request",
            Refusal::NotFound(_) => "not_found",
            Refusal::MethodNotAllowed(_) => "method_not_allowed",
            Refusal::Forbidden(Forbidden::NoUser) => "no_user",
            Refusal::Forbidden(Forbidden::CsrfTokenInvalid) => "csrf_token_invalid",
            Refusal::Forbidden(Forbidden::ConfirmFromAnotherSession) => {
                "confirm_from_another_session"
            }
            _ => "invalid_request",
        }
    }

    /// Its status (before a login redirect).
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::MissingToken
            | Refusal::InvalidToken(_)
            | Refusal::Expired
            | Refusal::Revoked(_)
            | Refusal::StepUp(_)
            | Refusal::AdminUnauthorized => StatusCode::UNAUTHORIZED,
            Refusal::NewLocation | Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
            Refusal::StoreUnavailable | Refusal::StoreFailed(_) | Refusal::KeysUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Refusal::InvalidRequest(_)
            | Refusal::BadRequest(_)
            | Refusal::InvalidLogoutToken(_)
            | Refusal::SetRefused { .. } => StatusCode::BAD_REQUEST,
            Refusal::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Refusal::MisdirectedRequest => StatusCode::MISDIRECTED_REQUEST,
            Refusal::NotFound(_) => StatusCode::NOT_FOUND,
            Refusal::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// What went wrong, in words for a person (`error_description`).
    pub fn description(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Refusal::MissingToken => "no session token",
            Refusal::InvalidToken(e) => e.description(),
            Refusal::Expired => TokenError::Expired.description(),
            Refusal::Revoked(_) => "session has been revoked",
            Refusal::NewLocation => {
                "sign-in from a new location: confirm it from one of your other sessions"
            }
            Refusal::StoreUnavailable => "session state is unavailable; try again later",
            Refusal::InvalidRequest(e) => e.description(),
            Refusal::StepUp(s) => s.reason,
            Refusal::PayloadTooLarge(limit) => {
                return Cow::Owned(format!("request bodies are limited to {limit} bytes"))
            }
            Refusal::UpstreamUnavailable => "the application could not be reached",
            Refusal::StoreFailed(e) => return Cow::Owned(format!("the store failed: {e}")),
            Refusal::AdminUnauthorized => "missing or wrong admin token",
            Refusal::MisdirectedRequest => {
                "without an admin token, only requests to localhost or a loopback address \
                 are answered"
            }
            Refusal::BadRequest(e)
            | Refusal::InvalidLogoutToken(e)
            | Refusal::SetRefused { description: e, .. } => return Cow::Owned(e.clone()),
            Refusal::KeysUnavailable => {
                "the identity provider's keys are not known yet; try again later"
            }
            Refusal::NotFound(what) => return what.clone(),
            Refusal::MethodNotAllowed(allow) => return Cow::Owned(format!("allowed: {allow}")),
            Refusal::Forbidden(Forbidden::NoUser) => {
                "this session has no user id, so it has no list of sessions"
            }
            Refusal::Forbidden(Forbidden::CsrfTokenInvalid) => {
                "the form was stale or did not come from this page; reload the page and try again"
            }
            Refusal::Forbidden(Forbidden::ConfirmFromAnotherSession) => {
                "a new location is confirmed from one of your other sessions"
            }
        })
    }

    /// `WWW-Authenticate` per RFC 6750 for the request path's 401 and 400:
    /// a bare challenge without a token, `error="invalid_token"` (or
    /// `invalid_request`) with a description otherwise; the admin realm for
    /// the admin API; `None` for the rest.
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        let error = match self {
            Refusal::MissingToken => {
                return Some(HeaderValue::from_static(r#"Bearer realm="sessiongate""#))
            }
            Refusal::AdminUnauthorized => {
                return Some(HeaderValue::from_static(
                    r#"Bearer realm="sessiongate-admin""#,
                ))
            }
            Refusal::InvalidRequest(_) => "invalid_request",
            Refusal::InvalidToken(_) | Refusal::Expired | Refusal::Revoked(_) => "invalid_token",
            Refusal::StepUp(_) => "insufficient_user_authentication",
            _ => return None,
        };
        let mut v = format!(
            r#"Bearer realm="sessiongate", error="{error}", error_description="{}""#,
            self.description()
        );
        if let Refusal::StepUp(s) = self {
            // RFC 9470 section 3: only the parameters the route sets.
            if let Some(acr) = &s.acr_values {
                v.push_str(&format!(r#", acr_values="{acr}""#));
            }
            if let Some(age) = s.max_age {
                v.push_str(&format!(", max_age={age}"));
            }
        }
        Some(HeaderValue::from_str(&v).unwrap_or_else(|_| {
            HeaderValue::from_static(r#"Bearer realm="sessiongate", error="invalid_token""#)
        }))
    }

    /// The JSON body: `{"error": code, "error_description": ...}`
    /// (`missing_token` and `upstream_unavailable` bare); `session_revoked`
    /// adds `revoked_at` and `reason`.
    pub fn body(&self) -> Bytes {
        match self {
            // Bare, as section 3.1 of RFC 6750 and the 502 of the contract.
            Refusal::MissingToken | Refusal::UpstreamUnavailable => error_body(self.code(), None),
            Refusal::Revoked(r) => Bytes::from(
                json!({
                    "error": self.code(),
                    "error_description": self.description(),
                    "revoked_at": clock::rfc3339_ms(r.revoked_at_ms),
                    "reason": (!r.reason.is_empty()).then_some(&*r.reason),
                })
                .to_string(),
            ),
            Refusal::SetRefused { err, description } => {
                Bytes::from(json!({"err": err, "description": description}).to_string())
            }
            _ => error_body(self.code(), Some(&self.description())),
        }
    }

    /// Where a browser is sent to sign in: `login_url`, with `acr_values`
    /// and `max_age` appended for a step-up, so the app's login can ask the
    /// IdP for them.
    pub fn login_location(&self, login_url: &HeaderValue) -> HeaderValue {
        let Refusal::StepUp(s) = self else {
            return login_url.clone();
        };
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(acr) = &s.acr_values {
            query.append_pair("acr_values", acr);
        }
        if let Some(age) = s.max_age {
            query.append_pair("max_age", &age.to_string());
        }
        let query = query.finish();
        let base = String::from_utf8_lossy(login_url.as_bytes());
        let joined = match (query.is_empty(), base.contains('?')) {
            (true, _) => return login_url.clone(),
            (false, true) => format!("{base}&{query}"),
            (false, false) => format!("{base}?{query}"),
        };
        HeaderValue::from_str(&joined).unwrap_or_else(|_| login_url.clone())
    }

    /// Status, headers and body. With `login_url` set and a browser asking
    /// for HTML, a request-path 401 is a 302 to the login page instead.
    pub fn render(&self, login_url: Option<&HeaderValue>, wants_html: bool) -> RenderedRefusal {
        let mut status = self.status();
        let mut headers = vec![(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        )];
        match (login_url, wants_html, self.www_authenticate()) {
            (Some(location), true, Some(_)) if self.outcome().is_some() && status == 401 => {
                status = StatusCode::FOUND;
                headers.push((http::header::LOCATION, self.login_location(location)));
            }
            (_, _, Some(challenge)) => headers.push((http::header::WWW_AUTHENTICATE, challenge)),
            _ => {}
        }
        match self {
            Refusal::StoreUnavailable | Refusal::StoreFailed(_) | Refusal::KeysUnavailable => {
                headers.push((http::header::RETRY_AFTER, HeaderValue::from_static("1")))
            }
            Refusal::MethodNotAllowed(allow) => {
                headers.push((http::header::ALLOW, HeaderValue::from_static(allow)))
            }
            _ => {}
        }
        RenderedRefusal {
            status,
            headers,
            body: self.body(),
        }
    }
}

/// The one shape of every error body the gateway writes, proxy refusals,
/// admin API and self-service alike: `{"error": code}`, with
/// `"error_description"` when there is one (RFC 6750 / RFC 6749 names).
pub fn error_body(code: &str, description: Option<&str>) -> Bytes {
    let value = match description {
        Some(d) => json!({"error": code, "error_description": d}),
        None => json!({"error": code}),
    };
    Bytes::from(value.to_string())
}

#[cfg(test)]
#[path = "refusal_tests.rs"]
mod tests;
