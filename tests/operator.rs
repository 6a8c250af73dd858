//! The operator files: `config/alerts.yml` checked and unit-tested with
//! `promtool`; every query of `config/dashboards/sessiongate.json` run on a
//! real Prometheus scraping a real gateway (each must parse and return
//! data); `config/sessiongate.service` verified by `systemd-analyze` where
//! systemd is installed. Prometheus (Debian's `prometheus`) is required in
//! CI.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tool` on PATH; otherwise `SKIPPED:` (a failure in CI when `required`).
fn tool(name: &str, required: bool) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if required && std::env::var_os("CI").is_some() {
            panic!("{name} is required in CI (apt-get install prometheus)");
        }
        eprintln!("\nSKIPPED: {name} not found\n");
    }
    found
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_check_and_fire_as_named() {
    let Some(promtool) = tool("promtool", true) else {
        return;
    };
    let out = run_ok(
        Command::new(&promtool)
            .args(["check", "rules"])
            .arg(root().join("config/alerts.yml")),
    );
    assert!(out.contains("SUCCESS: 5 rules found"), "{out}");
    let out = run_ok(
        Command::new(&promtool)
            .current_dir(root().join("tests/operator"))
            .args(["test", "rules", "alerts.test.yml"]),
    );
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn the_systemd_unit_verifies() {
    let Some(analyze) = tool("systemd-analyze", false) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(root().join("config/sessiongate.service"))
        .unwrap()
        .replace("/usr/local/bin/sessiongate", binary());
    let path = dir.path().join("sessiongate.service");
    std::fs::write(&path, unit).unwrap();
    run_ok(Command::new(analyze).arg("verify").arg(&path));
}

struct Prometheus(std::process::Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        send_signal(self.0.id(), "TERM");
        let _ = self.0.wait();
    }
}

/// The answer of Prometheus to `expr`; `Null` while it is not up yet.
async fn query(client: &reqwest::Client, base: &str, expr: &str) -> Value {
    let sent = client
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await;
    match sent {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

fn exprs(dashboard: &Path) -> Vec<(String, String)> {
    let d: Value = serde_json::from_str(&std::fs::read_to_string(dashboard).unwrap()).unwrap();
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |t| (title.clone(), t["expr"].as_str().unwrap().to_string()))
        })
        .collect()
}

#[tokio::test]
async fn every_dashboard_query_returns_data_from_a_real_gateway() {
    let Some(prometheus) = tool("prometheus", true) else {
        return;
    };
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    // Some traffic: allowed, refused, a revocation.
    let token = hs256(&claims("tess", "op-1"));
    assert_eq!(gw.status("/", &token).await, 200);
    assert_eq!(reqwest::get(gw.url("/")).await.unwrap().status(), 401);
    assert_eq!(gw.revoke_session("op-1", "").await.status(), 200);

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: sessiongate\n    \
             authorization:\n      credentials: {ADMIN_TOKEN}\n    static_configs:\n      - targets: ['{}']\n",
            gw.admin
        ),
    )
    .unwrap();
    let _prom = Prometheus(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    // Ready once it has scraped the gateway a few times (rates need two
    // samples).
    assert_eventually!(
        {
            let v = query(
                &client,
                &base,
                "count_over_time(up{job=\"sessiongate\"}[1m])",
            )
            .await;
            v["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(0.0)
                >= 3.0
        },
        Duration::from_secs(60),
        "prometheus never scraped the gateway"
    );
    let exprs = exprs(&root().join("config/dashboards/sessiongate.json"));
    assert!(
        exprs.len() >= 15,
        "the dashboard has {} queries",
        exprs.len()
    );
    for (title, expr) in &exprs {
        let v = query(&client, &base, expr).await;
        assert_eq!(v["status"], "success", "{title}: {expr}: {v}");
        let result = v["data"]["result"].as_array().map_or(0, |r| r.len());
        assert!(result > 0, "{title}: {expr} returned no data: {v}");
    }
}
