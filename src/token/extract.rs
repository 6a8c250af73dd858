//! Where a request's credentials are collected and stripped: the one place
//! that knows every configured source (`token.sources`) and decides which
//! single credential the application may see (docs/ARCHITECTURE.md, "one
//! credential per request").
//!
//! [`collect`] finds the token of the first source that has one, without
//! allocating (the token borrows from the request headers), and refuses a
//! request whose credentials are ambiguous: two `Authorization` headers, a
//! credential header given twice, or a credential cookie given twice with
//! different values. It also notes whether the request carries any other
//! credential (another source's header or cookie, a second identical copy of
//! the cookie); then [`Credentials::strip`] says how to remove them, so the
//! application only ever sees the credential the gateway verified.
//!
//! Names are compared as the application's framework would: header names
//! case-insensitively with `_` read as `-` (CGI, WSGI, Rack and PHP map
//! `X_Token` and `X-Token` to one variable), cookie names case-insensitively
//! and percent-decoded (PHP decodes cookie names, ASP.NET ignores their case).

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::settings::TokenSource;

/// Why a request's credentials cannot be trusted: `400 invalid_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// More than one `Authorization` header (with a bearer source).
    #[error("more than one Authorization header")]
    DuplicateAuthorization,
    /// A `header:NAME` source's header appears more than once, counting
    /// spellings with `_` for `-`.
    #[error("a credential header is given more than once")]
    DuplicateHeader,
    /// A `cookie:NAME` source's cookie appears more than once with different
    /// values.
    #[error("a credential cookie is given more than once with different values")]
    ConflictingCookies,
}

impl CredentialError {
    /// Text for `error_description`.
    pub fn description(self) -> &'static str {
        match self {
            CredentialError::DuplicateAuthorization => "more than one Authorization header",
            CredentialError::DuplicateHeader => "a credential header is given more than once",
            CredentialError::ConflictingCookies => {
                "a credential cookie is given more than once with different values"
            }
        }
    }
}

/// What [`collect`] found in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials<'h> {
    /// The token of the first source that has one.
    pub token: Option<&'h [u8]>,
    /// Index in `sources` of the source the token came from.
    source: usize,
    /// The request carries a credential besides `token` (in another
    /// source, or a second copy): [`Credentials::strip`] has work to do.
    others: bool,
}

/// How to remove credentials from a request before it is forwarded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Strip {
    /// Headers to remove, every value.
    pub remove: Vec<HeaderName>,
    /// `Some`: replace every `Cookie` header with this one (`None`: remove
    /// them all). Absent: leave the cookies alone.
    pub cookie: Option<Option<HeaderValue>>,
}

impl Strip {
    /// No header to remove and the cookies left alone.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.cookie.is_none()
    }
}

impl<'h> Credentials<'h> {
    /// The edits that leave the request with the found token alone
    /// (`keep_token`), or with no credential at all (a token that did not
    /// verify on a public path is never passed on). `None`: nothing to do.
    pub fn strip(
        &self,
        headers: &HeaderMap,
        sources: &[TokenSource],
        keep_token: bool,
    ) -> Option<Strip> {
        let keep = if keep_token && self.token.is_some() {
            Some(self.source)
        } else {
            None
        };
        if keep.is_some() && !self.others {
            return None;
        }
        if self.token.is_none() && !self.others {
            return None;
        }
        let mut strip = Strip::default();
        let mut cookie_names: Vec<&str> = Vec::new();
        for (i, source) in sources.iter().enumerate() {
            match source {
                TokenSource::Bearer if keep != Some(i) => {
                    // Only a Bearer value is this source's credential; another
                    // scheme (Basic...) is the application's business.
                    if headers
                        .get_all(AUTHORIZATION)
                        .iter()
                        .any(|v| bearer(v.as_bytes()).is_some())
                    {
                        strip.remove.push(AUTHORIZATION);
                    }
                }
                TokenSource::Header(name) if keep != Some(i) => {
                    for present in headers.keys() {
                        if same_header(present.as_str(), name.as_str())
                            && !strip.remove.contains(present)
                        {
                            strip.remove.push(present.clone());
                        }
                    }
                }
                TokenSource::Cookie(name) => cookie_names.push(name),
                // The kept source: [`collect`] refused a second spelling of
                // it, so there is nothing else of it to remove.
                TokenSource::Header(_) | TokenSource::Bearer => {}
            }
        }
        if !cookie_names.is_empty() {
            let kept = match keep.map(|i| &sources[i]) {
                Some(TokenSource::Cookie(name)) => Some(name.as_str()),
                _ => None,
            };
            strip.cookie = rewrite_cookies(headers, &cookie_names, kept);
        }
        (!strip.is_empty()).then_some(strip)
    }
}

/// Finds the request's token in `sources`, in order, and checks that no
/// source is ambiguous (see the module documentation).
pub fn collect<'h>(
    headers: &'h HeaderMap,
    sources: &[TokenSource],
) -> Result<Credentials<'h>, CredentialError> {
    let mut found = Credentials {
        token: None,
        source: 0,
        others: false,
    };
    for (i, source) in sources.iter().enumerate() {
        let (token, present, copies) = match source {
            TokenSource::Bearer => {
                let mut values = headers.get_all(AUTHORIZATION).iter();
                let first = values.next();
                if values.next().is_some() {
                    return Err(CredentialError::DuplicateAuthorization);
                }
                let token = first.and_then(|v| bearer(v.as_bytes()));
                (token, token.is_some(), false)
            }
            TokenSource::Header(name) => {
                let mut value = None;
                let mut n = 0;
                let mut spelled_otherwise = false;
                for v in headers.get_all(name) {
                    n += 1;
                    value = Some(v);
                }
                if name.as_str().contains(['-', '_']) {
                    for (present, v) in headers {
                        if present != name && same_header(present.as_str(), name.as_str()) {
                            n += 1;
                            value = Some(v);
                            spelled_otherwise = true;
                        }
                    }
                }
                if n > 1 {
                    return Err(CredentialError::DuplicateHeader);
                }
                let token = if spelled_otherwise {
                    None
                } else {
                    value.and_then(|v| non_empty(trim(v.as_bytes())))
                };
                (token, n > 0, spelled_otherwise)
            }
            TokenSource::Cookie(name) => {
                let mut value: Option<&[u8]> = None;
                let mut n = 0;
                for v in cookie_values(headers, name) {
                    n += 1;
                    match value {
                        None => value = Some(v),
                        Some(seen) if seen == v => {}
                        Some(_) => return Err(CredentialError::ConflictingCookies),
                    }
                }
                // Copies must be the same bytes as sent (`"t"` and `t` are two
                // values to an application that does not unquote).
                (value.map(unquote).and_then(non_empty), n > 0, n > 1)
            }
        };
        match (token, found.token) {
            (Some(t), None) => {
                found.token = Some(t);
                found.source = i;
                found.others |= copies;
            }
            _ => found.others |= present || copies,
        }
    }
    Ok(found)
}

/// True when header `name` (lowercase, as `http` stores it) is `canonical`
/// to an application: case-insensitive, `_` read as `-`.
pub fn same_header(name: &str, canonical: &str) -> bool {
    name.len() == canonical.len()
        && name
            .bytes()
            .zip(canonical.bytes())
            .all(|(a, b)| dash(a.to_ascii_lowercase()) == dash(b.to_ascii_lowercase()))
}

fn dash(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b
    }
}

fn non_empty(b: &[u8]) -> Option<&[u8]> {
    (!b.is_empty()).then_some(b)
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if *first == b' ' || *first == b'\t' {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if *last == b' ' || *last == b'\t' {
            b = rest;
        } else {
            break;
        }
    }
    b
}

/// `Bearer <token>` (scheme case-insensitive, RFC 6750 section 2.1).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let value = trim(value);
    if value.len() < 7 || !value[..6].eq_ignore_ascii_case(b"bearer") || value[6] != b' ' {
        return None;
    }
    non_empty(trim(&value[7..]))
}

/// One `name=value` pair of a `Cookie` header: (name, value) as sent,
/// trimmed. A pair without `=` has an empty name.
fn cookie_pair(pair: &[u8]) -> (&[u8], &[u8]) {
    let pair = trim(pair);
    let Some(eq) = pair.iter().position(|b| *b == b'=') else {
        return (b"", pair);
    };
    (trim(&pair[..eq]), trim(&pair[eq + 1..]))
}

/// A cookie value without its surrounding double quotes (RFC 6265 4.1.1).
fn unquote(value: &[u8]) -> &[u8] {
    if value.len() >= 2 && value[0] == b'"' && value[value.len() - 1] == b'"' {
        &value[1..value.len() - 1]
    } else {
        value
    }
}

/// True when a cookie named `raw` (as sent) is cookie `name` to an
/// application: percent-decoded, case-insensitive.
fn cookie_named(raw: &[u8], name: &str) -> bool {
    if raw.eq_ignore_ascii_case(name.as_bytes()) {
        return true;
    }
    if !raw.contains(&b'%') {
        return false;
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode(raw).collect();
    decoded.eq_ignore_ascii_case(name.as_bytes())
}

/// Every value of cookie `name` across all `Cookie` headers (HTTP/2 sends
/// one header per cookie), in order.
fn cookie_values<'h: 'n, 'n>(
    headers: &'h HeaderMap,
    name: &'n str,
) -> impl Iterator<Item = &'h [u8]> + 'n {
    headers.get_all(COOKIE).iter().flat_map(move |v| {
        v.as_bytes().split(|b| *b == b';').filter_map(move |pair| {
            let (n, value) = cookie_pair(pair);
            cookie_named(n, name).then_some(value)
        })
    })
}

/// The `Cookie` header without the credential cookies `names`, keeping one
/// copy of `kept`. `None` inside: no cookie is left.
fn rewrite_cookies(
    headers: &HeaderMap,
    names: &[&str],
    kept: Option<&str>,
) -> Option<Option<HeaderValue>> {
    let mut out: Vec<u8> = Vec::new();
    let mut changed = false;
    let mut kept_one = false;
    let mut count = 0;
    for v in headers.get_all(COOKIE) {
        count += 1;
        for pair in v.as_bytes().split(|b| *b == b';') {
            let (n, _) = cookie_pair(pair);
            let credential = names.iter().find(|name| cookie_named(n, name));
            let keep = match credential {
                None => true,
                Some(name) if Some(*name) == kept && !kept_one => {
                    kept_one = true;
                    true
                }
                Some(_) => false,
            };
            if !keep {
                changed = true;
                continue;
            }
            let pair = trim(pair);
            if pair.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(pair);
        }
    }
    if !changed && count <= 1 {
        return None;
    }
    if out.is_empty() {
        return Some(None);
    }
    // Bytes taken from valid header values, joined by "; ": still valid.
    Some(HeaderValue::from_bytes(&out).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn sources() -> Vec<TokenSource> {
        vec![
            TokenSource::Bearer,
            TokenSource::Cookie("session".into()),
            TokenSource::Header(http::HeaderName::from_static("x-token")),
        ]
    }

    fn token(h: &HeaderMap) -> Result<Option<&[u8]>, CredentialError> {
        collect(h, &sources()).map(|c| c.token)
    }

    #[test]
    fn bearer_first() {
        let h = headers(&[("authorization", "bearer  abc ")]);
        assert_eq!(token(&h), Ok(Some(&b"abc"[..])));
        let c = collect(&h, &sources()).unwrap();
        assert_eq!(c.strip(&h, &sources(), true), None, "nothing else to strip");
    }

    #[test]
    fn basic_auth_is_not_a_token_and_stays() {
        let h = headers(&[
            ("authorization", "Basic Zm9vOmJhcg=="),
            ("cookie", "a=1; session=\"def\""),
        ]);
        assert_eq!(token(&h), Ok(Some(&b"def"[..])));
        let c = collect(&h, &sources()).unwrap();
        assert_eq!(c.strip(&h, &sources(), true), None);
    }

    #[test]
    fn cookie_name_must_match() {
        let h = headers(&[("cookie", "xsession=1; sessionx=2"), ("x-token", " ghi ")]);
        assert_eq!(token(&h), Ok(Some(&b"ghi"[..])));
    }

    #[test]
    fn nothing_found() {
        let h = headers(&[("authorization", "Bearer "), ("cookie", "session=")]);
        assert_eq!(token(&h), Ok(None));
    }

    #[test]
    fn ambiguity_is_refused() {
        let h = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert_eq!(token(&h), Err(CredentialError::DuplicateAuthorization));
        let h = headers(&[("cookie", "session=a"), ("cookie", "session=b")]);
        assert_eq!(token(&h), Err(CredentialError::ConflictingCookies));
        let h = headers(&[("cookie", "session=a; SESSION=b")]);
        assert_eq!(token(&h), Err(CredentialError::ConflictingCookies));
        let h = headers(&[("cookie", "session=\"a\"; session=a")]);
        assert_eq!(token(&h), Err(CredentialError::ConflictingCookies));
        let h = headers(&[("cookie", "session=a; sess%69on=b")]);
        assert_eq!(token(&h), Err(CredentialError::ConflictingCookies));
        let h = headers(&[("x-token", "a"), ("x_token", "a")]);
        assert_eq!(token(&h), Err(CredentialError::DuplicateHeader));
    }

    #[test]
    fn other_credentials_are_stripped() {
        let h = headers(&[
            ("authorization", "Bearer good"),
            ("cookie", "theme=dark; session=revoked"),
            ("cookie", "lang=en"),
            ("x-token", "other"),
        ]);
        let c = collect(&h, &sources()).unwrap();
        assert_eq!(c.token, Some(&b"good"[..]));
        let s = c.strip(&h, &sources(), true).unwrap();
        assert_eq!(s.remove, vec![HeaderName::from_static("x-token")]);
        assert_eq!(
            s.cookie,
            Some(Some(HeaderValue::from_static("theme=dark; lang=en")))
        );
        // Nothing kept: the token goes too.
        let s = c.strip(&h, &sources(), false).unwrap();
        assert!(s.remove.contains(&AUTHORIZATION));
    }

    #[test]
    fn identical_cookie_copies_keep_one() {
        let h = headers(&[("cookie", "session=t; a=1; session=t")]);
        let c = collect(&h, &sources()).unwrap();
        assert_eq!(c.token, Some(&b"t"[..]));
        let s = c.strip(&h, &sources(), true).unwrap();
        assert_eq!(
            s.cookie,
            Some(Some(HeaderValue::from_static("session=t; a=1")))
        );
        let h = headers(&[("cookie", "session=t")]);
        let c = collect(&h, &sources()).unwrap();
        let s = c.strip(&h, &sources(), false).unwrap();
        assert_eq!(s.cookie, Some(None), "the only cookie was the credential");
    }

    #[test]
    fn header_names_read_as_an_application_does() {
        assert!(same_header("x_user_id", "x-user-id"));
        assert!(same_header("x-user-id", "X-User-Id"));
        assert!(!same_header("x-user-ids", "x-user-id"));
        let h = headers(&[("x_token", "abc")]);
        let c = collect(&h, &sources()).unwrap();
        assert_eq!(c.token, None, "only the configured spelling is a source");
        let s = c.strip(&h, &sources(), false).unwrap();
        assert_eq!(s.remove, vec![HeaderName::from_static("x_token")]);
    }
}
