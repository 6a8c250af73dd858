//! Every refusal the proxy sends, typed once ([`Refusal`]) and mapped in
//! one place to status, headers, body and metric label ([`Outcome`]).

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
}

impl Outcome {
    /// Every outcome, in discriminant order (one counter each).
    pub const ALL: [Outcome; 9] = [
        Outcome::Allowed,
        Outcome::Public,
        Outcome::MissingToken,
        Outcome::InvalidToken,
        Outcome::TokenExpired,
        Outcome::SessionRevoked,
        Outcome::NewLocation,
        Outcome::StoreUnavailable,
        Outcome::InvalidRequest,
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
        }
    }
}

/// Why a request is refused. One place ([`Refusal::render`]) turns it into
/// status, headers and body; [`Refusal::outcome`] gives its metric label.
/// Each 401 below is a 302 to `enforcement.login_url` instead when one is set
/// and the client asks for HTML.
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
    /// (`sessions.refuse_new_location`).
    NewLocation,
    /// The store has been unreachable longer than
    /// `enforcement.fail_closed_after_s`: revocation state may be stale.
    StoreUnavailable,
    /// The request's credentials are ambiguous (two `Authorization`
    /// headers, conflicting credential cookies): 400.
    InvalidRequest(CredentialError),
}

/// A refusal ready to be written: status, extra headers, JSON body.
#[derive(Debug, Clone)]
pub struct RenderedRefusal {
    /// 401, 302 (login redirect), 400, 403 or 503.
    pub status: StatusCode,
    /// Headers besides `Content-Type` and `Content-Length` (which the writer
    /// adds): `WWW-Authenticate`, `Location`, `Cache-Control`, `Retry-After`.
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
    /// The JSON body ([`Refusal::body`]).
    pub body: Bytes,
}

impl Refusal {
    /// Its label in `sessiongate_requests_total`.
    pub fn outcome(&self) -> Outcome {
        match self {
            Refusal::MissingToken => Outcome::MissingToken,
            Refusal::InvalidToken(_) => Outcome::InvalidToken,
            Refusal::Expired => Outcome::TokenExpired,
            Refusal::Revoked(_) => Outcome::SessionRevoked,
            Refusal::NewLocation => Outcome::NewLocation,
            Refusal::StoreUnavailable => Outcome::StoreUnavailable,
            Refusal::InvalidRequest(_) => Outcome::InvalidRequest,
        }
    }

    /// The `error` code of the JSON body.
    pub fn code(&self) -> &'static str {
        self.outcome().label()
    }

    fn description(&self) -> &'static str {
        match self {
            Refusal::MissingToken => "no session token",
            Refusal::InvalidToken(e) => e.description(),
            Refusal::Expired => TokenError::Expired.description(),
            Refusal::Revoked(_) => "session has been revoked",
            Refusal::NewLocation => {
                "sign-in from a new location: confirm it from one of your other sessions"
            }
            Refusal::StoreUnavailable => "session state is unavailable; try again later",
            Refusal::InvalidRequest(e) => e.description(),
        }
    }

    /// `WWW-Authenticate` per RFC 6750: a bare challenge without a token,
    /// `error="invalid_token"` with a description otherwise.
    pub fn www_authenticate(&self) -> HeaderValue {
        match self {
            Refusal::MissingToken => HeaderValue::from_static(r#"Bearer realm="sessiongate""#),
            other => {
                let error = match other {
                    Refusal::InvalidRequest(_) => "invalid_request",
                    _ => "invalid_token",
                };
                let v = format!(
                    r#"Bearer realm="sessiongate", error="{error}", error_description="{}""#,
                    other.description()
                );
                HeaderValue::from_str(&v).unwrap_or_else(|_| {
                    HeaderValue::from_static(r#"Bearer realm="sessiongate", error="invalid_token""#)
                })
            }
        }
    }

    /// The JSON body: `{"error": code, ...}`; `session_revoked` adds
    /// `revoked_at` and `reason`.
    pub fn body(&self) -> Bytes {
        let value = match self {
            Refusal::MissingToken => json!({"error": self.code()}),
            Refusal::Revoked(r) => json!({
                "error": self.code(),
                "error_description": self.description(),
                "revoked_at": clock::rfc3339_ms(r.revoked_at_ms),
                "reason": (!r.reason.is_empty()).then_some(&*r.reason),
            }),
            _ => return error_body(self.code(), Some(self.description())),
        };
        Bytes::from(value.to_string())
    }

    /// Status, headers and body. With `login_url` set and a browser asking
    /// for HTML, a 302 to the login page instead of a 401.
    pub fn render(&self, login_url: Option<&HeaderValue>, wants_html: bool) -> RenderedRefusal {
        if *self == Refusal::StoreUnavailable {
            return RenderedRefusal {
                status: StatusCode::SERVICE_UNAVAILABLE,
                headers: vec![
                    (
                        http::header::CACHE_CONTROL,
                        HeaderValue::from_static("no-store"),
                    ),
                    (http::header::RETRY_AFTER, HeaderValue::from_static("1")),
                ],
                body: self.body(),
            };
        }
        if *self == Refusal::NewLocation {
            // Signing in again does not help: 403, no challenge.
            return RenderedRefusal {
                status: StatusCode::FORBIDDEN,
                headers: vec![(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                )],
                body: self.body(),
            };
        }
        if let Refusal::InvalidRequest(_) = self {
            // Signing in again does not help a malformed request either.
            return RenderedRefusal {
                status: StatusCode::BAD_REQUEST,
                headers: vec![
                    (http::header::WWW_AUTHENTICATE, self.www_authenticate()),
                    (
                        http::header::CACHE_CONTROL,
                        HeaderValue::from_static("no-store"),
                    ),
                ],
                body: self.body(),
            };
        }
        if let (Some(location), true) = (login_url, wants_html) {
            return RenderedRefusal {
                status: StatusCode::FOUND,
                headers: vec![
                    (http::header::LOCATION, location.clone()),
                    (
                        http::header::CACHE_CONTROL,
                        HeaderValue::from_static("no-store"),
                    ),
                ],
                body: self.body(),
            };
        }
        RenderedRefusal {
            status: StatusCode::UNAUTHORIZED,
            headers: vec![
                (http::header::WWW_AUTHENTICATE, self.www_authenticate()),
                (
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                ),
            ],
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
