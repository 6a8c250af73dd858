//! The identity provider and the Shared Signals transmitter: their keys
//! ([`keys`]: discovery or a JWKS URL, refreshed, kept on disk) and what
//! they send ([`logout`]: OIDC back-channel logout tokens; [`ssf`]:
//! security event tokens), each checked as docs/ARCHITECTURE.md lists and
//! turned into an order for the authority.

mod claims;
pub mod keys;
pub mod logout;
pub mod replay;
pub mod settings;
pub mod ssf;
#[cfg(test)]
mod test_support;
