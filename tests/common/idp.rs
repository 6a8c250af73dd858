//! Identity providers for the tests: a real one (`oidc-provider` under
//! Node.js, `tests/idp/provider.mjs`) and a document server that plays an
//! IdP's discovery and JWKS endpoints with keys the test holds.

use super::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// The redirect URI the provider's clients have (never served: the login
/// stops at it and reads the code).
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

fn idp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("idp")
}

/// `node`, when it and `tests/idp/node_modules/oidc-provider` are here.
/// Otherwise prints `SKIPPED:` and answers `None`, or panics in CI.
pub fn node_for_idp() -> Option<PathBuf> {
    let node = which("node");
    let installed = idp_dir().join("node_modules/oidc-provider").exists();
    let missing = match (&node, installed) {
        (None, _) => "node (Node.js 20+)",
        (_, false) => "tests/idp/node_modules/oidc-provider (cd tests/idp && npm ci)",
        _ => return node,
    };
    if std::env::var_os("CI").is_some() {
        panic!("the IdP tests cannot run, and CI is set so that is a failure: missing {missing}");
    }
    eprintln!("\nSKIPPED: the oidc-provider test did not run: missing {missing}\n");
    None
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// `oidc-provider` on a loopback port; stopped (by PID) when dropped.
pub struct OidcProvider {
    child: Child,
    pub port: u16,
    pub issuer: String,
}

impl OidcProvider {
    /// Starts the provider on `port`, signing with a fresh RS256 key named
    /// `kid`, its clients' back-channel logout URI `logout_uri`; waits for
    /// its "ready" line.
    pub fn start(node: &Path, port: u16, kid: &str, logout_uri: &str) -> OidcProvider {
        Self::start_logging(node, port, kid, logout_uri, None)
    }

    /// [`OidcProvider::start`], appending each logout token it sends to
    /// `sent` (one per line).
    pub fn start_logging(
        node: &Path,
        port: u16,
        kid: &str,
        logout_uri: &str,
        sent: Option<&Path>,
    ) -> OidcProvider {
        let mut child = Command::new(node)
            .current_dir(idp_dir())
            .arg("provider.mjs")
            .arg(port.to_string())
            .arg(kid)
            .arg(logout_uri)
            .args(sent)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert!(
            line.starts_with("ready "),
            "provider did not start: {line:?}"
        );
        OidcProvider {
            child,
            port,
            issuer: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Signs `user` in at the provider for client `client_id` (`web`: its
    /// logout tokens carry `sid`; `mobile`: `sub` only) and answers the ID
    /// token with the browser-like client holding the provider's cookies.
    pub async fn login(&self, client_id: &str, user: &str) -> Login {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::custom(|a| {
                if a.url().as_str().starts_with(REDIRECT_URI) {
                    a.stop()
                } else {
                    a.follow()
                }
            }))
            .build()
            .unwrap();
        let resp = http
            .get(format!("{}/auth", self.issuer))
            .query(&[
                ("client_id", client_id),
                ("response_type", "code"),
                ("scope", "openid"),
                ("redirect_uri", REDIRECT_URI),
                ("login_hint", user),
                ("state", "test-state"),
            ])
            .send()
            .await
            .unwrap();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no redirect to the client: {}", resp.status()))
            .to_string();
        let code = reqwest::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no code in {location}"));
        let tokens: serde_json::Value = http
            .post(format!("{}/token", self.issuer))
            .basic_auth(
                client_id,
                Some(format!("{client_id}-secret-0123456789abcdef")),
            )
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id_token = tokens["id_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no id_token: {tokens}"))
            .to_string();
        Login { http, id_token }
    }

    /// Ends the login's session at the provider, as its user would
    /// (RP-initiated logout, confirmed): the provider then posts a logout
    /// token to each client's back-channel logout URI before answering.
    pub async fn end_session(&self, login: &Login) {
        let page = send_text(
            login
                .http
                .get(format!("{}/session/end", self.issuer))
                .query(&[
                    ("id_token_hint", login.id_token.as_str()),
                    ("post_logout_redirect_uri", REDIRECT_URI),
                ]),
        )
        .await;
        let xsrf = page
            .split("name=\"xsrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no xsrf in the logout page: {page}"))
            .to_string();
        let resp = login
            .http
            .post(format!("{}/session/end/confirm", self.issuer))
            .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_redirection() || resp.status().is_success(),
            "logout confirm: {}",
            resp.status()
        );
    }

    /// Stops the provider (SIGTERM by PID) and waits for it.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        send_signal(self.child.id(), "TERM");
        let _ = self.child.wait();
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.halt();
        }
    }
}

/// A session at the provider: its ID token and the client with its cookies.
pub struct Login {
    pub http: reqwest::Client,
    pub id_token: String,
}

/// A loopback HTTP server answering JSON documents by path (an IdP's
/// discovery document and JWKS), changeable while it runs; counts requests.
#[derive(Clone)]
pub struct Documents {
    pub addr: SocketAddr,
    docs: Arc<Mutex<HashMap<String, (u16, String)>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Documents {
    /// Starts serving on a free port (on the current tokio runtime).
    pub async fn start() -> Documents {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let docs = Documents {
            addr: listener.local_addr().unwrap(),
            docs: Arc::default(),
            hits: Arc::default(),
        };
        let served = docs.clone();
        super::serve_each(listener, move |stream| {
            let served = served.clone();
            async move { served.answer(stream).await }
        });
        docs
    }

    async fn answer(&self, mut stream: tokio::net::TcpStream) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf);
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        *self.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
        let (status, body) = self
            .docs
            .lock()
            .unwrap()
            .get(&path)
            .cloned()
            .unwrap_or((404, "{}".into()));
        let resp = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(resp.as_bytes()).await;
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `body` at `path` with `status`.
    pub fn set(&self, path: &str, status: u16, body: &str) {
        self.docs
            .lock()
            .unwrap()
            .insert(path.to_string(), (status, body.to_string()));
    }

    /// Requests seen for `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// A JWKS of HMAC secrets `(kid, secret)` (HS256), for IdP tokens the test mints.
pub fn oct_jwks(keys: &[(&str, &str)]) -> String {
    use base64::Engine;
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .map(|(kid, secret)| {
            serde_json::json!({
                "kty": "oct", "alg": "HS256", "use": "sig", "kid": kid,
                "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
            })
        })
        .collect();
    serde_json::json!({ "keys": keys }).to_string()
}

/// `claims` signed HS256 with `secret`, header `kid` and `typ` (if any).
pub fn hs256_jwt(secret: &str, kid: &str, typ: Option<&str>, claims: &serde_json::Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.to_string());
    header.typ = typ.map(String::from);
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}
