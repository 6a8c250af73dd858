//! The two wrappers that make pingora's proxy closable from outside.
//!
//! - [`Closable`] (a pingora `ServerApp`) gets each downstream connection
//!   first: it wraps the socket in a [`WatchedStream`] and races the whole
//!   HTTP/1 connection (keep-alive loop included) against its [`Conn`](super::Conn)'s
//!   cancellation, with the `Conn` in scope for the proxy's filters.
//!   Cancelling drops pingora's future wherever it is: waiting for a
//!   keep-alive request, streaming a response, or relaying an upgraded
//!   connection. Then it takes the socket back to write a WebSocket close
//!   frame (if the connection is between frames) and closes it.
//! - [`Cancellable`] (a pingora `HttpServerApp`) does the same for each
//!   HTTP/2 stream, which pingora runs on a task of its own: each stream gets
//!   a `Conn`. For HTTP/1 requests it adds nothing: one race per connection
//!   costs less than one per request.
//!
//! Clean-up happens here, not in `logging()`, which is not called for a
//! request whose future was dropped.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream, ServerApp};
use pingora::protocols::http::v2::server::H2Options;
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;

use std::time::Duration;

use pingora::protocols::ALPN;

use super::stream::{close, HeaderDeadline, WatchedStream};
use super::{ConnectionRegistry, CURRENT};

/// Races every request or stream of `inner` against its session's revocation.
pub struct Cancellable<A> {
    inner: Arc<A>,
    registry: Arc<ConnectionRegistry>,
}

impl<A> Cancellable<A> {
    /// Wraps `inner`; each HTTP/2 stream gets a [`Conn`](super::Conn) from
    /// `registry`.
    pub fn new(inner: A, registry: Arc<ConnectionRegistry>) -> Self {
        Cancellable {
            inner: Arc::new(inner),
            registry,
        }
    }
}

#[async_trait]
impl<A> HttpServerApp for Cancellable<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new_http(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        // HTTP/1: Closable already races this connection, its Conn is in
        // scope on this task (Cancellable only runs inside Closable).
        if !session.is_http2() {
            return self.inner.process_new_http(session, shutdown).await;
        }
        // HTTP/2: each stream runs on its own task and gets its own Conn.
        let conn = self.registry.open();
        let request = CURRENT.scope(conn.clone(), self.inner.process_new_http(session, shutdown));
        let out = tokio::select! {
            biased;
            _ = conn.cancelled() => None,
            out = request => out,
        };
        self.registry.release(&conn);
        out
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.inner.server_options()
    }

    fn h2_options(&self) -> Option<H2Options> {
        self.inner.h2_options()
    }

    async fn http_cleanup(&self) {
        self.inner.http_cleanup().await
    }
}

/// Owns each downstream connection's socket around the HTTP application.
pub struct Closable<A> {
    http: Arc<Cancellable<A>>,
    header_timeout: Option<Duration>,
}

impl<A> Closable<A> {
    /// `header_timeout`: how long a request header may take to arrive once
    /// its first byte has (`None`: pingora's per-read timeouts only).
    pub fn new(
        inner: A,
        registry: Arc<ConnectionRegistry>,
        header_timeout: Option<Duration>,
    ) -> Self {
        Closable {
            http: Arc::new(Cancellable::new(inner, registry)),
            header_timeout,
        }
    }
}

#[async_trait]
impl<A> ServerApp for Closable<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let registry = self.http.registry.clone();
        let conn = registry.open();
        // HTTP/2 has no request header of its own (h2c is recognised by its
        // preface on the first read).
        let header = self
            .header_timeout
            .filter(|_| !matches!(stream.selected_alpn_proto(), Some(ALPN::H2)))
            .map(|limit| HeaderDeadline::new(limit, registry.metrics().header_timeouts.clone()));
        let slot = Arc::new(Mutex::new(None));
        let watched: Stream = Box::new(WatchedStream::new(
            stream,
            conn.clone(),
            slot.clone(),
            header,
        ));
        let http = self.http.clone();
        // pingora's HTTP/1 loop (keep-alive included) or HTTP/2 accept loop.
        let serve = CURRENT.scope(conn.clone(), async move {
            http.process_new(watched, shutdown).await
        });
        tokio::select! {
            biased;
            _ = conn.cancelled() => {}
            _ = serve => {}
        }
        let returned = slot.lock().ok().and_then(|mut s| s.take());
        if conn.is_cancelled() {
            if let Some((mut socket, frames)) = returned {
                close(&mut socket, &frames).await;
            }
        }
        registry.release(&conn);
        None
    }

    async fn cleanup(&self) {
        self.http.http_cleanup().await
    }
}
