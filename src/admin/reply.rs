//! The answers of the gateway's own pages on the proxy listener: a
//! response as plain data, the security headers every page carries, and an
//! error as JSON or as a page.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::page;
use super::selfservice::PAGE;
use crate::enforcement::{Outcome, Refusal};

/// The answer: status, headers, body, and the decision to count.
#[derive(Debug)]
pub struct Response {
    /// The response status.
    pub status: StatusCode,
    /// The response headers (content type, caching and security headers,
    /// `Location` for redirects).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The response body: HTML, JSON or plain text.
    pub body: Bytes,
    /// The decision to count in `sessiongate_requests_total`; `None` (no
    /// such self-service path) counts nothing.
    pub outcome: Option<Outcome>,
}

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(super) fn common_headers(content_type: &'static str) -> Vec<(HeaderName, HeaderValue)> {
    vec![
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
    ]
}

pub(super) fn json_response(
    status: StatusCode,
    value: serde_json::Value,
    outcome: Option<Outcome>,
) -> Response {
    let mut body = serde_json::to_vec(&value).unwrap_or_default();
    body.push(b'\n');
    Response {
        status,
        headers: common_headers("application/json"),
        body: Bytes::from(body),
        outcome,
    }
}

pub(super) fn html_response(
    status: StatusCode,
    html: String,
    outcome: Option<Outcome>,
) -> Response {
    Response {
        status,
        headers: common_headers("text/html; charset=utf-8"),
        body: Bytes::from(html),
        outcome,
    }
}

pub(super) fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

impl Response {
    /// A refusal as JSON, from [`Refusal::render`]; a request-path 401 is a
    /// redirect to `login_url` when one is given (a browser asking).
    pub fn refused(
        refusal: &Refusal,
        login_url: Option<&HeaderValue>,
        outcome: Option<Outcome>,
    ) -> Response {
        let r = refusal.render(login_url, login_url.is_some());
        let mut headers = vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )];
        headers.extend(r.headers);
        Response {
            status: r.status,
            headers,
            body: r.body,
            outcome,
        }
    }
}

/// An error of a self-service action: JSON when asked for, otherwise a page
/// with the refusal's status and words and a way back.
pub(super) fn error(headers: &HeaderMap, refusal: &Refusal, outcome: Option<Outcome>) -> Response {
    if wants_json(headers) {
        return Response::refused(refusal, None, outcome);
    }
    let status = refusal.status();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><main><h1>{title}</h1><p>{msg}</p><p><a href=\"{PAGE}\">Back to your sessions</a></p></main></body></html>",
        title = page::escape(status.canonical_reason().unwrap_or("Error")),
        msg = page::escape(&refusal.description())
    );
    let mut response = html_response(status, html, outcome);
    if let Refusal::MethodNotAllowed(allow) = refusal {
        response
            .headers
            .push((header::ALLOW, HeaderValue::from_static(allow)));
    }
    response
}
