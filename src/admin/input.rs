//! What the admin API reads from a request, checked: query strings (no
//! unknown or repeated names), ids, reasons, limits, path segments, the
//! `Host` a token-less admin listener accepts; and the typed error every
//! refusal of it becomes.

use crate::enforcement::Refusal;

use super::{DEFAULT_LIMIT, MAX_ID_BYTES, MAX_LIMIT, MAX_REASON_BYTES};

/// A refused or failed admin request: one of the gateway's refusals.
pub(super) type ApiError = Refusal;

/// Malformed input, with what is wrong.
pub(super) fn bad_request(message: impl Into<String>) -> Refusal {
    Refusal::BadRequest(message.into())
}

/// A store that did not answer: nothing was acknowledged.
pub(super) fn store_failed(e: crate::store::StoreError) -> Refusal {
    Refusal::StoreFailed(e.to_string())
}

/// Query parameters, refusing names the endpoint does not know (a typo in
/// `reason` must not be silently dropped) and repeated names.
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `query` (`application/x-www-form-urlencoded`), refusing a
    /// name outside `allowed` or given twice; the error names it.
    pub fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Query, String> {
        Self::parse_api(query, allowed).map_err(|e| e.description().into_owned())
    }

    /// The decoded value of `name`, when given.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name)
    }

    pub(super) fn parse_api(query: Option<&str>, allowed: &[&str]) -> Result<Query, ApiError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if !allowed.contains(&k.as_ref()) {
                return Err(bad_request(format!(
                    "unknown query parameter {k:?} (expected one of: {})",
                    allowed.join(", ")
                )));
            }
            if pairs.iter().any(|(seen, _)| *seen == k) {
                return Err(bad_request(format!("query parameter {k:?} given twice")));
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(Query(pairs))
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(bad_request(format!(
                    "limit must be an integer from 1 to {MAX_LIMIT}, not {v:?}"
                ))),
            },
        }
    }

    pub(super) fn reason(&self) -> Result<&str, ApiError> {
        let reason = self.get("reason").unwrap_or("");
        if reason.len() > MAX_REASON_BYTES {
            return Err(bad_request(format!(
                "reason is longer than {MAX_REASON_BYTES} bytes"
            )));
        }
        if reason.chars().any(char::is_control) {
            return Err(bad_request("reason contains control characters"));
        }
        Ok(reason)
    }
}

/// A session or user id from a path segment or query value.
pub(super) fn checked_id<'a>(what: &str, id: &'a str) -> Result<&'a str, ApiError> {
    if id.is_empty() {
        return Err(bad_request(format!("{what} is empty")));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(bad_request(format!(
            "{what} is longer than {MAX_ID_BYTES} bytes"
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(bad_request(format!("{what} contains control characters")));
    }
    Ok(id)
}

/// The path split into percent-decoded segments.
pub(super) fn segments(path: &str) -> Result<Vec<String>, ApiError> {
    path.trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| bad_request("path is not valid UTF-8 once decoded"))
        })
        .collect()
}

/// `host` (a `Host` value: name or address, optional port) names this
/// machine: `localhost`, a loopback address, or `listener`.
pub fn is_local_host(host: &str, listener: std::net::IpAddr) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6] or [v6]:port
        match rest.split_once(']') {
            Some((addr, "")) => addr,
            Some((addr, tail)) if tail.strip_prefix(':').is_some_and(is_port) => addr,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        }
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match name.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback() || ip == listener,
        Err(_) => false,
    }
}

fn is_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hosts() {
        let listener: std::net::IpAddr = "127.0.0.2".parse().unwrap();
        for ok in [
            "localhost",
            "LOCALHOST:9090",
            "127.0.0.1",
            "127.0.0.1:9090",
            "127.8.9.10",
            "[::1]",
            "[::1]:9090",
            "127.0.0.2:1",
        ] {
            assert!(is_local_host(ok, listener), "{ok}");
        }
        for bad in [
            "",
            "evil.example",
            "evil.example:9090",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "127.0.0.1:",
            "127.0.0.1:x",
            "[::1",
            "[::1]x",
            "::1",
            "10.0.0.1",
            "localhost:9090:9090",
        ] {
            assert!(!is_local_host(bad, listener), "{bad}");
        }
    }
}
