//! A real redis-server on a free loopback port.

use super::*;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

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
