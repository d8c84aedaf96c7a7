//! What an evaluation costs an application: a typed accessor on a simple flag (one targeting
//! condition, then everyone), and every flag of the 50 the engine's realistic bench uses,
//! from a client started offline (no network, no events).
//!
//! Run with `cargo bench -p vexil-sdk --bench evaluate`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark whose setup fails should stop at once with the failure"
)]

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use vexil_sdk::{LocalClient, LocalConfig, User};

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
}

criterion_group! {
    name = sdk_benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(sdk_benches);
