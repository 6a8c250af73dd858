//! "Where you're logged in": the session registry (device, address, GeoIP,
//! first and last seen), X-Forwarded-For trust, the X-Geo-* headers, new
//! locations, the admin session endpoints and the self-service page.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn session_json(gw: &Gateway, sid: &str) -> Value {
    let resp = gw.admin_get(&format!("/v1/sessions/{sid}")).await;
    assert_eq!(resp.status(), 200, "session {sid}");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn devices_and_city_level_geo_are_recorded_and_annotated() {
    let up = TestUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(geo_config(up.addr, Some(&city_database(dir.path())))).await;
    let laptop = hs256(&claims("alice", "laptop"));
    let phone = hs256(&claims("alice", "phone"));

    let seen: Value = get_as(&gw, "/", &laptop, CHROME_WINDOWS, IP_ZURICH)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen["headers"]["x-geo-country"], "CH");
    assert_eq!(seen["headers"]["x-geo-city"], "Z%C3%BCrich");
    get_as(&gw, "/", &laptop, CHROME_WINDOWS, IP_ZURICH).await;
    let seen: Value = get_as(&gw, "/", &phone, SAFARI_IPHONE, IP_NEW_YORK)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen["headers"]["x-geo-country"], "US");
    assert_eq!(seen["headers"]["x-geo-city"], "New York");

    let s = session_json(&gw, "laptop").await;
    assert_eq!(s["session_id"], "laptop");
    assert_eq!(s["user_id"], "alice");
    assert_eq!(s["ip"], IP_ZURICH);
    assert_eq!(s["device"]["browser"], "Chrome");
    assert_eq!(s["device"]["os"], "Windows 10");
    assert_eq!(s["device"]["kind"], "desktop");
    assert_eq!(s["device"]["user_agent"], CHROME_WINDOWS);
    assert_eq!(s["geo"]["country"], "CH");
    assert_eq!(s["geo"]["city"], "Zürich");
    assert!((s["geo"]["latitude"].as_f64().unwrap() - 47.3769).abs() < 1e-6);
    assert!((s["geo"]["longitude"].as_f64().unwrap() - 8.5417).abs() < 1e-6);
    assert_eq!(s["requests"], 2);
    assert_eq!(s["revoked"], false);
    assert_eq!(s["revoked_at"], Value::Null);
    assert!(s["first_seen"].as_str().unwrap() <= s["last_seen"].as_str().unwrap());

    let s = session_json(&gw, "phone").await;
    assert_eq!(s["device"]["browser"], "Safari");
    assert_eq!(s["device"]["os"], "iOS");
    assert_eq!(s["device"]["kind"], "mobile");
    assert_eq!(s["geo"]["city"], "New York");
    assert_eq!(s["ip"], IP_NEW_YORK);

    // The user's sessions, newest last_seen first; revocation shows up.
    gw.revoke_session("phone", "lost").await;
    let list = gw.admin_json("/v1/users/alice/sessions").await;
    let list = list["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["session_id"], "phone");
    assert_eq!(list[0]["revoked"], true);
    assert!(list[0]["revoked_at"].is_string());
    assert_eq!(list[1]["session_id"], "laptop");

    assert_eq!(gw.admin_get("/v1/sessions/never-seen").await.status(), 404);
    let empty = gw.admin_json("/v1/users/nobody/sessions").await;
    assert_eq!(empty, json!({"sessions": []}));
    assert_eq!(gw.metric("sessiongate_tracked_sessions").await, 2.0);
}

#[tokio::test]
async fn the_flat_ip_location_db_schema_is_read_too() {
    let up = TestUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(geo_config(up.addr, Some(&flat_city_database(dir.path())))).await;
    get_as(
        &gw,
        "/",
        &hs256(&claims("bob", "b1")),
        FIREFOX_MAC,
        IP_LONDON,
    )
    .await;
    let s = session_json(&gw, "b1").await;
    assert_eq!(s["geo"]["country"], "GB");
    assert_eq!(s["geo"]["city"], "Manchester");
    assert!((s["geo"]["latitude"].as_f64().unwrap() - 53.4808).abs() < 1e-6);
    assert_eq!(s["device"]["os"], "macOS");
    // An address the database does not know: geo is null.
    get_as(
        &gw,
        "/",
        &hs256(&claims("bob", "b2")),
        FIREFOX_MAC,
        "10.1.2.3",
    )
    .await;
    assert_eq!(session_json(&gw, "b2").await["geo"], Value::Null);
}

#[tokio::test]
async fn bundled_database_gives_the_country() {
    let up = TestUpstream::start();
    let gw = Gateway::start(geo_config(up.addr, None)).await;
    let seen: Value = get_as(
        &gw,
        "/",
        &hs256(&claims("carol", "c1")),
        CHROME_WINDOWS,
        "8.8.8.8",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(seen["headers"]["x-geo-country"], "US");
    assert!(
        seen["headers"].get("x-geo-city").is_none(),
        "country-only database"
    );
    let s = session_json(&gw, "c1").await;
    assert_eq!(s["geo"]["country"], "US");
    assert_eq!(s["geo"]["city"], Value::Null);
}

#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    let up = TestUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let db = city_database(dir.path());
    // No trusted proxies: the header is ignored, the peer is the client.
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.extra = format!("\n[geoip]\ndatabase = \"{}\"\n", db.display());
    let gw = Gateway::start(cfg).await;
    let seen: Value = get_as(
        &gw,
        "/",
        &hs256(&claims("dan", "d1")),
        CHROME_WINDOWS,
        IP_ZURICH,
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(seen["headers"].get("x-geo-country").is_none());
    let s = session_json(&gw, "d1").await;
    assert_eq!(s["ip"], "127.0.0.1");
    assert_eq!(s["geo"], Value::Null);

    // Trusted peer: the right-most untrusted hop, not a spoofed left one.
    let gw2 = Gateway::start(geo_config(up.addr, Some(&db))).await;
    let spoofed = format!("{IP_LONDON}, {IP_ZURICH}, 127.0.0.1");
    get_as(
        &gw2,
        "/",
        &hs256(&claims("dan", "d2")),
        CHROME_WINDOWS,
        &spoofed,
    )
    .await;
    let s = session_json(&gw2, "d2").await;
    assert_eq!(s["ip"], IP_ZURICH);
    assert_eq!(s["geo"]["country"], "CH");
}

#[tokio::test]
async fn a_new_country_is_flagged_counted_and_audited() {
    let up = TestUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(geo_config(up.addr, Some(&city_database(dir.path())))).await;
    get_as(
        &gw,
        "/",
        &hs256(&claims("erin", "home")),
        CHROME_WINDOWS,
        IP_ZURICH,
    )
    .await;
    assert_eq!(
        session_json(&gw, "home").await["new_location"],
        false,
        "the first session has no history"
    );
    get_as(
        &gw,
        "/",
        &hs256(&claims("erin", "work")),
        FIREFOX_MAC,
        IP_ZURICH,
    )
    .await;
    assert_eq!(
        session_json(&gw, "work").await["new_location"],
        false,
        "same country"
    );
    let resp = get_as(
        &gw,
        "/",
        &hs256(&claims("erin", "abroad")),
        SAFARI_IPHONE,
        IP_SAO_PAULO,
    )
    .await;
    assert_eq!(resp.status(), 200, "flagged, not refused, by default");
    assert_eq!(session_json(&gw, "abroad").await["new_location"], true);
    assert_eq!(gw.metric("sessiongate_new_locations_total").await, 1.0);
    // Another user's countries do not count: Brazil is new for frank,
    // though erin was just there.
    get_as(
        &gw,
        "/",
        &hs256(&claims("frank", "f1")),
        CHROME_WINDOWS,
        IP_ZURICH,
    )
    .await;
    get_as(
        &gw,
        "/",
        &hs256(&claims("frank", "f2")),
        CHROME_WINDOWS,
        IP_SAO_PAULO,
    )
    .await;
    assert_eq!(session_json(&gw, "f2").await["new_location"], true);
    assert_eq!(gw.metric("sessiongate_new_locations_total").await, 2.0);

    assert_eventually!(
        {
            let audit = gw.admin_json("/v1/audit").await;
            audit["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == "new_location" && e["target"] == "session:abroad")
        },
        Duration::from_secs(5),
        "new_location not in the audit trail"
    );
}

#[tokio::test]
async fn refused_new_location_until_confirmed_from_another_session() {
    let up = TestUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = geo_config(up.addr, Some(&city_database(dir.path())));
    cfg.extra.push_str("refuse_new_location = true\n");
    let gw = Gateway::start(cfg).await;
    let home = hs256(&claims("gina", "home"));
    let abroad = hs256(&claims("gina", "abroad"));
    let resp = home_then_abroad(&gw, &home, &abroad).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "new_location");
    gw.metric_reaches(
        r#"sessiongate_requests_total{decision="new_location"}"#,
        1.0,
    )
    .await;

    // The new session cannot confirm itself: it is refused before anything.
    let confirm = "/.sessiongate/sessions/abroad/confirm";
    let resp = self_service(&gw, Method::POST, confirm, &abroad, IP_SAO_PAULO)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "new_location");
    assert_eq!(
        get_as(&gw, "/", &abroad, SAFARI_IPHONE, IP_SAO_PAULO)
            .await
            .status(),
        403
    );
    let own = send_json(self_service(
        &gw,
        Method::GET,
        "/.sessiongate/sessions",
        &home,
        IP_LONDON,
    ))
    .await;
    let listed = own["sessions"].as_array().unwrap();
    let flagged = listed
        .iter()
        .find(|s| s["session_id"] == "abroad")
        .expect("listed");
    assert_eq!(flagged["new_location"], true);

    // Confirmed from the home session: the abroad session works.
    let resp = self_service(&gw, Method::POST, confirm, &home, IP_LONDON)
        .header("x-csrf-token", own["csrf_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        get_as(&gw, "/", &abroad, SAFARI_IPHONE, IP_SAO_PAULO)
            .await
            .status(),
        200
    );
    let audit = gw.admin_json("/v1/audit").await;
    assert!(audit["entries"].as_array().unwrap().iter().any(|e| {
        e["action"] == "confirm_location"
            && e["actor"] == "user:gina"
            && e["target"] == "session:abroad"
    }));
}

/// The device and address each test token uses, as a browser would.
fn device_of(token_sid: &str) -> (&'static str, &'static str) {
    match token_sid {
        "tablet" => (FIREFOX_MAC, IP_LONDON),
        _ => (CHROME_WINDOWS, IP_ZURICH),
    }
}

fn sid_of(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["sid"].as_str().unwrap().to_string()
}

/// `home` is seen from London, then `abroad` from São Paulo, a new country
/// for the user; answers the response to `abroad`.
async fn home_then_abroad(gw: &Gateway, home: &str, abroad: &str) -> reqwest::Response {
    assert_eq!(
        get_as(gw, "/", home, CHROME_WINDOWS, IP_LONDON)
            .await
            .status(),
        200
    );
    get_as(gw, "/", abroad, SAFARI_IPHONE, IP_SAO_PAULO).await
}

/// A request for JSON to a self-service path with `token`, from address `ip`.
fn self_service(
    gw: &Gateway,
    method: Method,
    path: &str,
    token: &str,
    ip: &str,
) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, gw.url(path))
        .bearer_auth(token)
        .header("accept", "application/json")
        .header("x-forwarded-for", ip)
}

/// GET the self-service page as JSON, from the token's own device.
async fn my_sessions(gw: &Gateway, token: &str) -> Value {
    let (ua, ip) = device_of(&sid_of(token));
    let resp = self_service(gw, Method::GET, "/.sessiongate/sessions", token, ip)
        .header("user-agent", ua)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// The ids of the sessions the self-service page lists to `token`, in order.
async fn listed_ids(gw: &Gateway, token: &str) -> Vec<String> {
    my_sessions(gw, token).await["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap().to_string())
        .collect()
}

async fn post(gw: &Gateway, path: &str, token: &str, csrf: Option<&str>) -> reqwest::Response {
    let (ua, ip) = device_of(&sid_of(token));
    let mut req = self_service(gw, Method::POST, path, token, ip).header("user-agent", ua);
    if let Some(c) = csrf {
        req = req.header("x-csrf-token", c);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn self_service_lists_revokes_and_logs_out_others() {
    let up = TestUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(geo_config(up.addr, Some(&city_database(dir.path())))).await;
    let laptop = hs256(&claims("hana", "laptop"));
    let phone = hs256(&claims("hana", "phone"));
    let tablet = hs256(&claims("hana", "tablet"));
    let stranger = hs256(&claims("ivan", "ivan-1"));
    get_as(&gw, "/", &laptop, CHROME_WINDOWS, IP_ZURICH).await;
    get_as(&gw, "/", &phone, SAFARI_IPHONE, IP_NEW_YORK).await;
    get_as(&gw, "/", &tablet, FIREFOX_MAC, IP_LONDON).await;
    get_as(&gw, "/", &stranger, CHROME_WINDOWS, IP_LONDON).await;

    let mine = my_sessions(&gw, &laptop).await;
    assert_eq!(mine["user_id"], "hana");
    assert_eq!(mine["current_session_id"], "laptop");
    let csrf = mine["csrf_token"].as_str().unwrap().to_string();
    let list = mine["sessions"].as_array().unwrap();
    let ids: Vec<&str> = list
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(
        !ids.contains(&"ivan-1"),
        "another user's session is never listed"
    );
    assert_eq!(
        ids[0], "laptop",
        "newest last_seen first: the page request touched it"
    );
    for s in list {
        assert_eq!(s["current"], s["session_id"] == "laptop");
        assert!(s["device"]["browser"].is_string());
    }

    // The HTML page says the same, with no external assets.
    let html = reqwest::Client::new()
        .get(gw.url("/.sessiongate/sessions"))
        .bearer_auth(&laptop)
        .header("accept", "text/html")
        .header("user-agent", CHROME_WINDOWS)
        .header("x-forwarded-for", IP_ZURICH)
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), 200);
    assert!(html.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    let html = html.text().await.unwrap();
    assert!(html.contains("Chrome on Windows 10") && html.contains("This device"));
    assert!(html.contains("Safari on iOS") && html.contains("New York, US"));
    assert!(html.contains("cannot be undone"));
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"));

    // CSRF: missing or wrong token is refused and revokes nothing.
    assert_eq!(
        post(&gw, "/.sessiongate/sessions/phone/revoke", &laptop, None)
            .await
            .status(),
        403
    );
    assert_eq!(
        post(
            &gw,
            "/.sessiongate/sessions/phone/revoke",
            &laptop,
            Some("forged")
        )
        .await
        .status(),
        403
    );
    let other_csrf = my_sessions(&gw, &tablet).await["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(other_csrf, csrf, "tokens are bound to the session");
    assert_eq!(
        post(
            &gw,
            "/.sessiongate/sessions/phone/revoke",
            &laptop,
            Some(&other_csrf)
        )
        .await
        .status(),
        403
    );
    assert_eq!(gw.get("/", &phone).await.status(), 200);

    // Another user's session: 404, untouched.
    assert_eq!(
        post(
            &gw,
            "/.sessiongate/sessions/ivan-1/revoke",
            &laptop,
            Some(&csrf)
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        post(
            &gw,
            "/.sessiongate/sessions/nope/revoke",
            &laptop,
            Some(&csrf)
        )
        .await
        .status(),
        404
    );
    assert_eq!(gw.get("/", &stranger).await.status(), 200);

    // Revoke one.
    let resp = post(
        &gw,
        "/.sessiongate/sessions/phone/revoke",
        &laptop,
        Some(&csrf),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["session_id"], "phone");
    assert_eq!(gw.get("/", &phone).await.status(), 401);
    let ids = listed_ids(&gw, &laptop).await;
    assert_eq!(ids, vec!["laptop", "tablet"]);

    // Log out all others: the current session survives.
    let resp = post(&gw, "/.sessiongate/logout-others", &laptop, Some(&csrf)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["except"], "laptop");
    assert_eq!(gw.get("/", &tablet).await.status(), 401);
    assert_eq!(gw.get("/", &laptop).await.status(), 200);
    assert_eq!(
        gw.get("/", &stranger).await.status(),
        200,
        "other users untouched"
    );
    let ids = listed_ids(&gw, &laptop).await;
    assert_eq!(ids, vec!["laptop"]);

    // Every action is in the audit trail with the user as actor.
    let audit = gw.admin_json("/v1/audit").await;
    let entries = audit["entries"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["action"] == "revoke_session"
        && e["actor"] == "user:hana"
        && e["target"] == "session:phone"));
    assert!(entries.iter().any(|e| e["action"] == "revoke_user"
        && e["actor"] == "user:hana"
        && e["target"] == "user:hana"));
}

#[tokio::test]
async fn self_service_forms_work_without_javascript() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let laptop = hs256(&claims("jo", "laptop"));
    let phone = hs256(&claims("jo", "phone"));
    gw.get("/", &phone).await;
    let csrf = my_sessions(&gw, &laptop).await["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // A browser form post: cookie auth, urlencoded body, 303 back to the page.
    let resp = client
        .post(gw.url("/.sessiongate/sessions/phone/revoke"))
        .header("cookie", format!("session={laptop}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "text/html")
        .body(format!("csrf_token={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(
        resp.headers()["location"],
        "/.sessiongate/sessions?done=logged_out"
    );
    // The page it leads back to says what happened.
    let page = send_text(
        reqwest::Client::new()
            .get(gw.url("/.sessiongate/sessions?done=logged_out"))
            .bearer_auth(&laptop),
    )
    .await;
    assert!(page.contains("That device was logged out"));
    assert_eq!(gw.get("/", &phone).await.status(), 401);

    // Without a token the page is a refusal, not a page.
    let resp = reqwest::get(gw.url("/.sessiongate/sessions"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "missing_token"
    );
    // A revoked session cannot open it.
    let resp = client
        .get(gw.url("/.sessiongate/sessions"))
        .bearer_auth(&phone)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn session_metadata_survives_a_restart() {
    let up = TestUpstream::start();
    let geo_dir = tempfile::tempdir().unwrap();
    let cfg = geo_config(up.addr, Some(&city_database(geo_dir.path())));
    let gw = Gateway::start(cfg.clone()).await;
    let tok = hs256(&claims("kim", "k1"));
    for _ in 0..3 {
        get_as(&gw, "/", &tok, SAFARI_IPHONE, IP_LONDON).await;
    }
    let before = session_json(&gw, "k1").await;
    // Written in batches (persist_interval_s = 1), not per request.
    let db = gw.db_path();
    assert_eventually!(
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("SELECT requests FROM sessions WHERE sid = 'k1'", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap_or(0)
            == 3,
        Duration::from_secs(10),
        "session metadata not persisted"
    );
    gw.signal("KILL");
    let dir = gw.kill();
    let gw = Gateway::start_in(cfg, dir).await;
    let after = session_json(&gw, "k1").await;
    for field in ["first_seen", "last_seen", "requests", "ip", "geo", "device"] {
        assert_eq!(after[field], before[field], "{field}");
    }
}

#[tokio::test]
async fn geoip_database_is_reloaded_when_it_changes() {
    let up = TestUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let path = city_database(dir.path());
    let gw = Gateway::start(geo_config(up.addr, Some(&path))).await;
    let seen: Value = get_as(
        &gw,
        "/",
        &hs256(&claims("lee", "l1")),
        CHROME_WINDOWS,
        IP_LONDON,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(seen["headers"]["x-geo-city"], "London");

    // Replace the file atomically with the flat database (Manchester).
    let other = flat_city_database(dir.path());
    replace_file_later(&other, &path, Duration::from_secs(5));
    assert_eventually!(
        {
            // A new session each time: a known one keeps its looked-up place.
            let sid = format!("l-{}", rand::random::<u32>());
            let seen: Value = get_as(
                &gw,
                "/",
                &hs256(&claims("lee", &sid)),
                FIREFOX_MAC,
                IP_LONDON,
            )
            .await
            .json()
            .await
            .unwrap();
            seen["headers"]["x-geo-city"] == "Manchester"
        },
        Duration::from_secs(10),
        "database not reloaded"
    );
}

/// Monitor mode refuses nothing, a new location included: neither the app
/// nor the self-service page turns the flagged session away; the app sees
/// the label the refusal would have had.
#[tokio::test]
async fn monitor_mode_flags_a_new_location_without_refusing() {
    let up = TestUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = geo_config(up.addr, Some(&city_database(dir.path())));
    cfg.extra.push_str("refuse_new_location = true\n");
    cfg.enforcement.push("mode = \"monitor\"".into());
    let gw = Gateway::start(cfg).await;
    let home = hs256(&claims("hal", "home"));
    let abroad = hs256(&claims("hal", "abroad"));
    // Forwarded under the label the refusal would have had, and counted.
    let resp = home_then_abroad(&gw, &home, &abroad).await;
    assert_eq!(resp.status(), 200);
    let echoed: Value = resp.json().await.unwrap();
    assert_eq!(echoed["headers"]["x-sessiongate-decision"], "new_location");
    gw.metric_reaches(
        r#"sessiongate_requests_total{decision="new_location"}"#,
        1.0,
    )
    .await;
    assert_eq!(session_json(&gw, "abroad").await["new_location"], true);
    let page = self_service(
        &gw,
        Method::GET,
        "/.sessiongate/sessions",
        &abroad,
        IP_SAO_PAULO,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(page.status(), 200);
}
