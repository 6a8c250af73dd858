//! The downstream socket, watched. [`WatchedStream`] delegates every read
//! and write to pingora's stream and, once a WebSocket upgrade answer is
//! being written, follows the server-to-client frames it writes
//! ([`FrameTracker`]) so the closer knows whether the connection is between
//! frames. When pingora drops it, the socket goes back to the closer's slot
//! instead of being closed, so a close frame can still be written.
//!
//! It also holds the request-header deadline ([`HeaderDeadline`]): pingora
//! times out each read of a request header, not the header as a whole, so a
//! client trickling one byte at a time could hold a connection forever.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID,
    UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Sleep;

use super::Conn;

/// WebSocket close frame, server to client (unmasked): FIN+close, length 17,
/// status 1008 (policy violation), reason `session_revoked`.
pub const CLOSE_FRAME: &[u8] = b"\x88\x11\x03\xf0session_revoked";

/// How long the closer waits for the close frame to be written.
pub const CLOSE_FRAME_TIMEOUT: Duration = Duration::from_millis(250);

/// Where the server-to-client byte stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Plain HTTP/1: nothing to follow.
    Http,
    /// A `101` head is being written; `matched` bytes of `\r\n\r\n` seen.
    Head { matched: u8 },
    /// WebSocket frames.
    Frames,
}

/// Follows WebSocket frame boundaries in the bytes written to the client.
#[derive(Debug, Clone)]
pub struct FrameTracker {
    phase: Phase,
    header: [u8; 14],
    have: usize,
    remaining: u64,
}

impl Default for FrameTracker {
    fn default() -> Self {
        FrameTracker {
            phase: Phase::Http,
            header: [0; 14],
            have: 0,
            remaining: 0,
        }
    }
}

fn header_len(first_two: &[u8]) -> usize {
    let ext = match first_two[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if first_two[1] & 0x80 != 0 { 4 } else { 0 };
    2 + ext + mask
}

impl FrameTracker {
    /// True when the last byte written ended a WebSocket frame: a close
    /// frame may be written now without corrupting the stream.
    pub fn between_frames(&self) -> bool {
        self.phase == Phase::Frames && self.have == 0 && self.remaining == 0
    }

    /// Accounts for `bytes` written to the client. `upgrading` says whether
    /// a WebSocket upgrade answer is being written on this connection.
    pub fn observe(&mut self, mut bytes: &[u8], upgrading: bool) {
        if self.phase == Phase::Http {
            if !upgrading {
                return;
            }
            self.phase = Phase::Head { matched: 0 };
        }
        if let Phase::Head { mut matched } = self.phase {
            const END: &[u8] = b"\r\n\r\n";
            let mut consumed = bytes.len();
            for (i, b) in bytes.iter().enumerate() {
                matched = if *b == END[matched as usize] {
                    matched + 1
                } else if *b == b'\r' {
                    1
                } else {
                    0
                };
                if matched == 4 {
                    consumed = i + 1;
                    break;
                }
            }
            if matched < 4 {
                self.phase = Phase::Head { matched };
                return;
            }
            self.phase = Phase::Frames;
            bytes = &bytes[consumed..];
        }
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let n = (self.remaining.min(bytes.len() as u64)) as usize;
                self.remaining -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let need = if self.have < 2 {
                2
            } else {
                header_len(&self.header[..2])
            };
            let take = (need - self.have).min(bytes.len());
            self.header[self.have..self.have + take].copy_from_slice(&bytes[..take]);
            self.have += take;
            bytes = &bytes[take..];
            if self.have < need {
                continue;
            }
            let full = header_len(&self.header[..2]);
            if self.have < full {
                continue;
            }
            self.remaining = match self.header[1] & 0x7f {
                126 => u16::from_be_bytes([self.header[2], self.header[3]]) as u64,
                127 => u64::from_be_bytes(self.header[2..10].try_into().unwrap_or([0; 8])),
                n => n as u64,
            };
            self.have = 0;
        }
    }
}

/// The start of an HTTP/2 connection (RFC 9113 3.4); such a connection has
/// no request header of its own.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// A request header must arrive whole within `limit` of its first read.
/// Nothing runs while the header arrives in one read (the usual case): the
/// clock is read and the timer set only when a read leaves a header
/// incomplete.
pub struct HeaderDeadline {
    limit: Duration,
    /// The awaited header's request number on this connection (a later
    /// request starts its own deadline), and when the reads of it started
    /// to wait (`None` while they have not had to).
    started: Option<(u32, Option<Instant>)>,
    timer: Option<Pin<Box<Sleep>>>,
    first_read: bool,
    expired: prometheus::IntCounter,
}

/// What [`HeaderDeadline::check`] found.
enum Verdict {
    Within,
    /// An HTTP/2 connection: it has no request header of its own.
    Http2,
    Expired(io::Error),
}

impl HeaderDeadline {
    /// A deadline of `limit` per request header; `expired` is incremented
    /// each time one is missed.
    pub fn new(limit: Duration, expired: prometheus::IntCounter) -> Self {
        HeaderDeadline {
            limit,
            started: None,
            timer: None,
            first_read: true,
            expired,
        }
    }

    fn expired(&self) -> Verdict {
        self.expired.inc();
        Verdict::Expired(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("request header not complete within {:?}", self.limit),
        ))
    }

    /// After a read of the downstream socket: `read` is what it delivered
    /// (`None`: nothing yet).
    fn check(&mut self, conn: &Conn, read: Option<&[u8]>, cx: &mut Context<'_>) -> Verdict {
        let Some(request) = conn.header_awaited() else {
            self.started = None;
            return Verdict::Within;
        };
        if self.started.is_some_and(|(r, _)| r != request) {
            self.started = None;
        }
        match read {
            Some(bytes) => {
                if std::mem::replace(&mut self.first_read, false) && bytes.starts_with(H2_PREFACE) {
                    return Verdict::Http2;
                }
                match self.started.get_or_insert((request, None)) {
                    (_, Some(at)) if at.elapsed() > self.limit => self.expired(),
                    _ => Verdict::Within,
                }
            }
            None => {
                // Idle between requests: the keep-alive timeout applies.
                let Some((_, at)) = self.started.as_mut() else {
                    return Verdict::Within;
                };
                let deadline = tokio::time::Instant::from_std(
                    *at.get_or_insert_with(Instant::now) + self.limit,
                );
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => self.expired(),
                    Poll::Pending => Verdict::Within,
                }
            }
        }
    }
}

/// Where a dropped [`WatchedStream`] leaves its socket for the closer.
pub type Slot = Arc<Mutex<Option<(Stream, FrameTracker)>>>;

/// pingora's downstream stream with frame tracking and a return slot.
pub struct WatchedStream {
    inner: Option<Stream>,
    conn: Arc<Conn>,
    frames: FrameTracker,
    slot: Slot,
    header: Option<HeaderDeadline>,
}

impl std::fmt::Debug for WatchedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchedStream")
            .field("conn", &self.conn.id())
            .field("inner", &self.inner)
            .finish()
    }
}

impl WatchedStream {
    /// Wraps `inner` for `conn`: on drop the socket goes into `slot`;
    /// `header` (if any) bounds how long each request header may take.
    pub fn new(inner: Stream, conn: Arc<Conn>, slot: Slot, header: Option<HeaderDeadline>) -> Self {
        WatchedStream {
            inner: Some(inner),
            conn,
            frames: FrameTracker::default(),
            slot,
            header,
        }
    }

    fn io(&mut self) -> io::Result<&mut Stream> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "stream handed back"))
    }

    fn io_ref(&self) -> Option<&Stream> {
        self.inner.as_ref()
    }
}

impl Drop for WatchedStream {
    fn drop(&mut self) {
        if let Some(stream) = self.inner.take() {
            if let Ok(mut slot) = self.slot.lock() {
                *slot = Some((stream, self.frames.clone()));
            }
        }
    }
}

/// Writes the close frame when the socket is a WebSocket between frames,
/// then closes it.
pub async fn close(stream: &mut Stream, frames: &FrameTracker) {
    if frames.between_frames() {
        let _ = tokio::time::timeout(CLOSE_FRAME_TIMEOUT, async {
            stream.write_all(CLOSE_FRAME).await?;
            stream.flush().await
        })
        .await;
    }
    Shutdown::shutdown(&mut **stream).await;
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(self.io()?).poll_read(cx, buf);
        let this = &mut *self;
        let Some(header) = this.header.as_mut() else {
            return res;
        };
        let read = match &res {
            Poll::Ready(Ok(())) if buf.filled().len() > before => Some(&buf.filled()[before..]),
            Poll::Pending => None,
            _ => return res,
        };
        match header.check(&this.conn, read, cx) {
            Verdict::Within => res,
            Verdict::Http2 => {
                this.header = None;
                res
            }
            Verdict::Expired(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(self.io()?).poll_write(cx, buf))?;
        let upgrading = self.conn.is_upgrading();
        self.frames.observe(&buf[..n], upgrading);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(self.io()?).poll_write_vectored(cx, bufs))?;
        let upgrading = self.conn.is_upgrading();
        let mut left = n;
        for b in bufs {
            if left == 0 {
                break;
            }
            let take = left.min(b.len());
            self.frames.observe(&b[..take], upgrading);
            left -= take;
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.io_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.io()?).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.io()?).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for WatchedStream {
    async fn shutdown(&mut self) {
        if let Some(s) = self.inner.as_mut() {
            Shutdown::shutdown(&mut **s).await;
        }
    }
}

impl UniqueID for WatchedStream {
    fn id(&self) -> UniqueIDType {
        self.io_ref().map(|s| s.id()).unwrap_or_default()
    }
}

impl Ssl for WatchedStream {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.io_ref().and_then(|s| s.get_ssl())
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.io_ref().and_then(|s| s.get_ssl_digest())
    }

    fn selected_alpn_proto(&self) -> Option<pingora::protocols::ALPN> {
        self.io_ref().and_then(|s| s.selected_alpn_proto())
    }
}

impl GetTimingDigest for WatchedStream {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.io_ref()
            .map(|s| s.get_timing_digest())
            .unwrap_or_default()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.io_ref()
            .map(|s| s.get_read_pending_time())
            .unwrap_or_default()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.io_ref()
            .map(|s| s.get_write_pending_time())
            .unwrap_or_default()
    }
}

impl GetProxyDigest for WatchedStream {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.io_ref().and_then(|s| s.get_proxy_digest())
    }

    fn set_proxy_digest(&mut self, digest: pingora::protocols::raw_connect::ProxyDigest) {
        if let Some(s) = self.inner.as_mut() {
            s.set_proxy_digest(digest);
        }
    }
}

impl GetSocketDigest for WatchedStream {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.io_ref().and_then(|s| s.get_socket_digest())
    }

    fn set_socket_digest(&mut self, digest: pingora::protocols::SocketDigest) {
        if let Some(s) = self.inner.as_mut() {
            s.set_socket_digest(digest);
        }
    }
}

#[async_trait]
impl Peek for WatchedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        match self.inner.as_mut() {
            Some(s) => s.try_peek(buf).await,
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload_len: usize, masked: bool) -> Vec<u8> {
        let mut f = vec![0x81];
        let m = if masked { 0x80 } else { 0 };
        if payload_len < 126 {
            f.push(m | payload_len as u8);
        } else if payload_len < 65536 {
            f.push(m | 126);
            f.extend_from_slice(&(payload_len as u16).to_be_bytes());
        } else {
            f.push(m | 127);
            f.extend_from_slice(&(payload_len as u64).to_be_bytes());
        }
        if masked {
            f.extend_from_slice(&[1, 2, 3, 4]);
        }
        f.extend(std::iter::repeat_n(b'x', payload_len));
        f
    }

    #[test]
    fn plain_http_is_never_between_frames() {
        let mut t = FrameTracker::default();
        t.observe(b"HTTP/1.1 200 OK\r\n\r\nhello", false);
        assert!(!t.between_frames());
    }

    #[test]
    fn follows_frames_split_across_writes() {
        let mut t = FrameTracker::default();
        let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        // The head arrives in pieces, split inside the final CRLFCRLF.
        t.observe(&head[..head.len() - 3], true);
        assert!(!t.between_frames());
        t.observe(&head[head.len() - 3..], true);
        assert!(t.between_frames(), "right after the 101 head");

        let mut stream = Vec::new();
        for len in [0usize, 5, 125, 126, 300, 65535, 70_000] {
            stream.extend(frame(len, false));
        }
        stream.extend(frame(10, true));
        // Feed one byte at a time; only frame ends are boundaries.
        let ends: std::collections::HashSet<usize> = {
            let mut at = 0;
            let mut s = std::collections::HashSet::new();
            for len in [0usize, 5, 125, 126, 300, 65535, 70_000] {
                at += frame(len, false).len();
                s.insert(at);
            }
            at += frame(10, true).len();
            s.insert(at);
            s
        };
        for (i, b) in stream.iter().enumerate() {
            t.observe(std::slice::from_ref(b), true);
            assert_eq!(
                t.between_frames(),
                ends.contains(&(i + 1)),
                "after byte {}",
                i + 1
            );
        }
    }

    #[test]
    fn head_and_first_frame_in_one_write() {
        let mut t = FrameTracker::default();
        let mut bytes = b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec();
        bytes.extend(frame(3, false));
        bytes.extend(&frame(200, false)[..10]);
        t.observe(&bytes, true);
        assert!(!t.between_frames());
    }

    #[test]
    fn close_frame_is_well_formed() {
        assert_eq!(CLOSE_FRAME[0], 0x88);
        assert_eq!(CLOSE_FRAME[1] as usize, CLOSE_FRAME.len() - 2);
        assert_eq!(u16::from_be_bytes([CLOSE_FRAME[2], CLOSE_FRAME[3]]), 1008);
        assert_eq!(&CLOSE_FRAME[4..], b"session_revoked");
    }
}
