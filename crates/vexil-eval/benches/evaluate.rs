//! Evaluation benchmarks: one targeted 50/50 flag, 50 and 1,000 realistic flags for one user,
//! 50 heavy flags (3 to 8 segments each, with regexes, sets, versions, cohorts and
//! dependencies) for 16 users, serializing the 50 results as the server does per request, and
//! compiling the 50 flags.
//!
//! Run with `cargo bench -p vexil-eval --bench evaluate`. Each benchmark first checks, outside
//! the timed loop, that the user really reaches the segments it is meant to exercise.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark whose setup fails should stop at once with the failure"
)]

use std::collections::BTreeMap;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use vexil_eval::{
    evaluate, Context, FlagConfig, FlagSet, OrderedMap, Results, SegmentConfig, Value,
};

#[path = "../tests/fixtures/mod.rs"]
mod fixtures;

use fixtures::{
    condition, flag_metadata, heavy_flags, heavy_users, object, off_variant, realistic_context,
    realistic_flags, rollout_segment, variant, USER_ID,
};

const NO_KEYS: &[&str] = &[];

/// One flag: a segment of three conditions the user satisfies, bucketed 50/50 on `user_id`,
/// then All Other Users.
fn one_flag() -> FlagConfig {
    let conditions = vec![vec![
        condition(&["context", "user", "country"], "is", &["US", "CA"]),
        condition(&["context", "user", "platform"], "is", &["iOS"]),
        condition(
            &["context", "user", "user_properties", "plan"],
            "set contains any",
            &["pro", "team"],
        ),
    ]];
    let weights = [("control", 1), ("treatment", 1)];
    let targeted = rollout_segment(
        "North America iOS pro",
        Some(conditions),
        100,
        &weights,
        &USER_ID,
        "vx4Rt9Qa",
    );
    let bucket = targeted.bucket.as_ref().unwrap();
    assert_eq!(bucket.allocations[0].range, [0, 100]);
    assert_eq!(
        bucket.allocations[0]
            .distributions
            .iter()
            .map(|d| d.range)
            .collect::<Vec<_>>(),
        [[0, 21474837], [21474836, 42949673]]
    );
    FlagConfig {
        key: "checkout-v2".into(),
        variants: OrderedMap(vec![
            variant("control"),
            variant("treatment"),
            off_variant(),
        ]),
        segments: vec![
            targeted,
            SegmentConfig {
                variant: Some("off".into()),
                metadata: Some(object([("segmentName", Value::from("All Other Users"))])),
                ..SegmentConfig::default()
            },
        ],
        dependencies: None,
        metadata: Some(flag_metadata(true, "local", 7, Some("exp-12"))),
    }
}

/// How many results came from each segment name, and how many from a distribution.
fn summary(results: &Results<'_>) -> (BTreeMap<String, usize>, usize) {
    let mut by_segment = BTreeMap::new();
    let mut bucketed = 0;
    for r in results.iter() {
        let detail = r.detail();
        *by_segment
            .entry(detail.segment_name.unwrap_or("(unnamed)").to_owned())
            .or_insert(0) += 1;
        bucketed += usize::from(detail.bucketed);
    }
    (by_segment, bucketed)
}

/// Checks that evaluating `flags` for the benchmark user exercises every part of the
/// realistic mix: inclusions, gates that stop and gates that pass, targeting, bucketing.
fn check_realistic(flags: &FlagSet, context: &Context, n: usize) {
    let results = evaluate(flags, context, NO_KEYS).unwrap();
    assert_eq!(
        results.len(),
        n,
        "every realistic flag ends in All Other Users, so every flag gives a variant"
    );
    let (by_segment, bucketed) = summary(&results);
    let count = |name: &str| by_segment.get(name).copied().unwrap_or(0);
    assert!(count("individual-inclusions") >= 1, "{by_segment:?}");
    assert!(count("flag-dependencies") >= 1, "{by_segment:?}");
    assert!(count("All Other Users") >= n / 2, "{by_segment:?}");
    let targeted =
        n - count("individual-inclusions") - count("flag-dependencies") - count("All Other Users");
    assert!(targeted >= n / 20, "{by_segment:?}");
    assert!(
        bucketed >= n / 4,
        "only {bucketed} bucketed: {by_segment:?}"
    );
    let gated_through = results
        .iter()
        .filter(|r| {
            is_dependent(r.flag_key()) && r.detail().segment_name != Some("flag-dependencies")
        })
        .count();
    assert!(
        gated_through >= 1,
        "no dependent flag passed its gate: {by_segment:?}"
    );
    eprintln!(
        "{n} flags: by segment {by_segment:?}, {bucketed} bucketed, {gated_through} passed a gate"
    );
}

/// True when `key` (`name-i`) is a realistic flag with a prerequisite.
fn is_dependent(key: &str) -> bool {
    let index = key.rsplit('-').next().and_then(|i| i.parse::<usize>().ok());
    index.is_some_and(|i| fixtures::kind(i) == fixtures::Kind::Dependent)
}

fn benches(c: &mut Criterion) {
    let context = realistic_context();

    let one = FlagSet::compile(vec![one_flag()]).unwrap();
    {
        let results = evaluate(&one, &context, NO_KEYS).unwrap();
        let detail = results.get("checkout-v2").unwrap().detail();
        assert_eq!(
            (detail.segment_index, detail.bucketed),
            (0, true),
            "the user must be targeted and bucketed"
        );
    }
    c.bench_function("one_flag_three_conditions_50_50", |b| {
        b.iter(|| evaluate(black_box(&one), black_box(&context), black_box(NO_KEYS)))
    });

    let fifty_configs = realistic_flags(50);
    let fifty = FlagSet::compile(fifty_configs.clone()).unwrap();
    check_realistic(&fifty, &context, 50);
    c.bench_function("fifty_realistic_flags", |b| {
        b.iter(|| evaluate(black_box(&fifty), black_box(&context), black_box(NO_KEYS)))
    });

    let thousand = FlagSet::compile(realistic_flags(1000)).unwrap();
    check_realistic(&thousand, &context, 1000);
    c.bench_function("thousand_flags", |b| {
        b.iter(|| {
            evaluate(
                black_box(&thousand),
                black_box(&context),
                black_box(NO_KEYS),
            )
        })
    });

    // Heavy configs: per user, every flag walks its segments; the figure per element is the
    // time of one user's 50 flags.
    let heavy = FlagSet::compile(heavy_flags(50)).unwrap();
    let users = heavy_users(16);
    let mut segments_tried = 0;
    for user in &users {
        let results = evaluate(&heavy, user, NO_KEYS).unwrap();
        assert_eq!(
            results.len(),
            50,
            "every heavy flag ends in All Other Users"
        );
        segments_tried += results
            .iter()
            .map(|r| r.detail().segment_index)
            .sum::<usize>();
        let gated = results
            .iter()
            .filter(|r| r.detail().segment_name == Some("flag-dependencies"))
            .count();
        assert!(gated < 17, "the gates let most dependents through: {gated}");
    }
    let targeted: usize = users
        .iter()
        .map(|u| {
            let results = evaluate(&heavy, u, NO_KEYS).unwrap();
            results
                .iter()
                .filter(|r| {
                    r.detail()
                        .segment_name
                        .is_some_and(|n| n.starts_with("segment-"))
                })
                .count()
        })
        .sum();
    assert!(
        targeted > 16 && targeted < 16 * 40,
        "a mix of targeted and untargeted results: {targeted}"
    );
    eprintln!("heavy: {segments_tried} segments passed over, {targeted} of 800 results targeted");
    let mut group = c.benchmark_group("heavy");
    group.throughput(Throughput::Elements(users.len() as u64));
    group.bench_function("fifty_heavy_flags_per_user", |b| {
        b.iter(|| {
            for user in &users {
                black_box(evaluate(black_box(&heavy), user, NO_KEYS).unwrap());
            }
        })
    });
    group.finish();

    let results = evaluate(&fifty, &context, NO_KEYS).unwrap();
    c.bench_function("serialize_50_results", |b| {
        b.iter(|| serde_json::to_string(black_box(&results)).unwrap())
    });

    let json = serde_json::to_string(&fifty_configs).unwrap();
    assert_eq!(FlagSet::from_json(&json).unwrap().len(), 50);
    // Compiling takes close to a millisecond: criterion stretches the 3 s to fit 100 samples
    // (and says so), which keeps the name `compile_50_flags` without a group prefix.
    c.bench_function("compile_50_flags", |b| {
        b.iter(|| FlagSet::from_json(black_box(&json)).unwrap())
    });
}

criterion_group! {
    name = evaluate_benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(evaluate_benches);
