//! The promise under attack: no revoked, forged or expired session, and no
//! unauthenticated request outside a public prefix, reaches the application,
//! by any path, header, cookie or protocol. One test per attack class, each
//! sent as an attacker would (raw sockets where a client library would tidy
//! the request), each beside the legitimate request that must still work.
//! SECURITY.md is the threat model these tests hold the gateway to.

mod common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use common::*;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

const WITHIN: Duration = Duration::from_secs(5);

async fn json_body(resp: reqwest::Response) -> Value {
    resp.json().await.unwrap()
}

/// The requests the upstream saw for `path`.
fn seen_at(up: &TestUpstream, path: &str) -> Vec<Seen> {
    up.seen().into_iter().filter(|s| s.path == path).collect()
}

// ------------------------------------------------------------- retention

/// A revoked session stays revoked for its next token: the IdP refreshes
/// access tokens under the same `sid`, so the revocation must outlive the
/// short token it was seen with (it lasts max_session_lifetime_s).
#[tokio::test]
async fn revoked_session_stays_revoked_for_its_refreshed_token() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let t = now();
    // The phone's current token expires in a minute.
    let short = hs256(&json!({"sub": "alice", "sid": "phone", "iat": t, "exp": t + 60}));
    assert_eq!(gw.get("/", &short).await.status(), 200);
    assert_eq!(gw.revoke_session("phone", "lost").await.status(), 200);

    let list = json_body(
        gw.admin_client()
            .get(gw.admin_url("/v1/revocations"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = &list["revocations"][0];
    assert_eq!(r["target"], "phone");
    let expires = humantime::parse_rfc3339(r["expires_at"].as_str().unwrap())
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // The default max_session_lifetime_s is 30 days.
    assert!(
        expires >= t + 2_592_000,
        "the revocation outlives the 60 s token it was seen with: expires_at {}",
        r["expires_at"]
    );
    // The refreshed token (same sid, issued later, valid longer) is refused.
    let refreshed = hs256(&json!({"sub": "alice", "sid": "phone", "iat": t + 1, "exp": t + 3600}));
    assert_eq!(gw.get("/", &refreshed).await.status(), 401);
    // Another device of the same user is untouched.
    let laptop = hs256(&json!({"sub": "alice", "sid": "laptop", "iat": t, "exp": t + 3600}));
    assert_eq!(gw.get("/", &laptop).await.status(), 200);
}

/// Once a revocation is purged (after max_session_lifetime_s), no token of
/// that session can be valid any more: it would be older than the longest
/// session. Both a session revocation and a user cutoff, end to end.
#[tokio::test]
async fn purged_revocations_leave_no_valid_token_behind() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.token = vec!["max_session_lifetime_s = 3".into(), "leeway_s = 0".into()];
    cfg.store = vec!["purge_interval_s = 1".into()];
    let gw = Gateway::start(cfg).await;
    let t = now();
    // Tokens that claim to live an hour, issued now.
    let phone = hs256(&json!({"sub": "bob", "sid": "p", "iat": t, "exp": t + 3600}));
    let tablet = hs256(&json!({"sub": "carol", "sid": "tab", "iat": t, "exp": t + 3600}));
    assert_eq!(gw.get("/", &phone).await.status(), 200);
    assert_eq!(gw.get("/", &tablet).await.status(), 200);
    assert_eq!(gw.revoke_session("p", "lost").await.status(), 200);
    assert_eq!(gw.revoke_user("carol", None).await.status(), 200);
    assert_eq!(gw.get("/", &phone).await.status(), 401);
    assert_eq!(gw.get("/", &tablet).await.status(), 401);
    // Wait for the purge to drop both from memory.
    assert_eventually!(
        gw.metric("sessiongate_revoked_sessions").await == 0.0
            && gw.metric("sessiongate_user_cutoffs").await == 0.0,
        Duration::from_secs(15),
        "the purge drops both revocations"
    );
    for tok in [&phone, &tablet] {
        let resp = gw.get("/", tok).await;
        assert_eq!(resp.status(), 401, "purged, yet still refused");
        assert_eq!(json_body(resp).await["error"], "invalid_token");
    }
    // A token issued now, of a session never revoked, is fine.
    let fresh = hs256(&json!({"sub": "carol", "sid": "new", "iat": now(), "exp": now() + 60}));
    assert_eq!(gw.get("/", &fresh).await.status(), 200);
}

/// The same in a cluster: the revocation a gateway writes to Redis lasts as
/// long, and a gateway that starts later refuses the refreshed token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_keeps_the_revocation_as_long() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.store = redis.store_lines();
    let a = Gateway::start(cfg.clone()).await;
    let t = now();
    let short = hs256(&json!({"sub": "alice", "sid": "c-phone", "iat": t, "exp": t + 60}));
    assert_eq!(a.get("/", &short).await.status(), 200);
    assert_eq!(a.revoke_session("c-phone", "lost").await.status(), 200);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg("sessiongate:rev:s:c-phone")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        ttl >= 2_592_000,
        "the Redis key outlives the 60 s token: TTL {ttl}"
    );
    assert_eq!(a.revoke_user("bob", None).await.status(), 200);
    let ttl: i64 = redis::cmd("TTL")
        .arg("sessiongate:rev:u:bob")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        ttl >= 2_592_000,
        "a cutoff lasts the longest session: TTL {ttl}"
    );
    let b = Gateway::start(cfg).await;
    let refreshed =
        hs256(&json!({"sub": "alice", "sid": "c-phone", "iat": t + 1, "exp": t + 3600}));
    assert_eq!(b.get("/", &refreshed).await.status(), 401);
    let other = hs256(&json!({"sub": "alice", "sid": "c-laptop", "iat": t, "exp": t + 3600}));
    assert_eq!(b.get("/", &other).await.status(), 200);
}

// ---------------------------------------------------------- public paths

/// Paths an application may route differently from the gateway are never
/// public: forwarded only with a token, exactly as sent. HTTP/1.1 and h2c.
#[tokio::test]
async fn non_canonical_paths_are_never_public() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.enforcement
        .push(r#"public_paths = ["/healthz", "/static/"]"#.into());
    cfg.listen = vec!["h2c = true".into()];
    let gw = Gateway::start(cfg).await;
    let probes = [
        "/admin/..%5chealthz",
        "/admin/..%5Chealthz",
        "/admin/x/../../healthz",
        "/admin;/../healthz",
        "/admin/..;/healthz",
        "/healthz/../admin",
        "/healthz/./../admin",
        "/healthz/%2e%2e/admin",
        "/healthz/.%2e/admin",
        "/healthz%2f..%2fadmin",
        "/healthz%2F..%2Fadmin",
        "/healthz/%252e%252e/admin",
        "/healthz/..%00/admin",
        "/healthz;x",
        "/healthz\\..\\admin",
        "/static/./app.js",
        "/static/%2e/app.js",
        "/static/..%5cadmin",
        "/static/a/%zz",
        "http://x/healthz",
        "//healthz",
    ];
    for probe in probes {
        let (status, body) = raw_get(gw.proxy, probe, &[]).await;
        // 400: pingora refuses an absolute-form target outright.
        assert!(
            status == 401 || (probe.starts_with("http:") && status == 400),
            "{probe} must need a token: {status} {body}"
        );
    }
    assert!(
        up.seen().is_empty(),
        "nothing reached the app: {:?}",
        up.seen()
    );

    // Over HTTP/2, `:path` is held to the same rule.
    let tcp = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    let (mut h2, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(connection);
    for probe in [
        "/admin/..%5chealthz",
        "/admin/x/../../healthz",
        "/healthz/%2e%2e/x",
    ] {
        let req = http::Request::get(format!("http://{}{probe}", gw.proxy))
            .body(())
            .unwrap();
        let (resp, _) = h2.send_request(req, true).unwrap();
        let resp = tokio::time::timeout(WITHIN, resp).await.unwrap().unwrap();
        assert_eq!(resp.status(), 401, "h2 {probe}");
    }
    let req = http::Request::get(format!("http://{}/healthz/h2", gw.proxy))
        .body(())
        .unwrap();
    let (resp, _) = h2.send_request(req, true).unwrap();
    let resp = tokio::time::timeout(WITHIN, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200, "h2 public path");
    driver.abort();

    // A WebSocket upgrade on such a path needs a token too.
    let (status, _) = raw_get(
        gw.proxy,
        "/ws/..%2f..%2fhealthz",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
    )
    .await;
    assert_eq!(status, 401);

    // A fragment never reaches the app (pingora drops it from the target it
    // forwards), so what is judged is what the app routes on.
    let (status, _) = raw_get(gw.proxy, "/healthz/frag#/../admin", &[]).await;
    assert_eq!(status, 200);
    assert!(up.seen().iter().all(|s| !s.path.contains("admin")));

    // The legitimate requests: public, forwarded with exactly their path.
    for ok in [
        "/healthz",
        "/healthz/live",
        "/static/app.js",
        "/static/a%20b.css",
    ] {
        let (status, _) = raw_get(gw.proxy, ok, &[]).await;
        assert_eq!(status, 200, "{ok}");
        assert_eq!(seen_at(&up, ok).len(), 1, "{ok} forwarded as sent");
    }
    // And a non-canonical path with a valid token is forwarded as sent.
    let tok = hs256(&claims("alice", "s-path"));
    let (status, _) = raw_get(
        gw.proxy,
        "/admin/x/../../healthz",
        &[("Authorization", &format!("Bearer {tok}"))],
    )
    .await;
    assert_eq!(status, 200);
    let seen = seen_at(&up, "/admin/x/../../healthz");
    assert_eq!(seen[0].headers["x-user-id"], "alice");
}

// ------------------------------------------------------------ credentials

/// The application only ever sees the credential the gateway verified.
#[tokio::test]
async fn a_second_credential_never_rides_along() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.enforcement.push(r#"public_paths = ["/pub"]"#.into());
    let gw = Gateway::start(cfg).await;
    let good = hs256(&claims("alice", "good"));
    let revoked = hs256(&claims("mallory", "stolen"));
    assert_eq!(gw.revoke_session("stolen", "").await.status(), 200);
    let bearer = format!("Bearer {good}");

    // Valid bearer + revoked cookie: forwarded with the bearer only.
    let cookie = format!("theme=dark; session={revoked}; lang=en");
    let (status, _) = raw_get(
        gw.proxy,
        "/a",
        &[("Authorization", &bearer), ("Cookie", &cookie)],
    )
    .await;
    assert_eq!(status, 200);
    let seen = &seen_at(&up, "/a")[0];
    assert_eq!(seen.headers["authorization"], bearer);
    assert_eq!(seen.headers["cookie"], "theme=dark; lang=en");
    assert_eq!(seen.headers["x-session-id"], "good");

    // The same with the cookie's name in other case or percent-encoded,
    // as ASP.NET or PHP would read it.
    for name in ["SESSION", "Session", "sess%69on"] {
        let cookie = format!("{name}={revoked}");
        let path = format!("/b-{}", name.replace('%', ""));
        let (status, _) = raw_get(
            gw.proxy,
            &path,
            &[("Authorization", &bearer), ("Cookie", &cookie)],
        )
        .await;
        assert_eq!(status, 200, "{name}");
        assert!(
            !seen_at(&up, &path)[0].headers.contains_key("cookie"),
            "{name} stripped"
        );
    }

    // Two different copies of the session cookie: ambiguous, refused.
    for cookies in [
        vec![format!("session={good}; session={revoked}")],
        vec![format!("session={good}"), format!("session={revoked}")],
        vec![format!("session={good}; SESSION={revoked}")],
    ] {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        for c in &cookies {
            headers.push(("Cookie", c));
        }
        let (status, body) = raw_get(gw.proxy, "/c", &headers).await;
        assert_eq!(status, 400, "{cookies:?}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "invalid_request");
    }
    // Identical copies: one is kept.
    let twice = format!("session={good}; a=1; session={good}");
    let (status, _) = raw_get(gw.proxy, "/d", &[("Cookie", &twice)]).await;
    assert_eq!(status, 200);
    assert_eq!(
        seen_at(&up, "/d")[0].headers["cookie"],
        format!("session={good}; a=1")
    );

    // A second Authorization header.
    let (status, body) = raw_get(
        gw.proxy,
        "/e",
        &[
            ("Authorization", &bearer),
            ("Authorization", &format!("Bearer {revoked}")),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = raw_get(
        gw.proxy,
        "/pub/e",
        &[("Authorization", &bearer), ("Authorization", "Basic YTpi")],
    )
    .await;
    assert_eq!(status, 400, "on a public path too");

    // A public path: a revoked or forged token is removed, never passed on;
    // a valid one adds the identity.
    for tok in [revoked.as_str(), "forged.token.here"] {
        let path = format!("/pub/{}", &tok[..5]);
        let (status, _) = raw_get(
            gw.proxy,
            &path,
            &[
                ("Authorization", &format!("Bearer {tok}")),
                ("Cookie", &format!("session={tok}; x=1")),
            ],
        )
        .await;
        assert_eq!(status, 200);
        let seen = &seen_at(&up, &path)[0];
        assert!(!seen.headers.contains_key("authorization"), "{tok}");
        assert_eq!(seen.headers["cookie"], "x=1");
        assert!(!seen.headers.contains_key("x-session-id"));
    }
    let (status, _) = raw_get(gw.proxy, "/pub/ok", &[("Authorization", &bearer)]).await;
    assert_eq!(status, 200);
    let seen = &seen_at(&up, "/pub/ok")[0];
    assert_eq!(seen.headers["x-session-id"], "good");
    assert_eq!(seen.headers["authorization"], bearer);

    // The self-service page refuses the ambiguity as well.
    let two = format!("session={good}; session={revoked}");
    let (status, _) = raw_get(gw.proxy, "/.sessiongate/sessions", &[("Cookie", &two)]).await;
    assert_eq!(status, 400);
}

/// HTTP/2 sends one `cookie` header per cookie: the same rules across them.
#[tokio::test]
async fn http2_split_cookies_are_one_cookie_jar() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.listen = vec!["h2c = true".into()];
    let gw = Gateway::start(cfg).await;
    let good = hs256(&claims("alice", "h2-good"));
    let revoked = hs256(&claims("mallory", "h2-stolen"));
    assert_eq!(gw.revoke_session("h2-stolen", "").await.status(), 200);
    let tcp = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    let (mut h2, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(connection);
    let send = |h2: &mut h2::client::SendRequest<Bytes>, path: &str, cookies: &[String]| {
        let mut req = http::Request::get(format!("http://{}{path}", gw.proxy));
        for c in cookies {
            req = req.header("cookie", c);
        }
        h2.send_request(req.body(()).unwrap(), true).unwrap().0
    };
    let resp = send(
        &mut h2,
        "/h2-a",
        &[format!("session={good}"), format!("session={revoked}")],
    );
    let resp = tokio::time::timeout(WITHIN, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 400);
    let resp = send(
        &mut h2,
        "/h2-b",
        &[format!("session={good}"), "theme=dark".to_string()],
    );
    let resp = tokio::time::timeout(WITHIN, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let seen = &seen_at(&up, "/h2-b")[0];
    assert_eq!(seen.headers["x-session-id"], "h2-good");
    assert!(seen_at(&up, "/h2-a").is_empty());

    // Two `authorization` fields, and spoofed identity fields, over HTTP/2.
    let req = http::Request::get(format!("http://{}/h2-c", gw.proxy))
        .header("authorization", format!("Bearer {good}"))
        .header("authorization", format!("Bearer {revoked}"))
        .body(())
        .unwrap();
    let resp = h2.send_request(req, true).unwrap().0;
    let resp = tokio::time::timeout(WITHIN, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 400);
    let req = http::Request::get(format!("http://{}/h2-d", gw.proxy))
        .header("authorization", format!("Bearer {good}"))
        .header("x_user_id", "admin")
        .header("x-geo-country", "US")
        .body(())
        .unwrap();
    let resp = h2.send_request(req, true).unwrap().0;
    let resp = tokio::time::timeout(WITHIN, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let seen = &seen_at(&up, "/h2-d")[0];
    assert!(!seen.headers.contains_key("x_user_id"));
    assert_eq!(seen.headers["x-user-id"], "alice");
    assert!(
        !seen.headers.contains_key("x-geo-country"),
        "loopback has no country: the client's value went"
    );
    assert!(seen_at(&up, "/h2-c").is_empty());
    driver.abort();
}

// ------------------------------------------------------- identity headers

/// `X_User_Id` is `X-User-Id` to a CGI, WSGI, Rack or PHP application.
#[tokio::test]
async fn identity_headers_spelled_with_underscores_are_removed() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.enforcement.push(r#"public_paths = ["/pub"]"#.into());
    let gw = Gateway::start(cfg).await;
    let tok = hs256(&claims("alice", "s-ident"));
    let spoofed = [
        ("X_User_Id", "admin"),
        ("x_session_id", "other"),
        ("X-User_Id", "admin"),
        ("X_Geo_Country", "US"),
        ("x_geo-city", "Nowhere"),
        ("X_Sessiongate_Decision", "allowed"),
        ("X-SESSIONGATE_anything", "1"),
    ];
    for path in ["/app", "/pub/x"] {
        let bearer = format!("Bearer {tok}");
        let mut headers = vec![("Authorization", bearer.as_str())];
        headers.extend(spoofed);
        headers.push(("X_Unrelated_Header", "kept"));
        let (status, _) = raw_get(gw.proxy, path, &headers).await;
        assert_eq!(status, 200);
        let seen = &seen_at(&up, path)[0];
        for (name, _) in spoofed {
            assert!(
                !seen.headers.contains_key(&name.to_ascii_lowercase()),
                "{path}: {name} reached the app"
            );
        }
        assert_eq!(seen.headers["x-user-id"], "alice", "{path}");
        assert_eq!(seen.headers["x_unrelated_header"], "kept");
    }
}

// ------------------------------------------------------------------ keys

fn jwks_path() -> std::path::PathBuf {
    keys_dir().join("jwks-hygiene.json")
}

/// The uncompressed public point (0x04 || x || y) of a JWK in the fixture.
fn public_point(kid: &str) -> Vec<u8> {
    let set: Value = serde_json::from_slice(&std::fs::read(jwks_path()).unwrap()).unwrap();
    let k = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap();
    let mut point = vec![4u8];
    for c in ["x", "y"] {
        point.extend(URL_SAFE_NO_PAD.decode(k[c].as_str().unwrap()).unwrap());
    }
    point
}

/// A JWKS loads only the keys the gateway can use safely: an EC key
/// labelled HS256 never becomes an HMAC secret made of its public point,
/// `use: enc` and `key_ops: [encrypt]` keys never verify, a 1024-bit RSA
/// key is skipped; the usable keys of the same file still work.
#[tokio::test]
async fn jwks_keys_are_used_only_for_what_they_are() {
    let up = TestUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::copy(jwks_path(), &jwks).unwrap();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.keys = vec![format!("jwks_file = \"{}\"", jwks.display())];
    cfg.token.push("jwks_reload_s = 1".into());
    let gw = Gateway::start(cfg).await;
    assert_eq!(gw.metric("sessiongate_jwks_keys_skipped_total").await, 4.0);
    for kid in ["ec-as-hmac", "ec-enc", "ec-encrypt-only", "rsa-1024"] {
        assert!(gw.log().contains(kid), "skipped key {kid} is logged");
    }

    // The forgery: HS256 with the public point as the secret.
    let secret = jsonwebtoken::EncodingKey::from_secret(&public_point("ec-as-hmac"));
    let claims = claims("admin", "forged");
    for kid in [Some("ec-as-hmac"), None] {
        let forged = sign_with(Algorithm::HS256, kid, &claims, &secret);
        assert_eq!(gw.get("/", &forged).await.status(), 401, "{kid:?}");
    }
    // ES256 tokens naming the enc-only keys.
    for kid in ["ec-enc", "ec-encrypt-only"] {
        let t = sign(Algorithm::ES256, Some(kid), &claims);
        assert_eq!(gw.get("/", &t).await.status(), 401, "{kid}");
    }
    // The legitimate keys of the same set.
    let es = sign(
        Algorithm::ES256,
        Some("ec-good"),
        &common::claims("alice", "es"),
    );
    assert_eq!(gw.get("/", &es).await.status(), 200);
    let rsa2 = jsonwebtoken::EncodingKey::from_rsa_pem(
        &std::fs::read(keys_dir().join("rsa2.key.pem")).unwrap(),
    )
    .unwrap();
    let rs = sign_with(
        Algorithm::RS256,
        Some("rsa2-good"),
        &common::claims("alice", "rs"),
        &rsa2,
    );
    assert_eq!(gw.get("/", &rs).await.status(), 200);

    // The IdP withdraws ec-good after a compromise; the new document still
    // holds a key the gateway cannot use. The withdrawn key stops at once,
    // also for a token already verified (and cached).
    let mut set: Value = serde_json::from_slice(&std::fs::read(&jwks).unwrap()).unwrap();
    set["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| k["kid"] != "ec-good");
    std::fs::write(&jwks, serde_json::to_vec(&set).unwrap()).unwrap();
    assert_eventually!(
        gw.get("/", &es).await.status() == 401,
        WITHIN,
        "the withdrawn key still verifies"
    );
    assert_eq!(gw.get("/", &rs).await.status(), 200, "the other key stays");
}

/// ECDSA signatures are malleable (`s` and `n - s` both verify): a token
/// without `sid`/`jti` re-signed that way is the same session, revoked too.
#[tokio::test]
async fn a_re_signed_token_is_the_same_session() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.keys = vec![key_config(Algorithm::ES256)];
    let gw = Gateway::start(cfg).await;
    let t = now();
    let original = sign(
        Algorithm::ES256,
        None,
        &json!({"sub": "alice", "iat": t, "exp": t + 600}),
    );
    let twin = malleate_es256(&original);
    assert_ne!(original, twin);
    let id_of = |v: Value| v["headers"]["x-session-id"].as_str().unwrap().to_string();
    let a = id_of(json_body(gw.get("/", &original).await).await);
    let b = id_of(json_body(gw.get("/", &twin).await).await);
    assert_eq!(a, b, "both copies are one session");
    assert_eq!(gw.revoke_session(&a, "").await.status(), 200);
    assert_eq!(gw.get("/", &original).await.status(), 401);
    assert_eq!(gw.get("/", &twin).await.status(), 401);
}

/// The P-256 group order, big-endian.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// The same token with its signature's `s` replaced by `n - s`.
fn malleate_es256(token: &str) -> String {
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let s = &mut sig[32..];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(P256_N[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        s[i] = (d + 256 * borrow) as u8;
    }
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

// ------------------------------------------------------------------ time

/// A token "issued" in the future would survive "log out everywhere"; a
/// millisecond `exp` must neither pass nor break the session list.
#[tokio::test]
async fn token_times_cannot_dodge_a_cutoff_or_break_a_view() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let t = now();
    let future = hs256(&json!({"sub": "eve", "sid": "f", "iat": t + 3600, "exp": t + 7200}));
    let resp = gw.get("/", &future).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(json_body(resp).await["error"], "invalid_token");
    let ms = hs256(&json!({"sub": "eve", "sid": "ms", "iat": t, "exp": (t + 600) * 1000}));
    let resp = gw.get("/", &ms).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(json_body(resp).await["error"], "invalid_token");
    // With an iat, so only the time range (not the age) can refuse it.
    let far = hs256(&json!({"sub": "eve", "sid": "far", "iat": t, "exp": 253_402_300_800i64}));
    assert_eq!(gw.get("/", &far).await.status(), 401);

    // The legitimate token, then "log out everywhere".
    let now_tok = hs256(&json!({"sub": "eve", "sid": "n", "iat": t, "exp": t + 600}));
    assert_eq!(gw.get("/", &now_tok).await.status(), 200);
    let list = gw
        .admin_client()
        .get(gw.admin_url("/v1/users/eve/sessions"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    let list = json_body(list).await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(gw.revoke_user("eve", None).await.status(), 200);
    assert_eq!(gw.get("/", &now_tok).await.status(), 401);
}

// ----------------------------------------------------------------- admin

/// Without an admin token (loopback only), the admin API answers only
/// requests naming this host, so a web page cannot read it by DNS
/// rebinding; its listener has the header deadline.
#[tokio::test]
async fn admin_without_a_token_answers_only_local_hosts() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.admin_token = None;
    cfg.listen.push("request_header_timeout_s = 1".into());
    let gw = Gateway::start(cfg).await;
    let port = gw.admin.port();
    for host in [
        "evil.example",
        "evil.example:80",
        "127.0.0.1.nip.io",
        "localhost.evil",
    ] {
        for path in ["/v1/revocations", "/metrics", "/v1/users/alice/sessions"] {
            let (status, _) = raw_exact(gw.admin, path, &[("Host", host)]).await;
            assert_eq!(status, 421, "{host}{path}");
        }
    }
    let (status, _) = raw_get(
        gw.admin,
        "/v1/revocations",
        &[("Host", "localhost"), ("Host", "evil.example")],
    )
    .await;
    assert_ne!(status, 200, "two Host headers");
    for host in [
        "localhost".to_string(),
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "[::1]".to_string(),
    ] {
        let (status, body) = raw_exact(gw.admin, "/v1/revocations", &[("Host", &host)]).await;
        assert_eq!(status, 200, "{host}: {body}");
    }

    // No Host at all (an HTTP/1.0 health check): no browser sends that.
    let (status, _) = raw_exact(gw.admin, "/metrics", &[]).await;
    assert_eq!(status, 200, "no Host");

    // A client trickling its header is cut off, as on the proxy listener.
    use tokio::io::AsyncWriteExt;
    let mut slow = tokio::net::TcpStream::connect(gw.admin).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Slow: a")
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow, WITHIN).await,
        "admin header deadline"
    );
}

/// With an admin token, any Host is fine (the token is the defence).
#[tokio::test]
async fn admin_with_a_token_answers_any_host() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let (status, body) = raw_exact(
        gw.admin,
        "/v1/revocations",
        &[("Host", "gateway.internal"), ("Authorization", &bearer)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = raw_exact(gw.admin, "/v1/revocations", &[("Host", "gateway.internal")]).await;
    assert_eq!(status, 401);
}

/// The self-service page accepts exactly the tokens the proxy accepts: an
/// identity that cannot travel in a header is no identity on either.
#[tokio::test]
async fn self_service_refuses_what_the_proxy_refuses() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let t = now();
    let control = hs256(&json!({"sub": "alice\u{7}", "sid": "ctl", "iat": t, "exp": t + 60}));
    assert_eq!(gw.get("/", &control).await.status(), 401);
    let resp = gw.get("/.sessiongate/sessions", &control).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(json_body(resp).await["error"], "invalid_token");
    let good = hs256(&json!({"sub": "alice", "sid": "ctl2", "iat": t, "exp": t + 60}));
    let resp = gw
        .admin_client()
        .get(gw.url("/.sessiongate/sessions"))
        .bearer_auth(&good)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

// ------------------------------------------------------------------ body

/// A revocation without a reason reports `"reason": null`.
#[tokio::test]
async fn revocation_without_a_reason_says_null() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let tok = hs256(&claims("alice", "no-reason"));
    let resp = gw
        .admin_client()
        .delete(gw.admin_url("/v1/sessions/no-reason"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = json_body(gw.get("/", &tok).await).await;
    assert_eq!(body["error"], "session_revoked");
    assert!(body["reason"].is_null(), "{body}");
    assert!(body["revoked_at"].is_string());
    let tok = hs256(&claims("alice", "with-reason"));
    assert_eq!(gw.revoke_session("with-reason", "lost").await.status(), 200);
    assert_eq!(json_body(gw.get("/", &tok).await).await["reason"], "lost");
}
