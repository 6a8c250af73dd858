//! The raw `[idp]`, `[ssf]`, `[[webhooks]]` and `[log]` tables, as written.

use serde::Deserialize;

/// Default `idp.refresh_s` (seconds).
pub const DEFAULT_IDP_REFRESH_S: u64 = 300;
/// Default `idp.cache_file` (relative to the config file's directory).
pub const DEFAULT_IDP_CACHE_FILE: &str = "data/idp-jwks.json";
/// Default `ssf.cache_file` (relative to the config file's directory).
pub const DEFAULT_SSF_CACHE_FILE: &str = "data/ssf-jwks.json";

/// `[idp]`: the OpenID provider whose keys verify tokens and whose
/// back-channel logouts revoke sessions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdp {
    /// Issuer: discovery at `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub issuer: String,
    /// The JWKS URL, instead of discovery.
    #[serde(default)]
    pub jwks_url: String,
    /// Accepted `aud` values (client ids).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// PEM CA file for a private IdP.
    #[serde(default)]
    pub ca_file: String,
    /// Seconds between JWKS fetches.
    #[serde(default = "d_idp_refresh")]
    pub refresh_s: u64,
    /// The back-channel logout receiver answers.
    #[serde(default = "d_true")]
    pub backchannel_logout: bool,
    /// Where the last good JWKS is kept.
    #[serde(default = "d_idp_cache_file")]
    pub cache_file: String,
}

/// `[ssf]`: the Shared Signals transmitter pushing security events.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSsf {
    /// The transmitter: discovery at `{transmitter}/.well-known/ssf-configuration`.
    pub transmitter: String,
    /// The `aud` the SETs carry.
    pub audience: String,
    /// Environment variable holding the bearer token the transmitter sends.
    pub push_token_env: String,
    /// PEM CA file for a private transmitter.
    #[serde(default)]
    pub ca_file: String,
    /// Seconds between fetches of the transmitter's JWKS.
    #[serde(default = "d_idp_refresh")]
    pub refresh_s: u64,
    /// Where the transmitter's last good JWKS is kept.
    #[serde(default = "d_ssf_cache_file")]
    pub cache_file: String,
}

fn d_idp_refresh() -> u64 {
    DEFAULT_IDP_REFRESH_S
}

fn d_idp_cache_file() -> String {
    DEFAULT_IDP_CACHE_FILE.to_string()
}

fn d_ssf_cache_file() -> String {
    DEFAULT_SSF_CACHE_FILE.to_string()
}

fn d_true() -> bool {
    true
}

/// `[log]`: the shape of log lines.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `text` or `json`.
    #[serde(default)]
    pub format: String,
}
