//! Request paths as the gateway decides on them: the path of a raw request
//! target, whether it is canonical, and prefix sets matched on canonical
//! paths only (public paths). A rule that depends on where a request goes
//! is decided here, on the bytes the application will receive, never on a
//! normalised copy the application might not agree with.

/// Public path prefixes. A request is public only when its raw request
/// target is canonical ([`is_canonical`]) and starts with a prefix at a
/// segment boundary (`/static` matches `/static` and `/static/x`, not
/// `/staticx`): the path the application receives is then exactly the one
/// matched, whatever it does with dot segments, `;` or encoded separators.
#[derive(Debug, Clone, Default)]
pub struct PublicPaths {
    prefixes: Vec<String>,
}

impl PublicPaths {
    /// The set of `prefixes` (`enforcement.public_paths`, validated as
    /// canonical paths); empty: nothing is public.
    pub fn new(prefixes: &[String]) -> Self {
        Self {
            prefixes: prefixes.to_vec(),
        }
    }

    /// True when `path` (the raw path, before any decoding, without the
    /// query) is canonical and under a public prefix.
    pub fn matches(&self, path: &[u8]) -> bool {
        // The prefix first: only a candidate path is scanned whole.
        self.prefixes
            .iter()
            .any(|p| under_prefix(path, p.as_bytes()))
            && is_canonical(path)
    }
}

fn under_prefix(path: &[u8], prefix: &[u8]) -> bool {
    if prefix == b"/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || prefix.ends_with(b"/") || rest.starts_with(b"/"),
        None => false,
    }
}

/// The path of a raw request target: origin-form (`/...`) up to the query.
/// `None` for any other form (absolute-form, `*`, authority-form), which is
/// never public nor served by the gateway. A `#` is not cut off: the
/// application receives it (it is not canonical, see [`is_canonical`]).
pub fn target_path(raw_target: &[u8]) -> Option<&[u8]> {
    if !raw_target.starts_with(b"/") {
        return None;
    }
    let end = raw_target
        .iter()
        .position(|b| *b == b'?')
        .unwrap_or(raw_target.len());
    Some(&raw_target[..end])
}

/// A raw path an application cannot read differently from the gateway:
/// printable ASCII starting with `/`; no `.` or `..` segment; no `\`, `;`
/// or `#`;
/// no percent-encoded `.`, `/`, `\`, `%` or NUL (`%2E %2F %5C %25 %00`, any
/// case); no malformed percent-encoding.
pub fn is_canonical(path: &[u8]) -> bool {
    if !path.starts_with(b"/") {
        return false;
    }
    let mut i = 0;
    while i < path.len() {
        match path[i] {
            b'\\' | b';' | b'#' => return false,
            b'%' => {
                let (Some(h), Some(l)) = (path.get(i + 1), path.get(i + 2)) else {
                    return false;
                };
                let (Some(h), Some(l)) = (hex(*h), hex(*l)) else {
                    return false;
                };
                if matches!(h * 16 + l, b'.' | b'/' | b'\\' | b'%' | 0) {
                    return false;
                }
                i += 3;
                continue;
            }
            0x21..=0x7e => {}
            _ => return false,
        }
        i += 1;
    }
    !path
        .split(|b| *b == b'/')
        .any(|segment| segment == b"." || segment == b"..")
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths() {
        for ok in [
            "/",
            "/a/b",
            "/healthz",
            "/a/b/",
            "//a",
            "/a%20b",
            "/%41",
            "/a.b/.c/..d",
        ] {
            assert!(is_canonical(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "healthz",
            "/.",
            "/a/./b",
            "/a/../b",
            "/a/..",
            "/a\\b",
            "/a;/../b",
            "/a;x",
            "/%2e%2e/a",
            "/%2E",
            "/a%2fb",
            "/a%2Fb",
            "/a%5cb",
            "/a%5Cb",
            "/a%25",
            "/a%00",
            "/a%",
            "/a%2",
            "/a%zz",
            "/a b",
            "/caf\u{e9}",
        ] {
            assert!(!is_canonical(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn target_paths() {
        assert_eq!(target_path(b"/a?b=/healthz"), Some(&b"/a"[..]));
        assert_eq!(target_path(b"/a#x"), Some(&b"/a#x"[..]));
        assert!(!is_canonical(b"/healthz#/../admin"));
        assert_eq!(target_path(b"http://h/healthz"), None);
        assert_eq!(target_path(b"*"), None);
    }

    #[test]
    fn public_prefixes_match_canonical_paths_on_segments() {
        let p = PublicPaths::new(&["/healthz".into(), "/static/".into()]);
        assert!(p.matches(b"/healthz"));
        assert!(p.matches(b"/healthz/live"));
        assert!(!p.matches(b"/healthzx"));
        assert!(p.matches(b"/static/app.js"));
        assert!(!p.matches(b"/static"));
        for probe in [
            "/healthz/../admin",
            "/healthz/%2e%2e/admin",
            "/healthz%2f..%2fadmin",
            "/static/..%5cadmin",
            "/static/./app.js",
            "/healthz;/../admin",
            "/healthz/..;/admin",
        ] {
            assert!(!p.matches(probe.as_bytes()), "{probe}");
        }
        assert!(!PublicPaths::new(&[]).matches(b"/healthz"));
    }
}
