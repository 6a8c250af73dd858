//! Token verification per algorithm, cold (signature and claims every time,
//! keys prepared once) and cached (the same token again: the verified-token
//! cache answers), next to the naive baseline `jsonwebtoken::decode`, which
//! prepares the key and verifies on every call.
//!
//! Run: `cargo bench --bench token`
//! Last figures: README "Performance".

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::json;

use sessiongate::config::Config;
use sessiongate::token::Verifier;

const SECRET: &str = "bench-secret-0123456789abcdef0123456789abcdef";
const NOW: i64 = 1_800_000_000;

fn keys() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys")
}

fn verifier(alg: &str, key_line: &str) -> Verifier {
    let text = format!(
        "[listen]\nproxy = \"127.0.0.1:8080\"\n[upstream]\naddress = \"127.0.0.1:3000\"\n\
         [[token.keys]]\nalgorithm = \"{alg}\"\n{key_line}\n"
    );
    let config = Config::from_toml(&text, Path::new("bench.toml"), Path::new(".")).unwrap();
    Verifier::new(&config.token).unwrap()
}

fn bench(c: &mut Criterion) {
    let claims =
        json!({"sub": "alice", "sid": "live-session-42", "iat": NOW - 60, "exp": NOW + 3600});
    let read = |f: &str| std::fs::read(keys().join(f)).unwrap();
    let cases: Vec<(Algorithm, String, EncodingKey, DecodingKey)> = vec![
        (
            Algorithm::HS256,
            format!("secret = \"{SECRET}\""),
            EncodingKey::from_secret(SECRET.as_bytes()),
            DecodingKey::from_secret(SECRET.as_bytes()),
        ),
        (
            Algorithm::RS256,
            format!(
                "public_key_file = \"{}\"",
                keys().join("rsa.pub.pem").display()
            ),
            EncodingKey::from_rsa_pem(&read("rsa.key.pem")).unwrap(),
            DecodingKey::from_rsa_pem(&read("rsa.pub.pem")).unwrap(),
        ),
        (
            Algorithm::PS256,
            format!(
                "public_key_file = \"{}\"",
                keys().join("rsa.pub.pem").display()
            ),
            EncodingKey::from_rsa_pem(&read("rsa.key.pem")).unwrap(),
            DecodingKey::from_rsa_pem(&read("rsa.pub.pem")).unwrap(),
        ),
        (
            Algorithm::ES256,
            format!(
                "public_key_file = \"{}\"",
                keys().join("es256.pub.pem").display()
            ),
            EncodingKey::from_ec_pem(&read("es256.key.pem")).unwrap(),
            DecodingKey::from_ec_pem(&read("es256.pub.pem")).unwrap(),
        ),
        (
            Algorithm::ES384,
            format!(
                "public_key_file = \"{}\"",
                keys().join("es384.pub.pem").display()
            ),
            EncodingKey::from_ec_pem(&read("es384.key.pem")).unwrap(),
            DecodingKey::from_ec_pem(&read("es384.pub.pem")).unwrap(),
        ),
        (
            Algorithm::EdDSA,
            format!(
                "public_key_file = \"{}\"",
                keys().join("ed25519.pub.pem").display()
            ),
            EncodingKey::from_ed_pem(&read("ed25519.key.pem")).unwrap(),
            DecodingKey::from_ed_pem(&read("ed25519.pub.pem")).unwrap(),
        ),
    ];
    for (alg, key_line, enc, dec) in cases {
        let name = format!("{alg:?}");
        let token = jsonwebtoken::encode(&Header::new(alg), &claims, &enc).unwrap();
        let v = verifier(&name, &key_line);
        assert!(v.verify(token.as_bytes(), NOW).is_ok());
        let mut group = c.benchmark_group(format!("verify_{name}"));
        group.bench_function("cold", |b| {
            b.iter(|| v.verify_uncached(std::hint::black_box(token.as_bytes()), NOW))
        });
        group.bench_function("cached", |b| {
            b.iter(|| v.verify(std::hint::black_box(token.as_bytes()), NOW))
        });
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        group.bench_function("naive_jsonwebtoken_decode", |b| {
            b.iter(|| {
                jsonwebtoken::decode::<serde_json::Value>(
                    std::hint::black_box(&token),
                    &dec,
                    &validation,
                )
                .unwrap()
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
