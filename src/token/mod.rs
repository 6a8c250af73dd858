//! Session tokens: where they are found ([`extract`]), which keys verify them
//! ([`keys`]), and [`Verifier`], which turns raw token bytes into a
//! [`VerifiedToken`] or a [`TokenError`].
//!
//! Check order: size and shape, then algorithm and signature, then the
//! times (`exp`/`nbf`/`iat` with leeway, and the token's age against
//! `token.max_session_lifetime_s`), then `iss`/`aud`. The token's `alg` must
//! equal its key's algorithm, so `none` and HS-with-a-public-key are refused
//! before any cryptography runs. docs/ARCHITECTURE.md has the whole list.

pub mod cache;
mod claims;
mod error;
pub mod extract;
mod jwk;
mod jws;
pub mod keys;
pub mod mint;
pub mod roca;
pub mod settings;

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::de::DeserializeSeed;

use crate::revocation::{session_key, SessionKey};
pub use cache::TokenCache;
use claims::ClaimsSeed;
pub use error::TokenError;
use jws::check_signature;
pub use jws::{verify_jws, verify_signature, Typ, VerifiedJws};
pub use keys::{KeyLoadError, KeySet};
use settings::TokenConfig;

/// What the gateway needs from a token that verified, computed once per
/// token (the cache shares it between that token's requests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// `session_claim`, else `jti`, else the lowercase hex SHA-256 of the token.
    pub session_id: String,
    /// `user_claim`, when present.
    pub user_id: Option<String>,
    /// Issued-at (UNIX seconds), for per-user cutoffs.
    pub iat: Option<i64>,
    /// When the token stops being valid (UNIX seconds): the earlier of its
    /// `exp` and `iat` + `max_session_lifetime_s` (a revocation of its
    /// session must last at least until then).
    pub exp: Option<i64>,
    /// Not-before (UNIX seconds), checked again on cache hits.
    pub nbf: Option<i64>,
    /// `iat` + `max_session_lifetime_s`: past it the token is too old,
    /// whatever its `exp`. Checked again on cache hits.
    pub max_until: Option<i64>,
    /// The session's key in the revocation set.
    pub session_key: SessionKey,
    /// The user's key (same hash), for the connection registry.
    pub user_key: Option<SessionKey>,
    /// `X-Session-Id` value; `None` when the id cannot be a header value.
    pub session_header: Option<http::HeaderValue>,
    /// `X-User-Id` value; `None` without a user or when it cannot be one.
    pub user_header: Option<http::HeaderValue>,
    /// `acr`, for step-up routes.
    pub acr: Option<Box<str>>,
    /// `amr`, for step-up routes.
    pub amr: Box<[Box<str>]>,
    /// `auth_time` (UNIX seconds), for step-up routes and re-authentication.
    pub auth_time: Option<i64>,
}

impl VerifiedToken {
    /// The identity of session `session_id` and user `user_id` (times in
    /// UNIX seconds), with its keys and header values computed; `nbf` and
    /// `max_until` unset.
    pub fn new(
        session_id: String,
        user_id: Option<String>,
        iat: Option<i64>,
        exp: Option<i64>,
    ) -> Self {
        VerifiedToken {
            session_key: session_key(&session_id),
            user_key: user_id.as_deref().map(session_key),
            session_header: http::HeaderValue::from_str(&session_id).ok(),
            user_header: user_id
                .as_deref()
                .and_then(|u| http::HeaderValue::from_str(u).ok()),
            session_id,
            user_id,
            iat,
            exp,
            nbf: None,
            max_until: None,
            acr: None,
            amr: Box::new([]),
            auth_time: None,
        }
    }

    /// The identity can travel in headers (no control characters in ids).
    pub fn is_representable(&self) -> bool {
        self.session_header.is_some() && (self.user_id.is_none() || self.user_header.is_some())
    }
}

/// Latest representable time: 9999-12-31T23:59:59Z. A token time past it
/// is `invalid_token` (nothing stored can then fail to format).
pub const MAX_TIME_S: i64 = 253_402_300_799;

/// A key set and the tokens it verified: swapped together on reload, so a
/// token verified by a key that is gone is never found again, not even
/// when its verification raced the reload (it went into the old cache).
struct Keyed {
    keys: KeySet,
    cache: Option<TokenCache>,
}

/// Verifies tokens against the configured keys and claim rules.
pub struct Verifier {
    keyed: ArcSwap<Keyed>,
    /// The two origins of keys: `[[token.keys]]` and the IdP's JWKS; the set
    /// in use is their union, rebuilt when either changes.
    parts: std::sync::Mutex<(KeySet, KeySet)>,
    /// Woken when a token names a `kid` no key has (the IdP may have
    /// rotated its keys: its JWKS is fetched again, rate-limited).
    key_miss: Arc<tokio::sync::Notify>,
    cache_entries: usize,
    session_claim: Box<str>,
    user_claim: Box<str>,
    issuer: Option<Box<str>>,
    audiences: Box<[Box<str>]>,
    leeway: i64,
    max_lifetime: i64,
    max_token_bytes: usize,
    require_exp: bool,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keyed.load().keys.len())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Builds a verifier; loads every key (errors name `token.keys[i]`).
    pub fn new(config: &TokenConfig) -> Result<Verifier, KeyLoadError> {
        let keys = KeySet::load(&config.keys)?;
        let cache_entries = config.cache_entries;
        Ok(Verifier {
            parts: std::sync::Mutex::new((keys.clone(), KeySet::default())),
            key_miss: Arc::new(tokio::sync::Notify::new()),
            keyed: ArcSwap::from_pointee(Keyed {
                keys,
                cache: (cache_entries > 0).then(|| TokenCache::new(cache_entries)),
            }),
            cache_entries,
            session_claim: config.session_claim.as_str().into(),
            user_claim: config.user_claim.as_str().into(),
            issuer: config.issuer.as_deref().map(Box::from),
            audiences: config
                .audiences
                .iter()
                .map(|a| Box::from(a.as_str()))
                .collect(),
            leeway: config.leeway_s.min(i64::MAX as u64) as i64,
            max_lifetime: config.max_session_lifetime_s.min(i64::MAX as u64) as i64,
            max_token_bytes: config.max_token_bytes,
            require_exp: config.require_exp,
        })
    }

    /// Calls `f` with the key set in use.
    pub fn with_keys<R>(&self, f: impl FnOnce(&KeySet) -> R) -> R {
        f(&self.keyed.load().keys)
    }

    /// Replaces the configured keys (JWKS file reload), keeping the IdP's.
    pub fn replace_keys(&self, keys: KeySet) {
        self.replace_part(|parts| parts.0 = keys);
    }

    /// Replaces the IdP's keys (a JWKS fetched), keeping the configured ones.
    pub fn replace_idp_keys(&self, keys: KeySet) {
        self.replace_part(|parts| parts.1 = keys);
    }

    /// Woken each time a token names a `kid` that no key has.
    pub fn key_misses(&self) -> Arc<tokio::sync::Notify> {
        self.key_miss.clone()
    }

    /// The key set in use becomes the union of the two parts, with an empty
    /// cache: a token verified by a key that is gone must be verified again.
    fn replace_part(&self, edit: impl FnOnce(&mut (KeySet, KeySet))) {
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        edit(&mut parts);
        self.keyed.store(Arc::new(Keyed {
            keys: parts.0.union(&parts.1),
            cache: (self.cache_entries > 0).then(|| TokenCache::new(self.cache_entries)),
        }));
    }

    /// Verifies `token` at UNIX time `now`: from the cache when it verified
    /// before (its times are still checked), else in full.
    #[inline]
    pub fn verify(&self, token: &[u8], now: i64) -> Result<Arc<VerifiedToken>, TokenError> {
        if token.len() > self.max_token_bytes {
            return Err(TokenError::TooLarge);
        }
        let keyed = self.keyed.load();
        let Some(cache) = &keyed.cache else {
            return self.verify_with(&keyed.keys, token, now).map(Arc::new);
        };
        if let Some(hit) = cache.get(token) {
            // Time moves on (and the clock may step back) since it verified.
            self.check_times(hit.exp, hit.nbf, hit.max_until, now)?;
            return Ok(hit);
        }
        let verified = match self.verify_with(&keyed.keys, token, now) {
            Ok(v) => Arc::new(v),
            Err(TokenError::NoMatchingKey) => {
                self.key_miss.notify_one();
                return Err(TokenError::NoMatchingKey);
            }
            Err(e) => return Err(e),
        };
        cache.insert(token, verified.clone());
        Ok(verified)
    }

    /// The checks that depend on `now`: `exp` (with `max_session_lifetime_s`
    /// already applied when there is none) and `nbf` with leeway, and the
    /// token's age.
    fn check_times(
        &self,
        exp: Option<i64>,
        nbf: Option<i64>,
        max_until: Option<i64>,
        now: i64,
    ) -> Result<(), TokenError> {
        if max_until.is_some_and(|until| now > until) {
            return Err(TokenError::TooOld);
        }
        if exp.is_some_and(|exp| now >= exp.saturating_add(self.leeway)) {
            return Err(TokenError::Expired);
        }
        if nbf.is_some_and(|nbf| now.saturating_add(self.leeway) < nbf) {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }

    /// Verifies `token` in full with the current keys: signature, claims,
    /// no cache. The caller ([`Verifier::verify`]) has checked its size.
    pub fn verify_uncached(&self, token: &[u8], now: i64) -> Result<VerifiedToken, TokenError> {
        self.verify_with(&self.keyed.load().keys, token, now)
    }

    fn verify_with(
        &self,
        keys: &KeySet,
        token: &[u8],
        now: i64,
    ) -> Result<VerifiedToken, TokenError> {
        let parts = check_signature(keys, token)?;
        let payload = parts.payload;
        let seed = ClaimsSeed {
            session_claim: &self.session_claim,
            user_claim: &self.user_claim,
            issuer: self.issuer.as_deref(),
            audiences: &self.audiences,
        };
        let mut de = serde_json::Deserializer::from_slice(&payload);
        let claims = seed
            .deserialize(&mut de)
            .map_err(|_| TokenError::Malformed)?;
        de.end().map_err(|_| TokenError::Malformed)?;
        if claims.events {
            // A logout token or a security event token is signed by the
            // same IdP keys, but it is no access token (RFC 8725 3.11).
            return Err(TokenError::WrongType);
        }

        let in_range = |t: Option<i64>| t.is_none_or(|t| (0..=MAX_TIME_S).contains(&t));
        if !(in_range(claims.exp) && in_range(claims.nbf) && in_range(claims.iat)) {
            return Err(TokenError::TimeOutOfRange);
        }
        if claims.exp.is_none() && (self.require_exp || claims.iat.is_none()) {
            // Without exp nor iat a token's age is unknown: it could outlive
            // every revocation of its session.
            return Err(TokenError::MissingExp);
        }
        if claims
            .iat
            .is_some_and(|iat| iat > now.saturating_add(self.leeway))
        {
            // It would survive a user cutoff taken before it "was issued".
            return Err(TokenError::IssuedInFuture);
        }
        // A token lives at most max_session_lifetime_s from its iat, whatever
        // its exp says: `exp` is when it stops being valid.
        let max_until = claims.iat.map(|iat| iat.saturating_add(self.max_lifetime));
        let exp = match (claims.exp, max_until) {
            (Some(exp), Some(until)) => Some(exp.min(until)),
            (exp, until) => exp.or(until),
        };
        self.check_times(exp, claims.nbf, max_until, now)?;
        if claims.iat.is_none()
            && claims
                .exp
                .is_some_and(|exp| exp.saturating_sub(now) > self.max_lifetime)
        {
            // Without iat, an expiry further away than the longest session
            // means a token that would outlive its session's revocation.
            return Err(TokenError::TooOld);
        }
        if self.issuer.is_some() && !claims.issuer_ok {
            return Err(TokenError::Issuer);
        }
        if !self.audiences.is_empty() && !claims.audience_ok {
            return Err(TokenError::Audience);
        }

        let session_id = match claims.session.or(claims.jti) {
            Some(s) => s,
            None => opaque_session_id(parts.signing_input),
        };
        let mut identity = VerifiedToken::new(session_id, claims.user, claims.iat, exp);
        identity.nbf = claims.nbf;
        identity.max_until = max_until;
        identity.acr = claims.acr.map(String::into_boxed_str);
        identity.amr = claims.amr.into_iter().map(String::into_boxed_str).collect();
        identity.auth_time = claims.auth_time;
        Ok(identity)
    }
}

/// The session id of a token without `sid` or `jti`: the lowercase hex
/// SHA-256 of its signing input (`header.payload`), so a re-signed or
/// re-encoded copy of the same token (ECDSA's `s` and `n - s` both verify)
/// is the same session.
pub fn opaque_session_id(signing_input: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        signing_input,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::hmac;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header as JwtHeader};
    use serde_json::json;

    const SECRET: &[u8] = b"unit-test-secret";
    const NOW: i64 = 1_800_000_000;

    fn config() -> TokenConfig {
        TokenConfig::hs256(SECRET, 3600, 1000)
    }

    fn mint(claims: serde_json::Value) -> String {
        encode(
            &JwtHeader::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    #[test]
    fn accepts_good_token() {
        let v = Verifier::new(&config()).unwrap();
        let t = mint(json!({"sub":"alice","sid":"s1","iat":NOW,"exp":NOW+60,"extra":{"a":[1,2]}}));
        let got = v.verify(t.as_bytes(), NOW).unwrap();
        assert_eq!(got.session_id, "s1");
        assert_eq!(got.user_id.as_deref(), Some("alice"));
        assert_eq!(got.iat, Some(NOW));
    }

    #[test]
    fn session_falls_back_to_jti_then_hash() {
        let v = Verifier::new(&config()).unwrap();
        let t = mint(json!({"jti":"j1","exp":NOW+60}));
        assert_eq!(v.verify(t.as_bytes(), NOW).unwrap().session_id, "j1");
        let t = mint(json!({"exp":NOW+60}));
        let got = v.verify(t.as_bytes(), NOW).unwrap();
        assert_eq!(got.session_id.len(), 64);
        let signing_input = &t[..t.rfind('.').unwrap()];
        assert_eq!(got.session_id, opaque_session_id(signing_input.as_bytes()));
        assert_eq!(got.user_id, None);
    }

    #[test]
    fn leeway_applies_to_exp_and_nbf() {
        let v = Verifier::new(&config()).unwrap();
        let t = mint(json!({"sid":"s","exp":NOW}));
        assert!(v.verify(t.as_bytes(), NOW + 29).is_ok());
        assert_eq!(v.verify(t.as_bytes(), NOW + 30), Err(TokenError::Expired));
        let t = mint(json!({"sid":"s","nbf":NOW+30,"exp":NOW+90}));
        assert!(v.verify(t.as_bytes(), NOW).is_ok());
        assert_eq!(
            v.verify(t.as_bytes(), NOW - 1),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn signature_checked_before_expiry() {
        let v = Verifier::new(&config()).unwrap();
        let t = mint(json!({"sid":"s","exp":NOW-3600}));
        let mut tampered = t.clone();
        tampered.pop();
        tampered.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(v.verify(t.as_bytes(), NOW), Err(TokenError::Expired));
        assert_eq!(
            v.verify(tampered.as_bytes(), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn refuses_none_and_garbage() {
        let v = Verifier::new(&config()).unwrap();
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let p = URL_SAFE_NO_PAD.encode(br#"{"sid":"s"}"#);
        let t = format!("{h}.{p}.");
        assert_eq!(v.verify(t.as_bytes(), NOW), Err(TokenError::Malformed));
        let t = format!("{h}.{p}.AAAA");
        assert_eq!(
            v.verify(t.as_bytes(), NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
        assert_eq!(v.verify(b"a.b", NOW), Err(TokenError::Malformed));
        assert_eq!(v.verify(b"a.b.c.d", NOW), Err(TokenError::Malformed));
        assert_eq!(
            v.verify("é.b.c".as_bytes(), NOW),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn token_without_exp_lives_at_most_the_max_session_lifetime() {
        let v = Verifier::new(&config()).unwrap(); // max_session_lifetime_s = 3600
        let t = mint(json!({"sid":"s","iat":NOW}));
        assert_eq!(
            v.verify(t.as_bytes(), NOW + 3000).unwrap().exp,
            Some(NOW + 3600)
        );
        // Past iat + max_session_lifetime_s: too old, no leeway.
        assert_eq!(v.verify(t.as_bytes(), NOW + 3601), Err(TokenError::TooOld));
        let mut c = config();
        c.require_exp = true;
        let v = Verifier::new(&c).unwrap();
        assert_eq!(v.verify(t.as_bytes(), NOW), Err(TokenError::MissingExp));
    }

    #[test]
    fn issuer_and_audience() {
        let mut c = config();
        c.issuer = Some("https://id.example".into());
        c.audiences = vec!["app".into()];
        let v = Verifier::new(&c).unwrap();
        let good =
            mint(json!({"sid":"s","iss":"https://id.example","aud":["x","app"],"exp":NOW+9}));
        assert!(v.verify(good.as_bytes(), NOW).is_ok());
        let bad_iss = mint(json!({"sid":"s","iss":"https://evil","aud":"app","exp":NOW+9}));
        assert_eq!(v.verify(bad_iss.as_bytes(), NOW), Err(TokenError::Issuer));
        let no_aud = mint(json!({"sid":"s","iss":"https://id.example","exp":NOW+9}));
        assert_eq!(v.verify(no_aud.as_bytes(), NOW), Err(TokenError::Audience));
    }

    #[test]
    fn cached_tokens_still_expire_and_bad_ones_are_never_cached() {
        let v = Verifier::new(&config()).unwrap();
        let t = mint(json!({"sid":"s","exp":NOW+60}));
        let first = v.verify(t.as_bytes(), NOW).unwrap();
        let again = v.verify(t.as_bytes(), NOW).unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "second verification comes from the cache"
        );
        assert_eq!(v.verify(t.as_bytes(), NOW + 90), Err(TokenError::Expired));
        let mut bad = t.clone();
        bad.pop();
        bad.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(v.verify(bad.as_bytes(), NOW), Err(TokenError::BadSignature));
        assert_eq!(v.verify(bad.as_bytes(), NOW), Err(TokenError::BadSignature));
        // New keys: nothing verified under the old ones is trusted.
        v.replace_keys(KeySet::load(&[]).unwrap());
        assert_eq!(v.verify(t.as_bytes(), NOW), Err(TokenError::NoMatchingKey));
    }

    #[test]
    fn times_that_would_outlive_a_revocation_are_refused() {
        let v = Verifier::new(&config()).unwrap(); // leeway 30, max lifetime 3600
        let t = mint(json!({"sid":"s"}));
        assert_eq!(v.verify(t.as_bytes(), NOW), Err(TokenError::MissingExp));
        let t = mint(json!({"sid":"s","iat":NOW+31,"exp":NOW+600}));
        assert_eq!(v.verify(t.as_bytes(), NOW), Err(TokenError::IssuedInFuture));
        let t = mint(json!({"sid":"s","iat":NOW+30,"exp":NOW+600}));
        assert!(v.verify(t.as_bytes(), NOW).is_ok(), "within leeway");
        // Older than the longest session, whatever its exp; on a cache hit too.
        let t = mint(json!({"sid":"s","iat":NOW-3000,"exp":NOW+99_999}));
        assert!(v.verify(t.as_bytes(), NOW).is_ok());
        assert_eq!(v.verify(t.as_bytes(), NOW + 601), Err(TokenError::TooOld));
        let t = mint(json!({"sid":"s","iat":NOW-3601,"exp":NOW+600}));
        assert_eq!(v.verify(t.as_bytes(), NOW), Err(TokenError::TooOld));
        // Without iat, an exp further than the longest session.
        let t = mint(json!({"sid":"s","exp":NOW+3601}));
        assert_eq!(v.verify(t.as_bytes(), NOW), Err(TokenError::TooOld));
        let t = mint(json!({"sid":"s","exp":NOW+3600}));
        assert!(v.verify(t.as_bytes(), NOW).is_ok());
        // Milliseconds, and past year 9999.
        let t = mint(json!({"sid":"s","iat":NOW,"exp":(NOW + 60) * 1000}));
        assert_eq!(v.verify(t.as_bytes(), NOW), Err(TokenError::TimeOutOfRange));
        let t = mint(json!({"sid":"s","iat":-1,"exp":NOW + 60}));
        assert_eq!(v.verify(t.as_bytes(), NOW), Err(TokenError::TimeOutOfRange));
    }

    #[test]
    fn other_tokens_of_the_idp_are_no_access_tokens() {
        let v = Verifier::new(&config()).unwrap();
        let t = mint(json!({"sid":"s","iat":NOW,"exp":NOW+60,
            "events":{"http://schemas.openid.net/event/backchannel-logout":{}}}));
        assert_eq!(v.verify(t.as_bytes(), NOW), Err(TokenError::WrongType));
        let mut h = JwtHeader::new(Algorithm::HS256);
        h.typ = Some("logout+jwt".into());
        let t = encode(
            &h,
            &json!({"sid":"s","iat":NOW,"exp":NOW+60}),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(v.verify(t.as_bytes(), NOW), Err(TokenError::WrongType));
    }

    #[test]
    fn duplicated_claims_are_refused() {
        let v = Verifier::new(&config()).unwrap();
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        let body = format!(r#"{{"sub":"alice","sub":"admin","exp":{}}}"#, NOW + 60);
        let p = URL_SAFE_NO_PAD.encode(body.as_bytes());
        let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
        let sig = hmac::sign(&key, format!("{h}.{p}").as_bytes());
        let t = format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
        assert_eq!(v.verify(t.as_bytes(), NOW), Err(TokenError::Malformed));
    }

    #[test]
    fn a_reload_forgets_tokens_even_when_it_races_a_verification() {
        let v = Verifier::new(&config()).unwrap();
        let t = mint(json!({"sid":"s","exp":NOW+60}));
        // A verification that loaded the old keys, then the reload, then
        // its insert into the cache: the insert lands in the old cache.
        let old = v.keyed.load_full();
        v.replace_keys(KeySet::load(&[]).unwrap());
        let verified = Arc::new(v.verify_with(&old.keys, t.as_bytes(), NOW).unwrap());
        if let Some(c) = &old.cache {
            c.insert(t.as_bytes(), verified);
        }
        assert_eq!(v.verify(t.as_bytes(), NOW), Err(TokenError::NoMatchingKey));
    }

    #[test]
    fn oversized_token() {
        let mut c = config();
        c.max_token_bytes = 64;
        let v = Verifier::new(&c).unwrap();
        let t = mint(json!({"sid":"s","pad":"x".repeat(100)}));
        assert_eq!(v.verify(t.as_bytes(), NOW), Err(TokenError::TooLarge));
    }
}
