//! Property tests of everything that parses attacker input, each checked
//! against a model of what an application behind the gateway might make of
//! the same bytes: request paths, credentials in headers and cookies, token
//! headers and claims, `X-Forwarded-For`, admin query strings and `Host`.

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use sessiongate::admin::{is_local_host, Query};
use sessiongate::client_ip::TrustedProxies;
use sessiongate::config::{TokenConfig, TokenSource};
use sessiongate::path::{is_canonical, target_path, PublicPaths};
use sessiongate::token::extract::{collect, CredentialError, Strip};
use sessiongate::token::Verifier;

// ------------------------------------------------------------------ paths

/// Path bytes chosen to hit every rule: separators, dots, escapes.
fn path_piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/", "pub", "admin", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "%5C", "%25", "%00",
        "%41", "%", "%2", "%zz", ";", "\\", "a", "b.c", "?", "#", "#/", "x", "%252e", "..;", ".;x",
        "/../", "/./",
    ])
}

/// Half of them start under the prefix, where a confusion would matter.
fn raw_path() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["/", "/pub", "/pub/"]),
        prop::collection::vec(path_piece(), 0..8),
    )
        .prop_map(|(start, p)| format!("{start}{}", p.concat()))
}

/// One way an application may read a path: decoding percent-escapes or
/// not, `\` as `/` or not, `;params` dropped or not; then dot segments
/// resolved (RFC 3986 5.2.4).
fn interpret(raw: &str, decode: bool, backslash: bool, params: bool) -> String {
    let mut text = raw.to_string();
    if decode {
        text = percent_encoding::percent_decode_str(&text)
            .decode_utf8_lossy()
            .into_owned();
    }
    if backslash {
        text = text.replace('\\', "/");
    }
    let mut out: Vec<String> = Vec::new();
    for seg in text.split('/').skip(1) {
        let seg = if params {
            seg.split(';').next().unwrap_or("")
        } else {
            seg
        };
        match seg {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s.to_string()),
        }
    }
    format!("/{}", out.join("/"))
}

fn under(path: &str, prefix: &str) -> bool {
    path == prefix || path.starts_with(&format!("{prefix}/"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    /// Either a path is not public, or every reading of it an application
    /// might make is under the public prefix (and the gateway forwards the
    /// raw path it matched, so there is nothing else to read).
    #[test]
    fn a_public_path_is_public_for_every_reader(raw in raw_path()) {
        let public = PublicPaths::new(&["/pub".to_string()]);
        // As the gateway decides: on the target's path, up to the query.
        let Some(path) = target_path(raw.as_bytes()) else {
            return Ok(());
        };
        if public.matches(path) {
            prop_assert!(is_canonical(path));
            // What the app may route on, from the bytes it receives: the
            // path as sent up to the query (a `#` kept, as Go's ServeMux
            // does), or cut at a `#`.
            let sent = raw.split('?').next().unwrap_or("");
            let cut = sent.split('#').next().unwrap_or("");
            for app_path in [sent, cut] {
                for decode in [false, true] {
                    for backslash in [false, true] {
                        for params in [false, true] {
                            let seen = interpret(app_path, decode, backslash, params);
                            prop_assert!(
                                under(&seen, "/pub"),
                                "{raw} is public but reads as {seen}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The legitimate side: plain segments under the prefix are public.
    #[test]
    fn plain_paths_under_the_prefix_are_public(
        segs in prop::collection::vec("[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,8}", 0..5)
    ) {
        let raw = format!("/pub/{}", segs.join("/"));
        prop_assume!(!segs.iter().any(|s| s == "." || s == ".."));
        prop_assert!(PublicPaths::new(&["/pub".to_string()]).matches(raw.as_bytes()), "{raw}");
    }
}

// ------------------------------------------------------------ credentials

fn sources() -> Vec<TokenSource> {
    vec![
        TokenSource::Bearer,
        TokenSource::Cookie("session".into()),
        TokenSource::Header(HeaderName::from_static("x-token")),
    ]
}

#[derive(Debug, Clone)]
enum Part {
    Authorization(String),
    Cookie(Vec<(String, String)>),
    Header(&'static str, String),
}

fn value() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["t1", "t2", "", "t1 "]).prop_map(String::from)
}

fn part() -> impl Strategy<Value = Part> {
    let cookie_name =
        prop::sample::select(vec!["session", "SESSION", "sess%69on", "theme", "sessionx"]);
    prop_oneof![
        (
            prop::sample::select(vec!["Bearer ", "bearer ", "Basic ", "Bearer  "]),
            value()
        )
            .prop_map(|(s, v)| Part::Authorization(format!("{s}{v}"))),
        prop::collection::vec((cookie_name.prop_map(String::from), value()), 1..4)
            .prop_map(Part::Cookie),
        (
            prop::sample::select(vec!["x-token", "x_token", "x-other"]),
            value()
        )
            .prop_map(|(n, v)| Part::Header(n, v)),
    ]
}

fn build(parts: &[Part]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for p in parts {
        match p {
            Part::Authorization(v) => {
                h.append(
                    http::header::AUTHORIZATION,
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            Part::Cookie(pairs) => {
                let v: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
                h.append(
                    http::header::COOKIE,
                    HeaderValue::from_str(&v.join("; ")).unwrap(),
                );
            }
            Part::Header(n, v) => {
                h.append(
                    HeaderName::from_static(n),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
        }
    }
    h
}

fn apply(h: &mut HeaderMap, strip: &Strip) {
    for name in &strip.remove {
        h.remove(name);
    }
    if let Some(cookie) = &strip.cookie {
        h.remove(http::header::COOKIE);
        if let Some(v) = cookie {
            h.insert(http::header::COOKIE, v.clone());
        }
    }
}

/// Every credential an application might read in `h`: Bearer values,
/// cookies named like the session cookie (any case, percent-decoded), the
/// token header in either spelling.
fn credentials_seen(h: &HeaderMap) -> Vec<String> {
    let mut out = Vec::new();
    for v in h.get_all(http::header::AUTHORIZATION) {
        let v = v.to_str().unwrap().trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            out.push(v[7..].trim().to_string());
        }
    }
    for v in h.get_all(http::header::COOKIE) {
        for pair in v.to_str().unwrap().split(';') {
            if let Some((n, v)) = pair.trim().split_once('=') {
                let n = percent_encoding::percent_decode_str(n.trim()).decode_utf8_lossy();
                if n.eq_ignore_ascii_case("session") {
                    out.push(v.trim().to_string());
                }
            }
        }
    }
    for name in ["x-token", "x_token"] {
        for v in h.get_all(name) {
            out.push(v.to_str().unwrap().trim().to_string());
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Either the request is refused as ambiguous, or after stripping the
    /// application sees exactly the token found (or, not keeping it, no
    /// credential at all), and a second pass finds nothing more to strip.
    #[test]
    fn the_app_sees_one_credential_or_none(parts in prop::collection::vec(part(), 0..5)) {
        let h = build(&parts);
        let Ok(found) = collect(&h, &sources()) else {
            return Ok(());
        };
        for keep in [true, false] {
            let mut stripped = h.clone();
            if let Some(s) = found.strip(&h, &sources(), keep) {
                apply(&mut stripped, &s);
            }
            let seen: Vec<String> = credentials_seen(&stripped)
                .into_iter()
                .filter(|c| !c.is_empty())
                .collect();
            match (keep, found.token) {
                (true, Some(t)) => {
                    let t = std::str::from_utf8(t).unwrap().to_string();
                    prop_assert_eq!(&seen, &vec![t.clone()], "{:?}", parts);
                    let again = collect(&stripped, &sources()).unwrap();
                    prop_assert_eq!(again.token.map(|t| t.to_vec()), Some(t.into_bytes()));
                    prop_assert!(again.strip(&stripped, &sources(), true).is_none());
                }
                _ => prop_assert!(seen.is_empty(), "{:?} left {:?}", parts, seen),
            }
        }
    }

    /// The ambiguity rule against its model.
    #[test]
    fn ambiguity_matches_the_model(parts in prop::collection::vec(part(), 0..5)) {
        let h = build(&parts);
        let authorizations = h.get_all(http::header::AUTHORIZATION).iter().count();
        let token_headers = h.get_all("x-token").iter().count() + h.get_all("x_token").iter().count();
        let mut cookie_values: Vec<String> = Vec::new();
        for v in h.get_all(http::header::COOKIE) {
            for pair in v.to_str().unwrap().split(';') {
                if let Some((n, v)) = pair.trim().split_once('=') {
                    let n = percent_encoding::percent_decode_str(n.trim()).decode_utf8_lossy();
                    if n.eq_ignore_ascii_case("session") {
                        cookie_values.push(v.trim().to_string());
                    }
                }
            }
        }
        cookie_values.dedup();
        let expected = if authorizations > 1 {
            Err(CredentialError::DuplicateAuthorization)
        } else if cookie_values.len() > 1 && cookie_values.iter().any(|v| *v != cookie_values[0]) {
            Err(CredentialError::ConflictingCookies)
        } else if token_headers > 1 {
            Err(CredentialError::DuplicateHeader)
        } else {
            Ok(())
        };
        prop_assert_eq!(collect(&h, &sources()).map(|_| ()), expected, "{:?}", parts);
    }
}

// ----------------------------------------------------------------- tokens

const SECRET: &[u8] = b"property-test-secret-0123456789abcdef";
const NOW: i64 = 1_800_000_000;

fn verifier() -> Verifier {
    Verifier::new(&TokenConfig::hs256(SECRET, 86_400, 0)).unwrap()
}

fn sign(header: &str, payload: &[u8]) -> String {
    let h = URL_SAFE_NO_PAD.encode(header);
    let p = URL_SAFE_NO_PAD.encode(payload);
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
    let sig = aws_lc_rs::hmac::sign(&key, format!("{h}.{p}").as_bytes());
    format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn claim_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        (NOW - 100_000..NOW + 100_000).prop_map(|n| json!(n)),
        // Near every boundary: leeway, max_session_lifetime_s, both.
        (
            prop::sample::select(vec![-86_400 - 30, -86_400, -30, 0, 30, 86_400, 86_400 + 30]),
            -2i64..=2
        )
            .prop_map(|(edge, d)| json!(NOW + edge + d)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-z0-9\u{0}-\u{1f}\u{7f}-\u{ff}]{0,6}".prop_map(|s| json!(s)),
        Just(json!([1, "a"])),
        Just(json!({"k": "v"})),
    ]
}

fn claims() -> impl Strategy<Value = Vec<(String, serde_json::Value)>> {
    let name = prop::sample::select(vec![
        "sid", "sub", "jti", "exp", "iat", "nbf", "iss", "aud", "events", "other",
    ]);
    prop::collection::vec((name.prop_map(String::from), claim_value()), 0..8)
}

/// A JSON object text, duplicate names kept (serde_json's map would merge them).
fn object(pairs: &[(String, serde_json::Value)]) -> String {
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}:{}", serde_json::json!(k), v))
        .collect();
    format!("{{{}}}", body.join(","))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Any signed claim set: never a panic, and accepted only when the
    /// model says so: one of each claim read, numeric times in range, not
    /// expired, not issued in the future, not too old, and no `events`.
    #[test]
    fn signed_claims_are_accepted_only_when_the_model_says(pairs in claims()) {
        let text = object(&pairs);
        let token = sign(r#"{"alg":"HS256","typ":"JWT"}"#, text.as_bytes());
        let got = verifier().verify(token.as_bytes(), NOW);
        let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).filter(|k| *k != "other").collect();
        let count = names.len();
        names.sort();
        names.dedup();
        let time = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let as_time = |v: &serde_json::Value| v.as_i64().or_else(|| v.as_f64().map(|f| f.floor() as i64));
        let times_ok = ["exp", "iat", "nbf"].iter().all(|k| match time(k) {
            None => true,
            Some(v) => as_time(&v).is_some_and(|t| (0..=253_402_300_799).contains(&t)),
        });
        let exp = time("exp").and_then(|v| as_time(&v));
        let iat = time("iat").and_then(|v| as_time(&v));
        let nbf = time("nbf").and_then(|v| as_time(&v));
        let model = names.len() == count
            && times_ok
            && !names.contains(&"events")
            && nbf.is_none_or(|n| NOW + 30 >= n)
            && iat.is_none_or(|i| i <= NOW + 30)
            && match (exp, iat) {
                // Too old past iat + max_session_lifetime_s, whatever exp says.
                (Some(e), Some(i)) if e > i + 86_400 => NOW <= i + 86_400,
                (Some(e), Some(i)) => NOW < e + 30 && NOW <= i + 86_400,
                // Without iat, an exp further than the longest session.
                (Some(e), None) => NOW < e + 30 && e - NOW <= 86_400,
                // Without exp, iat + max_session_lifetime_s is its expiry.
                (None, Some(i)) => NOW <= i + 86_400,
                (None, None) => false,
            };
        prop_assert_eq!(got.is_ok(), model, "{} -> {:?}", text, got);
        if let Ok(t) = got {
            let sid = time("sid").and_then(|v| match v {
                serde_json::Value::String(s) if !s.is_empty() => Some(s),
                serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
                _ => None,
            });
            if let Some(sid) = sid {
                prop_assert_eq!(t.session_id.clone(), sid);
            }
        }
    }

    /// Arbitrary bytes, and any change to a valid token, are refused
    /// without a panic.
    #[test]
    fn tampered_tokens_are_refused(
        junk in prop::collection::vec(any::<u8>(), 0..200),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let v = verifier();
        prop_assert!(v.verify(&junk, NOW).is_err());
        let good = sign(
            r#"{"alg":"HS256"}"#,
            format!(r#"{{"sid":"s","exp":{}}}"#, NOW + 60).as_bytes(),
        );
        prop_assert!(v.verify(good.as_bytes(), NOW).is_ok());
        let mut bad = good.into_bytes();
        let i = at.index(bad.len());
        prop_assume!(bad[i] != byte);
        bad[i] = byte;
        prop_assert!(v.verify(&bad, NOW).is_err(), "{}", String::from_utf8_lossy(&bad));
    }

    /// Header parsing: any `alg`, `kid`, `typ` or `crit` an attacker sends
    /// is refused unless it is exactly the configured HS256.
    #[test]
    fn only_the_configured_algorithm_verifies(
        alg in prop::sample::select(vec!["HS256", "hs256", "none", "HS384", "RS256", "ES256", "HS256 ", ""]),
        extra in prop::sample::select(vec!["", r#","kid":"k""#, r#","crit":["exp"]"#, r#","typ":"logout+jwt""#, r#","alg":"none""#]),
    ) {
        let header = format!(r#"{{"alg":"{alg}"{extra}}}"#);
        let token = sign(&header, format!(r#"{{"sid":"s","exp":{}}}"#, NOW + 60).as_bytes());
        let ok = verifier().verify(token.as_bytes(), NOW).is_ok();
        // A token with a kid is tried only against keys with that kid.
        prop_assert_eq!(ok, alg == "HS256" && extra.is_empty(), "{}", header);
    }
}

// ---------------------------------------------------- X-Forwarded-For

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..4).prop_map(|d| IpAddr::from([10, 0, 0, d])),
        (0u8..4).prop_map(|d| IpAddr::from([203, 0, 113, d])),
        (0u8..3).prop_map(|d| IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, u16::from(d)])),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The client is the right-most address not itself a trusted proxy,
    /// believed only from a trusted peer; garbage stops the walk.
    #[test]
    fn client_ip_is_the_right_most_untrusted_hop(
        peer in ip(),
        chain in prop::collection::vec(prop_oneof![ip().prop_map(|i| i.to_string()), Just("garbage".to_string())], 0..5),
        split in any::<bool>(),
    ) {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()];
        let t = TrustedProxies::new(trusted.clone());
        let trusts = |i: &IpAddr| trusted.iter().any(|n| n.contains(i));
        let headers: Vec<String> = if split {
            chain.clone()
        } else {
            vec![chain.join(", ")]
        };
        let got = t.client_ip(peer, headers.iter().map(String::as_str));
        let mut model = peer;
        if trusts(&peer) {
            for hop in chain.iter().rev() {
                if !trusts(&model) {
                    break;
                }
                match hop.parse::<IpAddr>() {
                    Ok(i) => model = i,
                    Err(_) => break,
                }
            }
        }
        prop_assert_eq!(got, model, "peer {} chain {:?}", peer, chain);
        if !trusts(&peer) {
            prop_assert_eq!(got, peer, "an untrusted peer's header is ignored");
        }
    }
}

// ------------------------------------------------------------------ admin

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Query strings: a name outside the allowed list, or given twice, is
    /// refused; otherwise each value is exactly what was encoded.
    #[test]
    fn admin_query_strings(
        pairs in prop::collection::vec((prop::sample::select(vec!["reason", "except", "limit", "reasom", "REASON"]), "\\PC{0,8}"), 0..4)
    ) {
        let encoded: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let allowed = ["reason", "except", "limit"];
        let got = Query::parse(Some(&encoded), &allowed);
        let mut names: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
        let unknown = names.iter().any(|k| !allowed.contains(k));
        names.sort();
        let n = names.len();
        names.dedup();
        let repeated = names.len() != n;
        match got {
            Ok(q) => {
                prop_assert!(!unknown && !repeated, "{}", encoded);
                for (k, v) in &pairs {
                    prop_assert_eq!(q.value(k), Some(v.as_str()));
                }
            }
            Err(e) => prop_assert!(unknown || repeated, "{} refused: {}", encoded, e),
        }
    }

    /// `Host` without an admin token: only this machine's names pass.
    #[test]
    fn admin_hosts(
        name in prop_oneof![
            "[a-z][a-z0-9.-]{0,20}",
            Just("localhost".to_string()),
            (0u8..=255, 0u8..=255, 0u8..=255).prop_map(|(a, b, c)| format!("127.{a}.{b}.{c}")),
            (1u8..=126, 0u8..=255).prop_map(|(a, b)| format!("{a}.{b}.0.1")),
        ],
        port in prop::option::of(0u32..70000),
    ) {
        let host = match port {
            Some(p) => format!("{name}:{p}"),
            None => name.clone(),
        };
        let listener: IpAddr = "127.0.0.1".parse().unwrap();
        let local_name = name.eq_ignore_ascii_case("localhost")
            || name.parse::<IpAddr>().is_ok_and(|i| i.is_loopback());
        let port_ok = port.is_none_or(|p| p.to_string().len() <= 5);
        prop_assert_eq!(is_local_host(&host, listener), local_name && port_ok, "{}", host);
    }
}
