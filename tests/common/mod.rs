//! Test harness, one file per seam: `upstream` (a real HTTP upstream),
//! `config` (the gateway config builder), `gateway` (the real binary on free
//! loopback ports), `tokens`, `raw` (byte-for-byte requests), `geo`,
//! `redis`, `idp` (oidc-provider and a document server), `ws`, `hooks` (a
//! webhook receiver). Nothing sleeps to wait: readiness is polled with a deadline.
#![allow(dead_code)]

mod upstream;
#[allow(unused_imports)]
pub use upstream::*;
mod config;
#[allow(unused_imports)]
pub use config::*;
mod gateway;
#[allow(unused_imports)]
pub use gateway::*;
mod tokens;
#[allow(unused_imports)]
pub use tokens::*;
mod raw;
#[allow(unused_imports)]
pub use raw::*;
mod geo;
#[allow(unused_imports)]
pub use geo::*;
mod redis_server;
#[allow(unused_imports)]
pub use redis_server::*;
mod idp;
#[allow(unused_imports)]
pub use idp::*;
mod ws;
#[allow(unused_imports)]
pub use ws::*;
mod hooks;
#[allow(unused_imports)]
pub use hooks::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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

/// `sessiongate <command> --config <config>`, ready for more arguments.
pub fn command_with_config(command: &str, config: &Path) -> Command {
    let mut c = Command::new(binary());
    c.args([command, "--config"]).arg(config);
    c
}

/// Moves `new` over `dest` with its mtime `ahead` in the future, so that a
/// reload polling the mtime sees a change even on coarse filesystems.
pub fn replace_file_later(new: &Path, dest: &Path, ahead: Duration) {
    std::fs::File::options()
        .write(true)
        .open(new)
        .unwrap()
        .set_modified(std::time::SystemTime::now() + ahead)
        .unwrap();
    std::fs::rename(new, dest).unwrap();
}

/// Accepts connections on `listener` for as long as the runtime runs,
/// each answered by `answer` in a task of its own.
pub fn serve_each<F, Fut>(listener: tokio::net::TcpListener, answer: F)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream));
        }
    });
}

/// `sessiongate check-config` on `cfg` with `extra` TOML appended exits 2
/// with an error naming `key`.
pub fn assert_config_refused(mut cfg: GatewayConfig, extra: &str, key: &str) {
    let dir = tempfile::tempdir().unwrap();
    cfg.extra.push_str(extra);
    let path = dir.path().join("c.toml");
    std::fs::write(&path, cfg.render(free_port(), free_port())).unwrap();
    let out = command_with_config("check-config", &path).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{extra}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(key), "{extra}: {err}");
}
