//! What an evaluation costs an application: a typed accessor on a simple flag (one targeting
//! condition, then everyone), per call (the user prepared on every call) and through an
//! `Evaluation` (the user prepared once), without exposure tracking and with it (every call
//! after the first a duplicate, which is what a service mostly sees).
//!
//! The clients start from a bootstrap. Exposure tracking needs a client that is not offline,
//! with its tasks on a runtime: here one that is never driven, so its tasks never run and
//! nothing goes to the network; the first exposure waits in the queue, the rest are
//! duplicates.
//!
//! Run with `cargo bench -p vexil-sdk --bench evaluate`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark whose setup fails should stop at once with the failure"
)]

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use vexil_sdk::{EventsConfig, LocalClient, LocalConfig, User};

const SIMPLE: &str = r#"[{"key": "new-checkout",
    "metadata": {"flagType": "release", "flagVersion": 3, "deployed": true},
    "variants": {"on": {"key": "on", "value": "on"}, "off": {"key": "off", "metadata": {"default": true}}},
    "segments": [
        {"metadata": {"segmentName": "Canada"}, "variant": "on",
         "conditions": [[{"selector": ["context", "user", "country"], "op": "is", "values": ["CA"]}]]},
        {"metadata": {"segmentName": "All Other Users"}, "variant": "off"}]}]"#;

fn benches(c: &mut Criterion) {
    let client = LocalClient::start(LocalConfig::offline(SIMPLE)).unwrap();
    let canadian = User::new().with_user_id("u-1").with_field("country", "CA");
    assert_eq!(
        client.string_variation(&canadian, "new-checkout", "old"),
        "on"
    );
    c.bench_function("sdk_simple_flag_string_variation", |b| {
        b.iter(|| client.string_variation(black_box(&canadian), black_box("new-checkout"), "old"))
    });
    let other = User::new().with_user_id("u-2").with_field("country", "NZ");
    c.bench_function("sdk_simple_flag_is_enabled_fallthrough", |b| {
        b.iter(|| client.is_enabled(black_box(&other), black_box("new-checkout")))
    });

    let prepared = client.evaluation(&canadian);
    assert_eq!(prepared.string_variation("new-checkout", "old"), "on");
    c.bench_function("sdk_evaluation_string_variation", |b| {
        b.iter(|| black_box(&prepared).string_variation(black_box("new-checkout"), "old"))
    });
    let prepared_other = client.evaluation(&other);
    c.bench_function("sdk_evaluation_is_enabled_fallthrough", |b| {
        b.iter(|| black_box(&prepared_other).is_enabled(black_box("new-checkout")))
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tracked = {
        let _entered = runtime.enter();
        let events = EventsConfig {
            flush_interval: Duration::from_secs(3600),
            ..EventsConfig::default()
        };
        let config = LocalConfig::new("http://127.0.0.1:9", "bench")
            .bootstrap(SIMPLE)
            .stream(false)
            .poll_interval(Duration::from_secs(3600))
            .events(Some(events));
        LocalClient::start(config).unwrap()
    };
    assert_eq!(
        tracked.string_variation(&canadian, "new-checkout", "old"),
        "on"
    );
    c.bench_function("sdk_simple_flag_string_variation_tracked", |b| {
        b.iter(|| tracked.string_variation(black_box(&canadian), black_box("new-checkout"), "old"))
    });
    let prepared_tracked = tracked.evaluation(&canadian);
    c.bench_function("sdk_evaluation_string_variation_tracked", |b| {
        b.iter(|| black_box(&prepared_tracked).string_variation(black_box("new-checkout"), "old"))
    });
    let stats = tracked.event_stats();
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert!(stats.deduplicated > 0, "{stats:?}");
}

criterion_group! {
    name = sdk_benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(sdk_benches);
