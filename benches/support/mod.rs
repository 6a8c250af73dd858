//! What the process-level benches share: the test harness
//! (`tests/common`: free loopback ports, tokens, a real upstream, Redis),
//! child processes stopped (by PID) when dropped, and starting the release
//! gateway with a readiness wait, and what more than one bench does with
//! it: a runtime, sizes from the environment, tokens, revocations through
//! the admin API, WebSockets through the proxy, the metrics page.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[path = "../../tests/common/mod.rs"]
pub mod common;
pub use common::free_port;

/// A WebSocket client connection.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A multi-threaded Tokio runtime with every driver enabled.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The environment variable `name` parsed, or `default` when unset or unparsable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An HS256 token for `sub` and `sid`, signed with `secret`, valid 1 h from now.
pub fn hs256_token(secret: &str, sub: &str, sid: &str) -> String {
    let now = common::now();
    common::sign_with(
        jsonwebtoken::Algorithm::HS256,
        None,
        &serde_json::json!({"sub": sub, "sid": sid, "iat": now, "exp": now + 3600}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
}

/// `DELETE /v1/sessions/{sid}` on the admin listener `admin` with `token`;
/// asserts it was acknowledged (200).
pub async fn revoke(client: &reqwest::Client, admin: u16, token: &str, sid: &str) {
    let r = client
        .delete(format!("http://127.0.0.1:{admin}/v1/sessions/{sid}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The `/metrics` page of the admin listener `admin`.
pub async fn metrics_text(admin: u16) -> String {
    common::send_text(reqwest::Client::new().get(format!("http://127.0.0.1:{admin}/metrics"))).await
}

/// Opens a WebSocket on `/ws` through the proxy listener `proxy`, with
/// `token` as its bearer token.
pub async fn open_websocket(proxy: u16, token: &str) -> Ws {
    let mut req = format!("ws://127.0.0.1:{proxy}/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    ws
}

/// Accepts a WebSocket on `s` in a new task and holds it open until the
/// client closes it.
pub fn hold_websocket(s: TcpStream) {
    tokio::spawn(async move {
        if let Ok(mut ws) = tokio_tungstenite::accept_async(s).await {
            while let Some(Ok(m)) = ws.next().await {
                if m.is_close() {
                    break;
                }
            }
        }
    });
}

/// Writes `<dir>/<name>.toml` for a gateway on free ports with one worker
/// thread in front of `upstream`, its pid file and upgrade socket named
/// after it, then `rest` (more tables); answers the file and the proxy and
/// admin ports.
pub fn gateway_config(
    dir: &Path,
    name: &str,
    upstream: u16,
    rest: &str,
) -> (std::path::PathBuf, u16, u16) {
    let (proxy, admin) = (free_port(), free_port());
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "[listen]\nproxy = \"127.0.0.1:{proxy}\"\nadmin = \"127.0.0.1:{admin}\"\nthreads = 1\n\
             pid_file = \"{name}.pid\"\nupgrade_socket = \"{name}.sock\"\n\
             [upstream]\naddress = \"127.0.0.1:{upstream}\"\n{rest}"
        ),
    )
    .unwrap();
    (config, proxy, admin)
}

/// A child process, killed and reaped on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sessiongate run --config config` and waits until its admin
/// listener's `/readyz` answers 200 and, when given, `proxy` accepts.
/// Answers the process and the time from spawning it to ready.
pub async fn start_gateway(
    config: &Path,
    admin: u16,
    proxy: Option<u16>,
    limit: Duration,
) -> (Proc, Duration) {
    let started = Instant::now();
    let log = std::fs::File::create(config.with_extension("log")).unwrap();
    let child = Proc(
        Command::new(env!("CARGO_BIN_EXE_sessiongate"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    loop {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{admin}/readyz"))
            .send()
            .await
        {
            let proxy_up =
                proxy.is_none_or(|p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok());
            if r.status() == 200 && proxy_up {
                return (child, started.elapsed());
            }
        }
        assert!(
            started.elapsed() < limit,
            "gateway ({}) not ready: {}",
            config.display(),
            std::fs::read_to_string(config.with_extension("log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
