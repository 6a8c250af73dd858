//! Nothing acknowledged is ever lost: restarts, SIGKILL at random moments,
//! a graceful upgrade with two processes on one store, an unwritable store,
//! expiry, and SIGTERM.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use rand::Rng;
use serde_json::{json, Value};

#[tokio::test]
async fn revocations_and_audit_survive_kill_9_and_restart() {
    let up = TestUpstream::start();
    let cfg = GatewayConfig::new(up.addr);
    let gw = Gateway::start(cfg.clone()).await;
    let t = now();
    let stolen = hs256(&claims("alice", "stolen"));
    let old = hs256(&json!({"sub": "bob", "sid": "bob-old", "iat": t - 5, "exp": t + 3600}));
    let kept = hs256(&json!({"sub": "bob", "sid": "bob-kept", "iat": t - 5, "exp": t + 3600}));

    assert_eq!(
        gw.revoke_session("stolen", "laptop stolen").await.status(),
        200
    );
    assert_eq!(gw.revoke_user("bob", Some("bob-kept")).await.status(), 200);
    assert!(
        gw.log().contains(r#""action":"revoke_session""#),
        "audit line logged"
    );

    gw.signal("KILL");
    let dir = gw.kill();
    let gw = Gateway::start_in(cfg, dir).await;

    assert_eq!(gw.get("/", &stolen).await.status(), 401);
    assert_eq!(gw.get("/", &old).await.status(), 401);
    assert_eq!(gw.get("/", &kept).await.status(), 200);
    assert_eq!(
        gw.get("/", &hs256(&claims("alice", "other")))
            .await
            .status(),
        200
    );
    assert_eq!(gw.metric("sessiongate_revoked_sessions").await, 1.0);

    let list = gw.admin_json("/v1/revocations").await;
    let items = list["revocations"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["kind"], "user");
    assert_eq!(items[0]["except"], "bob-kept");
    assert_eq!(items[1]["target"], "stolen");
    assert_eq!(items[1]["reason"], "laptop stolen");

    let audit = gw.admin_json("/v1/audit?limit=10").await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["action"], "revoke_user");
    assert_eq!(entries[0]["target"], "user:bob");
    assert_eq!(entries[1]["action"], "revoke_session");
    assert_eq!(entries[1]["target"], "session:stolen");
    assert_eq!(entries[1]["actor"], "admin");
    assert_eq!(entries[1]["actor_ip"], "127.0.0.1");
    assert_eq!(entries[1]["reason"], "laptop stolen");

    // The time filter: nothing at or after a future instant.
    let future =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(60));
    let audit = gw.admin_json(&format!("/v1/audit?since={future}")).await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 0);
}

/// Revoke in a tight loop; SIGKILL the gateway after a random number of
/// acknowledgements, several rounds. Every acknowledged revocation must be
/// enforced after restart, and none may be half-applied (a revocation without
/// its audit entry, or the reverse).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_revocation_is_lost_to_sigkill() {
    let up = TestUpstream::start();
    let cfg = GatewayConfig::new(up.addr);
    let mut dir = tempfile::tempdir().unwrap();
    let mut acked_all: Vec<String> = Vec::new();
    let mut attempted_all: Vec<String> = Vec::new();

    for round in 0..4 {
        let gw = Gateway::start_in(cfg.clone(), dir).await;
        // Everything acknowledged in earlier rounds is still enforced.
        for sid in acked_all.iter().step_by(7) {
            assert_eq!(
                gw.get("/", &hs256(&claims("u", sid))).await.status(),
                401,
                "{sid} lost"
            );
        }
        let kill_after = rand::rng().random_range(10..60);
        let admin = gw.admin_url("");
        let pid = gw.pid();
        let client = reqwest::Client::new();
        let mut acked = Vec::new();
        let mut attempted = Vec::new();
        for i in 0.. {
            let sid = format!("r{round}-{i}");
            attempted.push(sid.clone());
            if acked.len() == kill_after {
                // Kill while this request is in flight.
                let req = client
                    .delete(format!("{admin}/v1/sessions/{sid}"))
                    .bearer_auth(ADMIN_TOKEN)
                    .send();
                let killer = async {
                    tokio::task::yield_now().await;
                    send_signal(pid, "KILL");
                };
                let (resp, _) = tokio::join!(req, killer);
                if let Ok(r) = resp {
                    if r.status() == 200 {
                        acked.push(sid);
                    }
                }
                break;
            }
            let resp = client
                .delete(format!("{admin}/v1/sessions/{sid}"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            acked.push(sid);
        }
        dir = gw.kill();
        acked_all.extend(acked);
        attempted_all.extend(attempted);
    }

    let gw = Gateway::start_in(cfg, dir).await;
    for sid in &acked_all {
        let resp = gw.get("/", &hs256(&claims("u", sid))).await;
        assert_eq!(
            resp.status(),
            401,
            "acknowledged revocation of {sid} was lost"
        );
    }
    let conn = rusqlite::Connection::open(gw.db_path()).unwrap();
    let targets = |sql: &str| -> HashSet<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    let revoked = targets("SELECT target FROM revocations WHERE kind = 'session'");
    let audited: HashSet<String> =
        targets("SELECT target FROM audit WHERE action = 'revoke_session'")
            .into_iter()
            .map(|t| t.trim_start_matches("session:").to_string())
            .collect();
    assert_eq!(
        revoked, audited,
        "a revocation and its audit entry must commit together"
    );
    for sid in &acked_all {
        assert!(revoked.contains(sid));
    }
    for sid in attempted_all.iter().filter(|s| !revoked.contains(*s)) {
        // Not durable: must not be enforced either.
        assert_eq!(
            gw.get("/", &hs256(&claims("u", sid))).await.status(),
            200,
            "{sid} half-applied"
        );
    }
    assert!(acked_all.len() >= 40);
}

/// pingora graceful upgrade: the new process takes the listeners over while
/// the old one keeps accepting for a few seconds. Revocations acknowledged by
/// either process are enforced by the survivor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_taken_during_a_graceful_upgrade_are_enforced() {
    let up = TestUpstream::start();
    let mut gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    assert_eq!(gw.revoke_session("before", "t").await.status(), 200);

    let mut old = gw.start_upgrade();
    let socket = gw.dir.path().join("data").join("sessiongate-upgrade.sock");
    assert_eventually!(
        socket.exists(),
        Duration::from_secs(10),
        "new process not waiting for the listeners"
    );
    send_signal(old.id(), "QUIT");

    // Fresh connection per request, so both processes get some.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut acked = Vec::new();
    let mut i = 0;
    let exited = loop {
        if let Ok(Some(status)) = old.try_wait() {
            break status;
        }
        let sid = format!("handover-{i}");
        i += 1;
        if let Ok(resp) = client
            .delete(gw.admin_url(&format!("/v1/sessions/{sid}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
        {
            if resp.status() == 200 {
                acked.push(sid);
            }
        }
        assert!(i < 100_000, "old process never exited");
    };
    assert!(exited.success(), "old process exit: {exited}");

    let by_old = gw.log().matches(r#""action":"revoke_session""#).count();
    let by_new = gw
        .upgraded_log()
        .matches(r#""action":"revoke_session""#)
        .count();
    assert!(
        by_old > 1,
        "the old process took no revocation during the handover"
    );
    assert!(
        by_new > 0,
        "the new process took no revocation during the handover"
    );

    assert_eq!(
        gw.get("/", &hs256(&claims("u", "before"))).await.status(),
        401
    );
    for sid in &acked {
        assert_eq!(
            gw.get("/", &hs256(&claims("u", sid))).await.status(),
            401,
            "{sid} not enforced after upgrade"
        );
    }
    assert_eq!(
        gw.get("/", &hs256(&claims("u", "never-revoked")))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn unwritable_store_answers_503_and_enforcement_goes_on() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.store.push("busy_timeout_ms = 200".into());
    let gw = Gateway::start(cfg).await;
    assert_eq!(gw.revoke_session("earlier", "t").await.status(), 200);

    // Another process holds the SQLite write lock: the store cannot be written.
    let blocker = rusqlite::Connection::open(gw.db_path()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();

    let resp = gw.revoke_session("during", "t").await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "store_unavailable");
    let resp = gw.revoke_user("carol", None).await;
    assert_eq!(resp.status(), 503);

    // Not acknowledged, not applied; earlier revocations still enforced; reads work.
    assert_eq!(
        gw.get("/", &hs256(&claims("u", "during"))).await.status(),
        200
    );
    assert_eq!(
        gw.get("/", &hs256(&claims("carol", "c"))).await.status(),
        200
    );
    assert_eq!(
        gw.get("/", &hs256(&claims("u", "earlier"))).await.status(),
        401
    );
    let list = gw.admin_json("/v1/revocations").await;
    assert_eq!(list["revocations"].as_array().unwrap().len(), 1);
    assert!(gw.metric("sessiongate_store_errors_total").await >= 2.0);

    blocker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(gw.revoke_session("during", "t").await.status(), 200);
    assert_eq!(
        gw.get("/", &hs256(&claims("u", "during"))).await.status(),
        401
    );
}

#[tokio::test]
async fn expired_revocations_are_purged_from_memory_and_store() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.token.push("max_session_lifetime_s = 2".into());
    cfg.token.push("leeway_s = 0".into());
    cfg.store.push("purge_interval_s = 1".into());
    let gw = Gateway::start(cfg).await;
    let t = now();
    let tok = hs256(&json!({"sub": "u", "sid": "short", "iat": t}));
    assert_eq!(gw.revoke_session("short", "t").await.status(), 200);
    assert_eq!(gw.metric("sessiongate_revoked_sessions").await, 1.0);
    assert_eq!(gw.get("/", &tok).await.status(), 401);

    assert_eventually!(
        gw.metric("sessiongate_revoked_sessions").await == 0.0
            && gw.admin_json("/v1/revocations").await["revocations"]
                .as_array()
                .unwrap()
                .is_empty(),
        Duration::from_secs(15),
        "revocation not purged"
    );
    let conn = rusqlite::Connection::open(gw.db_path()).unwrap();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM revocations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);
    // The token it revoked can no longer be valid: refused as expired, never allowed.
    let body: Value = gw.get("/", &tok).await.json().await.unwrap();
    assert_eq!(body["error"], "token_expired");
    // The audit trail keeps the record.
    let audit = gw.admin_json("/v1/audit").await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let up = TestUpstream::start();
    let mut gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let url = gw.url("/slow");
    let tok = hs256(&claims("u", "s"));
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .get(url)
            .bearer_auth(tok)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    assert_eventually!(
        up.seen().iter().any(|s| s.path == "/slow"),
        Duration::from_secs(10),
        "request never reached the upstream"
    );
    gw.signal("TERM");
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        200,
        "in-flight request completed"
    );
    let status = gw.wait_exit(Duration::from_secs(15)).await.expect("exited");
    assert_eq!(status.code(), Some(0));
}
