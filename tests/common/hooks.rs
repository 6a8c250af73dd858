//! A webhook receiver: records each POST (headers and body), answers 200,
//! or 503 while it is "down".

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Hook {
    /// Header names lowercased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// A loopback HTTP server recording webhook deliveries.
#[derive(Clone)]
pub struct HookReceiver {
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Hook>>>,
    down: Arc<AtomicBool>,
}

impl HookReceiver {
    /// Starts on a free port (on the current tokio runtime).
    pub async fn start() -> HookReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = HookReceiver {
            addr: listener.local_addr().unwrap(),
            got: Arc::default(),
            down: Arc::default(),
        };
        let served = r.clone();
        super::serve_each(listener, move |stream| {
            let served = served.clone();
            async move { served.answer(stream).await }
        });
        r
    }

    async fn answer(&self, mut stream: tokio::net::TcpStream) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            // One request per connection, read whole.
            let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n");
            if let Some(end) = head_end {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let headers: HashMap<String, String> = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let len: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let body = buf[end + 4..end + 4 + len].to_vec();
                    let down = self.down.load(Ordering::SeqCst);
                    if !down {
                        self.got.lock().unwrap().push(Hook { headers, body });
                    }
                    let status = if down { "503 Unavailable" } else { "200 OK" };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(resp.as_bytes()).await;
                    return;
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// `http://127.0.0.1:port/hooks`.
    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// While down, every delivery gets a 503 and is not recorded.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// The deliveries recorded so far, in arrival order.
    pub fn received(&self) -> Vec<Hook> {
        self.got.lock().unwrap().clone()
    }

    /// The bodies recorded so far, as JSON.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.received()
            .iter()
            .map(|h| serde_json::from_slice(&h.body).unwrap())
            .collect()
    }
}
