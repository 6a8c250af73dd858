//! `sessions.max_per_user`: a user's session beyond the limit revokes the
//! one seen least recently, on one gateway and across a Redis cluster
//! (the count is the cluster's), audited as the gateway's `session_limit`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const WITHIN: Duration = Duration::from_secs(10);

fn limited(mut cfg: GatewayConfig) -> GatewayConfig {
    cfg.extra
        .push_str("\n[sessions]\nmax_per_user = 2\npersist_interval_s = 1\n");
    cfg
}

async fn limit_audited(gw: &Gateway, sid: &str) {
    let audited = gw
        .audit_has(|e| {
            e["actor"] == "gateway"
                && e["action"] == "revoke_session"
                && e["target"] == format!("session:{sid}")
                && e["reason"] == "session_limit"
        })
        .await;
    assert!(audited, "{sid} not audited as session_limit");
}

#[tokio::test]
async fn a_third_session_revokes_the_oldest() {
    let up = TestUpstream::start();
    let gw = Gateway::start(limited(GatewayConfig::new(up.addr))).await;
    let (first, second, third) = (
        hs256(&claims("lena", "lim-1")),
        hs256(&claims("lena", "lim-2")),
        hs256(&claims("lena", "lim-3")),
    );
    // Sightings a few milliseconds apart, so `last_seen` orders them.
    let tick = || tokio::time::sleep(Duration::from_millis(5));
    assert_eq!(gw.status("/", &first).await, 200);
    tick().await;
    assert_eq!(gw.status("/", &second).await, 200);
    tick().await;
    // The first is used again: the second is now the least recent.
    assert_eq!(gw.status("/", &first).await, 200);
    tick().await;
    let other_user = hs256(&claims("max", "lim-other"));
    assert_eq!(gw.status("/", &other_user).await, 200);
    assert_eq!(gw.status("/", &third).await, 200, "the new session goes on");
    assert_eventually!(
        gw.status("/", &second).await == 401,
        WITHIN,
        "the least recent was not revoked"
    );
    assert_eq!(gw.status("/", &first).await, 200);
    assert_eq!(gw.status("/", &third).await, 200);
    assert_eq!(
        gw.status("/", &other_user).await,
        200,
        "another user's sessions are not counted"
    );
    limit_audited(&gw, "lim-2").await;
}

#[tokio::test]
async fn the_limit_counts_the_clusters_sessions() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.store = redis.store_lines();
    let cfg = limited(cfg);
    let a = Gateway::start(cfg.clone()).await;
    let b = Gateway::start(cfg).await;
    let first = hs256(&claims("nora", "cl-lim-1"));
    let second = hs256(&claims("nora", "cl-lim-2"));
    let third = hs256(&claims("nora", "cl-lim-3"));
    assert_eq!(a.status("/", &first).await, 200);
    // A few milliseconds apart, so `last_seen` orders them.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(a.status("/", &second).await, 200);
    // B knows A's sessions once A has written them.
    assert_eventually!(
        {
            let v: Value = b.admin_json("/v1/users/nora/sessions").await;
            v["sessions"].as_array().map_or(0, |s| s.len()) == 2
        },
        WITHIN,
        "A's sessions never reached the store"
    );
    assert_eq!(b.status("/", &third).await, 200);
    assert_eventually!(
        a.status("/", &first).await == 401,
        WITHIN,
        "the oldest was not revoked on A"
    );
    assert_eq!(b.status("/", &first).await, 401, "nor on B");
    assert_eq!(a.status("/", &second).await, 200);
    assert_eq!(b.status("/", &third).await, 200);
    limit_audited(&b, "cl-lim-1").await;
}
