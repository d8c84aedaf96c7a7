//! Helpers of the SDK API tests: a project with a server and a client deployment, requests
//! authenticated with a deployment key, and polling with a deadline for the asynchronous
//! publish that follows every management change.

use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};

use super::{Resp, Server};

/// How long a test waits for something that should happen within milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// Imported Amplitude configs, to be attached to a deployment by an import: a holdout group and a
/// mutual-exclusion group (`deployed: false`, as Amplitude serves them), their member, and an
/// ordinary flag that says `deployed: false`.
pub fn imported_groups() -> Value {
    let off = json!({"key": "off", "metadata": {"default": true}});
    let meta = |kind: &str, deployed: bool| json!({"deployed": deployed, "evaluationMode": "remote", "flagType": kind, "flagVersion": 3});
    let all = |bucket: Value| json!([{"metadata": {"segmentName": "All Other Users"}, "variant": "off", "bucket": bucket}]);
    let bucket = |salt: &str, distributions: Value| {
        json!({"selector": ["context", "user", "user_id"], "salt": salt,
               "allocations": [{"range": [0, 100], "distributions": distributions}]})
    };
    json!([
        {"key": "imp-holdout", "metadata": meta("holdout-group", false),
         "variants": {"holdout": {"key": "holdout", "payload": {"flagIds": ["imp-member"]}},
                      "on": {"key": "on", "payload": {"flagIds": ["imp-member"]}}, "off": off},
         "segments": all(bucket("impHold1", json!([
            {"variant": "holdout", "range": [0, 12884902]}, {"variant": "on", "range": [12884902, 42949673]}])))},
        {"key": "imp-mutex", "metadata": meta("mutual-exclusion-group", false),
         "variants": {"slot-1": {"key": "slot-1", "payload": {"flagIds": ["imp-member"]}},
                      "slot-2": {"key": "slot-2", "payload": {"flagIds": []}}, "off": off},
         "segments": all(bucket("impMutx1", json!([
            {"variant": "slot-1", "range": [0, 21474837]}, {"variant": "slot-2", "range": [21474837, 42949673]}])))},
        {"key": "imp-member", "metadata": meta("experiment", true), "dependencies": ["imp-holdout", "imp-mutex"],
         "variants": {"on": {"key": "on", "value": "on"}, "off": off},
         "segments": [
            {"metadata": {"segmentName": "flag-dependencies"}, "variant": "off", "conditions": [
                [{"selector": ["result", "imp-holdout", "key"], "op": "is not", "values": ["on"]}],
                [{"selector": ["result", "imp-mutex", "key"], "op": "is not", "values": ["slot-1"]}]]},
            {"metadata": {"segmentName": "All Other Users"}, "variant": "on"}]},
        {"key": "imp-hidden", "metadata": meta("release", false),
         "variants": {"on": {"key": "on", "value": "on"}, "off": off},
         "segments": [{"metadata": {"segmentName": "All Other Users"}, "variant": "on"}]}
    ])
}

/// A project with two deployments.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub project: String,
    /// Key of the server deployment `prod`.
    pub server: String,
    /// Key of the client deployment `web`.
    pub client: String,
    /// The project's API key and secret key (cohort downloads, ingestion).
    pub api_key: String,
    pub secret_key: String,
}

/// URL-safe base64 without padding, as the Node and browser SDKs send.
pub fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

impl Server {
    /// Creates project `name` with a server deployment `prod` and a client deployment `web`.
    pub async fn sdk_fixture(&self, name: &str) -> Fixture {
        // The secret key is in the creation's answer only: the store keeps its hash.
        let p = self
            .post("/api/v1/projects", &serde_json::json!({ "name": name }))
            .await
            .ok(201)
            .json;
        let project = p["key"].as_str().unwrap().to_owned();
        let server = self.create_deployment(&project, "prod", "server").await;
        let client = self.create_deployment(&project, "web", "client").await;
        let fx = Fixture {
            server: server["api_key"].as_str().unwrap().to_owned(),
            client: client["api_key"].as_str().unwrap().to_owned(),
            api_key: p["api_key"].as_str().unwrap().to_owned(),
            secret_key: p["secret_key"].as_str().unwrap().to_owned(),
            project,
        };
        for key in [&fx.server, &fx.client] {
            self.eventually("the new deployment's key to work", || async {
                let r = self.send(self.sdk(Method::GET, "/sdk/v2/flags", key)).await;
                (r.status == 200).then_some(())
            })
            .await;
        }
        fx
    }

    /// A request with `Authorization: Api-Key <key>`.
    pub fn sdk(&self, method: Method, path: &str, key: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("Authorization", format!("Api-Key {key}"))
    }

    /// `GET /sdk/v2/vardata` for `user` without tracking; asserts 200.
    pub async fn vardata(&self, key: &str, user: &Value) -> Value {
        let request = self
            .sdk(Method::GET, "/sdk/v2/vardata", key)
            .header("X-Amp-Exp-User", b64(user))
            .header("X-Amp-Exp-Track", "no-track");
        self.send(request).await.ok(200).json
    }

    /// The variant key `flag` gives `user` by remote evaluation (`None`: absent).
    pub async fn variant(&self, key: &str, user: &Value, flag: &str) -> Option<String> {
        self.vardata(key, user).await[flag]["key"]
            .as_str()
            .map(str::to_owned)
    }

    /// `GET /sdk/v2/flags` with a query; asserts 200 and returns the configs.
    pub async fn download(&self, key: &str, query: &str) -> Value {
        let request = self.sdk(Method::GET, &format!("/sdk/v2/flags{query}"), key);
        self.send(request).await.ok(200).json
    }

    /// Waits until the server deployment serves `flag` at `version` (every management change
    /// is published asynchronously, within milliseconds).
    pub async fn served(&self, key: &str, flag: &str, version: i64) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let configs = self.download(key, "?eval_mode=remote").await;
            let served = configs
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["key"] == flag);
            if served.is_some_and(|c| c["metadata"]["flagVersion"] == version) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{flag} v{version} was not served in time: {configs}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Creates a flag (extra fields from `body`), activates it, and waits until the server
    /// deployment serves it.
    pub async fn live_flag(&self, fx: &Fixture, key: &str, body: Value) -> Value {
        let mut full =
            json!({"project": fx.project, "name": key, "key": key, "deployments": ["prod", "web"]});
        full.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        self.create_flag(full).await;
        let active = self.action(key, "activate").await.ok(200);
        self.served(&fx.server, key, active.etag()).await;
        active.json
    }

    /// Polls `check` until it returns `Some`, failing with `what` after [`DEADLINE`].
    pub async fn eventually<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `POST /2/httpapi` with a batch; returns the answer.
    pub async fn ingest(&self, api_key: &str, events: Value) -> Resp {
        let request = self
            .http
            .post(self.url("/2/httpapi"))
            .json(&json!({"api_key": api_key, "events": events}));
        self.send(request).await
    }
}
