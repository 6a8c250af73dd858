//! The IdP's signing keys: found by OIDC discovery (or a configured JWKS
//! URL), fetched over HTTPS, refreshed on an interval and at once when a
//! token names an unknown `kid` (at most every
//! [`KID_MISS_MIN_INTERVAL`]), and kept on disk so a start-up during an IdP
//! outage still has them. A failed fetch keeps the keys in use; no key set
//! at all refuses every token (`invalid_token`), never allows one.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::settings::{check_url, IdpConfig, SsfConfig, KID_MISS_MIN_INTERVAL};
use crate::clock;
use crate::token::KeySet;

/// Largest discovery or JWKS document read.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// Time one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// First retry after a failed fetch; doubled up to `idp.refresh_s`.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Where the keys in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysFrom {
    /// None yet: every token is refused.
    Nowhere,
    /// The copy on disk (the IdP has not answered since start-up).
    Cache,
    /// The IdP.
    Idp,
}

/// What `/readyz` and the metrics say of the IdP's keys.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    /// Where the keys in use came from.
    pub from: KeysFrom,
    /// When they were fetched (UNIX milliseconds; 0: never).
    pub fetched_at_ms: i64,
    /// The last fetch's error, when it failed.
    pub last_error: Option<String>,
}

/// Called with each new key set of the IdP (the gateway puts it in the
/// access-token verifier beside the configured keys).
pub type OnKeys = Box<dyn Fn(&KeySet) + Send + Sync>;

/// Counts fetch failures (`sessiongate_jwks_fetch_errors_total`).
pub type OnError = Box<dyn Fn() + Send + Sync>;

/// Where an issuer's keys are found: an IdP's (OIDC discovery) or a
/// Shared Signals transmitter's (SSF discovery).
#[derive(Debug, Clone)]
pub struct KeySource {
    /// `identity provider` or `transmitter`, for the log.
    pub what: &'static str,
    /// The issuer its tokens name, and discovery's `issuer` must equal.
    pub issuer: Option<String>,
    /// The discovery document, when keys are found through one.
    pub discovery_url: Option<String>,
    /// The JWKS URL, instead of discovery.
    pub jwks_url: Option<String>,
    /// PEM roots for a private issuer.
    pub ca_file: Option<std::path::PathBuf>,
    /// How often the keys are fetched again.
    pub refresh: Duration,
    /// The last good JWKS.
    pub cache_file: std::path::PathBuf,
}

impl From<&IdpConfig> for KeySource {
    fn from(c: &IdpConfig) -> KeySource {
        KeySource {
            what: "identity provider",
            issuer: c.issuer.clone(),
            discovery_url: c.issuer.as_ref().map(|i| {
                format!(
                    "{}/.well-known/openid-configuration",
                    i.trim_end_matches('/')
                )
            }),
            jwks_url: c.jwks_url.clone(),
            ca_file: c.ca_file.clone(),
            refresh: c.refresh,
            cache_file: c.cache_file.clone(),
        }
    }
}

impl From<&SsfConfig> for KeySource {
    fn from(c: &SsfConfig) -> KeySource {
        KeySource {
            what: "transmitter",
            issuer: Some(c.transmitter.clone()),
            discovery_url: Some(format!("{}/.well-known/ssf-configuration", c.transmitter)),
            jwks_url: None,
            ca_file: c.ca_file.clone(),
            refresh: c.refresh,
            cache_file: c.cache_file.clone(),
        }
    }
}

/// An issuer's keys (the IdP's, or a transmitter's) and how to fetch them.
pub struct IdpKeys {
    config: KeySource,
    client: reqwest::Client,
    keys: ArcSwap<KeySet>,
    status: Mutex<KeyStatus>,
    /// The `jwks_uri` discovery found (or `idp.jwks_url`).
    jwks_uri: Mutex<Option<String>>,
    /// Bumped by each key set put in use; the receivers wait on it after
    /// an unknown `kid`.
    generation: tokio::sync::watch::Sender<u64>,
    /// Woken by an unknown `kid` (access token or logout token).
    miss: Arc<tokio::sync::Notify>,
    last_attempt_ms: AtomicI64,
    /// The JWKS document in use: one fetched again unchanged keeps the
    /// verifier's cache (no re-verification of every session each refresh).
    last_text: Mutex<Option<String>>,
    on_keys: OnKeys,
    on_error: OnError,
}

impl std::fmt::Debug for IdpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpKeys")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

/// An HTTP client for an IdP or transmitter: its CA file's roots when
/// given (the system's otherwise), a timeout, no redirects to elsewhere.
pub fn http_client(ca_file: Option<&Path>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sessiongate/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("{}: {e}", path.display()))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| e.to_string())
}

/// GETs `url` as JSON text, at most [`MAX_DOCUMENT_BYTES`].
pub async fn get_document(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let mut resp = client
        .get(url)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url}: HTTP {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{url}: {e}"))? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("{url}: larger than {MAX_DOCUMENT_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| format!("{url}: not UTF-8"))
}

impl IdpKeys {
    /// The IdP of `config`, with the keys cached on disk when there are
    /// any (a cache that does not parse is ignored and logged).
    pub fn new(
        config: KeySource,
        miss: Arc<tokio::sync::Notify>,
        on_keys: OnKeys,
        on_error: OnError,
    ) -> Result<IdpKeys, String> {
        let client = http_client(config.ca_file.as_deref())?;
        let idp = IdpKeys {
            jwks_uri: Mutex::new(config.jwks_url.clone()),
            config,
            client,
            keys: ArcSwap::from_pointee(KeySet::default()),
            status: Mutex::new(KeyStatus {
                from: KeysFrom::Nowhere,
                fetched_at_ms: 0,
                last_error: None,
            }),
            generation: tokio::sync::watch::Sender::new(0),
            miss,
            last_attempt_ms: AtomicI64::new(i64::MIN / 2),
            last_text: Mutex::new(None),
            on_keys,
            on_error,
        };
        idp.load_cache();
        Ok(idp)
    }

    fn load_cache(&self) {
        let path = &self.config.cache_file;
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        match KeySet::from_jwks_json(&text, None) {
            Ok(loaded) if !loaded.keys.is_empty() => {
                let fetched_at_ms = std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_millis() as i64);
                tracing::info!(what = self.config.what, file = %path.display(), keys = loaded.keys.len(), "keys loaded from the cache");
                self.put(
                    loaded.keys.with_skipped(loaded.skipped),
                    KeysFrom::Cache,
                    fetched_at_ms,
                );
                *self.last_text.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
            }
            Ok(_) => tracing::warn!(file = %path.display(), "cached IdP JWKS holds no usable key"),
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "cached IdP JWKS ignored"),
        }
    }

    fn put(&self, keys: KeySet, from: KeysFrom, fetched_at_ms: i64) {
        (self.on_keys)(&keys);
        self.keys.store(Arc::new(keys));
        self.touch(from, fetched_at_ms);
    }

    /// The keys in use are current as of `fetched_at_ms`, from `from`.
    fn touch(&self, from: KeysFrom, fetched_at_ms: i64) {
        {
            let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
            s.from = from;
            s.fetched_at_ms = fetched_at_ms;
            s.last_error = None;
        }
        self.generation.send_modify(|g| *g += 1);
    }

    /// The IdP's keys in use (the receivers verify with these only).
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// The issuer tokens and logout tokens must name (`idp.issuer`).
    pub fn issuer(&self) -> Option<&str> {
        self.config.issuer.as_deref()
    }

    /// Where the keys come from.
    pub fn source(&self) -> &KeySource {
        &self.config
    }

    /// Where the keys stand.
    pub fn status(&self) -> KeyStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Seconds since the keys in use were fetched (`None`: no keys).
    pub fn age_s(&self, now_ms: i64) -> Option<i64> {
        let s = self.status();
        (s.from != KeysFrom::Nowhere).then(|| (now_ms - s.fetched_at_ms).max(0) / 1000)
    }

    /// Asks for a fetch because a token named an unknown `kid`, and waits
    /// up to `wait` for a new key set; true when one came. When the rate
    /// limit puts the next fetch further away than `wait`, answers false at
    /// once (the fetch still happens, for the tokens after this one).
    pub async fn refetch_for_unknown_kid(&self, wait: Duration) -> bool {
        let mut rx = self.generation.subscribe();
        rx.borrow_and_update();
        self.miss.notify_one();
        let earliest =
            self.last_attempt_ms.load(Ordering::Relaxed) + KID_MISS_MIN_INTERVAL.as_millis() as i64;
        if earliest > clock::now_ms() + wait.as_millis() as i64 {
            return false;
        }
        matches!(tokio::time::timeout(wait, rx.changed()).await, Ok(Ok(())))
    }

    /// One fetch: discovery (once, or again after a failure), then the
    /// JWKS; the keys replace those in use and are written to the cache.
    pub async fn fetch(&self) -> Result<usize, String> {
        self.last_attempt_ms
            .store(clock::now_ms(), Ordering::Relaxed);
        let result = self.fetch_inner().await;
        if let Err(e) = &result {
            (self.on_error)();
            self.status
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .last_error = Some(e.clone());
            // Discover again next time: the IdP may have moved its keys.
            if self.config.jwks_url.is_none() {
                *self.jwks_uri.lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
        }
        result
    }

    async fn fetch_inner(&self) -> Result<usize, String> {
        let known = self
            .jwks_uri
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let jwks_uri = match known {
            Some(u) => u,
            None => {
                let u = self.discover().await?;
                *self.jwks_uri.lock().unwrap_or_else(|p| p.into_inner()) = Some(u.clone());
                u
            }
        };
        let text = get_document(&self.client, &jwks_uri).await?;
        let unchanged = self
            .last_text
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_deref()
            == Some(text.as_str());
        if unchanged {
            self.touch(KeysFrom::Idp, clock::now_ms());
            return Ok(self.keys.load().len());
        }
        let loaded = KeySet::from_jwks_json(&text, None).map_err(|e| format!("{jwks_uri}: {e}"))?;
        let n = loaded.keys.len();
        if n == 0 {
            tracing::warn!(url = %jwks_uri, "the IdP's JWKS holds no usable key: every IdP token is refused");
        }
        self.put(
            loaded.keys.with_skipped(loaded.skipped),
            KeysFrom::Idp,
            clock::now_ms(),
        );
        *self.last_text.lock().unwrap_or_else(|p| p.into_inner()) = Some(text.clone());
        if let Err(e) = write_atomically(&self.config.cache_file, text.as_bytes()) {
            tracing::warn!(file = %self.config.cache_file.display(), error = %e, "cannot cache the IdP's JWKS");
        }
        Ok(n)
    }

    /// OIDC Discovery 1.0: `{issuer}/.well-known/openid-configuration`,
    /// whose `issuer` must be exactly ours (section 4.3) and whose
    /// `jwks_uri` must be https (or loopback http).
    async fn discover(&self) -> Result<String, String> {
        let (Some(url), Some(issuer)) = (&self.config.discovery_url, &self.config.issuer) else {
            return Err("no issuer to discover the keys from".into());
        };
        discover_jwks_uri(&self.client, url, issuer).await
    }
}

/// Reads a discovery document at `url` (OIDC or SSF configuration): its
/// `issuer` must equal `issuer`, its `jwks_uri` be a URL the gateway fetches.
pub async fn discover_jwks_uri(
    client: &reqwest::Client,
    url: &str,
    issuer: &str,
) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Discovery {
        issuer: String,
        jwks_uri: String,
    }
    let text = get_document(client, url).await?;
    let doc: Discovery =
        serde_json::from_str(&text).map_err(|e| format!("{url}: not a discovery document: {e}"))?;
    if doc.issuer != issuer {
        return Err(format!(
            "{url}: issuer {:?} is not the configured {issuer:?}",
            doc.issuer
        ));
    }
    check_url(&doc.jwks_uri).map_err(|e| format!("{url}: jwks_uri {e}"))?;
    Ok(doc.jwks_uri)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// crash leaves the old copy or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Keeps the IdP's keys fresh: fetches at start, every `idp.refresh_s`,
/// after a failure with backoff (1 s doubling up to the refresh interval),
/// and at once on an unknown `kid` when the last fetch is older than
/// [`KID_MISS_MIN_INTERVAL`].
pub struct KeyRefresh {
    /// The keys kept fresh.
    pub idp: Arc<IdpKeys>,
}

#[async_trait]
impl BackgroundService for KeyRefresh {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let idp = &self.idp;
        let refresh = idp.config.refresh;
        let mut retry = FIRST_RETRY;
        loop {
            let wait = match idp.fetch().await {
                Ok(n) => {
                    tracing::info!(what = idp.config.what, keys = n, "keys fetched");
                    retry = FIRST_RETRY;
                    refresh
                }
                Err(e) => {
                    tracing::warn!(what = idp.config.what, error = %e, "cannot fetch the keys; keeping those in use");
                    let w = retry.min(refresh);
                    retry = (retry * 2).min(refresh);
                    w
                }
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = idp.miss.notified() => {
                    let since = clock::now_ms() - idp.last_attempt_ms.load(Ordering::Relaxed);
                    let min = KID_MISS_MIN_INTERVAL.as_millis() as i64;
                    if since < min {
                        tokio::select! {
                            _ = shutdown.changed() => return,
                            _ = tokio::time::sleep(Duration::from_millis((min - since) as u64)) => {}
                        }
                    }
                }
            }
        }
    }
}
