//! The SQLite store on its own: sharing a file between processes, purging.
use super::*;

fn audit(target: &str) -> AuditEntry {
    AuditEntry {
        at_ms: 1_000,
        actor: "admin".into(),
        actor_ip: Some("127.0.0.1".into()),
        action: Action::RevokeSession,
        target: target.into(),
        reason: "test".into(),
    }
}

fn session(sid: &str, at_ms: i64) -> SessionRevocation {
    SessionRevocation {
        session_id: sid.into(),
        revoked_at_ms: at_ms,
        expires_at: at_ms / 1000 + 3600,
        reason: "r".into(),
        actor: "admin".into(),
    }
}

#[tokio::test]
async fn revocations_survive_reopen_and_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let a = Embedded::open(&path, Duration::from_secs(5)).unwrap();
    let b = Embedded::open(&path, Duration::from_secs(5)).unwrap();
    let start = b.load(0, Arc::new(|_| {})).await.unwrap();
    assert_eq!(start.count, 0);

    let first = a
        .revoke_session(session("s1", 5_000), audit("session:s1"))
        .await
        .unwrap();
    let again = a
        .revoke_session(session("s1", 9_000), audit("session:s1"))
        .await
        .unwrap();
    assert_eq!(first, again, "second revocation answers the first");

    let changes = b
        .changes_since(&start.cursor, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(changes.revocations.len(), 1);
    assert!(b
        .changes_since(&changes.cursor, Duration::ZERO)
        .await
        .unwrap()
        .revocations
        .is_empty());

    drop(a);
    let c = Embedded::open(&path, Duration::from_secs(5)).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    c.load(0, Arc::new(move |r| sink.lock().unwrap().push(r)))
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Revocation::Session(session("s1", 5_000))]
    );
    assert_eq!(c.audit(10, None).await.unwrap().len(), 2);
    assert_eq!(c.purge_expired(10_000).await.unwrap(), 1);
    assert_eq!(c.load(0, Arc::new(|_| {})).await.unwrap().count, 0);
}

#[tokio::test]
async fn the_audit_trail_keeps_the_newest_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = Embedded::open(&dir.path().join("a.db"), Duration::from_secs(5))
        .unwrap()
        .with_audit_max(3);
    for i in 0..5 {
        store
            .append_audit(audit(&format!("session:t{i}")))
            .await
            .unwrap();
    }
    store.purge_expired(0).await.unwrap();
    let kept: Vec<String> = store
        .audit(100, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.target)
        .collect();
    assert_eq!(kept, ["session:t4", "session:t3", "session:t2"]);
}
