//! The validated `[token]` settings: where tokens are found, which claims
//! name the session and the user, the time rules, and the keys. Built by
//! `config` from the raw file; read by the verifier and the credential
//! collector (so `token` never depends on `config`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;

/// Where a request's token is looked for, in configured order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// A cookie of this name.
    Cookie(String),
    /// A header whose whole value is the token.
    Header(http::HeaderName),
}

/// `[token]`, validated.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// `token.sources`, in order.
    pub sources: Vec<TokenSource>,
    /// `token.session_claim` (default `sid`).
    pub session_claim: String,
    /// `token.user_claim` (default `sub`).
    pub user_claim: String,
    /// `token.issuer`, checked when set.
    pub issuer: Option<String>,
    /// `token.audience` (or, without it, `idp.audiences`): a token's `aud`
    /// must contain one of these; empty: not checked.
    pub audiences: Vec<String>,
    /// `token.leeway_s`: applies to `exp`, `nbf` and a future `iat`.
    pub leeway_s: u64,
    /// `token.max_token_bytes`: longer tokens are `invalid_token`.
    pub max_token_bytes: usize,
    /// `token.max_session_lifetime_s`: the longest a session lives.
    pub max_session_lifetime_s: u64,
    /// `token.require_exp`.
    pub require_exp: bool,
    /// `token.cache_entries` (0: no verified-token cache).
    pub cache_entries: usize,
    /// `token.jwks_reload_s`.
    pub jwks_reload: Duration,
    /// `[[token.keys]]`.
    pub keys: Vec<KeyConfig>,
}

impl TokenConfig {
    /// The settings of a verifier with one HS256 `secret` and no config
    /// file (tests, benches): bearer tokens, `sid` and `sub`, 30 s of
    /// leeway, no `iss`/`aud` check, 8 KiB tokens at most.
    pub fn hs256(secret: &[u8], max_session_lifetime_s: u64, cache_entries: usize) -> TokenConfig {
        TokenConfig {
            sources: vec![TokenSource::Bearer],
            session_claim: "sid".into(),
            user_claim: "sub".into(),
            issuer: None,
            audiences: Vec::new(),
            leeway_s: 30,
            max_token_bytes: 8192,
            max_session_lifetime_s,
            require_exp: false,
            cache_entries,
            jwks_reload: Duration::from_secs(10),
            keys: vec![KeyConfig {
                algorithm: Some(Algorithm::HS256),
                kid: None,
                material: KeyMaterial::Secret(secret.to_vec()),
            }],
        }
    }
}

/// One configured verification key (or JWKS file of keys).
#[derive(Clone)]
pub struct KeyConfig {
    /// Required for secrets and PEM files; for JWKS the JWK's own `alg` wins.
    pub algorithm: Option<Algorithm>,
    /// `kid`: only tokens naming it are tried with this key (for a JWKS
    /// file: only its keys with this `kid` are loaded).
    pub kid: Option<String>,
    /// The key itself.
    pub material: KeyMaterial,
}

impl fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyConfig")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("material", &self.material)
            .finish()
    }
}

/// Where a key comes from.
#[derive(Clone)]
pub enum KeyMaterial {
    /// An HMAC secret (`secret`, `secret_env`, `secret_base64`).
    Secret(Vec<u8>),
    /// A PEM public key (`public_key_file`).
    PublicKeyFile(PathBuf),
    /// A JWKS document (`jwks_file`), reloaded when it changes.
    JwksFile(PathBuf),
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyMaterial::Secret(_) => f.write_str("Secret([redacted])"),
            KeyMaterial::PublicKeyFile(p) => write!(f, "PublicKeyFile({})", p.display()),
            KeyMaterial::JwksFile(p) => write!(f, "JwksFile({})", p.display()),
        }
    }
}
