//! Compact JWS: the three parts, the header, and the signature check with
//! the keys of the token's own algorithm (and `kid`). Nothing here reads
//! the claims.

use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::{KeySet, TokenError};

/// The parts of a compact JWS whose signature verified.
pub(super) struct Signed<'a> {
    /// `header.payload`, what the signature covers.
    pub(super) signing_input: &'a [u8],
    /// The payload, decoded (strictly: one spelling per payload).
    pub(super) payload: Vec<u8>,
}

/// Checks a compact JWS against `keys`: shape, header, algorithm, `kid` and
/// signature; nothing about claims (the payload need not be JSON). The rules
/// of [`super::Verifier::verify`] up to the signature, for conformance vectors.
pub fn verify_signature(keys: &KeySet, token: &[u8]) -> Result<(), TokenError> {
    check_signature(keys, token).map(|_| ())
}

/// Which `typ` header a JWS may carry.
#[derive(Debug, Clone, Copy)]
pub enum Typ {
    /// An access token: any `typ` but those of logout tokens and security
    /// event tokens (RFC 8725 3.11).
    AccessToken,
    /// One of these (compared case-insensitively, with or without the
    /// `application/` prefix); `required`: a JWS without `typ` is refused.
    OneOf(&'static [&'static str], bool),
}

/// A JWS whose signature verified with one of the keys given.
pub struct VerifiedJws {
    /// The payload, decoded.
    pub payload: Vec<u8>,
    /// The header's `kid`, when it had one.
    pub kid: Option<String>,
}

/// Checks a compact JWS against `keys` and the `typ` rule: shape, header,
/// algorithm, `kid`, signature (the receivers of logout tokens and SETs).
/// `WrongType` for a `typ` outside the rule.
pub fn verify_jws(keys: &KeySet, token: &[u8], typ: Typ) -> Result<VerifiedJws, TokenError> {
    let (kid, signed) = check(keys, token, typ)?;
    Ok(VerifiedJws {
        payload: signed.payload,
        kid,
    })
}

pub(super) fn check_signature<'t>(
    keys: &KeySet,
    token: &'t [u8],
) -> Result<Signed<'t>, TokenError> {
    check(keys, token, Typ::AccessToken).map(|(_, s)| s)
}

fn typ_allowed(typ: Option<&str>, rule: Typ) -> bool {
    match (rule, typ) {
        (Typ::AccessToken, t) => {
            !t.is_some_and(|t| NOT_ACCESS_TOKENS.iter().any(|n| t.eq_ignore_ascii_case(n)))
        }
        (Typ::OneOf(_, required), None) => !required,
        (Typ::OneOf(names, _), Some(t)) => {
            let t = if t.len() > 12 && t[..12].eq_ignore_ascii_case("application/") {
                &t[12..]
            } else {
                t
            };
            names.iter().any(|n| t.eq_ignore_ascii_case(n))
        }
    }
}

fn check<'t>(
    keys: &KeySet,
    token: &'t [u8],
    typ: Typ,
) -> Result<(Option<String>, Signed<'t>), TokenError> {
    let (header_b64, payload_b64, signature_b64) = split(token)?;
    let header_json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| TokenError::Malformed)?;
    let header: Header = serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
    if header.crit.is_some() {
        // RFC 7515 4.1.11: extensions we do not understand must be refused.
        return Err(TokenError::UnsupportedAlgorithm);
    }
    if !typ_allowed(header.typ.as_deref(), typ) {
        return Err(TokenError::WrongType);
    }
    let algorithm =
        Algorithm::from_str(&header.alg).map_err(|_| TokenError::UnsupportedAlgorithm)?;

    let mut signature = [0u8; 1024];
    let sig_len = URL_SAFE_NO_PAD
        .decode_slice(signature_b64, &mut signature)
        .map_err(|_| TokenError::Malformed)?;
    let signature = &signature[..sig_len];
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];

    let mut any_key = false;
    for key in keys.candidates(algorithm, header.kid.as_deref()) {
        any_key = true;
        if key.verify(signing_input, signature) {
            // Base64url without padding, trailing bits zero (RFC 7515 2):
            // a payload has one spelling, so a token has one signing input.
            let payload = URL_SAFE_NO_PAD
                .decode(payload_b64)
                .map_err(|_| TokenError::Malformed)?;
            // Only the receivers want the kid: no allocation per access token.
            let kid = matches!(typ, Typ::OneOf(..))
                .then(|| header.kid.as_deref().map(String::from))
                .flatten();
            return Ok((
                kid,
                Signed {
                    signing_input,
                    payload,
                },
            ));
        }
    }
    Err(if any_key {
        TokenError::BadSignature
    } else {
        TokenError::NoMatchingKey
    })
}

/// `typ` values of tokens the IdP signs with the same keys that are not
/// access tokens: OIDC back-channel logout tokens and security event tokens.
const NOT_ACCESS_TOKENS: [&str; 4] = [
    "logout+jwt",
    "application/logout+jwt",
    "secevent+jwt",
    "application/secevent+jwt",
];

/// The three base64url parts of a compact JWS.
type Parts<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// Splits `header.payload.signature`, refusing any byte outside base64url.
fn split(token: &[u8]) -> Result<Parts<'_>, TokenError> {
    let mut dots = [0usize; 2];
    let mut n = 0;
    for (i, b) in token.iter().enumerate() {
        match b {
            b'.' => {
                if n == 2 {
                    return Err(TokenError::Malformed);
                }
                dots[n] = i;
                n += 1;
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => {}
            _ => return Err(TokenError::Malformed),
        }
    }
    if n != 2 {
        return Err(TokenError::Malformed);
    }
    let (h, p, s) = (
        &token[..dots[0]],
        &token[dots[0] + 1..dots[1]],
        &token[dots[1] + 1..],
    );
    if h.is_empty() || s.is_empty() {
        return Err(TokenError::Malformed);
    }
    Ok((h, p, s))
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
    #[serde(borrow, default)]
    typ: Option<std::borrow::Cow<'a, str>>,
}
