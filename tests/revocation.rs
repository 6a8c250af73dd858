//! Revoking sessions and users through the admin API: refused from the
//! acknowledgement on, other sessions untouched, cutoffs with an exempt
//! session, and no request of a revoked session forwarded under load.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn revoked_session_is_refused_others_are_not() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let laptop = hs256(&claims("alice", "laptop"));
    let phone = hs256(&claims("alice", "phone"));
    assert_eq!(gw.get("/", &phone).await.status(), 200);

    let resp = gw.revoke_session("phone", "lost phone").await;
    assert_eq!(resp.status(), 200);
    let ack: Value = resp.json().await.unwrap();
    assert_eq!(ack["session_id"], "phone");
    assert_eq!(ack["reason"], "lost phone");
    let revoked_at = ack["revoked_at"].as_str().unwrap().to_string();
    assert!(revoked_at.ends_with('Z'));

    let resp = gw.get("/", &phone).await;
    assert_eq!(resp.status(), 401);
    let www = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(www.contains(r#"error="invalid_token""#));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "session_revoked");
    assert_eq!(body["reason"], "lost phone");
    assert_eq!(body["revoked_at"], revoked_at);

    assert_eq!(gw.get("/", &laptop).await.status(), 200);

    // Idempotent: revoking again answers the first revocation.
    let again: Value = gw
        .revoke_session("phone", "again")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["revoked_at"], revoked_at);
    assert_eq!(again["reason"], "lost phone");
}

#[tokio::test]
async fn revoking_an_unseen_session_applies_when_it_shows_up() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    assert_eq!(
        gw.revoke_session("future-sid", "pre-emptive")
            .await
            .status(),
        200
    );
    let resp = gw.get("/", &hs256(&claims("bob", "future-sid"))).await;
    assert_eq!(resp.status(), 401);
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn user_cutoff_keeps_the_exempt_session_and_new_logins() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let t = now();
    let keep = hs256(&json!({"sub": "alice", "sid": "keep", "iat": t - 10, "exp": t + 3600}));
    let other = hs256(&json!({"sub": "alice", "sid": "other", "iat": t - 10, "exp": t + 3600}));
    let no_iat = hs256(&json!({"sub": "alice", "sid": "no-iat", "exp": t + 3600}));
    let bob = hs256(&json!({"sub": "bob", "sid": "bob-1", "iat": t - 10, "exp": t + 3600}));

    let resp = gw.revoke_user("alice", Some("keep")).await;
    assert_eq!(resp.status(), 200);
    let ack: Value = resp.json().await.unwrap();
    assert_eq!(ack["user_id"], "alice");
    assert_eq!(ack["except"], "keep");
    let not_before = ack["not_before"].as_str().unwrap().to_string();
    let nb = humantime::parse_rfc3339(&not_before)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        nb > t - 1 && nb <= now() + 1,
        "not_before is floor(now)+1: {not_before}"
    );

    assert_eq!(gw.get("/", &keep).await.status(), 200);
    let body: Value = gw.get("/", &other).await.json().await.unwrap();
    assert_eq!(body["error"], "session_revoked");
    assert_eq!(
        gw.get("/", &no_iat).await.status(),
        401,
        "unknown age fails closed"
    );
    assert_eq!(
        gw.get("/", &bob).await.status(),
        200,
        "other users untouched"
    );

    // A token minted in the same second as the revocation is refused too;
    // one issued at not_before (a new login) is accepted.
    let same_second =
        hs256(&json!({"sub": "alice", "sid": "same", "iat": nb - 1, "exp": nb + 3600}));
    assert_eq!(gw.get("/", &same_second).await.status(), 401);
    let fresh = hs256(&json!({"sub": "alice", "sid": "fresh", "iat": nb, "exp": nb + 3600}));
    assert_eq!(gw.get("/", &fresh).await.status(), 200);

    // Without except, every older session goes, the kept one included.
    let resp = gw.revoke_user("alice", None).await;
    let ack: Value = resp.json().await.unwrap();
    assert_eq!(ack["except"], Value::Null);
    assert_eq!(gw.get("/", &keep).await.status(), 401);
}

#[tokio::test]
async fn revocations_are_listed_newest_first() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    gw.revoke_session("s-a", "first").await;
    gw.revoke_user("carol", Some("s-c")).await;
    gw.revoke_session("s-b", "third").await;
    let list = gw.admin_json("/v1/revocations?limit=2").await;
    let items = list["revocations"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["kind"], "session");
    assert_eq!(items[0]["target"], "s-b");
    assert_eq!(items[0]["actor"], "admin");
    assert!(items[0]["expires_at"].is_string());
    assert_eq!(items[0]["except"], Value::Null);
    assert_eq!(items[1]["kind"], "user");
    assert_eq!(items[1]["target"], "carol");
    assert_eq!(items[1]["except"], "s-c");
}

/// Several keep-alive connections stream requests of one session while it
/// is revoked. Every request whose sending began after the client saw the
/// admin 200 must be refused (401, or its connection closed by the gateway)
/// and must never reach the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_request_is_forwarded_after_the_acknowledgement() {
    let up = TestUpstream::start();
    let gw = Arc::new(Gateway::start(GatewayConfig::new(up.addr)).await);
    let victim = hs256(&claims("alice", "streamed"));
    let bystander = hs256(&claims("bob", "bystander"));
    let stop = Arc::new(AtomicBool::new(false));
    let seq = Arc::new(AtomicU64::new(0));
    // (seq, sent_at, status)
    let log: Arc<Mutex<Vec<(u64, Instant, u16)>>> = Arc::default();

    let mut workers = Vec::new();
    for i in 0..6 {
        let (gw, stop, seq, log) = (gw.clone(), stop.clone(), seq.clone(), log.clone());
        let token = if i == 5 {
            bystander.clone()
        } else {
            victim.clone()
        };
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let mut bystander_ok = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let sent_at = Instant::now();
                let resp = client
                    .get(gw.url("/stream"))
                    .bearer_auth(&token)
                    .header("x-seq", n.to_string())
                    .send()
                    .await;
                // The revoked session's keep-alive connections are closed
                // by the gateway: a request on one fails (status 0).
                let status = match resp {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let _ = resp.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                if i == 5 {
                    assert_eq!(status, 200, "bystander refused");
                    bystander_ok += 1;
                } else {
                    log.lock().unwrap().push((n, sent_at, status));
                }
            }
            (i, bystander_ok)
        }));
    }
    // Let traffic flow, then revoke in the middle of it.
    assert_eventually!(
        log.lock().unwrap().len() >= 200,
        Duration::from_secs(20),
        "no traffic"
    );
    let resp = gw.revoke_session("streamed", "under load").await;
    assert_eq!(resp.status(), 200);
    let acked = Instant::now();
    let before = log.lock().unwrap().len();
    assert_eventually!(
        log.lock().unwrap().len() >= before + 200,
        Duration::from_secs(20),
        "no traffic after revocation"
    );
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let (i, bystander_ok) = w.await.unwrap();
        assert!(
            i != 5 || bystander_ok > 0,
            "the bystander kept being served"
        );
    }

    let log = log.lock().unwrap().clone();
    let after: Vec<_> = log.iter().filter(|(_, sent, _)| *sent > acked).collect();
    assert!(after.len() >= 200);
    assert!(
        after.iter().all(|(_, _, s)| *s == 401 || *s == 0),
        "a request sent after the 200 was allowed"
    );
    assert!(
        after.iter().any(|(_, _, s)| *s == 401),
        "later requests are refused with 401"
    );
    let late_seqs: std::collections::HashSet<String> =
        after.iter().map(|(n, _, _)| n.to_string()).collect();
    let leaked: Vec<_> = up
        .seen()
        .into_iter()
        .filter(|s| {
            s.headers
                .get("x-seq")
                .is_some_and(|n| late_seqs.contains(n))
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "{} requests sent after the 200 reached the upstream",
        leaked.len()
    );
    assert!(
        log.iter().any(|(_, sent, s)| *s == 200 && *sent < acked),
        "traffic was allowed before"
    );
}
