//! The admin API: authentication, malformed input, readiness, metrics and
//! the OpenAPI document.

mod common;

use common::*;
use serde_json::Value;

#[tokio::test]
async fn admin_token_is_required_and_checked() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let client = reqwest::Client::new();
    let url = gw.admin_url("/v1/sessions/s-1");

    let resp = client.delete(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "unauthorized");

    for wrong in [
        "wrong",
        "admin-test-token-abcde",
        "admin-test-token-abcdefg",
        "",
    ] {
        let resp = client.delete(&url).bearer_auth(wrong).send().await.unwrap();
        assert_eq!(resp.status(), 401, "token {wrong:?}");
    }
    let resp = client
        .delete(&url)
        .header("authorization", format!("Basic {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client
        .get(gw.admin_url("/v1/revocations"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Nothing was revoked by the refused calls.
    assert_eq!(gw.get("/", &hs256(&claims("a", "s-1"))).await.status(), 200);

    let resp = client
        .delete(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(gw.get("/", &hs256(&claims("a", "s-1"))).await.status(), 401);
}

#[tokio::test]
async fn open_endpoints_need_no_token() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    for path in ["/healthz", "/readyz", "/metrics", "/v1/openapi.json"] {
        let resp = reqwest::get(gw.admin_url(path)).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let doc: Value = reqwest::get(gw.admin_url("/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/sessions/{sid}",
        "/v1/users/{sub}/sessions",
        "/v1/revocations",
        "/v1/audit",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from OpenAPI"
        );
    }
}

#[tokio::test]
async fn malformed_input_is_a_clear_400_and_changes_nothing() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let cases = [
        ("DELETE", "/v1/sessions/s-1?reasn=typo"),
        ("DELETE", "/v1/sessions/s-1?reason=a&reason=b"),
        ("DELETE", "/v1/sessions/"),
        ("DELETE", "/v1/sessions/%FF%FE"),
        ("DELETE", "/v1/sessions/a%00b"),
        ("DELETE", "/v1/users/alice/sessions?except="),
        ("GET", "/v1/revocations?limit=0"),
        ("GET", "/v1/revocations?limit=abc"),
        ("GET", "/v1/revocations?limit=100000"),
        ("GET", "/v1/audit?since=yesterday"),
    ];
    for (method, path) in cases {
        let resp = gw
            .admin_request(method.parse().unwrap(), path)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{method} {path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "bad_request", "{method} {path}");
        assert!(body["error_description"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let long = "x".repeat(600);
    let resp = gw
        .admin_request(reqwest::Method::DELETE, &format!("/v1/sessions/{long}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let resp = gw.admin_get("/v1/sessions/s-1/extra").await;
    assert_eq!(resp.status(), 404);
    let resp = gw
        .admin_request(reqwest::Method::POST, "/v1/revocations")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET");

    // Nothing was revoked.
    let list = gw.admin_json("/v1/revocations").await;
    assert_eq!(list["revocations"].as_array().unwrap().len(), 0);
    assert_eq!(
        gw.get("/", &hs256(&claims("alice", "s-1"))).await.status(),
        200
    );
}

#[tokio::test]
async fn percent_encoded_ids_are_decoded() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let resp = gw
        .admin_request(reqwest::Method::DELETE, "/v1/sessions/a%2Fb%20c")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["session_id"], "a/b c");
    assert_eq!(
        gw.get("/", &hs256(&claims("u", "a/b c"))).await.status(),
        401
    );
}

#[tokio::test]
async fn loopback_admin_without_token_is_open() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.admin_token = None;
    let gw = Gateway::start(cfg).await;
    let resp = reqwest::Client::new()
        .delete(gw.admin_url("/v1/sessions/open"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn metrics_count_each_decision() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.enforcement.push(r#"public_paths = ["/public"]"#.into());
    let gw = Gateway::start(cfg).await;
    let ok = hs256(&claims("a", "ok"));
    let revoked = hs256(&claims("a", "gone"));
    gw.revoke_session("gone", "t").await;
    let expired = hs256(&serde_json::json!({"sid": "x", "exp": now() - 3600}));

    gw.get("/", &ok).await;
    gw.get("/", &ok).await;
    reqwest::get(gw.url("/public/a")).await.unwrap();
    reqwest::get(gw.url("/")).await.unwrap();
    gw.get("/", "garbage").await;
    gw.get("/", &expired).await;
    gw.get("/", &revoked).await;
    gw.get("/", &revoked).await;

    let m = |d: &str| format!("sessiongate_requests_total{{decision=\"{d}\"}}");
    gw.metric_reaches(&m("allowed"), 2.0).await;
    gw.metric_reaches(&m("public"), 1.0).await;
    gw.metric_reaches(&m("missing_token"), 1.0).await;
    gw.metric_reaches(&m("invalid_token"), 1.0).await;
    gw.metric_reaches(&m("token_expired"), 1.0).await;
    gw.metric_reaches(&m("session_revoked"), 2.0).await;
    assert_eq!(gw.metric("sessiongate_revoked_sessions").await, 1.0);
    gw.metric_reaches("sessiongate_request_duration_seconds_count", 8.0)
        .await;
}
