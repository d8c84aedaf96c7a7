//! Experiment results end to end, on both backends: exposures and product events posted as
//! Amplitude's SDKs post them, then `GET /api/v1/flags/{key}/results` checked against the
//! statistics recomputed here from the raw events.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
mod common;

use common::Server;
use serde_json::{json, Value};
use vexil_stats::{effect, welch_test, Alternative, Difference, MeanSums, ProportionSums};

on_both_backends!(results_follow_the_events, holdouts_compare_held_out_users);

const CONTROL_BUYERS: u64 = 40;
const TREATMENT_BUYERS: u64 = 70;
const UNITS: u64 = 200;

async fn results_follow_the_events(srv: &Server) {
    let fx = srv.sdk_fixture("Shop").await;
    let p = fx.project.clone();
    let metrics = format!("/api/v1/projects/{p}/metrics");
    // The events metrics are defined on must have been seen.
    let seed = json!([
        {"event_type": "Purchase", "user_id": "seed", "event_properties": {"amount": 1}},
        {"event_type": "Error", "user_id": "seed"},
    ]);
    srv.ingest(&fx.server, seed).await.ok(200);
    srv.post(
        &metrics,
        &json!({"name": "Purchase", "type": "conversion", "event_type": "Purchase"}),
    )
    .await
    .ok(201);
    srv.post(
        &metrics,
        &json!({"name": "Revenue", "type": "sum", "event_type": "Purchase", "property": "amount"}),
    )
    .await
    .ok(201);
    srv.post(
        &metrics,
        &json!({"name": "Orders", "type": "count", "event_type": "Purchase"}),
    )
    .await
    .ok(201);
    srv.post(&metrics, &json!({"name": "Order value", "type": "ratio", "numerator": "revenue", "denominator": "orders"}))
        .await
        .ok(201);
    srv.post(
        &metrics,
        &json!({"name": "Errors", "type": "count", "event_type": "Error", "direction": "decrease"}),
    )
    .await
    .ok(201);
    srv.flag_in(
        &p,
        "checkout",
        json!({
        "type": "experiment", "deployments": ["prod"],
        "all_other_users": {"percentage": 100, "weights": {"control": 1, "treatment": 1}},
        "experiment": {"primary_metric": "purchase", "secondary_metrics": ["revenue", "order-value"],
                       "guardrails": ["errors"], "test": "fixed_horizon"}}),
    )
    .await;

    // Not started: an empty state, not an error.
    let empty = srv.get("/api/v1/flags/checkout/results").await.ok(200).json;
    assert!(
        empty["summary"].as_str().unwrap().contains("not started"),
        "{empty}"
    );
    assert_eq!(empty["metrics"], json!([]));

    let active = srv.action("checkout", "activate").await.ok(200).json;
    let start = active["experiment"]["start"].as_i64().unwrap();

    // 200 users per variant; buyers and their amounts; errors; a unit in both variants.
    let mut events = Vec::new();
    let mut revenue = [Vec::new(), Vec::new()];
    for (v, variant) in ["control", "treatment"].into_iter().enumerate() {
        let buyers = [CONTROL_BUYERS, TREATMENT_BUYERS][v];
        for i in 0..UNITS {
            let user = format!("{variant}-{i}");
            let t = start + 1 + i as i64;
            events.push(
                json!({"event_type": "$exposure", "user_id": user, "time": t,
                               "event_properties": {"flag_key": "checkout", "variant": variant}}),
            );
            let mut amount = 0.0;
            if i < buyers {
                amount = 10.0 + (i % 7) as f64;
                events.push(
                    json!({"event_type": "Purchase", "user_id": user, "time": t + 1,
                                   "event_properties": {"amount": amount}}),
                );
                // A purchase before the exposure does not count.
                events.push(
                    json!({"event_type": "Purchase", "user_id": user, "time": start - 5,
                                   "event_properties": {"amount": 1000}}),
                );
            }
            revenue[v].push(amount);
            if i % 10 == 0 {
                events.push(json!({"event_type": "Error", "user_id": user, "time": t + 2}));
            }
        }
    }
    for variant in ["control", "treatment"] {
        events.push(
            json!({"event_type": "$exposure", "user_id": "both", "time": start + 1,
                           "event_properties": {"flag_key": "checkout", "variant": variant}}),
        );
    }
    for chunk in events.chunks(500) {
        srv.ingest(&fx.server, Value::Array(chunk.to_vec()))
            .await
            .ok(200);
    }
    // The events are in the past of the results' "now".
    tokio::time::sleep(std::time::Duration::from_millis(450)).await;

    let r = srv.get("/api/v1/flags/checkout/results").await.ok(200).json;
    assert_eq!(
        r["variants"][0],
        json!({"variant": "control", "units": 200, "expected_share": 0.5})
    );
    assert_eq!(r["variants"][1]["units"], 200);
    assert_eq!(
        r["multiple_variants"], 1,
        "the unit in both variants is left out"
    );
    assert_eq!(r["srm"]["mismatch"], false);
    let last_day = r["exposures"].as_array().unwrap().last().unwrap();
    assert_eq!(last_day["units"], json!([200, 200]));

    let metric = |key: &str| {
        r["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == key)
            .unwrap()
            .clone()
    };
    // Purchase: the proportions, and Welch's test on them recomputed here.
    let purchase = metric("purchase");
    assert_eq!(purchase["role"], "primary");
    assert_eq!(purchase["variants"][0]["conversions"], CONTROL_BUYERS);
    assert_eq!(purchase["variants"][1]["conversions"], TREATMENT_BUYERS);
    let control = ProportionSums {
        n: UNITS,
        conversions: CONTROL_BUYERS,
    }
    .summary()
    .unwrap();
    let treatment = ProportionSums {
        n: UNITS,
        conversions: TREATMENT_BUYERS,
    }
    .summary()
    .unwrap();
    let e = effect(&control, &treatment, Difference::Relative).unwrap();
    let expected = welch_test(&e, Alternative::TwoSided, 0.05).unwrap();
    let c = &purchase["comparisons"][0];
    assert!(
        (c["relative"]["estimate"].as_f64().unwrap() - 0.75).abs() < 1e-12,
        "{c}"
    );
    assert!((c["relative"]["lower"].as_f64().unwrap() - expected.interval.lower).abs() < 1e-12);
    assert!((c["p_value"].as_f64().unwrap() - expected.p_value).abs() < 1e-12);
    assert_eq!(c["verdict"], "better");

    // Revenue: means of the per-unit sums (zeros included).
    let sums = |values: &[f64]| MeanSums {
        n: values.len() as u64,
        sum: values.iter().sum(),
        sum_squares: values.iter().map(|x| x * x).sum(),
    };
    let revenue_result = metric("revenue");
    for v in 0..2 {
        let mean = sums(&revenue[v]).summary().unwrap().mean;
        let got = revenue_result["variants"][v]["value"].as_f64().unwrap();
        assert!((got - mean).abs() < 1e-9, "variant {v}: {got} vs {mean}");
    }
    // Order value, a ratio: revenue over orders per variant, over units.
    let order_value = metric("order-value");
    for v in 0..2 {
        let buyers = [CONTROL_BUYERS, TREATMENT_BUYERS][v] as f64;
        let expected = revenue[v].iter().sum::<f64>() / buyers;
        let got = order_value["variants"][v]["value"].as_f64().unwrap();
        assert!(
            (got - expected).abs() < 1e-9,
            "variant {v}: {got} vs {expected}"
        );
    }
    assert!(
        order_value["comparisons"][0]["p_value"].is_f64(),
        "{order_value}"
    );
    // Corrected over the three (Bonferroni): three times p, capped at 1.
    let p = c["p_value"].as_f64().unwrap();
    let corrected = c["p_value_corrected"].as_f64().unwrap();
    assert!(
        (corrected - (3.0 * p).min(1.0)).abs() < 1e-12,
        "{p} -> {corrected}"
    );

    // The guardrail: same error rate, no harm.
    let errors = metric("errors");
    assert_eq!(errors["role"], "guardrail");
    assert_eq!(errors["comparisons"][0]["verdict"], "inconclusive");
    let summary = r["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("treatment increases Purchase by 75.0%")
            && summary.contains("Roll out treatment"),
        "{summary}"
    );

    // A release flag has no results.
    srv.flag_in(&fx.project, "banner", json!({})).await;
    srv.get("/api/v1/flags/banner/results")
        .await
        .err(422, "not_an_experiment", Some("key"));
}

/// A holdout compares the users it held out with everyone else on the program's metrics, from
/// the assignments SDKs record for it.
async fn holdouts_compare_held_out_users(srv: &Server) {
    let fx = srv.sdk_fixture("Program").await;
    let p = fx.project.clone();
    srv.ingest(
        &fx.server,
        json!([{"event_type": "Purchase", "user_id": "seed"}]),
    )
    .await
    .ok(200);
    srv.post(
        &format!("/api/v1/projects/{p}/metrics"),
        &json!({"name": "Purchase", "type": "conversion", "event_type": "Purchase"}),
    )
    .await
    .ok(201);
    let holdouts = format!("/api/v1/projects/{p}/holdouts");
    srv.post(
        &holdouts,
        &json!({"name": "Q4", "percentage": 10, "metrics": ["ghost"]}),
    )
    .await
    .err(422, "unknown_metric", Some("metrics[0]"));
    srv.post(
        &holdouts,
        &json!({"name": "Q4", "percentage": 20, "metrics": ["purchase"]}),
    )
    .await
    .ok(201);
    let empty = srv
        .get(&format!("{holdouts}/holdout-q4/results"))
        .await
        .ok(200)
        .json;
    assert!(
        empty["summary"]
            .as_str()
            .unwrap()
            .starts_with("Not enough data"),
        "{empty}"
    );
    // 300 held-out users buy 10% of the time, 1,200 others 30%.
    let now = srv
        .get(&format!("{holdouts}/holdout-q4"))
        .await
        .ok(200)
        .json["created_at"]
        .as_i64()
        .unwrap();
    let mut events = Vec::new();
    for i in 0..1500u32 {
        let (variant, buys) = if i < 300 {
            ("holdout", i % 10 == 0)
        } else {
            ("on", i % 10 < 3)
        };
        let user = format!("p-{i}");
        events.push(json!({"event_type": "[Experiment] Assignment", "user_id": user, "time": now + 1,
                           "event_properties": {"holdout-q4.variant": variant, "holdout-q4.details": "v1 rule:All Other Users"}}));
        if buys {
            events.push(json!({"event_type": "Purchase", "user_id": user, "time": now + 2}));
        }
    }
    for chunk in events.chunks(500) {
        srv.ingest(&fx.server, Value::Array(chunk.to_vec()))
            .await
            .ok(200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let r = srv
        .get(&format!("{holdouts}/holdout-q4/results"))
        .await
        .ok(200)
        .json;
    assert_eq!(
        r["variants"][0],
        json!({"variant": "holdout", "units": 300, "expected_share": 0.2})
    );
    assert_eq!(r["variants"][1]["units"], 1200);
    assert_eq!(r["srm"]["mismatch"], false);
    let purchase = &r["metrics"][0];
    assert_eq!(purchase["variants"][0]["conversions"], 30);
    assert_eq!(purchase["variants"][1]["conversions"], 360);
    assert!(
        (purchase["comparisons"][0]["relative"]["estimate"]
            .as_f64()
            .unwrap()
            - 2.0)
            .abs()
            < 1e-12
    );
    let summary = r["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("The program's experiments together raise Purchase by 200.0%"),
        "{summary}"
    );
    srv.get(&format!(
        "/api/v1/projects/{p}/holdouts/holdout-none/results"
    ))
    .await
    .err(404, "not_found", None);
}
