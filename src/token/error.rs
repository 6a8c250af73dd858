//! Why a token is refused.

/// Why a token was not accepted. `Expired` maps to `token_expired`; every
/// other kind to `invalid_token` with [`TokenError::description`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than `token.max_token_bytes`.
    #[error("token is larger than max_token_bytes")]
    TooLarge,
    /// Not three base64url parts; a header, signature or payload that does
    /// not decode (the payload: to a JSON object of claims); a claim of the
    /// wrong type, or one the gateway reads given twice. Also an identity
    /// that cannot travel in a header.
    #[error("token is malformed")]
    Malformed,
    /// The header's `alg` is not a supported signature algorithm (`none`
    /// included), or the header has `crit`.
    #[error("token algorithm is not allowed")]
    UnsupportedAlgorithm,
    /// No key has the token's `alg` (and, when it names one, its `kid`).
    #[error("no key matches the token's kid and alg")]
    NoMatchingKey,
    /// Keys of its `alg` and `kid` exist; none verifies the signature.
    #[error("signature does not verify")]
    BadSignature,
    /// At or past `exp` + `token.leeway_s` (without `exp`: `iat` +
    /// `token.max_session_lifetime_s`).
    #[error("token has expired")]
    Expired,
    /// Before `nbf` - `token.leeway_s`.
    #[error("token is not valid yet")]
    NotYetValid,
    /// No `exp`, while `token.require_exp` is set or there is no `iat` either.
    #[error("token has no exp claim")]
    MissingExp,
    /// `iat` later than now + `token.leeway_s`.
    #[error("token was issued in the future")]
    IssuedInFuture,
    /// Older than `token.max_session_lifetime_s` (by `iat`; without `iat`, an
    /// `exp` further away).
    #[error("token is older than max_session_lifetime_s")]
    TooOld,
    /// `exp`, `nbf` or `iat` before 1970 or after [`MAX_TIME_S`](super::MAX_TIME_S).
    #[error("token time is out of range")]
    TimeOutOfRange,
    /// A logout or security event token (its `typ`, or an `events` claim),
    /// signed by the same keys but no access token.
    #[error("token is not an access token")]
    WrongType,
    /// `token.issuer` is set and `iss` is absent or differs.
    #[error("token issuer is not accepted")]
    Issuer,
    /// `token.audience` is set and `aud` is absent or does not contain it.
    #[error("token audience is not accepted")]
    Audience,
}

impl TokenError {
    /// Text for `error_description` in `WWW-Authenticate` and the JSON body.
    pub fn description(self) -> &'static str {
        match self {
            TokenError::TooLarge => "token is too large",
            TokenError::Malformed => "token is malformed",
            TokenError::UnsupportedAlgorithm => "token algorithm is not allowed",
            TokenError::NoMatchingKey => "no key matches the token",
            TokenError::BadSignature => "signature does not verify",
            TokenError::Expired => "token has expired",
            TokenError::NotYetValid => "token is not valid yet",
            TokenError::MissingExp => "token has no expiry",
            TokenError::IssuedInFuture => "token is issued in the future",
            TokenError::TooOld => "token is older than the longest session allowed",
            TokenError::TimeOutOfRange => "token time is out of range",
            TokenError::WrongType => "token is not an access token",
            TokenError::Issuer => "issuer is not accepted",
            TokenError::Audience => "audience is not accepted",
        }
    }
}
