//! Theft signals: a session seen with another device than the one it was
//! first seen with, or from Zürich and then New York a moment later, is
//! marked suspicious (session object, audit, metric, webhook event), and
//! with `sessions.on_suspicious = "revoke"` refused at once.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const WITHIN: Duration = Duration::from_secs(10);
const FIREFOX_WINDOWS: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:126.0) Gecko/20100101 Firefox/126.0";
const CHROME_WINDOWS_NEWER: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36";

async fn theft_gateway(revoke: bool) -> (TestUpstream, Gateway, tempfile::TempDir) {
    let up = TestUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = geo_config(up.addr, Some(&city_database(dir.path())));
    if revoke {
        cfg.extra.push_str("on_suspicious = \"revoke\"\n");
    }
    let gw = Gateway::start(cfg).await;
    (up, gw, dir)
}

/// The status of a request of `token` from `ua` at `ip`.
async fn status_as(gw: &Gateway, token: &str, ua: &str, ip: &str) -> u16 {
    get_as(gw, "/", token, ua, ip).await.status().as_u16()
}

async fn suspicious_of(gw: &Gateway, sid: &str) -> Value {
    gw.admin_json(&format!("/v1/sessions/{sid}")).await["suspicious"].clone()
}

/// `sid` is marked `why`: in its session object, the audit trail and the
/// metric (at least once).
async fn assert_marked(gw: &Gateway, sid: &str, why: &str) {
    assert_eq!(suspicious_of(gw, sid).await, why);
    let audited = |e: &Value| {
        e["action"] == "suspicious_session"
            && e["target"] == format!("session:{sid}")
            && e["reason"] == why
    };
    assert_eventually!(
        gw.audit_has(audited).await,
        WITHIN,
        "{sid} not audited as {why}"
    );
    let series = format!(r#"sessiongate_suspicious_sessions_total{{kind="{why}"}}"#);
    gw.metric_reaches(&series, 1.0).await;
}

#[tokio::test]
async fn another_device_on_the_same_session_is_marked() {
    let (_up, gw, _dir) = theft_gateway(false).await;
    let t = hs256(&claims("olga", "th-dev"));
    assert_eq!(status_as(&gw, &t, CHROME_WINDOWS, IP_ZURICH).await, 200);
    // A browser update is the same device.
    assert_eq!(
        status_as(&gw, &t, CHROME_WINDOWS_NEWER, IP_ZURICH).await,
        200
    );
    assert_eq!(suspicious_of(&gw, "th-dev").await, Value::Null);
    // Another browser family on the same session: flagged, still served.
    assert_eq!(status_as(&gw, &t, FIREFOX_WINDOWS, IP_ZURICH).await, 200);
    assert_marked(&gw, "th-dev", "device_changed").await;
    // Marked once.
    assert_eq!(status_as(&gw, &t, SAFARI_IPHONE, IP_ZURICH).await, 200);
    let once = r#"sessiongate_suspicious_sessions_total{kind="device_changed"}"#;
    assert_eq!(gw.metric(once).await, 1.0);
    // The user's page says so.
    let page = send_text(
        reqwest::Client::new()
            .get(gw.url("/.sessiongate/sessions"))
            .bearer_auth(hs256(&claims("olga", "th-other")))
            .header("user-agent", CHROME_WINDOWS)
            .header("x-forwarded-for", IP_ZURICH),
    )
    .await;
    assert!(page.contains("used from another device"), "{page}");
}

#[tokio::test]
async fn zurich_then_new_york_a_moment_later_is_impossible_travel() {
    let (_up, gw, _dir) = theft_gateway(false).await;
    let t = hs256(&claims("pia", "th-travel"));
    for _ in 0..2 {
        assert_eq!(status_as(&gw, &t, CHROME_WINDOWS, IP_ZURICH).await, 200);
    }
    assert_eq!(suspicious_of(&gw, "th-travel").await, Value::Null);
    assert_eq!(status_as(&gw, &t, CHROME_WINDOWS, IP_NEW_YORK).await, 200);
    assert_marked(&gw, "th-travel", "impossible_travel").await;
}

#[tokio::test]
async fn on_suspicious_revoke_refuses_the_session_at_once() {
    let (_up, gw, _dir) = theft_gateway(true).await;
    let stolen = hs256(&claims("quinn", "th-rev-1"));
    assert_eq!(
        status_as(&gw, &stolen, CHROME_WINDOWS, IP_ZURICH).await,
        200
    );
    let refused = get_as(&gw, "/", &stolen, FIREFOX_WINDOWS, IP_ZURICH).await;
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "session_revoked");
    assert_eq!(body["reason"], "device_changed");
    // The owner's own device is refused too: the session is revoked.
    assert_eq!(
        status_as(&gw, &stolen, CHROME_WINDOWS, IP_ZURICH).await,
        401
    );

    let travel = hs256(&claims("quinn", "th-rev-2"));
    assert_eq!(
        status_as(&gw, &travel, CHROME_WINDOWS, IP_ZURICH).await,
        200
    );
    assert_eq!(
        status_as(&gw, &travel, CHROME_WINDOWS, IP_NEW_YORK).await,
        401
    );
    let revoked = gw
        .audit_has(|e| {
            e["action"] == "revoke_session"
                && e["actor"] == "gateway"
                && e["target"] == "session:th-rev-2"
                && e["reason"] == "impossible_travel"
        })
        .await;
    assert!(revoked, "not audited as the gateway's revocation");
}

/// With the bundled country database (no coordinates), countries' centres
/// stand in: Switzerland then the United States a moment later.
#[tokio::test]
async fn without_a_city_database_country_centres_measure_the_travel() {
    let up = TestUpstream::start();
    let gw = Gateway::start(geo_config(up.addr, None)).await;
    let t = hs256(&claims("rene", "th-country"));
    // Swisscom's and Google's resolvers, as the bundled database places them.
    let swiss = "195.186.1.111";
    let seen: Value = get_as(&gw, "/", &t, CHROME_WINDOWS, swiss)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        seen["headers"]["x-geo-country"], "CH",
        "{swiss} placed elsewhere"
    );
    assert_eq!(status_as(&gw, &t, CHROME_WINDOWS, "8.8.8.8").await, 200);
    assert_marked(&gw, "th-country", "impossible_travel").await;
}
