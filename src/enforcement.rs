//! The decision core: a plain function of (path, headers, revocation state,
//! time) that says whether a request is public, allowed with an identity, or
//! refused with one typed [`Refusal`]. No sockets here; the pingora adapter in
//! `proxy` only gathers inputs and acts on the [`Decision`].

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::json;

use crate::clock;
use crate::config::{Config, TokenSource};
use crate::path::{target_path, PublicPaths};
use crate::revocation::{RevocationSet, Revoked};
use crate::token::extract::{self, CredentialError, Strip};
use crate::token::{KeyLoadError, TokenError, VerifiedToken, Verifier};

/// Prefix of the paths the gateway serves itself.
pub const RESERVED_PREFIX: &str = "/.sessiongate/";

/// The decision label of a request, as counted in `sessiongate_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed = 0,
    Public = 1,
    MissingToken = 2,
    InvalidToken = 3,
    TokenExpired = 4,
    SessionRevoked = 5,
    NewLocation = 6,
    StoreUnavailable = 7,
    InvalidRequest = 8,
}

impl Outcome {
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    MissingToken,
    InvalidToken(TokenError),
    Expired,
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
    pub status: StatusCode,
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Refusal {
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
            _ => json!({"error": self.code(), "error_description": self.description()}),
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

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Under a public prefix: forwarded, with the identity of its token
    /// when it carried one that verified (its connection is then closable).
    Public(Option<Arc<VerifiedToken>>),
    /// Under `/.sessiongate/`: served by the gateway itself.
    Reserved,
    /// Verified and not revoked: forward with this identity.
    Allow(Arc<VerifiedToken>),
    Refuse(Refusal),
}

/// A [`Decision`] and the credentials to strip before forwarding, so the
/// application sees only the credential that was verified (or none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    pub strip: Option<Strip>,
}

impl Verdict {
    fn bare(decision: Decision) -> Verdict {
        Verdict {
            decision,
            strip: None,
        }
    }
}

/// Token verification plus the revocation check, with the routing rules.
pub struct Enforcer {
    verifier: Verifier,
    revocations: Arc<RevocationSet>,
    public: PublicPaths,
    sources: Vec<TokenSource>,
}

impl std::fmt::Debug for Enforcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enforcer").finish_non_exhaustive()
    }
}

impl Enforcer {
    pub fn new(config: &Config, revocations: Arc<RevocationSet>) -> Result<Self, KeyLoadError> {
        Ok(Enforcer {
            verifier: Verifier::new(&config.token)?,
            revocations,
            public: PublicPaths::new(&config.enforcement.public_paths),
            sources: config.token.sources.clone(),
        })
    }

    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    pub fn revocations(&self) -> &Arc<RevocationSet> {
        &self.revocations
    }

    /// Decides a request for the raw request target `raw_target` (as
    /// received: path and query, undecoded) with `headers` at UNIX time
    /// `now`.
    pub fn decide(&self, raw_target: &[u8], headers: &HeaderMap, now: i64) -> Verdict {
        let path = target_path(raw_target);
        if path.is_some_and(|p| p.starts_with(RESERVED_PREFIX.as_bytes()) || p == b"/.sessiongate")
        {
            return Verdict::bare(Decision::Reserved);
        }
        let public = path.is_some_and(|p| self.public.matches(p));
        let credentials = match extract::collect(headers, &self.sources) {
            Ok(c) => c,
            Err(e) => return Verdict::bare(Decision::Refuse(Refusal::InvalidRequest(e))),
        };
        let checked = match credentials.token {
            None => Err(Refusal::MissingToken),
            Some(raw) => self.check(raw, now),
        };
        match (checked, public) {
            (Ok(token), public) => Verdict {
                strip: credentials.strip(headers, &self.sources, true),
                decision: if public {
                    Decision::Public(Some(token))
                } else {
                    Decision::Allow(token)
                },
            },
            // A token that does not verify is never passed on, not even to
            // a public path.
            (Err(_), true) => Verdict {
                decision: Decision::Public(None),
                strip: credentials.strip(headers, &self.sources, false),
            },
            (Err(refusal), false) => Verdict::bare(Decision::Refuse(refusal)),
        }
    }

    /// The edits that remove every credential from a request (a public
    /// request whose token turned out revoked after all).
    pub fn strip_all(&self, headers: &HeaderMap) -> Option<Strip> {
        extract::collect(headers, &self.sources)
            .ok()
            .and_then(|c| c.strip(headers, &self.sources, false))
    }

    /// Finds, verifies and checks the request's token against the
    /// revocation set.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        now: i64,
    ) -> Result<Arc<VerifiedToken>, Refusal> {
        let credentials =
            extract::collect(headers, &self.sources).map_err(Refusal::InvalidRequest)?;
        let raw = credentials.token.ok_or(Refusal::MissingToken)?;
        self.check(raw, now)
    }

    /// Verifies `raw` and checks it against the revocation set.
    fn check(&self, raw: &[u8], now: i64) -> Result<Arc<VerifiedToken>, Refusal> {
        let token = self.verifier.verify(raw, now).map_err(|e| match e {
            TokenError::Expired => Refusal::Expired,
            other => Refusal::InvalidToken(other),
        })?;
        if let Some(revoked) = self.revocations.check_key(
            token.session_key,
            &token.session_id,
            token.user_id.as_deref(),
            token.iat,
        ) {
            return Err(Refusal::Revoked(revoked));
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_headers_follow_rfc6750() {
        assert_eq!(
            Refusal::MissingToken.www_authenticate(),
            r#"Bearer realm="sessiongate""#
        );
        let v = Refusal::Expired.www_authenticate();
        assert!(v.to_str().unwrap().contains(r#"error="invalid_token""#));
        let r = Refusal::Revoked(Revoked {
            revoked_at_ms: 0,
            reason: Arc::from("stolen \"laptop\""),
        });
        let body: serde_json::Value = serde_json::from_slice(&r.body()).unwrap();
        assert_eq!(body["error"], "session_revoked");
        assert_eq!(body["reason"], "stolen \"laptop\"");
        assert_eq!(body["revoked_at"], "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn browsers_are_redirected_when_login_url_is_set() {
        let login = HeaderValue::from_static("https://app.example/login");
        let r = Refusal::MissingToken.render(Some(&login), true);
        assert_eq!(r.status, StatusCode::FOUND);
        let r = Refusal::MissingToken.render(Some(&login), false);
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = Refusal::MissingToken.render(None, true);
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
}
