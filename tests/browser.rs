//! The self-service page in a real browser: Debian's Chromium, headless,
//! driven by playwright-core (`tests/browser/sessions-page.mjs`) with
//! JavaScript off, opens `/.sessiongate/sessions` on the proxy listener as
//! alice's laptop (cookie `session`), opens the "Log out" disclosure of her
//! phone, sees the "cannot be undone" confirmation, confirms, and is sent
//! back to the page (303) where the phone is gone and the laptop is still
//! "This device". Then, through the proxy, the phone's token is refused with
//! 401 `session_revoked` while the laptop's and the Mac's still get 200.
//!
//! Needs `/usr/bin/chromium`, `node` (20 or later) and `npm ci` in
//! `tests/browser`. Without them the test prints `SKIPPED:` and passes,
//! except when `CI` is set: then it fails. With
//! `SESSIONGATE_SCREENSHOT=docs/sessions-page.png` (relative to the crate)
//! the same run also saves a full-page screenshot of the page as it was
//! before the click.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tokio::io::AsyncReadExt;

const CHROMIUM: &str = "/usr/bin/chromium";
const SCRIPT: &str = "sessions-page.mjs";
/// The script gives up on its own after 60 s; this is the backstop.
const BROWSER_DEADLINE: Duration = Duration::from_secs(120);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("browser")
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// `node`, when everything the browser test needs is here. Otherwise a
/// loud SKIPPED (written straight to stderr, so the test harness's output
/// capture does not swallow it), or a failure when `CI` is set.
fn prerequisites() -> Option<PathBuf> {
    let node = on_path("node");
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).is_file() {
        missing.push(format!("{CHROMIUM} (apt-get install -y chromium)"));
    }
    if node.is_none() {
        missing.push("node on PATH (Node.js 20 or later)".to_string());
    }
    if !browser_dir()
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        missing.push(
            "tests/browser/node_modules/playwright-core (cd tests/browser && npm ci)".to_string(),
        );
    }
    if missing.is_empty() {
        return node;
    }
    let what = missing.join("; ");
    if std::env::var_os("CI").is_some() {
        panic!("the browser test cannot run, and CI is set so that is a failure: missing {what}");
    }
    let _ = writeln!(
        std::io::stderr().lock(),
        "\nSKIPPED: tests/browser.rs did not run the browser: missing {what}\n"
    );
    None
}

/// The phone's address: Zürich too (the City database's 203.0.113.0/24).
const PHONE_IP: &str = "203.0.113.80";

/// Where to save the screenshot, from `SESSIONGATE_SCREENSHOT`.
fn screenshot_path() -> Option<PathBuf> {
    let p = std::env::var_os("SESSIONGATE_SCREENSHOT").filter(|p| !p.is_empty())?;
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(p);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    Some(p)
}

struct BrowserRun {
    success: bool,
    status: String,
    stdout: String,
    stderr: String,
}

/// Runs the Node script with `env` and waits for it (bounded). A script
/// still running at the deadline gets SIGTERM (playwright then closes
/// Chromium), then SIGKILL.
async fn run_browser(node: &Path, env: &[(&str, String)]) -> BrowserRun {
    let mut cmd = tokio::process::Command::new(node);
    cmd.arg(SCRIPT)
        .current_dir(browser_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn node");
    let pid = child.id().unwrap_or(0);
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let stdout = tokio::spawn(async move {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s).await;
        s
    });
    let stderr = tokio::spawn(async move {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s).await;
        s
    });
    let (success, status) = match tokio::time::timeout(BROWSER_DEADLINE, child.wait()).await {
        Ok(Ok(s)) => (s.success(), s.to_string()),
        Ok(Err(e)) => (false, format!("wait failed: {e}")),
        Err(_) => {
            send_signal(pid, "TERM");
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
            (
                false,
                format!("still running after {BROWSER_DEADLINE:?}, stopped"),
            )
        }
    };
    BrowserRun {
        success,
        status,
        stdout: stdout.await.unwrap_or_default(),
        stderr: stderr.await.unwrap_or_default(),
    }
}

#[tokio::test]
async fn logging_out_the_phone_from_the_page_in_a_real_browser() {
    page_logout(false).await;
}

/// With `sessions.reauth_max_age_s`: a laptop whose sign-in is an hour old
/// is asked to sign in again and offered no log-out; signed in again (a
/// fresh `auth_time`), it logs the phone out.
#[tokio::test]
async fn a_stale_sign_in_is_asked_to_sign_in_again_in_a_real_browser() {
    page_logout(true).await;
}

async fn page_logout(reauth: bool) {
    let Some(node) = prerequisites() else {
        return;
    };
    let started = Instant::now();
    let up = TestUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = geo_config(up.addr, Some(&city_database(dir.path())));
    if reauth {
        cfg.extra.push_str("reauth_max_age_s = 300\n");
    }
    let gw = Gateway::start(cfg).await;

    let fresh = |sid: &str| {
        let mut c = claims("alice", sid);
        c["auth_time"] = serde_json::json!(now() - 5);
        hs256(&c)
    };
    let phone = fresh("phone");
    let mac = fresh("mac");
    let laptop = fresh("laptop");
    let mut stale_laptop = claims("alice", "laptop");
    stale_laptop["auth_time"] = serde_json::json!(now() - 3600);
    let stale_laptop = hs256(&stale_laptop);
    // Alice's devices, as the gateway sees them through a trusted proxy.
    // The laptop signed in first; the phone from the same city; the Mac
    // from another country (flagged as a new location).
    let devices = [
        ("laptop", &laptop, CHROME_WINDOWS, IP_ZURICH),
        ("phone", &phone, SAFARI_IPHONE, PHONE_IP),
        ("mac", &mac, FIREFOX_MAC, IP_NEW_YORK),
    ];
    for (name, token, ua, ip) in devices {
        let r = get_as(&gw, "/", token, ua, ip).await;
        assert_eq!(r.status(), 200, "registering the {name}");
    }

    // The browser is the laptop: its cookie, and (like the laptop's own
    // requests) its User-Agent and address as forwarded by the trusted
    // proxy; otherwise its first page view would re-register the session
    // as a Linux Chrome at 127.0.0.1 with no location.
    let screenshot = screenshot_path();
    let mut env = vec![
        ("SG_PAGE_URL", gw.url("/.sessiongate/sessions")),
        ("SG_COOKIE", laptop.clone()),
        ("SG_USER_AGENT", CHROME_WINDOWS.to_string()),
        ("SG_FORWARDED_FOR", IP_ZURICH.to_string()),
        ("SG_CURRENT_SID", "laptop".to_string()),
        ("SG_TARGET_SID", "phone".to_string()),
        ("SG_OTHER_SIDS", "mac".to_string()),
        ("SG_CHROMIUM", CHROMIUM.to_string()),
    ];
    if let Some(p) = &screenshot {
        env.push(("SG_SCREENSHOT", p.display().to_string()));
    }
    if reauth {
        env.push(("SG_STALE_COOKIE", stale_laptop.clone()));
    }
    let browser_started = Instant::now();
    let run = run_browser(&node, &env).await;
    let browser_took = browser_started.elapsed();
    println!("{}{}", run.stdout, run.stderr);
    assert!(
        run.success,
        "the browser run failed ({}):\n--- stdout\n{}--- stderr\n{}--- gateway log (tail)\n{}",
        run.status,
        run.stdout,
        run.stderr,
        gw.log()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    if let Some(p) = &screenshot {
        let png = std::fs::read(p).expect("screenshot written");
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG",
            p.display()
        );
    }

    // Through the proxy: the phone is out at once, the others are not.
    let r = get_as(&gw, "/", &phone, SAFARI_IPHONE, PHONE_IP).await;
    assert_eq!(r.status(), 401, "the phone after being logged out");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "session_revoked", "{body}");
    let r = get_as(&gw, "/", &laptop, CHROME_WINDOWS, IP_ZURICH).await;
    assert_eq!(r.status(), 200, "the laptop that logged the phone out");
    let r = get_as(&gw, "/", &mac, FIREFOX_MAC, IP_NEW_YORK).await;
    assert_eq!(r.status(), 200, "the Mac, untouched");
    println!(
        "browser part {:.1} s, whole test {:.1} s",
        browser_took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
