//! Verification keys, parsed once at start-up (or JWKS reload) into the form
//! aws-lc-rs verifies with directly: the hot path never parses key material.
//! jsonwebtoken reads PEM and JWK; aws-lc-rs holds the prepared keys.

use std::path::Path;

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self as sig, ParsedPublicKey, VerificationAlgorithm};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};

use crate::config::{KeyConfig, KeyMaterial};

/// A key ready to verify signatures of exactly one algorithm.
pub struct Key {
    pub algorithm: Algorithm,
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
    pub index: usize,
    pub field: &'static str,
    pub message: String,
}

/// All keys of the configuration, in config order.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// Loads every key; the first bad one is an error naming its entry.
    pub fn load(configs: &[KeyConfig]) -> Result<KeySet, KeyLoadError> {
        let mut keys = Vec::new();
        for (index, c) in configs.iter().enumerate() {
            let kid = c.kid.as_deref().map(Box::from);
            match &c.material {
                KeyMaterial::Secret(secret) => {
                    let algorithm = c.algorithm.ok_or(KeyLoadError {
                        index,
                        field: "algorithm",
                        message: "required".into(),
                    })?;
                    keys.push(hmac_key(algorithm, kid, secret).ok_or(KeyLoadError {
                        index,
                        field: "algorithm",
                        message: format!("{algorithm:?} is not an HMAC algorithm"),
                    })?);
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
                    keys.push(key);
                }
                KeyMaterial::JwksFile(path) => {
                    let loaded =
                        jwks_keys(path, c.algorithm, c.kid.as_deref()).map_err(|message| {
                            KeyLoadError {
                                index,
                                field: "jwks_file",
                                message,
                            }
                        })?;
                    keys.extend(loaded);
                }
            }
        }
        Ok(KeySet { keys })
    }

    /// Keys a token with this header may be verified with: same algorithm
    /// and, when the token names a `kid`, the same `kid`.
    #[inline]
    pub fn candidates<'a>(
        &'a self,
        algorithm: Algorithm,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Key> + 'a {
        self.keys.iter().filter(move |k| {
            k.algorithm == algorithm
                && match kid {
                    Some(kid) => k.kid.as_deref() == Some(kid),
                    None => true,
                }
        })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn hmac_key(algorithm: Algorithm, kid: Option<Box<str>>, secret: &[u8]) -> Option<Key> {
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
fn public_key(
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

/// The algorithm a JWK is for: its own `alg`, else the configured one, else
/// what its curve implies. An RSA JWK without `alg` and no configured
/// algorithm is refused (RS256 or PS256 cannot be guessed safely).
fn jwk_algorithm(jwk: &Jwk, configured: Option<Algorithm>) -> Result<Algorithm, String> {
    if let Some(ka) = jwk.common.key_algorithm {
        let alg = match ka {
            KeyAlgorithm::HS256 => Algorithm::HS256,
            KeyAlgorithm::HS384 => Algorithm::HS384,
            KeyAlgorithm::HS512 => Algorithm::HS512,
            KeyAlgorithm::ES256 => Algorithm::ES256,
            KeyAlgorithm::ES384 => Algorithm::ES384,
            KeyAlgorithm::RS256 => Algorithm::RS256,
            KeyAlgorithm::RS384 => Algorithm::RS384,
            KeyAlgorithm::RS512 => Algorithm::RS512,
            KeyAlgorithm::PS256 => Algorithm::PS256,
            KeyAlgorithm::PS384 => Algorithm::PS384,
            KeyAlgorithm::PS512 => Algorithm::PS512,
            KeyAlgorithm::EdDSA => Algorithm::EdDSA,
            other => return Err(format!("JWK alg {other:?} is not a signature algorithm")),
        };
        if let Some(c) = configured {
            if c != alg {
                return Err(format!(
                    "JWK alg {alg:?} differs from the configured algorithm {c:?}"
                ));
            }
        }
        return Ok(alg);
    }
    if let Some(c) = configured {
        return Ok(c);
    }
    match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Ok(Algorithm::ES256),
            EllipticCurve::P384 => Ok(Algorithm::ES384),
            ref c => Err(format!("unsupported curve {c:?}")),
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Ok(Algorithm::EdDSA)
        }
        _ => Err("JWK has no \"alg\"; set algorithm for this jwks_file".into()),
    }
}

fn jwks_keys(
    path: &Path,
    configured: Option<Algorithm>,
    kid_filter: Option<&str>,
) -> Result<Vec<Key>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let set: JwkSet = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a JWKS document: {e}", path.display()))?;
    let mut keys = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        if let Some(filter) = kid_filter {
            if jwk.common.key_id.as_deref() != Some(filter) {
                continue;
            }
        }
        let algorithm = jwk_algorithm(jwk, configured).map_err(|e| format!("keys[{i}]: {e}"))?;
        let decoded = DecodingKey::from_jwk(jwk).map_err(|e| format!("keys[{i}]: {e}"))?;
        let kid = jwk.common.key_id.as_deref().map(Box::from);
        let key = if algorithm.family() == AlgorithmFamily::Hmac {
            let secret = decoded
                .try_get_as_bytes()
                .map_err(|e| format!("keys[{i}]: {e}"))?;
            hmac_key(algorithm, kid, secret).ok_or_else(|| format!("keys[{i}]: bad HMAC key"))?
        } else {
            public_key(algorithm, kid, &decoded).map_err(|e| format!("keys[{i}]: {e}"))?
        };
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(format!("{} has no usable keys", path.display()));
    }
    Ok(keys)
}
