//! What operators and load balancers rely on: the probes, the headers every answer carries,
//! and failing fast (503 with `Retry-After`, SDKs still served) while the database is down.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::outage::{postgres_address, Outage};
use common::{fast_config, Server};
use reqwest::Method;
use serde_json::json;

on_both_backends!(probes_and_headers);

async fn probes_and_headers(srv: &Server) {
    let fx = srv.sdk_fixture("Probes").await;
    let health = srv.http.get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = srv.send(srv.http.get(srv.url("/readyz"))).await.ok(200);
    assert_eq!(ready.json["status"], "ready");
    assert_eq!(ready.json["store"], "reachable");
    assert_eq!(ready.json["snapshots"]["deployments"], 2);
    // Every family of answers says nosniff, errors included.
    let requests = [
        srv.http.get(srv.url("/healthz")),
        srv.req(Method::GET, "/api/v1/projects"),
        srv.http.get(srv.url("/api/v1/projects")),
        srv.sdk(Method::GET, "/sdk/v2/flags", &fx.server),
        srv.sdk(Method::GET, "/sdk/v2/flags", "nope"),
        srv.http.get(srv.url("/login")),
        srv.http.get(srv.url("/console.css")),
        srv.http.get(srv.url("/no/such/page")),
    ];
    for request in requests {
        let r = request.send().await.unwrap();
        assert_eq!(
            r.headers()
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{}",
            r.url()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_fails_fast_and_sdks_keep_serving() {
    let upstream = postgres_address();
    let outage = Outage::start(upstream.clone()).await;
    let Some(srv) = Server::postgres_via(fast_config(), outage.via(&upstream)).await else {
        return;
    };
    let fx = srv.sdk_fixture("Outage").await;
    srv.live_flag(
        &fx,
        "kept",
        json!({"all_other_users": {"percentage": 100, "weights": {"on": 1}}}),
    )
    .await;

    outage.set_down(true);
    // Management calls, sign-in and ingestion answer 503 with Retry-After, quickly, instead
    // of hanging on the pool (30 s before) and answering 500.
    let batch = json!({"api_key": fx.server, "events": [{"event_type": "$exposure",
        "user_id": "u1", "event_properties": {"flag_key": "kept", "variant": "on"}}]});
    // A wrong key is refused from the keys held in memory, without the store.
    let calls = [
        (
            "list projects",
            srv.req(Method::GET, "/api/v1/projects"),
            503,
        ),
        (
            "create a project",
            srv.req(Method::POST, "/api/v1/projects")
                .json(&json!({"name": "New"})),
            503,
        ),
        (
            "a wrong key",
            srv.http
                .get(srv.url("/api/v1/projects"))
                .bearer_auth("vxm_wrong"),
            401,
        ),
        (
            "ingestion",
            srv.http.post(srv.url("/batch")).json(&batch),
            503,
        ),
    ];
    for (what, request, status) in calls {
        let started = Instant::now();
        let r = request.send().await.unwrap();
        let took = started.elapsed();
        assert_eq!(r.status(), status, "{what}");
        if status == 503 {
            assert_eq!(r.headers()["retry-after"], "1", "{what}");
        }
        assert!(took < Duration::from_secs(5), "{what} took {took:?}");
    }
    // SDKs are served from the snapshots in memory, and the node stays ready.
    let served = srv.vardata(&fx.server, &json!({"user_id": "u1"})).await;
    assert_eq!(served["kept"]["key"], "on", "{served}");
    let ready = srv.send(srv.http.get(srv.url("/readyz"))).await.ok(200);
    assert_eq!(ready.json["store"], "unreachable");

    outage.set_down(false);
    srv.eventually("management calls to work again", || async {
        let r = srv.send(srv.req(Method::GET, "/api/v1/projects")).await;
        (r.status == 200).then_some(())
    })
    .await;
}

/// `/metrics` asks for a management key and reports requests, served results per flag and
/// variant, ingestion, the snapshots and the streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_was_served() {
    let srv = Server::sqlite().await;
    let fx = srv.sdk_fixture("Metered").await;
    srv.live_flag(
        &fx,
        "metered",
        json!({"all_other_users": {"percentage": 100, "weights": {"on": 1}}}),
    )
    .await;
    for n in 0..3 {
        let served = srv
            .vardata(&fx.server, &json!({ "user_id": format!("u{n}") }))
            .await;
        assert_eq!(served["metered"]["key"], "on");
    }
    let ofrep = srv
        .http
        .post(srv.url("/ofrep/v1/evaluate/flags/metered"))
        .bearer_auth(&fx.server)
        .json(&json!({"context": {"targetingKey": "u9"}}));
    srv.send(ofrep).await.ok(200);
    let batch = json!([{"event_type": "$exposure", "user_id": "u1",
        "event_properties": {"flag_key": "metered", "variant": "on"}}, {"event_type": "click"}]);
    srv.ingest(&fx.server, batch).await.ok(200);
    srv.ingest("nope", json!([])).await;

    let open = srv.http.get(srv.url("/metrics")).send().await.unwrap();
    assert_eq!(open.status(), 401, "a key is needed on the main listener");
    let text = srv
        .send(srv.req(Method::GET, "/metrics"))
        .await
        .ok(200)
        .text;
    let project = &fx.project;
    for line in [
        format!("vexil_evaluations_total{{project=\"{project}\",deployment=\"prod\",flag=\"metered\",variant=\"on\"}} 4"),
        "vexil_http_requests_total{family=\"sdk_vardata\",status=\"200\"} 3".to_owned(),
        "vexil_http_request_duration_seconds_count{family=\"sdk_vardata\"} 3".to_owned(),
        "vexil_ingest_events_total 2".to_owned(),
        "vexil_ingest_batches_total{kind=\"accepted\"} 1".to_owned(),
        "vexil_ingest_batches_total{kind=\"rejected\"} 1".to_owned(),
        "vexil_sse_streams_open 0".to_owned(),
        "vexil_tracker_dropped_total 0".to_owned(),
        "vexil_publish_rebuilds_failed_total 0".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
    }
    for prefix in [
        format!("vexil_snapshot_revision{{project=\"{project}\",deployment=\"prod\"}} "),
        format!("vexil_snapshot_age_seconds{{project=\"{project}\",deployment=\"web\"}} "),
        "vexil_publish_rebuilds_total ".to_owned(),
        "vexil_publish_duration_seconds_total ".to_owned(),
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&prefix)),
            "no {prefix:?} in\n{text}"
        );
    }
    srv.assert_no_server_errors();
}

/// On PostgreSQL a change made through one node reaches the others through the change feed
/// (`LISTEN`/`NOTIFY`), not their polling: here the nodes poll once a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_other_nodes_through_the_change_feed() {
    let mut config = fast_config();
    config.publisher.sync_interval = Duration::from_secs(60);
    let Some(a) = Server::start_with(common::Backend::Postgres, config.clone()).await else {
        return;
    };
    let b = a.another_node(config).await;
    let fx = a.sdk_fixture("Feed").await;
    b.eventually("the other node to serve the new project", || async {
        let r = b
            .send(b.sdk(Method::GET, "/sdk/v2/flags", &fx.server))
            .await;
        (r.status == 200).then_some(())
    })
    .await;
    a.live_flag(
        &fx,
        "followed",
        json!({"all_other_users": {"percentage": 100, "weights": {"on": 1}}}),
    )
    .await;
    b.eventually("the other node to serve the change", || async {
        let served = b.vardata(&fx.server, &json!({"user_id": "u1"})).await;
        (served["followed"]["key"] == "on").then_some(())
    })
    .await;
    a.assert_no_server_errors();
    b.assert_no_server_errors();
}
