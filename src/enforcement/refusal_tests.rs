//! Every refusal rendered: one row each.
use super::*;
use crate::token::extract::CredentialError;

/// One row per refusal: status, code, challenge, extra header, whether
/// a browser is sent to the login page instead.
#[test]
#[rustfmt::skip]
fn every_refusal_is_mapped_once() {
    let login = HeaderValue::from_static("https://app.example/login");
    type Row = (
        Refusal,
        u16,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        bool,
    );
    let rows: Vec<Row> = vec![
        (
            Refusal::MissingToken,
            401,
            "missing_token",
            Some("realm=\"sessiongate\""),
            None,
            true,
        ),
        (
            Refusal::InvalidToken(TokenError::BadSignature),
            401,
            "invalid_token",
            Some("error=\"invalid_token\""),
            None,
            true,
        ),
        (
            Refusal::Expired,
            401,
            "token_expired",
            Some("error=\"invalid_token\""),
            None,
            true,
        ),
        (
            Refusal::Revoked(Revoked {
                revoked_at_ms: 0,
                reason: "".into(),
            }),
            401,
            "session_revoked",
            Some("error=\"invalid_token\""),
            None,
            true,
        ),
        (Refusal::NewLocation, 403, "new_location", None, None, false),
        (
            Refusal::StoreUnavailable,
            503,
            "store_unavailable",
            None,
            Some("retry-after"),
            false,
        ),
        (
            Refusal::InvalidRequest(CredentialError::DuplicateAuthorization),
            400,
            "invalid_request",
            Some("error=\"invalid_request\""),
            None,
            false,
        ),
        (
            Refusal::PayloadTooLarge(16),
            413,
            "payload_too_large",
            None,
            None,
            false,
        ),
        (
            Refusal::UpstreamUnavailable,
            502,
            "upstream_unavailable",
            None,
            None,
            false,
        ),
        (
            Refusal::StoreFailed("down".into()),
            503,
            "store_unavailable",
            None,
            Some("retry-after"),
            false,
        ),
        (
            Refusal::AdminUnauthorized,
            401,
            "unauthorized",
            Some("realm=\"sessiongate-admin\""),
            None,
            false,
        ),
        (
            Refusal::MisdirectedRequest,
            421,
            "misdirected_request",
            None,
            None,
            false,
        ),
        (
            Refusal::BadRequest("limit must be 1 to 1000".into()),
            400,
            "bad_request",
            None,
            None,
            false,
        ),
        (
            Refusal::NotFound("no such endpoint".into()),
            404,
            "not_found",
            None,
            None,
            false,
        ),
        (
            Refusal::MethodNotAllowed("GET, HEAD"),
            405,
            "method_not_allowed",
            None,
            Some("allow"),
            false,
        ),
        (
            Refusal::Forbidden(Forbidden::NoUser),
            403,
            "no_user",
            None,
            None,
            false,
        ),
        (
            Refusal::Forbidden(Forbidden::CsrfTokenInvalid),
            403,
            "csrf_token_invalid",
            None,
            None,
            false,
        ),
        (
            Refusal::Forbidden(Forbidden::ConfirmFromAnotherSession),
            403,
            "confirm_from_another_session",
            None,
            None,
            false,
        ),
        (Refusal::InvalidLogoutToken("jti is missing".into()), 400, "invalid_request", None, None, false),
        (Refusal::KeysUnavailable, 503, "temporarily_unavailable", None, Some("retry-after"), false),
        (Refusal::SetRefused { err: "invalid_audience", description: "aud".into() }, 400, "invalid_audience", None, None, false),
    ];
    for (refusal, status, code, challenge, extra, redirects) in rows {
        let r = refusal.render(None, false);
        assert_eq!(r.status.as_u16(), status, "{refusal:?}");
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        // RFC 8935 names its fields err/description.
        let field = if matches!(refusal, Refusal::SetRefused { .. }) { "err" } else { "error" };
        assert_eq!(body[field], code, "{refusal:?}");
        assert_eq!(refusal.code(), code, "{refusal:?}");
        assert_eq!(
            refusal
                .outcome()
                .map(Outcome::label)
                .is_some_and(|l| l == code),
            refusal.outcome().is_some()
        );
        let h = |name: http::HeaderName| {
            r.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_str().unwrap().to_string())
        };
        match challenge {
            Some(c) => assert!(
                h(http::header::WWW_AUTHENTICATE).unwrap().contains(c),
                "{refusal:?}"
            ),
            None => assert_eq!(h(http::header::WWW_AUTHENTICATE), None, "{refusal:?}"),
        }
        if let Some(extra) = extra {
            assert!(
                h(http::HeaderName::from_static(extra)).is_some(),
                "{refusal:?}"
            );
        }
        assert_eq!(h(http::header::CACHE_CONTROL).as_deref(), Some("no-store"));
        let browser = refusal.render(Some(&login), true);
        assert_eq!(
            browser.status == StatusCode::FOUND,
            redirects,
            "{refusal:?}"
        );
    }
}
