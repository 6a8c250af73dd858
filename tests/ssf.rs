//! The Shared Signals receiver: SETs signed as the CAEP interoperability
//! profile says (RS256, 2048-bit keys, subjects `iss_sub`, `email` and
//! `complex` with a `session`), pushed (RFC 8935) by a transmitter the
//! gateway discovered; each check refusing with its RFC 8935 code.

mod common;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const EVENTS: &str = "/.sessiongate/ssf/events";
const AUDIENCE: &str = "https://gateway.example";
const PUSH_TOKEN: &str = "ssf-push-token-0123456789abcdef";
const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
const IDP: &str = "https://idp.example";

/// The transmitter's RS256 key (tests/keys/rsa.key.pem, 2048 bits).
fn transmitter_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(keys_dir().join("rsa.key.pem")).unwrap()).unwrap()
}

/// A transmitter: its SSF configuration and its JWKS (kid `tr1`).
async fn transmitter() -> Documents {
    let docs = Documents::start().await;
    let mut jwk =
        jsonwebtoken::jwk::Jwk::from_encoding_key(&transmitter_key(), Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("tr1".into());
    docs.set(
        "/.well-known/ssf-configuration",
        200,
        &json!({"issuer": docs.url(), "jwks_uri": format!("{}/jwks", docs.url()),
                "delivery_methods_supported": ["urn:ietf:rfc:8935"]})
        .to_string(),
    );
    docs.set("/jwks", 200, &json!({"keys": [jwk]}).to_string());
    docs
}

fn ssf_config(docs: &Documents, up: &TestUpstream) -> GatewayConfig {
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.extra.push_str(&format!(
        "\n[ssf]\ntransmitter = \"{}\"\naudience = \"{AUDIENCE}\"\npush_token_env = \"SG_TEST_SSF_TOKEN\"\n",
        docs.url()
    ));
    cfg.env
        .push(("SG_TEST_SSF_TOKEN".into(), PUSH_TOKEN.into()));
    cfg
}

fn set_token(header: Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn set_header() -> Header {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("tr1".into());
    h.typ = Some("secevent+jwt".into());
    h
}

fn set_claims(docs: &Documents, event: &str, payload: Value, sub_id: Value) -> Value {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    json!({
        "iss": docs.url(), "aud": AUDIENCE, "iat": now(), "jti": format!("set-{n}"),
        "sub_id": sub_id, "events": {event: payload},
    })
}

fn signed(claims: &Value) -> String {
    set_token(set_header(), claims, &transmitter_key())
}

async fn push(gw: &Gateway, set: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url(EVENTS))
        .bearer_auth(PUSH_TOKEN)
        .header("content-type", "application/secevent+jwt")
        .header("accept", "application/json")
        .body(set.to_string())
        .send()
        .await
        .unwrap()
}

fn token_at(sub: &str, sid: &str, iat: i64) -> String {
    hs256(&json!({"sub": sub, "sid": sid, "iat": iat, "exp": iat + 3600}))
}

#[tokio::test]
async fn caep_events_revoke_sessions_and_users() {
    let up = TestUpstream::start();
    let docs = transmitter().await;
    let gw = Gateway::start(ssf_config(&docs, &up)).await;
    let now = now();
    let alice = token_at("alice", "s-alice", now - 60);
    let alice_other = token_at("alice", "s-alice-2", now - 60);
    let bob_old = token_at("bob", "s-bob-old", now - 600);
    let bob_new = token_at("bob", "s-bob-new", now - 10);
    for t in [&alice, &alice_other, &bob_old, &bob_new] {
        assert_eq!(gw.status("/", t).await, 200);
    }

    // session-revoked, complex subject with the session: that session only.
    let set = signed(&set_claims(
        &docs,
        SESSION_REVOKED,
        json!({"event_timestamp": now - 1, "initiating_entity": "policy"}),
        json!({"format": "complex",
               "session": {"format": "opaque", "id": "s-alice"},
               "user": {"format": "iss_sub", "iss": IDP, "sub": "alice"}}),
    ));
    let resp = push(&gw, &set).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(gw.status("/", &alice).await, 401);
    assert_eq!(gw.status("/", &alice_other).await, 200);
    // Pushed again: a replay.
    let again = push(&gw, &set).await;
    assert_eq!(again.status(), 400);
    assert_eq!(
        again.json::<Value>().await.unwrap()["err"],
        "invalid_request"
    );

    // credential-change for bob (iss_sub): cut off at event_timestamp, so
    // a session that signed in after the change survives.
    let set = signed(&set_claims(
        &docs,
        CREDENTIAL_CHANGE,
        json!({"event_timestamp": now - 120, "credential_type": "password", "change_type": "update"}),
        json!({"format": "iss_sub", "iss": IDP, "sub": "bob"}),
    ));
    assert_eq!(push(&gw, &set).await.status(), 202);
    assert_eq!(gw.status("/", &bob_old).await, 401);
    assert_eq!(gw.status("/", &bob_new).await, 200);

    // An email subject while users are `sub`: acknowledged, audited as
    // unmatched, nothing revoked.
    let set = signed(&set_claims(
        &docs,
        SESSION_REVOKED,
        json!({"event_timestamp": now}),
        json!({"format": "email", "email": "alice@example.com"}),
    ));
    assert_eq!(push(&gw, &set).await.status(), 202);
    assert_eq!(gw.status("/", &alice_other).await, 200);

    // The verification event and an event not acted on: acknowledged.
    let set = signed(&set_claims(
        &docs,
        VERIFICATION,
        json!({"state": "s-123"}),
        Value::Null,
    ));
    assert_eq!(push(&gw, &set).await.status(), 202);
    let set = signed(&set_claims(
        &docs,
        "https://schemas.openid.net/secevent/caep/event-type/assurance-level-change",
        json!({"current_level": "nist-aal2", "previous_level": "nist-aal1", "change_direction": "increase"}),
        json!({"format": "iss_sub", "iss": IDP, "sub": "alice"}),
    ));
    assert_eq!(push(&gw, &set).await.status(), 202);

    let audit = gw.admin_json("/v1/audit").await;
    let actor = format!("ssf:{}", docs.url());
    let entries: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == actor)
        .collect();
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "revoke_session" && e["target"] == "session:s-alice"),
        "{audit}"
    );
    assert!(entries.iter().any(|e| e["action"] == "revoke_user"
        && e["target"] == "user:bob"
        && e["reason"] == "credential_change"));
    assert!(entries
        .iter()
        .any(|e| e["action"] == "unmatched_event" && e["target"] == "email:alice@example.com"));
    gw.metric_reaches(
        r#"sessiongate_idp_events_total{receiver="ssf",result="acknowledged"}"#,
        2.0,
    )
    .await;
    gw.metric_reaches(
        r#"sessiongate_idp_events_total{receiver="ssf",result="unmatched"}"#,
        1.0,
    )
    .await;
}

#[tokio::test]
async fn every_check_of_a_set_refuses_it_with_its_code() {
    let up = TestUpstream::start();
    let docs = transmitter().await;
    let gw = Gateway::start(ssf_config(&docs, &up)).await;
    let kept = token_at("carol", "s-carol", now() - 60);
    assert_eq!(gw.status("/", &kept).await, 200);
    let subject = || json!({"format": "complex", "session": {"format": "opaque", "id": "s-carol"}});
    let good = || set_claims(&docs, SESSION_REVOKED, json!({}), subject());
    let edit = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut c = good();
        f(c.as_object_mut().unwrap());
        signed(&c)
    };
    let mut no_typ = set_header();
    no_typ.typ = None;
    let mut other_kid = set_header();
    other_kid.kid = Some("tr9".into());
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("tr1".into());
    hs.typ = Some("secevent+jwt".into());
    let forged = {
        let t = signed(&good());
        let (head, _) = t.rsplit_once('.').unwrap();
        format!("{head}.{}", "A".repeat(342))
    };
    let cases: Vec<(&str, &str, String)> = vec![
        (
            "wrong iss",
            "invalid_issuer",
            edit(&|c| {
                c.insert("iss".into(), json!("https://evil.example"));
            }),
        ),
        (
            "wrong aud",
            "invalid_audience",
            edit(&|c| {
                c.insert("aud".into(), json!("https://other.example"));
            }),
        ),
        (
            "no aud",
            "invalid_audience",
            edit(&|c| {
                c.remove("aud");
            }),
        ),
        ("forged signature", "authentication_failed", forged),
        (
            "unknown kid",
            "invalid_key",
            set_token(other_kid, &good(), &transmitter_key()),
        ),
        (
            "HS256 with the app's secret",
            "invalid_key",
            set_token(hs, &good(), &EncodingKey::from_secret(SECRET.as_bytes())),
        ),
        (
            "no typ",
            "invalid_request",
            set_token(no_typ, &good(), &transmitter_key()),
        ),
        (
            "a sub claim",
            "invalid_request",
            edit(&|c| {
                c.insert("sub".into(), json!("carol"));
            }),
        ),
        (
            "an exp claim",
            "invalid_request",
            edit(&|c| {
                c.insert("exp".into(), json!(now() + 60));
            }),
        ),
        (
            "no jti",
            "invalid_request",
            edit(&|c| {
                c.remove("jti");
            }),
        ),
        (
            "no iat",
            "invalid_request",
            edit(&|c| {
                c.remove("iat");
            }),
        ),
        (
            "future iat",
            "invalid_request",
            edit(&|c| {
                c.insert("iat".into(), json!(now() + 3600));
            }),
        ),
        (
            "two events",
            "invalid_request",
            edit(&|c| {
                c.insert(
                    "events".into(),
                    json!({SESSION_REVOKED: {}, CREDENTIAL_CHANGE: {}}),
                );
            }),
        ),
        (
            "no events",
            "invalid_request",
            edit(&|c| {
                c.remove("events");
            }),
        ),
        ("an access token", "invalid_request", kept.clone()),
    ];
    for (what, code, set) in &cases {
        let resp = push(&gw, set).await;
        assert_eq!(resp.status(), 400, "{what}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["err"], *code, "{what}: {body}");
        assert!(body["description"].is_string(), "{what}");
    }
    let valid = signed(&good());
    let client = reqwest::Client::new();
    let send = |token: Option<&str>, content_type: &str| {
        let mut r = client
            .post(gw.url(EVENTS))
            .header("content-type", content_type)
            .body(valid.clone());
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    for (what, token, ct, code) in [
        (
            "no push token",
            None,
            "application/secevent+jwt",
            "access_denied",
        ),
        (
            "wrong push token",
            Some("wrong-token-0123456789abcdef"),
            "application/secevent+jwt",
            "access_denied",
        ),
        (
            "not a SET body",
            Some(PUSH_TOKEN),
            "application/json",
            "invalid_request",
        ),
    ] {
        let resp = send(token, ct).await.unwrap();
        assert_eq!(resp.status(), 400, "{what}");
        assert_eq!(resp.json::<Value>().await.unwrap()["err"], code, "{what}");
    }
    assert_eq!(
        client.get(gw.url(EVENTS)).send().await.unwrap().status(),
        405
    );
    // Nothing was revoked by any of them; the legitimate SET is.
    assert_eq!(gw.status("/", &kept).await, 200);
    assert_eq!(push(&gw, &valid).await.status(), 202);
    assert_eq!(gw.status("/", &kept).await, 401);
}

/// A transmitter whose configuration names another issuer is not trusted:
/// the receiver answers 503 until keys are known, the gateway serves on.
#[tokio::test]
async fn a_transmitter_naming_another_issuer_is_not_trusted() {
    let up = TestUpstream::start();
    let docs = transmitter().await;
    docs.set(
        "/.well-known/ssf-configuration",
        200,
        &json!({"issuer": "https://evil.example", "jwks_uri": format!("{}/jwks", docs.url())})
            .to_string(),
    );
    let gw = Gateway::start(ssf_config(&docs, &up)).await;
    gw.metric_reaches("sessiongate_jwks_fetch_errors_total", 1.0)
        .await;
    let set = signed(&set_claims(
        &docs,
        SESSION_REVOKED,
        json!({}),
        json!({"format": "iss_sub", "iss": IDP, "sub": "x"}),
    ));
    let resp = push(&gw, &set).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(docs.hits("/jwks"), 0);
    assert_eq!(
        gw.status("/", &token_at("dan", "s-dan", now() - 5)).await,
        200
    );
}
