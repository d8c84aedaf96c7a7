//! The experiment pages over HTTP: a project's metrics (list, create, a refusal that keeps what
//! was typed), an experiment's settings form (a refusal, then a save checked against the JSON
//! API), and its results page, empty before activation and, once exposures and purchases are
//! posted as SDKs post them, with the table, the verdict the API gives and the SVG charts.

use serde_json::{json, Value};

use super::{Browser, StatusCode};
use crate::common::Server;

pub(crate) async fn console_results(srv: &Server) {
    let fx = srv.sdk_fixture("Shop").await;
    let p = fx.project.clone();
    // Metrics can only count event types that were received.
    let seed =
        json!([{"event_type": "Purchase", "user_id": "seed", "event_properties": {"amount": 1}}]);
    srv.ingest(&fx.server, seed).await.ok(200);
    let b = Browser::sign_in(srv).await;
    b.get(&format!("/projects/{p}")).await.has(&format!(
        "id=\"metrics-link\" href=\"/projects/{p}/metrics\""
    ));
    let metrics = format!("/projects/{p}/metrics");
    b.get(&metrics)
        .await
        .has("table id=\"metrics\"")
        .has("tr data-metric=\"exposure\"")
        .has("form id=\"new-metric\"");

    // A sum of an event type never received is refused with the reason, as typed.
    let r = b
        .post(
            &metrics,
            &[
                ("name", "Refunds total"),
                ("type", "sum"),
                ("event_type", "Refund"),
                ("property", "amount"),
                ("direction", "decrease"),
                ("conversion_window_hours", "48"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.html);
    r.has("class=\"error\"")
        .has("value=\"Refunds total\"")
        .has("value=\"Refund\"")
        .has("value=\"48\"")
        .has("option value=\"sum\" selected")
        .has("option value=\"decrease\" selected");
    b.post(
        &metrics,
        &[
            ("name", "Purchase"),
            ("type", "conversion"),
            ("event_type", "Purchase"),
            ("direction", "increase"),
            ("conversion_window_hours", "72"),
        ],
    )
    .await
    .redirects_to(&format!("{metrics}?notice="));
    let m = srv
        .get(&format!("/api/v1/projects/{p}/metrics/purchase"))
        .await
        .ok(200)
        .json;
    assert_eq!(m["type"], "conversion");
    assert_eq!(m["conversion_window_hours"], 72);
    b.get(&metrics).await.has("tr data-metric=\"purchase\"");
    // A filtered, winsorized sum and a ratio, from the form.
    b.post(
        &metrics,
        &[
            ("name", "Pro revenue"),
            ("type", "sum"),
            ("event_type", "Purchase"),
            ("property", "amount"),
            ("filter_scope", "user"),
            ("filter_property", "plan"),
            ("filter_op", "is"),
            ("filter_value", "pro, team"),
            ("filter_scope", "event"),
            ("filter_property", "amount"),
            ("filter_op", "greater"),
            ("filter_value", "0"),
            ("filter_scope", "event"),
            ("filter_property", ""),
            ("filter_op", "is"),
            ("filter_value", ""),
            ("direction", "increase"),
            ("winsorize_percentile", "99"),
        ],
    )
    .await
    .redirects_to(&format!("{metrics}?notice="));
    b.post(
        &metrics,
        &[
            ("name", "Revenue per buyer"),
            ("type", "ratio"),
            ("event_type", "ignored for ratios"),
            ("numerator", "pro-revenue"),
            ("denominator", "purchase"),
            ("direction", "increase"),
        ],
    )
    .await
    .redirects_to(&format!("{metrics}?notice="));
    let pro = srv
        .get(&format!("/api/v1/projects/{p}/metrics/pro-revenue"))
        .await
        .ok(200)
        .json;
    assert_eq!(
        pro["filters"],
        json!([{"scope": "user", "property": "plan", "op": "is", "values": ["pro", "team"]},
               {"scope": "event", "property": "amount", "op": "greater", "values": ["0"]}]),
        "every filled filter row, the empty one left out"
    );
    assert_eq!(pro["winsorize_percentile"], 99.0);
    let ratio = srv
        .get(&format!("/api/v1/projects/{p}/metrics/revenue-per-buyer"))
        .await
        .ok(200)
        .json;
    assert_eq!(
        (&ratio["numerator"], &ratio["denominator"]),
        (&json!("pro-revenue"), &json!("purchase"))
    );
    assert!(ratio.get("event_type").is_none());
    b.get(&metrics)
        .await
        .has("tr data-metric=\"revenue-per-buyer\"")
        .has("<code>pro-revenue</code> / <code>purchase</code>");

    // The experiment's settings form.
    srv.flag_in(
        &p,
        "checkout",
        json!({"type": "experiment", "deployments": ["prod"],
               "all_other_users": {"percentage": 100, "weights": {"control": 1, "treatment": 1}}}),
    )
    .await;
    let flag_page = format!("/flags/checkout?project={p}");
    b.get(&flag_page)
        .await
        .has("section id=\"experiment\"")
        .has(&format!(
            "id=\"results-link\" href=\"/flags/checkout/results?project={p}\""
        ))
        .has("option value=\"purchase\"");
    let v = srv.version("checkout").await.to_string();
    let settings = |primary: &'static str, secondary: &'static str, confidence: &'static str| {
        [
            ("project", p.as_str()),
            ("_form", "experiment-settings"),
            ("version", v.as_str()),
            ("primary_metric", primary),
            ("secondary_metrics", secondary),
            ("test", "fixed_horizon"),
            ("confidence", confidence),
            ("correction", "holm"),
            ("cuped", "on"),
            ("bayesian", "on"),
            ("control", "control"),
            ("start", ""),
            ("end", ""),
        ]
    };
    let r = b
        .post(
            "/flags/checkout/experiment",
            &settings("purchase", "purchase", "90"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.html);
    r.has("already one of this experiment")
        .has("name=\"confidence\" value=\"90\"")
        .has("option value=\"fixed_horizon\" selected")
        .has("option value=\"holm\" selected");
    b.post(
        "/flags/checkout/experiment",
        &settings("purchase", "exposure", "95"),
    )
    .await
    .redirects_to("/flags/checkout?project=");
    let e = srv.flag("checkout").await.json["experiment"].clone();
    assert_eq!(e["primary_metric"], "purchase");
    assert_eq!(e["secondary_metrics"], json!(["exposure"]));
    assert_eq!(e["test"], "fixed_horizon");
    assert_eq!(e["correction"], "holm");
    assert_eq!(e["cuped"], true);
    assert_eq!(e["bayesian"], true);
    assert_eq!(e["control"], "control");
    assert!((e["confidence"].as_f64().unwrap() - 0.95).abs() < 1e-12);

    // Not started: an empty state, not an error.
    let results = format!("/flags/checkout/results?project={p}");
    let r = b.get(&results).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.html);
    r.has("id=\"results-empty\"")
        .has("has not started")
        .lacks("<svg");

    // Running, with 200 users per variant: 40 buyers in control, 70 in treatment.
    let start = srv.action("checkout", "activate").await.ok(200).json["experiment"]["start"]
        .as_i64()
        .unwrap();
    b.get(&results)
        .await
        .has("id=\"results-empty\"")
        .has("No exposures yet");
    let mut events = Vec::new();
    for (variant, buyers) in [("control", 40), ("treatment", 70)] {
        for i in 0..200 {
            let user = format!("{variant}-{i}");
            events.push(
                json!({"event_type": "$exposure", "user_id": user, "time": start + 1,
                               "event_properties": {"flag_key": "checkout", "variant": variant}}),
            );
            if i < buyers {
                events.push(json!({"event_type": "Purchase", "user_id": user, "time": start + 2}));
            }
        }
    }
    for chunk in events.chunks(500) {
        srv.ingest(&fx.server, Value::Array(chunk.to_vec()))
            .await
            .ok(200);
    }
    // The results' window ends at "now": wait until it holds every purchase.
    let api = srv
        .eventually("the results to count every purchase", || async {
            let r = srv.get("/api/v1/flags/checkout/results").await.ok(200).json;
            let counted = r["metrics"][0]["variants"][1]["conversions"] == 70;
            counted.then_some(r)
        })
        .await;
    let summary = api["summary"].as_str().unwrap();
    assert!(summary.contains("increases Purchase"), "{summary}");

    let r = b.get(&results).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.html);
    r.lacks("id=\"results-empty\"")
        .lacks("id=\"srm-warning\"")
        .lacks("id=\"multiple-variants-warning\"")
        .has(&format!(
            "id=\"verdict\">{}</p>",
            summary.replace('&', "&amp;").replace('<', "&lt;")
        ))
        .has("data-setting=\"test\">Fixed horizon")
        .has("data-setting=\"correction\">Holm")
        .has("data-setting=\"cuped\">On")
        .has("table id=\"exposed-units\"")
        .has("section class=\"metric\" data-metric=\"purchase\" data-role=\"primary\"")
        .has("section class=\"metric\" data-metric=\"exposure\" data-role=\"secondary\"")
        .has("20.00%")
        .has("35.00%")
        .has("+75.00%")
        .has("data-verdict=\"better\"")
        .has("Better (significant)")
        .has("id=\"exposures-chart\"")
        .has("class=\"effect-chart chart\" data-metric=\"purchase\"")
        .has("<polyline")
        .has("p class=\"bayesian\" data-treatment=\"treatment\"")
        .has("chance to be better");
    assert!(
        r.html.matches("<svg").count() >= 2,
        "an exposures chart and an effect chart"
    );
    let units = &r.html[r.html.find("table id=\"exposed-units\"").unwrap()..];
    assert!(units.contains("<td class=\"units\">200</td>"), "{units}");

    // A release flag has no results: the page says why.
    srv.flag_in(&p, "banner", json!({})).await;
    let r = b.get(&format!("/flags/banner/results?project={p}")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    r.has("is not an experiment");
    b.get(&format!("/flags/banner?project={p}"))
        .await
        .lacks("section id=\"experiment\"");
}

/// A holdout's results page: held-out users against everyone else on the program's metrics.
pub(crate) async fn console_holdout_results(srv: &Server) {
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
    srv.post(
        &format!("/api/v1/projects/{p}/holdouts"),
        &json!({"name": "Q4", "percentage": 20, "metrics": ["purchase"]}),
    )
    .await
    .ok(201);
    let b = Browser::sign_in(srv).await;
    b.get(&format!("/projects/{p}/holdouts/holdout-q4"))
        .await
        .has("id=\"holdout-results-link\"");
    let page = format!("/projects/{p}/holdouts/holdout-q4/results");
    b.get(&page)
        .await
        .has("Holdout results: Q4")
        .has("id=\"verdict\"");
    let mut events: Vec<Value> = Vec::new();
    for i in 0..1500u32 {
        let (variant, buys) = if i < 300 {
            ("holdout", i % 10 == 0)
        } else {
            ("on", i % 10 < 3)
        };
        let user = format!("p-{i}");
        events.push(
            json!({"event_type": "[Experiment] Assignment", "user_id": user,
                           "event_properties": {"holdout-q4.variant": variant}}),
        );
        if buys {
            events.push(json!({"event_type": "Purchase", "user_id": user}));
        }
    }
    for chunk in events.chunks(500) {
        srv.ingest(&fx.server, Value::Array(chunk.to_vec()))
            .await
            .ok(200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    b.get(&page)
        .await
        .has("The program's experiments together raise Purchase by 200.0%")
        .has("data-variant=\"holdout\"")
        .has("<svg");
    b.get(&format!("/projects/{p}/holdouts/holdout-nope/results"))
        .await;
}
