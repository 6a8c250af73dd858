//! sessiongate: a reverse proxy that enforces session revocation for any web
//! application behind it.
//!
//! # The request path (`proxy`, on every request)
//! 1. client-sent identity headers (`X-Session-Id`, `X-User-Id`, `X-Geo-*`,
//!    `X-Sessiongate-*`) are removed;
//! 2. `/.sessiongate/*` is answered by the gateway, public prefixes are
//!    forwarded as they are (`enforcement::PublicPaths`);
//! 3. the token is found (`token::extract`), verified (`token::Verifier`) and
//!    its session checked against the revocation set (`revocation`);
//! 4. the request is refused with one typed `enforcement::Refusal`, or
//!    forwarded with `X-Session-Id` and `X-User-Id`;
//! 5. `logging()` records metrics (`metrics`) and the access log once.
//!
//! # Who owns what state
//! - `revocation::RevocationSet`: revoked sessions and per-user cutoffs, in
//!   memory; read by every request, written only by `authority::Authority`
//!   (admin API, store follower) and the purge task.
//! - `store`: the durable copy (SQLite by default) plus the audit trail;
//!   written before any revocation is acknowledged.
//! - `token::Verifier`: keys parsed once; swapped whole on JWKS reload.
//! - `gateway`: builds the pingora server; `admin`: the admin API;
//!   `config`: the validated configuration; `cli`: the command line.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod audit;
pub mod authority;
pub mod certificate;
pub mod cli;
pub mod client_ip;
pub mod clock;
pub mod closer;
pub mod config;
pub mod demo;
pub mod echo;
pub mod enforcement;
pub mod file_watch;
pub mod gateway;
pub mod geoip;
pub mod idp;
pub mod logs;
pub mod metrics;
pub mod outbox;
pub mod path;
pub mod proxy;
pub mod revocation;
pub mod sessions;
pub mod store;
pub mod token;
pub mod webhooks;
