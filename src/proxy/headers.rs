//! What the adapter does to request headers: client identity headers
//! removed (names as an application reads them), the decision's credential
//! strip applied, the verified identity added.

use pingora::http::RequestHeader;
use pingora::prelude::*;

use super::{X_FORWARDED_FOR, X_FORWARDED_PROTO, X_SESSION_ID, X_USER_ID};
use crate::token::extract::{same_header, Strip};
use crate::token::VerifiedToken;

/// Client-sent headers that would let a client speak for the gateway,
/// compared as an application reads them: case-insensitively and with `_`
/// read as `-` (`X_User_Id` is `HTTP_X_USER_ID` to CGI, like `X-User-Id`).
/// With `forwarded`, also a client's `X_Forwarded_For` or `_Proto`, which
/// would stand beside the gateway's own `X-Forwarded-*` for such an app.
pub(super) fn is_identity_header(name: &str, forwarded: bool) -> bool {
    let n = name.len();
    (n > 2 && same_header(&name[..2], "x-"))
        && (same_header(name, X_SESSION_ID)
            || same_header(name, X_USER_ID)
            || (n >= 6 && same_header(&name[..6], "x-geo-"))
            || (n >= 14 && same_header(&name[..14], "x-sessiongate-"))
            || (forwarded
                && name.contains('_')
                && (same_header(name, X_FORWARDED_FOR) || same_header(name, X_FORWARDED_PROTO))))
}

/// Removes the credentials the decision says the application must not see.
pub(super) fn apply_strip(session: &mut Session, strip: &Strip) -> Result<()> {
    let req = session.req_header_mut();
    for name in &strip.remove {
        req.remove_header(name);
    }
    if let Some(cookie) = &strip.cookie {
        req.remove_header(&http::header::COOKIE);
        if let Some(v) = cookie {
            req.insert_header(http::header::COOKIE, v.clone())?;
        }
    }
    Ok(())
}

/// `X-Session-Id` and `X-User-Id`, built once when the token verified.
pub(super) fn add_identity(req: &mut RequestHeader, token: &VerifiedToken) -> Result<()> {
    if let Some(v) = &token.session_header {
        req.insert_header(X_SESSION_ID, v.clone())?;
    }
    if let Some(v) = &token.user_header {
        req.insert_header(X_USER_ID, v.clone())?;
    }
    Ok(())
}

pub(super) fn strip_identity_headers(session: &mut Session, forwarded: bool) {
    let req = session.req_header();
    if !req
        .headers
        .keys()
        .any(|k| is_identity_header(k.as_str(), forwarded))
    {
        return;
    }
    let names: Vec<http::HeaderName> = req
        .headers
        .keys()
        .filter(|k| is_identity_header(k.as_str(), forwarded))
        .cloned()
        .collect();
    let req = session.req_header_mut();
    for name in names {
        req.remove_header(&name);
    }
}
