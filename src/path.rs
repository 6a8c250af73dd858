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

/// A path read the widest way an application might read it, for rules that
/// must hold however it is read (step-up routes): percent-decoded until
/// stable (three rounds at most), `\` read as `/`, cut at the first NUL,
/// control byte, `?` or `#`, `;` parameters dropped from each segment, empty
/// and `.` segments dropped, `..` resolved, ASCII lowercased. A route
/// matches when this starts with its prefix (read the same way), so no
/// spelling of a protected path escapes it; other paths may match too (on
/// the safe side).
pub fn widest_reading(path: &[u8]) -> Vec<u8> {
    let mut bytes = path.to_vec();
    for _ in 0..3 {
        let decoded = percent_decode(&bytes);
        if decoded == bytes {
            break;
        }
        bytes = decoded;
    }
    let end = bytes
        .iter()
        .position(|b| *b < 0x20 || *b == 0x7f || *b == b'?' || *b == b'#')
        .unwrap_or(bytes.len());
    let mut segments: Vec<Vec<u8>> = Vec::new();
    for raw in bytes[..end].split(|b| *b == b'/' || *b == b'\\') {
        let seg = raw.split(|b| *b == b';').next().unwrap_or(&[]);
        match seg {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            _ => segments.push(seg.to_ascii_lowercase()),
        }
    }
    let mut out = Vec::with_capacity(end + 1);
    for seg in segments {
        out.push(b'/');
        out.extend_from_slice(&seg);
    }
    if out.is_empty() || bytes[..end].ends_with(b"/") {
        out.push(b'/');
    }
    out
}

/// A path whose [`widest_reading`] is itself: lowercase letters, digits,
/// `/ - _ . ~` only, no empty or dot segment, no trailing `/`.
fn is_plain(path: &[u8]) -> bool {
    path.len() > 1
        && path[0] == b'/'
        && !path.ends_with(b"/")
        && path
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~'))
        && !path.windows(2).any(|w| w == b"//" || w == b"/.")
}

fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Step-up route prefixes, matched on [`widest_reading`] of both sides.
#[derive(Debug, Clone, Default)]
pub struct RoutePrefixes {
    prefixes: Vec<Vec<u8>>,
}

impl RoutePrefixes {
    /// The set of `prefixes`, in order.
    pub fn new<'a>(prefixes: impl IntoIterator<Item = &'a str>) -> Self {
        let prefixes = prefixes
            .into_iter()
            .map(|p| {
                let mut w = widest_reading(p.as_bytes());
                // "/account/" and "/account" protect the same tree.
                if w.len() > 1 && w.ends_with(b"/") {
                    w.pop();
                }
                w
            })
            .collect();
        Self { prefixes }
    }

    /// No route.
    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }

    /// The indexes of the prefixes `path` falls under, in order.
    pub fn matching<'a>(&'a self, path: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
        // A plain path (the common case) is its own widest reading: no
        // allocation.
        let reading = if is_plain(path) {
            std::borrow::Cow::Borrowed(path)
        } else {
            std::borrow::Cow::Owned(widest_reading(path))
        };
        self.prefixes
            .iter()
            .enumerate()
            .filter(move |(_, p)| reading.starts_with(p))
            .map(|(i, _)| i)
    }
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

    #[test]
    fn no_spelling_of_a_route_escapes_it() {
        let routes = RoutePrefixes::new(["/account/security"]);
        for p in [
            "/account/security",
            "/account/security/",
            "/account/security/password",
            "/account/securityx",
            "//account/security",
            "/account//security",
            "/account/./security",
            "/x/../account/security",
            "/account/security;jsessionid=1",
            "/account;a=b/security",
            "/Account/Security",
            "/account/%73ecurity",
            "/account%2Fsecurity",
            "/account%252Fsecurity",
            "/account\\security",
            "/account/%5Csecurity",
            "/account/security%00",
            "/account/security%3Fx",
            "/account/security#x",
            "/account/%2e/security",
            "/public/%2e%2e/account/security",
        ] {
            assert!(routes.matching(p.as_bytes()).next().is_some(), "{p}");
        }
        for p in [
            "/",
            "/account",
            "/account/sec",
            "/accounts/security",
            "/other/account/security",
        ] {
            assert!(routes.matching(p.as_bytes()).next().is_none(), "{p}");
        }
    }

    #[test]
    fn a_route_with_a_trailing_slash_covers_its_tree() {
        let routes = RoutePrefixes::new(["/admin/"]);
        assert!(routes.matching(b"/admin").next().is_some());
        assert!(routes.matching(b"/admin/users").next().is_some());
        assert_eq!(widest_reading(b"/"), b"/");
        assert_eq!(widest_reading(b"/a/b/"), b"/a/b/");
    }

    #[test]
    fn a_plain_path_is_its_own_widest_reading() {
        for p in ["/app", "/a/b-c_d.e~f/9"] {
            assert!(is_plain(p.as_bytes()));
            assert_eq!(widest_reading(p.as_bytes()), p.as_bytes());
        }
        for p in [
            "/",
            "/A",
            "/a/",
            "//a",
            "/a/./b",
            "/a/.hidden",
            "/a%20",
            "/a;b",
            "/a\\b",
        ] {
            assert!(!is_plain(p.as_bytes()), "{p}");
        }
    }
}
