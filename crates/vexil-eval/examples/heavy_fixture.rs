//! The heavy-config benchmark's input and timing, for comparing engines on the same work.
//!
//! `cargo run --release -p vexil-eval --example heavy_fixture -- FILE` writes to `FILE` the 50
//! heavy flags of `benches/evaluate.rs` (`fixtures::heavy_flags`), the 16 users' evaluation
//! contexts, and the variant each user gets from each flag; then times this engine on them
//! (whole passes over the users for about 3 s) and prints microseconds per user for 50 flags.
//! `bench/engine-js.sh` runs Amplitude's JS engine on the same file. With `--sdk DIR` it also
//! writes `DIR/flags.json` and `DIR/users.jsonl` (the users as SDK user objects) for
//! `vexil eval` (`bench/eval-stream.sh --heavy`). `heavy_fixture --realistic N FILE` writes
//! only `fixtures::realistic_flags(N)` to `FILE` (`bench/memory.sh` imports 10,000 of them).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark whose setup fails should stop at once with the failure"
)]

use std::time::{Duration, Instant};

use vexil_eval::{evaluate, FlagSet};

#[path = "../tests/fixtures/mod.rs"]
mod fixtures;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, n, file] = args.as_slice() {
        if flag == "--realistic" {
            let flags = fixtures::realistic_flags(n.parse().expect("--realistic N FILE"));
            std::fs::write(file, serde_json::to_string(&flags).unwrap()).unwrap();
            return;
        }
    }
    let out = args.first().expect("usage: heavy_fixture FILE [--sdk DIR]");
    let configs = fixtures::heavy_flags(50);
    let flags = FlagSet::compile(configs.clone()).unwrap();
    let users = fixtures::heavy_users(16);
    if let [_, flag, dir] = args.as_slice() {
        assert_eq!(flag, "--sdk", "usage: heavy_fixture FILE [--sdk DIR]");
        let dir = std::path::Path::new(dir);
        std::fs::write(
            dir.join("flags.json"),
            serde_json::to_string(&configs).unwrap(),
        )
        .unwrap();
        let lines: Vec<String> = fixtures::heavy_sdk_users(16)
            .iter()
            .map(|u| serde_json::to_string(u).unwrap())
            .collect();
        std::fs::write(dir.join("users.jsonl"), lines.join("\n") + "\n").unwrap();
    }
    let no_keys: &[&str] = &[];
    let variants: Vec<serde_json::Value> = users
        .iter()
        .map(|u| {
            let results = evaluate(&flags, u, no_keys).unwrap();
            results
                .iter()
                .map(|r| (r.flag_key().to_owned(), serde_json::Value::from(r.key())))
                .collect::<serde_json::Map<_, _>>()
                .into()
        })
        .collect();
    let contexts: Vec<&vexil_eval::Value> = users.iter().map(|u| u.as_value()).collect();
    let file = serde_json::json!({"flags": configs, "contexts": contexts, "variants": variants});
    std::fs::write(out, file.to_string()).unwrap();

    // Warm up, then whole passes for about 3 s.
    let pass = || {
        for u in &users {
            std::hint::black_box(evaluate(&flags, u, no_keys).unwrap());
        }
    };
    for _ in 0..2_000 {
        pass();
    }
    let (started, mut passes) = (Instant::now(), 0u64);
    while started.elapsed() < Duration::from_secs(3) {
        pass();
        passes += 1;
    }
    let per_user = started.elapsed().as_secs_f64() * 1e6 / (passes * users.len() as u64) as f64;
    println!("vexil-eval: {per_user:.2} µs per user (50 heavy flags, {passes} passes of 16 users)");
}
