//! A tiny upstream that answers every request with what it received
//! (method, path, headers) as JSON, so the identity headers the gateway adds
//! are visible. Used by `sessiongate demo` and `sessiongate echo`.

use async_trait::async_trait;
use http::{header, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Map, Value};

/// The echo application (a pingora `ServeHttp`).
#[derive(Debug, Default)]
pub struct Echo;

#[async_trait]
impl ServeHttp for Echo {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let mut body_bytes = 0usize;
        while let Ok(Some(chunk)) = session.read_request_body().await {
            body_bytes += chunk.len();
        }
        let req = session.req_header();
        let mut headers = Map::new();
        for (name, value) in req.headers.iter() {
            let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match headers.get_mut(name.as_str()) {
                Some(Value::String(existing)) => {
                    existing.push_str(", ");
                    existing.push_str(&v);
                }
                _ => {
                    headers.insert(name.as_str().to_string(), Value::String(v));
                }
            }
        }
        let body = json!({
            "method": req.method.as_str(),
            "path": req.uri.path(),
            "query": req.uri.query(),
            "headers": headers,
            "body_bytes": body_bytes,
        });
        let mut text = serde_json::to_vec_pretty(&body).unwrap_or_default();
        text.push(b'\n');
        let mut resp = Response::new(text);
        *resp.status_mut() = StatusCode::OK;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        let len = resp.body().len();
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, len.into());
        resp
    }
}

/// A pingora service running [`Echo`] on `addr`.
pub fn service(addr: &str) -> pingora::services::listening::Service<Echo> {
    let mut s = pingora::services::listening::Service::new("echo".to_string(), Echo);
    s.threads = Some(1);
    s.add_tcp(addr);
    s
}
