//! One test per check of a SET, each beside the SET that passes.

use serde_json::{json, Value};

use super::*;
use crate::idp::test_support::{self, keys, SECRET};

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://tr.example";
const AUD: &str = "https://gateway.example";

fn sign_raw(header: Value, payload: &str) -> String {
    test_support::sign_raw(SECRET, header, payload)
}

fn sign(claims: &Value) -> String {
    test_support::sign("secevent+jwt", claims)
}

fn good() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "iat": NOW, "jti": "set-1",
        "sub_id": {"format": "complex",
                   "session": {"format": "opaque", "id": "idp-s1"},
                   "user": {"format": "iss_sub", "iss": "https://idp.example", "sub": "alice"}},
        "events": {SESSION_REVOKED: {"event_timestamp": NOW - 5}},
    })
}

fn check(token: &str) -> Result<CheckedSet, SetError> {
    let rules = SetRules {
        issuer: ISS,
        audience: AUD,
        leeway_s: 30,
    };
    test_support::fresh(|keys, replay| check_set(keys, token.as_bytes(), &rules, replay, NOW))
}

fn with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    test_support::sign_edited("secevent+jwt", good(), edit)
}

#[test]
fn a_session_revoked_set_names_the_session_and_its_user() {
    let set = check(&sign(&good())).unwrap();
    assert_eq!(set.event_type, SESSION_REVOKED);
    assert_eq!(set.at, NOW - 5);
    assert_eq!(
        set.subject,
        Some(Subject::Session {
            id: "idp-s1".into(),
            user: Some(UserRef::IssSub {
                iss: "https://idp.example".into(),
                sub: "alice".into()
            }),
        })
    );
}

#[test]
fn subject_formats_iss_sub_email_and_the_events_own_subject() {
    let t = with(|c| {
        c.insert(
            "sub_id".into(),
            json!({"format": "email", "email": "a@example.com"}),
        );
    });
    assert_eq!(
        check(&t).unwrap().subject,
        Some(Subject::User(UserRef::Email("a@example.com".into())))
    );
    let t = with(|c| {
        c.remove("sub_id");
        c.insert(
            "events".into(),
            json!({CREDENTIAL_CHANGE: {
            "subject": {"format": "iss_sub", "iss": "https://idp.example", "sub": "bob"},
            "credential_type": "password", "change_type": "update"}}),
        );
    });
    let set = check(&t).unwrap();
    assert_eq!(set.at, NOW, "no event_timestamp: iat");
    assert_eq!(
        set.subject,
        Some(Subject::User(UserRef::IssSub {
            iss: "https://idp.example".into(),
            sub: "bob".into()
        }))
    );
    let t = with(|c| {
        c.insert(
            "sub_id".into(),
            json!({"format": "phone_number", "phone_number": "+1"}),
        );
    });
    assert_eq!(
        check(&t).unwrap().subject,
        Some(Subject::Other("phone_number".into()))
    );
    let t = with(|c| {
        c.insert("sub_id".into(), json!({"format": "iss_sub", "iss": "x"}));
    });
    assert!(matches!(check(&t), Err(SetError::InvalidRequest(_))));
}

#[test]
fn typ_must_be_secevent_jwt() {
    let claims = good().to_string();
    let t = sign_raw(
        json!({"alg": "HS256", "kid": "k1", "typ": "application/secevent+jwt"}),
        &claims,
    );
    assert!(check(&t).is_ok());
    for header in [
        json!({"alg": "HS256", "kid": "k1"}),
        json!({"alg": "HS256", "kid": "k1", "typ": "JWT"}),
    ] {
        let t = sign_raw(header.clone(), &claims);
        assert_eq!(check(&t).unwrap_err().code(), "invalid_request", "{header}");
    }
}

#[test]
fn the_signature_and_key_must_be_the_transmitters() {
    let t = sign(&good());
    let (head, _) = t.rsplit_once('.').unwrap();
    assert_eq!(
        check(&format!("{head}.AAAA")),
        Err(SetError::AuthenticationFailed)
    );
    let other = sign_raw(
        json!({"alg": "HS256", "kid": "t2", "typ": "secevent+jwt"}),
        &good().to_string(),
    );
    assert_eq!(check(&other).unwrap_err().code(), "invalid_key");
    let none = sign_raw(
        json!({"alg": "none", "typ": "secevent+jwt"}),
        &good().to_string(),
    );
    assert_eq!(check(&none).unwrap_err().code(), "invalid_key");
}

#[test]
fn iss_and_aud_must_be_ours() {
    assert_eq!(
        check(&with(|c| {
            c.insert("iss".into(), json!("https://evil.example"));
        })),
        Err(SetError::InvalidIssuer)
    );
    assert_eq!(
        check(&with(|c| {
            c.remove("iss");
        })),
        Err(SetError::InvalidIssuer)
    );
    assert_eq!(
        check(&with(|c| {
            c.insert("aud".into(), json!("https://other.example"));
        })),
        Err(SetError::InvalidAudience)
    );
    assert_eq!(
        check(&with(|c| {
            c.remove("aud");
        })),
        Err(SetError::InvalidAudience)
    );
    assert!(check(&with(|c| {
        c.insert("aud".into(), json!(["x", AUD]));
    }))
    .is_ok());
}

#[test]
fn iat_jti_sub_and_exp() {
    for (what, t) in [
        (
            "no iat",
            with(|c| {
                c.remove("iat");
            }),
        ),
        (
            "future iat",
            with(|c| {
                c.insert("iat".into(), json!(NOW + 31));
            }),
        ),
        (
            "old iat",
            with(|c| {
                c.insert("iat".into(), json!(NOW - SET_MAX_AGE_S - 1));
            }),
        ),
        (
            "no jti",
            with(|c| {
                c.remove("jti");
            }),
        ),
        (
            "a sub claim",
            with(|c| {
                c.insert("sub".into(), json!("alice"));
            }),
        ),
        (
            "an exp claim",
            with(|c| {
                c.insert("exp".into(), json!(NOW + 60));
            }),
        ),
    ] {
        assert_eq!(check(&t).unwrap_err().code(), "invalid_request", "{what}");
    }
}

#[test]
fn exactly_one_event() {
    for (what, t) in [
        (
            "none",
            with(|c| {
                c.insert("events".into(), json!({}));
            }),
        ),
        (
            "missing",
            with(|c| {
                c.remove("events");
            }),
        ),
        (
            "two",
            with(|c| {
                c.insert(
                    "events".into(),
                    json!({SESSION_REVOKED: {}, CREDENTIAL_CHANGE: {}}),
                );
            }),
        ),
        (
            "not an object",
            with(|c| {
                c.insert("events".into(), json!({SESSION_REVOKED: "x"}));
            }),
        ),
    ] {
        assert_eq!(check(&t).unwrap_err().code(), "invalid_request", "{what}");
    }
}

#[test]
fn a_jti_is_acted_on_once() {
    let rules = SetRules {
        issuer: ISS,
        audience: AUD,
        leeway_s: 30,
    };
    let replay = ReplayCache::default();
    let t = sign(&good());
    assert!(check_set(&keys(), t.as_bytes(), &rules, &replay, NOW).is_ok());
    assert_eq!(
        check_set(&keys(), t.as_bytes(), &rules, &replay, NOW)
            .unwrap_err()
            .code(),
        "invalid_request"
    );
}

#[test]
fn a_repeated_claim_is_refused() {
    let payload = good()
        .to_string()
        .replacen("\"jti\":", "\"jti\":\"x\",\"jti\":", 1);
    let t = sign_raw(
        json!({"alg": "HS256", "kid": "k1", "typ": "secevent+jwt"}),
        &payload,
    );
    assert_eq!(check(&t).unwrap_err().code(), "invalid_request");
}

#[test]
fn the_verification_event_carries_its_state() {
    let t = with(|c| {
        c.remove("sub_id");
        c.insert("events".into(), json!({VERIFICATION: {"state": "abc"}}));
    });
    let set = check(&t).unwrap();
    assert_eq!(set.event_type, VERIFICATION);
    assert_eq!(set.state.as_deref(), Some("abc"));
}
