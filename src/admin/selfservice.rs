//! Self-service on the proxy listener: the user's own
//! sessions as a page or JSON, and logging one of them out, or all others.
//!
//! Authenticated by the user's own session token, like any request. A user
//! only ever sees and touches sessions whose user id is theirs: anything
//! else is 404. Every POST carries a CSRF token bound to the current
//! session (HMAC with a secret shared through the store), as the header
//! `X-CSRF-Token` or the form field `csrf_token`.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::page::{self, Notice, PageData};
use super::receivers::Receivers;
use crate::authority::{Actor, Authority};
use crate::clock;
use crate::enforcement::{Decision, Enforcer, Forbidden, Outcome, Refusal};
use crate::sessions::{self, SessionInfo, SessionRegistry, Sighting};
use crate::token::VerifiedToken;

/// Where the page lives.
pub const PAGE: &str = "/.sessiongate/sessions";
const LOGOUT_OTHERS: &str = "/.sessiongate/logout-others";

/// A request to a self-service path, as plain data.
#[derive(Debug)]
pub struct Request<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request path (under `/.sessiongate/`).
    pub path: &'a str,
    /// The query string, without the `?`.
    pub query: Option<&'a str>,
    /// The request headers: the token, `Accept`, the CSRF token.
    pub headers: &'a HeaderMap,
    /// The whole request body (a form post's `csrf_token` is read from it).
    pub body: &'a [u8],
    /// The client address, recorded for audit entries and the session.
    pub client_ip: IpAddr,
    /// When the request arrived (UNIX milliseconds).
    pub now_ms: i64,
    /// Milliseconds since the store last answered (fail-closed).
    pub store_silent_ms: i64,
}

pub use super::reply::Response;
use super::reply::{common_headers, error, html_response, json_response, wants_json};

/// One routed action.
enum Route {
    List,
    Revoke(String),
    Confirm(String),
    LogoutOthers,
}

const NO_SUCH_SESSION: Refusal = Refusal::NotFound(Cow::Borrowed("no such session"));
const NO_SUCH_PAGE: Refusal = Refusal::NotFound(Cow::Borrowed("no such page"));

fn route(method: &Method, path: &str) -> Result<Route, Refusal> {
    if path == PAGE || path == "/.sessiongate/sessions/" {
        return match *method {
            Method::GET | Method::HEAD => Ok(Route::List),
            _ => Err(Refusal::MethodNotAllowed("GET, HEAD")),
        };
    }
    if path == LOGOUT_OTHERS {
        return match *method {
            Method::POST => Ok(Route::LogoutOthers),
            _ => Err(Refusal::MethodNotAllowed("POST")),
        };
    }
    if let Some(rest) = path.strip_prefix("/.sessiongate/sessions/") {
        let (sid, action) = rest.rsplit_once('/').ok_or(NO_SUCH_PAGE)?;
        let sid = percent_encoding::percent_decode_str(sid)
            .decode_utf8()
            .map_err(|_| NO_SUCH_PAGE)?
            .into_owned();
        if sid.is_empty() || sid.len() > crate::admin::MAX_ID_BYTES {
            return Err(NO_SUCH_PAGE);
        }
        let r = match action {
            "revoke" => Route::Revoke(sid),
            "confirm" => Route::Confirm(sid),
            _ => return Err(NO_SUCH_PAGE),
        };
        return match *method {
            Method::POST => Ok(r),
            _ => Err(Refusal::MethodNotAllowed("POST")),
        };
    }
    Err(NO_SUCH_PAGE)
}

/// Self-service: pages, JSON and actions.
pub struct SelfService {
    enforcer: Arc<Enforcer>,
    sessions: Arc<SessionRegistry>,
    authority: Arc<Authority>,
    csrf_key: tokio::sync::OnceCell<hmac::Key>,
    login_url: Option<HeaderValue>,
    receivers: Option<Receivers>,
    /// `sessions.reauth_max_age_s`.
    reauth_max_age: Option<u64>,
}

impl std::fmt::Debug for SelfService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfService").finish_non_exhaustive()
    }
}

impl SelfService {
    /// The authority every write of the gateway goes through.
    pub fn authority(&self) -> &Arc<Authority> {
        &self.authority
    }

    /// Self-service authenticating with `enforcer`, listing from `sessions`
    /// and the store, revoking through `authority`; refused browser requests
    /// go to `login_url` (`enforcement.login_url`) when it is set.
    pub fn new(
        enforcer: Arc<Enforcer>,
        sessions: Arc<SessionRegistry>,
        authority: Arc<Authority>,
        login_url: Option<HeaderValue>,
    ) -> SelfService {
        SelfService {
            enforcer,
            sessions,
            authority,
            csrf_key: tokio::sync::OnceCell::new(),
            login_url,
            receivers: None,
            reauth_max_age: None,
        }
    }

    /// The same, with the actions needing an `auth_time` at most
    /// `max_age` seconds old (`sessions.reauth_max_age_s`).
    pub fn with_reauth(mut self, max_age: Option<u64>) -> SelfService {
        self.reauth_max_age = max_age;
        self
    }

    /// The refusal a self-service action gets from this session, when its
    /// sign-in is too old.
    fn stale(&self, token: &VerifiedToken, now_ms: i64) -> Option<Refusal> {
        let max_age = self.reauth_max_age?;
        self.enforcer
            .fresh_enough(token, max_age, now_ms.div_euclid(1000))
            .err()
    }

    /// The same, answering the IdP's receivers' paths with `receivers`.
    pub fn with_receivers(mut self, receivers: Receivers) -> SelfService {
        self.receivers = Some(receivers);
        self
    }

    async fn csrf_key(&self) -> Result<&hmac::Key, crate::store::StoreError> {
        self.csrf_key
            .get_or_try_init(|| async {
                let secret = self.authority.store().secret("csrf").await?;
                Ok(hmac::Key::new(hmac::HMAC_SHA256, &secret))
            })
            .await
    }

    /// The CSRF token of a session.
    async fn csrf_token(&self, session_id: &str) -> Result<String, crate::store::StoreError> {
        let key = self.csrf_key().await?;
        let tag = hmac::sign(key, format!("csrf\0{session_id}").as_bytes());
        Ok(URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The session's sessions, as the user may see them: theirs, not revoked.
    async fn visible(&self, user: &str) -> Result<Vec<SessionInfo>, crate::store::StoreError> {
        self.authority
            .sessions_in_force(user, self.sessions.for_user(user))
            .await
    }

    /// A session of `user`, or `None` (also when it belongs to someone else).
    async fn owned(&self, user: &str, session_id: &str) -> Option<SessionInfo> {
        let info = match self.sessions.get(session_id) {
            Some(s) => Some(s),
            None => self
                .authority
                .store()
                .session(session_id)
                .await
                .ok()
                .flatten()
                .map(|r| sessions::merge(vec![r], Vec::new()).remove(0)),
        }?;
        (info.user_id.as_deref() == Some(user)).then_some(info)
    }

    /// Answers one self-service request.
    pub async fn handle(&self, req: &Request<'_>) -> Response {
        if let Some(receivers) = &self.receivers {
            if let Some(resp) = receivers.handle(req).await {
                return resp;
            }
        }
        let route = match route(req.method, req.path) {
            Ok(r) => r,
            Err(refusal) => return error(req.headers, &refusal, None),
        };
        let token = match self.enforcer.authenticate(
            req.headers,
            req.now_ms.div_euclid(1000),
            req.store_silent_ms,
        ) {
            Ok(t) => t,
            Err(refusal) => return self.refused(req, &refusal),
        };
        let observed = self.sessions.observe(&Sighting {
            session_id: &token.session_id,
            session_key: token.session_key,
            user_id: token.user_id.as_deref(),
            iat: token.iat,
            exp: token.exp,
            ip: req.client_ip,
            user_agent: req
                .headers
                .get(header::USER_AGENT)
                .map(|v| v.as_bytes())
                .unwrap_or(b""),
            now_ms: req.now_ms,
        });
        for entry in [observed.new_location.clone(), observed.created.clone()]
            .into_iter()
            .flatten()
        {
            self.authority.record_later(entry);
        }
        if let Some((_, entry)) = observed.suspicious.clone() {
            let revoke = self.enforcer.revokes_suspicious();
            match self
                .authority
                .suspicious(entry, &token.session_id, token.exp, revoke)
                .await
            {
                Ok(None) => {}
                Ok(Some(r)) => {
                    return self.refused(
                        req,
                        &Refusal::Revoked(crate::revocation::Revoked {
                            revoked_at_ms: r.revoked_at_ms,
                            reason: r.reason.as_str().into(),
                        }),
                    )
                }
                Err(_) if revoke => return self.refused(req, &Refusal::StoreUnavailable),
                Err(e) => tracing::warn!(error = %e, "cannot record a suspicious session"),
            }
        }
        let Some(user) = token.user_id.clone() else {
            return error(
                req.headers,
                &Refusal::Forbidden(Forbidden::NoUser),
                Some(Outcome::Allowed),
            );
        };
        if let Some(Decision::Refuse(refusal)) = self
            .enforcer
            .after_sighting(observed.unconfirmed_new_location)
            .map(|v| v.decision)
        {
            return self.refused(req, &refusal);
        }
        if !matches!(route, Route::List) {
            if let Some(refusal) = self.stale(&token, req.now_ms) {
                return self.refused(req, &refusal);
            }
        }
        let result = match route {
            Route::List => self.list(req, &token, &user).await,
            Route::Revoke(sid) => {
                if let Some(r) = self.check_csrf(req, &token).await {
                    return r;
                }
                self.revoke(req, &user, &sid).await
            }
            Route::Confirm(sid) => {
                if let Some(r) = self.check_csrf(req, &token).await {
                    return r;
                }
                self.confirm(req, &token, &user, &sid).await
            }
            Route::LogoutOthers => {
                if let Some(r) = self.check_csrf(req, &token).await {
                    return r;
                }
                self.logout_others(req, &token, &user).await
            }
        };
        result.unwrap_or_else(|e| {
            error(
                req.headers,
                &Refusal::StoreFailed(e.to_string()),
                Some(Outcome::Allowed),
            )
        })
    }

    fn refused(&self, req: &Request<'_>, refusal: &Refusal) -> Response {
        let login_url = self.login_url.as_ref().filter(|_| !wants_json(req.headers));
        Response::refused(refusal, login_url, refusal.outcome())
    }

    async fn check_csrf(&self, req: &Request<'_>, token: &VerifiedToken) -> Option<Response> {
        let presented = req
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| {
                let is_form = req
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
                is_form
                    .then(|| {
                        form_urlencoded::parse(req.body)
                            .find(|(k, _)| k == "csrf_token")
                            .map(|(_, v)| v.into_owned())
                    })
                    .flatten()
            });
        let expected = match self.csrf_token(&token.session_id).await {
            Ok(t) => t,
            Err(e) => {
                return Some(error(
                    req.headers,
                    &Refusal::StoreFailed(e.to_string()),
                    Some(Outcome::Allowed),
                ))
            }
        };
        let ok = presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.as_bytes())));
        (!ok).then(|| {
            error(
                req.headers,
                &Refusal::Forbidden(Forbidden::CsrfTokenInvalid),
                Some(Outcome::Allowed),
            )
        })
    }

    fn done(&self, req: &Request<'_>, notice: Notice, value: serde_json::Value) -> Response {
        if wants_json(req.headers) {
            return json_response(StatusCode::OK, value, Some(Outcome::Allowed));
        }
        let mut headers = common_headers("text/plain; charset=utf-8");
        let location = format!("{PAGE}?done={}", notice.key());
        if let Ok(v) = HeaderValue::from_str(&location) {
            headers.push((header::LOCATION, v));
        }
        Response {
            status: StatusCode::SEE_OTHER,
            headers,
            body: Bytes::from_static(b"See /.sessiongate/sessions\n"),
            outcome: Some(Outcome::Allowed),
        }
    }

    async fn list(
        &self,
        req: &Request<'_>,
        token: &VerifiedToken,
        user: &str,
    ) -> Result<Response, crate::store::StoreError> {
        let visible = self.visible(user).await?;
        let csrf = self.csrf_token(&token.session_id).await?;
        let stale = self.stale(token, req.now_ms);
        if wants_json(req.headers) {
            let list: Vec<serde_json::Value> = visible
                .iter()
                .map(|s| s.view(None, Some(s.session_id == token.session_id)))
                .collect();
            return Ok(json_response(
                StatusCode::OK,
                json!({
                    "user_id": user,
                    "current_session_id": token.session_id,
                    "csrf_token": csrf,
                    "reauth_required": stale.is_some(),
                    "sessions": list,
                }),
                Some(Outcome::Allowed),
            ));
        }
        let html = page::render(&PageData {
            user_id: user,
            current_session_id: &token.session_id,
            csrf_token: &csrf,
            sessions: &visible,
            now_ms: req.now_ms,
            notice: Notice::from_query(req.query),
            reauth: stale
                .as_ref()
                .map(|r| {
                    self.login_url
                        .as_ref()
                        .map(|u| r.login_location(u))
                        .and_then(|v| v.to_str().ok().map(String::from))
                })
                .as_ref()
                .map(|l| l.as_deref()),
        });
        Ok(html_response(StatusCode::OK, html, Some(Outcome::Allowed)))
    }

    async fn revoke(
        &self,
        req: &Request<'_>,
        user: &str,
        sid: &str,
    ) -> Result<Response, crate::store::StoreError> {
        let Some(target) = self.owned(user, sid).await else {
            return Ok(error(req.headers, &NO_SUCH_SESSION, Some(Outcome::Allowed)));
        };
        let actor = Actor::user(user, Some(req.client_ip.to_string()));
        let r = self
            .authority
            .revoke_session(
                &target.session_id,
                target.exp,
                "logged out by the user",
                &actor,
            )
            .await?;
        Ok(self.done(
            req,
            Notice::LoggedOut,
            json!({
                "session_id": r.session_id,
                "revoked_at": clock::rfc3339_ms(r.revoked_at_ms),
                "reason": r.reason,
            }),
        ))
    }

    async fn confirm(
        &self,
        req: &Request<'_>,
        token: &VerifiedToken,
        user: &str,
        sid: &str,
    ) -> Result<Response, crate::store::StoreError> {
        let Some(target) = self.owned(user, sid).await else {
            return Ok(error(req.headers, &NO_SUCH_SESSION, Some(Outcome::Allowed)));
        };
        if target.session_id == token.session_id {
            return Ok(error(
                req.headers,
                &Refusal::Forbidden(Forbidden::ConfirmFromAnotherSession),
                Some(Outcome::Allowed),
            ));
        }
        let marked_live = self.sessions.confirm_location(&target.session_id);
        let actor = Actor::user(user, Some(req.client_ip.to_string()));
        if !self
            .authority
            .confirm_location(&target.session_id, marked_live, &actor, req.now_ms)
            .await?
        {
            return Ok(error(req.headers, &NO_SUCH_SESSION, Some(Outcome::Allowed)));
        }
        Ok(self.done(
            req,
            Notice::Confirmed,
            json!({"session_id": target.session_id, "confirmed": true}),
        ))
    }

    async fn logout_others(
        &self,
        req: &Request<'_>,
        token: &VerifiedToken,
        user: &str,
    ) -> Result<Response, crate::store::StoreError> {
        let actor = Actor::user(user, Some(req.client_ip.to_string()));
        let c = self
            .authority
            .revoke_user(
                user,
                Some(&token.session_id),
                "logged out all other sessions",
                &actor,
            )
            .await?;
        Ok(self.done(
            req,
            Notice::LoggedOutOthers,
            json!({
                "user_id": c.user_id,
                "not_before": clock::rfc3339_s(c.not_before),
                "except": c.except,
            }),
        ))
    }
}
