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
pub use refusal::{error_body, Forbidden, Outcome, Refusal, RenderedRefusal, StepUp};

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
            Decision::Refuse(r) | Decision::Monitored(r) => r.outcome(),
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
    refuse_new_location: bool,
    revoke_suspicious: bool,
    /// `[[enforcement.routes]]`, with their prefixes read the widest way.
    routes: Vec<crate::config::Route>,
    route_prefixes: crate::path::RoutePrefixes,
    /// The challenge of each route, built once.
    challenges: Vec<StepUp>,
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
            refuse_new_location: config.sessions.refuse_new_location,
            revoke_suspicious: config.sessions.revoke_suspicious,
            routes: config.enforcement.routes.clone(),
            route_prefixes: crate::path::RoutePrefixes::new(
                config.enforcement.routes.iter().map(|r| r.prefix.as_str()),
            ),
            challenges: config
                .enforcement
                .routes
                .iter()
                .map(|r| StepUp {
                    acr_values: (!r.acr_values.is_empty())
                        .then(|| std::sync::Arc::from(r.acr_values.join(" "))),
                    max_age: r.max_age_s,
                    reason: "",
                })
                .collect(),
        })
    }

    /// The step-up routes `path` falls under (every route for a target
    /// that is not origin-form: on the safe side), in config order, as a
    /// bit set (config allows at most 64 routes).
    fn routes_of(&self, path: Option<&[u8]>) -> u64 {
        if self.route_prefixes.is_empty() {
            return 0;
        }
        match path {
            Some(p) => self.route_prefixes.matching(p).fold(0, |m, i| m | 1 << i),
            None => u64::MAX >> (64 - self.routes.len()),
        }
    }

    /// The first route of `routes` that `token` falls short of, as its
    /// refusal: `acr` one of `acr_values` or `amr` holding one of
    /// `amr_any` (when either is set), and `auth_time` at most `max_age_s`
    /// old (when set; a missing or future `auth_time` falls short).
    fn step_up(&self, routes: u64, token: &VerifiedToken, now: i64) -> Option<Refusal> {
        (0..self.routes.len())
            .filter(|i| routes & 1 << i != 0)
            .find_map(|i| {
                let route = &self.routes[i];
                let class_ok = (route.acr_values.is_empty() && route.amr_any.is_empty())
                    || token
                        .acr
                        .as_deref()
                        .is_some_and(|acr| route.acr_values.iter().any(|v| v == acr))
                    || token
                        .amr
                        .iter()
                        .any(|m| route.amr_any.iter().any(|v| **v == **m));
                let reason = if !class_ok {
                    "a stronger authentication is required"
                } else {
                    match (route.max_age_s, token.auth_time) {
                        (None, _) => return None,
                        (Some(age), Some(t)) if t <= now && now - t <= age as i64 => return None,
                        _ => "a more recent authentication is required",
                    }
                };
                Some(Refusal::StepUp(StepUp {
                    reason,
                    ..self.challenges[i].clone()
                }))
            })
    }

    /// `sessions.reauth_max_age_s` for a self-service action: `auth_time`
    /// at most `max_age` old, else the same refusal a step-up route gives.
    pub fn fresh_enough(
        &self,
        token: &VerifiedToken,
        max_age: u64,
        now: i64,
    ) -> Result<(), Refusal> {
        match token.auth_time {
            Some(t) if t <= now && now - t <= max_age as i64 => Ok(()),
            _ => Err(Refusal::StepUp(StepUp {
                acr_values: None,
                max_age: Some(max_age),
                reason: "sign in again to continue",
            })),
        }
    }

    /// `sessions.on_suspicious = "revoke"`, in enforce mode: a session
    /// this request marked suspicious is revoked and the request refused
    /// (monitor mode refuses nothing: it is only marked).
    pub fn revokes_suspicious(&self) -> bool {
        self.revoke_suspicious && self.mode == Mode::Enforce
    }

    /// The rule decided once an allowed request's sighting is known (the
    /// session registry holds where a session has been): a session seen
    /// from a new country it has not confirmed is refused with
    /// `sessions.refuse_new_location` set. `None`: forward as decided; in
    /// monitor mode a [`Decision::Monitored`] verdict, forwarded under its
    /// label.
    pub fn after_sighting(&self, unconfirmed_new_location: bool) -> Option<Verdict> {
        if !(self.refuse_new_location && unconfirmed_new_location) {
            return None;
        }
        let verdict = Verdict::bare(Decision::Refuse(Refusal::NewLocation));
        Some(match self.mode {
            Mode::Enforce => verdict,
            Mode::Monitor => verdict.monitored(),
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
        // A step-up route is never public, however the paths overlap.
        let routes = self.routes_of(path);
        let public = routes == 0 && path.is_some_and(|p| self.public.matches(p));
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
        let checked = checked.and_then(|token| match self.step_up(routes, &token, facts.now_s) {
            Some(refusal) => Err(refusal),
            None => Ok(token),
        });
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
mod tests;
