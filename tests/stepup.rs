//! Step-up per route (RFC 9470) and fresh authentication for self-service
//! actions: the challenge a token falls short of, over HTTP/1.1 and HTTP/2,
//! the login redirect with `acr_values` and `max_age`, and the token that
//! has what the route asks forwarded.

mod common;

use common::*;
use serde_json::{json, Value};

const MFA_ROUTE: &str = "/account/security";
const FRESH_ROUTE: &str = "/payments";

fn stepup_config(up: &TestUpstream) -> GatewayConfig {
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.listen.push("h2c = true".into());
    cfg.enforcement
        .push("login_url = \"https://app.example/login\"".into());
    cfg.extra.push_str(&format!(
        "\n[[enforcement.routes]]\nprefix = \"{MFA_ROUTE}\"\namr_any = [\"mfa\"]\n\
         \n[[enforcement.routes]]\nprefix = \"{FRESH_ROUTE}\"\nacr_values = [\"gold\"]\nmax_age_s = 300\n"
    ));
    cfg
}

fn token_with(sid: &str, extra: Value) -> String {
    let mut c = claims("alice", sid);
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    hs256(&c)
}

fn challenge(resp: &reqwest::Response) -> String {
    resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_route_demands_mfa_and_a_recent_sign_in_over_http1_and_http2() {
    let up = TestUpstream::start();
    let gw = Gateway::start(stepup_config(&up)).await;
    let plain = token_with("su-1", json!({"amr": ["pwd"]}));
    let mfa = token_with("su-2", json!({"amr": ["pwd", "mfa"]}));
    let stale = token_with("su-3", json!({"acr": "gold", "auth_time": now() - 3600}));
    let fresh = token_with("su-4", json!({"acr": "gold", "auth_time": now() - 10}));
    let h1 = reqwest::Client::new();
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for (client, version) in [
        (&h1, reqwest::Version::HTTP_11),
        (&h2, reqwest::Version::HTTP_2),
    ] {
        let resp = client
            .get(gw.url(MFA_ROUTE))
            .bearer_auth(&plain)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), version);
        assert_eq!(resp.status(), 401, "{version:?}");
        assert_eq!(
            challenge(&resp),
            r#"Bearer realm="sessiongate", error="insufficient_user_authentication", error_description="a stronger authentication is required""#
        );
        assert_eq!(
            resp.json::<Value>().await.unwrap()["error"],
            "insufficient_user_authentication"
        );
        let ok = client
            .get(gw.url(&format!("{MFA_ROUTE}/password")))
            .bearer_auth(&mfa)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200, "{version:?}: mfa forwarded");

        let resp = client
            .get(gw.url(FRESH_ROUTE))
            .bearer_auth(&stale)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{version:?}");
        assert_eq!(
            challenge(&resp),
            r#"Bearer realm="sessiongate", error="insufficient_user_authentication", error_description="a more recent authentication is required", acr_values="gold", max_age=300"#
        );
        let ok = client
            .get(gw.url(FRESH_ROUTE))
            .bearer_auth(&fresh)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200, "{version:?}: fresh gold forwarded");
        // Other paths do not ask.
        let other = client
            .get(gw.url("/account"))
            .bearer_auth(&plain)
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 200);
    }
    gw.metric_reaches(
        r#"sessiongate_requests_total{decision="insufficient_user_authentication"}"#,
        4.0,
    )
    .await;
}

/// However the path is spelled, the route applies (raw socket, as sent).
#[tokio::test]
async fn no_spelling_of_the_path_skips_the_step_up() {
    let up = TestUpstream::start();
    let gw = Gateway::start(stepup_config(&up)).await;
    let plain = token_with("su-5", json!({}));
    for path in [
        "/account/security",
        "//account/security",
        "/account//security",
        "/Account/Security",
        "/account/%73ecurity",
        "/account%2fsecurity",
        "/account/./security",
        "/x/../account/security",
        "/account;p=1/security",
        "/account\\security",
    ] {
        let mut s = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
        let status = http1_request(
            &mut s,
            &format!("GET {path} HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer {plain}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(status == 401 || status == 400, "{path}: {status}");
    }
    assert!(
        up.seen()
            .iter()
            .all(|s| !s.path.to_ascii_lowercase().contains("security")),
        "a spelling reached the app"
    );
}

#[tokio::test]
async fn a_browser_is_sent_to_sign_in_with_acr_values_and_max_age() {
    let up = TestUpstream::start();
    let gw = Gateway::start(stepup_config(&up)).await;
    let stale = token_with("su-6", json!({"acr": "silver", "auth_time": now() - 3600}));
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(gw.url(FRESH_ROUTE))
        .bearer_auth(&stale)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(
        resp.headers()["location"],
        "https://app.example/login?acr_values=gold&max_age=300"
    );
}

/// `sessions.reauth_max_age_s`: the self-service actions need a recent
/// sign-in; the listing stays open and says so.
#[tokio::test]
async fn self_service_actions_need_a_recent_sign_in() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.extra.push_str("\n[sessions]\nreauth_max_age_s = 300\n");
    let gw = Gateway::start(cfg).await;
    let stale = token_with("ra-1", json!({"auth_time": now() - 3600}));
    let fresh = token_with("ra-2", json!({"auth_time": now() - 5}));
    let client = reqwest::Client::new();
    let list = |t: &str| {
        client
            .get(gw.url("/.sessiongate/sessions"))
            .bearer_auth(t)
            .header("accept", "application/json")
            .send()
    };
    let page: Value = list(&stale).await.unwrap().json().await.unwrap();
    assert_eq!(page["reauth_required"], true);
    let html = send_text(
        client
            .get(gw.url("/.sessiongate/sessions"))
            .bearer_auth(&stale),
    )
    .await;
    assert!(html.contains("Sign in again to continue"), "{html}");
    assert!(!html.contains("logout-others"), "no action offered");
    let resp = client
        .post(gw.url("/.sessiongate/logout-others"))
        .bearer_auth(&stale)
        .header("accept", "application/json")
        .header("x-csrf-token", page["csrf_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        challenge(&resp).contains("error=\"insufficient_user_authentication\"")
            && challenge(&resp).contains("max_age=300")
    );
    assert_eq!(gw.status("/", &fresh).await, 200, "nothing was logged out");

    let page: Value = list(&fresh).await.unwrap().json().await.unwrap();
    assert_eq!(page["reauth_required"], false);
    let resp = client
        .post(gw.url("/.sessiongate/logout-others"))
        .bearer_auth(&fresh)
        .header("accept", "application/json")
        .header("x-csrf-token", page["csrf_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        gw.status("/", &stale).await,
        401,
        "the other session is logged out"
    );
}

#[test]
fn routes_are_checked() {
    for (extra, key) in [
        (
            "[[enforcement.routes]]\nprefix = \"account\"\namr_any = [\"mfa\"]\n",
            "enforcement.routes[0].prefix",
        ),
        (
            "[[enforcement.routes]]\nprefix = \"/.sessiongate/x\"\namr_any = [\"mfa\"]\n",
            "enforcement.routes[0].prefix",
        ),
        (
            "[[enforcement.routes]]\nprefix = \"/a\"\n",
            "enforcement.routes[0].prefix",
        ),
        (
            "[[enforcement.routes]]\nprefix = \"/a\"\nacr_values = [\"a b\"]\n",
            "enforcement.routes[0].acr_values",
        ),
        (
            "[[enforcement.routes]]\nprefix = \"/a\"\namr_any = [\"m\\\"\"]\n",
            "enforcement.routes[0].amr_any",
        ),
        (
            "[[enforcement.routes]]\nprefix = \"/a\"\nmax_age_s = 999999999999\n",
            "enforcement.routes[0].max_age_s",
        ),
    ] {
        assert_config_refused(
            GatewayConfig::new("127.0.0.1:1".parse().unwrap()),
            extra,
            key,
        );
    }
}
