//! Test harness: a real upstream (hyper, in-process, ephemeral port), the
//! real gateway binary started on free loopback ports with a generated
//! config, and token minting for every algorithm. Nothing sleeps to wait:
//! readiness is polled with a deadline.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Read;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::{Request, Response};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub const SECRET: &str = "integration-test-secret-0123456789";
pub const ADMIN_TOKEN: &str = "admin-test-token-abcdef";

/// Waits until `cond` holds or panics after `within` (no fixed sleeps).
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr, $within:expr, $($msg:tt)+) => {{
        let deadline = std::time::Instant::now() + $within;
        loop {
            if $cond {
                break;
            }
            if std::time::Instant::now() > deadline {
                panic!($($msg)+);
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }};
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("keys")
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_sessiongate")
}

// ---------------------------------------------------------------- upstream

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

// ----------------------------------------------------------------- config

/// The pieces of a gateway config a test changes; the rest is generated.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub upstream: String,
    /// Extra lines of `[upstream]`.
    pub upstream_lines: Vec<String>,
    /// Extra lines of `[listen]`.
    pub listen: Vec<String>,
    /// Extra lines of `[token]`.
    pub token: Vec<String>,
    /// Bodies of `[[token.keys]]` tables.
    pub keys: Vec<String>,
    /// Lines of `[enforcement]`.
    pub enforcement: Vec<String>,
    pub admin_token: Option<String>,
    /// Extra lines of `[admin]`.
    pub admin: Vec<String>,
    /// CA of an HTTPS admin listener (set with `admin.tls_*` lines).
    pub admin_ca: Option<PathBuf>,
    /// Extra lines of `[store]`.
    pub store: Vec<String>,
    /// Raw TOML appended at the end (more tables).
    pub extra: String,
}

impl GatewayConfig {
    /// HS256 with [`SECRET`] and the admin token [`ADMIN_TOKEN`].
    pub fn new(upstream: SocketAddr) -> GatewayConfig {
        GatewayConfig {
            upstream: upstream.to_string(),
            upstream_lines: Vec::new(),
            listen: Vec::new(),
            token: Vec::new(),
            keys: vec![format!("algorithm = \"HS256\"\nsecret = \"{SECRET}\"")],
            enforcement: Vec::new(),
            admin_token: Some(ADMIN_TOKEN.to_string()),
            admin: Vec::new(),
            admin_ca: None,
            store: Vec::new(),
            extra: String::new(),
        }
    }

    pub fn render(&self, proxy: u16, admin: u16) -> String {
        let mut t = format!(
            "[listen]\nproxy = \"127.0.0.1:{proxy}\"\nadmin = \"127.0.0.1:{admin}\"\nthreads = 2\ngrace_period_s = 1\n"
        );
        for l in &self.listen {
            t.push_str(l);
            t.push('\n');
        }
        t.push_str(&format!(
            "\n[upstream]\naddress = \"{}\"\nconnect_timeout_ms = 500\n",
            self.upstream
        ));
        for l in &self.upstream_lines {
            t.push_str(l);
            t.push('\n');
        }
        t.push_str("\n[token]\n");
        for l in &self.token {
            t.push_str(l);
            t.push('\n');
        }
        for k in &self.keys {
            t.push_str("\n[[token.keys]]\n");
            t.push_str(k);
            t.push('\n');
        }
        t.push_str("\n[enforcement]\n");
        for l in &self.enforcement {
            t.push_str(l);
            t.push('\n');
        }
        t.push_str("\n[admin]\n");
        if let Some(a) = &self.admin_token {
            t.push_str(&format!("token = \"{a}\"\n"));
        }
        for l in &self.admin {
            t.push_str(l);
            t.push('\n');
        }
        t.push_str("\n[store]\n");
        if !self
            .store
            .iter()
            .any(|l| l.trim_start().starts_with("path"))
        {
            t.push_str("path = \"data/sessiongate.db\"\n");
        }
        for l in &self.store {
            t.push_str(l);
            t.push('\n');
        }
        t.push_str(&self.extra);
        t
    }
}

// ---------------------------------------------------------------- gateway

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running gateway process; killed (by PID) when dropped.
pub struct Gateway {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub config: GatewayConfig,
    child: Option<Child>,
}

impl Gateway {
    pub async fn start(config: GatewayConfig) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(config, dir).await
    }

    /// Starts in `dir` (reused across restarts to keep the store).
    pub async fn start_in(config: GatewayConfig, dir: tempfile::TempDir) -> Gateway {
        let mut last_err = String::new();
        for _ in 0..5 {
            let (proxy, admin) = (free_port(), free_port());
            if proxy == admin {
                continue;
            }
            match Self::spawn(&config, &dir, proxy, admin).await {
                Ok((child, config_path)) => {
                    return Gateway {
                        proxy: SocketAddr::from(([127, 0, 0, 1], proxy)),
                        admin: SocketAddr::from(([127, 0, 0, 1], admin)),
                        dir,
                        config_path,
                        config,
                        child: Some(child),
                    }
                }
                Err(e) => last_err = e,
            }
        }
        panic!("gateway did not start: {last_err}");
    }

    async fn spawn(
        config: &GatewayConfig,
        dir: &tempfile::TempDir,
        proxy: u16,
        admin: u16,
    ) -> Result<(Child, PathBuf), String> {
        let config_path = dir.path().join("sessiongate.toml");
        std::fs::write(&config_path, config.render(proxy, admin)).unwrap();
        let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
        let mut child = Command::new(binary())
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let client = admin_client(config.admin_ca.as_deref());
        let scheme = if config.admin_ca.is_some() {
            "https://localhost"
        } else {
            "http://127.0.0.1"
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut text = String::new();
                let _ = std::fs::File::open(dir.path().join("gateway.log"))
                    .and_then(|mut f| f.read_to_string(&mut text));
                return Err(format!("exited with {status}: {text}"));
            }
            let ready = client
                .get(format!("{scheme}:{admin}/readyz"))
                .send()
                .await
                .map(|r| r.status() == 200)
                .unwrap_or(false);
            if ready && std::net::TcpStream::connect(("127.0.0.1", proxy)).is_ok() {
                return Ok((child, config_path));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("not ready within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends a signal (by name: TERM, QUIT, KILL...) to the gateway process.
    pub fn signal(&self, sig: &str) {
        send_signal(self.pid(), sig);
    }

    /// Waits for the process to exit; `None` if it is still running after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        wait_child(child, within).await
    }

    /// Starts a second process on the same config with `--upgrade` (it takes
    /// the listeners over once the old one gets SIGQUIT). The new process
    /// becomes this gateway's; the old one is returned.
    pub fn start_upgrade(&mut self) -> Child {
        let log = std::fs::File::create(self.dir.path().join("gateway-upgraded.log")).unwrap();
        let new = Command::new(binary())
            .arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--upgrade")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child.replace(new).expect("gateway running")
    }

    pub fn upgraded_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway-upgraded.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        match self.config.admin_ca {
            Some(_) => format!("https://localhost:{}{}", self.admin.port(), path),
            None => format!("http://{}{}", self.admin, path),
        }
    }

    /// A client for the admin API (trusting its CA when it speaks HTTPS).
    pub fn admin_client(&self) -> reqwest::Client {
        admin_client(self.config.admin_ca.as_deref())
    }

    /// The SQLite store of this gateway.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("data").join("sessiongate.db")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    /// SIGKILL, then wait for the process to be gone. Returns the directory
    /// (store included) for a restart.
    pub fn kill(mut self) -> tempfile::TempDir {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    /// DELETE /v1/sessions/{sid} with the admin token.
    pub async fn revoke_session(&self, sid: &str, reason: &str) -> reqwest::Response {
        self.admin_client()
            .delete(self.admin_url(&format!("/v1/sessions/{sid}")))
            .query(&[("reason", reason)])
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
    }

    /// DELETE /v1/users/{sub}/sessions[?except=] with the admin token.
    pub async fn revoke_user(&self, sub: &str, except: Option<&str>) -> reqwest::Response {
        let mut q = vec![("reason", "test")];
        if let Some(e) = except {
            q.push(("except", e));
        }
        self.admin_client()
            .delete(self.admin_url(&format!("/v1/users/{sub}/sessions")))
            .query(&q)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
    }

    /// GET on the proxy with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        match reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => panic!(
                "GET {path} on {}: {e:?}\n--- gateway log ---\n{}",
                self.proxy,
                self.log_tail()
            ),
        }
    }

    /// The status of a GET with a bearer token; 0 when the connection was
    /// closed under the request (a revocation of its session landing
    /// while it was in flight closes it). A gateway that cannot be reached
    /// fails the test: it refuses nothing.
    pub async fn status(&self, path: &str, token: &str) -> u16 {
        match reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
        {
            Ok(r) => r.status().as_u16(),
            Err(e) if e.is_connect() => panic!(
                "gateway {} unreachable: {e:?}\n{}",
                self.proxy,
                self.log_tail()
            ),
            Err(_) => 0,
        }
    }

    /// The last lines of the gateway's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits (5 s at most) for a series to read `want`: a request is counted
    /// in `logging()`, after its response has gone out.
    pub async fn metric_reaches(&self, series: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = self.metric(series).await;
            if got == want {
                return;
            }
            assert!(Instant::now() < deadline, "{series} is {got}, want {want}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The value of one sample line of /metrics, e.g.
    /// `sessiongate_requests_total{decision="allowed"}`.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self
            .admin_client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or_else(|| panic!("{series} is not in /metrics"))
    }
}

/// A reqwest client; trusts `ca` (PEM) when given.
pub fn admin_client(ca: Option<&Path>) -> reqwest::Client {
    let mut b = reqwest::Client::builder();
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).unwrap();
        b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

pub fn send_signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Polls `child` until it exits or `within` passes.
pub async fn wait_child(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sends one keep-alive request with the bearer token and reads its
/// (content-length) response; answers the status.
pub async fn keep_alive_request(s: &mut tokio::net::TcpStream, token: &str) -> u16 {
    http1_request(s, &format!("Authorization: Bearer {token}\r\n")).await
}

/// Sends `GET /ka` with `headers` (CRLF-terminated lines) on `s` and reads
/// its (content-length) response; answers the status.
pub async fn http1_request(s: &mut tokio::net::TcpStream, headers: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(format!("GET /ka HTTP/1.1\r\nHost: x\r\n{headers}\r\n").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "connection closed mid-response");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len {
                return head.split_whitespace().nth(1).unwrap().parse().unwrap();
            }
        }
    }
}

/// The peer closes `s` (EOF or reset) within `within`.
pub async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

// ----------------------------------------------------------------- tokens

/// Standard claims for user `sub`, session `sid`, issued now, valid 1 h.
pub fn claims(sub: &str, sid: &str) -> Value {
    let now = now();
    json!({"sub": sub, "sid": sid, "iat": now, "exp": now + 3600})
}

pub fn hs256(claims: &Value) -> String {
    sign(Algorithm::HS256, None, claims)
}

fn private_key(alg: Algorithm) -> EncodingKey {
    let read = |name: &str| std::fs::read(keys_dir().join(name)).unwrap();
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            EncodingKey::from_secret(SECRET.as_bytes())
        }
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => EncodingKey::from_rsa_pem(&read("rsa.key.pem")).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&read("es256.key.pem")).unwrap(),
        Algorithm::ES384 => EncodingKey::from_ec_pem(&read("es384.key.pem")).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&read("ed25519.key.pem")).unwrap(),
        _ => unreachable!(),
    }
}

/// Signs `claims` with the test key of `alg` (HMAC: [`SECRET`]).
pub fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    sign_with(alg, kid, claims, &private_key(alg))
}

pub fn sign_with(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(String::from);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// The `[[token.keys]]` body verifying tokens of `alg` made by [`sign`].
pub fn key_config(alg: Algorithm) -> String {
    let pem = |name: &str| keys_dir().join(name).display().to_string();
    let name = format!("{alg:?}");
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            format!("algorithm = \"{name}\"\nsecret = \"{SECRET}\"")
        }
        Algorithm::ES256 => format!(
            "algorithm = \"{name}\"\npublic_key_file = \"{}\"",
            pem("es256.pub.pem")
        ),
        Algorithm::ES384 => format!(
            "algorithm = \"{name}\"\npublic_key_file = \"{}\"",
            pem("es384.pub.pem")
        ),
        Algorithm::EdDSA => format!(
            "algorithm = \"{name}\"\npublic_key_file = \"{}\"",
            pem("ed25519.pub.pem")
        ),
        _ => format!(
            "algorithm = \"{name}\"\npublic_key_file = \"{}\"",
            pem("rsa.pub.pem")
        ),
    }
}

// ------------------------------------------------------------- raw client

/// Sends `head` (request line and headers, without the final blank line)
/// verbatim on a new connection with `Connection: close`; answers status
/// and body. For paths an HTTP client library would normalise.
pub async fn raw_get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

// ------------------------------------------------------------------ geoip

pub const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
pub const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
pub const FIREFOX_MAC: &str =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0";

/// Addresses the generated City database knows (documentation ranges).
pub const IP_LONDON: &str = "198.51.100.7";
pub const IP_ZURICH: &str = "203.0.113.9";
pub const IP_SAO_PAULO: &str = "192.0.2.33";
pub const IP_NEW_YORK: &str = "2001:db8:1::5";

/// Writes a small City database in the GeoIP2 schema (`country.iso_code`,
/// `city.names.en`, `location`) and answers its path.
pub fn city_database(dir: &Path) -> PathBuf {
    let mut w = mmdb_writer::Writer::new("GeoIP2-City");
    let entries = [
        ("198.51.100.0/24", "GB", "London", 51.5142, -0.0931),
        ("203.0.113.0/24", "CH", "Zürich", 47.3769, 8.5417),
        ("192.0.2.0/24", "BR", "São Paulo", -23.5505, -46.6333),
        ("2001:db8:1::/48", "US", "New York", 40.7128, -74.0060),
    ];
    for (net, country, city, lat, lon) in entries {
        let record = json!({
            "country": {"iso_code": country, "names": {"en": country}},
            "city": {"names": {"en": city}},
            "location": {"latitude": lat, "longitude": lon},
        });
        w.insert(net.parse::<ipnet::IpNet>().unwrap(), &record)
            .unwrap();
    }
    let path = dir.join("city.mmdb");
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    path
}

/// The same places in the flat schema of the ip-location-db databases
/// (`country_code`, `city`, `latitude`, `longitude`), with other cities,
/// to tell the two apart.
pub fn flat_city_database(dir: &Path) -> PathBuf {
    let mut w = mmdb_writer::Writer::new("dbip-city");
    let entries = [
        ("198.51.100.0/24", "GB", "Manchester", 53.4808, -2.2426),
        ("203.0.113.0/24", "CH", "Geneva", 46.2044, 6.1432),
    ];
    for (net, country, city, lat, lon) in entries {
        let record =
            json!({"country_code": country, "city": city, "latitude": lat, "longitude": lon});
        w.insert(net.parse::<ipnet::IpNet>().unwrap(), &record)
            .unwrap();
    }
    let path = dir.join("flat-city.mmdb");
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    path
}

/// A gateway config that believes `X-Forwarded-For` from the test client
/// (127.0.0.1) and reads `database`.
pub fn geo_config(upstream: SocketAddr, database: Option<&Path>) -> GatewayConfig {
    let mut cfg = GatewayConfig::new(upstream);
    let db = database
        .map(|p| format!("database = \"{}\"\n", p.display()))
        .unwrap_or_default();
    cfg.extra = format!(
        "\n[geoip]\n{db}trusted_proxies = [\"127.0.0.1/32\", \"::1/128\"]\nreload_s = 1\n\n[sessions]\npersist_interval_s = 1\n"
    );
    cfg
}

/// GET on the proxy as a given device from a given address.
pub async fn get_as(
    gw: &Gateway,
    path: &str,
    token: &str,
    user_agent: &str,
    ip: &str,
) -> reqwest::Response {
    reqwest::Client::new()
        .get(gw.url(path))
        .bearer_auth(token)
        .header("user-agent", user_agent)
        .header("x-forwarded-for", ip)
        .send()
        .await
        .unwrap()
}

// ------------------------------------------------------------------ redis

/// A real redis-server on a free loopback port, with AOF fsynced on every
/// write; killed by PID when dropped. `None` (after a loud message) when the
/// binary is absent, unless SESSIONGATE_REQUIRE_REDIS is set.
pub struct RedisServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    extra: Vec<String>,
}

impl RedisServer {
    pub fn start() -> Option<RedisServer> {
        Self::start_with(&[])
    }

    /// Starts with extra server arguments (ACL users, TLS). Readiness is a
    /// TCP connect when arguments are given (PING may need credentials).
    pub fn start_with(extra: &[String]) -> Option<RedisServer> {
        let found = Command::new("redis-server")
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            if std::env::var_os("SESSIONGATE_REQUIRE_REDIS").is_some() {
                panic!(
                    "redis-server is required (SESSIONGATE_REQUIRE_REDIS is set) but was not found"
                );
            }
            eprintln!("SKIPPED: redis-server not found; install it (apt-get install redis-server) to run the cluster tests");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut server = RedisServer {
            port: 0,
            dir,
            child: None,
            extra: extra.to_vec(),
        };
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return Some(server);
            }
        }
        let log = std::fs::read_to_string(server.dir.path().join("redis.log")).unwrap_or_default();
        panic!("redis-server did not start:\n{log}");
    }

    fn spawn(&mut self) -> bool {
        let log = std::fs::File::create(self.dir.path().join("redis.log")).unwrap();
        let tls = self.extra.iter().any(|a| a == "--tls-port");
        let plain_port = if tls {
            "0".to_string()
        } else {
            self.port.to_string()
        };
        let extra: Vec<String> = self
            .extra
            .iter()
            .map(|a| a.replace("{port}", &self.port.to_string()))
            .collect();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &plain_port])
            .args(&extra)
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--protected-mode", "yes", "--loglevel", "warning"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    self.child = None;
                    return false;
                }
            }
            let up = if self.extra.is_empty() {
                self.ping()
            } else {
                std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            };
            if up {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn ping(&self) -> bool {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port and directory (the AOF is replayed).
    pub fn restart(&mut self) {
        self.kill();
        assert!(self.spawn(), "redis-server did not restart");
    }

    /// `[store]` lines for a gateway on this server.
    pub fn store_lines(&self) -> Vec<String> {
        vec![
            "backend = \"redis\"".to_string(),
            format!("redis_url = \"{}\"", self.url()),
        ]
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
