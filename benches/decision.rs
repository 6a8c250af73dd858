//! The gateway-side decision for one request: find the token, verify it
//! (HS256 here), check the revocation set (100 k revoked sessions, 1 k user
//! cutoffs), decide. Compared with a naive baseline: `jsonwebtoken::decode`
//! into a `serde_json::Value` plus a `HashSet<String>` lookup, which is what
//! a first implementation would do.
//!
//! A second group measures the same decision followed by the session
//! registry update every allowed request makes (same session, same
//! User-Agent and address: the hot path), against the decision alone.
//! A third measures the two identity headers added to a pingora request
//! header as the proxy receives it.
//!
//! The first group also runs the decision with five step-up routes
//! configured (none matching): what routes cost every other request.
//!
//! Run: `cargo bench --bench decision`
//! Last figures: see README "Performance" (same machine, same run).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::json;

use sessiongate::config::Config;
use sessiongate::enforcement::{Decision, Enforcer, Facts};
use sessiongate::geoip::GeoIp;
use sessiongate::metrics::Metrics;
use sessiongate::revocation::{RevocationSet, SessionRevocation, UserCutoff};
use sessiongate::sessions::{RegistryLimits, SessionRegistry, Sighting};

const SECRET: &str = "bench-secret-0123456789abcdef0123456789abcdef";

fn config() -> Config {
    config_with("")
}

/// The bench config with `extra` TOML appended.
fn config_with(extra: &str) -> Config {
    let text = format!(
        "[listen]\nproxy = \"127.0.0.1:8080\"\n[upstream]\naddress = \"127.0.0.1:3000\"\n\
         [[token.keys]]\nalgorithm = \"HS256\"\nsecret = \"{SECRET}\"\n{extra}"
    );
    Config::from_toml(&text, Path::new("bench.toml"), Path::new(".")).unwrap()
}

/// Five step-up routes (RFC 9470), none of them matching `/app`: what
/// configuring routes costs every other request.
const ROUTES: &str =
    "[[enforcement.routes]]\nprefix = \"/account/security\"\namr_any = [\"mfa\"]\n\
     [[enforcement.routes]]\nprefix = \"/payments\"\nacr_values = [\"gold\"]\nmax_age_s = 300\n\
     [[enforcement.routes]]\nprefix = \"/admin\"\namr_any = [\"hwk\"]\n\
     [[enforcement.routes]]\nprefix = \"/settings/keys\"\nmax_age_s = 600\n\
     [[enforcement.routes]]\nprefix = \"/export\"\namr_any = [\"otp\", \"mfa\"]\n";

fn revocations() -> Arc<RevocationSet> {
    let set = RevocationSet::new();
    for i in 0..100_000 {
        set.apply_session(&SessionRevocation {
            session_id: format!("revoked-{i:08}"),
            revoked_at_ms: 0,
            expires_at: i64::MAX,
            reason: String::new(),
            actor: "admin".into(),
        });
    }
    for i in 0..1_000 {
        set.apply_cutoff(&UserCutoff {
            user_id: format!("user-{i}"),
            not_before: 1,
            except: None,
            revoked_at_ms: 0,
            expires_at: i64::MAX,
            reason: String::new(),
            actor: "admin".into(),
        });
    }
    Arc::new(set)
}

fn bench(c: &mut Criterion) {
    let now = 1_800_000_000i64;
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "alice", "sid": "live-session-42", "iat": now - 60, "exp": now + 3600}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers.insert("accept", HeaderValue::from_static("*/*"));
    headers.insert("user-agent", HeaderValue::from_static("bench/1.0"));

    let enforcer = Enforcer::new(&config(), revocations()).unwrap();
    let facts = |target: &'static [u8]| Facts {
        target,
        headers: &headers,
        now_s: now,
        store_silent_ms: 0,
    };
    assert!(matches!(
        enforcer.decide(&facts(b"/app")).decision,
        Decision::Allow(_)
    ));

    let mut group = c.benchmark_group("decision_hs256");
    group.bench_function("sessiongate_decide", |b| {
        b.iter(|| enforcer.decide(&facts(std::hint::black_box(b"/app"))))
    });
    let routed = Enforcer::new(&config_with(ROUTES), revocations()).unwrap();
    assert!(matches!(
        routed.decide(&facts(b"/app")).decision,
        Decision::Allow(_)
    ));
    group.bench_function("sessiongate_decide_with_5_routes", |b| {
        b.iter(|| routed.decide(&facts(std::hint::black_box(b"/app"))))
    });

    let revoked: HashSet<String> = (0..100_000).map(|i| format!("revoked-{i:08}")).collect();
    let key = DecodingKey::from_secret(SECRET.as_bytes());
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    group.bench_function("naive_decode_and_hashset", |b| {
        b.iter(|| {
            let raw = headers["authorization"]
                .to_str()
                .unwrap()
                .strip_prefix("Bearer ")
                .unwrap();
            let data = jsonwebtoken::decode::<serde_json::Value>(raw, &key, &validation).unwrap();
            let sid = data.claims["sid"].as_str().unwrap().to_string();
            revoked.contains(&sid)
        })
    });
    group.finish();

    let registry = SessionRegistry::new(
        Arc::new(GeoIp::open(None).unwrap()),
        Arc::new(Metrics::new(prometheus::Registry::new()).unwrap()),
        RegistryLimits {
            max_tracked: 1_000_000,
            idle_ttl_ms: 30 * 86_400_000,
            record_created: false,
            max_travel_kmh: 1000.0,
        },
    );
    // 10 k other sessions in the registry, like the load runs.
    let ua = b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
    let ip: std::net::IpAddr = "81.2.69.142".parse().unwrap();
    for i in 0..10_000 {
        let sid = format!("other-{i}");
        registry.observe(&Sighting {
            session_id: &sid,
            session_key: sessiongate::revocation::session_key(&sid),
            user_id: Some("someone"),
            iat: None,
            exp: None,
            ip,
            user_agent: ua,
            now_ms: now * 1000,
        });
    }
    let mut group = c.benchmark_group("decision_with_registry_hs256");
    group.bench_function("decide", |b| {
        b.iter(|| enforcer.decide(&facts(std::hint::black_box(b"/app"))))
    });
    group.bench_function("decide_and_record_session", |b| {
        b.iter(|| {
            let d = enforcer.decide(&facts(std::hint::black_box(b"/app")));
            if let Decision::Allow(t) = &d.decision {
                std::hint::black_box(registry.observe(&Sighting {
                    session_id: &t.session_id,
                    session_key: t.session_key,
                    user_id: t.user_id.as_deref(),
                    iat: t.iat,
                    exp: t.exp,
                    ip,
                    user_agent: ua,
                    now_ms: now * 1000,
                }));
            }
            d
        })
    });
    group.finish();

    // What forwarding costs in pingora's request header: a request as the
    // load run's wrk sends it (two headers, maps sized to them, case kept),
    // with and without the two identity headers the gateway adds.
    let session_value = HeaderValue::from_static("0123456789abcdef0123456789abcdef");
    let user_value = HeaderValue::from_static("user-12345");
    let parsed = || {
        let mut req = pingora::http::RequestHeader::build("GET", b"/", Some(2)).unwrap();
        req.append_header("Host", "127.0.0.1:18090").unwrap();
        req.append_header("Authorization", "Bearer t").unwrap();
        req
    };
    let mut group = c.benchmark_group("pingora_request_header");
    group.bench_function("parsed_request", |b| {
        b.iter(|| std::hint::black_box(parsed()))
    });
    group.bench_function("parsed_request_plus_identity_headers", |b| {
        b.iter(|| {
            let mut req = parsed();
            req.insert_header("X-Session-Id", session_value.clone())
                .unwrap();
            req.insert_header("X-User-Id", user_value.clone()).unwrap();
            std::hint::black_box(req)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
