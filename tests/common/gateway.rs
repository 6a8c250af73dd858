//! The real gateway binary on free loopback ports, waited for by readiness,
//! stopped by PID; its admin API and metrics as a test reads them.

use super::*;
use std::io::Read;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
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
        Self::start_with(config, dir, None, true).await
    }

    /// Starts with its proxy listener on `proxy` (a port another process
    /// was told of before, such as an IdP's back-channel logout URI).
    pub async fn start_at(config: GatewayConfig, proxy: u16) -> Gateway {
        Self::start_with(config, tempfile::tempdir().unwrap(), Some(proxy), true).await
    }

    /// Starts without waiting for `/readyz` to say ready (only for the
    /// admin listener to answer): a gateway that cannot be ready yet.
    pub async fn start_unready(config: GatewayConfig) -> Gateway {
        Self::start_with(config, tempfile::tempdir().unwrap(), None, false).await
    }

    async fn start_with(
        config: GatewayConfig,
        dir: tempfile::TempDir,
        proxy: Option<u16>,
        ready: bool,
    ) -> Gateway {
        let mut last_err = String::new();
        for _ in 0..5 {
            let (proxy, admin) = (proxy.unwrap_or_else(free_port), free_port());
            if proxy == admin {
                continue;
            }
            match Self::spawn(&config, &dir, proxy, admin, ready).await {
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
        ready: bool,
    ) -> Result<(Child, PathBuf), String> {
        let config_path = dir.path().join("sessiongate.toml");
        std::fs::write(&config_path, config.render(proxy, admin)).unwrap();
        let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
        let mut child = Command::new(binary())
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .envs(config.env.iter().map(|(k, v)| (k, v)))
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
                .map(|r| r.status() == 200 || !ready)
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

    /// A request to the admin API carrying the admin token.
    pub fn admin_request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.admin_client()
            .request(method, self.admin_url(path))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// GET on the admin API with the admin token.
    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.admin_request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }

    /// Whether some entry of the audit trail satisfies `pred`.
    pub async fn audit_has(&self, pred: impl Fn(&serde_json::Value) -> bool) -> bool {
        let audit = self.admin_json("/v1/audit").await;
        audit["entries"]
            .as_array()
            .is_some_and(|entries| entries.iter().any(pred))
    }

    /// GET on the admin API with the admin token; answers the JSON body.
    pub async fn admin_json(&self, path: &str) -> serde_json::Value {
        self.admin_get(path).await.json().await.unwrap()
    }

    /// DELETE /v1/sessions/{sid} with the admin token.
    pub async fn revoke_session(&self, sid: &str, reason: &str) -> reqwest::Response {
        self.admin_request(reqwest::Method::DELETE, &format!("/v1/sessions/{sid}"))
            .query(&[("reason", reason)])
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
        self.admin_request(
            reqwest::Method::DELETE,
            &format!("/v1/users/{sub}/sessions"),
        )
        .query(&q)
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
        let text = send_text(self.admin_client().get(self.admin_url("/metrics"))).await;
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or_else(|| panic!("{series} is not in /metrics"))
    }
}

/// Sends `req` and answers its response body parsed as JSON.
pub async fn send_json(req: reqwest::RequestBuilder) -> serde_json::Value {
    req.send().await.unwrap().json().await.unwrap()
}

/// Sends `req` and answers its response body as text.
pub async fn send_text(req: reqwest::RequestBuilder) -> String {
    req.send().await.unwrap().text().await.unwrap()
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
