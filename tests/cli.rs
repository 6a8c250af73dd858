//! The command line: check-config errors name file, line and key and exit 2;
//! `token` prints only a token; `revoke` talks to the admin API with the
//! documented exit codes.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn check(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    // `JWKS` stands for a JWKS file whose only key may not verify anything.
    let jwks = dir.path().join("enc.json");
    std::fs::write(
        &jwks,
        r#"{"keys":[{"kty":"oct","alg":"HS256","use":"enc","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}"#,
    )
    .unwrap();
    let text = text.replace("\"JWKS\"", &format!("{:?}", jwks.display().to_string()));
    std::fs::write(&path, text).unwrap();
    let out = command_with_config("check-config", &path).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE"),
    )
}

/// Fails with the command's stderr unless it exited 0.
fn assert_exit_zero(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `sessiongate sessions` against `gw`'s admin API for `user`, ready for
/// more arguments.
fn sessions_command(gw: &Gateway, user: &str) -> Command {
    let mut c = Command::new(binary());
    c.args(["sessions", "--admin", &format!("http://{}", gw.admin)])
        .args(["--user", user]);
    c
}

/// Runs `sessiongate import` of the session ids listed in `list` into `gw`'s store.
fn import_sessions(gw: &Gateway, list: &Path) -> Output {
    command_with_config("import", &gw.config_path)
        .arg("--sessions")
        .arg(list)
        .output()
        .unwrap()
}

const GOOD: &str = r#"[listen]
proxy = "127.0.0.1:8080"

[upstream]
address = "127.0.0.1:3000"

[[token.keys]]
algorithm = "HS256"
secret = "s"
"#;

#[test]
fn check_config_accepts_a_good_file_and_the_shipped_example() {
    let (code, out, _) = check(GOOD);
    assert_eq!(code, 0);
    assert!(out.ends_with(": ok\n"));
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sessiongate.toml");
    let out = command_with_config("check-config", &example)
        .output()
        .unwrap();
    assert_exit_zero(&out);
}

#[test]
fn check_config_names_file_line_and_key() {
    let cases: &[(&str, &str)] = &[
        (
            &GOOD.replace("[upstream]", "[upstream]\nadress = \"x\""),
            "FILE:5: upstream.adress: unknown field",
        ),
        (
            &GOOD.replace("\"HS256\"", "\"HS999\""),
            "FILE:8: token.keys[0].algorithm: unknown algorithm \"HS999\"",
        ),
        (
            &GOOD.replace("proxy = \"127.0.0.1:8080\"", "proxy = \"localhost\""),
            "FILE:2: listen.proxy:",
        ),
        (
            &GOOD.replace(
                "proxy = \"127.0.0.1:8080\"",
                "proxy = \"127.0.0.1:8080\"\nadmin = \"0.0.0.0:9090\"",
            ),
            "admin.token: required because listen.admin 0.0.0.0:9090 is not on loopback",
        ),
        (
            &GOOD
                .replace("secret = \"s\"", "public_key_file = \"missing.pem\"")
                .replace("HS256", "ES256"),
            "token.keys[0].public_key_file: cannot read",
        ),
        (
            &GOOD.replace("secret = \"s\"", ""),
            "token.keys[0]: needs exactly one of",
        ),
        (
            &format!("{GOOD}\n[enforcement]\nmode = \"enforcing\"\n"),
            "FILE:12: enforcement.mode: unknown mode",
        ),
        (
            &format!("{GOOD}\n[enforcement]\nlogin_url = \"/login\\n\"\n"),
            "FILE:12: enforcement.login_url: \"/login\\n\" is not a valid header value",
        ),
        (
            &format!("{GOOD}\n[geoip]\ntrusted_proxies = [\"10.0.0.0/33\"]\n"),
            "geoip.trusted_proxies[0]:",
        ),
        (
            &GOOD.replace("[upstream]\naddress = \"127.0.0.1:3000\"\n", ""),
            "missing field `upstream`",
        ),
        ("this is not toml", "FILE:1"),
        // Out-of-range values are refused with the key named, not clamped.
        (
            &format!("{GOOD}\n[store]\npurge_interval_s = 0\n"),
            "FILE:12: store.purge_interval_s: must be from 1 to",
        ),
        (
            &GOOD.replace(
                "address = \"127.0.0.1:3000\"",
                "address = \"127.0.0.1:3000\"\nconnect_timeout_ms = 0",
            ),
            "FILE:6: upstream.connect_timeout_ms: must be from 1 to",
        ),
        (
            &format!("{GOOD}\n[sessions]\nidle_ttl_s = 99999999999999\n"),
            "sessions.idle_ttl_s: must be from 1 to",
        ),
        (
            &format!("{GOOD}\n[enforcement]\npublic_paths = [\"/a/../b\"]\n"),
            "enforcement.public_paths[0]: \"/a/../b\" must be a plain canonical path prefix",
        ),
        // A JWKS file whose keys are all unusable.
        (
            &GOOD
                .replace("secret = \"s\"", "jwks_file = \"JWKS\"")
                .replace("algorithm = \"HS256\"\n", ""),
            "token.keys: no usable key",
        ),
    ];
    for (text, want) in cases {
        let (code, _, err) = check(text);
        assert_eq!(code, 2, "exit code for {want}: {err}");
        assert!(err.contains(want), "want {want:?} in {err:?}");
    }
}

#[test]
fn run_with_a_bad_config_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(&path, GOOD.replace("HS256", "none")).unwrap();
    let out = command_with_config("run", &path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("token.keys[0].algorithm"));
}

#[tokio::test]
async fn token_command_mints_a_token_the_gateway_accepts() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let out = command_with_config("token", &gw.config_path)
        .args(["--sub", "erin", "--sid", "cli-1", "--ttl", "10m"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    assert_eq!(token.lines().count(), 1, "only the token on stdout");
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3);
    let seen: serde_json::Value = gw.get("/", token).await.json().await.unwrap();
    assert_eq!(seen["headers"]["x-session-id"], "cli-1");
    assert_eq!(seen["headers"]["x-user-id"], "erin");

    // An old --iat makes an expired token.
    let out = command_with_config("token", &gw.config_path)
        .args([
            "--sub",
            "erin",
            "--sid",
            "cli-2",
            "--ttl",
            "1m",
            "--iat",
            "1000000000",
        ])
        .output()
        .unwrap();
    let old = String::from_utf8(out.stdout).unwrap();
    assert_eq!(gw.get("/", old.trim()).await.status(), 401);
}

#[tokio::test]
async fn revoke_command_exit_codes() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let admin = format!("http://{}", gw.admin);
    let run = |args: &[&str], token: Option<&str>| {
        let mut c = Command::new(binary());
        c.arg("revoke").args(["--admin", &admin]).args(args);
        c.env_remove("SESSIONGATE_ADMIN_TOKEN");
        if let Some(t) = token {
            c.env("SESSIONGATE_ADMIN_TOKEN", t);
        }
        c.output().unwrap()
    };

    let ok = run(
        &["--session", "c-1", "--reason", "cli test"],
        Some(ADMIN_TOKEN),
    );
    assert_exit_zero(&ok);
    assert!(String::from_utf8_lossy(&ok.stdout).contains("\"session_id\": \"c-1\""));
    assert_eq!(gw.get("/", &hs256(&claims("u", "c-1"))).await.status(), 401);

    let ok = run(
        &["--user", "frank", "--except", "f-keep"],
        Some(ADMIN_TOKEN),
    );
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(
        gw.get(
            "/",
            &hs256(&serde_json::json!({"sub": "frank", "sid": "f-old", "iat": now() - 5}))
        )
        .await
        .status(),
        401
    );
    assert_eq!(
        gw.get(
            "/",
            &hs256(&serde_json::json!({"sub": "frank", "sid": "f-keep", "iat": now() - 5}))
        )
        .await
        .status(),
        200
    );

    let refused = run(&["--session", "c-2"], Some("wrong-token"));
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"));

    let usage = run(&["--session", "c-3", "--user", "x"], Some(ADMIN_TOKEN));
    assert_eq!(
        usage.status.code(),
        Some(2),
        "conflicting flags are a usage error"
    );
    let no_token = run(&["--session", "c-4"], None);
    assert_eq!(no_token.status.code(), Some(2));

    let down = Command::new(binary())
        .args([
            "revoke",
            "--admin",
            "http://127.0.0.1:1",
            "--token",
            "t",
            "--session",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
}

#[tokio::test]
async fn sessions_command_prints_a_table() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    get_as(
        &gw,
        "/",
        &hs256(&claims("zoe", "zoe-laptop")),
        CHROME_WINDOWS,
        "127.0.0.1",
    )
    .await;
    get_as(
        &gw,
        "/",
        &hs256(&claims("zoe", "zoe-phone")),
        SAFARI_IPHONE,
        "127.0.0.1",
    )
    .await;
    gw.revoke_session("zoe-phone", "lost").await;
    let out = sessions_command(&gw, "zoe")
        .env("SESSIONGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert_exit_zero(&out);
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("SESSION"));
    assert!(
        lines[1].starts_with("zoe-phone")
            && lines[1].contains("Safari on iOS")
            && lines[1].ends_with("revoked")
    );
    assert!(
        lines[2].starts_with("zoe-laptop")
            && lines[2].contains("Chrome on Windows 10")
            && lines[2].ends_with("active")
    );

    let none = sessions_command(&gw, "nobody")
        .args(["--token", ADMIN_TOKEN])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&none.stdout).trim(), "no sessions");
    let refused = sessions_command(&gw, "zoe")
        .args(["--token", "wrong"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
}

#[tokio::test]
async fn import_revokes_every_listed_session() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let list = gw.dir.path().join("revoked.txt");
    std::fs::write(
        &list,
        "# exported from the old system\nimp-1\nimp-2\n\nimp-3\n",
    )
    .unwrap();
    let out = import_sessions(&gw, &list);
    assert_exit_zero(&out);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("3 revoked"));
    // Not a terminal: the final count only, no progress drawn.
    assert!(
        !out.stderr.contains(&0x1b),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The running gateway picks them up from the store's change log.
    for sid in ["imp-1", "imp-2", "imp-3"] {
        let tok = hs256(&claims("u", sid));
        assert_eventually!(
            matches!(gw.status("/", &tok).await, 401 | 0),
            std::time::Duration::from_secs(5),
            "{sid} not applied"
        );
    }
    assert_eq!(
        gw.get("/", &hs256(&claims("u", "imp-4"))).await.status(),
        200
    );
    // Again: nothing new.
    let out = import_sessions(&gw, &list);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("0 revoked (3 already were)"));
    std::fs::write(&list, "ok\nbad\u{7}id\n").unwrap();
    let out = import_sessions(&gw, &list);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(":2: not a session id"));
}

/// On a terminal (`script` gives the command one), `import` draws its
/// progress, then prints the final count.
#[tokio::test]
async fn import_shows_progress_on_a_terminal() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("\nSKIPPED: script (util-linux) not found\n");
        return;
    }
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let list = gw.dir.path().join("many.txt");
    let ids: String = (0..20_000).map(|i| format!("tty-{i}\n")).collect();
    std::fs::write(&list, ids).unwrap();
    let command = format!(
        "{} import --config {} --sessions {}",
        binary(),
        gw.config_path.display(),
        list.display()
    );
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("revoking 20000 sessions") || shown.contains("reading session ids"),
        "no progress drawn: {shown}"
    );
    assert!(shown.contains("20000 revoked"), "{shown}");
}
