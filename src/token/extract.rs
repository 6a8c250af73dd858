//! Finds a request's token in its configured sources, in order, without
//! allocating: the result borrows from the request headers.

use http::header::{AUTHORIZATION, COOKIE};
use http::HeaderMap;

use crate::config::TokenSource;

/// The first token found in `sources`, as raw bytes of the header value.
/// An `Authorization` header with another scheme (Basic...) is no token.
pub fn find_token<'h>(headers: &'h HeaderMap, sources: &[TokenSource]) -> Option<&'h [u8]> {
    sources.iter().find_map(|source| match source {
        TokenSource::Bearer => headers
            .get_all(AUTHORIZATION)
            .iter()
            .find_map(|v| bearer(v.as_bytes())),
        TokenSource::Cookie(name) => headers
            .get_all(COOKIE)
            .iter()
            .find_map(|v| cookie(v.as_bytes(), name.as_bytes())),
        TokenSource::Header(name) => headers
            .get_all(name)
            .iter()
            .find_map(|v| non_empty(trim(v.as_bytes()))),
    })
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

/// The value of cookie `name` in one `Cookie` header (RFC 6265 section 4.2).
fn cookie<'v>(header: &'v [u8], name: &[u8]) -> Option<&'v [u8]> {
    header.split(|b| *b == b';').find_map(|pair| {
        let pair = trim(pair);
        let eq = pair.iter().position(|b| *b == b'=')?;
        if trim(&pair[..eq]) != name {
            return None;
        }
        let mut value = trim(&pair[eq + 1..]);
        if value.len() >= 2 && value[0] == b'"' && value[value.len() - 1] == b'"' {
            value = &value[1..value.len() - 1];
        }
        non_empty(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

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

    #[test]
    fn bearer_first() {
        let h = headers(&[("authorization", "bearer  abc "), ("cookie", "session=def")]);
        assert_eq!(find_token(&h, &sources()), Some(&b"abc"[..]));
    }

    #[test]
    fn basic_auth_is_not_a_token() {
        let h = headers(&[
            ("authorization", "Basic Zm9vOmJhcg=="),
            ("cookie", "a=1; session=\"def\""),
        ]);
        assert_eq!(find_token(&h, &sources()), Some(&b"def"[..]));
    }

    #[test]
    fn cookie_name_must_match_exactly() {
        let h = headers(&[("cookie", "xsession=1; sessionx=2"), ("x-token", " ghi ")]);
        assert_eq!(find_token(&h, &sources()), Some(&b"ghi"[..]));
    }

    #[test]
    fn nothing_found() {
        let h = headers(&[("authorization", "Bearer "), ("cookie", "session=")]);
        assert_eq!(find_token(&h, &sources()), None);
    }
}
