//! The first layer of the configuration: the TOML file as written, with serde
//! defaults and `deny_unknown_fields`, so that a misspelt key is an error and
//! never a silently disabled rule. Nothing here is trusted yet; `Config::try_from`
//! validates it.

use serde::Deserialize;

pub use super::raw_events::*;

/// Default `listen.admin`: the admin API on loopback.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
/// Default `listen.threads`: proxy worker threads.
pub const DEFAULT_THREADS: usize = 2;
/// Default `sessions.max_travel_kmh`.
pub const DEFAULT_MAX_TRAVEL_KMH: f64 = 1000.0;
/// Default `listen.shutdown_timeout_s` (seconds).
pub const DEFAULT_SHUTDOWN_TIMEOUT_S: u64 = 1;
/// How long an idle HTTP/2 connection is kept with `listen.keepalive_timeout_s = 0`.
pub const DEFAULT_H2_IDLE_WITHOUT_KEEPALIVE_S: u64 = 1;
/// Default `listen.grace_period_s` (seconds).
pub const DEFAULT_GRACE_PERIOD_S: u64 = 5;
/// Default `listen.pid_file` (relative to the config file's directory).
pub const DEFAULT_PID_FILE: &str = "data/sessiongate.pid";
/// Default `listen.upgrade_socket` (relative to the config file's directory).
pub const DEFAULT_UPGRADE_SOCKET: &str = "data/sessiongate-upgrade.sock";
/// Default `upstream.connect_timeout_ms` (milliseconds).
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
/// Default `upstream.read_timeout_s` (seconds): 0, no read timeout.
pub const DEFAULT_READ_TIMEOUT_S: u64 = 0;
/// Default `token.session_claim`.
pub const DEFAULT_SESSION_CLAIM: &str = "sid";
/// Default `token.user_claim`.
pub const DEFAULT_USER_CLAIM: &str = "sub";
/// Default `token.leeway_s` (seconds).
pub const DEFAULT_LEEWAY_S: u64 = 30;
/// Default `token.max_token_bytes` (bytes).
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;
/// Default `token.max_session_lifetime_s` (seconds): 30 days.
pub const DEFAULT_MAX_SESSION_LIFETIME_S: u64 = 30 * 24 * 3600;
/// Default `token.jwks_reload_s` (seconds).
pub const DEFAULT_JWKS_RELOAD_S: u64 = 10;
/// Default `token.cache_entries` (verified tokens).
pub const DEFAULT_TOKEN_CACHE_ENTRIES: usize = 100_000;
/// Default `enforcement.mode`.
pub const DEFAULT_MODE: &str = "enforce";
/// Default `enforcement.public_paths`.
pub const DEFAULT_PUBLIC_PATHS: &[&str] = &["/healthz"];
/// Default `store.backend`: SQLite on this host.
pub const DEFAULT_BACKEND: &str = "embedded";
/// Default `store.path` (relative to the config file's directory).
pub const DEFAULT_STORE_PATH: &str = "data/sessiongate.db";
/// Default `store.redis_url`.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";
/// Default `sessions.idle_ttl_s` (seconds): 30 days.
pub const DEFAULT_IDLE_TTL_S: u64 = 30 * 24 * 3600;
/// Default `sessions.max_tracked` (sessions).
pub const DEFAULT_MAX_TRACKED: usize = 1_000_000;
/// Default `sessions.persist_interval_s` (seconds).
pub const DEFAULT_PERSIST_INTERVAL_S: u64 = 30;
/// Default `geoip.reload_s` (seconds).
pub const DEFAULT_GEOIP_RELOAD_S: u64 = 60;
/// Default `store.purge_interval_s` (seconds).
pub const DEFAULT_PURGE_INTERVAL_S: u64 = 60;
/// Default `store.busy_timeout_ms` (milliseconds).
pub const DEFAULT_BUSY_TIMEOUT_MS: u64 = 5_000;
/// Default `store.redis_prefix`.
pub const DEFAULT_REDIS_PREFIX: &str = "sessiongate:";
/// Default `store.audit_max_entries`: audit entries kept (the newest).
pub const DEFAULT_AUDIT_MAX_ENTRIES: usize = crate::store::DEFAULT_AUDIT_MAX_ENTRIES;
/// Default `sessions.purge_interval_s` (seconds).
pub const DEFAULT_SESSION_PURGE_INTERVAL_S: u64 = 60;
/// Default `store.redis_stream_maxlen` (stream entries).
pub const DEFAULT_STREAM_MAXLEN: usize = 100_000;

/// Default `token.sources`: the `Authorization` bearer token, then the
/// `session` cookie.
pub fn default_token_sources() -> Vec<String> {
    vec!["header:authorization".into(), "cookie:session".into()]
}

/// The whole configuration file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[listen]` (required).
    pub listen: RawListen,
    /// `[upstream]` (required).
    pub upstream: RawUpstream,
    /// `[token]` (it holds `[[token.keys]]`; may be left out with `[idp]`).
    #[serde(default)]
    pub token: RawToken,
    /// `[enforcement]`.
    #[serde(default)]
    pub enforcement: RawEnforcement,
    /// `[admin]`.
    #[serde(default)]
    pub admin: RawAdmin,
    /// `[store]`.
    #[serde(default)]
    pub store: RawStore,
    /// `[geoip]`.
    #[serde(default)]
    pub geoip: RawGeoip,
    /// `[sessions]`.
    #[serde(default)]
    pub sessions: RawSessions,
    /// `[idp]`: keys and logouts from an OpenID provider.
    #[serde(default)]
    pub idp: Option<RawIdp>,
    /// `[ssf]`: a Shared Signals transmitter.
    #[serde(default)]
    pub ssf: Option<RawSsf>,
    /// `[[webhooks]]`: where events are sent.
    #[serde(default)]
    pub webhooks: Vec<RawWebhook>,
    /// `[log]`.
    #[serde(default)]
    pub log: RawLog,
}

/// One `[[webhooks]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// Where events are POSTed.
    pub url: String,
    /// The event types sent.
    pub events: Vec<String>,
    /// Environment variable holding the signing secret.
    pub secret_env: String,
    /// PEM CA file for a private receiver.
    #[serde(default)]
    pub ca_file: String,
}

/// `[listen]`: the proxy and admin listeners and the process around them.
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
    /// Seconds the services are given to stop after the grace period.
    #[serde(default = "d_shutdown_timeout")]
    pub shutdown_timeout_s: u64,
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

/// `[upstream]`: the protected application.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// host:port of the protected application (required).
    pub address: String,
    /// `upstream.tls`: connect to the application over TLS (default false).
    #[serde(default)]
    pub tls: bool,
    /// TLS server name; defaults to the host part of `address`.
    #[serde(default)]
    pub sni: String,
    /// `upstream.connect_timeout_ms`: how long connecting to the application
    /// may take (milliseconds, at least 1).
    #[serde(default = "d_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// 0 means no read timeout (long polls, SSE, WebSockets).
    #[serde(default = "d_read_timeout_s")]
    pub read_timeout_s: u64,
    /// Send `X-Forwarded-For` and `X-Forwarded-Proto` to the application.
    #[serde(default)]
    pub x_forwarded: bool,
}

/// `[token]`: where tokens are found, which claims matter, the time rules
/// and the keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    /// `token.sources`: where the token is looked for, tried in order; each
    /// `header:authorization` (bearer), `header:NAME` or `cookie:NAME`.
    #[serde(default = "default_token_sources")]
    pub sources: Vec<String>,
    /// `token.session_claim`: the claim holding the session id (non-empty).
    #[serde(default = "d_session_claim")]
    pub session_claim: String,
    /// `token.user_claim`: the claim holding the user id (non-empty).
    #[serde(default = "d_user_claim")]
    pub user_claim: String,
    /// `token.issuer`: required `iss`; empty leaves it unchecked.
    #[serde(default)]
    pub issuer: String,
    /// `token.audience`: required `aud`; empty leaves it unchecked.
    #[serde(default)]
    pub audience: String,
    /// `token.leeway_s`: clock skew allowed on `exp`, `nbf` and a future
    /// `iat` (seconds).
    #[serde(default = "d_leeway")]
    pub leeway_s: u64,
    /// `token.max_token_bytes`: longer tokens are `invalid_token` (at least 16).
    #[serde(default = "d_max_token_bytes")]
    pub max_token_bytes: usize,
    /// `token.max_session_lifetime_s`: the longest a session lives
    /// (seconds, at least 1); older tokens are refused and every revocation
    /// is kept at least this long.
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
    /// `[[token.keys]]`: the verification keys (at least one).
    #[serde(default)]
    pub keys: Vec<RawKey>,
}

/// One `[[token.keys]]` entry: an algorithm, an optional `kid`, and exactly
/// one of `secret`, `secret_env`, `secret_base64`, `public_key_file`,
/// `jwks_file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    /// `algorithm`: `HS256`/`384`/`512`, `RS*`, `PS*`, `ES256`/`384` or
    /// `EdDSA`; required for secrets and `public_key_file`, optional for JWKS.
    #[serde(default)]
    pub algorithm: String,
    /// `kid`: this key's id (for a JWKS file, only its keys with this `kid`
    /// are loaded); a token naming a `kid` is verified only with keys of that
    /// `kid`. Empty: none.
    #[serde(default)]
    pub kid: String,
    /// `secret`: an HMAC secret, its UTF-8 bytes.
    pub secret: Option<String>,
    /// `secret_env`: name of the environment variable holding the HMAC secret.
    pub secret_env: Option<String>,
    /// `secret_base64`: an HMAC secret in standard base64.
    pub secret_base64: Option<String>,
    /// `public_key_file`: a PEM public key (relative to the config file's directory).
    pub public_key_file: Option<String>,
    /// `jwks_file`: a JWKS file, reloaded when it changes (relative to the
    /// config file's directory).
    pub jwks_file: Option<String>,
}

/// `[enforcement]`: what happens to requests.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnforcement {
    /// `enforcement.mode`: `enforce` refuses; `monitor` forwards every
    /// request and only reports the decision it would have taken.
    #[serde(default = "d_mode")]
    pub mode: String,
    /// `enforcement.public_paths`: path prefixes forwarded without a token;
    /// each a canonical path starting with `/`, not under `/.sessiongate`.
    #[serde(default = "d_public_paths")]
    pub public_paths: Vec<String>,
    /// `enforcement.login_url`: a refusal that would be a 401 is a 302 to
    /// this URL for a browser asking for HTML; empty: no redirect.
    #[serde(default)]
    pub login_url: String,
    /// Refuse every request (503) once the store has been unreachable this
    /// long; 0 keeps enforcing from memory indefinitely.
    #[serde(default)]
    pub fail_closed_after_s: u64,
    /// `[[enforcement.routes]]`: path prefixes that demand a stronger or
    /// fresher authentication (RFC 9470).
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

/// One `[[enforcement.routes]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// The path prefix it protects.
    pub prefix: String,
    /// The token's `acr` must be one of these, or
    #[serde(default)]
    pub acr_values: Vec<String>,
    /// its `amr` must hold one of these.
    #[serde(default)]
    pub amr_any: Vec<String>,
    /// Its `auth_time` no older than this (seconds; 0: not checked).
    #[serde(default)]
    pub max_age_s: u64,
}

impl Default for RawEnforcement {
    fn default() -> Self {
        Self {
            mode: d_mode(),
            public_paths: d_public_paths(),
            login_url: String::new(),
            fail_closed_after_s: 0,
            routes: Vec::new(),
        }
    }
}

/// `[admin]`: access to the admin API.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// `admin.token`: bearer token required on the admin API's `/v1/*`;
    /// empty: none (allowed only when `listen.admin` is on loopback).
    #[serde(default)]
    pub token: String,
    /// `admin.token_env`: name of the environment variable holding the
    /// admin token (instead of `admin.token`, not with it).
    pub token_env: Option<String>,
    /// PEM certificate chain: the admin listener speaks HTTPS.
    #[serde(default)]
    pub tls_cert_file: String,
    /// PEM private key of `tls_cert_file`.
    #[serde(default)]
    pub tls_key_file: String,
}

/// `[store]`: where revocations, the audit trail and session metadata are kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `store.backend`: `embedded` (SQLite, one host) or `redis` (shared by a cluster).
    #[serde(default = "d_backend")]
    pub backend: String,
    /// `store.path`: the SQLite file of the embedded store (relative to the
    /// config file's directory).
    #[serde(default = "d_store_path")]
    pub path: String,
    /// `store.redis_url`: the Redis server, `redis://` or `rediss://`.
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
    /// `store.audit_max_entries`: the audit trail keeps the newest this many.
    #[serde(default = "d_audit_max_entries")]
    pub audit_max_entries: usize,
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
            audit_max_entries: d_audit_max_entries(),
        }
    }
}

/// `[geoip]`: locating client addresses, and which proxies to believe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeoip {
    /// `geoip.database`: a MaxMind DB file (relative to the config file's
    /// directory); empty: the bundled country database.
    #[serde(default)]
    pub database: String,
    /// `geoip.trusted_proxies`: CIDRs or addresses whose `X-Forwarded-For`
    /// is believed.
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

/// `[sessions]`: the session registry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSessions {
    /// `sessions.idle_ttl_s`: a session not seen for this long is forgotten
    /// (seconds, at least 1).
    #[serde(default = "d_idle_ttl")]
    pub idle_ttl_s: u64,
    /// `sessions.max_tracked`: most sessions held in memory (at least 1).
    #[serde(default = "d_max_tracked")]
    pub max_tracked: usize,
    /// How often session metadata is written to the store.
    #[serde(default = "d_persist_interval")]
    pub persist_interval_s: u64,
    /// `sessions.purge_interval_s`: how often idle sessions are forgotten.
    #[serde(default = "d_session_purge_interval")]
    pub purge_interval_s: u64,
    /// Refuse a session seen from a new country until the user confirms it
    /// from one of their other sessions.
    #[serde(default)]
    pub refuse_new_location: bool,
    /// Self-service actions need an `auth_time` at most this old (seconds;
    /// 0: not checked).
    #[serde(default)]
    pub reauth_max_age_s: u64,
    /// Most sessions a user may have (0: no limit); a new one revokes the
    /// one seen least recently.
    #[serde(default)]
    pub max_per_user: usize,
    /// Faster than this between two sightings (km/h) is impossible travel.
    #[serde(default = "d_max_travel_kmh")]
    pub max_travel_kmh: f64,
    /// What a suspicious session gets: `flag` (marked, audited) or `revoke`.
    #[serde(default = "d_on_suspicious")]
    pub on_suspicious: String,
}

fn d_max_travel_kmh() -> f64 {
    DEFAULT_MAX_TRAVEL_KMH
}
fn d_on_suspicious() -> String {
    "flag".into()
}

impl Default for RawSessions {
    fn default() -> Self {
        Self {
            idle_ttl_s: d_idle_ttl(),
            max_tracked: d_max_tracked(),
            persist_interval_s: d_persist_interval(),
            purge_interval_s: d_session_purge_interval(),
            refuse_new_location: false,
            reauth_max_age_s: 0,
            max_per_user: 0,
            max_travel_kmh: d_max_travel_kmh(),
            on_suspicious: d_on_suspicious(),
        }
    }
}

fn d_admin_listen() -> String {
    DEFAULT_ADMIN_LISTEN.into()
}
fn d_threads() -> usize {
    DEFAULT_THREADS
}
fn d_shutdown_timeout() -> u64 {
    DEFAULT_SHUTDOWN_TIMEOUT_S
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
pub(super) fn d_session_claim() -> String {
    DEFAULT_SESSION_CLAIM.into()
}
pub(super) fn d_user_claim() -> String {
    DEFAULT_USER_CLAIM.into()
}
pub(super) fn d_leeway() -> u64 {
    DEFAULT_LEEWAY_S
}
pub(super) fn d_max_token_bytes() -> usize {
    DEFAULT_MAX_TOKEN_BYTES
}
pub(super) fn d_max_session_lifetime() -> u64 {
    DEFAULT_MAX_SESSION_LIFETIME_S
}
pub(super) fn d_jwks_reload() -> u64 {
    DEFAULT_JWKS_RELOAD_S
}
pub(super) fn d_cache_entries() -> usize {
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
fn d_audit_max_entries() -> usize {
    DEFAULT_AUDIT_MAX_ENTRIES
}
fn d_session_purge_interval() -> u64 {
    DEFAULT_SESSION_PURGE_INTERVAL_S
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
