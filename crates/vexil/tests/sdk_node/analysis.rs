//! The analysis scenario of `sdk_node.rs`: a checkout experiment (local evaluation, control and
//! treatment 50/50) and three metrics made through the management API the way a team would: the
//! flag drafted, the metrics defined on event types the analytics SDK has already sent, the
//! experiment's settings set with `PATCH /api/v1/flags/{key}`, then activated, which opens the
//! analysis window. `tests/sdk-node/analysis.mjs` does the rest with the real SDKs.

use reqwest::Method;
use serde_json::{json, Value};

use super::{activate, create_flag, Api};

/// The experiment flag.
pub const FLAG: &str = "checkout-flow";
/// The confidence level of its fixed-horizon test.
pub const CONFIDENCE: f64 = 0.95;

/// Drafts the experiment without settings; returns its version.
pub async fn draft(api: &Api, project: &str) -> i64 {
    let body = json!({
        "type": "experiment", "experiment_key": "exp-checkout-flow", "evaluation_mode": "local",
        "deployments": ["production"],
        "variants": [{"key": "control"}, {"key": "treatment"}],
        "all_other_users": {"percentage": 100, "weights": {"control": 1, "treatment": 1}}
    });
    create_flag(api, project, FLAG, &body).await
}

/// Defines the metrics on the seeded event types: a conversion (primary), the sum of the
/// purchases' `amount` (secondary) and a count of errors that should go down (guardrail).
/// Returns their keys by role, as the script reads them.
pub async fn define_metrics(api: &Api, project: &str) -> Value {
    let path = format!("/api/v1/projects/{project}/metrics");
    let mut keys = serde_json::Map::new();
    let metrics = [
        (
            "primary",
            json!({"name": "Purchase", "type": "conversion", "event_type": "Purchase"}),
        ),
        (
            "secondary",
            json!({"name": "Revenue", "type": "sum", "event_type": "Purchase", "property": "amount"}),
        ),
        (
            "guardrail",
            json!({"name": "Errors", "type": "count", "event_type": "App Error",
                   "direction": "decrease"}),
        ),
    ];
    for (role, body) in metrics {
        let (_, metric) = api.json(Method::POST, &path, &body, None, 201).await;
        keys.insert(role.to_owned(), metric["key"].clone());
    }
    Value::Object(keys)
}

/// Sets the experiment's settings (fixed-horizon Welch test, Bonferroni, the control) and
/// activates it; returns the version the deployment must serve.
pub async fn start(api: &Api, version: i64, metrics: &Value) -> i64 {
    let path = format!("/api/v1/flags/{FLAG}");
    let settings = json!({"experiment": {
        "primary_metric": metrics["primary"], "secondary_metrics": [metrics["secondary"]],
        "guardrails": [metrics["guardrail"]], "test": "fixed_horizon", "confidence": CONFIDENCE,
        "correction": "bonferroni", "control": "control"
    }});
    let (version, patched) = api
        .json(Method::PATCH, &path, &settings, Some(version), 200)
        .await;
    let version = version.unwrap_or_else(|| panic!("no ETag patching {FLAG}: {patched}"));
    activate(api, FLAG, version).await
}
