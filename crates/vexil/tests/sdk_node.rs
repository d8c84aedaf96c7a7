//! Vexil against the real Node SDKs, in a real process: `vexil serve` on port 0, a project set
//! up through the management API (cohorts, a dozen realistic flags, Amplitude imports with typed
//! values), the variants `vexil eval` expects for a few hundred users, then
//! `tests/sdk-node/run.mjs`, which drives Amplitude's `@amplitude/experiment-node-server`
//! (remote, local with polling, local with streaming, cohort sync, exposures) and the OpenFeature
//! OFREP providers against the same server and compares every answer with those expectations.
//! A holdout and a mutual-exclusion group with a member, and an imported config that says
//! `deployed: false`, show that what is served with `deployed: false` is unknown to OFREP
//! (`FLAG_NOT_FOUND`, absent from bulk) and that remote evaluation leaves the groups out.
//!
//! The expectations come from the binary's own engine, never from this file: the test only says
//! who the users are and how the flags are configured.
//!
//! A second test, `node_sdks_agree_on_groups`, sets up mutual-exclusion and holdout groups
//! (`sdk_node/groups.rs`) and runs `tests/sdk-node/groups.mjs`: there the reference is remote
//! evaluation, which Amplitude's own JS engine on the served configs and the Node SDK's local
//! clients must agree with, and every answer must keep the groups' guarantees.
//!
//! A third test, `node_sdks_feed_the_analysis`, runs an experiment end to end
//! (`sdk_node/analysis.rs`, `tests/sdk-node/analysis.mjs`): the Experiment SDK's exposures and
//! `@amplitude/analytics-node`'s product events, then `GET /api/v1/flags/{key}/results` against
//! the statistics the script recomputes from the events it sent.
//!
//! Without `node` or without `tests/sdk-node/node_modules` (`npm ci` there) the tests are
//! skipped with a message, except under `CI=true`, where that is a failure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test helper is a failed test with its location"
)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

/// How many users the SDKs evaluate.
const USERS: usize = 300;
/// How long setup waits for the server to publish a change (it takes milliseconds).
const PUBLISH_DEADLINE: Duration = Duration::from_secs(5);
/// How long the Node script may run before it is killed.
const NODE_DEADLINE: Duration = Duration::from_secs(50);

#[path = "sdk_node/analysis.rs"]
mod analysis;
mod common;
#[path = "sdk_node/groups.rs"]
mod groups;

use common::{missing_node, repo_dir, skip, start, start_edge, wait_until, TempDir};

/// The management API, as the admin.
struct Api {
    http: reqwest::Client,
    base: String,
    admin: String,
}

impl Api {
    /// Sends a request and returns (status, ETag version, JSON body).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, String)>,
        if_match: Option<i64>,
    ) -> (u16, Option<i64>, Value) {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.admin);
        if let Some(v) = if_match {
            request = request.header("If-Match", format!("\"{v}\""));
        }
        if let Some((content_type, text)) = body {
            request = request.header("Content-Type", content_type).body(text);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_matches('"').parse().ok());
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, etag, json)
    }

    /// Sends JSON and asserts the status; returns (ETag version, body).
    async fn json(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        if_match: Option<i64>,
        status: u16,
    ) -> (Option<i64>, Value) {
        let (got, etag, json) = self
            .send(
                method.clone(),
                path,
                Some(("application/json", body.to_string())),
                if_match,
            )
            .await;
        assert_eq!(got, status, "{method} {path} {body}: {json}");
        (etag, json)
    }
}

/// The deterministic users: ids, devices, countries, platforms, versions and properties spread
/// by a fixed pseudo-random sequence, with some users missing each optional field.
fn users() -> Vec<Value> {
    const COUNTRIES: [&str; 9] = ["US", "CA", "DE", "AT", "CH", "GB", "FR", "JP", "BR"];
    const PLATFORMS: [&str; 3] = ["iOS", "Android", "Web"];
    const PLANS: [&str; 4] = ["free", "pro", "team", "enterprise"];
    const VERSIONS: [&str; 8] = [
        "1.9.12", "2.0.0", "2.0.9", "2.1.0", "2.1.3", "2.10.1", "3.0.0", "10.2.0",
    ];
    let mut state: u64 = 20_251_202;
    let mut next = move |n: usize| {
        // splitmix64: a fixed sequence, so every run sees the same users.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        usize::try_from((z ^ (z >> 31)) % n as u64).unwrap()
    };
    (0..USERS)
        .map(|i| {
            let mut user = json!({
                "user_id": user_id(i),
                "device_id": format!("device-{}", next(100_000)),
                "country": COUNTRIES[next(COUNTRIES.len())],
                "platform": PLATFORMS[next(PLATFORMS.len())],
                "version": VERSIONS[next(VERSIONS.len())],
                "user_properties": {
                    "premium": next(3) == 0,
                    "beta": next(4) == 0,
                    "plan": PLANS[next(PLANS.len())],
                    "age": 12 + next(70),
                },
            });
            let fields = user.as_object_mut().unwrap();
            if i % 15 == 14 {
                fields.remove("user_id");
            } else if i % 11 == 10 {
                fields.remove("device_id");
            }
            if i % 13 == 12 {
                fields.remove("version");
            }
            if i % 23 == 22 {
                user["user_properties"]
                    .as_object_mut()
                    .unwrap()
                    .remove("age");
            }
            user
        })
        .collect()
}

fn user_id(i: usize) -> String {
    match i {
        7 => "qa-user-1".to_owned(),
        8 => "qa-user-2".to_owned(),
        _ => format!("user-{i}"),
    }
}

/// The user cohorts: id and members (some members are not among the users).
fn cohorts() -> Vec<(&'static str, Vec<String>)> {
    let beta: Vec<String> = (0..USERS)
        .filter(|i| i % 5 == 2)
        .map(user_id)
        .chain(["user-90001".to_owned(), "someone-else".to_owned()])
        .collect();
    let vip: Vec<String> = (0..USERS)
        .filter(|i| i % 12 == 5)
        .map(user_id)
        .chain(["qa-user-1".to_owned()])
        .collect();
    vec![("beta-testers", beta), ("vip-customers", vip)]
}

fn field(field: &str, op: &str, values: &[&str]) -> Value {
    json!({"type": "user_field", "field": field, "op": op, "values": values})
}

fn property(property: &str, op: &str, values: &[&str]) -> Value {
    json!({"type": "user_property", "property": property, "op": op, "values": values})
}

fn cohort(op: &str, ids: &[&str]) -> Value {
    json!({"type": "cohort", "op": op, "values": ids})
}

/// The flags made through the management API, in creation order (prerequisites first), and
/// whether to activate each. Designed around the corners where Amplitude's JavaScript engine
/// differs from the reference (`evaluation.md` §9): no regexes, no doubles in conditions,
/// numeric operators only on numbers, no `set is not`.
fn flags() -> Vec<(&'static str, Value, bool)> {
    let prod = json!(["production"]);
    vec![
        (
            "checkout-redesign",
            json!({
                "type": "experiment", "experiment_key": "exp-checkout-1", "evaluation_mode": "remote",
                "deployments": prod,
                "variants": [
                    {"key": "control", "payload": {"layout": "classic"}},
                    {"key": "treatment", "value": "treat", "payload": {"layout": "one-page", "steps": 1}},
                    {"key": "express", "payload": {"layout": "express", "steps": [1, 2]}}
                ],
                "segments": [
                    {"name": "Canada", "conditions": [field("country", "is", &["CA"])],
                     "percentage": 100, "weights": {"treatment": 1}},
                    {"name": "Beta testers", "conditions": [cohort("set contains any", &["beta-testers"])],
                     "percentage": 60, "weights": {"control": 1, "treatment": 3}}
                ],
                "all_other_users": {"percentage": 40, "weights": {"control": 1, "treatment": 1, "express": 2}},
                "inclusions": {"express": {"ids": ["qa-user-1"], "cohorts": ["vip-customers"]}}
            }),
            true,
        ),
        (
            "new-onboarding",
            json!({
                "evaluation_mode": "local", "deployments": prod,
                "segments": [{"name": "Modern app, adults", "conditions": [
                    field("version", "version greater or equal", &["2.1.0"]),
                    property("age", "greater", &["17"])
                ], "percentage": 100, "weights": {"on": 1}}],
                "all_other_users": {"percentage": 0, "weights": {"on": 1}}
            }),
            true,
        ),
        // Release group: the primary feature for premium users, a sub-feature on top of it.
        (
            "premium-features",
            json!({
                "evaluation_mode": "local", "deployments": prod,
                "segments": [{"name": "Premium", "conditions": [property("premium", "is", &["true"])],
                              "percentage": 100, "weights": {"on": 1}}],
                "all_other_users": {"percentage": 0, "weights": {"on": 1}}
            }),
            true,
        ),
        (
            "premium-analytics",
            json!({
                "evaluation_mode": "local", "deployments": prod,
                "prerequisites": [{"flag": "premium-features", "variants": ["on"]}],
                "segments": [{"name": "Beta", "conditions": [property("beta", "is", &["true"])],
                              "percentage": 100, "weights": {"on": 1}}],
                "all_other_users": {"percentage": 30, "weights": {"on": 1}},
                "inclusions": {"on": {"ids": ["qa-user-2"]}}
            }),
            true,
        ),
        // Chained mutual exclusion: b takes only users a does not serve; a is served to SDKs
        // only as b's ancestor (not attached to the deployment).
        (
            "search-ranking-a",
            json!({
                "type": "experiment", "evaluation_mode": "local", "deployments": [],
                "variants": [{"key": "control"}, {"key": "treatment"}],
                "all_other_users": {"percentage": 30, "weights": {"control": 1, "treatment": 1}}
            }),
            true,
        ),
        (
            "search-ranking-b",
            json!({
                "type": "experiment", "evaluation_mode": "local", "deployments": prod,
                "variants": [{"key": "control"}, {"key": "treatment"}],
                "prerequisites": [{"flag": "search-ranking-a", "variants": ["off"]}],
                "all_other_users": {"percentage": 100, "weights": {"control": 1, "treatment": 1}}
            }),
            true,
        ),
        (
            "legacy-banner",
            json!({
                "evaluation_mode": "local", "deployments": prod,
                "all_other_users": {"percentage": 100, "weights": {"on": 1}}
            }),
            false,
        ),
        (
            "dark-mode",
            json!({
                "evaluation_mode": "local", "deployments": prod, "bucketing_unit": "device_id",
                "segments": [{"name": "Mobile", "conditions": [field("platform", "is", &["iOS", "Android"])],
                              "percentage": 70, "weights": {"on": 1}}],
                "all_other_users": {"percentage": 20, "weights": {"on": 1}}
            }),
            true,
        ),
        (
            "pricing-page",
            json!({
                "type": "experiment", "experiment_key": "exp-pricing", "evaluation_mode": "remote",
                "deployments": prod,
                "variants": [
                    {"key": "v1", "payload": {"columns": 2}},
                    {"key": "v2", "payload": {"columns": 3, "badge": "popular"}},
                    {"key": "v3", "payload": {"columns": 4}}
                ],
                "segments": [
                    {"name": "DACH", "conditions": [field("country", "is", &["DE", "AT", "CH"])],
                     "percentage": 80, "weights": {"v1": 1, "v2": 1}},
                    {"name": "Teams", "conditions": [property("plan", "is", &["team", "enterprise"])],
                     "percentage": 100, "weights": {"v3": 1}}
                ],
                "all_other_users": {"percentage": 100, "weights": {"v1": 1, "v2": 2, "v3": 1}}
            }),
            true,
        ),
        (
            "holiday-sale",
            json!({
                "evaluation_mode": "local", "deployments": prod,
                "segments": [
                    {"name": "Beta testers", "conditions": [cohort("set contains any", &["beta-testers"])],
                     "percentage": 100, "weights": {"on": 1}},
                    {"name": "US, not VIP", "conditions": [
                        cohort("set does not contain any", &["vip-customers"]),
                        field("country", "is", &["US"])
                     ], "percentage": 50, "weights": {"on": 1}}
                ],
                "all_other_users": {"percentage": 0, "weights": {"on": 1}}
            }),
            true,
        ),
        (
            "age-gate",
            json!({
                "evaluation_mode": "local", "deployments": prod,
                "variants": [{"key": "restricted"}, {"key": "senior"}, {"key": "standard"}],
                "segments": [
                    {"name": "Minors", "conditions": [property("age", "less", &["18"])],
                     "percentage": 100, "weights": {"restricted": 1}},
                    {"name": "Seniors", "conditions": [property("age", "greater or equal", &["65"])],
                     "percentage": 100, "weights": {"senior": 1}}
                ],
                "all_other_users": {"percentage": 100, "weights": {"standard": 1}}
            }),
            true,
        ),
        // An experiment in slot 1 of a mutual-exclusion group and behind a holdout
        // ([`GROUPS`]), both remote like it.
        (
            "banner-test",
            json!({
                "type": "experiment", "evaluation_mode": "remote", "deployments": prod,
                "variants": [{"key": "wide"}, {"key": "slim"}],
                "mutex_group": {"group": "mutex-surface", "slot": 1}, "holdouts": ["holdout-q4"],
                "all_other_users": {"percentage": 100, "weights": {"wide": 1, "slim": 1}}
            }),
            true,
        ),
        (
            "mobile-release",
            json!({
                "evaluation_mode": "local", "deployments": prod,
                "segments": [{"name": "Old mobile apps", "conditions": [
                    field("platform", "is not", &["Web"]),
                    field("version", "version less", &["2.1.0"])
                ], "percentage": 0, "weights": {"on": 1}}],
                "all_other_users": {"percentage": 50, "weights": {"on": 1}}
            }),
            true,
        ),
    ]
}

/// The groups, created before the flags (path under the project, body); served to the
/// deployment as ancestors of `banner-test`, with `deployed: false`.
fn groups() -> Vec<(&'static str, Value)> {
    vec![
        (
            "mutex-groups",
            json!({"name": "Surface", "evaluation_mode": "remote", "bucketing_salt": "surface1",
                   "slots": [{"percentage": 60}, {"percentage": 40}]}),
        ),
        (
            "holdouts",
            json!({"name": "Q4", "evaluation_mode": "remote", "bucketing_salt": "holdq4xx",
                   "percentage": 20}),
        ),
    ]
}

/// What OFREP must not know although the deployment serves it: the groups and the imported
/// flag that says `deployed: false` (attached to the deployment by the import).
const NOT_FOUND: [&str; 3] = ["holdout-q4", "mutex-surface", "legacy-switch"];

/// Amplitude configs with typed values (boolean, number, object), which only imports carry:
/// Vexil's own variants have string values. They are remote-mode flags, for OFREP.
fn imported() -> Value {
    let off = json!({"key": "off", "metadata": {"default": true}});
    let bucket = |salt: &str, pct: u32, distributions: Value| {
        json!({"selector": ["context", "user", "user_id"], "salt": salt,
               "allocations": [{"range": [0, pct], "distributions": distributions}]})
    };
    let meta = |kind: &str| json!({"evaluationMode": "remote", "flagType": kind, "flagVersion": 4, "deployed": true});
    json!([
        {"key": "express-checkout", "metadata": meta("release"),
         "variants": {"on": {"key": "on", "value": true}, "off": off},
         "segments": [
            {"metadata": {"segmentName": "US"}, "variant": "on",
             "conditions": [[{"selector": ["context", "user", "country"], "op": "is", "values": ["US"]}]]},
            {"metadata": {"segmentName": "All Other Users"}, "variant": "off",
             "bucket": bucket("xc9Lk2Qa", 50, json!([{"variant": "on", "range": [0, 42949673]}]))}]},
        {"key": "cart-limit", "metadata": meta("release"),
         "variants": {"large": {"key": "large", "value": 50}, "standard": {"key": "standard", "value": 20}, "off": off},
         "segments": [
            {"metadata": {"segmentName": "Premium"}, "variant": "large",
             "conditions": [[{"selector": ["context", "user", "user_properties", "premium"], "op": "is", "values": ["true"]}]]},
            {"metadata": {"segmentName": "All Other Users"}, "variant": "standard"}]},
        {"key": "upload-limit-mb", "metadata": meta("release"),
         "variants": {"default": {"key": "default", "value": 100}, "off": off},
         "segments": [{"metadata": {"segmentName": "All Other Users"}, "variant": "default"}]},
        {"key": "theme-config", "metadata": {"evaluationMode": "remote", "flagType": "experiment", "flagVersion": 2,
                                             "deployed": true, "experimentKey": "exp-theme"},
         "variants": {
            "light": {"key": "light", "value": {"primary": "#ffffff", "dense": false, "radius": 4}},
            "dark": {"key": "dark", "value": {"primary": "#101010", "dense": true, "radius": 8}, "payload": {"beta": true}},
            "off": off},
         "segments": [{"metadata": {"segmentName": "All Other Users"}, "variant": "off",
             "bucket": bucket("th3meSLT", 90, json!([{"variant": "light", "range": [0, 21474837]},
                                                     {"variant": "dark", "range": [21474836, 42949673]}]))}]},
        {"key": "legacy-switch", "metadata": {"evaluationMode": "remote", "flagType": "release", "flagVersion": 9, "deployed": false},
         "variants": {"on": {"key": "on", "value": true}, "off": off},
         "segments": [{"metadata": {"segmentName": "All Other Users"}, "variant": "on"}]}
    ])
}

/// What the script needs to reach the server.
struct Project {
    key: String,
    server_key: String,
    api_key: String,
    secret_key: String,
}

/// A project with a server deployment and the two user cohorts.
async fn project(api: &Api) -> Project {
    let (_, p) = api
        .json(
            Method::POST,
            "/api/v1/projects",
            &json!({"name": "Shop"}),
            None,
            201,
        )
        .await;
    let key = p["key"].as_str().unwrap().to_owned();
    let (_, d) = api
        .json(
            Method::POST,
            &format!("/api/v1/projects/{key}/deployments"),
            &json!({"label": "Production", "type": "server"}),
            None,
            201,
        )
        .await;
    for (id, members) in cohorts() {
        let path = format!("/api/v1/projects/{key}/cohorts/{id}");
        let csv: String = members.iter().map(|m| format!("{m}\n")).collect();
        let (status, _, body) = api
            .send(Method::PUT, &path, Some(("text/csv", csv)), None)
            .await;
        assert_eq!(status, 200, "PUT {path}: {body}");
    }
    Project {
        server_key: d["api_key"].as_str().unwrap().to_owned(),
        api_key: p["api_key"].as_str().unwrap().to_owned(),
        secret_key: p["secret_key"].as_str().unwrap().to_owned(),
        key,
    }
}

/// Creates a flag with a salt fixed by its key, so that every run buckets the same users the
/// same way; returns its version.
async fn create_flag(api: &Api, project: &str, key: &str, extra: &Value) -> i64 {
    let salt: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    let mut body = json!({"project": project, "name": key, "key": key, "bucketing_salt": salt});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (version, created) = api
        .json(Method::POST, "/api/v1/flags", &body, None, 201)
        .await;
    version.unwrap_or_else(|| panic!("no ETag creating {key}: {created}"))
}

/// Activates a flag at `version`; returns its new version.
async fn activate(api: &Api, key: &str, version: i64) -> i64 {
    let path = format!("/api/v1/flags/{key}/activate");
    let (v, body) = api
        .json(Method::POST, &path, &json!({}), Some(version), 200)
        .await;
    v.unwrap_or_else(|| panic!("no ETag activating {key}: {body}"))
}

/// Creates and activates the flags and imports the typed ones; returns the management version
/// each Vexil flag must be served at.
async fn create_flags(api: &Api, project: &str) -> BTreeMap<String, i64> {
    for (kind, body) in groups() {
        let path = format!("/api/v1/projects/{project}/{kind}");
        api.json(Method::POST, &path, &body, None, 201).await;
    }
    let mut versions = BTreeMap::new();
    for (key, extra, active) in flags() {
        let mut version = create_flag(api, project, key, &extra).await;
        if active {
            version = activate(api, key, version).await;
        }
        versions.insert(key.to_owned(), version);
    }
    let body = json!({"deployment": "Production", "flags": imported()});
    let (_, report) = api
        .json(
            Method::POST,
            &format!("/api/v1/projects/{project}/import"),
            &body,
            None,
            200,
        )
        .await;
    assert_eq!(
        report["created"].as_array().map(Vec::len),
        Some(5),
        "{report}"
    );
    versions
}

/// Waits until the deployment serves every Vexil flag at its version and every key of `others`
/// (imported flags, groups); returns `GET /sdk/v2/flags?eval_mode=remote`.
async fn served_configs(
    api: &Api,
    server_key: &str,
    versions: &BTreeMap<String, i64>,
    others: &[String],
) -> Value {
    let deadline = Instant::now() + PUBLISH_DEADLINE;
    loop {
        let configs: Value = api
            .http
            .get(format!("{}/sdk/v2/flags?eval_mode=remote", api.base))
            .header("Authorization", format!("Api-Key {server_key}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let served: BTreeMap<&str, &Value> = configs
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["key"].as_str().unwrap(), &c["metadata"]["flagVersion"]))
            .collect();
        let complete = versions
            .iter()
            .all(|(k, v)| served.get(k.as_str()) == Some(&&json!(v)))
            && others.iter().all(|k| served.contains_key(k.as_str()));
        if complete {
            return configs;
        }
        assert!(
            Instant::now() < deadline,
            "the deployment did not serve {versions:?} and {others:?} in time: {served:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The keys of the imported flags.
fn imported_keys() -> Vec<String> {
    imported()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap().to_owned())
        .collect()
}

/// The user as remote evaluation enriches it (`sdk-protocol.md` §A7): a user with a `user_id`
/// gets `cohort_ids`, the cohorts holding that id, ascending. Local SDKs compute the same from
/// the cohorts they download.
fn enriched(user: &Value) -> Value {
    let mut user = user.clone();
    if let Some(id) = user["user_id"].as_str() {
        let mut ids: Vec<&str> = cohorts()
            .into_iter()
            .filter(|(_, members)| members.iter().any(|m| m == id))
            .map(|(cohort, _)| cohort)
            .collect();
        ids.sort_unstable();
        user["cohort_ids"] = json!(ids);
    }
    user
}

/// `vexil eval` on the served configs: one result map per user, in order.
fn expected(dir: &Path, configs: &Value, users: &[Value]) -> Vec<Value> {
    let flags = dir.join("flags.json");
    std::fs::write(&flags, configs.to_string()).unwrap();
    let input = dir.join("eval-users.jsonl");
    let lines: String = users.iter().map(|u| format!("{}\n", enriched(u))).collect();
    std::fs::write(&input, lines).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vexil"))
        .arg("eval")
        .arg("--flags")
        .arg(&flags)
        .arg("--users")
        .arg(&input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vexil eval failed: {stderr}");
    assert!(
        !stderr.contains("warning"),
        "vexil eval warns about the flags: {stderr}"
    );
    let results: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), users.len());
    results
}

/// Runs `node <script>` with the fixture; kills it at [`NODE_DEADLINE`]. Returns (success,
/// stdout, stderr).
fn run_node(sdk_dir: &Path, script: &str, fixture: &Path, report: &Path) -> (bool, String, String) {
    let mut child = Command::new("node")
        .arg(sdk_dir.join(script))
        .env("VEXIL_FIXTURE", fixture)
        .env("VEXIL_REPORT", report)
        .current_dir(sdk_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let status = wait_until(&mut child, Instant::now() + NODE_DEADLINE);
    let (stdout, mut stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    if status.is_none() {
        stderr.push_str(&format!("\nkilled after {NODE_DEADLINE:?}"));
    }
    (status.is_some_and(|s| s.success()), stdout, stderr)
}

/// Writes the fixture, runs `node <script>` on it and asserts that it passed; prints its
/// output and report, with the time `started` says setup took.
async fn run_script(
    sdk_dir: &Path,
    dir: &Path,
    script: &'static str,
    fixture: &Value,
    started: Instant,
) {
    let path = dir.join("fixture.json");
    std::fs::write(&path, fixture.to_string()).unwrap();
    let report = dir.join("report.json");
    let setup = started.elapsed();
    let (ok, stdout, stderr) = {
        let (sdk_dir, path, report) = (sdk_dir.to_owned(), path.clone(), report.clone());
        tokio::task::spawn_blocking(move || run_node(&sdk_dir, script, &path, &report))
            .await
            .unwrap()
    };
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(ok, "the Node SDK checks of {script} failed (output above)");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    println!(
        "setup {setup:?}, total {:?}; report: {report:#}",
        started.elapsed()
    );
}

/// A running server, its management API as the admin, and a project set up by [`project`].
struct Setup {
    dir: TempDir,
    _server: common::Server,
    api: Api,
    project: Project,
    started: Instant,
}

impl Setup {
    async fn new(prefix: &str) -> Setup {
        let started = Instant::now();
        let dir = TempDir::new(prefix);
        let server = start(&dir.0.join("vexil.db"), &["--sync-interval-ms", "200"]);
        let api = Api {
            http: reqwest::Client::new(),
            base: server.base(),
            admin: server
                .key
                .clone()
                .expect("a fresh database prints an admin key"),
        };
        let project = project(&api).await;
        Setup {
            dir,
            _server: server,
            api,
            project,
            started,
        }
    }

    /// What every script needs to reach the server, with `extra` fields.
    fn fixture(&self, extra: Value) -> Value {
        let mut body = json!({
            "base": self.api.base, "sdkBase": self.api.base,
            "adminKey": self.api.admin, "project": self.project.key,
            "serverKey": self.project.server_key, "projectApiKey": self.project.api_key,
            "projectSecretKey": self.project.secret_key,
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdks_agree_with_vexil_eval() {
    let sdk_dir = repo_dir("tests/sdk-node");
    if let Some(reason) = missing_node(&sdk_dir) {
        skip("the Node SDK test", &reason);
        return;
    }
    let s = Setup::new("vexil-sdk-node").await;
    let versions = create_flags(&s.api, &s.project.key).await;
    let configs = served_configs(&s.api, &s.project.server_key, &versions, &imported_keys()).await;
    let users = users();
    let expected = expected(&s.dir.0, &configs, &users);
    let fixture = s.fixture(
        json!({"configs": configs, "users": users, "expected": expected, "notFound": NOT_FOUND}),
    );
    run_script(&sdk_dir, &s.dir.0, "run.mjs", &fixture, s.started).await;
}

/// The same checks with every SDK pointed at a `vexil edge` that follows the server (the
/// management API, and so the expectations and the change, stay on the server): remote and
/// local evaluation, the flag stream, cohort sync, exposures forwarded upstream, and OFREP
/// with its change notifications all pass through the edge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdks_agree_through_an_edge() {
    let sdk_dir = repo_dir("tests/sdk-node");
    if let Some(reason) = missing_node(&sdk_dir) {
        skip("the Node SDK edge test", &reason);
        return;
    }
    let s = Setup::new("vexil-sdk-node-edge").await;
    let versions = create_flags(&s.api, &s.project.key).await;
    let configs = served_configs(&s.api, &s.project.server_key, &versions, &imported_keys()).await;
    let edge = start_edge(&s.api.base, &[&s.project.server_key], None, "127.0.0.1:0");
    // The edge serves the server's revision before the SDKs start.
    let flags = |base: String| {
        let http = s.api.http.clone();
        let key = s.project.server_key.clone();
        async move {
            let response = http
                .get(format!("{base}/sdk/v2/flags"))
                .header("Authorization", format!("Api-Key {key}"))
                .send()
                .await
                .unwrap();
            response.headers().get("etag").cloned()
        }
    };
    let deadline = Instant::now() + PUBLISH_DEADLINE;
    while flags(edge.base()).await != flags(s.api.base.clone()).await {
        assert!(
            Instant::now() < deadline,
            "the edge did not follow the server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let users = users();
    let expected = expected(&s.dir.0, &configs, &users);
    let fixture = s.fixture(
        json!({"configs": configs, "users": users, "expected": expected,
        "notFound": NOT_FOUND, "sdkBase": edge.base()}),
    );
    run_script(&sdk_dir, &s.dir.0, "run.mjs", &fixture, s.started).await;
}

/// Mutual-exclusion and holdout groups (`groups.rs` sets them up): Amplitude's JS engine on the
/// served configs, and its Node SDK evaluating locally, against remote evaluation, and the
/// groups' guarantees in every answer (`tests/sdk-node/groups.mjs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdks_agree_on_groups() {
    let sdk_dir = repo_dir("tests/sdk-node");
    if let Some(reason) = missing_node(&sdk_dir) {
        skip("the Node SDK groups test", &reason);
        return;
    }
    let s = Setup::new("vexil-sdk-node-groups").await;
    let scenario = groups::set_up(&s.api, &s.project.key).await;
    served_configs(
        &s.api,
        &s.project.server_key,
        &scenario.versions,
        &scenario.groups,
    )
    .await;
    let fixture = s.fixture(json!({"users": groups::users(), "scenario": scenario.declared}));
    run_script(&sdk_dir, &s.dir.0, "groups.mjs", &fixture, s.started).await;
}

/// An experiment analysed from what the real SDKs send (`analysis.rs` sets it up): the analytics
/// SDK seeds the event types, the metrics are defined on them, the experiment is configured and
/// started, then `tests/sdk-node/analysis.mjs` exposes users through the Experiment SDK, sends
/// their product events through the analytics SDK and checks the results it recomputes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdks_feed_the_analysis() {
    let sdk_dir = repo_dir("tests/sdk-node");
    if let Some(reason) = missing_node(&sdk_dir) {
        skip("the Node SDK analysis test", &reason);
        return;
    }
    let s = Setup::new("vexil-sdk-node-analysis").await;
    let draft = analysis::draft(&s.api, &s.project.key).await;
    let seed = s.fixture(json!({"phase": "seed"}));
    run_script(&sdk_dir, &s.dir.0, "analysis.mjs", &seed, s.started).await;
    let metrics = analysis::define_metrics(&s.api, &s.project.key).await;
    let version = analysis::start(&s.api, draft, &metrics).await;
    let versions = BTreeMap::from([(analysis::FLAG.to_owned(), version)]);
    served_configs(&s.api, &s.project.server_key, &versions, &[]).await;
    let fixture = s.fixture(json!({
        "phase": "run", "flag": analysis::FLAG, "metrics": metrics,
        "confidence": analysis::CONFIDENCE,
    }));
    run_script(&sdk_dir, &s.dir.0, "analysis.mjs", &fixture, s.started).await;
}
