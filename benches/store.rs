//! Durable revocation throughput and start-up time, measured on the release
//! binary over loopback, each next to its floor measured in the same run:
//!
//! - revocations per second through `DELETE /v1/sessions/{sid}`, one client
//!   (sequential) and 32 clients (concurrent), against the rate of bare
//!   SQLite commits (WAL, synchronous=FULL) on the same disk;
//! - time from process start to `/readyz` 200 with 1 million revocations in
//!   the store, against the time SQLite alone takes to read those rows.
//!
//! Run: `cargo bench --bench store` (SG_BENCH_ROWS=N changes the 1 M).
//! Last figures: see README "Performance".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;
use support::{env_or, free_port, revoke, runtime, start_gateway, Proc};

const ADMIN_TOKEN: &str = "bench-admin-token";

fn write_config(dir: &std::path::Path, proxy: u16, admin: u16) -> std::path::PathBuf {
    let path = dir.join("gw.toml");
    std::fs::write(
        &path,
        format!(
            "[listen]\nproxy = \"127.0.0.1:{proxy}\"\nadmin = \"127.0.0.1:{admin}\"\n\
             [upstream]\naddress = \"127.0.0.1:9\"\n\
             [[token.keys]]\nalgorithm = \"HS256\"\nsecret = \"bench\"\n\
             [admin]\ntoken = \"{ADMIN_TOKEN}\"\n[store]\npath = \"data/sg.db\"\n"
        ),
    )
    .unwrap();
    path
}

async fn start(dir: &std::path::Path) -> (Proc, u16, Duration) {
    let (proxy, admin) = (free_port(), free_port());
    let config = write_config(dir, proxy, admin);
    let (child, ready) = start_gateway(&config, admin, None, Duration::from_secs(120)).await;
    (child, admin, ready)
}

fn sqlite_commits_per_s(dir: &std::path::Path, n: usize) -> f64 {
    let conn = rusqlite::Connection::open(dir.join("floor.db")).unwrap();
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    let t = Instant::now();
    for i in 0..n {
        conn.execute("INSERT INTO t (v) VALUES (?1)", [format!("v{i}")])
            .unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn seed(dir: &std::path::Path, rows: usize) -> Duration {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    // Let the gateway create its schema, then bulk-load rows into it.
    let store = sessiongate::store::Embedded::open(&dir.join("data/sg.db"), Duration::from_secs(5))
        .unwrap();
    drop(store);
    let mut conn = rusqlite::Connection::open(dir.join("data/sg.db")).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut stmt = tx
            .prepare(
                "INSERT INTO revocations (kind, target, at_ms, expires_at, reason, actor)
                 VALUES ('session', ?1, 0, 4102444800, '', 'admin')",
            )
            .unwrap();
        for i in 0..rows {
            stmt.execute([format!("seeded-session-{i:09}")]).unwrap();
        }
    }
    tx.commit().unwrap();
    // The floor: SQLite alone reading the rows the gateway loads.
    let t = Instant::now();
    let mut stmt = conn
        .prepare("SELECT seq, kind, target, at_ms, not_before, except_sid, expires_at, reason, actor FROM revocations WHERE expires_at > 0 ORDER BY seq")
        .unwrap();
    let mut rows_read = 0;
    let mut q = stmt.query([]).unwrap();
    while let Some(r) = q.next().unwrap() {
        let _: String = r.get(2).unwrap();
        rows_read += 1;
    }
    assert_eq!(rows_read, rows);
    t.elapsed()
}

async fn revoke_rate(admin: u16, clients: usize, total: usize, tag: &str) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let next = next.clone();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                revoke(&client, admin, ADMIN_TOKEN, &format!("{tag}-{i}")).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    total as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; nothing to run quickly.
    }
    let rows: usize = env_or("SG_BENCH_ROWS", 1_000_000);
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let floor = sqlite_commits_per_s(dir.path(), 500);
        let (gw, admin, _) = start(dir.path()).await;
        let seq = revoke_rate(admin, 1, 1000, "seq").await;
        let conc = revoke_rate(admin, 32, 4000, "conc").await;
        drop(gw);
        println!("revocations/s sequential: {seq:.0}  concurrent(32): {conc:.0}  bare SQLite commits/s: {floor:.0}");
        println!("  ratio sequential/floor: {:.2}  concurrent/floor: {:.2}", seq / floor, conc / floor);

        let dir = tempfile::tempdir().unwrap();
        let read = seed(dir.path(), rows);
        let (gw, _, ready) = start(dir.path()).await;
        println!(
            "start-up to /readyz with {rows} revocations: {:.2} s  (SQLite read alone: {:.2} s, ratio {:.1})",
            ready.as_secs_f64(),
            read.as_secs_f64(),
            ready.as_secs_f64() / read.as_secs_f64()
        );
        let rss = std::fs::read_to_string(format!("/proc/{}/status", gw.0.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().to_string()))
            .unwrap_or_default();
        println!("gateway RSS once ready: {rss}");
    });
}
