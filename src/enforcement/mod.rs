//! The decision core: a plain function of (path, headers, revocation state,
//! time) that says whether a request is public, allowed with an identity, or
//! refused with one typed [`Refusal`]. No sockets here; the pingora adapter in
//! `proxy` only gathers inputs and acts on the [`Decision`].

mod refusal;

use std::sync::Arc;

use http::HeaderMap;

use crate::config::{Config, Mode, TokenSource};
use crate::path::{target_path, PublicPaths};
use crate::revocation::RevocationSet;
use crate::token::extract::{self, Strip};
use crate::token::{KeyLoadError, TokenError, VerifiedToken, Verifier};
pub use refusal::{error_body, Outcome, Refusal, RenderedRefusal};

/// Prefix of the paths the gateway serves itself.
pub const RESERVED_PREFIX: &str = "/.sessiongate/";

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
    /// Enforce mode: answered with this refusal, never forwarded.
    Refuse(Refusal),
    /// Monitor mode: would have been refused; forwarded as sent, counted
    /// under the refusal's label.
    Monitored(Refusal),
}

/// A [`Decision`] and the credentials to strip before forwarding, so the
/// application sees only the credential that was verified (or none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What to do with the request.
    pub decision: Decision,
    /// Credentials to remove before forwarding; `None`: nothing to remove.
    pub strip: Option<Strip>,
    /// Monitor mode: the `X-Sessiongate-Decision` value for the app.
    pub monitor_label: Option<&'static str>,
}

impl Verdict {
    fn bare(decision: Decision) -> Verdict {
        Verdict {
            decision,
            strip: None,
            monitor_label: None,
        }
    }

    /// The metric label of what was decided (`None` for `/.sessiongate/`,
    /// which self-service counts itself).
    pub fn outcome(&self) -> Option<Outcome> {
        match &self.decision {
            Decision::Reserved => None,
            Decision::Public(_) => Some(Outcome::Public),
            Decision::Allow(_) => Some(Outcome::Allowed),
            Decision::Refuse(r) | Decision::Monitored(r) => Some(r.outcome()),
        }
    }

    /// Monitor mode: nothing is refused; a would-be refusal is forwarded as
    /// sent under its label. What is forwarded with an identity, or to a
    /// public path, still loses every credential but the verified one: a
    /// revoked or forged token is never passed on, in any mode.
    fn monitored(self) -> Verdict {
        let (decision, strip) = match self.decision {
            Decision::Refuse(r) => (Decision::Monitored(r), None),
            other => (other, self.strip),
        };
        let mut v = Verdict::bare(decision);
        v.strip = strip;
        v.monitor_label = v.outcome().map(Outcome::label);
        v
    }
}

/// What the decision knows of a request: gathered by the adapter, so that
/// [`Enforcer::decide`] is a plain function of it and the state it holds.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The raw request target (path and query, undecoded).
    pub target: &'a [u8],
    /// The request's headers.
    pub headers: &'a HeaderMap,
    /// UNIX seconds.
    pub now_s: i64,
    /// Milliseconds since the store last answered.
    pub store_silent_ms: i64,
}

/// Token verification plus the revocation check, with the routing rules.
pub struct Enforcer {
    verifier: Verifier,
    revocations: Arc<RevocationSet>,
    public: PublicPaths,
    sources: Vec<TokenSource>,
    mode: Mode,
    fail_closed_after_ms: Option<i64>,
}

impl std::fmt::Debug for Enforcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enforcer").finish_non_exhaustive()
    }
}

impl Enforcer {
    /// Builds the enforcer of `config`, checking against `revocations`;
    /// loads every key (an error names its `token.keys[i]` entry).
    pub fn new(config: &Config, revocations: Arc<RevocationSet>) -> Result<Self, KeyLoadError> {
        Ok(Enforcer {
            verifier: Verifier::new(&config.token)?,
            revocations,
            public: PublicPaths::new(&config.enforcement.public_paths),
            sources: config.token.sources.clone(),
            mode: config.enforcement.mode,
            fail_closed_after_ms: config
                .enforcement
                .fail_closed_after
                .map(|d| d.as_millis().min(i64::MAX as u128) as i64),
        })
    }

    /// Enforce or monitor.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The token verifier (its keys are replaced on JWKS reload).
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The in-memory revocation set tokens are checked against.
    pub fn revocations(&self) -> &Arc<RevocationSet> {
        &self.revocations
    }

    /// Decides a request, in this order: `/.sessiongate/` is the
    /// gateway's; ambiguous credentials are refused; a store silent longer
    /// than `enforcement.fail_closed_after_s` refuses everything; a public
    /// path is forwarded (with its token's identity when one verified, its
    /// other credentials stripped); otherwise the token must verify, carry
    /// a representable identity and not be revoked. In monitor mode a
    /// refusal is forwarded under its label instead.
    pub fn decide(&self, facts: &Facts<'_>) -> Verdict {
        let path = target_path(facts.target);
        if path.is_some_and(|p| p.starts_with(RESERVED_PREFIX.as_bytes()) || p == b"/.sessiongate")
        {
            return Verdict::bare(Decision::Reserved);
        }
        let verdict = self.enforce(path, facts);
        match self.mode {
            Mode::Enforce => verdict,
            Mode::Monitor => verdict.monitored(),
        }
    }

    fn enforce(&self, path: Option<&[u8]>, facts: &Facts<'_>) -> Verdict {
        let public = path.is_some_and(|p| self.public.matches(p));
        let credentials = match extract::collect(facts.headers, &self.sources) {
            Ok(c) => c,
            Err(e) => return Verdict::bare(Decision::Refuse(Refusal::InvalidRequest(e))),
        };
        if let Err(r) = self.fail_closed(facts.store_silent_ms) {
            return Verdict::bare(Decision::Refuse(r));
        }
        let checked = match credentials.token {
            None => Err(Refusal::MissingToken),
            Some(raw) => self.check(raw, facts.now_s),
        };
        match (checked, public) {
            (Ok(token), public) => Verdict {
                strip: credentials.strip(facts.headers, &self.sources, true),
                decision: if public {
                    Decision::Public(Some(token))
                } else {
                    Decision::Allow(token)
                },
                monitor_label: None,
            },
            // A token that does not verify is never passed on, not even to
            // a public path.
            (Err(_), true) => Verdict {
                decision: Decision::Public(None),
                strip: credentials.strip(facts.headers, &self.sources, false),
                monitor_label: None,
            },
            (Err(refusal), false) => Verdict::bare(Decision::Refuse(refusal)),
        }
    }

    /// Revocation state may be stale: the store has been silent too long.
    fn fail_closed(&self, store_silent_ms: i64) -> Result<(), Refusal> {
        match self.fail_closed_after_ms {
            Some(limit) if store_silent_ms > limit => Err(Refusal::StoreUnavailable),
            _ => Ok(()),
        }
    }

    /// The edits that remove every credential from a request (a public
    /// request whose token turned out revoked after all).
    pub fn strip_all(&self, headers: &HeaderMap) -> Option<Strip> {
        extract::collect(headers, &self.sources)
            .ok()
            .and_then(|c| c.strip(headers, &self.sources, false))
    }

    /// The rules of [`Enforcer::decide`] for a request the gateway answers
    /// itself (self-service): credentials, fail-closed, a verified,
    /// representable and unrevoked token. Always enforced, whatever the mode.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        now_s: i64,
        store_silent_ms: i64,
    ) -> Result<Arc<VerifiedToken>, Refusal> {
        let credentials =
            extract::collect(headers, &self.sources).map_err(Refusal::InvalidRequest)?;
        self.fail_closed(store_silent_ms)?;
        let raw = credentials.token.ok_or(Refusal::MissingToken)?;
        self.check(raw, now_s)
    }

    /// Verifies `raw`, checks its identity can travel in headers (no
    /// control characters), and checks it against the revocation set.
    fn check(&self, raw: &[u8], now: i64) -> Result<Arc<VerifiedToken>, Refusal> {
        let token = self.verifier.verify(raw, now).map_err(|e| match e {
            TokenError::Expired => Refusal::Expired,
            other => Refusal::InvalidToken(other),
        })?;
        if !token.is_representable() {
            return Err(Refusal::InvalidToken(TokenError::Malformed));
        }
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
    use crate::revocation::{Revoked, SessionRevocation, UserCutoff};
    use http::{HeaderValue, StatusCode};
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const SECRET: &str = "decision-table-secret-0123456789abcdef";

    fn enforcer(mode: &str) -> Enforcer {
        let toml = format!(
            "[listen]\nproxy = \"127.0.0.1:1\"\n[upstream]\naddress = \"127.0.0.1:2\"\n\
             [[token.keys]]\nalgorithm = \"HS256\"\nsecret = \"{SECRET}\"\n\
             [enforcement]\nmode = \"{mode}\"\npublic_paths = [\"/pub\"]\nfail_closed_after_s = 5\n"
        );
        let dir = std::env::temp_dir();
        let config = Config::from_toml(&toml, &dir.join("t.toml"), &dir).unwrap();
        let revocations = Arc::new(RevocationSet::new());
        revocations.apply_session(&SessionRevocation {
            session_id: "revoked".into(),
            revoked_at_ms: NOW * 1000,
            expires_at: NOW + 3600,
            reason: "lost".into(),
            actor: "admin".into(),
        });
        revocations.apply_cutoff(&UserCutoff {
            user_id: "bob".into(),
            not_before: NOW - 10,
            except: Some("kept".into()),
            revoked_at_ms: NOW * 1000,
            expires_at: NOW + 3600,
            reason: String::new(),
            actor: "admin".into(),
        });
        Enforcer::new(&config, revocations).unwrap()
    }

    fn token(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn bearer(claims: serde_json::Value) -> Vec<(&'static str, String)> {
        vec![("authorization", format!("Bearer {}", token(claims)))]
    }

    fn ok(sub: &str, sid: &str) -> serde_json::Value {
        json!({"sub": sub, "sid": sid, "iat": NOW - 60, "exp": NOW + 600})
    }

    /// One row per rule: target, headers, store silence, the outcome in
    /// enforce mode and whether anything is stripped.
    #[test]
    fn one_row_per_rule() {
        struct Row {
            rule: &'static str,
            target: &'static str,
            headers: Vec<(&'static str, String)>,
            silent_ms: i64,
            outcome: Option<Outcome>,
            strips: bool,
        }
        let row = |rule, target, headers, silent_ms, outcome, strips| Row {
            rule,
            target,
            headers,
            silent_ms,
            outcome,
            strips,
        };
        let two = vec![
            ("authorization", format!("Bearer {}", token(ok("a", "s")))),
            ("authorization", "Bearer x".to_string()),
        ];
        let mut with_cookie = bearer(ok("a", "s"));
        with_cookie.push(("cookie", "session=other; theme=dark".into()));
        let control = bearer(json!({"sub": "a\u{1}", "sid": "s", "exp": NOW + 60}));
        let rows = vec![
            row(
                "reserved prefix",
                "/.sessiongate/sessions",
                vec![],
                0,
                None,
                false,
            ),
            row(
                "public canonical",
                "/pub/x",
                vec![],
                0,
                Some(Outcome::Public),
                false,
            ),
            row(
                "public, revoked token stripped",
                "/pub/x",
                bearer(ok("a", "revoked")),
                0,
                Some(Outcome::Public),
                true,
            ),
            row(
                "non-canonical is not public",
                "/pub/../x",
                vec![],
                0,
                Some(Outcome::MissingToken),
                false,
            ),
            row(
                "absolute-form is not public",
                "http://h/pub",
                vec![],
                0,
                Some(Outcome::MissingToken),
                false,
            ),
            row(
                "missing token",
                "/x",
                vec![],
                0,
                Some(Outcome::MissingToken),
                false,
            ),
            row(
                "allowed",
                "/x",
                bearer(ok("a", "s")),
                0,
                Some(Outcome::Allowed),
                false,
            ),
            row(
                "other credential stripped",
                "/x",
                with_cookie,
                0,
                Some(Outcome::Allowed),
                true,
            ),
            row(
                "ambiguous credentials",
                "/x",
                two,
                0,
                Some(Outcome::InvalidRequest),
                false,
            ),
            row(
                "bad token",
                "/x",
                vec![("authorization", "Bearer a.b.c".into())],
                0,
                Some(Outcome::InvalidToken),
                false,
            ),
            row(
                "expired",
                "/x",
                bearer(json!({"sid": "s", "exp": NOW - 60})),
                0,
                Some(Outcome::TokenExpired),
                false,
            ),
            row(
                "unrepresentable identity",
                "/x",
                control,
                0,
                Some(Outcome::InvalidToken),
                false,
            ),
            row(
                "revoked session",
                "/x",
                bearer(ok("a", "revoked")),
                0,
                Some(Outcome::SessionRevoked),
                false,
            ),
            row(
                "user cutoff",
                "/x",
                bearer(json!({"sub": "bob", "sid": "b1", "iat": NOW - 60, "exp": NOW + 60})),
                0,
                Some(Outcome::SessionRevoked),
                false,
            ),
            row(
                "cutoff exemption",
                "/x",
                bearer(json!({"sub": "bob", "sid": "kept", "iat": NOW - 60, "exp": NOW + 60})),
                0,
                Some(Outcome::Allowed),
                false,
            ),
            row(
                "token after the cutoff",
                "/x",
                bearer(json!({"sub": "bob", "sid": "b2", "iat": NOW - 5, "exp": NOW + 60})),
                0,
                Some(Outcome::Allowed),
                false,
            ),
            row(
                "store silent: fail closed",
                "/x",
                bearer(ok("a", "s")),
                5_001,
                Some(Outcome::StoreUnavailable),
                false,
            ),
            row(
                "store silent within the limit",
                "/x",
                bearer(ok("a", "s")),
                5_000,
                Some(Outcome::Allowed),
                false,
            ),
            row(
                "fail closed on public paths too",
                "/pub",
                vec![],
                5_001,
                Some(Outcome::StoreUnavailable),
                false,
            ),
        ];
        let enforce = enforcer("enforce");
        let monitor = enforcer("monitor");
        for r in rows {
            let mut headers = HeaderMap::new();
            for (k, v) in &r.headers {
                headers.append(*k, HeaderValue::from_str(v).unwrap());
            }
            let facts = Facts {
                target: r.target.as_bytes(),
                headers: &headers,
                now_s: NOW,
                store_silent_ms: r.silent_ms,
            };
            let v = enforce.decide(&facts);
            assert_eq!(v.outcome(), r.outcome, "{}", r.rule);
            assert_eq!(v.strip.is_some(), r.strips, "{}: strip", r.rule);
            assert_eq!(v.monitor_label, None, "{}", r.rule);
            let refused = matches!(v.decision, Decision::Refuse(_));
            assert_eq!(
                refused,
                !matches!(
                    r.outcome,
                    None | Some(Outcome::Public) | Some(Outcome::Allowed)
                ),
                "{}",
                r.rule
            );
            // Monitor mode: the same outcome, nothing refused or stripped,
            // the label for the app.
            let m = monitor.decide(&facts);
            assert_eq!(m.outcome(), r.outcome, "monitor: {}", r.rule);
            assert!(
                !matches!(m.decision, Decision::Refuse(_)),
                "monitor refused: {}",
                r.rule
            );
            assert_eq!(
                m.strip.is_some(),
                r.strips,
                "monitor strips as enforce does: {}",
                r.rule
            );
            assert_eq!(
                m.monitor_label,
                r.outcome.map(Outcome::label),
                "monitor: {}",
                r.rule
            );
        }
    }

    #[test]
    fn self_service_is_held_to_the_same_rules() {
        let e = enforcer("monitor");
        let mut h = HeaderMap::new();
        let control = token(json!({"sub": "a\u{1}", "sid": "s", "exp": NOW + 60}));
        h.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {control}")).unwrap(),
        );
        assert_eq!(
            e.authenticate(&h, NOW, 0),
            Err(Refusal::InvalidToken(TokenError::Malformed)),
            "unrepresentable"
        );
        let good = token(ok("a", "s"));
        h.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {good}")).unwrap(),
        );
        assert!(e.authenticate(&h, NOW, 0).is_ok());
        assert_eq!(
            e.authenticate(&h, NOW, 9_000),
            Err(Refusal::StoreUnavailable)
        );
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
