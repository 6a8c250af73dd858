//! Closing the open connections of revoked sessions.
//!
//! Every downstream HTTP/1 connection and every HTTP/2 stream is a [`Conn`]
//! with a cancellation token. The proxy attaches a `Conn` to the session of
//! each request it allows ([`ConnectionRegistry::attach`]); a keep-alive connection
//! carries the session of its most recent request. At revocation time,
//! [`ConnectionRegistry::close_session`] and [`ConnectionRegistry::close_user`] cancel the
//! matching `Conn`s: the [`app`] wrappers drop pingora's request future,
//! write a WebSocket close frame (1008 `session_revoked`) when the connection
//! is an idle-between-frames WebSocket ([`stream`]), and close the socket.
//! Nothing here runs per request except `attach`.

pub mod app;
pub mod stream;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use atomic_waker::AtomicWaker;
use dashmap::DashMap;

use crate::metrics::Metrics;
use crate::revocation::{session_key, SessionKey};

pub use crate::metrics::{CloseReason, Kind};

/// The session a connection carries, by key (no strings: behind a load
/// balancer's pooled connections, the session changes on most requests).
#[derive(Debug, Clone, Copy)]
struct Attachment {
    session: SessionKey,
    user: Option<SessionKey>,
    iat: Option<i64>,
    kind: Kind,
}

/// One cancellable unit: an HTTP/1 connection or an HTTP/2 stream.
#[derive(Debug)]
pub struct Conn {
    id: u64,
    /// Set once, by a revocation; the one task serving the unit waits on
    /// `waker` (a connection or stream is served by one task at a time).
    cancelled: AtomicBool,
    waker: AtomicWaker,
    attachment: Mutex<Option<Attachment>>,
    /// Set when a `101 Switching Protocols` answer to a WebSocket handshake
    /// is about to be written on this connection.
    upgrading: AtomicBool,
    revoked: OnceLock<(Instant, CloseReason)>,
    /// Between a request's complete header and its end (`logging`): no
    /// request-header deadline runs.
    in_request: AtomicBool,
    /// Requests whose header completed on this connection.
    requests: AtomicU32,
    /// In the registry's open map: from its first attachment to its release.
    /// A unit that never carried a session (public paths, refusals, the
    /// HTTP/2 connection itself) is never scanned by a revocation.
    registered: AtomicBool,
}

impl Conn {
    /// This unit's number, unique within its registry (counted from 1).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Resolves when the connection's session has been revoked. Polling it
    /// costs two atomic operations: it sits in every select of the request
    /// path.
    pub fn cancelled(&self) -> Cancelled<'_> {
        Cancelled { conn: self }
    }

    /// True once a revocation has cancelled this unit; never reset.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// True once a WebSocket upgrade answer is being written.
    pub fn is_upgrading(&self) -> bool {
        self.upgrading.load(Ordering::Acquire)
    }

    /// A request's header was read completely (the proxy's first filter).
    pub fn request_started(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_request.store(true, Ordering::Relaxed);
    }

    /// The request is over; the connection waits for the next one.
    pub fn request_finished(&self) {
        self.in_request.store(false, Ordering::Relaxed);
    }

    /// Whether a request header is awaited on this connection, and the
    /// number of requests so far (a new request restarts the deadline).
    fn header_awaited(&self) -> Option<u32> {
        if self.in_request.load(Ordering::Relaxed) {
            return None;
        }
        Some(self.requests.load(Ordering::Relaxed))
    }

    fn revoke(&self, at: Instant, reason: CloseReason) {
        let _ = self.revoked.set((at, reason));
        self.cancelled.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// The future of [`Conn::cancelled`].
#[derive(Debug)]
pub struct Cancelled<'a> {
    conn: &'a Conn,
}

impl std::future::Future for Cancelled<'_> {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.conn.is_cancelled() {
            return std::task::Poll::Ready(());
        }
        self.conn.waker.register(cx.waker());
        // A revocation between the check and the registration woke nobody.
        if self.conn.is_cancelled() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    }
}

/// Every open connection (HTTP/2: stream). Requests only write the session
/// into their own [`Conn`]; a revocation scans the open connections for it.
/// Behind a load balancer the session changes on most requests of a pooled
/// connection, so indexing by session per request would cost every request;
/// the scan costs each revocation about 20 ns a connection instead.
pub struct ConnectionRegistry {
    next_id: AtomicU64,
    open: DashMap<u64, Arc<Conn>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for ConnectionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionRegistry")
            .field("registered", &self.open.len())
            .finish_non_exhaustive()
    }
}

tokio::task_local! {
    /// The unit the current request runs in, for the proxy's filters.
    static CURRENT: Arc<Conn>;
}

/// The [`Conn`] of the request being processed on this task, if any.
pub fn current() -> Option<Arc<Conn>> {
    CURRENT.try_with(Arc::clone).ok()
}

impl ConnectionRegistry {
    /// The metrics the registry counts open and closed connections in.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// An empty registry reporting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> ConnectionRegistry {
        ConnectionRegistry {
            next_id: AtomicU64::new(1),
            open: DashMap::new(),
            metrics,
        }
    }

    /// A new unit, attached to nothing yet (registered at its first
    /// [`Self::attach`], until [`Self::release`]).
    pub fn open(&self) -> Arc<Conn> {
        Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            cancelled: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            attachment: Mutex::new(None),
            upgrading: AtomicBool::new(false),
            revoked: OnceLock::new(),
            in_request: AtomicBool::new(false),
            requests: AtomicU32::new(0),
            registered: AtomicBool::new(false),
        })
    }

    /// Makes `conn` carry this session (a keep-alive connection carries the
    /// session of its most recent request): a write into the connection's
    /// own slot; the shared map is written once, at the first attachment.
    /// Answers true when the connection was not carrying it before: only
    /// then can a revocation have missed it, and the caller checks again.
    pub fn attach(
        &self,
        conn: &Arc<Conn>,
        session: SessionKey,
        user: Option<SessionKey>,
        iat: Option<i64>,
    ) -> bool {
        // Into the map before the attachment is set (and never under its
        // lock: a revocation's scan takes the map's shard, then each lock).
        if !conn.registered.swap(true, Ordering::AcqRel) {
            self.open.insert(conn.id, conn.clone());
        }
        let Ok(mut a) = conn.attachment.lock() else {
            return true;
        };
        match a.as_mut() {
            Some(cur) if cur.session == session && cur.user == user => {
                cur.iat = iat;
                self.set_kind_locked(cur, Kind::Http);
                false
            }
            Some(cur) => {
                self.set_kind_locked(cur, Kind::Http);
                *cur = Attachment {
                    session,
                    user,
                    iat,
                    kind: Kind::Http,
                };
                true
            }
            None => {
                self.metrics.open_connections(Kind::Http).inc();
                *a = Some(Attachment {
                    session,
                    user,
                    iat,
                    kind: Kind::Http,
                });
                true
            }
        }
    }

    /// The connection's latest request carried no session (public path,
    /// refused): it no longer carries one.
    pub fn detach(&self, conn: &Conn) {
        let previous = conn.attachment.lock().ok().and_then(|mut a| a.take());
        if let Some(prev) = previous {
            self.metrics.open_connections(prev.kind).dec();
        }
    }

    fn set_kind_locked(&self, a: &mut Attachment, kind: Kind) {
        if a.kind != kind {
            self.metrics.open_connections(a.kind).dec();
            self.metrics.open_connections(kind).inc();
            a.kind = kind;
        }
    }

    /// The response on `conn` turned out to be a server-sent event stream.
    pub fn mark_sse(&self, conn: &Conn) {
        if let Ok(mut a) = conn.attachment.lock() {
            if let Some(a) = a.as_mut() {
                self.set_kind_locked(a, Kind::Sse);
            }
        }
    }

    /// A `101` answer to a WebSocket handshake is about to be written on `conn`.
    pub fn mark_websocket(&self, conn: &Conn) {
        conn.upgrading.store(true, Ordering::Release);
        if let Ok(mut a) = conn.attachment.lock() {
            if let Some(a) = a.as_mut() {
                self.set_kind_locked(a, Kind::Websocket);
            }
        }
    }

    /// Forgets `conn` (its connection or stream ended) and, when it was
    /// closed by a revocation, records how long the closing took.
    pub fn release(&self, conn: &Conn) {
        self.detach(conn);
        if conn.registered.load(Ordering::Acquire) {
            self.open.remove(&conn.id);
        }
        if let Some((at, reason)) = conn.revoked.get() {
            self.metrics.count_closed(*reason);
            self.metrics
                .revocation_close_seconds
                .observe(at.elapsed().as_secs_f64());
        }
    }

    /// Revokes every open connection whose attachment matches; answers how many.
    fn close_where(
        &self,
        at: Instant,
        reason: CloseReason,
        hit: impl Fn(&Attachment) -> bool,
    ) -> usize {
        let mut closed = 0;
        for c in self.open.iter() {
            let matches = c
                .attachment
                .lock()
                .ok()
                .is_some_and(|a| a.as_ref().is_some_and(&hit));
            if matches {
                c.revoke(at, reason);
                closed += 1;
            }
        }
        closed
    }

    /// Closes every connection carrying `session`. Answers how many.
    pub fn close_session(&self, session: &str, at: Instant) -> usize {
        let key = session_key(session);
        self.close_where(at, CloseReason::SessionRevoked, |a| a.session == key)
    }

    /// Closes every connection of `user` whose token was issued before
    /// `not_before` (or whose issue time is unknown), except those of session
    /// `except`. Answers how many.
    pub fn close_user(
        &self,
        user: &str,
        not_before: i64,
        except: Option<&str>,
        at: Instant,
    ) -> usize {
        let user = session_key(user);
        let except = except.map(session_key);
        self.close_where(at, CloseReason::UserRevoked, |a| {
            a.user == Some(user)
                && a.iat.is_none_or(|iat| iat < not_before)
                && except != Some(a.session)
        })
    }

    /// Units currently attached to a session.
    #[cfg(test)]
    fn attached(&self) -> usize {
        self.open
            .iter()
            .filter(|c| c.attachment.lock().ok().is_some_and(|a| a.is_some()))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(id: &str) -> SessionKey {
        session_key(id)
    }

    fn registry() -> ConnectionRegistry {
        ConnectionRegistry::new(Arc::new(Metrics::new(prometheus::Registry::new()).unwrap()))
    }

    #[test]
    fn keep_alive_carries_the_latest_session() {
        let r = registry();
        let c = r.open();
        r.attach(&c, k("a"), Some(k("alice")), Some(10));
        r.attach(&c, k("b"), Some(k("bob")), Some(10));
        assert_eq!(r.close_session("a", Instant::now()), 0);
        assert!(!c.is_cancelled());
        assert_eq!(r.close_session("b", Instant::now()), 1);
        assert!(c.is_cancelled());
        r.release(&c);
        assert_eq!(r.attached(), 0);
        assert!(r.open.is_empty());
    }

    #[test]
    fn user_close_spares_the_exempt_and_the_fresh() {
        let r = registry();
        let old = r.open();
        let kept = r.open();
        let fresh = r.open();
        let other = r.open();
        r.attach(&old, k("s1"), Some(k("alice")), Some(100));
        r.attach(&kept, k("s2"), Some(k("alice")), Some(100));
        r.attach(&fresh, k("s3"), Some(k("alice")), Some(200));
        r.attach(&other, k("s4"), Some(k("bob")), Some(100));
        assert_eq!(r.close_user("alice", 150, Some("s2"), Instant::now()), 1);
        assert!(old.is_cancelled());
        assert!(!kept.is_cancelled() && !fresh.is_cancelled() && !other.is_cancelled());
    }

    #[test]
    fn detached_connection_is_not_closed() {
        let r = registry();
        let c = r.open();
        r.attach(&c, k("a"), None, None);
        r.detach(&c);
        assert_eq!(r.close_session("a", Instant::now()), 0);
        assert_eq!(r.attached(), 0);
    }
}
