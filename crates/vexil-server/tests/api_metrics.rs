//! Metrics over HTTP, on both backends: each kind created, every validation refusal naming its
//! field, the predefined metrics, ratios and what they forbid, and history.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
mod common;

use common::Server;
use serde_json::{json, Value};

on_both_backends!(metrics_are_defined_validated_and_versioned);

const METRICS: &str = "/api/v1/projects/shop/metrics";

/// Sends the product events the metrics below are defined on, with the project's API key.
async fn send_events(srv: &Server) {
    let project = srv.get("/api/v1/projects/shop").await.ok(200).json;
    let key = project["api_key"].as_str().unwrap().to_owned();
    let events = json!([
        {"event_type": "Purchase", "user_id": "u1", "event_properties": {"amount": 30.5, "plan": "pro"}},
        {"event_type": "Purchase", "user_id": "u2", "event_properties": {"amount": "12", "plan": "team"}},
        {"event_type": "Page View", "user_id": "u1"},
        {"event_type": "Error", "device_id": "d1"},
    ]);
    // The project's key works once its first snapshot is published.
    srv.eventually("the project's key to take events", || async {
        (srv.ingest(&key, events.clone()).await.status == 200).then_some(())
    })
    .await;
}

async fn metrics_are_defined_validated_and_versioned(srv: &Server) {
    srv.create_project("Shop").await;
    send_events(srv).await;

    // Every kind.
    let purchase = srv
        .post(METRICS, &json!({"name": "Purchase", "type": "conversion", "event_type": "Purchase",
                                "filters": [{"scope": "event", "property": "plan", "op": "is", "values": ["pro", "team"]}],
                                "conversion_window_hours": 72}))
        .await
        .ok(201)
        .json;
    assert_eq!(purchase["key"], "purchase");
    assert_eq!(purchase["direction"], "increase");
    srv.post(
        METRICS,
        &json!({"name": "Page views", "type": "count", "event_type": "Page View"}),
    )
    .await
    .ok(201);
    srv.post(METRICS, &json!({"name": "Revenue", "type": "sum", "event_type": "Purchase", "property": "amount",
                               "winsorize_percentile": 99.0,
                               "filters": [{"scope": "user", "property": "age", "op": "greater_or_equal", "values": ["18"]}]}))
        .await
        .ok(201);
    let ratio = srv
        .post(
            METRICS,
            &json!({"name": "Revenue per view", "type": "ratio", "numerator": "revenue",
                                "denominator": "page-views", "direction": "increase"}),
        )
        .await
        .ok(201)
        .json;
    assert_eq!(ratio["type"], "ratio");
    srv.post(
        METRICS,
        &json!({"name": "Errors", "type": "count", "event_type": "Error", "direction": "decrease"}),
    )
    .await
    .ok(201);

    // Validation names the field.
    for (body, code, field) in [
        (
            json!({"name": "x", "type": "count"}),
            "required",
            "event_type",
        ),
        (
            json!({"name": "x", "type": "sum", "event_type": "Purchase"}),
            "required",
            "property",
        ),
        (
            json!({"name": "x", "type": "conversion", "event_type": "E", "property": "p"}),
            "not_for_kind",
            "property",
        ),
        (
            json!({"name": "x", "type": "count", "event_type": "E",
                "filters": [{"scope": "event", "property": "n", "op": "greater", "values": ["ten"]}]}),
            "not_a_number",
            "filters[0].values[0]",
        ),
        (
            json!({"name": "x", "type": "count", "event_type": "E",
                "filters": [{"scope": "event", "property": "n", "op": "less", "values": ["1", "2"]}]}),
            "one_value",
            "filters[0].values",
        ),
        (
            json!({"name": "x", "type": "count", "event_type": "E", "conversion_window_hours": 0}),
            "out_of_range",
            "conversion_window_hours",
        ),
        (
            json!({"name": "x", "type": "count", "event_type": "E", "winsorize_percentile": 100.0}),
            "out_of_range",
            "winsorize_percentile",
        ),
        (
            json!({"name": "x", "type": "conversion", "event_type": "E", "winsorize_percentile": 99.0}),
            "not_for_kind",
            "winsorize_percentile",
        ),
        (
            json!({"name": "x", "type": "ratio", "numerator": "ghost", "denominator": "revenue"}),
            "unknown_metric",
            "numerator",
        ),
        (
            json!({"name": "x", "type": "ratio", "numerator": "revenue", "denominator": "revenue-per-view"}),
            "ratio_of_ratio",
            "denominator",
        ),
        (
            json!({"name": "x", "type": "ratio", "numerator": "revenue"}),
            "required",
            "denominator",
        ),
        (
            json!({"name": "Exposure", "type": "count", "event_type": "E"}),
            "reserved_key",
            "key",
        ),
        // What the received events say.
        (
            json!({"name": "x", "type": "count", "event_type": "purchase"}),
            "unknown_event_type",
            "event_type",
        ),
        (
            json!({"name": "x", "type": "sum", "event_type": "Purchase", "property": "plan"}),
            "not_numeric",
            "property",
        ),
        (
            json!({"name": "x", "type": "sum", "event_type": "Purchase", "property": "tax"}),
            "unknown_property",
            "property",
        ),
    ] {
        srv.post(METRICS, &body).await.err(422, code, Some(field));
    }
    srv.post(
        METRICS,
        &json!({"name": "Purchase", "type": "count", "event_type": "Purchase"}),
    )
    .await
    .err(409, "metric_key_taken", Some("key"));
    srv.post(
        METRICS,
        &json!({"name": "x", "type": "median", "event_type": "E"}),
    )
    .await
    .err(400, "invalid_field", Some("type"));

    // The predefined metrics come first and cannot change; ratios may use them.
    let listed = srv.get(METRICS).await.ok(200).json;
    let keys: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "exposure",
            "any-active-event",
            "errors",
            "page-views",
            "purchase",
            "revenue",
            "revenue-per-view"
        ]
    );
    assert_eq!(listed[0]["builtin"], true);
    assert_eq!(listed[0]["event_type"], "$exposure");
    srv.get(&format!("{METRICS}/exposure")).await.ok(200);
    srv.patch(&format!("{METRICS}/exposure"), 1, &json!({"name": "x"}))
        .await
        .err(409, "builtin_metric", None);
    srv.post(
        METRICS,
        &json!({"name": "Purchases per exposure", "type": "ratio",
                               "numerator": "purchase", "denominator": "exposure"}),
    )
    .await
    .ok(201);

    // A metric a ratio uses stays; the refusal names the ratio.
    let revenue = format!("{METRICS}/revenue");
    let v = srv.get(&revenue).await.ok(200).etag();
    let r = srv.post_if(&format!("{revenue}/archive"), v).await;
    r.err(409, "metric_in_use", None);
    assert_eq!(r.blocking(), ["revenue-per-view"]);

    // Changes: If-Match, immutable type, history with compare and restore.
    let purchase_path = format!("{METRICS}/purchase");
    srv.patch(&purchase_path, None, &json!({"name": "x"}))
        .await
        .err(428, "version_required", None);
    srv.patch(&purchase_path, 1, &json!({"type": "count"}))
        .await
        .err(400, "invalid_field", Some("type"));
    srv.patch(
        &purchase_path,
        1,
        &json!({"conversion_window_hours": null, "description": "any plan"}),
    )
    .await
    .ok(200);
    let changed = srv.get(&purchase_path).await.ok(200).json;
    assert_eq!(changed.get("conversion_window_hours"), None);
    let versions = srv
        .get(&format!("{purchase_path}/versions"))
        .await
        .ok(200)
        .json;
    let actions: Vec<&Value> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["action"])
        .collect();
    assert_eq!(actions, [&json!("update"), &json!("create")]);
    let compare = srv
        .get(&format!("{purchase_path}/versions/compare?from=1&to=2"))
        .await
        .ok(200)
        .json;
    assert!(!compare["changes"].as_array().unwrap().is_empty());
    let restored = srv
        .post_if(&format!("{purchase_path}/versions/1/restore"), 2)
        .await
        .ok(200)
        .json;
    assert_eq!(restored["conversion_window_hours"], 72);
    assert_eq!(restored["version"], 3);

    // Archive and unarchive; an archived metric is listed apart and cannot join a ratio.
    let errors = format!("{METRICS}/errors");
    srv.post_if(&format!("{errors}/archive"), 1).await.ok(200);
    let archived = srv
        .get(&format!("{METRICS}?archived=true"))
        .await
        .ok(200)
        .json;
    assert_eq!(archived[0]["key"], "errors");
    srv.post(
        METRICS,
        &json!({"name": "y", "type": "ratio", "numerator": "errors", "denominator": "purchase"}),
    )
    .await
    .err(422, "metric_archived", Some("numerator"));
    srv.post_if(&format!("{errors}/unarchive"), 2).await.ok(200);
    srv.get(&format!("{METRICS}/ghost"))
        .await
        .err(404, "not_found", None);
}

on_both_backends!(experiments_name_their_metrics_and_window);

async fn experiments_name_their_metrics_and_window(srv: &Server) {
    srv.create_project("Shop").await;
    send_events(srv).await;
    srv.post(
        METRICS,
        &json!({"name": "Purchase", "type": "conversion", "event_type": "Purchase"}),
    )
    .await
    .ok(201);
    srv.post(
        METRICS,
        &json!({"name": "Errors", "type": "count", "event_type": "Error", "direction": "decrease"}),
    )
    .await
    .ok(201);
    let exp = srv
        .flag_in("shop", "checkout", json!({"type": "experiment"}))
        .await;
    assert_eq!(
        exp["experiment"],
        json!({"test": "sequential", "bayesian": false, "confidence": 0.95,
               "correction": "bonferroni", "cuped": false}),
        "an experiment starts with the defaults"
    );
    let settings = json!({"experiment": {"primary_metric": "purchase", "secondary_metrics": ["any-active-event"],
                                          "guardrails": ["errors"], "control": "control", "cuped": true,
                                          "test": "fixed_horizon", "correction": "holm", "confidence": 0.9}});
    srv.update("checkout", &settings).await.ok(200);
    for (body, code, field) in [
        (
            json!({"experiment": {"primary_metric": "ghost"}}),
            "unknown_metric",
            "experiment.primary_metric",
        ),
        (
            json!({"experiment": {"control": "nope"}}),
            "unknown_variant",
            "experiment.control",
        ),
        (
            json!({"experiment": {"confidence": 0.5}}),
            "out_of_range",
            "experiment.confidence",
        ),
        (
            json!({"experiment": {"primary_metric": "purchase", "guardrails": ["purchase"]}}),
            "duplicate",
            "experiment.guardrails[0]",
        ),
        (
            json!({"experiment": {"start": 2000, "end": 1000}}),
            "before_start",
            "experiment.end",
        ),
    ] {
        srv.update("checkout", &body)
            .await
            .err(422, code, Some(field));
    }
    srv.flag_in("shop", "banner", json!({})).await;
    srv.update("banner", &json!({"experiment": {}})).await.err(
        422,
        "not_an_experiment",
        Some("experiment"),
    );

    // The analysis window follows activation.
    let active = srv.action("checkout", "activate").await.ok(200).json;
    let start = active["experiment"]["start"].as_i64().unwrap();
    assert!(active["experiment"].get("end").is_none());
    let stopped = srv.action("checkout", "deactivate").await.ok(200).json;
    assert_eq!(stopped["experiment"]["start"], start);
    assert!(stopped["experiment"]["end"].as_i64().unwrap() >= start);
    let again = srv.action("checkout", "activate").await.ok(200).json;
    assert_eq!(
        again["experiment"]["start"], start,
        "the window keeps its start"
    );
    assert!(
        again["experiment"].get("end").is_none(),
        "and is open again"
    );

    // A metric an experiment uses stays.
    let errors = format!("{METRICS}/errors");
    let r = srv.post_if(&format!("{errors}/archive"), 1).await;
    r.err(409, "metric_in_use", None);
    assert_eq!(r.blocking(), ["checkout"]);
    assert!(r.message().contains("checkout"), "{}", r.text);
    let _: Value = again;
}
