//! The management-API helpers and the realistic scenario that the SDK and edge tests share:
//! a project with a server deployment, flags over segments, percentages, cohorts, a
//! prerequisite, inclusions and an inactive flag, and a few hundred varied users.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use super::{start, Server};

/// How long a test waits for something that should take milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The management API of one server, with its admin key.
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub admin: String,
}

/// A project with a server deployment `prod`.
pub struct Fixture {
    pub project: String,
    pub key: String,
    pub api_key: String,
    pub secret_key: String,
    /// Where new flags are served: `prod`, and `web` once [`Api::client_deployment`] made it.
    pub deployments: Vec<&'static str>,
}

impl Api {
    pub fn new(server: &Server, admin: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: server.base(),
            admin: admin.to_owned(),
        }
    }

    /// (status, JSON body, version from the ETag)
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        version: Option<i64>,
        body: Option<&Value>,
    ) -> (u16, Value, Option<i64>) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin);
        if let Some(v) = version {
            request = request.header("If-Match", format!("\"{v}\""));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_start_matches("W/").trim_matches('"').parse().ok());
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            etag,
        )
    }

    pub async fn fixture(&self, name: &str) -> Fixture {
        let (status, p, _) = self
            .call(
                Method::POST,
                "/api/v1/projects",
                None,
                Some(&json!({"name": name})),
            )
            .await;
        assert_eq!(status, 201, "{p}");
        let project = p["key"].as_str().unwrap().to_owned();
        let path = format!("/api/v1/projects/{project}/deployments");
        let body = json!({"label": "prod", "type": "server"});
        let (status, d, _) = self.call(Method::POST, &path, None, Some(&body)).await;
        assert_eq!(status, 201, "{d}");
        let key = d["api_key"].as_str().unwrap().to_owned();
        self.until_served(&key).await;
        Fixture {
            key,
            api_key: p["api_key"].as_str().unwrap().to_owned(),
            secret_key: p["secret_key"].as_str().unwrap().to_owned(),
            project,
            deployments: vec!["prod"],
        }
    }

    /// Adds a client deployment `web` to the project, where the flags made after it are
    /// served too; returns its key.
    pub async fn client_deployment(&self, fx: &mut Fixture) -> String {
        let path = format!("/api/v1/projects/{}/deployments", fx.project);
        let body = json!({"label": "web", "type": "client"});
        let (status, d, _) = self.call(Method::POST, &path, None, Some(&body)).await;
        assert_eq!(status, 201, "{d}");
        fx.deployments.push("web");
        let key = d["api_key"].as_str().unwrap().to_owned();
        self.until_served(&key).await;
        key
    }

    /// Waits until the server answers SDKs with deployment key `key`: a new deployment is
    /// served once the server has published it, and an SDK asking before gets 401 (which it
    /// keeps as its last error).
    async fn until_served(&self, key: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let status = self
                .http
                .get(format!("{}/sdk/v2/flags", self.base))
                .header("Authorization", format!("Api-Key {key}"))
                .send()
                .await
                .unwrap()
                .status();
            if status == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the deployment key is not served: {status}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Creates a local-mode flag in the fixture's deployments with the fields of `body`,
    /// active unless it says `"inactive": true`.
    pub async fn flag(&self, fx: &Fixture, key: &str, body: Value) {
        let mut full = json!({"project": fx.project, "name": key, "key": key,
            "deployments": fx.deployments, "evaluation_mode": "local"});
        let mut body = body.as_object().unwrap().clone();
        let inactive = body.remove("inactive").is_some();
        full.as_object_mut().unwrap().extend(body);
        let (status, created, _) = self
            .call(Method::POST, "/api/v1/flags", None, Some(&full))
            .await;
        assert_eq!(status, 201, "{key}: {created}");
        if !inactive {
            self.action(key, "activate").await;
        }
    }

    pub async fn version(&self, key: &str) -> i64 {
        let (status, flag, etag) = self
            .call(Method::GET, &format!("/api/v1/flags/{key}"), None, None)
            .await;
        assert_eq!(status, 200, "{flag}");
        etag.unwrap()
    }

    pub async fn action(&self, key: &str, action: &str) {
        let version = self.version(key).await;
        let path = format!("/api/v1/flags/{key}/{action}");
        let (status, body, _) = self.call(Method::POST, &path, Some(version), None).await;
        assert_eq!(status, 200, "{key} {action}: {body}");
    }

    /// A cohort from CSV members (`?group_type=` for a group cohort).
    pub async fn cohort(&self, fx: &Fixture, id: &str, query: &str, csv: String) {
        let path = format!("/api/v1/projects/{}/cohorts/{id}{query}", fx.project);
        let response = self
            .http
            .put(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .header("Content-Type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{id}");
    }

    /// Exposure counts of a flag: variant -> (count, users).
    pub async fn exposures(&self, flag: &str) -> BTreeMap<String, (i64, i64)> {
        let path = format!("/api/v1/flags/{flag}/exposures?days=2");
        let (status, stats, _) = self.call(Method::GET, &path, None, None).await;
        assert_eq!(status, 200, "{stats}");
        stats["totals"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    (v["count"].as_i64().unwrap(), v["users"].as_i64().unwrap()),
                )
            })
            .collect()
    }
}

/// Polls `check` until it gives `Some`, failing with `what` after [`DEADLINE`].
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `Some` once `flags_json` (an SDK's configs, as `/sdk/v2/flags` gives them) has every flag of
/// `keys` (for [`eventually`]).
pub fn serves(flags_json: Option<&str>, keys: &[&str]) -> Option<()> {
    let configs: Value = serde_json::from_str(flags_json?).ok()?;
    let served: Vec<&str> = configs
        .as_array()?
        .iter()
        .filter_map(|c| c["key"].as_str())
        .collect();
    keys.iter().all(|k| served.contains(k)).then_some(())
}

pub fn started(db: &std::path::Path) -> (Server, String) {
    let server = start(db, &["--sync-interval-ms", "100"]);
    let admin = server
        .key
        .clone()
        .expect("a new database prints an admin key");
    (server, admin)
}

pub fn stop(mut server: Server) {
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(server.child.wait().unwrap().success());
}

pub async fn realistic_flags(api: &Api, fx: &Fixture) {
    let members: String = (1..=20).map(|i| format!("u{i}\n")).collect();
    api.cohort(fx, "beta", "", members).await;
    api.cohort(
        fx,
        "big-orgs",
        "?group_type=org",
        "acme\nglobex\n".to_owned(),
    )
    .await;
    let variants = json!([
        {"key": "control", "payload": {"layout": "a"}},
        {"key": "treatment", "value": "treat", "payload": {"layout": "b", "n": 2.5}},
        {"key": "big"}
    ]);
    api.flag(fx, "checkout", json!({
        "type": "experiment", "variants": variants,
        "segments": [
            {"name": "Canada", "conditions": [{"type": "user_field", "field": "country", "op": "is", "values": ["CA"]}],
             "percentage": 100, "weights": {"treatment": 1}},
            {"name": "Beta", "conditions": [{"type": "cohort", "op": "set contains any", "values": ["beta"]}],
             "percentage": 60, "weights": {"control": 1, "treatment": 3}}
        ],
        "all_other_users": {"percentage": 40, "weights": {"control": 1, "treatment": 1, "big": 2}},
        "inclusions": {"big": {"ids": ["vip"]}}
    })).await;
    api.flag(fx, "new-version", json!({
        "segments": [{"name": "Modern", "conditions": [
            {"type": "user_field", "field": "version", "op": "version greater or equal", "values": ["2.1.0"]},
            {"type": "user_property", "property": "age", "op": "greater", "values": ["17"]}
        ], "percentage": 100, "weights": {"on": 1}}],
        "all_other_users": {"percentage": 0, "weights": {"on": 1}}
    })).await;
    api.flag(fx, "org-pricing", json!({
        "bucketing_unit": "org",
        "segments": [
            {"name": "Big orgs", "conditions": [{"type": "group_cohort", "group_type": "org", "op": "set contains any", "values": ["big-orgs"]}],
             "percentage": 100, "weights": {"on": 1}},
            {"name": "Gold", "conditions": [{"type": "group_property", "group_type": "org", "property": "tier", "op": "is", "values": ["gold"]}],
             "percentage": 50, "weights": {"on": 1}}
        ],
        "all_other_users": {"percentage": 0, "weights": {"on": 1}}
    })).await;
    api.flag(fx, "staff", json!({
        "segments": [{"name": "Staff", "conditions": [
            {"type": "user_property", "property": "email", "op": "regex match", "values": [".*@example\\.com"]},
            {"type": "user_field", "field": "country", "op": "is not", "values": ["DE"]}
        ], "percentage": 100, "weights": {"on": 1}}],
        "all_other_users": {"percentage": 25, "weights": {"on": 1}}
    })).await;
    api.flag(fx, "primary", json!({
        "segments": [{"name": "Premium", "conditions": [{"type": "user_property", "property": "premium", "op": "is", "values": ["true"]}],
                      "percentage": 100, "weights": {"on": 1}}],
        "all_other_users": {"percentage": 0, "weights": {"on": 1}}
    })).await;
    api.flag(fx, "sub-feature", json!({
        "prerequisites": [{"flag": "primary", "variants": ["on"]}],
        "segments": [{"name": "Beta", "conditions": [{"type": "user_property", "property": "beta", "op": "is", "values": ["true"]}],
                      "percentage": 100, "weights": {"on": 1}}],
        "all_other_users": {"percentage": 0, "weights": {"on": 1}},
        "inclusions": {"on": {"ids": ["tester"]}}
    })).await;
    api.flag(
        fx,
        "dormant",
        json!({"inactive": true, "all_other_users": {"percentage": 100, "weights": {"on": 1}}}),
    )
    .await;
}

pub const REALISTIC: &[&str] = &[
    "checkout",
    "new-version",
    "org-pricing",
    "staff",
    "primary",
    "sub-feature",
    "dormant",
];

pub fn users(n: usize) -> Vec<Value> {
    let countries = ["US", "CA", "DE", "NZ"];
    let orgs = ["acme", "initech", "globex", "umbrella"];
    (0..n)
        .map(|i| {
            let email = if i % 7 == 0 { format!("p{i}@example.com") } else { format!("p{i}@mail.test") };
            let mut user = json!({
                "user_id": format!("u{i}"),
                "device_id": format!("d{}", i % 37),
                "country": countries[i % 4],
                "version": format!("2.{}.{}", i % 4, i % 3),
                "user_properties": {"premium": i % 3 == 0, "beta": i % 2 == 0, "age": 10 + i % 20, "email": email},
                "groups": {"org": [orgs[i % 4]]},
                "group_properties": {"org": {orgs[i % 4]: {"tier": if i % 5 == 0 { "gold" } else { "silver" }}}}
            });
            match i % 10 {
                0 => {
                    user.as_object_mut().unwrap().remove("user_id");
                }
                1 => user["user_id"] = json!("vip"),
                2 => user["user_id"] = json!("tester"),
                // Claimed cohorts are replaced by the synced ones, locally as on the server.
                3 => user["cohort_ids"] = json!(["beta", "other"]),
                _ => {}
            }
            user
        })
        .collect()
}
