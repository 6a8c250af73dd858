//! Why a token is refused.

/// Why a token was not accepted. `Expired` maps to `token_expired`; every
/// other kind to `invalid_token` with [`TokenError::description`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is larger than max_token_bytes")]
    TooLarge,
    #[error("token is malformed")]
    Malformed,
    #[error("token algorithm is not allowed")]
    UnsupportedAlgorithm,
    #[error("no key matches the token's kid and alg")]
    NoMatchingKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token has no exp claim")]
    MissingExp,
    #[error("token was issued in the future")]
    IssuedInFuture,
    #[error("token is older than max_session_lifetime_s")]
    TooOld,
    #[error("token time is out of range")]
    TimeOutOfRange,
    #[error("token is not an access token")]
    WrongType,
    #[error("token issuer is not accepted")]
    Issuer,
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
