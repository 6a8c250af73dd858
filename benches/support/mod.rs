//! What the process-level benches share: the test harness
//! (`tests/common`: free loopback ports, tokens, a real upstream, Redis),
//! child processes stopped (by PID) when dropped, and starting the release
//! gateway with a readiness wait.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../tests/common/mod.rs"]
pub mod common;
pub use common::free_port;

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
    let child = Proc(
        Command::new(env!("CARGO_BIN_EXE_sessiongate"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
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
            "gateway ({}) not ready",
            config.display()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
