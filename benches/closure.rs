//! Revocation-to-close latency of idle WebSockets, measured at the client,
//! and memory per idle connection, on the release binary over loopback.
//!
//! 10,000 idle WebSockets across 1,000 sessions (10 each) go through the
//! gateway to an in-process WebSocket upstream. 100 sessions are revoked one
//! after another through the admin API; each of their 1,000 clients records
//! when its close frame arrived, counted from the moment its session's
//! DELETE was sent. The other 9,000 connections must stay open.
//!
//! Memory: gateway RSS before and after the 10,000 connections, in
//! `enforce` mode (connections registered under their session) and in
//! `monitor` mode (nothing registered), same run; the difference is what
//! the connection registry costs.
//!
//! Run: `cargo bench --bench closure` (as root, it raises its own file limit
//! with prlimit). `SG_BENCH_CONNS` and `SG_BENCH_SESSIONS` change the sizes.
//! Last figures: see README "Performance".

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

mod support;
use support::{
    env_or, free_port, hold_websocket, hs256_token, metrics_text, open_websocket, revoke, runtime,
    start_gateway, Proc,
};

const SECRET: &str = "closure-bench-secret";
const ADMIN: &str = "closure-bench-admin";

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// A WebSocket upstream that accepts and then just holds each connection.
/// Runs in its own process (this binary, re-executed), so that clients,
/// gateway and upstream each have their own file-descriptor budget.
fn serve_upstream() {
    runtime().block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap().port());
        loop {
            let Ok((s, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            hold_websocket(s);
        }
    });
}

fn start_upstream() -> (Proc, u16) {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("SG_CLOSURE_UPSTREAM", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (Proc(child), line.trim().parse().unwrap())
}

/// The file-descriptor limit of this process (each process here has its own).
fn fd_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3).and_then(|n| n.parse().ok()))
        .unwrap_or(1024)
}

async fn start(dir: &std::path::Path, upstream: u16, mode: &str) -> (Proc, u16, u16) {
    let (proxy, admin) = (free_port(), free_port());
    let config = dir.join(format!("{mode}.toml"));
    std::fs::write(
        &config,
        format!(
            "[listen]\nproxy = \"127.0.0.1:{proxy}\"\nadmin = \"127.0.0.1:{admin}\"\nthreads = 2\n\
             pid_file = \"{mode}.pid\"\nupgrade_socket = \"{mode}.sock\"\n\
             [upstream]\naddress = \"127.0.0.1:{upstream}\"\n\
             [[token.keys]]\nalgorithm = \"HS256\"\nsecret = \"{SECRET}\"\n\
             [enforcement]\nmode = \"{mode}\"\n[admin]\ntoken = \"{ADMIN}\"\n\
             [store]\npath = \"{mode}.db\"\n"
        ),
    )
    .unwrap();
    let (child, _) = start_gateway(&config, admin, Some(proxy), Duration::from_secs(60)).await;
    (child, proxy, admin)
}

fn token(session: usize) -> String {
    hs256_token(
        SECRET,
        &format!("user-{session}"),
        &format!("session-{session}"),
    )
}

type Closed = Arc<Mutex<HashMap<usize, Vec<(Instant, String)>>>>;

/// Opens `conns` WebSockets (session = i % sessions); each task records when
/// its connection closes.
async fn open_all(proxy: u16, conns: usize, sessions: usize, closed: Closed) {
    let tokens: Vec<String> = (0..sessions).map(token).collect();
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(conns);
    for i in 0..conns {
        let session = i % sessions;
        let tok = tokens[session].clone();
        let closed = closed.clone();
        let ready = ready_tx.clone();
        let permit = sem.clone().acquire_owned().await.unwrap();
        tokio::spawn(async move {
            let mut ws = open_websocket(proxy, &tok).await;
            drop(permit);
            ready.send(()).await.unwrap();
            let how = loop {
                match ws.next().await {
                    Some(Ok(Message::Close(f))) => break format!("close frame {f:?}"),
                    None => break "eof".to_string(),
                    Some(Err(e)) => break format!("error {e}"),
                    _ => {}
                }
            };
            closed
                .lock()
                .unwrap()
                .entry(session)
                .or_default()
                .push((Instant::now(), how));
        });
    }
    for _ in 0..conns {
        ready_rx.recv().await.unwrap();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if std::env::var_os("SG_CLOSURE_UPSTREAM").is_some() {
        return serve_upstream();
    }
    // The gateway holds two sockets per WebSocket (client and upstream side).
    let fit = (fd_limit().saturating_sub(200) / 2 / 10) * 10;
    let wanted: usize = env_or("SG_BENCH_CONNS", 10_000);
    let conns = wanted.min(fit);
    if conns < wanted {
        println!(
            "file limit {}: {conns} connections instead of {wanted}",
            fd_limit()
        );
    }
    let sessions: usize = env_or("SG_BENCH_SESSIONS", conns / 10);
    let revoked = sessions / 10;
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (upstream, up) = start_upstream();

        // Memory in monitor mode: no registration.
        let (monitor, m_proxy, _) = start(dir.path(), up, "monitor").await;
        let before = rss_kib(monitor.0.id());
        let sink: Closed = Arc::default();
        open_all(m_proxy, conns, sessions, sink.clone()).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let monitor_lost: usize = sink.lock().unwrap().values().map(Vec::len).sum();
        let monitor_per_conn = (rss_kib(monitor.0.id()) - before) as f64 * 1024.0 / conns as f64;
        drop(monitor);
        drop(upstream);

        let (_upstream, up) = start_upstream();
        let (gw, proxy, admin) = start(dir.path(), up, "enforce").await;
        let before = rss_kib(gw.0.id());
        let closed: Closed = Arc::default();
        let t = Instant::now();
        open_all(proxy, conns, sessions, closed.clone()).await;
        let opened_in = t.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let enforce_per_conn = (rss_kib(gw.0.id()) - before) as f64 * 1024.0 / conns as f64;

        // pingora 0.9 tears down a few upgraded connections right after the
        // 101 when the upstream answers before the request's empty body is
        // queued (pingora issue 946): count them, leave them out.
        let lost_in_setup: HashMap<usize, usize> = closed
            .lock()
            .unwrap()
            .iter()
            .map(|(s, v)| (*s, v.len()))
            .collect();
        let setup_lost: usize = lost_in_setup.values().sum();
        let client = reqwest::Client::new();
        let mut sent_at = HashMap::new();
        for s in 0..revoked {
            sent_at.insert(s, Instant::now());
            revoke(&client, admin, ADMIN, &format!("session-{s}")).await;
        }
        let per_session = conns / sessions;
        let expected = revoked * per_session
            + setup_lost
            - (0..revoked).map(|s| lost_in_setup.get(&s).copied().unwrap_or(0)).sum::<usize>();
        let deadline = Instant::now() + Duration::from_secs(30);
        while closed.lock().unwrap().values().map(Vec::len).sum::<usize>() < expected {
            assert!(Instant::now() < deadline, "not every revoked connection closed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let closed = closed.lock().unwrap().clone();
        let first_delete = sent_at.values().min().copied().unwrap();
        let wrongly_closed: usize = closed
            .iter()
            .filter(|(s, _)| **s >= revoked)
            .flat_map(|(_, v)| v.iter())
            .filter(|(t, _)| *t >= first_delete)
            .count();
        let mut lat: Vec<f64> = closed
            .iter()
            .filter(|(s, _)| **s < revoked)
            .flat_map(|(s, v)| {
                let sent = sent_at[s];
                v.iter()
                    .filter(move |(t, _)| *t >= sent)
                    .map(move |(t, _)| t.duration_since(sent).as_secs_f64() * 1e3)
            })
            .collect();
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let metrics = metrics_text(admin).await;
        let inside: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("sessiongate_revocation_close_seconds_"))
            .collect();

        println!(
            "{conns} idle WebSockets over {sessions} sessions (opened in {:.1} s); revoked {revoked} sessions",
            opened_in.as_secs_f64()
        );
        println!(
            "revocation-to-close at the client, {} connections: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            lat.len(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.9),
            percentile(&lat, 0.99),
            lat[lat.len() - 1]
        );
        println!("connections of other sessions closed by the revocations: {wrongly_closed}");
        println!(
            "upgraded connections torn down by pingora right after the 101 (pingora issue 946): enforce {setup_lost}, monitor {monitor_lost}"
        );
        println!(
            "gateway RSS per idle WebSocket (client side + upstream side): enforce {:.0} B, monitor {:.0} B, registry share {:.0} B",
            enforce_per_conn,
            monitor_per_conn,
            enforce_per_conn - monitor_per_conn
        );
        for l in inside.iter().filter(|l| l.contains("_sum") || l.contains("_count")) {
            println!("  {l}");
        }
        drop(gw);
    });
}
