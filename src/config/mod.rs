//! Configuration: `raw` is the TOML as written; [`Config`] is the validated form
//! every other module consumes. A bad file never starts a gateway: loading
//! answers a [`ConfigError`] naming the file, the line and the key.

mod idp;
pub mod locate;
pub mod raw;
mod raw_events;
mod token;
mod validate;
mod webhooks;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use jsonwebtoken::{Algorithm, AlgorithmFamily};

use raw::{RawConfig, RawKey};

/// A configuration problem, pointing at the key that causes it.
#[derive(Debug, Clone)]
pub struct ConfigError {
    /// The configuration file.
    pub file: PathBuf,
    /// 1-based line of the offending key; `None` when it cannot be located.
    pub line: Option<usize>,
    /// Dotted key (`token.keys[1].algorithm`); empty when the problem is the
    /// whole file (it cannot be read).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// An error found while validating, before the file and line are attached.
#[derive(Debug)]
pub struct KeyError {
    /// Dotted key (`listen.threads`, `token.sources[0]`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl KeyError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from (or a synthetic name for generated configs).
    pub file: PathBuf,
    /// `[listen]`.
    pub listen: Listen,
    /// `[upstream]`.
    pub upstream: Upstream,
    /// `[token]`.
    pub token: TokenConfig,
    /// `[enforcement]`.
    pub enforcement: Enforcement,
    /// `[admin]`.
    pub admin: Admin,
    /// `[store]`.
    pub store: StoreConfig,
    /// `[geoip]`.
    pub geoip: Geoip,
    /// `[sessions]`.
    pub sessions: Sessions,
    /// `[idp]`, when set.
    pub idp: Option<IdpConfig>,
    /// `[ssf]`, when set.
    pub ssf: Option<SsfConfig>,
    /// `[[webhooks]]`.
    pub webhooks: Vec<crate::webhooks::WebhookConfig>,
    /// `log.format`: `text` (default) or `json`; `--log-format` wins.
    pub log_format: crate::logs::LogFormat,
}

/// `[listen]`: the proxy and admin listeners and the process around them.
#[derive(Debug, Clone)]
pub struct Listen {
    /// `listen.proxy`: the address clients connect to (required).
    pub proxy: SocketAddr,
    /// `listen.admin`: the admin API, `/metrics`, `/healthz` and `/readyz`
    /// (default `127.0.0.1:9090`; never the same as `listen.proxy`).
    pub admin: SocketAddr,
    /// `listen.threads`: pingora worker threads of the proxy service (at
    /// least 1, default 2).
    pub threads: usize,
    /// `listen.grace_period_s`: seconds SIGTERM waits for in-flight requests
    /// before exiting (default 5).
    pub grace_period_s: u64,
    /// `listen.shutdown_timeout_s`: seconds the services get to stop after
    /// the grace period (1 to 10 years, default 1).
    pub shutdown_timeout: Duration,
    /// `listen.pid_file`: pingora's pid file, resolved against the config
    /// file's directory (default `data/sessiongate.pid`).
    pub pid_file: PathBuf,
    /// `listen.upgrade_socket`: the Unix socket the listeners are handed
    /// over on during a graceful upgrade, resolved against the config file's
    /// directory (default `data/sessiongate-upgrade.sock`).
    pub upgrade_socket: PathBuf,
    /// The proxy listener terminates TLS with this certificate and key.
    pub tls: Option<ListenTls>,
    /// Cleartext HTTP/2 (prior knowledge) on the proxy listener.
    pub h2c: bool,
    /// Idle client connections are closed after this; `None`: HTTP/1.1
    /// keep-alive is off.
    pub keepalive_timeout: Option<Duration>,
    /// How often certificate files are checked for changes.
    pub tls_reload: Duration,
    /// A request header must be complete this long after its first byte.
    pub request_header_timeout: Option<Duration>,
}

pub use crate::certificate::ListenTls;

/// `[upstream]`: the protected application.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `upstream.address`: `host:port` of the application (required),
    /// resolved once when the proxy is built.
    pub address: String,
    /// `upstream.tls`: connect to the application over TLS (default false).
    pub tls: bool,
    /// TLS server name: `upstream.sni`, or else the host part of `address`
    /// (without IPv6 brackets).
    pub sni: String,
    /// `upstream.connect_timeout_ms`: how long connecting may take (at least
    /// 1 ms, default 2000 ms).
    pub connect_timeout: Duration,
    /// `upstream.read_timeout_s`; `None` (0, the default): no read timeout.
    pub read_timeout: Option<Duration>,
    /// Send `X-Forwarded-For` and `X-Forwarded-Proto` upstream.
    pub x_forwarded: bool,
}

pub use crate::idp::settings::{IdpConfig, SsfConfig};
pub use crate::token::settings::{KeyConfig, KeyMaterial, TokenConfig, TokenSource};

/// `enforcement.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `enforce` (the default): refusals are sent, and revoked sessions'
    /// connections are closed.
    Enforce,
    /// `monitor`: every request is forwarded, its decision counted and sent
    /// upstream in `X-Sessiongate-Decision`; nothing is refused or closed.
    Monitor,
}

/// `[enforcement]`: what happens to requests.
#[derive(Debug, Clone)]
pub struct Enforcement {
    /// `enforcement.mode`.
    pub mode: Mode,
    /// `enforcement.public_paths`: path prefixes forwarded without a token
    /// (default `["/healthz"]`); each canonical, starting with `/`, not
    /// under `/.sessiongate`.
    pub public_paths: Vec<String>,
    /// `enforcement.login_url`: a refusal that would be a 401 is a 302 here
    /// for a browser asking for HTML; `None` (empty): no redirect.
    /// Checked to be a valid `Location` header value when loaded.
    pub login_url: Option<http::HeaderValue>,
    /// `enforcement.fail_closed_after_s`: every request is refused (503
    /// `store_unavailable`) once the store has been silent this long;
    /// `None` (0, the default): enforce from memory indefinitely.
    pub fail_closed_after: Option<Duration>,
    /// `[[enforcement.routes]]`: step-up per path prefix (RFC 9470).
    pub routes: Vec<Route>,
}

/// One step-up route: requests under `prefix` need a token whose `acr` is
/// one of `acr_values` or whose `amr` holds one of `amr_any` (either list
/// may be empty; both empty: any), and whose `auth_time` is at most
/// `max_age_s` old when that is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `prefix`: a path starting with `/`, not under `/.sessiongate`;
    /// matched however a request spells it (`path::widest_reading`).
    pub prefix: String,
    /// `acr_values`.
    pub acr_values: Vec<String>,
    /// `amr_any`.
    pub amr_any: Vec<String>,
    /// `max_age_s`; `None` (0): `auth_time` not checked.
    pub max_age_s: Option<u64>,
}

/// `[admin]`: access to the admin API (its `Debug` redacts the token).
#[derive(Clone, Default)]
pub struct Admin {
    /// The bearer token `/v1/*` requires: `admin.token`, or the value of the
    /// environment variable `admin.token_env` names (never both). `None`:
    /// no token, allowed only when `listen.admin` is on loopback.
    pub token: Option<String>,
    /// The admin listener terminates TLS with this certificate and key.
    pub tls: Option<ListenTls>,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("tls", &self.tls)
            .finish()
    }
}

/// `store.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `embedded` (the default): a SQLite file at `store.path`, one host.
    Embedded,
    /// `redis`: the Redis server at `store.redis_url`, shared by a cluster.
    Redis,
}

/// `[store]`: where revocations, the audit trail and session metadata are kept.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `store.backend`.
    pub backend: Backend,
    /// `store.path`: the embedded store's SQLite file, resolved against the
    /// config file's directory (default `data/sessiongate.db`).
    pub path: PathBuf,
    /// `store.redis_url`: `redis://` or `rediss://` (checked when the
    /// backend is `redis`; default `redis://127.0.0.1:6379/`).
    pub redis_url: String,
    /// `store.purge_interval_s`: time between purges of expired revocations
    /// (at least 1 s, default 60 s).
    pub purge_interval: Duration,
    /// `store.busy_timeout_ms`: how long an embedded-store write waits for
    /// another process's SQLite write lock (default 5000 ms).
    pub busy_timeout: Duration,
    /// `store.redis_prefix`: prefix of every Redis key (default `sessiongate:`).
    pub redis_prefix: String,
    /// `store.audit_max_entries`: the audit trail keeps the newest this many
    /// entries (at least 1000, default 1000000), in SQLite and Redis alike.
    pub audit_max_entries: usize,
    /// `store.redis_stream_maxlen`: approximate length the Redis revocation
    /// stream is trimmed to (at least 100; default
    /// 100000).
    pub redis_stream_maxlen: usize,
    /// `store.redis_ca_file`: PEM CA certificates trusted for `rediss://`,
    /// resolved against the config file's directory; `None`: the system's
    /// and the Mozilla roots.
    pub redis_ca_file: Option<PathBuf>,
}

/// `[geoip]`: locating client addresses, and which proxies to believe.
#[derive(Debug, Clone)]
pub struct Geoip {
    /// `geoip.database`: a MaxMind DB file, resolved against the config
    /// file's directory; `None`: the bundled country database.
    pub database: Option<PathBuf>,
    /// `geoip.trusted_proxies`: peers whose `X-Forwarded-For` is believed
    /// (a bare address is a single-host network).
    pub trusted_proxies: Vec<IpNet>,
    /// `geoip.reload_s`: how often `database` is checked for changes (at
    /// least 1 s, default 60 s).
    pub reload: Duration,
}

/// `[sessions]`: the session registry.
#[derive(Debug, Clone)]
pub struct Sessions {
    /// `sessions.idle_ttl_s` in milliseconds (at least one second).
    pub idle_ttl_ms: i64,
    /// `sessions.max_tracked`: most sessions held in memory (at least 1,
    /// default 1000000).
    pub max_tracked: usize,
    /// `sessions.persist_interval_s`: how often changed session metadata is
    /// written to the store (at least 1 s, default 30 s).
    pub persist_interval: Duration,
    /// `sessions.purge_interval_s`: how often sessions idle past
    /// `idle_ttl_s` are forgotten (at least 1 s, default 60 s).
    pub purge_interval: Duration,
    /// `sessions.refuse_new_location`: refuse a session seen from a new
    /// country until the user confirms it from another of their sessions
    /// (enforce mode only; default false).
    pub refuse_new_location: bool,
    /// `sessions.reauth_max_age_s`: the self-service actions (log out a
    /// device, log out everywhere else, confirm a location) need the
    /// token's `auth_time` at most this old; `None` (0): not checked.
    pub reauth_max_age_s: Option<u64>,
    /// `sessions.max_per_user`: when a user's session beyond this many is
    /// first seen, the one seen least recently is revoked (reason
    /// `session_limit`); `None` (0): no limit.
    pub max_per_user: Option<usize>,
    /// `sessions.max_travel_kmh`: faster between two sightings is
    /// impossible travel (default 1000; from 1 to 100,000).
    pub max_travel_kmh: f64,
    /// `sessions.on_suspicious = "revoke"`: a session marked suspicious is
    /// revoked at once (enforce mode); `false` (`flag`, the default):
    /// marked and audited only.
    pub revoke_suspicious: bool,
}

impl Config {
    /// Reads, parses and validates `path`. Relative paths inside resolve
    /// against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        let dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."));
        Self::from_toml(&text, path, dir)
    }

    /// Parses and validates TOML `text` as if read from `file` in `dir`.
    pub fn from_toml(text: &str, file: &Path, dir: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let (line, key) = match e.span() {
                Some(span) => (
                    Some(locate::line_at(text, span.start)),
                    locate::path_at(text, span.start).unwrap_or_default(),
                ),
                None => (None, String::new()),
            };
            ConfigError {
                file: file.to_path_buf(),
                line,
                key,
                message: e.message().trim().to_string(),
            }
        })?;
        validate::validate(raw, file, dir).map_err(|e| ConfigError {
            file: file.to_path_buf(),
            line: locate::line_of(text, &e.key),
            key: e.key,
            message: e.message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[listen]
proxy = "127.0.0.1:8080"

[upstream]
address = "127.0.0.1:3000"

[[token.keys]]
algorithm = "HS256"
secret = "s3cret"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(
            text,
            Path::new("/etc/sg/sessiongate.toml"),
            Path::new("/etc/sg"),
        )
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.listen.admin.to_string(), "127.0.0.1:9090");
        assert_eq!(c.token.sources.len(), 2);
        assert_eq!(c.store.path, Path::new("/etc/sg/data/sessiongate.db"));
        assert_eq!(c.enforcement.mode, Mode::Enforce);
        assert_eq!(c.token.leeway_s, 30);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = MINIMAL.replace("[upstream]", "[upstream]\nadress = \"x\"");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key, "upstream.adress", "{e}");
        assert_eq!(e.line, Some(6), "{e}");
        assert!(e
            .to_string()
            .starts_with("/etc/sg/sessiongate.toml:6: upstream.adress:"));
    }

    #[test]
    fn bad_algorithm_names_indexed_key() {
        let text = format!("{MINIMAL}\n[[token.keys]]\nalgorithm = \"HS999\"\nsecret = \"x\"\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key, "token.keys[1].algorithm");
        assert!(e.message.contains("HS999"));
        assert_eq!(e.line, Some(13));
    }

    #[test]
    fn admin_off_loopback_needs_token() {
        let text = MINIMAL.replace(
            "proxy = \"127.0.0.1:8080\"",
            "proxy = \"127.0.0.1:8080\"\nadmin = \"0.0.0.0:9090\"",
        );
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key, "admin.token");
        let ok = format!("{text}\n[admin]\ntoken = \"t\"\n");
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn secret_with_rsa_algorithm_is_refused() {
        let text = MINIMAL.replace("HS256", "RS256");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key, "token.keys[0].algorithm");
    }

    #[test]
    fn wrong_type_is_located() {
        let text = MINIMAL.replace("[upstream]", "[upstream]\ntls = \"yes\"");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key, "upstream.tls", "{e}");
    }

    #[test]
    fn bad_public_path_is_refused() {
        let text = format!("{MINIMAL}\n[enforcement]\npublic_paths = [\"/ok\", \"/a/../b\"]\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key, "enforcement.public_paths[1]");
    }
}
