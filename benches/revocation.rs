//! Revocation lookup at 1 k, 1 M and 10 M revoked sessions: a hit (revoked)
//! and a miss (live, the common case), against the naive baseline, a
//! `HashSet<String>` of the same ids. Before the timings, the memory each
//! holds at 10 M is printed (RSS growth while building it).
//!
//! Run: `cargo bench --bench revocation` (about 3 GiB of RAM at the peak for
//! the baseline). Last figures: README "Performance".

use std::collections::HashSet;

use criterion::{criterion_group, criterion_main, Criterion};

use sessiongate::revocation::{session_key, RevocationSet, SessionRevocation};

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| {
            v.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

fn sid(i: usize) -> String {
    // Shaped like common session ids: 32 hex characters.
    format!(
        "{:016x}{:016x}",
        i as u64 ^ 0x9e37_79b9_7f4a_7c15,
        (i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d)
    )
}

fn build(n: usize) -> RevocationSet {
    let set = RevocationSet::new();
    for i in 0..n {
        set.apply_session(&SessionRevocation {
            session_id: sid(i),
            revoked_at_ms: 1_700_000_000_000,
            expires_at: 4_102_444_800,
            reason: if i % 3 == 0 {
                "password reset".into()
            } else {
                String::new()
            },
            actor: "admin".into(),
        });
    }
    set
}

fn bench(c: &mut Criterion) {
    let before = rss_bytes();
    let big = build(10_000_000);
    let set_bytes = rss_bytes().saturating_sub(before);
    let before = rss_bytes();
    let naive: HashSet<String> = (0..10_000_000).map(sid).collect();
    let naive_bytes = rss_bytes().saturating_sub(before);
    println!(
        "10 M revoked sessions: RevocationSet {:.0} MiB ({:.1} B each), HashSet<String> {:.0} MiB ({:.1} B each)",
        set_bytes as f64 / 1048576.0,
        set_bytes as f64 / 1e7,
        naive_bytes as f64 / 1048576.0,
        naive_bytes as f64 / 1e7
    );

    let live = "f00dfeedf00dfeedf00dfeedf00dfeed";
    for (n, set) in [
        (1_000, build(1_000)),
        (1_000_000, build(1_000_000)),
        (10_000_000, big),
    ] {
        let mut group = c.benchmark_group(format!("revocation_{n}"));
        let hit = sid(n / 2);
        group.bench_function("check_miss_with_key", |b| {
            let key = session_key(live);
            b.iter(|| set.check_key(std::hint::black_box(key), live, Some("alice"), Some(1)))
        });
        group.bench_function("check_hit_with_key", |b| {
            let key = session_key(&hit);
            b.iter(|| set.check_key(std::hint::black_box(key), &hit, Some("alice"), Some(1)))
        });
        group.bench_function("check_miss_hashing_the_id", |b| {
            b.iter(|| set.check(std::hint::black_box(live), Some("alice"), Some(1)))
        });
        if n == 10_000_000 {
            group.bench_function("naive_hashset_miss", |b| {
                b.iter(|| naive.contains(std::hint::black_box(live)))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
