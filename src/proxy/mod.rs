//! The pingora adapter: the hot path. It pulls the path and headers out of
//! the pingora `Session`, asks [`Enforcer::decide`], and acts on the
//! [`Decision`]: refuse, or forward with identity headers. Per-request state
//! lives in [`RequestCtx`] and is recorded once, in `logging()`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::FailToProxy;
use pingora::upstreams::peer::HttpPeer;
use pingora::{ErrorSource, ErrorType};

use crate::admin::selfservice::{self, SelfService};
use crate::client_ip::TrustedProxies;
use crate::clock;
use crate::closer::{self, ConnectionRegistry};
use crate::config::{Config, Mode};
use crate::enforcement::{Decision, Enforcer, Facts, Outcome, Refusal, RenderedRefusal};
use crate::metrics::Metrics;
use crate::sessions::{SessionRegistry, Sighting};
use crate::store::Health;
use crate::token::VerifiedToken;

mod headers;
mod sighting;
use headers::{add_identity, apply_strip, strip_identity_headers};

/// The verified session id, sent upstream (a client's own copy is removed).
pub const X_SESSION_ID: &str = "X-Session-Id";
/// The verified user id, sent upstream when the token names a user.
pub const X_USER_ID: &str = "X-User-Id";
/// Monitor mode: the request's decision label (`allowed`, `session_revoked`...),
/// sent upstream.
pub const X_SESSIONGATE_DECISION: &str = "X-Sessiongate-Decision";
/// The client's country, sent upstream when GeoIP locates it.
pub const X_GEO_COUNTRY: &str = "X-Geo-Country";
/// The client's city, sent upstream when GeoIP locates it.
pub const X_GEO_CITY: &str = "X-Geo-City";
/// Believed only from a peer in `geoip.trusted_proxies`; with
/// `upstream.x_forwarded`, sent upstream as that chain plus the peer (from
/// any other peer, the peer alone).
pub const X_FORWARDED_FOR: &str = "X-Forwarded-For";
/// With `upstream.x_forwarded`: `http` or `https` as the client connected
/// (a trusted proxy's own value is kept).
pub const X_FORWARDED_PROTO: &str = "X-Forwarded-Proto";

/// Largest request body a self-service action reads.
const MAX_SELF_SERVICE_BODY: usize = 16 * 1024;

/// The request failed because the upstream could not be reached or answered.
fn is_upstream_error(e: &Error) -> bool {
    matches!(e.esource(), ErrorSource::Upstream)
        || matches!(
            e.etype(),
            ErrorType::ConnectTimedout
                | ErrorType::ConnectRefused
                | ErrorType::ConnectNoRoute
                | ErrorType::ConnectError
        )
}

/// Per-request state, filled by the filters and recorded in `logging()`.
#[derive(Debug, Default)]
pub struct RequestCtx {
    outcome: Option<Outcome>,
    decided_in: Option<Duration>,
    identity: Option<Arc<VerifiedToken>>,
    /// The request asks for a WebSocket upgrade.
    websocket: bool,
    /// The connection (HTTP/2: stream) this request runs on, looked up once.
    conn: Option<Arc<closer::Conn>>,
    /// When the request reached the gateway (the access log's duration).
    started: Option<Instant>,
}

/// The proxy service: one per gateway process.
pub struct Proxy {
    enforcer: Arc<Enforcer>,
    metrics: Arc<Metrics>,
    connections: Arc<ConnectionRegistry>,
    sessions: Arc<SessionRegistry>,
    self_service: Arc<SelfService>,
    trusted: TrustedProxies,
    health: Arc<Health>,
    peer: HttpPeer,
    mode: Mode,
    login_url: Option<HeaderValue>,
    /// `sessions.max_per_user`.
    max_per_user: Option<usize>,
    x_forwarded: bool,
    /// Idle HTTP/1.1 keep-alive bound in seconds, `None`: no keep-alive.
    keepalive_s: Option<u64>,
}

impl Proxy {
    /// Builds the proxy; resolves the upstream address once, here.
    pub fn new(
        config: &Config,
        enforcer: Arc<Enforcer>,
        metrics: Arc<Metrics>,
        connections: Arc<ConnectionRegistry>,
        sessions: Arc<SessionRegistry>,
        self_service: Arc<SelfService>,
        health: Arc<Health>,
    ) -> Result<Proxy, String> {
        use std::net::ToSocketAddrs;
        let addr = config
            .upstream
            .address
            .to_socket_addrs()
            .map_err(|e| format!("upstream.address {:?}: {e}", config.upstream.address))?
            .next()
            .ok_or_else(|| format!("upstream.address {:?}: no address", config.upstream.address))?;
        let mut peer = HttpPeer::new(addr, config.upstream.tls, config.upstream.sni.clone());
        peer.options.connection_timeout = Some(config.upstream.connect_timeout);
        peer.options.read_timeout = config.upstream.read_timeout;
        Ok(Proxy {
            enforcer,
            metrics,
            connections,
            sessions,
            self_service,
            trusted: TrustedProxies::new(config.geoip.trusted_proxies.clone()),
            health,
            peer,
            mode: config.enforcement.mode,
            login_url: config.enforcement.login_url.clone(),
            max_per_user: config.sessions.max_per_user,
            x_forwarded: config.upstream.x_forwarded,
            keepalive_s: config.listen.keepalive_timeout.map(|d| d.as_secs().max(1)),
        })
    }

    /// Makes this connection carry the request's session, so a revocation
    /// can close it. In enforce mode only: monitor mode closes nothing.
    /// Then checks the revocation set again: a revocation applied between
    /// the decision and the attachment would otherwise miss this connection.
    fn attach(&self, conn: Option<&Arc<closer::Conn>>, token: &VerifiedToken) -> Option<Refusal> {
        if self.mode != Mode::Enforce {
            return None;
        }
        let conn = conn?;
        let newly = self
            .connections
            .attach(conn, token.session_key, token.user_key, token.iat);
        if !newly {
            // Already carried this session: a revocation since the decision
            // has cancelled this connection, and this request with it.
            return None;
        }
        self.enforcer
            .revocations()
            .check_key(
                token.session_key,
                &token.session_id,
                token.user_id.as_deref(),
                token.iat,
            )
            .map(Refusal::Revoked)
    }

    /// An allowed request: made closable, its sighting recorded, forwarded
    /// with its identity. Refused after all when a revocation landed
    /// between the decision and the attachment, or when the sighting is an
    /// unconfirmed new location (`sessions.refuse_new_location`).
    async fn forward_allowed(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        token: Arc<VerifiedToken>,
        now_ms: i64,
    ) -> Result<bool> {
        if let Some(refusal) = self.attach(ctx.conn.as_ref(), &token) {
            ctx.outcome = refusal.outcome();
            self.refuse(session, &refusal).await?;
            return Ok(true);
        }
        ctx.websocket = is_websocket_upgrade(session.req_header());
        let client_ip = self.client_ip(session);
        let seen = {
            let req = session.req_header();
            self.sessions.observe(&Sighting {
                session_id: &token.session_id,
                session_key: token.session_key,
                user_id: token.user_id.as_deref(),
                iat: token.iat,
                exp: token.exp,
                ip: client_ip,
                user_agent: req
                    .headers
                    .get(http::header::USER_AGENT)
                    .map(|v| v.as_bytes())
                    .unwrap_or(b""),
                now_ms,
            })
        };
        let geo = seen.geo.clone();
        if self.act_on_sighting(session, ctx, &token, seen).await? {
            return Ok(true);
        }
        let req = session.req_header_mut();
        if let Some(geo) = &geo {
            if let Some(c) = &geo.country_header {
                req.insert_header(X_GEO_COUNTRY, c.clone())?;
            }
            if let Some(c) = &geo.city_header {
                req.insert_header(X_GEO_CITY, c.clone())?;
            }
        }
        add_identity(req, &token)?;
        ctx.identity = Some(token);
        Ok(false)
    }

    /// A public request: forwarded whatever its token. One that verified
    /// adds its identity and makes the connection closable like any other;
    /// one that turns out revoked once attached is removed instead.
    fn forward_public(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        identity: Option<Arc<VerifiedToken>>,
    ) -> Result<()> {
        let Some(token) = identity else {
            self.detach(ctx.conn.as_deref());
            return Ok(());
        };
        if self.attach(ctx.conn.as_ref(), &token).is_some() {
            // Revoked between the decision and the attachment: as any
            // revoked token on a public path, it is not passed on.
            self.detach(ctx.conn.as_deref());
            if let Some(strip) = self.enforcer.strip_all(&session.req_header().headers) {
                apply_strip(session, &strip)?;
            }
            return Ok(());
        }
        ctx.websocket = is_websocket_upgrade(session.req_header());
        add_identity(session.req_header_mut(), &token)?;
        ctx.identity = Some(token);
        Ok(())
    }

    /// The client's address: the peer, or from `X-Forwarded-For` when the
    /// peer is a trusted proxy.
    fn client_ip(&self, session: &Session) -> IpAddr {
        let peer = peer_ip(session);
        if self.trusted.is_empty() {
            return peer;
        }
        let forwarded = session
            .req_header()
            .headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok());
        self.trusted.client_ip(peer, forwarded)
    }

    /// Answers a `/.sessiongate/` request; answers the decision to count.
    async fn serve_self_service(&self, session: &mut Session) -> Result<Option<Outcome>> {
        let mut body = Vec::new();
        let mut too_large = false;
        while let Some(chunk) = session.read_request_body().await? {
            if body.len() + chunk.len() > MAX_SELF_SERVICE_BODY {
                too_large = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        let client_ip = self.client_ip(session);
        let resp = if too_large {
            session.set_keepalive(None);
            selfservice::Response::refused(
                &Refusal::PayloadTooLarge(MAX_SELF_SERVICE_BODY),
                None,
                None,
            )
        } else {
            let req = session.req_header();
            let now_ms = clock::now_ms();
            self.self_service
                .handle(&selfservice::Request {
                    method: &req.method,
                    path: req.uri.path(),
                    query: req.uri.query(),
                    headers: &req.headers,
                    body: &body,
                    client_ip,
                    now_ms,
                    store_silent_ms: self.health.silent_for_ms(now_ms),
                })
                .await
        };
        let mut header = ResponseHeader::build(resp.status, Some(resp.headers.len() + 1))?;
        header.insert_header(http::header::CONTENT_LENGTH, resp.body.len())?;
        for (name, value) in resp.headers {
            header.insert_header(name, value)?;
        }
        session
            .write_response_header(Box::new(header), false)
            .await?;
        session.write_response_body(Some(resp.body), true).await?;
        Ok(resp.outcome)
    }

    /// This request carries no session: neither does its connection now.
    fn detach(&self, conn: Option<&closer::Conn>) {
        if let Some(conn) = conn {
            self.connections.detach(conn);
        }
    }

    async fn refuse(&self, session: &mut Session, refusal: &Refusal) -> Result<()> {
        let wants_html = self.login_url.is_some()
            && session
                .req_header()
                .headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("text/html"));
        let rendered = refusal.render(self.login_url.as_ref(), wants_html);
        write_json(session, rendered).await
    }
}

/// The downstream peer's address (unspecified for a Unix socket).
fn peer_ip(session: &Session) -> IpAddr {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// `Upgrade: websocket` (RFC 6455 4.1).
fn is_websocket_upgrade(req: &pingora::http::RequestHeader) -> bool {
    req.headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
        })
}

/// The response header of a rendered refusal: its status and headers, a
/// JSON content type and the body's length.
fn json_header(r: &RenderedRefusal) -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(r.status, Some(2 + r.headers.len()))?;
    resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    resp.insert_header(http::header::CONTENT_LENGTH, r.body.len())?;
    for (name, value) in &r.headers {
        resp.insert_header(name.clone(), value.clone())?;
    }
    Ok(resp)
}

async fn write_json(session: &mut Session, r: RenderedRefusal) -> Result<()> {
    let resp = json_header(&r)?;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(r.body), true).await
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.conn = closer::current();
        if let Some(conn) = &ctx.conn {
            conn.request_started();
        }
        strip_identity_headers(session, self.x_forwarded);
        // pingora waits forever for the next request of an HTTP/1.1
        // keep-alive connection (or as long as the client's own
        // `Keep-Alive: timeout` says); bound it. A connection the client
        // did not keep alive stays closing.
        if session.get_keepalive().is_some() {
            session.set_keepalive(self.keepalive_s);
        }

        let started = Instant::now();
        ctx.started = Some(started);
        let now_ms = clock::now_ms();
        let verdict = {
            let req = session.req_header();
            self.enforcer.decide(&Facts {
                target: req.raw_path(),
                headers: &req.headers,
                now_s: now_ms.div_euclid(1000),
                store_silent_ms: self.health.silent_for_ms(now_ms),
            })
        };
        ctx.decided_in = Some(started.elapsed());
        ctx.outcome = verdict.outcome();
        if let Some(strip) = &verdict.strip {
            apply_strip(session, strip)?;
        }
        if let Some(label) = verdict.monitor_label {
            session
                .req_header_mut()
                .insert_header(X_SESSIONGATE_DECISION, label)?;
        }

        match verdict.decision {
            Decision::Reserved => {
                self.detach(ctx.conn.as_deref());
                ctx.outcome = self.serve_self_service(session).await?;
                Ok(true)
            }
            Decision::Public(identity) => {
                self.forward_public(session, ctx, identity)?;
                Ok(false)
            }
            Decision::Allow(token) => self.forward_allowed(session, ctx, token, now_ms).await,
            Decision::Refuse(r) => {
                self.detach(ctx.conn.as_deref());
                self.refuse(session, &r).await?;
                Ok(true)
            }
            Decision::Monitored(_) => {
                self.detach(ctx.conn.as_deref());
                Ok(false)
            }
        }
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        if !self.x_forwarded {
            return Ok(());
        }
        let peer = peer_ip(session);
        let chain = self.trusted.forwarded_for(
            peer,
            upstream_request
                .headers
                .get_all(X_FORWARDED_FOR)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        upstream_request.insert_header(X_FORWARDED_FOR, chain)?;
        let keep_proto = self.trusted.trusts_peer(peer)
            && upstream_request.headers.contains_key(X_FORWARDED_PROTO);
        if !keep_proto {
            let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
            upstream_request
                .insert_header(X_FORWARDED_PROTO, if tls { "https" } else { "http" })?;
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.peer.clone()))
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if ctx.identity.is_none() || self.mode != Mode::Enforce {
            return Ok(());
        }
        let upgraded =
            ctx.websocket && upstream_response.status == http::StatusCode::SWITCHING_PROTOCOLS;
        let sse = !upgraded
            && upstream_response
                .headers
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if upgraded || sse {
            if let Some(conn) = &ctx.conn {
                if upgraded {
                    self.connections.mark_websocket(conn);
                } else {
                    self.connections.mark_sse(conn);
                }
            }
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let upstream = is_upstream_error(e);
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            _ if upstream => 502,
            _ => match e.esource() {
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                _ => 500,
            },
        };
        if code == 502 {
            let rendered = Refusal::UpstreamUnavailable.render(None, false);
            if let Ok(resp) = json_header(&rendered) {
                let _ = session
                    .as_downstream_mut()
                    .write_error_response(resp, rendered.body)
                    .await;
            }
        } else if code > 0 {
            let _ = session.respond_error(code).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        if let Some(conn) = &ctx.conn {
            conn.request_finished();
        }
        if let Some(outcome) = ctx.outcome {
            self.metrics.count_request(outcome);
        }
        if let Some(d) = ctx.decided_in {
            self.metrics.request_duration.observe(d.as_secs_f64());
        }
        if let Some(e) = e {
            if is_upstream_error(e) {
                self.metrics.upstream_errors.inc();
            }
        }
        if tracing::enabled!(target: "access", tracing::Level::DEBUG) {
            let status = session
                .response_written()
                .map(|r| r.status.as_u16())
                .unwrap_or(0);
            let client_ip = self.client_ip(session);
            let req = session.req_header();
            let identity = ctx.identity.as_deref();
            // Never the token: only what it was verified to say.
            tracing::debug!(
                target: "access",
                method = %req.method,
                path = %req.uri.path(),
                status,
                decision = ctx.outcome.map(Outcome::label).unwrap_or("-"),
                session_id = identity.map(|t| t.session_id.as_str()).unwrap_or("-"),
                user_id = identity.and_then(|t| t.user_id.as_deref()).unwrap_or("-"),
                duration_us = ctx.started.map_or(0, |s| s.elapsed().as_micros() as u64),
                client_ip = %client_ip,
                error = e.map(|e| e.to_string()).unwrap_or_default(),
                "request"
            );
        }
    }
}
