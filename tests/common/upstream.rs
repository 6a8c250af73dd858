//! A real HTTP/1.1 upstream (hyper, in-process, ephemeral port) that records
//! what it is sent: echo, WebSocket, server-sent events.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::json;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub at: Instant,
}

/// An HTTP/1.1 upstream that records every request and answers with its
/// headers as JSON (`{"path": .., "headers": {..}}`).
pub struct TestUpstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type Body = BoxBody<Bytes, Infallible>;

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed()
}

/// `/ws`: a WebSocket that echoes; `/ws-busy`: one that sends a message
/// every 5 ms.
fn websocket(req: Request<Incoming>, busy: bool) -> Response<Body> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::{Message, Role};
    let key = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| derive_accept_key(k.as_bytes()))
        .unwrap_or_default();
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            hyper_util::rt::TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        let mut n = 0u64;
        loop {
            tokio::select! {
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(t))) if ws.send(Message::Text(t.clone())).await.is_err() => break,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    _ => {}
                },
                _ = tokio::time::sleep(Duration::from_millis(5)), if busy => {
                    n += 1;
                    if ws.send(Message::Text(format!("tick {n}").into())).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    Response::builder()
        .status(101)
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-accept", key)
        .body(full(Bytes::new()))
        .unwrap()
}

/// `/sse`: an endless event stream, one event every 20 ms.
fn sse() -> Response<Body> {
    let events = futures_util::stream::unfold(0u64, |n| async move {
        if n > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let frame = hyper::body::Frame::data(Bytes::from(format!("data: tick {n}\n\n")));
        Some((Ok::<_, Infallible>(frame), n + 1))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(BodyExt::boxed(StreamBody::new(events)))
        .unwrap()
}

async fn echo(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<Body>, Infallible> {
    // A header sent more than once is kept with its values joined by "\n".
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in req.headers() {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        headers
            .entry(k.as_str().to_string())
            .and_modify(|seen| {
                seen.push('\n');
                seen.push_str(&v);
            })
            .or_insert(v);
    }
    let path = req.uri().path().to_string();
    let record = Seen {
        method: req.method().to_string(),
        path: path.clone(),
        headers: headers.clone(),
        at: Instant::now(),
    };
    seen.lock().unwrap().push(record);
    if path.starts_with("/slow") {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if path == "/ws" || path == "/ws-busy" {
        return Ok(websocket(req, path == "/ws-busy"));
    }
    if path == "/sse" {
        return Ok(sse());
    }
    let _ = req.into_body().collect().await;
    let body = json!({"path": path, "headers": headers}).to_string();
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(full(body))
        .unwrap())
}

impl TestUpstream {
    pub fn start() -> TestUpstream {
        let std_listener = StdListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let seen2 = seen.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let seen = seen2.clone();
                            tokio::spawn(async move {
                                let svc = hyper::service::service_fn(move |req| echo(req, seen.clone()));
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                                    .with_upgrades()
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        TestUpstream {
            addr,
            seen,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
