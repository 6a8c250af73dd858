//! The two wrappers that make pingora's proxy closable from outside.
//!
//! - [`Closable`] (a pingora `ServerApp`) gets each downstream connection
//!   first: it wraps the socket in a [`WatchedStream`], runs the whole HTTP
//!   connection with its [`Conn`] in scope, and when that `Conn` was
//!   revoked, takes the socket back to write a WebSocket close frame (if the
//!   connection is between frames) and close it.
//! - [`Cancellable`] (a pingora `HttpServerApp`) races each request (HTTP/1)
//!   or stream (HTTP/2) of the inner proxy against the `Conn`'s cancellation;
//!   cancelling drops pingora's future, which ends the request wherever it
//!   is: waiting for a keep-alive request, streaming a response, or relaying
//!   an upgraded connection. HTTP/2 streams get a `Conn` of their own.
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

use super::stream::{close, WatchedStream};
use super::{Conn, ConnectionRegistry, CURRENT};

tokio::task_local! {
    /// The HTTP/1 connection this task serves, set by [`Closable`].
    static CONNECTION: Arc<Conn>;
}

/// Races every request or stream of `inner` against its session's revocation.
pub struct Cancellable<A> {
    inner: Arc<A>,
    registry: Arc<ConnectionRegistry>,
}

impl<A> Cancellable<A> {
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
        // HTTP/1: the connection's Conn, set by Closable on this task.
        // HTTP/2: each stream runs on its own task and gets its own Conn.
        let (conn, own) = match CONNECTION.try_with(Arc::clone) {
            Ok(c) if !session.is_http2() => (c, false),
            _ => (self.registry.open(), true),
        };
        if conn.is_cancelled() {
            return None;
        }
        let request = CURRENT.scope(conn.clone(), self.inner.process_new_http(session, shutdown));
        let out = tokio::select! {
            biased;
            _ = conn.cancelled() => None,
            out = request => out,
        };
        if own {
            self.registry.release(&conn);
        }
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
}

impl<A> Closable<A> {
    pub fn new(inner: A, registry: Arc<ConnectionRegistry>) -> Self {
        Closable {
            http: Arc::new(Cancellable::new(inner, registry)),
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
        let slot = Arc::new(Mutex::new(None));
        let watched: Stream = Box::new(WatchedStream::new(stream, conn.clone(), slot.clone()));
        let http = self.http.clone();
        // pingora's HTTP/1 loop (keep-alive included) or HTTP/2 accept loop.
        CONNECTION
            .scope(conn.clone(), async move {
                http.process_new(watched, shutdown).await
            })
            .await;
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
