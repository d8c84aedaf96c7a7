//! Management API benchmarks, through the real HTTP server on SQLite (the default backend):
//! saving a flag (p50/p99 of sequential PATCHes in a project of 10,000 flags), listing a page
//! out of 10,000 flags (plain, text search, tag filter), and uploading a 1,000,000-member CSV
//! cohort. Percentiles need every sample, so this is a plain harness rather than criterion.
//!
//! `cargo bench -p vexil-server --bench management` runs the full sizes; `-- --test` (what CI
//! runs) uses small ones to prove the bench still works.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark: failing loudly is the point"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vexil_core::service::{NewFlag, NewProject};
use vexil_core::{Actor, Services};
use vexil_store::SqliteStore;

struct Sizes {
    flags: usize,
    saves: usize,
    pages: usize,
    members: usize,
    uploads: usize,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let sizes = if quick {
        Sizes {
            flags: 200,
            saves: 20,
            pages: 20,
            members: 10_000,
            uploads: 1,
        }
    } else {
        Sizes {
            flags: 10_000,
            saves: 1_000,
            pages: 500,
            members: 1_000_000,
            uploads: 3,
        }
    };
    let dir = std::env::temp_dir().join(format!("vexil-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bench.db");
    let _ = std::fs::remove_file(&path);
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let services = Services::new(store);
    let admin = services.keys.bootstrap().unwrap().unwrap().secret;
    seed(&services, sizes.flags);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(vexil_server::run(
            services,
            Default::default(),
            listener,
            async {
                let _ = stopped.await;
            },
        ));
        let client = reqwest::Client::new();
        let auth = format!("Bearer {admin}");
        println!(
            "management benchmarks: SQLite at {}, {} flags in the project",
            path.display(),
            sizes.flags
        );
        bench_saves(&client, &base, &auth, sizes.saves).await;
        bench_lists(&client, &base, &auth, sizes.pages, sizes.flags).await;
        bench_cohort(&client, &base, &auth, sizes.members, sizes.uploads).await;
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// A project with `n` flags: a third of them experiments, tags spread over ten values, a
/// segment each.
fn seed(services: &Services, n: usize) {
    let actor = Actor::cli();
    services
        .projects
        .create(
            &actor,
            NewProject {
                name: "Bench".into(),
                key: None,
                description: String::new(),
            },
        )
        .unwrap();
    let started = Instant::now();
    for i in 0..n {
        let req: NewFlag = serde_json::from_value(json!({
            "project": "bench",
            "name": format!("Feature {i:05} rollout"),
            "type": if i % 3 == 0 { "experiment" } else { "release" },
            "tags": [format!("team-{}", i % 10)],
            "segments": [{"name": "Beta", "percentage": 50,
                          "conditions": [{"type": "user_property", "property": "beta", "op": "is", "values": ["true"]}]}],
            "all_other_users": {"percentage": 10, "weights": {}}
        }))
        .unwrap();
        services.flags.create(&actor, req).unwrap();
    }
    println!(
        "seeded {n} flags through the service layer in {:.1?}",
        started.elapsed()
    );
}

async fn bench_saves(client: &reqwest::Client, base: &str, auth: &str, n: usize) {
    let url = format!("{base}/api/v1/flags/feature-00043-rollout?project=bench");
    let mut version: i64 = client
        .get(&url)
        .header("authorization", auth)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["version"]
        .as_i64()
        .unwrap();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let body = json!({"segments": [{"name": "Beta", "percentage": i % 101, "weights": {"on": 1},
            "conditions": [{"type": "user_property", "property": "beta", "op": "is", "values": ["true"]}]}],
            "description": format!("save {i}")});
        let started = Instant::now();
        let response = client
            .patch(&url)
            .header("authorization", auth)
            .header("if-match", format!("\"{version}\""))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let saved: serde_json::Value = response.json().await.unwrap();
        samples.push(started.elapsed());
        assert_eq!(status, 200, "{saved}");
        version = saved["version"].as_i64().unwrap();
    }
    report(
        "save a flag (PATCH, SQLite, history written)",
        &mut samples,
        "target p99 < 20 ms",
    );
}

async fn bench_lists(client: &reqwest::Client, base: &str, auth: &str, n: usize, flags: usize) {
    type Query = Box<dyn Fn(usize) -> String>;
    let queries: [(&str, Query); 3] = [
        (
            "list a page of 50",
            Box::new(move |i| format!("project=bench&limit=50&offset={}", (i * 50) % flags)),
        ),
        (
            "list, text search",
            Box::new(|i| format!("project=bench&limit=50&q={:02}", i % 100)),
        ),
        (
            "list, tag + type filter",
            Box::new(|i| format!("project=bench&limit=50&tag=team-{}&type=experiment", i % 10)),
        ),
    ];
    for (name, query) in queries {
        let mut samples = Vec::with_capacity(n);
        for i in 0..n {
            let started = Instant::now();
            let response = client
                .get(format!("{base}/api/v1/flags?{}", query(i)))
                .header("authorization", auth)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let page: serde_json::Value = response.json().await.unwrap();
            samples.push(started.elapsed());
            assert!(page["total"].as_u64().unwrap() > 0);
        }
        report(
            &format!("{name} out of {flags}"),
            &mut samples,
            "target < 50 ms",
        );
    }
}

async fn bench_cohort(
    client: &reqwest::Client,
    base: &str,
    auth: &str,
    members: usize,
    runs: usize,
) {
    let mut csv = String::with_capacity(members * 16);
    csv.push_str("user_id\n");
    for i in 0..members {
        csv.push_str(&format!("user-{i:08}\n"));
    }
    let url = format!("{base}/api/v1/projects/bench/cohorts/big?name=Big");
    let mut samples = Vec::new();
    let mut version: Option<i64> = None;
    for _ in 0..runs {
        let mut request = client
            .put(&url)
            .header("authorization", auth)
            .header("content-type", "text/csv")
            .body(csv.clone());
        if let Some(v) = version {
            request = request.header("if-match", format!("\"{v}\""));
        }
        let started = Instant::now();
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap();
        samples.push(started.elapsed());
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["size"].as_u64().unwrap() as usize, members);
        version = body["version"].as_i64();
    }
    report(
        &format!("upload a {members}-member CSV cohort (create, then replace)"),
        &mut samples,
        "target < 10 s",
    );
}

fn report(name: &str, samples: &mut [Duration], target: &str) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{name:<62} n={:<5} p50={:>9.2?} p99={:>9.2?} max={:>9.2?}  ({target})",
        samples.len(),
        at(0.5),
        at(0.99),
        samples[samples.len() - 1]
    );
}
