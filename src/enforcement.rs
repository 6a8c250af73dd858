//! The decision core: a plain function of (path, headers, revocation state,
//! time) that says whether a request is public, allowed with an identity, or
//! refused with one typed [`Refusal`]. No sockets here; the pingora adapter in
//! `proxy` only gathers inputs and acts on the [`Decision`].

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::json;

use crate::clock;
use crate::config::{Config, TokenSource};
use crate::revocation::{RevocationSet, Revoked};
use crate::token::extract::find_token;
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
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Allowed,
        Outcome::Public,
        Outcome::MissingToken,
        Outcome::InvalidToken,
        Outcome::TokenExpired,
        Outcome::SessionRevoked,
        Outcome::NewLocation,
        Outcome::StoreUnavailable,
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
        }
    }

    /// `WWW-Authenticate` per RFC 6750: a bare challenge without a token,
    /// `error="invalid_token"` with a description otherwise.
    pub fn www_authenticate(&self) -> HeaderValue {
        match self {
            Refusal::MissingToken => HeaderValue::from_static(r#"Bearer realm="sessiongate""#),
            other => {
                let v = format!(
                    r#"Bearer realm="sessiongate", error="invalid_token", error_description="{}""#,
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
                "reason": &*r.reason,
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
    /// Under a public prefix: forward without looking for a token.
    Public,
    /// Under `/.sessiongate/`: served by the gateway itself.
    Reserved,
    /// Verified and not revoked: forward with this identity.
    Allow(Arc<VerifiedToken>),
    Refuse(Refusal),
}

/// Public path prefixes, matched on the normalised path at segment
/// boundaries (`/static` matches `/static` and `/static/x`, not `/staticx`).
#[derive(Debug, Clone, Default)]
pub struct PublicPaths {
    prefixes: Vec<String>,
}

impl PublicPaths {
    pub fn new(prefixes: &[String]) -> Self {
        Self {
            prefixes: prefixes.to_vec(),
        }
    }

    /// True when `raw_path` (as received, before any decoding) normalises to a
    /// path under a public prefix. A path that cannot be normalised safely
    /// (bad or double percent-encoding) is never public.
    pub fn matches(&self, raw_path: &str) -> bool {
        if self.prefixes.is_empty() {
            return false;
        }
        let Some(path) = normalise(raw_path) else {
            return false;
        };
        self.prefixes.iter().any(|p| under_prefix(&path, p))
    }
}

fn under_prefix(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

/// RFC 3986 normalisation of a request path as an upstream might see it:
/// percent-decoding, `\` as `/`, empty segments merged, `.` and `..`
/// resolved (also when followed by `;params`). `None` when the path holds
/// invalid or double percent-encoding.
pub fn normalise(raw: &str) -> Option<Cow<'_, str>> {
    let b = raw.as_bytes();
    let plain = !b.iter().any(|c| matches!(c, b'%' | b'\\' | b';'))
        && !raw.contains("/.")
        && !raw.contains("//");
    if plain {
        return Some(Cow::Borrowed(raw));
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode(b).collect();
    // A '%' that survives one decoding is double encoding: refuse to guess.
    if raw.contains('%') {
        let valid = b
            .windows(3)
            .filter(|w| w[0] == b'%')
            .all(|w| w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
            && !b.ends_with(b"%")
            && !(b.len() >= 2 && b[b.len() - 2] == b'%');
        if !valid || decoded.contains(&b'%') {
            return None;
        }
    }
    let text = String::from_utf8_lossy(&decoded).replace('\\', "/");
    let trailing = text.ends_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in text.split('/') {
        let bare = seg.split(';').next().unwrap_or("");
        match bare {
            "" if seg.is_empty() => {}
            "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(seg),
        }
    }
    let mut path = String::with_capacity(text.len());
    for seg in &out {
        path.push('/');
        path.push_str(seg);
    }
    if trailing || path.is_empty() {
        path.push('/');
    }
    Some(Cow::Owned(path))
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

    /// Decides a request for `raw_path` with `headers` at UNIX time `now`.
    pub fn decide(&self, raw_path: &str, headers: &HeaderMap, now: i64) -> Decision {
        if raw_path.starts_with(RESERVED_PREFIX) || raw_path == "/.sessiongate" {
            return Decision::Reserved;
        }
        if self.public.matches(raw_path) {
            return Decision::Public;
        }
        match self.authenticate(headers, now) {
            Ok(token) => Decision::Allow(token),
            Err(refusal) => Decision::Refuse(refusal),
        }
    }

    /// Finds, verifies and checks the request's token against the
    /// revocation set.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        now: i64,
    ) -> Result<Arc<VerifiedToken>, Refusal> {
        let raw = find_token(headers, &self.sources).ok_or(Refusal::MissingToken)?;
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
    fn normalises_like_an_upstream() {
        assert_eq!(normalise("/a/b").unwrap(), "/a/b");
        assert_eq!(normalise("/public/../admin").unwrap(), "/admin");
        assert_eq!(normalise("/public/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(normalise("/public/..%2fadmin").unwrap(), "/admin");
        assert_eq!(normalise("/public\\..\\admin").unwrap(), "/admin");
        assert_eq!(normalise("/public/..;/admin").unwrap(), "/admin");
        assert_eq!(normalise("//public//x/").unwrap(), "/public/x/");
        assert_eq!(normalise("/public/./x").unwrap(), "/public/x");
        assert_eq!(normalise("/../../etc").unwrap(), "/etc");
        assert!(
            normalise("/public/%252e%252e/admin").is_none(),
            "double encoding"
        );
        assert!(normalise("/public/%zz").is_none());
        assert!(normalise("/public/%2").is_none());
    }

    #[test]
    fn public_prefixes_match_on_segments() {
        let p = PublicPaths::new(&["/healthz".into(), "/static/".into()]);
        assert!(p.matches("/healthz"));
        assert!(p.matches("/healthz/live"));
        assert!(!p.matches("/healthzx"));
        assert!(p.matches("/static/app.js"));
        assert!(!p.matches("/static"));
        assert!(!p.matches("/healthz/../admin"));
        assert!(!p.matches("/healthz/%2e%2e/admin"));
        assert!(!p.matches("/healthz%2f..%2fadmin"));
        assert!(!p.matches("/static/..%5cadmin"));
        assert!(p.matches("/static/./app.js"));
    }

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
