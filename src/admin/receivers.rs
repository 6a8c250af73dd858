//! The receivers on the proxy listener for what identity providers send:
//! OIDC back-channel logout tokens at [`BACKCHANNEL_LOGOUT`], Shared
//! Signals SETs at [`SSF_EVENTS`]. Each checks its token
//! ([`crate::idp::logout`], [`crate::idp::ssf`]), then revokes through the
//! authority (durable before the answer, closed on every gateway).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};

use super::selfservice::{Request, Response};
use super::{bearer_matches, digest};
use crate::audit::{Action, AuditEntry};
use crate::authority::{Actor, Authority};
use crate::enforcement::Refusal;
use crate::idp::keys::{IdpKeys, KeysFrom};
use crate::idp::logout::{
    check_logout_token, logout_token_field, LogoutError, LogoutRules, LogoutTarget,
};
use crate::idp::replay::ReplayCache;
use crate::idp::settings::{IdpConfig, SsfConfig};
use crate::idp::ssf::{self, check_set, SetError, SetRules, Subject, UserRef};
use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::token::TokenError;

/// Where the IdP posts logout tokens (register it as the client's
/// back-channel logout URI).
pub const BACKCHANNEL_LOGOUT: &str = "/.sessiongate/backchannel-logout";
/// Where a Shared Signals transmitter pushes SETs (the stream's endpoint).
pub const SSF_EVENTS: &str = "/.sessiongate/ssf/events";
/// The audit reason of a back-channel logout.
pub const BACKCHANNEL_REASON: &str = "backchannel_logout";
/// How long a token naming an unknown `kid` waits for its issuer's keys to
/// be fetched again.
const UNKNOWN_KID_WAIT: Duration = Duration::from_secs(5);

/// The back-channel logout receiver's settings.
struct Backchannel {
    keys: Arc<IdpKeys>,
    issuer: String,
    audiences: Vec<String>,
}

/// The Shared Signals receiver's settings.
struct Signals {
    keys: Arc<IdpKeys>,
    audience: String,
    /// SHA-256 of the push bearer token (compared in constant time).
    push_digest: [u8; 32],
}

/// The receivers and what they act with.
pub struct Receivers {
    backchannel: Option<Backchannel>,
    signals: Option<Signals>,
    authority: Arc<Authority>,
    metrics: Arc<Metrics>,
    replay: ReplayCache,
    leeway_s: i64,
    /// `token.user_claim`: what a logout token's `sub` or a SET's subject
    /// is matched against.
    user_claim: String,
    /// `token.issuer`: an `iss_sub` subject must name it, when set.
    token_issuer: Option<String>,
}

fn answer(status: StatusCode) -> Response {
    Response {
        status,
        headers: vec![(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        body: Bytes::new(),
        outcome: None,
    }
}

/// What a receiver did with a token that passed.
enum Done {
    /// Revoked a session or cut off a user.
    Revoked,
    /// Named a user the gateway cannot match; audited, nothing revoked.
    Unmatched,
    /// Nothing to do (the verification event, an event not acted on).
    Acknowledged,
}

impl Done {
    fn label(&self) -> &'static str {
        match self {
            Done::Revoked => "revoked",
            Done::Unmatched => "unmatched",
            Done::Acknowledged => "acknowledged",
        }
    }
}

fn content_type_is(req: &Request<'_>, want: &str) -> bool {
    req.headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(want))
}

impl Receivers {
    /// No receiver yet: their paths answer 404 until added.
    pub fn new(
        authority: Arc<Authority>,
        metrics: Arc<Metrics>,
        leeway_s: u64,
        user_claim: &str,
        token_issuer: Option<&str>,
    ) -> Receivers {
        Receivers {
            backchannel: None,
            signals: None,
            authority,
            metrics,
            replay: ReplayCache::default(),
            leeway_s: leeway_s.min(i64::MAX as u64) as i64,
            user_claim: user_claim.to_string(),
            token_issuer: token_issuer.map(String::from),
        }
    }

    /// The back-channel logout receiver of `config` (when it is on).
    pub fn with_backchannel(mut self, keys: Arc<IdpKeys>, config: &IdpConfig) -> Receivers {
        if let (true, Some(issuer)) = (config.backchannel_logout, &config.issuer) {
            self.backchannel = Some(Backchannel {
                keys,
                issuer: issuer.clone(),
                audiences: config.audiences.clone(),
            });
        }
        self
    }

    /// The Shared Signals receiver of `config`.
    pub fn with_signals(mut self, keys: Arc<IdpKeys>, config: &SsfConfig) -> Receivers {
        self.signals = Some(Signals {
            keys,
            audience: config.audience.clone(),
            push_digest: digest(config.push_token.as_bytes()),
        });
        self
    }

    /// Answers `req` when its path is a receiver's; `None` otherwise.
    pub async fn handle(&self, req: &Request<'_>) -> Option<Response> {
        let (name, result) = match req.path {
            BACKCHANNEL_LOGOUT => ("backchannel_logout", self.backchannel(req).await),
            SSF_EVENTS => ("ssf", self.signals(req).await),
            _ => return None,
        };
        let label = result.as_ref().map_or("refused", |(_, done)| done.label());
        self.metrics
            .idp_events
            .with_label_values(&[name, label])
            .inc();
        Some(match result {
            Ok((status, _)) => answer(status),
            Err(refusal) => {
                tracing::warn!(receiver = name, error = %refusal.description(), "refused");
                Response::refused(&refusal, None, None)
            }
        })
    }

    async fn backchannel(&self, req: &Request<'_>) -> Result<(StatusCode, Done), Refusal> {
        let Some(bc) = &self.backchannel else {
            return Err(Refusal::NotFound(
                "no back-channel logout receiver is configured".into(),
            ));
        };
        if *req.method != Method::POST {
            return Err(Refusal::MethodNotAllowed("POST"));
        }
        if !content_type_is(req, "application/x-www-form-urlencoded") {
            return Err(Refusal::InvalidLogoutToken(
                "the body must be application/x-www-form-urlencoded".into(),
            ));
        }
        let invalid = |e: LogoutError| Refusal::InvalidLogoutToken(e.to_string());
        let token = logout_token_field(req.body).map_err(invalid)?;
        if bc.keys.status().from == KeysFrom::Nowhere {
            return Err(Refusal::KeysUnavailable);
        }
        let rules = LogoutRules {
            issuer: &bc.issuer,
            audiences: &bc.audiences,
            leeway_s: self.leeway_s,
        };
        let now = req.now_ms.div_euclid(1000);
        let check = |keys: &IdpKeys| {
            check_logout_token(&keys.keys(), token.as_bytes(), &rules, &self.replay, now)
        };
        let mut checked = check(&bc.keys);
        if checked == Err(LogoutError::Jws(TokenError::NoMatchingKey))
            && bc.keys.refetch_for_unknown_kid(UNKNOWN_KID_WAIT).await
        {
            // The IdP may have rotated its keys since the last fetch.
            checked = check(&bc.keys);
        }
        let order = checked.map_err(invalid)?;
        let actor = Actor::issuer("idp", &order.issuer, Some(req.client_ip.to_string()));
        let user = match &order.target {
            LogoutTarget::Session(sid) => Target::Session(sid.clone()),
            LogoutTarget::User(sub) if self.user_claim == "sub" => Target::User(sub.clone()),
            LogoutTarget::User(sub) => Target::Unmatched(format!("user:{sub}")),
        };
        self.act(user, None, BACKCHANNEL_REASON, &actor, req.now_ms)
            .await
            .map(|done| (StatusCode::OK, done))
            .map_err(|e| {
                // Not acted on: the IdP may send the same token again.
                self.replay.release(&order.issuer, &order.jti);
                Refusal::StoreFailed(e.to_string())
            })
    }

    async fn signals(&self, req: &Request<'_>) -> Result<(StatusCode, Done), Refusal> {
        let Some(sig) = &self.signals else {
            return Err(Refusal::NotFound(
                "no Shared Signals receiver is configured".into(),
            ));
        };
        if *req.method != Method::POST {
            return Err(Refusal::MethodNotAllowed("POST"));
        }
        if !bearer_matches(req.headers, &sig.push_digest) {
            return Err(set_refusal(SetError::AccessDenied));
        }
        if !content_type_is(req, "application/secevent+jwt") {
            return Err(set_refusal(SetError::InvalidRequest(
                "Content-Type must be application/secevent+jwt".into(),
            )));
        }
        if sig.keys.status().from == KeysFrom::Nowhere {
            return Err(Refusal::KeysUnavailable);
        }
        let issuer = sig.keys.source().issuer.clone().unwrap_or_default();
        let rules = SetRules {
            issuer: &issuer,
            audience: &sig.audience,
            leeway_s: self.leeway_s,
        };
        let now = req.now_ms.div_euclid(1000);
        let body = req.body.trim_ascii();
        let check = |keys: &IdpKeys| check_set(&keys.keys(), body, &rules, &self.replay, now);
        let mut checked = check(&sig.keys);
        if matches!(checked, Err(SetError::InvalidKey(_)))
            && sig.keys.refetch_for_unknown_kid(UNKNOWN_KID_WAIT).await
        {
            checked = check(&sig.keys);
        }
        let set = checked.map_err(set_refusal)?;
        let actor = Actor::issuer("ssf", &set.issuer, Some(req.client_ip.to_string()));
        let (target, reason) = match set.event_type.as_str() {
            ssf::SESSION_REVOKED => (
                self.target_of(set.subject.as_ref(), true),
                "session_revoked",
            ),
            ssf::CREDENTIAL_CHANGE => (
                self.target_of(set.subject.as_ref(), false),
                "credential_change",
            ),
            ssf::VERIFICATION => {
                tracing::info!(issuer = %set.issuer, state = ?set.state, "Shared Signals stream verified");
                return Ok((StatusCode::ACCEPTED, Done::Acknowledged));
            }
            other => {
                tracing::info!(issuer = %set.issuer, event = other, "Shared Signals event acknowledged, not acted on");
                return Ok((StatusCode::ACCEPTED, Done::Acknowledged));
            }
        };
        self.act(target, Some(set.at), reason, &actor, req.now_ms)
            .await
            .map(|done| (StatusCode::ACCEPTED, done))
            .map_err(|e| {
                self.replay.release(&set.issuer, &set.jti);
                Refusal::StoreFailed(e.to_string())
            })
    }

    /// What an event about `subject` acts on: its session when
    /// `session_first` and it names one, else its user when the user can
    /// be matched to `token.user_claim`.
    fn target_of(&self, subject: Option<&Subject>, session_first: bool) -> Target {
        let user = |u: &UserRef| match u {
            UserRef::IssSub { iss, sub }
                if self.user_claim == "sub"
                    && self.token_issuer.as_deref().is_none_or(|t| t == iss) =>
            {
                Target::User(sub.clone())
            }
            UserRef::Email(e) if self.user_claim == "email" => Target::User(e.clone()),
            UserRef::IssSub { sub, .. } => Target::Unmatched(format!("user:{sub}")),
            UserRef::Email(e) => Target::Unmatched(format!("email:{e}")),
        };
        match subject {
            Some(Subject::Session { id, .. }) if session_first => Target::Session(id.clone()),
            Some(Subject::Session { user: Some(u), .. }) | Some(Subject::User(u)) => user(u),
            Some(Subject::Session { id, user: None }) => Target::Session(id.clone()),
            Some(Subject::Other(format)) => Target::Unmatched(format!("subject:{format}")),
            None => Target::Unmatched("subject:none".into()),
        }
    }

    async fn act(
        &self,
        target: Target,
        at_s: Option<i64>,
        reason: &str,
        actor: &Actor,
        now_ms: i64,
    ) -> Result<Done, StoreError> {
        match target {
            Target::Session(sid) => {
                self.authority
                    .revoke_session(&sid, None, reason, actor)
                    .await?;
                Ok(Done::Revoked)
            }
            Target::User(user) => {
                self.authority
                    .revoke_user_issued_before(&user, None, at_s, reason, actor)
                    .await?;
                Ok(Done::Revoked)
            }
            Target::Unmatched(what) => {
                self.authority
                    .record(AuditEntry {
                        at_ms: now_ms,
                        actor: actor.name.clone(),
                        actor_ip: actor.ip.clone(),
                        action: Action::UnmatchedEvent,
                        target: what,
                        reason: reason.into(),
                    })
                    .await?;
                Ok(Done::Unmatched)
            }
        }
    }
}

/// What an event revokes.
enum Target {
    Session(String),
    User(String),
    /// Nothing the gateway can match (audited as `unmatched_event`).
    Unmatched(String),
}

fn set_refusal(e: SetError) -> Refusal {
    Refusal::SetRefused {
        err: e.code(),
        description: e.to_string(),
    }
}
