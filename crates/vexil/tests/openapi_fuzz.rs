//! The management API against schemathesis, a property-based fuzzer driven by the OpenAPI
//! document the server serves: the real `vexil serve` on port 0 over a fresh SQLite database,
//! a project, deployment, cohort and flags made through the API so that generated requests reach
//! real resources, then `schemathesis run <base>/api/v1/openapi.json` with a fixed seed and a
//! bounded number of examples per operation. It must find no 5xx, and every response must
//! conform to the document: a declared status, the declared content type, the declared schema
//! and headers. See [`CHECKS`] for what else is checked and what is not.
//!
//! Schemathesis is a Python tool: `.ci/run` installs a pinned version into a virtualenv and
//! points `VEXIL_SCHEMATHESIS` at it; otherwise `schemathesis` on `PATH` is used. Without it the
//! test is skipped with a message, except under `CI=true`, where that is a failure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test helper is a failed test with its location"
)]

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

mod common;

use common::{schemathesis, skip, start, wait_until, TempDir};

/// The fuzzer's seed: the same seed generates the same requests, so a failure in CI reproduces
/// on a developer's machine with the command the test prints.
const SEED: &str = "20251207";
/// Test cases per operation in each phase: about 3,500 requests in all, which schemathesis
/// sends in about 30 seconds on two cores.
const MAX_EXAMPLES: &str = "50";
/// How long schemathesis may run before the test kills it and fails.
const DEADLINE: Duration = Duration::from_secs(240);

/// What schemathesis checks on every response. Besides conformance to the document (status,
/// content type, schema, declared headers such as `ETag` and `Retry-After`): requests that break
/// the document are refused, a deleted resource is gone, a created one can be read, and other
/// methods answer 405 with `Allow`.
///
/// Left out: `positive_data_acceptance`, because the document does not (yet) state every rule
/// the services enforce (key syntax, non-blank names, percentages up to 100), so schema-valid
/// requests are rightly refused with 422; `missing_required_header`, because a write without
/// `If-Match` answers 428 Precondition Required (RFC 6585), which that check does not expect; and
/// `ignored_auth`, which sends wrong keys until the sign-in throttle answers 429 to everything.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_schema_conformance,response_headers_conformance,negative_data_rejection,use_after_free,\
ensure_resource_availability,unsupported_method,allow_header_conformance";

/// Fixes the path parameters that name resources to the ones [`seed`] creates, so that
/// generated requests get past the lookup to the validation and the write. Query parameters and
/// bodies stay generated.
const CONFIG: &str = r#"
[parameters]
"path.project" = "demo"
"path.deployment" = "production"
"path.cohort" = "beta-testers"
"path.key" = "checkout"
"#;

/// Revoking keys is left out: the fuzzer learns key ids and names from the listing and would
/// revoke the very key it authenticates with, after which every request answers 401. The API
/// tests cover revocation. Creating and changing webhooks is left out too: the server would
/// deliver events to whatever hosts the fuzzer makes up, and a test sends nothing off this
/// machine; `crates/vexil-server/tests/webhooks.rs` covers them against a local receiver.
const EXCLUDED_OPERATIONS: &[&str] = &["revoke_key", "create_webhook", "update_webhook"];

/// Creates what the generated requests should find: a project with a deployment, a cohort,
/// a prerequisite flag and a flag with a few versions that uses both.
async fn seed(base: &str, admin: &str) {
    let http = reqwest::Client::new();
    let send = |method: Method, path: &str, body: Value, if_match: Option<i64>| {
        let mut request = http
            .request(method.clone(), format!("{base}{path}"))
            .bearer_auth(admin)
            .json(&body);
        if let Some(v) = if_match {
            request = request.header("If-Match", format!("\"{v}\""));
        }
        let what = format!("{method} {path} {body}");
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let json: Value = response.json().await.unwrap_or(Value::Null);
            assert!((200..300).contains(&status), "{what}: {status} {json}");
            json
        }
    };
    send(
        Method::POST,
        "/api/v1/projects",
        json!({"name": "Demo", "key": "demo"}),
        None,
    )
    .await;
    send(
        Method::POST,
        "/api/v1/projects/demo/deployments",
        json!({"label": "Production", "key": "production", "type": "server"}),
        None,
    )
    .await;
    send(
        Method::POST,
        "/api/v1/projects/demo/cohorts",
        json!({"id": "beta-testers", "name": "Beta testers", "members": ["user-1", "user-2"]}),
        None,
    )
    .await;
    send(
        Method::POST,
        "/api/v1/flags",
        json!({"project": "demo", "key": "checkout-gate", "name": "Checkout gate",
               "deployments": ["production"],
               "all_other_users": {"percentage": 100, "weights": {"on": 1}}}),
        None,
    )
    .await;
    send(
        Method::POST,
        "/api/v1/flags/checkout-gate/activate",
        json!({}),
        Some(1),
    )
    .await;
    let flag = send(
        Method::POST,
        "/api/v1/flags",
        json!({"project": "demo", "key": "checkout", "name": "Checkout", "type": "experiment",
               "deployments": ["production"],
               "prerequisites": [{"flag": "checkout-gate", "variants": ["on"]}],
               "segments": [{"name": "Beta", "percentage": 100, "weights": {"treatment": 1},
                             "conditions": [{"type": "cohort", "op": "set contains any",
                                             "values": ["beta-testers"]}]}],
               "all_other_users": {"percentage": 50, "weights": {"control": 1, "treatment": 1}}}),
        None,
    )
    .await;
    let version = flag["version"].as_i64().unwrap();
    send(
        Method::PATCH,
        "/api/v1/flags/checkout",
        json!({"description": "A second version to compare and restore"}),
        Some(version),
    )
    .await;
    send(
        Method::POST,
        "/api/v1/flags/checkout/activate",
        json!({}),
        Some(version + 1),
    )
    .await;
}

#[test]
fn management_api_conforms_to_its_openapi_document_under_schemathesis() {
    let program = match schemathesis() {
        Ok(program) => program,
        Err(reason) => return skip("the OpenAPI fuzz test (schemathesis)", &reason),
    };
    let dir = TempDir::new("vexil-openapi-fuzz");
    let server = start(&dir.0.join("vexil.db"), &[]);
    let admin = server
        .key
        .clone()
        .expect("a fresh database prints its admin key");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(seed(&server.base(), &admin));

    let config = dir.0.join("schemathesis.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut args: Vec<String> = vec![
        "--config-file".into(),
        config.display().to_string(),
        "--no-color".into(),
        "run".into(),
        format!("{}/api/v1/openapi.json", server.base()),
        "--seed".into(),
        SEED.into(),
        "--max-examples".into(),
        MAX_EXAMPLES.into(),
        "--checks".into(),
        CHECKS.into(),
        // One worker keeps the order of requests, and so the server's state, the same from run
        // to run; the examples database stays off so that earlier runs do not steer this one.
        "--workers".into(),
        "1".into(),
        "--generation-database".into(),
        "none".into(),
        "--header".into(),
        format!("Authorization: Bearer {admin}"),
    ];
    for operation in EXCLUDED_OPERATIONS {
        args.extend(["--exclude-operation-id".into(), (*operation).into()]);
    }
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.replace(&admin, "<admin key>"))
        .collect();
    println!("{program} {}", shown.join(" "));

    // Schemathesis writes its report and caches next to where it runs: the temporary directory.
    let log_path = dir.0.join("schemathesis.log");
    let log = File::create(&log_path).unwrap();
    let started = Instant::now();
    let mut child = Command::new(&program)
        .args(&args)
        .current_dir(&dir.0)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let status = wait_until(&mut child, Instant::now() + DEADLINE);
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    println!("{output}");
    println!("schemathesis ran for {:.1?}", started.elapsed());
    let status = status.unwrap_or_else(|| {
        panic!("schemathesis did not finish within {DEADLINE:?}; its output so far:\n{output}")
    });
    assert!(
        status.success(),
        "schemathesis found responses that break the OpenAPI document ({status}):\n{output}"
    );
    // The summary says `N generated, N passed`; N must not be zero.
    let generated: u64 = output
        .lines()
        .find_map(|line| {
            let (count, _) = line.trim().split_once(" generated")?;
            count.trim().parse().ok()
        })
        .unwrap_or(0);
    assert!(
        output.contains("Seed: ") && generated > 0,
        "schemathesis generated no test cases:\n{output}"
    );
}
