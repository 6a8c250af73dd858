//! Verification keys, parsed once at start-up (or JWKS reload) into the form
//! aws-lc-rs verifies with directly: the hot path never parses key material.
//! jsonwebtoken reads PEM and JWK; aws-lc-rs holds the prepared keys.

use std::path::Path;

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self as sig, ParsedPublicKey, VerificationAlgorithm};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};

use super::settings::{KeyConfig, KeyMaterial};

/// A key ready to verify signatures of exactly one algorithm.
pub struct Key {
    /// The one algorithm this key verifies.
    pub algorithm: Algorithm,
    /// Its `kid`: the config entry's for a secret or PEM file, the JWK's
    /// for a JWKS key; `None`: none.
    pub kid: Option<Box<str>>,
    verifier: Verifier,
}

enum Verifier {
    Hmac(Box<hmac::Key>),
    Public(ParsedPublicKey),
}

impl Key {
    /// True when `signature` is valid for `message` under this key.
    #[inline]
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.verifier {
            // hmac::verify compares in constant time.
            Verifier::Hmac(k) => hmac::verify(k, message, signature).is_ok(),
            Verifier::Public(k) => k.verify_sig(message, signature).is_ok(),
        }
    }
}

/// Why a configured key could not be loaded; `index` and `field` name the
/// `token.keys[index].field` it came from.
#[derive(Debug)]
pub struct KeyLoadError {
    /// Position of the entry in `[[token.keys]]`.
    pub index: usize,
    /// `algorithm`, `public_key_file` or `jwks_file`.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

/// A JWKS key the gateway does not use, and why (logged and counted in
/// `sessiongate_jwks_keys_skipped_total`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// The JWK's `kid`, when it has one.
    pub kid: Option<String>,
    /// Why it was skipped, prefixed with its position (`keys[2]: ...`).
    pub reason: String,
}

/// The keys of one JWKS document: those usable, and those skipped.
pub struct JwksLoad {
    /// The usable keys.
    pub keys: KeySet,
    /// The keys not loaded, and why.
    pub skipped: Vec<SkippedKey>,
}

/// All keys of the configuration, in config order. Cloning shares the keys.
#[derive(Default, Clone)]
pub struct KeySet {
    keys: Vec<std::sync::Arc<Key>>,
    skipped: Vec<SkippedKey>,
}

impl KeySet {
    /// Loads every key. A bad secret or PEM file, or a JWKS file that cannot
    /// be read or is not a JWKS document, is an error naming its entry; a
    /// JWKS key the gateway cannot use is skipped ([`KeySet::skipped`]).
    pub fn load(configs: &[KeyConfig]) -> Result<KeySet, KeyLoadError> {
        let mut set = KeySet::default();
        for (index, c) in configs.iter().enumerate() {
            let kid = c.kid.as_deref().map(Box::from);
            match &c.material {
                KeyMaterial::Secret(secret) => {
                    let algorithm = c.algorithm.ok_or(KeyLoadError {
                        index,
                        field: "algorithm",
                        message: "required".into(),
                    })?;
                    set.keys
                        .push(hmac_key(algorithm, kid, secret).map(Into::into).ok_or(
                            KeyLoadError {
                                index,
                                field: "algorithm",
                                message: format!("{algorithm:?} is not an HMAC algorithm"),
                            },
                        )?);
                }
                KeyMaterial::PublicKeyFile(path) => {
                    let algorithm = c.algorithm.ok_or(KeyLoadError {
                        index,
                        field: "algorithm",
                        message: "required with public_key_file".into(),
                    })?;
                    let key = pem_key(algorithm, kid, path).map_err(|message| KeyLoadError {
                        index,
                        field: "public_key_file",
                        message,
                    })?;
                    set.keys.push(key.into());
                }
                KeyMaterial::JwksFile(path) => {
                    let error = |message| KeyLoadError {
                        index,
                        field: "jwks_file",
                        message,
                    };
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| error(format!("cannot read {}: {e}", path.display())))?;
                    let loaded = KeySet::from_jwks_json(&text, c.algorithm)
                        .map_err(|e| error(format!("{}: {e}", path.display())))?;
                    let kid_filter = c.kid.as_deref();
                    set.keys.extend(
                        loaded.keys.keys.into_iter().filter(|k| {
                            kid_filter.is_none_or(|want| k.kid.as_deref() == Some(want))
                        }),
                    );
                    set.skipped.extend(loaded.skipped);
                }
            }
        }
        Ok(set)
    }

    /// Parses a JWKS document (`{"keys": [...]}`): every key the gateway can
    /// use safely for signature verification is loaded, every other one is
    /// skipped with its `kid` and why. Errors only when `text` is not a JWKS
    /// document. `configured`: the algorithm the config entry names, which
    /// each key must then be for.
    ///
    /// A key is skipped when: its `use` is not `sig` or its `key_ops` lack
    /// `verify`; its `alg` is not a supported signature algorithm or not of
    /// its type (HS* only from `oct`, RS*/PS* only from RSA of 2048 bits or
    /// more with an odd exponent of at least 3 and not ROCA-weak, ES256/384
    /// only from P-256/P-384, EdDSA only from Ed25519); an HMAC secret is
    /// shorter than its hash (RFC 7518 3.2); it shares its `kid` with another
    /// key of the set (ambiguous); or it is a secret in a set that also
    /// publishes public keys (a JWKS of public keys is public).
    pub fn from_jwks_json(text: &str, configured: Option<Algorithm>) -> Result<JwksLoad, String> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let doc: Document =
            serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
        let kid_of =
            |v: &serde_json::Value| v.get("kid").and_then(|k| k.as_str()).map(String::from);
        let mut kids: std::collections::HashMap<String, usize> = Default::default();
        for v in &doc.keys {
            if let Some(kid) = kid_of(v) {
                *kids.entry(kid).or_default() += 1;
            }
        }
        let asymmetric = doc.keys.iter().any(|v| {
            v.get("kty")
                .and_then(|k| k.as_str())
                .is_some_and(|k| k != "oct")
        });
        let mut out = JwksLoad {
            keys: KeySet::default(),
            skipped: Vec::new(),
        };
        for (i, v) in doc.keys.iter().enumerate() {
            let kid = kid_of(v);
            let checked = if kid.as_ref().is_some_and(|k| kids.get(k).copied() > Some(1)) {
                Err("another key of the set has the same kid".to_string())
            } else if asymmetric && v.get("kty").and_then(|k| k.as_str()) == Some("oct") {
                Err("a secret (kty oct) in a set of public keys".to_string())
            } else {
                super::jwk::jwk_key(v, configured)
            };
            match checked {
                Ok(key) => out.keys.keys.push(key.into()),
                Err(reason) => out.skipped.push(SkippedKey {
                    kid,
                    reason: format!("keys[{i}]: {reason}"),
                }),
            }
        }
        Ok(out)
    }

    /// The set with `skipped` recorded as its skipped keys (a fetched
    /// JWKS: they are then counted like a file's).
    pub fn with_skipped(mut self, skipped: Vec<SkippedKey>) -> KeySet {
        self.skipped = skipped;
        self
    }

    /// JWKS keys that were not loaded, and why.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }

    /// Keys a token with this header may be verified with: same algorithm
    /// and, when the token names a `kid`, the same `kid`.
    #[inline]
    pub fn candidates<'a>(
        &'a self,
        algorithm: Algorithm,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Key> + 'a {
        self.keys.iter().map(|k| &**k).filter(move |k| {
            k.algorithm == algorithm
                && match kid {
                    Some(kid) => k.kid.as_deref() == Some(kid),
                    None => true,
                }
        })
    }

    /// The keys of `self` followed by those of `other` (the configured keys
    /// and the IdP's), skipped keys of both kept.
    pub fn union(&self, other: &KeySet) -> KeySet {
        KeySet {
            keys: self.keys.iter().chain(&other.keys).cloned().collect(),
            skipped: self.skipped.iter().chain(&other.skipped).cloned().collect(),
        }
    }

    /// Whether some key has this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// No usable key: every token is refused (`NoMatchingKey`).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

pub(super) fn hmac_key(algorithm: Algorithm, kid: Option<Box<str>>, secret: &[u8]) -> Option<Key> {
    let alg = match algorithm {
        Algorithm::HS256 => hmac::HMAC_SHA256,
        Algorithm::HS384 => hmac::HMAC_SHA384,
        Algorithm::HS512 => hmac::HMAC_SHA512,
        _ => return None,
    };
    Some(Key {
        algorithm,
        kid,
        verifier: Verifier::Hmac(Box::new(hmac::Key::new(alg, secret))),
    })
}

fn verification_algorithm(algorithm: Algorithm) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match algorithm {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &sig::ED25519,
        _ => return None,
    })
}

/// Prepares a jsonwebtoken `DecodingKey` for `algorithm`, refusing a key of
/// another family (an RSA key can never verify an ES256 token).
pub(super) fn public_key(
    algorithm: Algorithm,
    kid: Option<Box<str>>,
    key: &DecodingKey,
) -> Result<Key, String> {
    if key.family() != algorithm.family() {
        return Err(format!(
            "key is {:?}, which cannot verify {algorithm:?}",
            key.family()
        ));
    }
    let va = verification_algorithm(algorithm)
        .ok_or_else(|| format!("{algorithm:?} is not a public-key algorithm"))?;
    let parsed = match key.kind() {
        DecodingKeyKind::SecretOrDer(der) => ParsedPublicKey::new(va, der),
        DecodingKeyKind::RsaModulusExponent { n, e } => {
            let params = match algorithm {
                Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
                Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
                _ => &sig::RSA_PSS_2048_8192_SHA512,
            };
            aws_lc_rs::rsa::PublicKeyComponents { n, e }.to_parsed_public_key(params)
        }
    }
    .map_err(|e| format!("key rejected for {algorithm:?}: {e}"))?;
    if algorithm.family() == AlgorithmFamily::Rsa {
        // aws-lc refuses a short modulus only when verifying; the other
        // rules it does not know.
        let (n, e) = match key.kind() {
            DecodingKeyKind::RsaModulusExponent { n, e } => (n.as_slice(), e.as_slice()),
            DecodingKeyKind::SecretOrDer(der) => {
                pkcs1_public_key(der).ok_or("not a PKCS#1 RSA public key")?
            }
        };
        check_rsa(n, e)?;
    }
    Ok(Key {
        algorithm,
        kid,
        verifier: Verifier::Public(parsed),
    })
}

fn pem_key(algorithm: Algorithm, kid: Option<Box<str>>, path: &Path) -> Result<Key, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let decoded = match algorithm.family() {
        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(&pem),
        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(&pem),
        AlgorithmFamily::Ed => DecodingKey::from_ed_pem(&pem),
        AlgorithmFamily::Hmac => {
            return Err(format!("{algorithm:?} needs a secret, not a key file"))
        }
    }
    .map_err(|e| {
        format!(
            "{} is not a PEM public key for {algorithm:?}: {e}",
            path.display()
        )
    })?;
    public_key(algorithm, kid, &decoded)
}

/// An RSA public key the gateway trusts: 2048 bits or more, an odd public
/// exponent of at least 3, not made by the ROCA-weak generator.
pub(super) fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), String> {
    let n = strip_zeros(n);
    let e = strip_zeros(e);
    let Some(first) = n.first() else {
        return Err("RSA modulus is zero".into());
    };
    let bits = n.len() * 8 - first.leading_zeros() as usize;
    if bits < 2048 {
        return Err(format!("RSA key of {bits} bits; at least 2048 are needed"));
    }
    let small = e.len() == 1 && e[0] < 3;
    if e.is_empty() || small || e.last().is_some_and(|b| b % 2 == 0) {
        return Err("RSA public exponent must be odd and at least 3".into());
    }
    if super::roca::is_roca_modulus(n) {
        return Err("RSA key made by the ROCA-weak generator (CVE-2017-15361)".into());
    }
    Ok(())
}

/// `(n, e)` of a DER `RSAPublicKey` (RFC 8017 A.1.1: a SEQUENCE of two
/// INTEGERs), or `None` when `der` is not exactly that.
fn pkcs1_public_key(der: &[u8]) -> Option<(&[u8], &[u8])> {
    fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&t, rest) = input.split_first()?;
        let (&first, mut rest) = rest.split_first()?;
        if t != tag {
            return None;
        }
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let octets = usize::from(first & 0x7f);
            if octets == 0 || octets > 4 || rest.len() < octets {
                return None;
            }
            let (len, tail) = rest.split_at(octets);
            rest = tail;
            len.iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        (rest.len() >= len).then(|| rest.split_at(len))
    }
    let (body, tail) = element(der, 0x30)?;
    let (n, body) = element(body, 0x02)?;
    let (e, body) = element(body, 0x02)?;
    (tail.is_empty() && body.is_empty()).then_some((n, e))
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[first..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::json;

    /// The P-256 public key of tests/keys/es256 as a JWK, with `extra` members.
    fn ec(extra: serde_json::Value) -> serde_json::Value {
        let mut k = json!({
            "kty": "EC", "crv": "P-256",
            "x": "vDL1bGeBtL-RUQQLo_YKOdRORs1lUjWNwVmONLsjIWg",
            "y": "XN-pbuCLLrqE_Njk13IehZQISU_5IsS0bjUwPkqP5Mg",
        });
        if let (Some(k), Some(extra)) = (k.as_object_mut(), extra.as_object()) {
            k.extend(extra.clone());
        }
        k
    }

    fn load(keys: &[serde_json::Value], configured: Option<Algorithm>) -> JwksLoad {
        KeySet::from_jwks_json(&json!({ "keys": keys }).to_string(), configured).unwrap()
    }

    #[test]
    fn a_key_verifies_only_the_family_of_its_type() {
        // Labelled HS256 in the JWK, or by the config entry's algorithm.
        let l = load(&[ec(json!({"alg": "HS256", "kid": "a"}))], None);
        assert!(l.keys.is_empty());
        assert!(
            l.skipped[0].reason.contains("cannot verify HS256"),
            "{:?}",
            l.skipped
        );
        let l = load(&[ec(json!({"kid": "a"}))], Some(Algorithm::HS256));
        assert!(l.keys.is_empty(), "config algorithm HS256 on an EC key");
        let l = load(&[ec(json!({"alg": "ES384"}))], None);
        assert!(l.keys.is_empty(), "P-256 key for ES384");
        let l = load(&[ec(json!({"alg": "RS256"}))], None);
        assert!(l.keys.is_empty());
        let l = load(&[ec(json!({"alg": "ES256", "kid": "good"}))], None);
        assert_eq!(l.keys.len(), 1);
        let l = load(&[ec(json!({}))], None);
        assert_eq!(l.keys.len(), 1, "alg inferred from the curve");
    }

    #[test]
    fn use_and_key_ops_must_allow_verifying() {
        for extra in [
            json!({"use": "enc"}),
            json!({"use": 1}),
            json!({"key_ops": ["encrypt"]}),
            json!({"key_ops": ["sign"]}),
            json!({"key_ops": "verify"}),
        ] {
            let l = load(&[ec(extra.clone())], None);
            assert!(l.keys.is_empty(), "{extra}");
            assert_eq!(l.skipped.len(), 1);
        }
        for extra in [
            json!({"use": "sig"}),
            json!({"key_ops": ["sign", "verify"]}),
        ] {
            assert_eq!(load(&[ec(extra.clone())], None).keys.len(), 1, "{extra}");
        }
    }

    #[test]
    fn unusable_keys_are_skipped_and_the_rest_loaded() {
        let secret = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let short = URL_SAFE_NO_PAD.encode([7u8; 31]);
        let l = load(
            &[
                json!({"kty": "oct", "alg": "HS256", "kid": "short", "k": short}),
                json!({"kty": "oct", "alg": "A256GCM", "kid": "aes", "k": secret}),
                json!({"kty": "oct", "alg": "HS256", "kid": "good", "k": secret}),
                json!({"no": "kty"}),
            ],
            None,
        );
        assert_eq!(l.keys.len(), 1, "{:?}", l.skipped);
        let kids: Vec<_> = l.skipped.iter().map(|s| s.kid.as_deref()).collect();
        assert_eq!(kids, [Some("short"), Some("aes"), None]);
        // Degenerate RSA keys are skipped, not a panic.
        let l = load(
            &[
                json!({"kty": "RSA", "alg": "RS256", "kid": "zero", "n": "AA", "e": "AQAB"}),
                json!({"kty": "RSA", "alg": "RS256", "kid": "empty", "n": "", "e": "AQAB"}),
                json!({"kty": "RSA", "alg": "RS256", "kid": "e1", "n": "AQAB", "e": "AQ"}),
            ],
            None,
        );
        assert!(l.keys.is_empty());
        assert_eq!(l.skipped.len(), 3);
        assert!(check_rsa(&[], &[1, 0, 1]).is_err());
        assert!(check_rsa(&[0, 0], &[1, 0, 1]).is_err());
        assert!(check_rsa(&[0xff; 256], &[1]).is_err(), "e = 1");
        assert!(check_rsa(&[0xff; 256], &[1, 0, 0]).is_err(), "even e");
        assert!(check_rsa(&[0xff; 255], &[1, 0, 1]).is_err(), "2040 bits");
        // A secret beside public keys is a published secret; a shared kid
        // is ambiguous.
        let l = load(
            &[
                json!({"kty": "oct", "alg": "HS256", "kid": "s", "k": secret}),
                ec(json!({"kid": "e"})),
                ec(json!({"kid": "dup"})),
                ec(json!({"kid": "dup"})),
            ],
            None,
        );
        assert_eq!(l.keys.len(), 1);
        assert_eq!(l.keys.keys[0].kid.as_deref(), Some("e"));
        assert!(KeySet::from_jwks_json("{\"keys\": 1}", None).is_err());
        assert!(KeySet::from_jwks_json("not json", None).is_err());
    }

    #[test]
    fn pkcs1_public_keys_parse_strictly() {
        let der = [0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03];
        assert_eq!(pkcs1_public_key(&der), Some((&[5u8][..], &[3u8][..])));
        assert_eq!(pkcs1_public_key(&der[..7]), None);
        assert_eq!(
            pkcs1_public_key(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        assert_eq!(pkcs1_public_key(&[]), None);
        let mut trailing = der.to_vec();
        trailing.push(0);
        assert_eq!(pkcs1_public_key(&trailing), None);
    }
}
