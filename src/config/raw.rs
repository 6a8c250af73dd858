//! The first layer of the configuration: the TOML file as written, with serde
//! defaults and `deny_unknown_fields`, so that a misspelt key is an error and
//! never a silently disabled rule. Nothing here is trusted yet; `Config::try_from`
//! validates it.

use serde::Deserialize;

pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
pub const DEFAULT_THREADS: usize = 2;
pub const DEFAULT_GRACE_PERIOD_S: u64 = 5;
pub const DEFAULT_PID_FILE: &str = "data/sessiongate.pid";
pub const DEFAULT_UPGRADE_SOCKET: &str = "data/sessiongate-upgrade.sock";
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
pub const DEFAULT_READ_TIMEOUT_S: u64 = 0;
pub const DEFAULT_SESSION_CLAIM: &str = "sid";
pub const DEFAULT_USER_CLAIM: &str = "sub";
pub const DEFAULT_LEEWAY_S: u64 = 30;
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;
pub const DEFAULT_MAX_SESSION_LIFETIME_S: u64 = 30 * 24 * 3600;
pub const DEFAULT_JWKS_RELOAD_S: u64 = 10;
pub const DEFAULT_TOKEN_CACHE_ENTRIES: usize = 100_000;
pub const DEFAULT_MODE: &str = "enforce";
pub const DEFAULT_PUBLIC_PATHS: &[&str] = &["/healthz"];
pub const DEFAULT_BACKEND: &str = "embedded";
pub const DEFAULT_STORE_PATH: &str = "data/sessiongate.db";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";
pub const DEFAULT_IDLE_TTL_S: u64 = 30 * 24 * 3600;
pub const DEFAULT_MAX_TRACKED: usize = 1_000_000;
pub const DEFAULT_PERSIST_INTERVAL_S: u64 = 30;
pub const DEFAULT_GEOIP_RELOAD_S: u64 = 60;
pub const DEFAULT_PURGE_INTERVAL_S: u64 = 60;
pub const DEFAULT_BUSY_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_REDIS_PREFIX: &str = "sessiongate:";
pub const DEFAULT_STREAM_MAXLEN: usize = 100_000;

pub fn default_token_sources() -> Vec<String> {
    vec!["header:authorization".into(), "cookie:session".into()]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: RawListen,
    pub upstream: RawUpstream,
    pub token: RawToken,
    #[serde(default)]
    pub enforcement: RawEnforcement,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub geoip: RawGeoip,
    #[serde(default)]
    pub sessions: RawSessions,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    /// Address clients connect to (required).
    pub proxy: String,
    /// Admin API, /metrics, /healthz, /readyz.
    #[serde(default = "d_admin_listen")]
    pub admin: String,
    /// pingora worker threads of the proxy service.
    #[serde(default = "d_threads")]
    pub threads: usize,
    /// Seconds SIGTERM waits for in-flight requests before exiting.
    #[serde(default = "d_grace")]
    pub grace_period_s: u64,
    /// pingora pid file (relative to the config file's directory).
    #[serde(default = "d_pid_file")]
    pub pid_file: String,
    /// Unix socket the listeners are handed over on during a graceful upgrade.
    #[serde(default = "d_upgrade_socket")]
    pub upgrade_socket: String,
    /// PEM certificate chain: the proxy listener speaks TLS (HTTP/2 and
    /// HTTP/1.1 by ALPN). Needs `tls_key_file`.
    #[serde(default)]
    pub tls_cert_file: String,
    /// PEM private key of `tls_cert_file`.
    #[serde(default)]
    pub tls_key_file: String,
    /// Cleartext HTTP/2 with prior knowledge on the proxy listener (behind a
    /// load balancer that speaks h2c); HTTP/1.1 still works.
    #[serde(default)]
    pub h2c: bool,
    /// Seconds an idle client connection (HTTP/1.1 keep-alive, HTTP/2) is
    /// kept waiting for its next request; 0 closes HTTP/1.1 connections
    /// after each response (HTTP/2 ones after 1 s idle).
    #[serde(default = "d_keepalive_timeout")]
    pub keepalive_timeout_s: u64,
    /// How often TLS certificate files (proxy and admin) are checked for
    /// changes; a changed pair is served to new handshakes.
    #[serde(default = "d_tls_reload")]
    pub tls_reload_s: u64,
    /// Seconds a request header may take from its first byte to its last
    /// (slow-header clients); 0 leaves only pingora's per-read timeouts.
    #[serde(default = "d_request_header_timeout")]
    pub request_header_timeout_s: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// host:port of the protected application (required).
    pub address: String,
    #[serde(default)]
    pub tls: bool,
    /// TLS server name; defaults to the host part of `address`.
    #[serde(default)]
    pub sni: String,
    #[serde(default = "d_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// 0 means no read timeout (long polls, SSE, WebSockets).
    #[serde(default = "d_read_timeout_s")]
    pub read_timeout_s: u64,
    /// Send `X-Forwarded-For` and `X-Forwarded-Proto` to the application.
    #[serde(default)]
    pub x_forwarded: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    #[serde(default = "default_token_sources")]
    pub sources: Vec<String>,
    #[serde(default = "d_session_claim")]
    pub session_claim: String,
    #[serde(default = "d_user_claim")]
    pub user_claim: String,
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub audience: String,
    #[serde(default = "d_leeway")]
    pub leeway_s: u64,
    #[serde(default = "d_max_token_bytes")]
    pub max_token_bytes: usize,
    #[serde(default = "d_max_session_lifetime")]
    pub max_session_lifetime_s: u64,
    /// Refuse tokens without `exp` as `invalid_token`.
    #[serde(default)]
    pub require_exp: bool,
    /// How often JWKS files are checked for changes.
    #[serde(default = "d_jwks_reload")]
    pub jwks_reload_s: u64,
    /// Verified tokens remembered (0 verifies every request in full).
    #[serde(default = "d_cache_entries")]
    pub cache_entries: usize,
    #[serde(default)]
    pub keys: Vec<RawKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    #[serde(default)]
    pub algorithm: String,
    #[serde(default)]
    pub kid: String,
    pub secret: Option<String>,
    pub secret_env: Option<String>,
    pub secret_base64: Option<String>,
    pub public_key_file: Option<String>,
    pub jwks_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnforcement {
    #[serde(default = "d_mode")]
    pub mode: String,
    #[serde(default = "d_public_paths")]
    pub public_paths: Vec<String>,
    #[serde(default)]
    pub login_url: String,
    /// Refuse every request (503) once the store has been unreachable this
    /// long; 0 keeps enforcing from memory indefinitely.
    #[serde(default)]
    pub fail_closed_after_s: u64,
}

impl Default for RawEnforcement {
    fn default() -> Self {
        Self {
            mode: d_mode(),
            public_paths: d_public_paths(),
            login_url: String::new(),
            fail_closed_after_s: 0,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    #[serde(default)]
    pub token: String,
    pub token_env: Option<String>,
    /// PEM certificate chain: the admin listener speaks HTTPS.
    #[serde(default)]
    pub tls_cert_file: String,
    /// PEM private key of `tls_cert_file`.
    #[serde(default)]
    pub tls_key_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    #[serde(default = "d_backend")]
    pub backend: String,
    #[serde(default = "d_store_path")]
    pub path: String,
    #[serde(default = "d_redis_url")]
    pub redis_url: String,
    /// Seconds between purges of expired revocations.
    #[serde(default = "d_purge_interval")]
    pub purge_interval_s: u64,
    /// How long a write waits for another process holding the SQLite write
    /// lock before the revocation answers 503.
    #[serde(default = "d_busy_timeout")]
    pub busy_timeout_ms: u64,
    /// Prefix of every Redis key.
    #[serde(default = "d_redis_prefix")]
    pub redis_prefix: String,
    /// Approximate length the Redis revocation stream is trimmed to.
    #[serde(default = "d_stream_maxlen")]
    pub redis_stream_maxlen: usize,
    /// PEM CA certificate(s) trusted for `rediss://` (default: the system's
    /// and the Mozilla roots).
    #[serde(default)]
    pub redis_ca_file: String,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            backend: d_backend(),
            path: d_store_path(),
            redis_url: d_redis_url(),
            purge_interval_s: d_purge_interval(),
            busy_timeout_ms: d_busy_timeout(),
            redis_prefix: d_redis_prefix(),
            redis_stream_maxlen: d_stream_maxlen(),
            redis_ca_file: String::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeoip {
    #[serde(default)]
    pub database: String,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// How often the database file is checked for changes.
    #[serde(default = "d_geoip_reload")]
    pub reload_s: u64,
}

impl Default for RawGeoip {
    fn default() -> Self {
        Self {
            database: String::new(),
            trusted_proxies: Vec::new(),
            reload_s: d_geoip_reload(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSessions {
    #[serde(default = "d_idle_ttl")]
    pub idle_ttl_s: u64,
    #[serde(default = "d_max_tracked")]
    pub max_tracked: usize,
    /// How often session metadata is written to the store.
    #[serde(default = "d_persist_interval")]
    pub persist_interval_s: u64,
    /// Refuse a session seen from a new country until the user confirms it
    /// from one of their other sessions.
    #[serde(default)]
    pub refuse_new_location: bool,
}

impl Default for RawSessions {
    fn default() -> Self {
        Self {
            idle_ttl_s: d_idle_ttl(),
            max_tracked: d_max_tracked(),
            persist_interval_s: d_persist_interval(),
            refuse_new_location: false,
        }
    }
}

fn d_admin_listen() -> String {
    DEFAULT_ADMIN_LISTEN.into()
}
fn d_threads() -> usize {
    DEFAULT_THREADS
}
fn d_grace() -> u64 {
    DEFAULT_GRACE_PERIOD_S
}
fn d_pid_file() -> String {
    DEFAULT_PID_FILE.into()
}
fn d_upgrade_socket() -> String {
    DEFAULT_UPGRADE_SOCKET.into()
}
fn d_connect_timeout_ms() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}
fn d_read_timeout_s() -> u64 {
    DEFAULT_READ_TIMEOUT_S
}
fn d_session_claim() -> String {
    DEFAULT_SESSION_CLAIM.into()
}
fn d_user_claim() -> String {
    DEFAULT_USER_CLAIM.into()
}
fn d_leeway() -> u64 {
    DEFAULT_LEEWAY_S
}
fn d_max_token_bytes() -> usize {
    DEFAULT_MAX_TOKEN_BYTES
}
fn d_max_session_lifetime() -> u64 {
    DEFAULT_MAX_SESSION_LIFETIME_S
}
fn d_jwks_reload() -> u64 {
    DEFAULT_JWKS_RELOAD_S
}
fn d_cache_entries() -> usize {
    DEFAULT_TOKEN_CACHE_ENTRIES
}
fn d_mode() -> String {
    DEFAULT_MODE.into()
}
fn d_public_paths() -> Vec<String> {
    DEFAULT_PUBLIC_PATHS.iter().map(|s| s.to_string()).collect()
}
fn d_backend() -> String {
    DEFAULT_BACKEND.into()
}
fn d_store_path() -> String {
    DEFAULT_STORE_PATH.into()
}
fn d_redis_url() -> String {
    DEFAULT_REDIS_URL.into()
}
fn d_purge_interval() -> u64 {
    DEFAULT_PURGE_INTERVAL_S
}
fn d_busy_timeout() -> u64 {
    DEFAULT_BUSY_TIMEOUT_MS
}
fn d_request_header_timeout() -> u64 {
    10
}
fn d_tls_reload() -> u64 {
    10
}
fn d_keepalive_timeout() -> u64 {
    60
}
fn d_persist_interval() -> u64 {
    DEFAULT_PERSIST_INTERVAL_S
}
fn d_geoip_reload() -> u64 {
    DEFAULT_GEOIP_RELOAD_S
}
fn d_redis_prefix() -> String {
    DEFAULT_REDIS_PREFIX.into()
}
fn d_stream_maxlen() -> usize {
    DEFAULT_STREAM_MAXLEN
}
fn d_idle_ttl() -> u64 {
    DEFAULT_IDLE_TTL_S
}
fn d_max_tracked() -> usize {
    DEFAULT_MAX_TRACKED
}
