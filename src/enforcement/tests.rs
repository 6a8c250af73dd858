//! The decision, one row per rule, without a socket.
use super::*;
use crate::revocation::{Revoked, SessionRevocation, UserCutoff};
use http::{HeaderValue, StatusCode};
use serde_json::json;

const NOW: i64 = 1_800_000_000;
const SECRET: &str = "decision-table-secret-0123456789abcdef";

fn enforcer(mode: &str) -> Enforcer {
    let toml = format!(
        "[listen]\nproxy = \"127.0.0.1:1\"\n[upstream]\naddress = \"127.0.0.1:2\"\n\
         [[token.keys]]\nalgorithm = \"HS256\"\nsecret = \"{SECRET}\"\n\
         [enforcement]\nmode = \"{mode}\"\npublic_paths = [\"/pub\"]\nfail_closed_after_s = 5\n\
         [[enforcement.routes]]\nprefix = \"/account/security\"\namr_any = [\"mfa\"]\n\
         [[enforcement.routes]]\nprefix = \"/pub/payments\"\nacr_values = [\"gold\"]\nmax_age_s = 300\n\
         [sessions]\nrefuse_new_location = true\n"
    );
    let dir = std::env::temp_dir();
    let config = Config::from_toml(&toml, &dir.join("t.toml"), &dir).unwrap();
    let revocations = Arc::new(RevocationSet::new());
    revocations.apply_session(&SessionRevocation {
        session_id: "revoked".into(),
        revoked_at_ms: NOW * 1000,
        expires_at: NOW + 3600,
        reason: "lost".into(),
        actor: "admin".into(),
    });
    revocations.apply_cutoff(&UserCutoff {
        user_id: "bob".into(),
        not_before: NOW - 10,
        except: Some("kept".into()),
        revoked_at_ms: NOW * 1000,
        expires_at: NOW + 3600,
        reason: String::new(),
        actor: "admin".into(),
    });
    Enforcer::new(&config, revocations).unwrap()
}

fn token(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn bearer(claims: serde_json::Value) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {}", token(claims)))]
}

fn ok(sub: &str, sid: &str) -> serde_json::Value {
    json!({"sub": sub, "sid": sid, "iat": NOW - 60, "exp": NOW + 600})
}

/// One row per rule: target, headers, store silence, the outcome in
/// enforce mode and whether anything is stripped.
#[test]
fn one_row_per_rule() {
    struct Row {
        rule: &'static str,
        target: &'static str,
        headers: Vec<(&'static str, String)>,
        silent_ms: i64,
        outcome: Option<Outcome>,
        strips: bool,
    }
    let row = |rule, target, headers, silent_ms, outcome, strips| Row {
        rule,
        target,
        headers,
        silent_ms,
        outcome,
        strips,
    };
    let two = vec![
        ("authorization", format!("Bearer {}", token(ok("a", "s")))),
        ("authorization", "Bearer x".to_string()),
    ];
    let mut with_cookie = bearer(ok("a", "s"));
    with_cookie.push(("cookie", "session=other; theme=dark".into()));
    let control = bearer(json!({"sub": "a\u{1}", "sid": "s", "exp": NOW + 60}));
    let mfa = bearer(
        json!({"sub": "a", "sid": "s", "iat": NOW - 60, "exp": NOW + 600, "amr": ["pwd", "mfa"]}),
    );
    let gold_fresh = bearer(
        json!({"sub": "a", "sid": "s", "iat": NOW - 60, "exp": NOW + 600, "acr": "gold", "auth_time": NOW - 60}),
    );
    let gold_stale = bearer(
        json!({"sub": "a", "sid": "s", "iat": NOW - 60, "exp": NOW + 600, "acr": "gold", "auth_time": NOW - 301}),
    );
    let gold_future = bearer(
        json!({"sub": "a", "sid": "s", "iat": NOW - 60, "exp": NOW + 600, "acr": "gold", "auth_time": NOW + 600}),
    );
    let step_up = Some(Outcome::InsufficientUserAuthentication);
    let rows = vec![
        row(
            "step-up route: amr without mfa",
            "/account/security",
            bearer(ok("a", "s")),
            0,
            step_up,
            false,
        ),
        row(
            "step-up route: amr with mfa",
            "/account/security/pw",
            mfa.clone(),
            0,
            Some(Outcome::Allowed),
            false,
        ),
        row(
            "step-up route: another spelling",
            "/account//Security",
            bearer(ok("a", "s")),
            0,
            step_up,
            false,
        ),
        row(
            "step-up route: encoded",
            "/account/%73ecurity",
            bearer(ok("a", "s")),
            0,
            step_up,
            false,
        ),
        row(
            "step-up route: no token",
            "/account/security",
            vec![],
            0,
            Some(Outcome::MissingToken),
            false,
        ),
        row(
            "step-up route: absolute-form gets every route",
            "http://h/x",
            mfa.clone(),
            0,
            step_up,
            false,
        ),
        row(
            "step-up under a public prefix is not public",
            "/pub/payments",
            vec![],
            0,
            Some(Outcome::MissingToken),
            false,
        ),
        row(
            "step-up: acr and a fresh auth_time",
            "/pub/payments/x",
            gold_fresh,
            0,
            Some(Outcome::Allowed),
            false,
        ),
        row(
            "step-up: auth_time too old",
            "/pub/payments/x",
            gold_stale,
            0,
            step_up,
            false,
        ),
        row(
            "step-up: auth_time in the future",
            "/pub/payments/x",
            gold_future,
            0,
            step_up,
            false,
        ),
        row(
            "step-up: amr does not stand for acr",
            "/pub/payments/x",
            mfa,
            0,
            step_up,
            false,
        ),
        row(
            "reserved prefix",
            "/.sessiongate/sessions",
            vec![],
            0,
            None,
            false,
        ),
        row(
            "public canonical",
            "/pub/x",
            vec![],
            0,
            Some(Outcome::Public),
            false,
        ),
        row(
            "public, revoked token stripped",
            "/pub/x",
            bearer(ok("a", "revoked")),
            0,
            Some(Outcome::Public),
            true,
        ),
        row(
            "non-canonical is not public",
            "/pub/../x",
            vec![],
            0,
            Some(Outcome::MissingToken),
            false,
        ),
        row(
            "absolute-form is not public",
            "http://h/pub",
            vec![],
            0,
            Some(Outcome::MissingToken),
            false,
        ),
        row(
            "missing token",
            "/x",
            vec![],
            0,
            Some(Outcome::MissingToken),
            false,
        ),
        row(
            "allowed",
            "/x",
            bearer(ok("a", "s")),
            0,
            Some(Outcome::Allowed),
            false,
        ),
        row(
            "other credential stripped",
            "/x",
            with_cookie,
            0,
            Some(Outcome::Allowed),
            true,
        ),
        row(
            "ambiguous credentials",
            "/x",
            two,
            0,
            Some(Outcome::InvalidRequest),
            false,
        ),
        row(
            "bad token",
            "/x",
            vec![("authorization", "Bearer a.b.c".into())],
            0,
            Some(Outcome::InvalidToken),
            false,
        ),
        row(
            "expired",
            "/x",
            bearer(json!({"sid": "s", "exp": NOW - 60})),
            0,
            Some(Outcome::TokenExpired),
            false,
        ),
        row(
            "unrepresentable identity",
            "/x",
            control,
            0,
            Some(Outcome::InvalidToken),
            false,
        ),
        row(
            "revoked session",
            "/x",
            bearer(ok("a", "revoked")),
            0,
            Some(Outcome::SessionRevoked),
            false,
        ),
        row(
            "user cutoff",
            "/x",
            bearer(json!({"sub": "bob", "sid": "b1", "iat": NOW - 60, "exp": NOW + 60})),
            0,
            Some(Outcome::SessionRevoked),
            false,
        ),
        row(
            "cutoff exemption",
            "/x",
            bearer(json!({"sub": "bob", "sid": "kept", "iat": NOW - 60, "exp": NOW + 60})),
            0,
            Some(Outcome::Allowed),
            false,
        ),
        row(
            "token after the cutoff",
            "/x",
            bearer(json!({"sub": "bob", "sid": "b2", "iat": NOW - 5, "exp": NOW + 60})),
            0,
            Some(Outcome::Allowed),
            false,
        ),
        row(
            "store silent: fail closed",
            "/x",
            bearer(ok("a", "s")),
            5_001,
            Some(Outcome::StoreUnavailable),
            false,
        ),
        row(
            "store silent within the limit",
            "/x",
            bearer(ok("a", "s")),
            5_000,
            Some(Outcome::Allowed),
            false,
        ),
        row(
            "fail closed on public paths too",
            "/pub",
            vec![],
            5_001,
            Some(Outcome::StoreUnavailable),
            false,
        ),
    ];
    let enforce = enforcer("enforce");
    let monitor = enforcer("monitor");
    for r in rows {
        let mut headers = HeaderMap::new();
        for (k, v) in &r.headers {
            headers.append(*k, HeaderValue::from_str(v).unwrap());
        }
        let facts = Facts {
            target: r.target.as_bytes(),
            headers: &headers,
            now_s: NOW,
            store_silent_ms: r.silent_ms,
        };
        let v = enforce.decide(&facts);
        assert_eq!(v.outcome(), r.outcome, "{}", r.rule);
        assert_eq!(v.strip.is_some(), r.strips, "{}: strip", r.rule);
        assert_eq!(v.monitor_label, None, "{}", r.rule);
        let refused = matches!(v.decision, Decision::Refuse(_));
        assert_eq!(
            refused,
            !matches!(
                r.outcome,
                None | Some(Outcome::Public) | Some(Outcome::Allowed)
            ),
            "{}",
            r.rule
        );
        // Monitor mode: the same outcome, nothing refused or stripped,
        // the label for the app.
        let m = monitor.decide(&facts);
        assert_eq!(m.outcome(), r.outcome, "monitor: {}", r.rule);
        assert!(
            !matches!(m.decision, Decision::Refuse(_)),
            "monitor refused: {}",
            r.rule
        );
        assert_eq!(
            m.strip.is_some(),
            r.strips,
            "monitor strips as enforce does: {}",
            r.rule
        );
        assert_eq!(
            m.monitor_label,
            r.outcome.map(Outcome::label),
            "monitor: {}",
            r.rule
        );
    }
}

#[test]
fn self_service_is_held_to_the_same_rules() {
    let e = enforcer("monitor");
    let mut h = HeaderMap::new();
    let control = token(json!({"sub": "a\u{1}", "sid": "s", "exp": NOW + 60}));
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {control}")).unwrap(),
    );
    assert_eq!(
        e.authenticate(&h, NOW, 0),
        Err(Refusal::InvalidToken(TokenError::Malformed)),
        "unrepresentable"
    );
    let good = token(ok("a", "s"));
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {good}")).unwrap(),
    );
    assert!(e.authenticate(&h, NOW, 0).is_ok());
    assert_eq!(
        e.authenticate(&h, NOW, 9_000),
        Err(Refusal::StoreUnavailable)
    );
}

#[test]
fn refusal_headers_follow_rfc6750() {
    assert_eq!(
        Refusal::MissingToken.www_authenticate().unwrap(),
        r#"Bearer realm="sessiongate""#
    );
    let v = Refusal::Expired.www_authenticate().unwrap();
    assert!(v.to_str().unwrap().contains(r#"error="invalid_token""#));
    let r = Refusal::Revoked(Revoked {
        revoked_at_ms: 0,
        reason: Arc::from("stolen \"laptop\""),
    });
    let body: serde_json::Value = serde_json::from_slice(&r.body()).unwrap();
    assert_eq!(body["error"], "session_revoked");
    assert_eq!(body["reason"], "stolen \"laptop\"");
    assert_eq!(body["revoked_at"], "1970-01-01T00:00:00.000Z");
}

#[test]
fn browsers_are_redirected_when_login_url_is_set() {
    let login = HeaderValue::from_static("https://app.example/login");
    let r = Refusal::MissingToken.render(Some(&login), true);
    assert_eq!(r.status, StatusCode::FOUND);
    let r = Refusal::MissingToken.render(Some(&login), false);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = Refusal::MissingToken.render(None, true);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// The rule decided after the sighting: an unconfirmed new location is
/// refused in enforce mode, labelled in monitor mode, nothing otherwise.
#[test]
fn new_location_is_decided_after_the_sighting() {
    let e = enforcer("enforce");
    assert!(e.after_sighting(false).is_none());
    let v = e.after_sighting(true).unwrap();
    assert_eq!(v.decision, Decision::Refuse(Refusal::NewLocation));
    assert_eq!(v.outcome(), Some(Outcome::NewLocation));
    let m = enforcer("monitor").after_sighting(true).unwrap();
    assert_eq!(m.decision, Decision::Monitored(Refusal::NewLocation));
    assert_eq!(m.monitor_label, Some("new_location"));
}

/// The challenge of a route: only the parameters it sets; the login
/// redirect carries them as query parameters.
#[test]
fn a_step_up_refusal_carries_the_routes_challenge() {
    let e = enforcer("enforce");
    let h: HeaderMap = bearer(json!({"sub": "a", "sid": "s", "iat": NOW - 60, "exp": NOW + 600, "acr": "bronze", "auth_time": NOW - 10}))
        .into_iter()
        .map(|(k, v)| (http::HeaderName::from_static(k), HeaderValue::from_str(&v).unwrap()))
        .collect();
    let v = e.decide(&Facts {
        target: b"/pub/payments",
        headers: &h,
        now_s: NOW,
        store_silent_ms: 0,
    });
    let Decision::Refuse(r) = v.decision else {
        panic!("{:?}", v.decision)
    };
    let challenge = r.www_authenticate().unwrap();
    assert_eq!(
        challenge.to_str().unwrap(),
        r#"Bearer realm="sessiongate", error="insufficient_user_authentication", error_description="a stronger authentication is required", acr_values="gold", max_age=300"#
    );
    let login = HeaderValue::from_static("https://app.example/login?next=%2F");
    let browser = r.render(Some(&login), true);
    assert_eq!(browser.status, StatusCode::FOUND);
    let location = browser
        .headers
        .iter()
        .find(|(n, _)| n == http::header::LOCATION)
        .unwrap()
        .1
        .clone();
    assert_eq!(
        location,
        "https://app.example/login?next=%2F&acr_values=gold&max_age=300"
    );
    let api = r.render(Some(&login), false);
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = serde_json::from_slice(&api.body).unwrap();
    assert_eq!(body["error"], "insufficient_user_authentication");
    // amr_any only: no acr_values parameter, no max_age.
    let v = e.decide(&Facts {
        target: b"/account/security",
        headers: &h,
        now_s: NOW,
        store_silent_ms: 0,
    });
    let Decision::Refuse(r) = v.decision else {
        panic!()
    };
    let c = r.www_authenticate().unwrap();
    assert!(
        !c.to_str().unwrap().contains("acr_values") && !c.to_str().unwrap().contains("max_age"),
        "{c:?}"
    );
    // Monitor mode forwards it under its label.
    let m = enforcer("monitor").decide(&Facts {
        target: b"/account/security",
        headers: &h,
        now_s: NOW,
        store_silent_ms: 0,
    });
    assert_eq!(m.monitor_label, Some("insufficient_user_authentication"));
}
