//! One conformance suite for every store: each rule is run against the
//! embedded SQLite store and a real Redis, through the `Store` trait, and
//! both must give the same answers. The rules are written once, above the
//! stores (`UserCutoff::supersedes`, `SessionRecord::merged`, the retention
//! of `revocation::Retention`); this suite holds each backend to them.
//! Redis is started on a free loopback port (required in CI).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::RedisServer;
use sessiongate::audit::{Action, AuditEntry};
use sessiongate::revocation::{Revocation, SessionRevocation, UserCutoff};
use sessiongate::store::{
    Embedded, RedisStore, SessionRecord, Store, StoreError, USER_SESSIONS_MAX,
};

/// The stores under test, each with what keeps it alive.
struct Backends {
    stores: Vec<(&'static str, Arc<dyn Store>)>,
    _dir: tempfile::TempDir,
    _redis: Option<RedisServer>,
}

fn backends() -> Backends {
    let dir = tempfile::tempdir().unwrap();
    let embedded: Arc<dyn Store> =
        Arc::new(Embedded::open(&dir.path().join("s.db"), Duration::from_secs(5)).unwrap());
    let mut stores = vec![("sqlite", embedded)];
    let redis = RedisServer::start();
    if let Some(r) = &redis {
        let store: Arc<dyn Store> = Arc::new(
            RedisStore::new(sessiongate::store::redis::RedisSettings {
                url: r.url(),
                ca_file: None,
                prefix: "conf:".into(),
                stream_maxlen: 10_000,
                audit_maxlen: 10_000,
                session_ttl: Duration::from_secs(3600),
            })
            .unwrap(),
        );
        stores.push(("redis", store));
    }
    Backends {
        stores,
        _dir: dir,
        _redis: redis,
    }
}

fn now_s() -> i64 {
    common::now()
}

fn session(sid: &str, at_ms: i64, expires_at: i64, reason: &str) -> SessionRevocation {
    SessionRevocation {
        session_id: sid.into(),
        revoked_at_ms: at_ms,
        expires_at,
        reason: reason.into(),
        actor: "admin".into(),
    }
}

fn cutoff(user: &str, not_before: i64, at_ms: i64, except: Option<&str>) -> UserCutoff {
    UserCutoff {
        user_id: user.into(),
        not_before,
        except: except.map(String::from),
        revoked_at_ms: at_ms,
        expires_at: now_s() + 3600,
        reason: "r".into(),
        actor: "admin".into(),
    }
}

fn audit(at_ms: i64, target: &str) -> AuditEntry {
    AuditEntry {
        at_ms,
        actor: "admin".into(),
        actor_ip: None,
        action: Action::RevokeSession,
        target: target.into(),
        reason: String::new(),
    }
}

/// Every revocation `load` hands over.
async fn loaded(store: &Arc<dyn Store>, now: i64) -> Vec<Revocation> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    store
        .load(now, Arc::new(move |r| sink.lock().unwrap().push(r)))
        .await
        .unwrap();
    let v = got.lock().unwrap().clone();
    v
}

fn record(sid: &str, user: &str, first: i64, last: i64, requests: u64, ip: &str) -> SessionRecord {
    SessionRecord {
        session_id: sid.into(),
        user_id: Some(user.into()),
        ip: ip.into(),
        user_agent: format!("agent-{ip}"),
        country: Some("CH".into()),
        city: None,
        latitude: Some(47.37),
        longitude: Some(8.54),
        first_seen_ms: first,
        last_seen_ms: last,
        requests,
        iat: Some(first / 1000),
        exp: Some(last / 1000 + 600),
        new_location: false,
        confirmed: false,
        suspicious: None,
    }
}

async fn for_each<F, Fut>(f: F)
where
    F: Fn(&'static str, Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    let b = backends();
    assert!(
        b.stores.len() == 2 || std::env::var_os("SESSIONGATE_REQUIRE_REDIS").is_none(),
        "Redis is required"
    );
    for (name, store) in &b.stores {
        if let Err(e) = f(name, store.clone()).await {
            panic!("{name}: {e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_revocation_of_a_session_wins() {
    for_each(|name, store| async move {
        let t = now_s();
        let first = store
            .revoke_session(
                session("s1", 1_000, t + 600, "lost"),
                audit(1_000, "session:s1"),
            )
            .await?;
        assert_eq!(first.revoked_at_ms, 1_000, "{name}");
        let again = store
            .revoke_session(
                session("s1", 2_000, t + 900, "other"),
                audit(2_000, "session:s1"),
            )
            .await?;
        assert_eq!(
            (again.revoked_at_ms, again.reason.as_str()),
            (1_000, "lost"),
            "{name}"
        );
        let all = loaded(&store, t).await;
        let n = all
            .iter()
            .filter(|r| matches!(r, Revocation::Session(s) if s.session_id == "s1"))
            .count();
        assert!(n >= 1, "{name}: the revocation is loaded");
        // Both attempts are audited.
        let trail = store.audit(10, None).await?;
        assert_eq!(
            trail.iter().filter(|e| e.target == "session:s1").count(),
            2,
            "{name}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_later_cutoff_wins() {
    for_each(|name, store| async move {
        let t = now_s();
        let later = store
            .revoke_user(
                cutoff("alice", t + 20, 2_000, Some("keep")),
                audit(2_000, "user:alice"),
            )
            .await?;
        assert_eq!(later.not_before, t + 20, "{name}");
        // An earlier cutoff, taken afterwards, does not replace it.
        let answer = store
            .revoke_user(
                cutoff("alice", t + 10, 3_000, None),
                audit(3_000, "user:alice"),
            )
            .await?;
        assert_eq!(
            (answer.not_before, answer.except.as_deref()),
            (t + 20, Some("keep")),
            "{name}: the store answers the cutoff in force"
        );
        // The same moment with another exemption does.
        let same = store
            .revoke_user(
                cutoff("alice", t + 20, 2_000, None),
                audit(4_000, "user:alice"),
            )
            .await?;
        assert_eq!(same.except, None, "{name}");
        // What a gateway loads enforces the one in force.
        let set = sessiongate::revocation::RevocationSet::new();
        for r in loaded(&store, t).await {
            set.apply(&r);
        }
        assert!(
            set.check("keep", Some("alice"), Some(t + 15)).is_some(),
            "{name}"
        );
        assert!(
            set.check("x", Some("alice"), Some(t + 20)).is_none(),
            "{name}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_revocations_are_not_loaded_and_are_purged() {
    for_each(|name, store| async move {
        let t = now_s();
        store
            .revoke_session(
                session("old", 1_000, t - 1, ""),
                audit(1_000, "session:old"),
            )
            .await?;
        store
            .revoke_session(
                session("live", 1_000, t + 3600, ""),
                audit(1_000, "session:live"),
            )
            .await?;
        let later = t;
        let ids: Vec<String> = loaded(&store, later)
            .await
            .into_iter()
            .filter_map(|r| match r {
                Revocation::Session(s) => Some(s.session_id),
                _ => None,
            })
            .collect();
        assert!(ids.contains(&"live".to_string()), "{name}");
        assert!(
            !ids.contains(&"old".to_string()),
            "{name}: expired, not loaded"
        );
        store.purge_expired(later).await?;
        let recent = store
            .recent_revocations(100, sessiongate::clock::now_s())
            .await?;
        assert!(
            recent
                .iter()
                .all(|r| !matches!(r, Revocation::Session(s) if s.session_id == "old"))
                || name == "redis",
            "{name}: purged from the list"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_writing_one_session_are_merged() {
    for_each(|name, store| async move {
        // Gateway A saw the session from 1 000 to 5 000, 7 requests; B from
        // 2 000 to 9 000 (later, another address), 3 requests.
        let a = record("m1", "bob", 1_000, 5_000, 7, "198.51.100.1");
        let mut b = record("m1", "bob", 2_000, 9_000, 3, "203.0.113.9");
        b.new_location = true;
        let want = a.merged(&b);
        store.save_sessions(vec![a.clone()]).await?;
        store.save_sessions(vec![b.clone()]).await?;
        assert_eq!(store.session("m1").await?.as_ref(), Some(&want), "{name}");
        // The older sighting arriving late changes nothing but the counts.
        store.save_sessions(vec![a.clone()]).await?;
        assert_eq!(store.session("m1").await?.as_ref(), Some(&want), "{name}");
        assert_eq!(want.first_seen_ms, 1_000);
        assert_eq!(want.last_seen_ms, 9_000);
        assert_eq!(want.requests, 7);
        assert_eq!(want.ip, "203.0.113.9");
        assert!(want.new_location);
        // A suspicious mark from the older sighting sticks; the first wins.
        let mut marked = record("m2", "bob", 1_000, 5_000, 1, "198.51.100.1");
        marked.suspicious = Some("device_changed".into());
        let mut later = record("m2", "bob", 2_000, 9_000, 2, "203.0.113.9");
        store.save_sessions(vec![marked.clone()]).await?;
        store.save_sessions(vec![later.clone()]).await?;
        let got = store.session("m2").await?.unwrap();
        assert_eq!(got.suspicious.as_deref(), Some("device_changed"), "{name}");
        later.suspicious = Some("impossible_travel".into());
        later.last_seen_ms = 10_000;
        store.save_sessions(vec![later.clone()]).await?;
        let got = store.session("m2").await?.unwrap();
        assert_eq!(
            got.suspicious.as_deref(),
            Some("device_changed"),
            "{name}: the first mark wins"
        );
        assert_eq!(got, marked.merged(&later));
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_sessions_are_listed_newest_first_and_bounded() {
    for_each(|name, store| async move {
        let n = USER_SESSIONS_MAX + 5;
        let records: Vec<SessionRecord> = (0..n)
            .map(|i| {
                record(
                    &format!("u{i}"),
                    "carol",
                    1_000,
                    10_000 + i as i64,
                    1,
                    "192.0.2.1",
                )
            })
            .collect();
        store.save_sessions(records).await?;
        store
            .save_sessions(vec![record("other", "dave", 1, 99_999, 1, "192.0.2.2")])
            .await?;
        let list = store.user_sessions("carol").await?;
        assert_eq!(list.len(), USER_SESSIONS_MAX, "{name}");
        assert_eq!(
            list[0].session_id,
            format!("u{}", n - 1),
            "{name}: newest first"
        );
        assert!(
            list.windows(2)
                .all(|w| w[0].last_seen_ms >= w[1].last_seen_ms),
            "{name}: ordered"
        );
        assert!(
            list.iter().all(|s| s.user_id.as_deref() == Some("carol")),
            "{name}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_is_newest_first_and_filtered() {
    for_each(|name, store| async move {
        for i in 0..5 {
            store
                .append_audit(audit(1_000 * (i + 1), &format!("session:a{i}")))
                .await?;
        }
        let last3 = store.audit(3, None).await?;
        let targets: Vec<&str> = last3.iter().map(|e| e.target.as_str()).collect();
        assert_eq!(
            targets,
            ["session:a4", "session:a3", "session:a2"],
            "{name}"
        );
        let since = store.audit(100, Some(3_000)).await?;
        assert_eq!(since.len(), 3, "{name}: at or after 3 000 ms");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_log_hands_over_what_came_after_the_cursor() {
    for_each(|name, store| async move {
        let t = now_s();
        store
            .revoke_session(
                session("c0", 1_000, t + 600, ""),
                audit(1_000, "session:c0"),
            )
            .await?;
        let start = store.load(t, Arc::new(|_| {})).await?;
        store
            .revoke_session(
                session("c1", 2_000, t + 600, ""),
                audit(2_000, "session:c1"),
            )
            .await?;
        store
            .revoke_user(cutoff("erin", t, 3_000, None), audit(3_000, "user:erin"))
            .await?;
        let changes = store
            .changes_since(&start.cursor, Duration::from_millis(200))
            .await?;
        assert!(!changes.reload, "{name}");
        let got: Vec<String> = changes
            .revocations
            .iter()
            .map(|r| match r {
                Revocation::Session(s) => s.session_id.clone(),
                Revocation::User(u) => u.user_id.clone(),
            })
            .collect();
        assert_eq!(
            got,
            ["c1", "erin"],
            "{name}: in order, nothing before the cursor"
        );
        let none = store
            .changes_since(&changes.cursor, Duration::from_millis(100))
            .await?;
        assert!(none.revocations.is_empty(), "{name}: the cursor moved on");
        let recent = store
            .recent_revocations(2, sessiongate::clock::now_s())
            .await?;
        assert_eq!(recent.len(), 2, "{name}: limit");
        assert!(
            matches!(&recent[0], Revocation::User(u) if u.user_id == "erin"),
            "{name}: newest first"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_import_follows_the_same_rules() {
    for_each(|name, store| async move {
        let t = now_s();
        store
            .revoke_session(
                session("b0", 1_000, t + 600, "first"),
                audit(1_000, "session:b0"),
            )
            .await?;
        let batch: Vec<_> = ["b0", "b1", "b2"]
            .iter()
            .map(|id| {
                (
                    session(id, 2_000, t + 600, "import"),
                    audit(2_000, &format!("session:{id}")),
                )
            })
            .collect();
        assert_eq!(
            store.import_sessions(batch).await?,
            2,
            "{name}: b0 was revoked already"
        );
        let trail = store.audit(100, None).await?;
        assert_eq!(trail.len(), 4, "{name}: every request audited");
        let b0: Vec<Revocation> = loaded(&store, t)
            .await
            .into_iter()
            .filter(|r| matches!(r, Revocation::Session(s) if s.session_id == "b0"))
            .collect();
        assert!(
            b0.iter()
                .all(|r| matches!(r, Revocation::Session(s) if s.reason == "first")),
            "{name}: the first revocation wins"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cutoff_that_does_not_win_writes_nothing_but_its_audit_entry() {
    for_each(|name, store| async move {
        let t = now_s();
        store
            .revoke_user(
                cutoff("frank", t + 20, 2_000, None),
                audit(2_000, "user:frank"),
            )
            .await?;
        for i in 0..3 {
            store
                .revoke_user(
                    cutoff("frank", t + 10, 3_000 + i, None),
                    audit(3_000 + i, "user:frank"),
                )
                .await?;
        }
        let cutoffs: Vec<UserCutoff> = loaded(&store, t)
            .await
            .into_iter()
            .filter_map(|r| match r {
                Revocation::User(u) if u.user_id == "frank" => Some(u),
                _ => None,
            })
            .collect();
        assert_eq!(cutoffs.len(), 1, "{name}: one cutoff held");
        assert_eq!(cutoffs[0].not_before, t + 20, "{name}");
        assert_eq!(
            store.audit(100, None).await?.len(),
            4,
            "{name}: all audited"
        );
        Ok(())
    })
    .await;
}

/// The audit trail read as an outbox: a reader starts at the head, reads
/// what came after its durable cursor in order, and one holder of the
/// lease delivers until it lapses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_is_an_outbox_with_a_cursor_and_a_lease() {
    for_each(|name, store| async move {
        assert_eq!(store.audit_head().await?, "", "{name}: empty trail");
        assert!(store.audit_after("", 10).await?.is_empty());
        store.append_audit(audit(1_000, "session:o1")).await?;
        let head = store.audit_head().await?;
        for i in 2..=4 {
            store
                .append_audit(audit(1_000 * i, &format!("session:o{i}")))
                .await?;
        }
        let after = store.audit_after(&head, 2).await?;
        let targets: Vec<&str> = after.iter().map(|(_, e)| e.target.as_str()).collect();
        assert_eq!(
            targets,
            ["session:o2", "session:o3"],
            "{name}: oldest first, bounded"
        );
        let rest = store.audit_after(&after[1].0, 10).await?;
        assert_eq!(rest.len(), 1, "{name}");
        assert_eq!(rest[0].1.target, "session:o4");
        assert_eq!(
            store.audit_after("", 10).await?.len(),
            4,
            "{name}: from the start"
        );

        assert_eq!(store.cursor("hook").await?, None, "{name}");
        store.set_cursor("hook", &after[1].0).await?;
        assert_eq!(
            store.cursor("hook").await?.as_deref(),
            Some(after[1].0.as_str())
        );

        let ttl = Duration::from_millis(300);
        let now = common::now() * 1000;
        assert!(
            store.lead("hooks", "a", ttl, now).await?,
            "{name}: free lease"
        );
        assert!(
            !store.lead("hooks", "b", ttl, now).await?,
            "{name}: held by a"
        );
        assert!(
            store.lead("hooks", "a", ttl, now).await?,
            "{name}: renewed by a"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        let later = common::now() * 1000 + 400;
        assert!(
            store.lead("hooks", "b", ttl, later).await?,
            "{name}: lapsed, taken by b"
        );
        Ok(())
    })
    .await;
}
