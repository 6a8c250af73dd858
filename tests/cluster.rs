//! Several gateways on one real Redis (started by each test on a free
//! port, AOF fsynced on every write): a revocation taken by any gateway is
//! enforced by all, closes open connections everywhere, survives a Redis
//! crash, reaches a gateway that was away, and while Redis is down the
//! gateways keep enforcing and refuse to acknowledge.
//! Skips loudly without redis-server unless SESSIONGATE_REQUIRE_REDIS is set.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const WITHIN: Duration = Duration::from_secs(5);

fn cluster_config(up: &TestUpstream, redis: &RedisServer) -> GatewayConfig {
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.store = redis.store_lines();
    cfg
}

async fn cluster(up: &TestUpstream, redis: &RedisServer, n: usize) -> Vec<Gateway> {
    let mut gws = Vec::new();
    for _ in 0..n {
        gws.push(Gateway::start(cluster_config(up, redis)).await);
    }
    gws
}

/// Waits until `gw` refuses `token`; answers how long that took. A request
/// in flight when the revocation lands has its connection closed by the
/// gateway: that counts as refused too; a gateway that is down does not.
async fn refused_within(gw: &Gateway, token: &str, within: Duration) -> Duration {
    let start = Instant::now();
    let client = reqwest::Client::new();
    loop {
        match client.get(gw.url("/")).bearer_auth(token).send().await {
            Ok(r) if r.status() == 401 => return start.elapsed(),
            Ok(_) => {}
            Err(e) if e.is_connect() => {
                panic!("gateway {} unreachable: {e:?}\n{}", gw.proxy, gw.log_tail())
            }
            Err(_) => return start.elapsed(),
        }
        assert!(
            start.elapsed() < within,
            "not refused by {} within {within:?}\n{}",
            gw.proxy,
            gw.log_tail()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_gateway_is_enforced_by_all() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let up = TestUpstream::start();
    let gws = cluster(&up, &redis, 3).await;
    let phone = hs256(&claims("alice", "phone"));
    let laptop = hs256(&claims("alice", "laptop"));
    for gw in &gws {
        assert_eq!(gw.get("/", &phone).await.status(), 200);
    }
    assert_eq!(gws[0].revoke_session("phone", "lost").await.status(), 200);
    assert_eq!(
        gws[0].get("/", &phone).await.status(),
        401,
        "same gateway: at once"
    );
    for gw in &gws[1..] {
        let took = refused_within(gw, &phone, Duration::from_secs(2)).await;
        eprintln!("refused by {} {took:?} after the acknowledgement", gw.proxy);
        assert_eq!(
            gw.get("/", &laptop).await.status(),
            200,
            "other sessions untouched"
        );
    }

    // A user cutoff with an exempt session, taken on another node.
    let t = now();
    let old = hs256(&json!({"sub": "bob", "sid": "b-old", "iat": t - 5, "exp": t + 3600}));
    let kept = hs256(&json!({"sub": "bob", "sid": "b-kept", "iat": t - 5, "exp": t + 3600}));
    assert_eq!(
        gws[2].revoke_user("bob", Some("b-kept")).await.status(),
        200
    );
    for gw in &gws {
        refused_within(gw, &old, Duration::from_secs(2)).await;
        assert_eq!(gw.get("/", &kept).await.status(), 200);
    }

    // Every node lists the cluster's revocations and audit trail.
    let list = gws[1].admin_json("/v1/revocations").await;
    let targets: Vec<&str> = list["revocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, vec!["bob", "phone"]);
    let audit = gws[1].admin_json("/v1/audit").await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 2);
    // Propagation counts each revocation once per node that applied it
    // from the change log: node 1, which took neither, got both once.
    assert_eq!(
        gws[1]
            .metric("sessiongate_revocation_propagation_seconds_count")
            .await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_websocket_on_another_gateway_is_closed() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let up = TestUpstream::start();
    let gws = cluster(&up, &redis, 2).await;
    let tok = hs256(&claims("alice", "ws-remote"));
    let mut req = format!("ws://{}/ws", gws[1].proxy)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {tok}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::Text("hi".into())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Text("hi".into())
    );

    let start = Instant::now();
    assert_eq!(gws[0].revoke_session("ws-remote", "t").await.status(), 200);
    let frame = loop {
        match tokio::time::timeout(WITHIN, ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(f))) => break f,
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    let f = frame.expect("close frame with a code");
    assert_eq!(f.code, CloseCode::Policy);
    assert_eq!(f.reason, "session_revoked");
    eprintln!(
        "closed on the other gateway {:?} after the DELETE",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_when_redis_is_killed() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let up = TestUpstream::start();
    let gws = cluster(&up, &redis, 2).await;
    let mut acked = Vec::new();
    for i in 0..50 {
        let sid = format!("crash-{i}");
        assert_eq!(gws[0].revoke_session(&sid, "t").await.status(), 200);
        acked.push(sid);
    }
    redis.kill();
    redis.restart();

    // A gateway that starts now loads everything from the replayed AOF.
    let fresh = Gateway::start(cluster_config(&up, &redis)).await;
    for sid in &acked {
        assert_eq!(
            fresh.get("/", &hs256(&claims("u", sid))).await.status(),
            401,
            "{sid} lost"
        );
    }
    // The running gateways reconnect and propagation resumes, both ways.
    assert_eventually!(
        gws[1].revoke_session("after-restart", "t").await.status() == 200,
        Duration::from_secs(10),
        "revocations not accepted after Redis came back"
    );
    let tok = hs256(&claims("u", "after-restart"));
    refused_within(&gws[0], &tok, Duration::from_secs(10)).await;
    refused_within(&fresh, &tok, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_was_away_catches_up() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let up = TestUpstream::start();
    let mut gws = cluster(&up, &redis, 2).await;
    let away = gws.pop().unwrap();
    away.signal("KILL");
    let dir = away.kill();
    for i in 0..20 {
        assert_eq!(
            gws[0]
                .revoke_session(&format!("missed-{i}"), "t")
                .await
                .status(),
            200
        );
    }
    assert_eq!(gws[0].revoke_user("carol", None).await.status(), 200);
    let back = Gateway::start_in(cluster_config(&up, &redis), dir).await;
    for i in 0..20 {
        assert_eq!(
            back.get("/", &hs256(&claims("u", &format!("missed-{i}"))))
                .await
                .status(),
            401
        );
    }
    let t = now();
    let old = hs256(&json!({"sub": "carol", "sid": "c", "iat": t - 5}));
    assert_eq!(back.get("/", &old).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_gateway_reloads_when_the_stream_was_trimmed_past_it() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let up = TestUpstream::start();
    let mut cfg = cluster_config(&up, &redis);
    cfg.store.push("redis_stream_maxlen = 100".into());
    let writer = Gateway::start(cfg.clone()).await;
    let paused = Gateway::start(cfg).await;
    assert_eq!(
        writer.revoke_session("before-pause", "t").await.status(),
        200
    );
    refused_within(&paused, &hs256(&claims("u", "before-pause")), WITHIN).await;

    paused.signal("STOP");
    for i in 0..400 {
        assert_eq!(
            writer
                .revoke_session(&format!("during-{i}"), "t")
                .await
                .status(),
            200
        );
    }
    paused.signal("CONT");
    // The early entries are gone from the stream: only a reload has them.
    for i in [0, 1, 2, 50, 150, 399] {
        let tok = hs256(&claims("u", &format!("during-{i}")));
        refused_within(&paused, &tok, WITHIN).await;
    }
    assert!(
        paused.log().contains("reloading"),
        "expected a reload: {}",
        paused.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_enforcement_goes_on_and_nothing_is_acknowledged() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let up = TestUpstream::start();
    let gws = cluster(&up, &redis, 2).await;
    assert_eq!(gws[0].revoke_session("earlier", "t").await.status(), 200);
    refused_within(&gws[1], &hs256(&claims("u", "earlier")), WITHIN).await;

    redis.kill();
    let resp = gws[0].revoke_session("while-down", "t").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "store_unavailable"
    );
    assert_eq!(gws[1].revoke_user("dan", None).await.status(), 503);
    for gw in &gws {
        let ready = reqwest::get(gw.admin_url("/readyz")).await.unwrap();
        assert_eq!(ready.status(), 503);
        assert_eq!(
            gw.get("/", &hs256(&claims("u", "earlier"))).await.status(),
            401
        );
        assert_eq!(
            gw.get("/", &hs256(&claims("u", "while-down")))
                .await
                .status(),
            200
        );
        assert!(gw.metric("sessiongate_store_errors_total").await >= 1.0);
    }

    redis.restart();
    for gw in &gws {
        assert_eventually!(
            reqwest::get(gw.admin_url("/readyz"))
                .await
                .unwrap()
                .status()
                == 200,
            Duration::from_secs(10),
            "not ready again after Redis came back"
        );
    }
    assert_eq!(
        gws[0].revoke_session("while-down", "retry").await.status(),
        200
    );
    refused_within(&gws[1], &hs256(&claims("u", "while-down")), WITHIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_after_refuses_everything_once_cut_off_too_long() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let up = TestUpstream::start();
    let mut cfg = cluster_config(&up, &redis);
    cfg.enforcement.push("fail_closed_after_s = 1".into());
    let gw = Gateway::start(cfg).await;
    let tok = hs256(&claims("u", "ok"));
    assert_eq!(gw.get("/", &tok).await.status(), 200);
    redis.kill();
    assert_eventually!(
        gw.get("/", &tok).await.status() == 503,
        Duration::from_secs(10),
        "not failing closed"
    );
    let resp = gw.get("/", &tok).await;
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "store_unavailable"
    );
    redis.restart();
    assert_eventually!(
        gw.get("/", &tok).await.status() == 200,
        Duration::from_secs(10),
        "not open again"
    );
}

/// Monitor mode refuses nothing, fail-closed included: the would-be 503 is
/// forwarded and labelled, as every other would-be refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_mode_forwards_what_fail_closed_would_refuse() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let up = TestUpstream::start();
    let mut cfg = cluster_config(&up, &redis);
    cfg.enforcement.push("fail_closed_after_s = 1".into());
    cfg.enforcement.push(r#"mode = "monitor""#.into());
    let gw = Gateway::start(cfg).await;
    let tok = hs256(&claims("u", "m-ok"));
    let label = |v: &Value| v["headers"]["x-sessiongate-decision"].clone();
    let v: Value = gw.get("/", &tok).await.json().await.unwrap();
    assert_eq!(label(&v), "allowed");
    redis.kill();
    assert_eventually!(
        {
            let resp = gw.get("/", &tok).await;
            resp.status() == 200
                && label(&resp.json::<Value>().await.unwrap()) == "store_unavailable"
        },
        Duration::from_secs(10),
        "monitor mode labels, never refuses"
    );
    gw.metric_reaches(
        r#"sessiongate_requests_total{decision="store_unavailable"}"#,
        1.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_visible_from_every_gateway() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let up = TestUpstream::start();
    let mut cfg = cluster_config(&up, &redis);
    cfg.extra = "\n[sessions]\npersist_interval_s = 1\n".into();
    let gws = [
        Gateway::start(cfg.clone()).await,
        Gateway::start(cfg.clone()).await,
    ];
    let writer = Gateway::start(cfg).await;
    get_as(
        &writer,
        "/",
        &hs256(&claims("erin", "e-phone")),
        SAFARI_IPHONE,
        "127.0.0.1",
    )
    .await;
    let laptop = hs256(&claims("erin", "e-laptop"));
    get_as(&gws[0], "/", &laptop, CHROME_WINDOWS, "127.0.0.1").await;
    assert_eventually!(
        {
            let v = gws[1].admin_json("/v1/users/erin/sessions").await;
            v["sessions"].as_array().unwrap().len() == 2
        },
        Duration::from_secs(15),
        "sessions not shared through Redis"
    );
    // The self-service page on one node lists the session seen by another,
    // and logs it out there.
    let mine = send_json(
        reqwest::Client::new()
            .get(gws[0].url("/.sessiongate/sessions"))
            .bearer_auth(&laptop)
            .header("accept", "application/json")
            .header("user-agent", CHROME_WINDOWS),
    )
    .await;
    assert!(mine["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["session_id"] == "e-phone"));
    let resp = reqwest::Client::new()
        .post(gws[0].url("/.sessiongate/sessions/e-phone/revoke"))
        .bearer_auth(&laptop)
        .header("accept", "application/json")
        .header("user-agent", CHROME_WINDOWS)
        .header("x-csrf-token", mine["csrf_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    refused_within(&writer, &hs256(&claims("erin", "e-phone")), WITHIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_users_and_tls_are_supported() {
    // ACL: a user with a password, the default user disabled.
    let acl: Vec<String> = [
        "--user", "default", "off", "--user", "gateway", "on", ">s3cret", "~*", "&*", "+@all",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let Some(redis) = RedisServer::start_with(&acl) else {
        return;
    };
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.store = vec![
        "backend = \"redis\"".into(),
        format!(
            "redis_url = \"redis://gateway:s3cret@127.0.0.1:{}/\"",
            redis.port
        ),
    ];
    let gw = Gateway::start(cfg).await;
    assert_eq!(gw.revoke_session("acl", "t").await.status(), 200);
    assert_eq!(gw.get("/", &hs256(&claims("u", "acl"))).await.status(), 401);

    // TLS with a private CA.
    let keys = keys_dir().join("redis-tls");
    let tls = [
        "--tls-port".to_string(),
        "{port}".to_string(),
        "--tls-cert-file".to_string(),
        keys.join("server.pem").display().to_string(),
        "--tls-key-file".to_string(),
        keys.join("server.key").display().to_string(),
        "--tls-ca-cert-file".to_string(),
        keys.join("ca.pem").display().to_string(),
        "--tls-auth-clients".to_string(),
        "no".to_string(),
    ];
    let Some(tls_redis) = RedisServer::start_with(&tls) else {
        return;
    };
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.store = vec![
        "backend = \"redis\"".into(),
        format!("redis_url = \"rediss://127.0.0.1:{}/\"", tls_redis.port),
        format!("redis_ca_file = \"{}\"", keys.join("ca.pem").display()),
    ];
    let a = Gateway::start(cfg.clone()).await;
    let b = Gateway::start(cfg).await;
    assert_eq!(a.revoke_session("over-tls", "t").await.status(), 200);
    refused_within(&b, &hs256(&claims("u", "over-tls")), WITHIN).await;
}
