//! sessiongate behind an identity provider: keys by discovery, refreshed on
//! an unknown `kid`, cached for start-ups while the IdP is down; OIDC
//! back-channel logout, every check of its logout token refused over HTTP;
//! and a real provider (`oidc-provider`) signing users in and out, its
//! logout closing the session's WebSocket.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const BCL_PATH: &str = "/.sessiongate/backchannel-logout";
const BCL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
const K1: &str = "idp-key-one-0123456789abcdefghijkl";
const K2: &str = "idp-key-two-0123456789abcdefghijkl";
const WITHIN: Duration = Duration::from_secs(20);

/// The discovery document of `docs`: its own URL as the issuer.
fn discovery(docs: &Documents) -> String {
    json!({"issuer": docs.url(), "jwks_uri": format!("{}/jwks", docs.url())}).to_string()
}

/// An upstream and a document server playing an IdP: discovery, and a
/// JWKS of `k1`.
async fn upstream_and_idp() -> (TestUpstream, Documents) {
    let docs = Documents::start().await;
    docs.set("/.well-known/openid-configuration", 200, &discovery(&docs));
    docs.set("/jwks", 200, &oct_jwks(&[("k1", K1)]));
    (TestUpstream::start(), docs)
}

/// An upstream, a fake IdP and a gateway behind both.
async fn idp_gateway() -> (TestUpstream, Documents, Gateway) {
    let (up, docs) = upstream_and_idp().await;
    let gw = Gateway::start(idp_config(&docs.url(), up.addr)).await;
    (up, docs, gw)
}

/// A gateway whose only keys come from the IdP at `issuer`.
fn idp_config(issuer: &str, upstream: std::net::SocketAddr) -> GatewayConfig {
    let mut cfg = GatewayConfig::new(upstream);
    cfg.keys.clear();
    cfg.extra.push_str(&format!(
        "\n[idp]\nissuer = \"{issuer}\"\naudiences = [\"web\", \"mobile\"]\nrefresh_s = 3600\n"
    ));
    cfg
}

fn access_token(docs: &Documents, kid: &str, secret: &str, sub: &str, sid: &str) -> String {
    let now = now();
    hs256_jwt(
        secret,
        kid,
        None,
        &json!({"iss": docs.url(), "aud": "web", "sub": sub, "sid": sid, "iat": now, "exp": now + 600}),
    )
}

fn logout_claims(docs: &Documents, jti: &str) -> Value {
    let now = now();
    json!({
        "iss": docs.url(), "aud": "web", "iat": now, "exp": now + 120, "jti": jti,
        "events": {BCL_EVENT: {}},
    })
}

async fn post_logout(gw: &Gateway, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url(BCL_PATH))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn backchannel_logout_revokes_the_session_or_the_user_once() {
    let (_up, docs, gw) = idp_gateway().await;
    let alice = access_token(&docs, "k1", K1, "alice", "idp-s1");
    let bob = access_token(&docs, "k1", K1, "bob", "idp-s2");
    assert_eq!(gw.status("/", &alice).await, 200);
    assert_eq!(gw.status("/", &bob).await, 200);

    // By sid: that session.
    let mut claims = logout_claims(&docs, "logout-1");
    claims["sid"] = json!("idp-s1");
    let token = hs256_jwt(K1, "k1", Some("logout+jwt"), &claims);
    let resp = post_logout(&gw, &token).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let refused = gw.get("/", &alice).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "session_revoked"
    );
    assert_eq!(gw.status("/", &bob).await, 200);

    // The same logout token again: a replay.
    let replay = post_logout(&gw, &token).await;
    assert_eq!(replay.status(), 400);
    let body: Value = replay.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["error_description"].as_str().unwrap().contains("jti"),
        "{body}"
    );

    // By sub only: every session of the user.
    let mut claims = logout_claims(&docs, "logout-2");
    claims["sub"] = json!("bob");
    let resp = post_logout(&gw, &hs256_jwt(K1, "k1", Some("logout+jwt"), &claims)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(gw.status("/", &bob).await, 401);

    let audit = gw.admin_json("/v1/audit").await;
    let by_idp: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == format!("idp:{}", docs.url()))
        .collect();
    assert_eq!(by_idp.len(), 2, "{audit}");
    assert!(by_idp.iter().all(|e| e["reason"] == "backchannel_logout"));
    assert!(by_idp
        .iter()
        .any(|e| e["action"] == "revoke_session" && e["target"] == "session:idp-s1"));
    assert!(by_idp
        .iter()
        .any(|e| e["action"] == "revoke_user" && e["target"] == "user:bob"));
    gw.metric_reaches(
        r#"sessiongate_idp_events_total{receiver="backchannel_logout",result="revoked"}"#,
        2.0,
    )
    .await;
}

#[tokio::test]
async fn every_check_of_a_logout_token_refuses_it() {
    let (_up, docs, gw) = idp_gateway().await;
    let kept = access_token(&docs, "k1", K1, "carol", "idp-kept");
    assert_eq!(gw.status("/", &kept).await, 200);
    let now = now();
    let good = || {
        let mut c = logout_claims(&docs, &format!("j-{}", rand_suffix()));
        c["sid"] = json!("idp-kept");
        c
    };
    let signed = |c: &Value| hs256_jwt(K1, "k1", None, c);
    let with = |k: &str, v: Value| {
        let mut c = good();
        c[k] = v;
        signed(&c)
    };
    let without = |k: &str| {
        let mut c = good();
        c.as_object_mut().unwrap().remove(k);
        signed(&c)
    };
    let cases: Vec<(&str, String)> = vec![
        ("wrong iss", with("iss", json!("https://evil.example"))),
        ("wrong aud", with("aud", json!("other-client"))),
        ("no aud", without("aud")),
        ("old iat", with("iat", json!(now - 3600))),
        ("future iat", with("iat", json!(now + 3600))),
        ("no iat", without("iat")),
        ("expired", with("exp", json!(now - 600))),
        ("no jti", without("jti")),
        ("no events", without("events")),
        (
            "other event",
            with("events", json!({"https://example/other": {}})),
        ),
        ("nonce", with("nonce", json!("n-1"))),
        ("no sid nor sub", without("sid")),
        ("typ JWT", hs256_jwt(K1, "k1", Some("JWT"), &good())),
        ("an access token", kept.clone()),
        ("wrong key", hs256_jwt(K2, "k1", None, &good())),
        (
            "signed by the app's secret",
            hs256_jwt(SECRET, "k1", None, &good()),
        ),
    ];
    for (what, token) in &cases {
        let resp = post_logout(&gw, token).await;
        assert_eq!(resp.status(), 400, "{what}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{what}: {body}");
        assert!(body["error_description"].is_string(), "{what}");
    }
    // Not a form, no field, two fields, another method.
    let client = reqwest::Client::new();
    let valid = hs256_jwt(K1, "k1", None, &good());
    let json_body = client
        .post(gw.url(BCL_PATH))
        .json(&json!({"logout_token": valid}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), 400);
    let none = client
        .post(gw.url(BCL_PATH))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 400);
    let two = client
        .post(gw.url(BCL_PATH))
        .form(&[
            ("logout_token", valid.as_str()),
            ("logout_token", valid.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(two.status(), 400);
    let get = client.get(gw.url(BCL_PATH)).send().await.unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    // None of them revoked anything.
    assert_eq!(gw.status("/", &kept).await, 200);
    gw.metric_reaches(
        r#"sessiongate_idp_events_total{receiver="backchannel_logout",result="refused"}"#,
        (cases.len() + 4) as f64,
    )
    .await;
    // The legitimate one does.
    assert_eq!(post_logout(&gw, &valid).await.status(), 200);
    assert_eq!(gw.status("/", &kept).await, 401);
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A new `kid` at the IdP is fetched at once (rate-limited), a removed one
/// is refused once the set is fetched again; no restart.
#[tokio::test]
async fn an_unknown_kid_fetches_the_idps_keys_again() {
    let (_up, docs, gw) = idp_gateway().await;
    let old = access_token(&docs, "k1", K1, "dan", "idp-d1");
    let new = access_token(&docs, "k2", K2, "dan", "idp-d2");
    assert_eq!(gw.status("/", &old).await, 200);
    let fetched = docs.hits("/jwks");
    // The IdP rotates: k2 added, then k1 withdrawn.
    docs.set("/jwks", 200, &oct_jwks(&[("k1", K1), ("k2", K2)]));
    for _ in 0..20 {
        assert_eq!(gw.status("/", &new).await, 401);
    }
    assert_eventually!(
        gw.status("/", &new).await == 200,
        WITHIN,
        "the new kid was never fetched"
    );
    // Twenty misses in a burst: one fetch, not twenty.
    assert!(
        docs.hits("/jwks") <= fetched + 2,
        "{} fetches",
        docs.hits("/jwks") - fetched
    );
    docs.set("/jwks", 200, &oct_jwks(&[("k2", K2)]));
    let other = access_token(&docs, "k3", K2, "dan", "idp-d3");
    assert_eq!(gw.status("/", &other).await, 401);
    assert_eventually!(
        gw.status("/", &old).await == 401,
        WITHIN,
        "the withdrawn kid is still accepted"
    );
    assert_eq!(gw.status("/", &new).await, 200);
}

/// The last good JWKS is kept on disk: a start-up while the IdP is down uses
/// it (ready, and saying so); with neither, not ready and nothing allowed.
#[tokio::test]
async fn the_cached_jwks_serves_a_start_while_the_idp_is_down() {
    let (up, docs) = upstream_and_idp().await;
    let cfg = idp_config(&docs.url(), up.addr);
    let gw = Gateway::start(cfg.clone()).await;
    let token = access_token(&docs, "k1", K1, "erin", "idp-e1");
    assert_eq!(gw.status("/", &token).await, 200);
    let dir = gw.kill();
    assert!(dir.path().join("data/idp-jwks.json").exists());

    docs.set("/.well-known/openid-configuration", 503, "{}");
    docs.set("/jwks", 503, "{}");
    let gw = Gateway::start_in(cfg.clone(), dir).await;
    let ready: Value = reqwest::get(gw.admin_url("/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["idp"], "cached_keys", "{ready}");
    assert_eq!(gw.status("/", &token).await, 200);
    gw.metric_reaches("sessiongate_jwks_fetch_errors_total", 1.0)
        .await;

    // No cache, no IdP: not ready, and every token refused.
    let cold = Gateway::start_unready(cfg).await;
    let resp = reqwest::get(cold.admin_url("/readyz")).await.unwrap();
    assert_eq!(resp.status(), 503);
    let refused = cold.get("/", &token).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "invalid_token"
    );
    let mut claims = logout_claims(&docs, "cold-1");
    claims["sid"] = json!("idp-e1");
    let resp = post_logout(&cold, &hs256_jwt(K1, "k1", None, &claims)).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "temporarily_unavailable"
    );
    // The IdP comes back: ready, without a restart.
    docs.set("/.well-known/openid-configuration", 200, &discovery(&docs));
    docs.set("/jwks", 200, &oct_jwks(&[("k1", K1)]));
    assert_eventually!(
        reqwest::get(cold.admin_url("/readyz"))
            .await
            .unwrap()
            .status()
            == 200,
        WITHIN,
        "never ready once the IdP answered"
    );
    let served = cold.get("/", &token).await;
    assert_eq!(served.status(), 200, "served once the IdP is back");
}

/// A discovery document naming another issuer is not trusted.
#[tokio::test]
async fn discovery_must_name_the_configured_issuer() {
    let (up, docs) = upstream_and_idp().await;
    docs.set(
        "/.well-known/openid-configuration",
        200,
        &json!({"issuer": "https://evil.example", "jwks_uri": format!("{}/jwks", docs.url())})
            .to_string(),
    );
    let gw = Gateway::start_unready(idp_config(&docs.url(), up.addr)).await;
    gw.metric_reaches("sessiongate_jwks_fetch_errors_total", 1.0)
        .await;
    assert_eq!(docs.hits("/jwks"), 0);
    assert_eq!(
        reqwest::get(gw.admin_url("/readyz"))
            .await
            .unwrap()
            .status(),
        503
    );
    let token = access_token(&docs, "k1", K1, "finn", "idp-f1");
    assert_eq!(gw.status("/", &token).await, 401);
}

#[test]
fn idp_urls_must_be_https_or_loopback() {
    for (extra, key) in [
        (
            "[idp]\nissuer = \"http://idp.example\"\naudiences = [\"web\"]\n",
            "idp.issuer",
        ),
        ("[idp]\nissuer = \"https://idp.example\"\n", "idp.audiences"),
        (
            "[idp]\njwks_url = \"ftp://idp.example/jwks\"\nbackchannel_logout = false\n",
            "idp.jwks_url",
        ),
        ("[idp]\naudiences = [\"web\"]\n", "idp.issuer"),
    ] {
        let mut cfg = GatewayConfig::new("127.0.0.1:1".parse().unwrap());
        cfg.keys.clear();
        assert_config_refused(cfg, extra, key);
    }
}

/// The real thing: oidc-provider signs users in; the gateway discovers it
/// and verifies its ID tokens; a user ending the session at the provider
/// gets a logout token sent to the gateway, which refuses the session's
/// next request and closes its WebSocket with 1008. Logout by `sub` for a
/// client without sessions; a key rotation at the provider, no restart.
#[tokio::test]
async fn oidc_provider_signs_in_and_out() {
    let Some(node) = node_for_idp() else { return };
    let up = TestUpstream::start();
    let (idp_port, proxy_port) = (free_port(), free_port());
    let logout_uri = format!("http://127.0.0.1:{proxy_port}{BCL_PATH}");
    let idp = OidcProvider::start(&node, idp_port, "k1", &logout_uri);
    let gw = Gateway::start_at(idp_config(&idp.issuer, up.addr), proxy_port).await;

    let alice = idp.login("web", "alice").await;
    assert_eq!(gw.status("/", &alice.id_token).await, 200);
    let mut ws = ws_connect(&gw, "/ws", &alice.id_token).await;
    echo_round_trip(&mut ws, "hello").await;
    let carol = idp.login("web", "carol").await;
    assert_eq!(gw.status("/", &carol.id_token).await, 200);

    idp.end_session(&alice).await;
    let refused = gw.get("/", &alice.id_token).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "session_revoked"
    );
    let (code, reason) = until_closed(&mut ws).await.expect("a close frame");
    assert_eq!(u16::from(code), 1008);
    assert_eq!(reason, "session_revoked");
    assert_eq!(gw.status("/", &carol.id_token).await, 200);

    // `mobile` gets logout tokens without sid: the user is cut off.
    let bob = idp.login("mobile", "bob").await;
    let bob_web = idp.login("web", "bob").await;
    assert_eq!(gw.status("/", &bob.id_token).await, 200);
    idp.end_session(&bob).await;
    assert_eq!(gw.status("/", &bob.id_token).await, 401);
    assert_eq!(
        gw.status("/", &bob_web.id_token).await,
        401,
        "a cutoff ends every session of bob"
    );
    let audit = gw.admin_json("/v1/audit").await;
    let actor = format!("idp:{}", idp.issuer);
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == actor
                && e["action"] == "revoke_user"
                && e["target"] == "user:bob"),
        "{audit}"
    );

    // The provider rotates its key (k1 gone, k2 signs): a token of k2 is
    // accepted without a restart, carol's k1 token no longer.
    idp.stop();
    let idp = OidcProvider::start(&node, idp_port, "k2", &logout_uri);
    let dave = idp.login("web", "dave").await;
    assert_eventually!(
        gw.status("/", &dave.id_token).await == 200,
        WITHIN,
        "k2 never accepted"
    );
    assert_eq!(gw.status("/", &carol.id_token).await, 401);
}

/// With oidc-provider: the logout token it sent, replayed, is refused; the
/// gateway restarted while the provider is down starts on the cached JWKS
/// and still verifies the provider's tokens.
#[tokio::test]
async fn oidc_provider_replay_and_outage() {
    let Some(node) = node_for_idp() else { return };
    let up = TestUpstream::start();
    let (idp_port, proxy_port) = (free_port(), free_port());
    let logout_uri = format!("http://127.0.0.1:{proxy_port}{BCL_PATH}");
    let sent = tempfile::NamedTempFile::new().unwrap();
    let idp = OidcProvider::start_logging(&node, idp_port, "k1", &logout_uri, Some(sent.path()));
    let cfg = idp_config(&idp.issuer, up.addr);
    let gw = Gateway::start_at(cfg.clone(), proxy_port).await;
    let erin = idp.login("web", "erin").await;
    let frank = idp.login("web", "frank").await;
    assert_eq!(gw.status("/", &erin.id_token).await, 200);
    idp.end_session(&erin).await;
    assert_eq!(gw.status("/", &erin.id_token).await, 401);
    let token = std::fs::read_to_string(sent.path()).unwrap();
    let token = token.lines().next().expect("a logout token was sent");
    let replay = post_logout(&gw, token).await;
    assert_eq!(replay.status(), 400, "a replayed logout token");

    // The provider goes down; the gateway restarts on its cached keys.
    idp.stop();
    let dir = gw.kill();
    let gw = Gateway::start_in(cfg, dir).await;
    let ready: Value = reqwest::get(gw.admin_url("/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["idp"], "cached_keys", "{ready}");
    assert_eq!(gw.status("/", &frank.id_token).await, 200);
    assert_eq!(
        gw.status("/", &erin.id_token).await,
        401,
        "the logout survived the restart"
    );
}

/// A JWKS fetched again unchanged keeps the keys in use (the verified-token
/// cache with them: no session re-verified each refresh); a changed one
/// replaces them.
#[tokio::test]
async fn an_unchanged_jwks_is_not_loaded_again() {
    let (up, docs) = upstream_and_idp().await;
    // k1 and a key the gateway skips (counted each time a set is loaded).
    let with_skipped = |keys: &[(&str, &str)]| {
        let mut v: Value = serde_json::from_str(&oct_jwks(keys)).unwrap();
        v["keys"].as_array_mut().unwrap().push(json!({"kty": "oct", "use": "enc", "kid": "e1", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}));
        v.to_string()
    };
    docs.set("/jwks", 200, &with_skipped(&[("k1", K1)]));
    let mut cfg = idp_config(&docs.url(), up.addr);
    cfg.extra = cfg.extra.replace("refresh_s = 3600", "refresh_s = 1");
    let gw = Gateway::start(cfg).await;
    gw.metric_reaches("sessiongate_jwks_keys_skipped_total", 1.0)
        .await;
    let before = docs.hits("/jwks");
    assert_eventually!(
        docs.hits("/jwks") >= before + 2,
        WITHIN,
        "not fetched again"
    );
    assert_eq!(
        gw.metric("sessiongate_jwks_keys_skipped_total").await,
        1.0,
        "loaded again unchanged"
    );
    docs.set("/jwks", 200, &with_skipped(&[("k1", K1), ("k2", K2)]));
    gw.metric_reaches("sessiongate_jwks_keys_skipped_total", 2.0)
        .await;
    assert_eq!(
        gw.status("/", &access_token(&docs, "k2", K2, "gus", "idp-g1"))
            .await,
        200
    );
}
