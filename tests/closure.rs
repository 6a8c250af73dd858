//! Open connections of a revoked session are closed at once, even idle
//! ones: WebSockets (with close code 1008 `session_revoked`), server-sent
//! event streams, keep-alive connections. Other sessions' connections stay
//! up, and nothing is left in the registry afterwards.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const WITHIN: Duration = Duration::from_secs(5);

async fn open_total(gw: &Gateway) -> f64 {
    let mut sum = 0.0;
    for kind in ["http", "sse", "websocket"] {
        sum += gw
            .metric(&format!("sessiongate_open_connections{{kind=\"{kind}\"}}"))
            .await;
    }
    sum
}

#[tokio::test]
async fn idle_websocket_is_closed_with_1008_session_revoked() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let mut ws = ws_connect(&gw, "/ws", &hs256(&claims("alice", "ws-idle"))).await;
    echo_round_trip(&mut ws, "hello").await;
    assert_eventually!(
        gw.metric(r#"sessiongate_open_connections{kind="websocket"}"#)
            .await
            == 1.0,
        WITHIN,
        "websocket not counted"
    );

    let revoked = Instant::now();
    assert_eq!(gw.revoke_session("ws-idle", "stolen").await.status(), 200);
    let frame = until_closed(&mut ws).await;
    let took = revoked.elapsed();
    assert_eq!(
        frame,
        Some((CloseCode::Policy, "session_revoked".to_string()))
    );
    assert!(took < Duration::from_secs(1), "closed after {took:?}");
    // After the close frame the TCP connection ends.
    assert!(matches!(
        tokio::time::timeout(WITHIN, ws.next()).await.expect("eof"),
        None | Some(Err(_))
    ));

    assert_eventually!(
        gw.metric(r#"sessiongate_connections_closed_total{reason="session_revoked"}"#)
            .await
            == 1.0,
        WITHIN,
        "close not counted"
    );
    assert_eq!(
        gw.metric("sessiongate_revocation_close_seconds_count")
            .await,
        1.0
    );
    assert_eventually!(open_total(&gw).await == 0.0, WITHIN, "registry not empty");
    // The session cannot reconnect.
    let mut req = format!("ws://{}/ws", gw.proxy)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", hs256(&claims("alice", "ws-idle")))
            .parse()
            .unwrap(),
    );
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
}

#[tokio::test]
async fn busy_websocket_is_closed() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let mut ws = ws_connect(&gw, "/ws-busy", &hs256(&claims("alice", "ws-busy"))).await;
    for _ in 0..5 {
        let m = tokio::time::timeout(WITHIN, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(m.to_text().unwrap().starts_with("tick"));
    }
    assert_eq!(gw.revoke_session("ws-busy", "t").await.status(), 200);
    // Closed: with the close frame when between frames, else by TCP close.
    let frame = until_closed(&mut ws).await;
    if let Some((code, reason)) = frame {
        assert_eq!(code, CloseCode::Policy);
        assert_eq!(reason, "session_revoked");
    }
    assert_eventually!(open_total(&gw).await == 0.0, WITHIN, "registry not empty");
}

#[tokio::test]
async fn sse_stream_is_cut_not_completed() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let tok = hs256(&claims("alice", "sse-1"));
    let mut s = TcpStream::connect(gw.proxy).await.unwrap();
    s.write_all(
        format!("GET /sse HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\nAccept: text/event-stream\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("tick 3") {
        let n = tokio::time::timeout(WITHIN, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "stream ended early");
        got.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&got).to_string();
    assert!(head.starts_with("HTTP/1.1 200"));
    assert!(head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked"));
    assert_eventually!(
        gw.metric(r#"sessiongate_open_connections{kind="sse"}"#)
            .await
            == 1.0,
        WITHIN,
        "sse not counted"
    );

    assert_eq!(gw.revoke_session("sse-1", "t").await.status(), 200);
    let deadline = Instant::now() + WITHIN;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf))
            .await
            .expect("cut in time")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "the stream must be cut, not completed"
    );
    assert_eventually!(open_total(&gw).await == 0.0, WITHIN, "registry not empty");
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let victim = hs256(&claims("alice", "ka-victim"));
    let other = hs256(&claims("bob", "ka-other"));

    let mut idle = TcpStream::connect(gw.proxy).await.unwrap();
    assert_eq!(keep_alive_request(&mut idle, &victim).await, 200);
    // A connection that served the victim, then another session: it now
    // carries the other session and must stay open.
    let mut moved_on = TcpStream::connect(gw.proxy).await.unwrap();
    assert_eq!(keep_alive_request(&mut moved_on, &victim).await, 200);
    assert_eq!(keep_alive_request(&mut moved_on, &other).await, 200);
    let mut bystander = TcpStream::connect(gw.proxy).await.unwrap();
    assert_eq!(keep_alive_request(&mut bystander, &other).await, 200);

    assert_eq!(gw.revoke_session("ka-victim", "t").await.status(), 200);
    assert!(
        closed_within(&mut idle, WITHIN).await,
        "idle keep-alive connection not closed"
    );
    assert!(!closed_within(&mut moved_on, Duration::from_millis(200)).await);
    assert_eq!(keep_alive_request(&mut moved_on, &other).await, 200);
    assert_eq!(keep_alive_request(&mut bystander, &other).await, 200);
    assert_eq!(
        gw.metric(r#"sessiongate_connections_closed_total{reason="session_revoked"}"#)
            .await,
        1.0
    );
}

#[tokio::test]
async fn user_cutoff_closes_every_connection_but_the_exempt_one() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let t = now();
    let tok = |sub: &str, sid: &str| {
        hs256(&json!({"sub": sub, "sid": sid, "iat": t - 5, "exp": t + 3600}))
    };
    let mut laptop = ws_connect(&gw, "/ws", &tok("alice", "laptop")).await;
    let mut phone = ws_connect(&gw, "/ws", &tok("alice", "phone")).await;
    let mut tablet = ws_connect(&gw, "/ws", &tok("alice", "tablet")).await;
    let mut bob = ws_connect(&gw, "/ws", &tok("bob", "bob-1")).await;
    let mut phone_ka = TcpStream::connect(gw.proxy).await.unwrap();
    assert_eq!(
        keep_alive_request(&mut phone_ka, &tok("alice", "phone")).await,
        200
    );
    for ws in [&mut laptop, &mut phone, &mut tablet, &mut bob] {
        echo_round_trip(ws, "ready").await;
    }

    assert_eq!(gw.revoke_user("alice", Some("laptop")).await.status(), 200);
    for ws in [&mut phone, &mut tablet] {
        assert_eq!(
            until_closed(ws).await,
            Some((CloseCode::Policy, "session_revoked".to_string()))
        );
    }
    assert!(closed_within(&mut phone_ka, WITHIN).await);
    echo_round_trip(&mut laptop, "still here").await;
    echo_round_trip(&mut bob, "still here").await;
    assert_eventually!(
        gw.metric(r#"sessiongate_connections_closed_total{reason="user_revoked"}"#)
            .await
            == 3.0,
        WITHIN,
        "three closes counted"
    );

    // Everything else disconnects: nothing is left registered.
    laptop.close(None).await.unwrap();
    bob.close(None).await.unwrap();
    drop((laptop, bob));
    assert_eventually!(open_total(&gw).await == 0.0, WITHIN, "registry not empty");
}

#[tokio::test]
async fn connections_revoked_from_another_process_are_closed() {
    // Two gateways on one store (as during a graceful upgrade): a revocation
    // taken by one closes the other's connections through the change log.
    let up = TestUpstream::start();
    let first = Gateway::start(GatewayConfig::new(up.addr)).await;
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.store = vec![format!("path = \"{}\"", first.db_path().display())];
    cfg.extra = String::new();
    let second = Gateway::start(cfg).await;
    let mut ws = ws_connect(&second, "/ws", &hs256(&claims("alice", "cross"))).await;
    echo_round_trip(&mut ws, "hi").await;
    assert_eq!(first.revoke_session("cross", "t").await.status(), 200);
    assert_eq!(
        until_closed(&mut ws).await,
        Some((CloseCode::Policy, "session_revoked".to_string()))
    );
}
