//! From the identity provider to the refusal, on the release binary over
//! loopback: one Redis (AOF, fsync always) and two gateways on it, A and B,
//! both behind the same IdP (a document server with its discovery document
//! and JWKS) and the same Shared Signals transmitter.
//!
//! For each of N sessions an idle WebSocket is open through B; the IdP's
//! back-channel logout (a logout token POSTed to A) or a CAEP
//! `session-revoked` SET (pushed to A) ends the session. Measured from A's
//! answer (200 / 202): until B refuses the session's next request, and
//! until the WebSocket on B gets its close frame (p50/p99).
//!
//! Run: `cargo bench --bench idp` (needs redis-server; SG_BENCH_EVENTS sets
//! N, default 300 of each kind). Last figures: README.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;

mod support;
use support::common::{hs256_jwt, now, oct_jwks, Documents, RedisServer};
use support::{env_or, open_websocket, runtime, Proc};

const SECRET: &str = "idp-bench-key-0123456789abcdefghij";
const PUSH: &str = "idp-bench-push-token-0123456789";

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn start(
    dir: &std::path::Path,
    name: &str,
    upstream: u16,
    redis: &str,
    idp: &str,
) -> (Proc, u16) {
    let (config, proxy, admin) = support::gateway_config(
        dir,
        name,
        upstream,
        &format!(
            "[store]\nbackend = \"redis\"\nredis_url = \"{redis}\"\n\
             [idp]\nissuer = \"{idp}\"\naudiences = [\"web\"]\ncache_file = \"{name}-jwks.json\"\n\
             [ssf]\ntransmitter = \"{idp}\"\naudience = \"gw\"\npush_token_env = \"SG_BENCH_PUSH\"\n\
             cache_file = \"{name}-ssf.json\"\n"
        ),
    );
    let (proc, _) =
        support::start_gateway(&config, admin, Some(proxy), Duration::from_secs(15)).await;
    (proc, proxy)
}

fn logout_token(iss: &str, sid: &str, n: usize) -> String {
    let t = now();
    hs256_jwt(
        SECRET,
        "k1",
        Some("logout+jwt"),
        &json!({"iss": iss, "aud": "web", "iat": t, "exp": t + 120, "jti": format!("bcl-{n}"),
                "sid": sid, "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}),
    )
}

fn set_token(iss: &str, sid: &str, n: usize) -> String {
    hs256_jwt(
        SECRET,
        "k1",
        Some("secevent+jwt"),
        &json!({"iss": iss, "aud": "gw", "iat": now(), "jti": format!("set-{n}"),
                "sub_id": {"format": "complex", "session": {"format": "opaque", "id": sid}},
                "events": {"https://schemas.openid.net/secevent/caep/event-type/session-revoked": {}}}),
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = env_or("SG_BENCH_EVENTS", 300);
    // Read by the gateways this process starts (set before any thread).
    std::env::set_var("SG_BENCH_PUSH", PUSH);
    runtime().block_on(async {
        let Some(redis) = RedisServer::start() else {
            println!("SKIPPED: redis-server not found");
            return;
        };
        let up = support::common::TestUpstream::start();
        let docs = Documents::start().await;
        let iss = docs.url();
        let discovery = json!({"issuer": iss, "jwks_uri": format!("{iss}/jwks")}).to_string();
        docs.set("/.well-known/openid-configuration", 200, &discovery);
        docs.set("/.well-known/ssf-configuration", 200, &discovery);
        docs.set("/jwks", 200, &oct_jwks(&[("k1", SECRET)]));
        let dir = tempfile::tempdir().unwrap();
        let (_a, a) = start(dir.path(), "a", up.addr.port(), &redis.url(), &iss).await;
        let (_b, b) = start(dir.path(), "b", up.addr.port(), &redis.url(), &iss).await;
        let client = reqwest::Client::new();
        for kind in ["back-channel logout", "CAEP session-revoked"] {
            let (mut refused, mut closed) = (Vec::new(), Vec::new());
            for i in 0..n {
                let sid = format!("{}-{i}", &kind[..4]);
                let token = hs256_jwt(SECRET, "k1", None, &json!({"iss": iss, "aud": "web", "sub": "u", "sid": sid, "iat": now(), "exp": now() + 600}));
                let mut ws = open_websocket(b, &token).await;
                let req = match kind {
                    "back-channel logout" => client
                        .post(format!("http://127.0.0.1:{a}/.sessiongate/backchannel-logout"))
                        .form(&[("logout_token", logout_token(&iss, &sid, i))]),
                    _ => client
                        .post(format!("http://127.0.0.1:{a}/.sessiongate/ssf/events"))
                        .bearer_auth(PUSH)
                        .header("content-type", "application/secevent+jwt")
                        .body(set_token(&iss, &sid, i)),
                };
                let resp = req.send().await.unwrap();
                assert!(resp.status().is_success(), "{kind}: {}", resp.status());
                let answered = Instant::now();
                let close = tokio::spawn(async move {
                    loop {
                        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                            Ok(Some(Ok(m))) if m.is_close() => return Instant::now(),
                            Ok(Some(Ok(_))) => continue,
                            _ => return Instant::now(),
                        }
                    }
                });
                loop {
                    let r = client.get(format!("http://127.0.0.1:{b}/")).bearer_auth(&token).send().await.unwrap();
                    if r.status() == 401 {
                        refused.push(answered.elapsed().as_secs_f64() * 1e3);
                        break;
                    }
                    assert!(answered.elapsed() < Duration::from_secs(5), "never refused on B");
                }
                let at = close.await.unwrap();
                closed.push(at.duration_since(answered).as_secs_f64() * 1e3);
            }
            refused.sort_by(|x, y| x.partial_cmp(y).unwrap());
            closed.sort_by(|x, y| x.partial_cmp(y).unwrap());
            println!(
                "{kind} to A, {n} sessions: refused by B after A's answer p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms; \
                 WebSocket on B closed p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
                pct(&refused, 0.5), pct(&refused, 0.99), refused.last().copied().unwrap_or(f64::NAN),
                pct(&closed, 0.5), pct(&closed, 0.99), closed.last().copied().unwrap_or(f64::NAN),
            );
        }
    });
}
