//! JSON logs: one object per line with `time`, `level`, `target`,
//! `message` and the event's fields; the access log carries who and what,
//! never the token.

mod common;

use common::*;
use serde_json::Value;

#[tokio::test]
async fn json_lines_and_an_access_log_without_tokens() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.extra.push_str("\n[log]\nformat = \"json\"\n");
    cfg.env
        .push(("RUST_LOG".into(), "info,access=debug".into()));
    let gw = Gateway::start(cfg).await;
    let token = hs256(&claims("sara", "log-1"));
    assert_eq!(gw.status("/ok", &token).await, 200);
    assert_eq!(
        reqwest::get(gw.url("/refused")).await.unwrap().status(),
        401
    );
    let access = |log: &str| {
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "access")
            .collect::<Vec<_>>()
    };
    assert_eventually!(
        access(&gw.log()).len() >= 2,
        std::time::Duration::from_secs(5),
        "no access log"
    );
    let log = gw.log();
    for line in log.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in ["time", "level", "target", "message"] {
            assert!(v.get(key).is_some(), "no {key}: {line}");
        }
    }
    assert!(!log.contains(&token), "a token in the log");
    let lines = access(&log);
    let ok = lines
        .iter()
        .find(|v| v["path"] == "/ok")
        .expect("the allowed request");
    assert_eq!(ok["session_id"], "log-1");
    assert_eq!(ok["user_id"], "sara");
    assert_eq!(ok["decision"], "allowed");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["client_ip"], "127.0.0.1");
    assert!(ok["duration_us"].as_u64().is_some());
    let refused = lines
        .iter()
        .find(|v| v["path"] == "/refused")
        .expect("the refused request");
    assert_eq!(refused["decision"], "missing_token");
    assert_eq!(refused["status"], 401);
}

#[test]
fn log_format_is_checked() {
    assert_config_refused(
        GatewayConfig::new("127.0.0.1:1".parse().unwrap()),
        "\n[log]\nformat = \"xml\"\n",
        "log.format",
    );
}
