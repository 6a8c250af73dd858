//! The gateway config a test starts from, and the lines it changes.

use super::*;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The pieces of a gateway config a test changes; the rest is generated.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub upstream: String,
    /// Extra lines of `[upstream]`.
    pub upstream_lines: Vec<String>,
    /// Extra lines of `[listen]`.
    pub listen: Vec<String>,
    /// Extra lines of `[token]`.
    pub token: Vec<String>,
    /// Bodies of `[[token.keys]]` tables.
    pub keys: Vec<String>,
    /// Lines of `[enforcement]`.
    pub enforcement: Vec<String>,
    pub admin_token: Option<String>,
    /// Extra lines of `[admin]`.
    pub admin: Vec<String>,
    /// CA of an HTTPS admin listener (set with `admin.tls_*` lines).
    pub admin_ca: Option<PathBuf>,
    /// Extra lines of `[store]`.
    pub store: Vec<String>,
    /// Raw TOML appended at the end (more tables).
    pub extra: String,
    /// Environment variables of the gateway process (secrets named by
    /// `*_env` keys).
    pub env: Vec<(String, String)>,
}

impl GatewayConfig {
    /// HS256 with [`SECRET`] and the admin token [`ADMIN_TOKEN`].
    pub fn new(upstream: SocketAddr) -> GatewayConfig {
        GatewayConfig {
            upstream: upstream.to_string(),
            upstream_lines: Vec::new(),
            listen: Vec::new(),
            token: Vec::new(),
            keys: vec![format!("algorithm = \"HS256\"\nsecret = \"{SECRET}\"")],
            enforcement: Vec::new(),
            admin_token: Some(ADMIN_TOKEN.to_string()),
            admin: Vec::new(),
            admin_ca: None,
            store: Vec::new(),
            extra: String::new(),
            env: Vec::new(),
        }
    }

    pub fn render(&self, proxy: u16, admin: u16) -> String {
        let mut t = format!(
            "[listen]\nproxy = \"127.0.0.1:{proxy}\"\nadmin = \"127.0.0.1:{admin}\"\nthreads = 2\ngrace_period_s = 1\n"
        );
        for l in &self.listen {
            t.push_str(l);
            t.push('\n');
        }
        t.push_str(&format!(
            "\n[upstream]\naddress = \"{}\"\nconnect_timeout_ms = 500\n",
            self.upstream
        ));
        for l in &self.upstream_lines {
            t.push_str(l);
            t.push('\n');
        }
        t.push_str("\n[token]\n");
        for l in &self.token {
            t.push_str(l);
            t.push('\n');
        }
        for k in &self.keys {
            t.push_str("\n[[token.keys]]\n");
            t.push_str(k);
            t.push('\n');
        }
        t.push_str("\n[enforcement]\n");
        for l in &self.enforcement {
            t.push_str(l);
            t.push('\n');
        }
        t.push_str("\n[admin]\n");
        if let Some(a) = &self.admin_token {
            t.push_str(&format!("token = \"{a}\"\n"));
        }
        for l in &self.admin {
            t.push_str(l);
            t.push('\n');
        }
        t.push_str("\n[store]\n");
        if !self
            .store
            .iter()
            .any(|l| l.trim_start().starts_with("path"))
        {
            t.push_str("path = \"data/sessiongate.db\"\n");
        }
        for l in &self.store {
            t.push_str(l);
            t.push('\n');
        }
        t.push_str(&self.extra);
        t
    }
}
