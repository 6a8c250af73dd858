//! The proxy listener's transports: TLS (HTTP/2 and HTTP/1.1 by ALPN) and
//! cleartext HTTP/2 (h2c). The same decisions on every one, and a revoked
//! session's HTTP/2 stream is reset while the connection and other sessions'
//! streams on it stay up.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use pingora::tls::ClientTlsStream;

const WITHIN: Duration = Duration::from_secs(5);

fn tls_dir() -> PathBuf {
    keys_dir().join("redis-tls")
}

/// The `tls_cert_file` and `tls_key_file` lines of the test server's pair.
fn server_tls_lines() -> Vec<String> {
    vec![
        format!(
            "tls_cert_file = \"{}\"",
            tls_dir().join("server.pem").display()
        ),
        format!(
            "tls_key_file = \"{}\"",
            tls_dir().join("server.key").display()
        ),
    ]
}

fn tls_config(up: &TestUpstream) -> GatewayConfig {
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.upstream_lines = vec!["x_forwarded = true".into()];
    cfg.listen = server_tls_lines();
    cfg
}

/// A TLS connection to `gw`'s proxy listener, trusting the test CA and
/// offering the `alpn` protocols.
async fn tls_connect(gw: &Gateway, alpn: &[&[u8]]) -> ClientTlsStream<tokio::net::TcpStream> {
    use pingora::tls::{ClientConfig, RootCertStore, ServerName, TlsConnector};
    pingora::tls::install_default_crypto_provider();
    let mut roots = RootCertStore::empty();
    pingora::tls::load_ca_file_into_store(tls_dir().join("ca.pem"), &mut roots).unwrap();
    let mut tls = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    TlsConnector::from(std::sync::Arc::new(tls))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

fn https_client(http1_only: bool) -> reqwest::Client {
    let ca = std::fs::read(tls_dir().join("ca.pem")).unwrap();
    let builder = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .tls_built_in_root_certs(false);
    let builder = if http1_only {
        builder.http1_only()
    } else {
        builder
    };
    builder.build().unwrap()
}

fn echoed_session(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    assert_eq!(v["headers"]["x-forwarded-proto"], "https", "{body}");
    v["headers"]["x-session-id"].as_str().map(str::to_string)
}

#[tokio::test]
async fn tls_listener_speaks_http2_and_http1_and_enforces() {
    let up = TestUpstream::start();
    let gw = Gateway::start(tls_config(&up)).await;
    let url = format!("https://localhost:{}/echo", gw.proxy.port());
    let tok = hs256(&claims("alice", "tls-1"));

    for (http1_only, version) in [
        (false, reqwest::Version::HTTP_2),
        (true, reqwest::Version::HTTP_11),
    ] {
        let client = https_client(http1_only);
        let ok = client.get(&url).bearer_auth(&tok).send().await.unwrap();
        assert_eq!(ok.version(), version);
        assert_eq!(ok.status(), 200);
        assert_eq!(
            echoed_session(&ok.text().await.unwrap()).as_deref(),
            Some("tls-1")
        );
        let missing = client.get(&url).send().await.unwrap();
        assert_eq!(missing.status(), 401);
    }

    assert_eq!(gw.revoke_session("tls-1", "t").await.status(), 200);
    let refused = https_client(false)
        .get(&url)
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "session_revoked");

    // Plain HTTP on the TLS port is not served.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{}/echo", gw.proxy.port()))
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
    );
}

/// A client-sent identity header on an HTTP/2 stream is stripped too.
#[tokio::test]
async fn h2c_listener_serves_prior_knowledge_and_http1() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.listen = vec!["h2c = true".into()];
    let gw = Gateway::start(cfg).await;
    let tok = hs256(&claims("alice", "h2c-1"));

    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2
        .get(gw.url("/echo"))
        .bearer_auth(&tok)
        .header("x-user-id", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(v["headers"]["x-session-id"], "h2c-1");
    assert_eq!(v["headers"]["x-user-id"], "alice");
    assert_eq!(
        h2.get(gw.url("/echo")).send().await.unwrap().status(),
        401,
        "no token over h2c"
    );

    let h1 = reqwest::Client::new();
    let resp = h1
        .get(gw.url("/echo"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status(), 200);

    // Without h2c the listener does not speak HTTP/2 in cleartext.
    let plain = Gateway::start(GatewayConfig::new(up.addr)).await;
    assert!(h2
        .get(plain.url("/echo"))
        .bearer_auth(&tok)
        .send()
        .await
        .is_err());
}

/// Opens an event stream on `client`'s connection; answers its body.
async fn open_stream(
    client: &mut h2::client::SendRequest<Bytes>,
    gw: &Gateway,
    token: &str,
) -> h2::RecvStream {
    let req = http::Request::get(format!("http://{}/sse", gw.proxy))
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let (resp, _) = client.send_request(req, true).unwrap();
    let resp = tokio::time::timeout(WITHIN, resp)
        .await
        .expect("response head")
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body()
}

/// Reads one data frame; `Err` when the stream was reset or ended.
async fn next_event(body: &mut h2::RecvStream) -> Result<Bytes, String> {
    match tokio::time::timeout(WITHIN, body.data()).await {
        Err(_) => Err("no event in time".into()),
        Ok(None) => Err("stream ended".into()),
        Ok(Some(Err(e))) => Err(format!("reset: {e}")),
        Ok(Some(Ok(b))) => {
            let _ = body.flow_control().release_capacity(b.len());
            Ok(b)
        }
    }
}

#[tokio::test]
async fn revoked_http2_stream_is_reset_and_the_connection_stays_up() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.listen = vec!["h2c = true".into()];
    let gw = Gateway::start(cfg).await;
    let (victim, other) = (
        hs256(&claims("alice", "h2-victim")),
        hs256(&claims("bob", "h2-other")),
    );

    // One TCP connection, two streams of two sessions.
    let tcp = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(connection);
    let mut a = open_stream(&mut client, &gw, &victim).await;
    let mut b = open_stream(&mut client, &gw, &other).await;
    next_event(&mut a).await.unwrap();
    next_event(&mut b).await.unwrap();
    assert_eventually!(
        gw.metric(r#"sessiongate_open_connections{kind="sse"}"#)
            .await
            == 2.0,
        WITHIN,
        "two streams registered"
    );

    assert_eq!(gw.revoke_session("h2-victim", "t").await.status(), 200);
    let deadline = Instant::now() + WITHIN;
    let cut = loop {
        match next_event(&mut a).await {
            Ok(_) => assert!(Instant::now() < deadline, "victim stream still flowing"),
            Err(e) => break e,
        }
    };
    assert!(
        cut.starts_with("reset"),
        "the stream is reset, not ended: {cut}"
    );

    // The other session's stream and the connection carry on.
    for _ in 0..3 {
        next_event(&mut b).await.unwrap();
    }
    let again = open_stream(&mut client, &gw, &other).await;
    drop(again);
    assert!(!driver.is_finished(), "the connection stays up");

    drop((a, b, client));
    driver.abort();
    assert_eventually!(
        gw.metric(r#"sessiongate_open_connections{kind="sse"}"#)
            .await
            == 0.0
            && gw
                .metric(r#"sessiongate_open_connections{kind="http"}"#)
                .await
                == 0.0,
        WITHIN,
        "registry not empty"
    );
}

fn check(listen: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("not.pem"), "not a certificate\n").unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(
        &path,
        format!(
            "[listen]\nproxy = \"127.0.0.1:8080\"\n{listen}\n\n[upstream]\naddress = \"127.0.0.1:3000\"\n\n\
             [[token.keys]]\nalgorithm = \"HS256\"\nsecret = \"s\"\n"
        ),
    )
    .unwrap();
    let out = command_with_config("check-config", &path).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_tls_settings_name_the_key() {
    let cert = tls_dir().join("server.pem").display().to_string();
    let key = tls_dir().join("server.key").display().to_string();
    let ca = tls_dir().join("ca.pem").display().to_string();
    let cases = [
        (format!("tls_cert_file = \"{cert}\""), "listen.tls_key_file"),
        (format!("tls_key_file = \"{key}\""), "listen.tls_cert_file"),
        (
            format!("tls_cert_file = \"missing.pem\"\ntls_key_file = \"{key}\""),
            "listen.tls_cert_file",
        ),
        (
            format!("tls_cert_file = \"not.pem\"\ntls_key_file = \"{key}\""),
            "listen.tls_cert_file",
        ),
        // The CA's certificate with the server's key: not a pair.
        (
            format!("tls_cert_file = \"{ca}\"\ntls_key_file = \"{key}\""),
            "listen.tls_key_file",
        ),
    ];
    for (listen, key_name) in cases {
        let (code, err) = check(&listen);
        assert_eq!(code, 2, "{listen}: {err}");
        assert!(err.contains(key_name), "{listen}: {err}");
    }
    let (code, err) = check(&format!(
        "tls_cert_file = \"{cert}\"\ntls_key_file = \"{key}\"\nh2c = true"
    ));
    assert_eq!(code, 0, "{err}");

    // The same rules for the admin listener, named under [admin].
    let (code, err) = check(&format!("\n[admin]\ntls_cert_file = \"{cert}\""));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("admin.tls_key_file"), "{err}");
    let (code, err) = check(&format!(
        "\n[admin]\ntls_cert_file = \"{ca}\"\ntls_key_file = \"{key}\""
    ));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("admin.tls_key_file"), "{err}");
}

/// The close frame is written inside TLS: an idle WebSocket over HTTPS is
/// closed with 1008 `session_revoked`.
#[tokio::test]
async fn idle_websocket_over_tls_is_closed_with_1008() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::Message;

    let up = TestUpstream::start();
    let gw = Gateway::start(tls_config(&up)).await;
    let tok = hs256(&claims("alice", "wss-1"));

    let stream = tls_connect(&gw, &[]).await;
    let mut req = format!("wss://localhost:{}/ws", gw.proxy.port())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {tok}").parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    assert_eq!(resp.status(), 101);
    assert_eventually!(
        gw.metric(r#"sessiongate_open_connections{kind="websocket"}"#)
            .await
            == 1.0,
        WITHIN,
        "websocket not registered"
    );

    assert_eq!(gw.revoke_session("wss-1", "t").await.status(), 200);
    let frame = loop {
        match tokio::time::timeout(WITHIN, ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    let frame = frame.expect("a close code");
    assert_eq!(frame.code, CloseCode::Policy);
    assert_eq!(frame.reason.as_str(), "session_revoked");
}

fn admin_tls_config(up: &TestUpstream) -> GatewayConfig {
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.admin = server_tls_lines();
    cfg.admin_ca = Some(tls_dir().join("ca.pem"));
    cfg
}

fn revoke_cli(admin: &str, sid: &str, ca: Option<&std::path::Path>) -> (i32, String) {
    let mut cmd = Command::new(binary());
    cmd.args(["revoke", "--admin", admin, "--token", ADMIN_TOKEN])
        .args(["--session", sid, "--reason", "cli"])
        .env_remove("SESSIONGATE_ADMIN_CA_FILE");
    if let Some(ca) = ca {
        cmd.arg("--ca-file").arg(ca);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn admin_api_over_tls() {
    let up = TestUpstream::start();
    let gw = Gateway::start(admin_tls_config(&up)).await;
    let https = format!("https://localhost:{}", gw.admin.port());

    assert_eq!(gw.revoke_session("adm-1", "t").await.status(), 200);
    assert_eq!(gw.status("/", &hs256(&claims("u", "adm-1"))).await, 401);
    assert!(
        reqwest::get(format!("http://{}/healthz", gw.admin))
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true),
        "plain HTTP on the TLS admin port"
    );

    // The client command: with the private CA it works; without it the
    // certificate is not trusted; an unreadable CA file is a usage error.
    let ca = tls_dir().join("ca.pem");
    let (code, err) = revoke_cli(&https, "adm-2", Some(&ca));
    assert_eq!(code, 0, "{err}");
    assert_eq!(gw.status("/", &hs256(&claims("u", "adm-2"))).await, 401);
    let (code, err) = revoke_cli(&https, "adm-3", None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&https) && err.contains("certificate"), "{err}");
    assert_eq!(gw.status("/", &hs256(&claims("u", "adm-3"))).await, 200);
    let (code, err) = revoke_cli(&https, "adm-3", Some(&tls_dir().join("missing.pem")));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--ca-file"), "{err}");
    let not_pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_pem.path(), "not a certificate\n").unwrap();
    let (code, err) = revoke_cli(&https, "adm-3", Some(not_pem.path()));
    assert_eq!(code, 2, "{err}");
}

/// An idle HTTP/2 connection is closed after `listen.keepalive_timeout_s`.
#[tokio::test]
async fn idle_http2_connection_is_closed() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.listen = vec!["h2c = true".into(), "keepalive_timeout_s = 1".into()];
    let gw = Gateway::start(cfg).await;
    let tcp = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(connection);
    let req = http::Request::get(format!("http://{}/echo", gw.proxy))
        .header(
            "authorization",
            format!("Bearer {}", hs256(&claims("u", "h2-idle"))),
        )
        .body(())
        .unwrap();
    let (resp, _) = client.send_request(req, true).unwrap();
    let resp = tokio::time::timeout(WITHIN, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    drop(resp);
    // 1 s idle bound; 10 s is the test's patience.
    tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .expect("idle HTTP/2 connection closed")
        .unwrap()
        .ok();
}

/// A full handshake trusting only `ca`: a new client each time, so no
/// pooled connection or resumed TLS session carries an old certificate.
async fn handshake_ok(ca: &std::path::Path, url: &str) -> bool {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .tls_built_in_root_certs(false)
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .is_ok()
}

/// A rotated certificate is served without a restart, on the proxy and the
/// admin listener; a half-written pair keeps the previous certificate.
#[tokio::test]
async fn rotated_certificates_are_served_without_a_restart() {
    let up = TestUpstream::start();
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = (files.path().join("cert.pem"), files.path().join("key.pem"));
    std::fs::copy(tls_dir().join("server.pem"), &cert).unwrap();
    std::fs::copy(tls_dir().join("server.key"), &key).unwrap();
    let mut cfg = GatewayConfig::new(up.addr);
    let pair = vec![
        format!("tls_cert_file = \"{}\"", cert.display()),
        format!("tls_key_file = \"{}\"", key.display()),
    ];
    cfg.listen = pair.clone();
    cfg.listen.push("tls_reload_s = 1".into());
    cfg.admin = pair;
    cfg.admin_ca = Some(tls_dir().join("ca.pem"));
    let gw = Gateway::start(cfg).await;
    let proxy = format!("https://localhost:{}/healthz", gw.proxy.port());
    let admin = format!("https://localhost:{}/healthz", gw.admin.port());
    let rotated = keys_dir().join("tls-rotated");
    let (old_ca, new_ca) = (tls_dir().join("ca.pem"), rotated.join("ca.pem"));
    assert!(handshake_ok(&old_ca, &proxy).await);
    assert!(!handshake_ok(&new_ca, &proxy).await);

    // The new certificate without its key: refused, the old pair stays.
    std::fs::copy(rotated.join("server.pem"), &cert).unwrap();
    assert_eventually!(
        gw.log()
            .contains("cannot be loaded; keeping the previous one"),
        WITHIN,
        "half-written pair not reported: {}",
        gw.log_tail()
    );
    assert!(handshake_ok(&old_ca, &proxy).await);
    assert!(handshake_ok(&old_ca, &admin).await);

    // The key arrives: new handshakes get the new certificate.
    std::fs::copy(rotated.join("server.key"), &key).unwrap();
    assert_eventually!(
        handshake_ok(&new_ca, &proxy).await && handshake_ok(&new_ca, &admin).await,
        WITHIN,
        "rotated certificate not served: {}",
        gw.log_tail()
    );
    assert!(!handshake_ok(&old_ca, &proxy).await);
    assert!(!handshake_ok(&old_ca, &admin).await);
}

/// Streams one event stream over `client` for 2.5 s (beyond a 1 s header
/// deadline); the connection must stay up throughout.
async fn stream_beyond_the_deadline(
    mut client: h2::client::SendRequest<Bytes>,
    driver: tokio::task::JoinHandle<Result<(), h2::Error>>,
    gw: &Gateway,
) {
    let mut events = open_stream(&mut client, gw, &hs256(&claims("u", "h2-long"))).await;
    let until = std::time::Instant::now() + Duration::from_millis(2500);
    while std::time::Instant::now() < until {
        next_event(&mut events).await.unwrap();
    }
    assert!(!driver.is_finished());
    assert_eq!(
        gw.metric("sessiongate_request_header_timeouts_total").await,
        0.0
    );
}

/// An HTTP/2 connection has no request header of its own: the header
/// deadline never cuts it, however long its streams run (h2c and TLS).
#[tokio::test]
async fn http2_connections_outlive_the_header_deadline() {
    let up = TestUpstream::start();

    let mut cfg = GatewayConfig::new(up.addr);
    cfg.listen = vec!["h2c = true".into(), "request_header_timeout_s = 1".into()];
    let gw = Gateway::start(cfg).await;
    let tcp = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    stream_beyond_the_deadline(client, tokio::spawn(connection), &gw).await;

    let mut cfg = tls_config(&up);
    cfg.listen.push("request_header_timeout_s = 1".into());
    let gw = Gateway::start(cfg).await;
    let stream = tls_connect(&gw, &[b"h2"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    stream_beyond_the_deadline(client, tokio::spawn(connection), &gw).await;
}
