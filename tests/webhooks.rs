//! Events out: each revocation, new session and new location is delivered
//! to the app's webhook, signed the Stripe way, at least once and in
//! order, through a receiver that is down for a while and a gateway killed
//! with `kill -9` in between; one gateway of a Redis cluster delivers.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const HOOK_SECRET: &str = "webhook-signing-secret-0123456789";
const WITHIN: Duration = Duration::from_secs(15);

fn hook_config(up: &TestUpstream, hooks: &HookReceiver) -> GatewayConfig {
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.extra.push_str(&format!(
        "\n[sessions]\npersist_interval_s = 1\n\n[[webhooks]]\nurl = \"{}\"\n\
         events = [\"session.revoked\", \"user.revoked\", \"session.created\", \"session.new_location\"]\n\
         secret_env = \"SG_TEST_HOOK_SECRET\"\n",
        hooks.url()
    ));
    cfg.env
        .push(("SG_TEST_HOOK_SECRET".into(), HOOK_SECRET.into()));
    cfg
}

/// Checks `X-Sessiongate-Signature: t=<unix>,v1=<hex>` over `<t>.<body>`
/// with the shared secret, computed here independently of the gateway.
fn signature_ok(hook: &Hook) -> bool {
    let Some(sig) = hook.headers.get("x-sessiongate-signature") else {
        return false;
    };
    let Some((t, v1)) = sig
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
    else {
        return false;
    };
    let fresh = t.parse::<i64>().is_ok_and(|t| (now() - t).abs() < 300);
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, HOOK_SECRET.as_bytes());
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(&hook.body);
    let want = hex::encode(aws_lc_rs::hmac::sign(&key, &signed).as_ref());
    fresh && want == v1
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

#[tokio::test]
async fn events_are_signed_and_delivered_in_order() {
    let up = TestUpstream::start();
    let hooks = HookReceiver::start().await;
    let gw = Gateway::start(hook_config(&up, &hooks)).await;
    let alice = hs256(&claims("alice", "hook-s1"));
    assert_eq!(gw.status("/", &alice).await, 200);
    assert_eq!(
        gw.revoke_session("hook-s1", "lost phone").await.status(),
        200
    );
    assert_eq!(gw.revoke_user("bob", None).await.status(), 200);
    assert_eventually!(
        hooks.received().len() >= 3,
        WITHIN,
        "3 events, got {:?}",
        hooks.events()
    );

    let received = hooks.received();
    assert!(
        received.iter().all(signature_ok),
        "a signature does not verify"
    );
    for h in &received {
        let body: Value = serde_json::from_slice(&h.body).unwrap();
        assert_eq!(
            h.headers["x-sessiongate-event-id"],
            body["id"].as_str().unwrap()
        );
        assert_eq!(h.headers["content-type"], "application/json");
    }
    let events = hooks.events();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["session.created", "session.revoked", "user.revoked"],
        "in order"
    );
    let revoked = of_type(&events, "session.revoked")[0];
    assert_eq!(revoked["session_id"], "hook-s1");
    assert_eq!(revoked["user_id"], "alice");
    assert_eq!(revoked["actor"], "admin");
    assert_eq!(revoked["reason"], "lost phone");
    assert_eq!(revoked["ip"], "127.0.0.1");
    assert!(
        revoked["device"].is_object() && revoked["geo"].is_null(),
        "{revoked}"
    );
    assert!(revoked["time"].as_str().unwrap().ends_with('Z'));
    let user = of_type(&events, "user.revoked")[0];
    assert_eq!(user["user_id"], "bob");
    assert!(user["session_id"].is_null());
    let ids: std::collections::HashSet<&str> =
        events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "distinct ids");
    gw.metric_reaches(
        r#"sessiongate_webhook_deliveries_total{result="delivered"}"#,
        3.0,
    )
    .await;
}

/// The receiver is down: deliveries fail and are retried; the gateway is
/// killed with -9 while they wait; restarted, it delivers every event
/// (each id at least once, none lost).
#[tokio::test]
async fn a_receiver_down_and_a_kill_lose_no_event() {
    let up = TestUpstream::start();
    let hooks = HookReceiver::start().await;
    let cfg = hook_config(&up, &hooks);
    let gw = Gateway::start(cfg.clone()).await;
    hooks.set_down(true);
    for sid in ["down-1", "down-2", "down-3"] {
        assert_eq!(gw.revoke_session(sid, "").await.status(), 200);
    }
    gw.metric_reaches(
        r#"sessiongate_webhook_deliveries_total{result="failed"}"#,
        2.0,
    )
    .await;
    assert!(hooks.received().is_empty());
    let dir = gw.kill();

    hooks.set_down(false);
    let gw = Gateway::start_in(cfg, dir).await;
    assert_eventually!(
        {
            let sids: std::collections::HashSet<String> = hooks
                .events()
                .iter()
                .filter_map(|e| e["session_id"].as_str().map(String::from))
                .collect();
            ["down-1", "down-2", "down-3"]
                .iter()
                .all(|s| sids.contains(*s))
        },
        WITHIN,
        "not every event arrived after the restart: {:?}",
        hooks.events()
    );
    let sids: Vec<String> = hooks
        .events()
        .iter()
        .filter_map(|e| e["session_id"].as_str().map(String::from))
        .collect();
    // In order, each once here (at least once in general).
    assert_eq!(sids, ["down-1", "down-2", "down-3"]);
    drop(gw);
}

/// Two gateways of a Redis cluster: one delivers each event.
#[tokio::test]
async fn one_gateway_of_a_cluster_delivers() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let up = TestUpstream::start();
    let hooks = HookReceiver::start().await;
    let mut cfg = hook_config(&up, &hooks);
    cfg.store.push("backend = \"redis\"".into());
    cfg.store.push(format!("redis_url = \"{}\"", redis.url()));
    let a = Gateway::start(cfg.clone()).await;
    let b = Gateway::start(cfg).await;
    for (i, gw) in [&a, &b, &a, &b].iter().enumerate() {
        assert_eq!(
            gw.revoke_session(&format!("cl-{i}"), "").await.status(),
            200
        );
    }
    assert_eventually!(
        hooks.received().len() >= 4,
        WITHIN,
        "4 events, got {:?}",
        hooks.events()
    );
    // One more event, once the first four are in: a second deliverer
    // (polling every 250 ms like the first) would have sent its copies of
    // the four by the time this one arrives.
    assert_eq!(a.revoke_session("cl-4", "").await.status(), 200);
    assert_eventually!(
        hooks.events().iter().any(|e| e["session_id"] == "cl-4"),
        WITHIN,
        "the fifth event never arrived"
    );
    let delivered = r#"sessiongate_webhook_deliveries_total{result="delivered"}"#;
    let (by_a, by_b) = (a.metric(delivered).await, b.metric(delivered).await);
    assert!(
        by_a == 0.0 || by_b == 0.0,
        "both gateways delivered: {by_a} and {by_b}"
    );
    assert_eq!(by_a + by_b, 5.0);
    let ids: Vec<String> = hooks
        .events()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), unique.len(), "an event delivered twice: {ids:?}");
    let sids: Vec<String> = hooks
        .events()
        .iter()
        .map(|e| e["session_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sids, ["cl-0", "cl-1", "cl-2", "cl-3", "cl-4"]);
}

#[test]
fn webhook_config_is_checked() {
    for (extra, key) in [
        ("[[webhooks]]\nurl = \"http://app.example/h\"\nevents = [\"session.revoked\"]\nsecret_env = \"HOME\"\n", "webhooks[0].url"),
        ("[[webhooks]]\nurl = \"https://app.example/h\"\nevents = [\"session.deleted\"]\nsecret_env = \"HOME\"\n", "webhooks[0].events[0]"),
        ("[[webhooks]]\nurl = \"https://app.example/h\"\nevents = [\"session.revoked\"]\nsecret_env = \"SG_NOT_SET_ANYWHERE\"\n", "webhooks[0].secret_env"),
        ("[[webhooks]]\nurl = \"https://app.example/h\"\nevents = []\nsecret_env = \"HOME\"\n", "webhooks[0].events"),
    ] {
        assert_config_refused(GatewayConfig::new("127.0.0.1:1".parse().unwrap()), extra, key);
    }
}
