//! The engine's floor for load runs: a pingora 0.9 proxy that checks
//! nothing, built like the gateway's proxy service (same `http_proxy`, same
//! upstream keep-alive pool), so `benches/load.sh` can put pingora's own
//! cost per request next to the gateway's in one run.
//!
//! Build and run: `cargo build --release --example bare_proxy`, then
//! `taskset -c 1 target/release/examples/bare_proxy 127.0.0.1:18095 127.0.0.1:18080 [threads]`;
//! `BARE_WORK_STEALING=0` runs it on current-thread runtimes instead.

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora::upstreams::peer::HttpPeer;

struct Bare {
    peer: HttpPeer,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.peer.clone()))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: bare_proxy LISTEN UPSTREAM [THREADS]");
        std::process::exit(2);
    };
    let threads = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(1);
    let dir = std::env::temp_dir();
    let conf = ServerConf {
        threads,
        pid_file: dir.join("bare_proxy.pid").display().to_string(),
        upgrade_sock: dir.join("bare_proxy.sock").display().to_string(),
        // Load runs stop it with SIGTERM: no 5-minute default grace period.
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        work_stealing: std::env::var("BARE_WORK_STEALING").map_or(true, |v| v != "0"),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let addr: std::net::SocketAddr = upstream.parse().expect("UPSTREAM is ip:port");
    let mut service = pingora::proxy::http_proxy_service(
        &server.configuration,
        Bare {
            peer: HttpPeer::new(addr, false, String::new()),
        },
    );
    service.add_tcp(listen);
    server.add_service(service);
    server.run_forever()
}
