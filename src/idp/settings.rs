//! The validated `[idp]` and `[ssf]` settings (built by `config`, read by
//! the key fetcher and the receivers, so `idp` never depends on `config`).

use std::path::PathBuf;
use std::time::Duration;

/// Least time between two fetches of the IdP's JWKS caused by unknown `kid`s.
pub const KID_MISS_MIN_INTERVAL: Duration = Duration::from_secs(10);

/// `[idp]`, validated.
#[derive(Debug, Clone)]
pub struct IdpConfig {
    /// `idp.issuer`: discovery at `{issuer}/.well-known/openid-configuration`,
    /// and the `iss` of its tokens.
    pub issuer: Option<String>,
    /// `idp.jwks_url`: the JWKS, instead of the discovered `jwks_uri`.
    pub jwks_url: Option<String>,
    /// `idp.audiences`: accepted `aud` values of logout tokens (and of
    /// access tokens when `token.audience` is not set).
    pub audiences: Vec<String>,
    /// `idp.ca_file`: PEM roots for a private IdP (default: the system's).
    pub ca_file: Option<PathBuf>,
    /// `idp.refresh_s`: how often the JWKS is fetched again.
    pub refresh: Duration,
    /// `idp.backchannel_logout`: the receiver at
    /// `/.sessiongate/backchannel-logout` answers.
    pub backchannel_logout: bool,
    /// `idp.cache_file`: the last good JWKS, used at start-up while the
    /// IdP cannot be reached.
    pub cache_file: PathBuf,
}

/// `[ssf]`, validated: the Shared Signals transmitter this gateway receives from.
#[derive(Debug, Clone)]
pub struct SsfConfig {
    /// `ssf.transmitter`: discovery at `{transmitter}/.well-known/ssf-configuration`.
    pub transmitter: String,
    /// `ssf.audience`: the `aud` its SETs carry.
    pub audience: String,
    /// The bearer token the transmitter sends (from `ssf.push_token_env`).
    pub push_token: String,
    /// `ssf.ca_file`: PEM roots for a private transmitter.
    pub ca_file: Option<PathBuf>,
    /// `ssf.refresh_s`: how often the transmitter's JWKS is fetched again.
    pub refresh: Duration,
    /// `ssf.cache_file`: the transmitter's last good JWKS.
    pub cache_file: PathBuf,
}

/// A URL the gateway fetches keys or metadata from: `https://`, or
/// `http://` to a loopback address only (a sidecar IdP, tests).
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(format!(
                    "{url:?}: http:// only to a loopback address; use https://"
                ))
            }
        }
        other => Err(format!("{url:?}: scheme {other:?} (expected https://)")),
    }
}
