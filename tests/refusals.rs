//! Every refusal code, with its status, JSON body and WWW-Authenticate, next
//! to the request that is allowed; token sources; claim checks.

mod common;

use common::*;
use serde_json::{json, Value};

async fn body(resp: reqwest::Response) -> Value {
    resp.json().await.unwrap()
}

fn www(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn allowed_request_reaches_upstream_with_identity() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let resp = gw.get("/app", &hs256(&claims("alice", "s-1"))).await;
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["headers"]["x-session-id"], "s-1");
    assert_eq!(seen["headers"]["x-user-id"], "alice");
}

#[tokio::test]
async fn missing_token_is_401_with_bare_challenge() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let resp = reqwest::get(gw.url("/app")).await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(www(&resp), r#"Bearer realm="sessiongate""#);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(body(resp).await["error"], "missing_token");
    assert!(up.seen().is_empty(), "nothing reached the upstream");
}

#[tokio::test]
async fn invalid_and_expired_tokens() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;

    let good = hs256(&claims("alice", "s-1"));
    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let resp = gw.get("/app", &tampered).await;
    assert_eq!(resp.status(), 401);
    assert!(
        www(&resp).contains(r#"error="invalid_token""#),
        "{}",
        www(&resp)
    );
    assert_eq!(body(resp).await["error"], "invalid_token");

    let resp = gw.get("/app", "not-a-jwt").await;
    assert_eq!(body(resp).await["error"], "invalid_token");

    // Expired beyond the leeway, with a good signature: token_expired.
    let expired =
        hs256(&json!({"sub": "alice", "sid": "s-2", "iat": now() - 7200, "exp": now() - 3600}));
    let resp = gw.get("/app", &expired).await;
    assert_eq!(resp.status(), 401);
    assert!(www(&resp).contains(r#"error="invalid_token""#));
    assert!(www(&resp).contains("error_description="));
    assert_eq!(body(resp).await["error"], "token_expired");

    // Expired but signed with another key: the signature is checked first.
    let forged = sign_with(
        jsonwebtoken::Algorithm::HS256,
        None,
        &json!({"sid": "s-3", "exp": now() - 3600}),
        &jsonwebtoken::EncodingKey::from_secret(b"other-secret"),
    );
    assert_eq!(
        body(gw.get("/app", &forged).await).await["error"],
        "invalid_token"
    );

    assert!(up.seen().is_empty());
    assert_eq!(gw.get("/app", &good).await.status(), 200);
}

#[tokio::test]
async fn leeway_on_exp_and_nbf() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.token.push("leeway_s = 60".into());
    let gw = Gateway::start(cfg).await;
    let t = now();
    // Expired 20 s ago: inside the 60 s leeway.
    assert_eq!(
        gw.get("/", &hs256(&json!({"sid": "a", "exp": t - 20})))
            .await
            .status(),
        200
    );
    // Expired 120 s ago: outside.
    let resp = gw
        .get("/", &hs256(&json!({"sid": "b", "exp": t - 120})))
        .await;
    assert_eq!(body(resp).await["error"], "token_expired");
    // nbf 20 s ahead: inside the leeway; 600 s ahead: not valid yet.
    assert_eq!(
        gw.get(
            "/",
            &hs256(&json!({"sid": "c", "nbf": t + 20, "exp": t + 600}))
        )
        .await
        .status(),
        200
    );
    let resp = gw
        .get(
            "/",
            &hs256(&json!({"sid": "d", "nbf": t + 600, "exp": t + 900})),
        )
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(body(resp).await["error"], "invalid_token");
}

#[tokio::test]
async fn issuer_and_audience_when_configured() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.token.push("issuer = \"https://id.example\"".into());
    cfg.token.push("audience = \"shop\"".into());
    let gw = Gateway::start(cfg).await;
    let ok = json!({"sid": "s", "iss": "https://id.example", "aud": ["other", "shop"], "exp": now() + 60});
    assert_eq!(gw.get("/", &hs256(&ok)).await.status(), 200);
    let bad_iss = json!({"sid": "s", "iss": "https://evil.example", "aud": "shop"});
    assert_eq!(
        body(gw.get("/", &hs256(&bad_iss)).await).await["error"],
        "invalid_token"
    );
    let bad_aud = json!({"sid": "s", "iss": "https://id.example", "aud": "blog"});
    assert_eq!(
        body(gw.get("/", &hs256(&bad_aud)).await).await["error"],
        "invalid_token"
    );
    let no_aud = json!({"sid": "s", "iss": "https://id.example"});
    assert_eq!(
        body(gw.get("/", &hs256(&no_aud)).await).await["error"],
        "invalid_token"
    );
}

#[tokio::test]
async fn oversized_token_is_invalid() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.token.push("max_token_bytes = 512".into());
    let gw = Gateway::start(cfg).await;
    let small = hs256(&json!({"sid": "s", "exp": now() + 60, "pad": "x".repeat(100)}));
    assert!(small.len() <= 512);
    assert_eq!(gw.get("/", &small).await.status(), 200);
    let big = hs256(&json!({"sid": "s", "exp": now() + 60, "pad": "x".repeat(600)}));
    let resp = gw.get("/", &big).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(body(resp).await["error"], "invalid_token");
}

#[tokio::test]
async fn token_sources_in_configured_order() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.token.push(
        r#"sources = ["header:authorization", "cookie:session", "header:X-Api-Token"]"#.into(),
    );
    let gw = Gateway::start(cfg).await;
    let client = reqwest::Client::new();
    let cookie_tok = hs256(&claims("carol", "from-cookie"));
    let header_tok = hs256(&claims("carol", "from-header"));
    let bearer_tok = hs256(&claims("carol", "from-bearer"));

    let via_cookie = send_json(
        client
            .get(gw.url("/"))
            .header("cookie", format!("theme=dark; session={cookie_tok}")),
    )
    .await;
    assert_eq!(via_cookie["headers"]["x-session-id"], "from-cookie");

    let via_header = send_json(client.get(gw.url("/")).header("x-api-token", &header_tok)).await;
    assert_eq!(via_header["headers"]["x-session-id"], "from-header");

    // Bearer comes first even when a cookie is present.
    let both = send_json(
        client
            .get(gw.url("/"))
            .bearer_auth(&bearer_tok)
            .header("cookie", format!("session={cookie_tok}")),
    )
    .await;
    assert_eq!(both["headers"]["x-session-id"], "from-bearer");

    // A cookie with another name is no token; Basic auth is no token.
    let resp = client
        .get(gw.url("/"))
        .header("cookie", format!("sessionx={cookie_tok}"))
        .basic_auth("u", Some("p"))
        .send()
        .await
        .unwrap();
    assert_eq!(body(resp).await["error"], "missing_token");
}

#[tokio::test]
async fn session_id_falls_back_to_jti_then_token_hash() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let jti = hs256(&json!({"sub": "dan", "jti": "j-9", "exp": now() + 60}));
    let seen: Value = gw.get("/", &jti).await.json().await.unwrap();
    assert_eq!(seen["headers"]["x-session-id"], "j-9");

    let opaque = hs256(&json!({"sub": "dan", "exp": now() + 60}));
    let seen: Value = gw.get("/", &opaque).await.json().await.unwrap();
    // Over the signing input (header.payload), not the signature.
    let signing_input = &opaque[..opaque.rfind('.').unwrap()];
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, signing_input.as_bytes());
    assert_eq!(seen["headers"]["x-session-id"], hex::encode(digest));

    // No user claim: no X-User-Id.
    let anonymous = hs256(&json!({"sid": "anon", "exp": now() + 60}));
    let seen: Value = gw.get("/", &anonymous).await.json().await.unwrap();
    assert!(seen["headers"].get("x-user-id").is_none());
}

#[tokio::test]
async fn login_url_redirects_browsers_only() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.enforcement
        .push(r#"login_url = "https://app.example/login""#.into());
    let gw = Gateway::start(cfg).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .get(gw.url("/page"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "https://app.example/login");
    let resp = client
        .get(gw.url("/api"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}
