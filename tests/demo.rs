//! `sessiongate demo` as a new user meets it: start it, run every curl line
//! it prints exactly as printed (through `sh`), and check each answer.
//!
//! The demo listens on its fixed ports (8080, 9090, 3000); the test fails
//! with a clear message when one of them is taken.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const PORTS: [u16; 3] = [8080, 9090, 3000];

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sh(line: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(line)
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "`{line}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn session_header(echo: &str) -> String {
    let v: Value = serde_json::from_str(echo).unwrap_or_else(|e| panic!("{e}: {echo}"));
    v["headers"]["x-session-id"]
        .as_str()
        .unwrap_or_else(|| panic!("no x-session-id in {echo}"))
        .to_string()
}

#[test]
fn demo_curl_lines_work_as_printed() {
    if Command::new("curl").arg("--version").output().is_err() {
        panic!("curl is needed to run the demo's printed lines (apt-get install curl)");
    }
    for port in PORTS {
        if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            panic!("the demo needs 127.0.0.1:{port}, which is taken: {e}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("demo.log")).unwrap();
    let mut child = Command::new(common::binary())
        .arg("demo")
        .arg("--dir")
        .arg(dir.path().join("demo"))
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _demo = Demo(child);

    let mut curls = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("demo output");
        if line.trim_start().starts_with("curl ") {
            curls.push(line.trim().to_string());
        }
        if line.starts_with("Ctrl-C stops the demo") {
            break;
        }
    }
    assert_eq!(curls.len(), 9, "printed curl lines: {curls:#?}");

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg("http://127.0.0.1:9090/readyz")
            .output()
            .map(|o| o.stdout == b"200")
            .unwrap_or(false);
        if ready && std::net::TcpStream::connect("127.0.0.1:8080").is_ok() {
            break;
        }
        let log = std::fs::read_to_string(dir.path().join("demo.log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "demo not ready in 30 s: {log}");
        std::thread::sleep(Duration::from_millis(20));
    }

    // 1. Both devices reach the echo, which shows the identity headers.
    let laptop = session_header(&sh(&curls[0]));
    let phone = session_header(&sh(&curls[1]));
    assert!(laptop.starts_with("alice-laptop-"), "{laptop}");
    assert!(phone.starts_with("alice-phone-"), "{phone}");

    // 2. Revoke the phone.
    let revoked: Value = serde_json::from_str(&sh(&curls[2])).unwrap();
    assert_eq!(revoked["session_id"], phone.as_str(), "{revoked}");

    // 3. Phone refused with 401 session_revoked; laptop still works.
    let refused = sh(&curls[3]);
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(refused.contains("\"session_revoked\""), "{refused}");
    assert_eq!(session_header(&sh(&curls[4])), laptop);

    // 4. All of alice's sessions but the laptop; the list, the trail, the metric.
    let cutoff: Value = serde_json::from_str(&sh(&curls[5])).unwrap();
    assert_eq!(cutoff["user_id"], "alice", "{cutoff}");
    assert_eq!(cutoff["except"], laptop.as_str(), "{cutoff}");
    assert_eq!(session_header(&sh(&curls[4])), laptop, "exempt session");
    let list = sh(&curls[6]);
    assert!(list.contains(&phone), "{list}");
    let audit = sh(&curls[7]);
    assert!(
        audit.contains("lost phone") && audit.contains("password reset"),
        "{audit}"
    );
    let metrics = sh(&curls[8]);
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("decision=\"session_revoked\"") && !l.ends_with(" 0")),
        "{metrics}"
    );
}
