//! One test per check of a logout token, each beside the token that passes.

use serde_json::{json, Value};

use super::*;
use crate::idp::test_support::{self, keys, SECRET};

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://idp.example";

fn sign_raw(header: Value, payload: &str) -> String {
    test_support::sign_raw(SECRET, header, payload)
}

fn sign(claims: &Value) -> String {
    test_support::sign("logout+jwt", claims)
}

fn good() -> Value {
    json!({
        "iss": ISS,
        "aud": "web",
        "iat": NOW,
        "exp": NOW + 120,
        "jti": "j-1",
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        "sid": "idp-session-1",
        "sub": "alice",
    })
}

fn check(token: &str) -> Result<LogoutOrder, LogoutError> {
    let audiences = vec!["web".to_string(), "mobile".to_string()];
    let rules = LogoutRules {
        issuer: ISS,
        audiences: &audiences,
        leeway_s: 30,
    };
    test_support::fresh(|keys, replay| {
        check_logout_token(keys, token.as_bytes(), &rules, replay, NOW)
    })
}

fn with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    test_support::sign_edited("logout+jwt", good(), edit)
}

#[test]
fn a_logout_token_with_sid_revokes_that_session() {
    let order = check(&sign(&good())).unwrap();
    assert_eq!(order.target, LogoutTarget::Session("idp-session-1".into()));
    assert_eq!(order.issuer, ISS);
    assert_eq!(order.jti, "j-1");
}

#[test]
fn a_logout_token_with_only_sub_cuts_off_the_user() {
    let t = with(|c| {
        c.remove("sid");
    });
    assert_eq!(
        check(&t).unwrap().target,
        LogoutTarget::User("alice".into())
    );
}

#[test]
fn neither_sid_nor_sub_is_refused() {
    let t = with(|c| {
        c.remove("sid");
        c.remove("sub");
    });
    assert_eq!(check(&t), Err(LogoutError::NoSubject));
    let t = with(|c| {
        c.insert("sid".into(), json!(""));
        c.remove("sub");
    });
    assert_eq!(check(&t), Err(LogoutError::NoSubject));
}

#[test]
fn typ_must_be_logout_jwt_when_present() {
    let claims = good().to_string();
    for typ in ["logout+jwt", "application/logout+jwt", "Logout+JWT"] {
        let t = sign_raw(json!({"alg": "HS256", "kid": "k1", "typ": typ}), &claims);
        assert!(check(&t).is_ok(), "{typ}");
    }
    let t = sign_raw(json!({"alg": "HS256", "kid": "k1"}), &claims);
    assert!(check(&t).is_ok(), "no typ");
    for typ in ["JWT", "at+jwt", "secevent+jwt"] {
        let t = sign_raw(json!({"alg": "HS256", "kid": "k1", "typ": typ}), &claims);
        assert_eq!(
            check(&t),
            Err(LogoutError::Jws(TokenError::WrongType)),
            "{typ}"
        );
    }
}

#[test]
fn the_signature_must_verify_with_the_idps_keys() {
    let t = sign(&good());
    let (head, _) = t.rsplit_once('.').unwrap();
    let forged = format!("{head}.AAAA");
    assert_eq!(
        check(&forged),
        Err(LogoutError::Jws(TokenError::BadSignature))
    );
    let unknown_kid = sign_raw(
        json!({"alg": "HS256", "kid": "k2", "typ": "logout+jwt"}),
        &good().to_string(),
    );
    assert_eq!(
        check(&unknown_kid),
        Err(LogoutError::Jws(TokenError::NoMatchingKey))
    );
    let none = sign_raw(
        json!({"alg": "none", "typ": "logout+jwt"}),
        &good().to_string(),
    );
    assert!(matches!(check(&none), Err(LogoutError::Jws(_))));
}

#[test]
fn iss_must_be_the_idps() {
    assert_eq!(
        check(&with(|c| {
            c.insert("iss".into(), json!("https://evil.example"));
        })),
        Err(LogoutError::Issuer)
    );
    assert_eq!(
        check(&with(|c| {
            c.remove("iss");
        })),
        Err(LogoutError::Issuer)
    );
}

#[test]
fn aud_must_name_one_of_the_audiences() {
    assert!(check(&with(|c| {
        c.insert("aud".into(), json!(["other", "mobile"]));
    }))
    .is_ok());
    assert_eq!(
        check(&with(|c| {
            c.insert("aud".into(), json!("other"));
        })),
        Err(LogoutError::Audience)
    );
    assert_eq!(
        check(&with(|c| {
            c.remove("aud");
        })),
        Err(LogoutError::Audience)
    );
}

#[test]
fn iat_must_be_within_the_leeway() {
    assert!(check(&with(|c| {
        c.insert("iat".into(), json!(NOW - 30));
    }))
    .is_ok());
    assert!(check(&with(|c| {
        c.insert("iat".into(), json!(NOW as f64 + 0.5));
    }))
    .is_ok());
    for iat in [NOW - 31, NOW + 31, NOW - 86_400] {
        assert_eq!(
            check(&with(|c| {
                c.insert("iat".into(), json!(iat));
            })),
            Err(LogoutError::IssuedAt),
            "{iat}"
        );
    }
    assert_eq!(
        check(&with(|c| {
            c.remove("iat");
        })),
        Err(LogoutError::IssuedAt)
    );
    assert!(check(&with(|c| {
        c.insert("iat".into(), json!("now"));
    }))
    .is_err());
}

#[test]
fn exp_must_not_have_passed() {
    assert!(check(&with(|c| {
        c.remove("exp");
    }))
    .is_ok());
    assert_eq!(
        check(&with(|c| {
            c.insert("exp".into(), json!(NOW - 31));
        })),
        Err(LogoutError::Expired)
    );
}

#[test]
fn jti_is_required_and_never_seen_twice() {
    assert_eq!(
        check(&with(|c| {
            c.remove("jti");
        })),
        Err(LogoutError::NoJti)
    );
    let audiences = vec!["web".to_string()];
    let rules = LogoutRules {
        issuer: ISS,
        audiences: &audiences,
        leeway_s: 30,
    };
    let replay = ReplayCache::default();
    let t = sign(&good());
    assert!(check_logout_token(&keys(), t.as_bytes(), &rules, &replay, NOW).is_ok());
    assert_eq!(
        check_logout_token(&keys(), t.as_bytes(), &rules, &replay, NOW + 1),
        Err(LogoutError::Replayed)
    );
    // A failed revocation gives the jti back: the IdP may send it again.
    replay.release(ISS, "j-1");
    assert!(check_logout_token(&keys(), t.as_bytes(), &rules, &replay, NOW + 2).is_ok());
}

#[test]
fn events_must_hold_the_logout_event() {
    assert_eq!(
        check(&with(|c| {
            c.remove("events");
        })),
        Err(LogoutError::NoEvent)
    );
    assert_eq!(
        check(&with(|c| {
            c.insert(
                "events".into(),
                json!({"https://schemas.openid.net/secevent/caep/event-type/session-revoked": {}}),
            );
        })),
        Err(LogoutError::NoEvent)
    );
    assert_eq!(
        check(&with(|c| {
            c.insert("events".into(), json!({BACKCHANNEL_LOGOUT_EVENT: "yes"}));
        })),
        Err(LogoutError::NoEvent)
    );
}

#[test]
fn a_nonce_makes_it_an_id_token() {
    assert_eq!(
        check(&with(|c| {
            c.insert("nonce".into(), json!("n"));
        })),
        Err(LogoutError::Nonce)
    );
}

#[test]
fn a_repeated_claim_is_refused() {
    let payload = good()
        .to_string()
        .replacen("\"sid\":", "\"sid\":\"other\",\"sid\":", 1);
    let t = sign_raw(
        json!({"alg": "HS256", "kid": "k1", "typ": "logout+jwt"}),
        &payload,
    );
    assert!(matches!(check(&t), Err(LogoutError::Claims(_))));
    let t = sign_raw(json!({"alg": "HS256", "kid": "k1"}), "[1,2]");
    assert!(matches!(check(&t), Err(LogoutError::Claims(_))));
}

#[test]
fn the_form_holds_exactly_one_logout_token() {
    assert_eq!(logout_token_field(b"logout_token=abc").unwrap(), "abc");
    assert_eq!(logout_token_field(b"x=1"), Err(LogoutError::NoToken));
    assert_eq!(
        logout_token_field(b"logout_token="),
        Err(LogoutError::NoToken)
    );
    assert_eq!(
        logout_token_field(b"logout_token=a&logout_token=b"),
        Err(LogoutError::NoToken)
    );
}
