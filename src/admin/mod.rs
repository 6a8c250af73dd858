//! The admin API on its own listener: revoke sessions and users, list
//! revocations and the audit trail, health, readiness, metrics, and its own
//! OpenAPI description. `/v1/*` (except `/v1/openapi.json`) needs the admin
//! bearer token, compared in constant time.

use std::sync::Arc;

use async_trait::async_trait;
use http::{header, Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde::Serialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::authority::{Actor, Authority, Readiness};
use crate::clock;
use crate::idp::keys::{IdpKeys, KeysFrom};
use crate::metrics::Metrics;
use crate::revocation::RevocationView;
use crate::sessions::{self, SessionInfo, SessionRegistry};

mod input;
pub mod page;
pub mod receivers;
mod reply;
pub mod selfservice;

use crate::enforcement::Refusal;
use input::{bad_request, checked_id, segments, store_failed, ApiError};
pub use input::{is_local_host, Query};

/// The OpenAPI 3 document served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Longest accepted session or user id.
pub const MAX_ID_BYTES: usize = 512;
/// Longest accepted revocation reason.
pub const MAX_REASON_BYTES: usize = 1024;
/// Default `limit` of list endpoints.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest `limit` of list endpoints (from 1 to this, else 400).
pub const MAX_LIMIT: usize = 1000;
/// Request bodies are not used; at most this much is drained.
const MAX_BODY_BYTES: usize = 64 * 1024;

type ApiResult = Result<Response<Vec<u8>>, ApiError>;

/// The admin listener's HTTP application.
pub struct AdminApp {
    authority: Arc<Authority>,
    sessions: Arc<SessionRegistry>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    /// SHA-256 of the admin token: comparing digests keeps the comparison
    /// constant-time whatever the presented token's length.
    token_digest: Option<[u8; 32]>,
    /// The listener's own address, a `Host` always accepted.
    listener: std::net::SocketAddr,
    /// The IdP's keys, for `/readyz` and `sessiongate_jwks_age_seconds`.
    idp: Option<Arc<IdpKeys>>,
}

/// The request's `Authorization: Bearer` token has the SHA-256 `expected`,
/// compared in constant time (the admin token, a transmitter's push token).
pub(super) fn bearer_matches(headers: &http::HeaderMap, expected: &[u8; 32]) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .and_then(|v| (v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer ")).then(|| &v[7..]))
        .is_some_and(|t| bool::from(digest(t).ct_eq(expected)))
}

/// SHA-256 of `bytes`: secrets are compared as digests, in constant time
/// whatever the presented value's length.
pub(super) fn digest(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Vec<u8>> {
    let mut body = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    body.push(b'\n');
    bytes_response(status, "application/json", body)
}

fn bytes_response(
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
) -> Response<Vec<u8>> {
    let len = body.len();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    h.insert(header::CONTENT_LENGTH, len.into());
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

fn error_response(e: ApiError) -> Response<Vec<u8>> {
    let r = e.render(None, false);
    let mut body = r.body.to_vec();
    body.push(b'\n');
    let mut resp = bytes_response(r.status, "application/json", body);
    for (name, value) in r.headers {
        resp.headers_mut().insert(name, value);
    }
    resp
}

fn nullable(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn method_not_allowed(allow: &'static str) -> ApiResult {
    Err(Refusal::MethodNotAllowed(allow))
}

impl AdminApp {
    /// The admin API. `token`: the bearer token `/v1/*` requires (`None`:
    /// none, and only requests naming this host are answered); `listener`:
    /// the admin listener's own address.
    pub fn new(
        authority: Arc<Authority>,
        sessions: Arc<SessionRegistry>,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
        token: Option<&str>,
        listener: std::net::SocketAddr,
    ) -> AdminApp {
        AdminApp {
            authority,
            sessions,
            metrics,
            readiness,
            token_digest: token.map(|t| digest(t.as_bytes())),
            listener,
            idp: None,
        }
    }

    /// The same, reporting the IdP's keys in `/readyz` and `/metrics`.
    pub fn with_idp(mut self, idp: Option<Arc<IdpKeys>>) -> AdminApp {
        self.idp = idp;
        self
    }

    /// Without an admin token (loopback only), only requests naming this
    /// host are answered: `localhost`, a loopback address or the listener's
    /// own address, with or without a port. A web page that rebinds its
    /// own name to 127.0.0.1 sends its own name, and gets nothing.
    fn host_allowed(&self, session: &ServerSession) -> bool {
        if self.token_digest.is_some() {
            return true;
        }
        let req = session.req_header();
        let mut hosts = req.headers.get_all(header::HOST).iter();
        match (hosts.next(), hosts.next()) {
            (Some(h), None) => h
                .to_str()
                .is_ok_and(|h| is_local_host(h, self.listener.ip())),
            // No Host at all (HTTP/1.0 health checks): a browser always
            // sends one, so this is no page in a browser.
            (None, None) => req
                .uri
                .authority()
                .is_none_or(|a| is_local_host(a.as_str(), self.listener.ip())),
            _ => false,
        }
    }

    fn authorized(&self, session: &ServerSession) -> bool {
        let Some(expected) = &self.token_digest else {
            return true; // only possible on a loopback listener (config enforces it)
        };
        bearer_matches(&session.req_header().headers, expected)
    }

    async fn route(&self, session: &mut ServerSession) -> ApiResult {
        if !self.host_allowed(session) {
            return Err(Refusal::MisdirectedRequest);
        }
        let method = session.req_header().method.clone();
        let uri = session.req_header().uri.clone();
        let path = uri.path();
        let query = uri.query();
        match path {
            "/healthz" => {
                return match method {
                    Method::GET | Method::HEAD => {
                        Ok(json_response(StatusCode::OK, &json!({"status": "ok"})))
                    }
                    _ => method_not_allowed("GET, HEAD"),
                }
            }
            "/readyz" => {
                return match method {
                    Method::GET | Method::HEAD => Ok(self.readyz().await),
                    _ => method_not_allowed("GET, HEAD"),
                }
            }
            "/metrics" => {
                return match method {
                    Method::GET | Method::HEAD => {
                        if let Some(age) = self.idp.as_ref().and_then(|i| i.age_s(clock::now_ms()))
                        {
                            self.metrics.jwks_age_seconds.set(age);
                        }
                        Ok(bytes_response(
                            StatusCode::OK,
                            "text/plain; version=0.0.4",
                            self.metrics.render(),
                        ))
                    }
                    _ => method_not_allowed("GET, HEAD"),
                }
            }
            "/v1/openapi.json" => {
                return match method {
                    Method::GET | Method::HEAD => Ok(bytes_response(
                        StatusCode::OK,
                        "application/json",
                        OPENAPI.as_bytes().to_vec(),
                    )),
                    _ => method_not_allowed("GET, HEAD"),
                }
            }
            _ => {}
        }
        if !path.starts_with("/v1/") {
            return Err(Refusal::NotFound("no such endpoint".into()));
        }
        if !self.authorized(session) {
            return Err(Refusal::AdminUnauthorized);
        }
        let actor = Actor::admin(
            session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip().to_string()),
        );
        let segs = segments(path)?;
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        match segs.as_slice() {
            ["v1", "sessions", sid] => match method {
                Method::DELETE => {
                    let q = Query::parse_api(query, &["reason"])?;
                    self.revoke_session(checked_id("session id", sid)?, q.reason()?, &actor)
                        .await
                }
                Method::GET => {
                    Query::parse_api(query, &[])?;
                    self.session(checked_id("session id", sid)?).await
                }
                _ => method_not_allowed("GET, DELETE"),
            },
            ["v1", "users", sub, "sessions"] => match method {
                Method::GET => {
                    Query::parse_api(query, &[])?;
                    self.user_sessions(checked_id("user id", sub)?).await
                }
                Method::DELETE => {
                    let q = Query::parse_api(query, &["reason", "except"])?;
                    let except = match q.get("except") {
                        Some(e) => Some(checked_id("except", e)?),
                        None => None,
                    };
                    self.revoke_user(checked_id("user id", sub)?, except, q.reason()?, &actor)
                        .await
                }
                _ => method_not_allowed("GET, DELETE"),
            },
            ["v1", "revocations"] => match method {
                Method::GET => {
                    let q = Query::parse_api(query, &["limit"])?;
                    self.revocations(q.limit()?).await
                }
                _ => method_not_allowed("GET"),
            },
            ["v1", "audit"] => match method {
                Method::GET => {
                    let q = Query::parse_api(query, &["limit", "since"])?;
                    let since = match q.get("since") {
                        Some(s) => Some(clock::parse_rfc3339_ms(s).ok_or_else(|| {
                            bad_request(format!("since must be an RFC 3339 time, not {s:?}"))
                        })?),
                        None => None,
                    };
                    self.audit(q.limit()?, since).await
                }
                _ => method_not_allowed("GET"),
            },
            _ => Err(Refusal::NotFound("no such endpoint".into())),
        }
    }

    async fn readyz(&self) -> Response<Vec<u8>> {
        if !self.readiness.is_loaded() {
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "not_ready", "reason": "revocation set not loaded yet"}),
            );
        }
        // Without the IdP's keys every token would be refused: not ready.
        // With only the cached copy (the IdP down since start-up), ready,
        // and the body says so.
        let mut idp_note = None;
        if let Some(idp) = &self.idp {
            let status = idp.status();
            match status.from {
                KeysFrom::Nowhere => {
                    return json_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &json!({"status": "not_ready", "reason": format!(
                            "no keys from the identity provider yet: {}",
                            status.last_error.as_deref().unwrap_or("fetching")
                        )}),
                    )
                }
                KeysFrom::Cache => {
                    idp_note = Some(format!(
                        "identity provider unreachable; using its cached keys ({})",
                        status.last_error.as_deref().unwrap_or("fetching")
                    ))
                }
                KeysFrom::Idp => {}
            }
        }
        match self.authority.store().ping().await {
            Ok(()) => match idp_note {
                None => json_response(StatusCode::OK, &json!({"status": "ready"})),
                Some(note) => json_response(
                    StatusCode::OK,
                    &json!({"status": "ready", "idp": "cached_keys", "reason": note}),
                ),
            },
            Err(e) => {
                self.metrics.store_errors.inc();
                json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"status": "not_ready", "reason": e.to_string()}),
                )
            }
        }
    }

    fn session_view(&self, s: &SessionInfo) -> serde_json::Value {
        let revoked =
            self.authority
                .revocations()
                .check(&s.session_id, s.user_id.as_deref(), s.iat);
        s.view(revoked.as_ref(), None)
    }

    async fn session(&self, sid: &str) -> ApiResult {
        let stored = self
            .authority
            .store()
            .session(sid)
            .await
            .map_err(store_failed)?;
        let live = self.sessions.get(sid);
        let found = sessions::merge(stored.into_iter().collect(), live.into_iter().collect());
        match found.first() {
            Some(s) => Ok(json_response(StatusCode::OK, &self.session_view(s))),
            None => Err(Refusal::NotFound(
                format!("no session {sid:?} has been seen").into(),
            )),
        }
    }

    async fn user_sessions(&self, sub: &str) -> ApiResult {
        let stored = self
            .authority
            .store()
            .user_sessions(sub)
            .await
            .map_err(store_failed)?;
        let all = sessions::merge(stored, self.sessions.for_user(sub));
        let views: Vec<serde_json::Value> = all.iter().map(|s| self.session_view(s)).collect();
        Ok(json_response(StatusCode::OK, &json!({"sessions": views})))
    }

    async fn revoke_session(&self, sid: &str, reason: &str, actor: &Actor) -> ApiResult {
        // The token's expiry, when this session has been seen, bounds how
        // long the revocation is kept.
        let exp = self.sessions.get(sid).and_then(|s| s.exp);
        let r = self
            .authority
            .revoke_session(sid, exp, reason, actor)
            .await
            .map_err(store_failed)?;
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "session_id": r.session_id,
                "revoked_at": clock::rfc3339_ms(r.revoked_at_ms),
                "reason": nullable(&r.reason),
                "expires_at": clock::rfc3339_s(r.expires_at),
            }),
        ))
    }

    async fn revoke_user(
        &self,
        sub: &str,
        except: Option<&str>,
        reason: &str,
        actor: &Actor,
    ) -> ApiResult {
        let c = self
            .authority
            .revoke_user(sub, except, reason, actor)
            .await
            .map_err(store_failed)?;
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "user_id": c.user_id,
                "not_before": clock::rfc3339_s(c.not_before),
                "except": c.except,
                "revoked_at": clock::rfc3339_ms(c.revoked_at_ms),
                "reason": nullable(&c.reason),
            }),
        ))
    }

    async fn revocations(&self, limit: usize) -> ApiResult {
        let list = self
            .authority
            .store()
            .recent_revocations(limit, self.authority.clock().now_s())
            .await
            .map_err(store_failed)?;
        let views: Vec<serde_json::Value> = list
            .iter()
            .map(|r| {
                let v = RevocationView::from(r);
                json!({
                    "kind": v.kind,
                    "target": v.target,
                    "at": v.at,
                    "reason": nullable(&v.reason),
                    "actor": v.actor,
                    "expires_at": v.expires_at,
                    "except": v.except,
                })
            })
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({"revocations": views}),
        ))
    }

    async fn audit(&self, limit: usize, since_ms: Option<i64>) -> ApiResult {
        let entries = self
            .authority
            .store()
            .audit(limit, since_ms)
            .await
            .map_err(store_failed)?;
        let views: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                let v = e.view();
                json!({
                    "time": v.time,
                    "actor": v.actor,
                    "actor_ip": v.actor_ip,
                    "action": v.action,
                    "target": v.target,
                    "reason": nullable(v.reason),
                })
            })
            .collect();
        Ok(json_response(StatusCode::OK, &json!({"entries": views})))
    }
}

async fn drain_body(session: &mut ServerSession) -> Result<(), ApiError> {
    let mut seen = 0usize;
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                seen += chunk.len();
                if seen > MAX_BODY_BYTES {
                    return Err(Refusal::PayloadTooLarge(MAX_BODY_BYTES));
                }
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(bad_request(format!("cannot read body: {e}"))),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let result = match drain_body(session).await {
            Ok(()) => self.route(session).await,
            Err(e) => {
                session.set_keepalive(None);
                Err(e)
            }
        };
        let resp = result.unwrap_or_else(error_response);
        self.metrics.count_admin(resp.status().as_u16());
        resp
    }
}
