//! Each algorithm family verifies with its own key and nothing else: alg
//! confusion and `none` are refused, `kid` selects the key, JWKS files work
//! and are reloaded when they change.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::Value;

const ALL: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

async fn error_of(resp: reqwest::Response) -> String {
    let v: Value = resp.json().await.unwrap();
    v["error"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn every_algorithm_verifies_with_its_key() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.keys = ALL.iter().map(|a| key_config(*a)).collect();
    let gw = Gateway::start(cfg).await;
    for alg in ALL {
        let tok = sign(alg, None, &claims("alice", &format!("sid-{alg:?}")));
        let resp = gw.get("/", &tok).await;
        assert_eq!(resp.status(), 200, "{alg:?} should verify");
        let seen: Value = resp.json().await.unwrap();
        assert_eq!(seen["headers"]["x-session-id"], format!("sid-{alg:?}"));
    }
}

#[tokio::test]
async fn token_alg_must_equal_key_alg() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    // Only RS256 (by PEM) and ES256 are configured.
    cfg.keys = vec![key_config(Algorithm::RS256), key_config(Algorithm::ES256)];
    let gw = Gateway::start(cfg).await;

    assert_eq!(
        gw.get("/", &sign(Algorithm::RS256, None, &claims("a", "ok")))
            .await
            .status(),
        200
    );

    // Classic confusion: HS256 "signed" with the RSA public key as the secret.
    let public_pem = std::fs::read(keys_dir().join("rsa.pub.pem")).unwrap();
    let confused = sign_with(
        Algorithm::HS256,
        None,
        &claims("a", "confused"),
        &EncodingKey::from_secret(&public_pem),
    );
    assert_eq!(
        error_of(gw.get("/", &confused).await).await,
        "invalid_token"
    );

    // Same RSA key, other RSA algorithm not configured: refused.
    let rs512 = sign(Algorithm::RS512, None, &claims("a", "rs512"));
    assert_eq!(error_of(gw.get("/", &rs512).await).await, "invalid_token");
    let ps256 = sign(Algorithm::PS256, None, &claims("a", "ps256"));
    assert_eq!(error_of(gw.get("/", &ps256).await).await, "invalid_token");

    // An ES256 header over an RSA signature.
    let rs = sign(Algorithm::RS256, None, &claims("a", "swap"));
    let parts: Vec<&str> = rs.split('.').collect();
    let es_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"JWT"}"#);
    let swapped = format!("{es_header}.{}.{}", parts[1], parts[2]);
    assert_eq!(error_of(gw.get("/", &swapped).await).await, "invalid_token");
}

#[tokio::test]
async fn alg_none_is_refused() {
    let up = TestUpstream::start();
    let gw = Gateway::start(GatewayConfig::new(up.addr)).await;
    let payload = URL_SAFE_NO_PAD.encode(claims("a", "none").to_string());
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"None"}"#,
        r#"{"alg":"NONE","typ":"JWT"}"#,
    ] {
        let h = URL_SAFE_NO_PAD.encode(header);
        for sig in ["", "AAAA"] {
            let tok = format!("{h}.{payload}.{sig}");
            let resp = gw.get("/", &tok).await;
            assert_eq!(resp.status(), 401, "{header} sig={sig:?}");
            assert_eq!(error_of(resp).await, "invalid_token");
        }
    }
    // crit extensions are not understood: refused.
    let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","crit":["exp"]}"#);
    let good = hs256(&claims("a", "crit"));
    let sig = good.rsplit('.').next().unwrap();
    let tok = format!("{h}.{payload}.{sig}");
    assert_eq!(error_of(gw.get("/", &tok).await).await, "invalid_token");
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn kid_selects_the_key() {
    let up = TestUpstream::start();
    let mut cfg = GatewayConfig::new(up.addr);
    cfg.keys = vec![
        format!("algorithm = \"HS256\"\nkid = \"k1\"\nsecret = \"first-secret\""),
        format!("algorithm = \"HS256\"\nkid = \"k2\"\nsecret = \"second-secret\""),
    ];
    let gw = Gateway::start(cfg).await;
    let k1 = EncodingKey::from_secret(b"first-secret");
    let k2 = EncodingKey::from_secret(b"second-secret");
    let c = claims("a", "kid");
    assert_eq!(
        gw.get("/", &sign_with(Algorithm::HS256, Some("k1"), &c, &k1))
            .await
            .status(),
        200
    );
    assert_eq!(
        gw.get("/", &sign_with(Algorithm::HS256, Some("k2"), &c, &k2))
            .await
            .status(),
        200
    );
    // kid k1 but signed with k2's secret: only k1 is tried.
    let wrong = sign_with(Algorithm::HS256, Some("k1"), &c, &k2);
    assert_eq!(error_of(gw.get("/", &wrong).await).await, "invalid_token");
    // Unknown kid.
    let unknown = sign_with(Algorithm::HS256, Some("k3"), &c, &k1);
    assert_eq!(error_of(gw.get("/", &unknown).await).await, "invalid_token");
    // No kid: every HS256 key is tried in order.
    assert_eq!(
        gw.get("/", &sign_with(Algorithm::HS256, None, &c, &k2))
            .await
            .status(),
        200
    );
}

fn jwk(alg: Algorithm, private_pem: &str, kid: &str) -> Jwk {
    let pem = std::fs::read(keys_dir().join(private_pem)).unwrap();
    let key = match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    };
    let mut jwk = Jwk::from_encoding_key(&key, alg).unwrap();
    jwk.common.key_id = Some(kid.into());
    jwk
}

#[tokio::test]
async fn jwks_file_is_used_and_reloaded() {
    let up = TestUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    let first = JwkSet {
        keys: vec![
            jwk(Algorithm::RS256, "rsa.key.pem", "rsa-1"),
            jwk(Algorithm::ES256, "es256.key.pem", "ec-1"),
        ],
    };
    std::fs::write(&jwks_path, serde_json::to_string(&first).unwrap()).unwrap();

    let mut cfg = GatewayConfig::new(up.addr);
    cfg.keys = vec![format!("jwks_file = \"{}\"", jwks_path.display())];
    cfg.token.push("jwks_reload_s = 1".into());
    let gw = Gateway::start(cfg).await;

    let c = claims("a", "jwks");
    assert_eq!(
        gw.get("/", &sign(Algorithm::RS256, Some("rsa-1"), &c))
            .await
            .status(),
        200
    );
    assert_eq!(
        gw.get("/", &sign(Algorithm::ES256, Some("ec-1"), &c))
            .await
            .status(),
        200
    );
    let rotated_tok = || {
        let pem = std::fs::read(keys_dir().join("rsa2.key.pem")).unwrap();
        sign_with(
            Algorithm::RS256,
            Some("rsa-2"),
            &c,
            &EncodingKey::from_rsa_pem(&pem).unwrap(),
        )
    };
    assert_eq!(
        error_of(gw.get("/", &rotated_tok()).await).await,
        "invalid_token"
    );

    // Rotate: rsa-2 in, ec-1 out. The file is replaced atomically.
    let second = JwkSet {
        keys: vec![
            jwk(Algorithm::RS256, "rsa.key.pem", "rsa-1"),
            jwk(Algorithm::RS256, "rsa2.key.pem", "rsa-2"),
        ],
    };
    let tmp = dir.path().join("jwks.json.tmp");
    std::fs::write(&tmp, serde_json::to_string(&second).unwrap()).unwrap();
    // Make sure the mtime differs even on coarse-grained filesystems.
    replace_file_later(&tmp, &jwks_path, std::time::Duration::from_secs(2));

    assert_eventually!(
        gw.get("/", &rotated_tok()).await.status() == 200,
        std::time::Duration::from_secs(10),
        "rotated key not picked up: {}",
        gw.log()
    );
    let ec = sign(Algorithm::ES256, Some("ec-1"), &c);
    assert_eq!(error_of(gw.get("/", &ec).await).await, "invalid_token");

    // A broken file keeps the previous keys.
    std::fs::write(&tmp, "{not json").unwrap();
    replace_file_later(&tmp, &jwks_path, std::time::Duration::from_secs(4));
    assert_eventually!(
        gw.log().contains("cannot be loaded"),
        std::time::Duration::from_secs(10),
        "broken JWKS not noticed"
    );
    assert_eq!(gw.get("/", &rotated_tok()).await.status(), 200);
}
