//! Event ingestion end to end (`sdk-protocol.md` §A10): the answers analytics clients read
//! (`code` in every body), gzip and size limits, every event shape Vexil stores, insert-id
//! de-duplication, the records remote evaluation makes itself, and the management API's
//! exposure counts.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
mod common;

use common::Server;
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(
    ingestion_answers_and_limits,
    stored_events_and_counts,
    product_events_are_kept_for_metrics
);

async fn ingestion_answers_and_limits(srv: &Server) {
    let fx = srv.sdk_fixture("Ingest").await;
    let body = json!({"api_key": fx.server, "events": [{"event_type": "page view"}, {"event_type": "click"}]});
    let text = body.to_string();
    for path in ["/2/httpapi", "/batch"] {
        let r = srv
            .send(
                srv.http
                    .post(srv.url(path))
                    .header("Content-Type", "application/json")
                    .body(text.clone()),
            )
            .await
            .ok(200);
        assert_eq!(r.json["code"], 200);
        assert_eq!(r.json["events_ingested"], 2);
        assert_eq!(r.json["payload_size_bytes"], text.len());
        assert!(r.json["server_upload_time"].as_u64().unwrap() > 1_700_000_000_000);
    }
    // The project API key and the client key are accepted too.
    for key in [&fx.api_key, &fx.client] {
        srv.ingest(key, json!([])).await.ok(200);
    }
    let cases = [
        (
            json!({"api_key": "nope", "events": []}).to_string(),
            400,
            Some("Invalid API key: nope"),
        ),
        (
            json!({"api_key": fx.server}).to_string(),
            400,
            Some("Request missing required field"),
        ),
        (
            json!({"events": []}).to_string(),
            400,
            Some("Request missing required field"),
        ),
        ("{not json".to_owned(), 400, None),
        ("[]".to_owned(), 400, None),
    ];
    for (body, status, error) in cases {
        let r = srv
            .send(srv.http.post(srv.url("/2/httpapi")).body(body.clone()))
            .await;
        assert_eq!(
            (r.status, r.json["code"].as_u64()),
            (status, Some(u64::from(status))),
            "{body}: {}",
            r.text
        );
        if let Some(e) = error {
            assert_eq!(r.json["error"], e, "{body}");
        }
    }
    let r = srv
        .send(
            srv.http
                .post(srv.url("/2/httpapi"))
                .body(json!({"api_key": fx.server}).to_string()),
        )
        .await;
    assert_eq!(r.json["missing_field"], "events");
    // Past 20 MiB: 413, so clients split the batch.
    let big = format!(
        r#"{{"api_key":"{}","events":[],"pad":"{}"}}"#,
        fx.server,
        "x".repeat(21 << 20)
    );
    let r = srv
        .send(srv.http.post(srv.url("/2/httpapi")).body(big))
        .await;
    assert_eq!(
        (r.status, r.json["code"].as_u64(), r.json["error"].as_str()),
        (413, Some(413), Some("Payload too large"))
    );
    // gzip bodies.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
    let r = srv
        .send(
            srv.http
                .post(srv.url("/2/httpapi"))
                .header("Content-Encoding", "gzip")
                .body(gz.finish().unwrap()),
        )
        .await
        .ok(200);
    assert_eq!(r.json["payload_size_bytes"], text.len());
}

fn totals(stats: &Value) -> Value {
    stats["totals"].clone()
}

async fn stats(srv: &Server, flag: &str, query: &str) -> Value {
    // Two days, so that an event a minute before midnight UTC still counts.
    srv.get(&format!("/api/v1/flags/{flag}/exposures?days=2{query}"))
        .await
        .ok(200)
        .json
}

async fn stored_events_and_counts(srv: &Server) {
    let fx = srv.sdk_fixture("Stored").await;
    srv.live_flag(
        &fx,
        "exp",
        json!({"type": "experiment", "variants": [{"key": "control"}, {"key": "treatment"}],
        "all_other_users": {"percentage": 100, "weights": {"control": 1, "treatment": 1}}}),
    )
    .await;
    srv.live_flag(
        &fx,
        "never",
        json!({"all_other_users": {"percentage": 0, "weights": {"on": 1}}}),
    )
    .await;
    // A minute ago: `time` is the event's time, inside the counted day.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    let events = json!([
        // Browser exposures, one of them sent twice.
        {"event_type": "$exposure", "user_id": "u1", "insert_id": "a1", "time": now,
         "event_properties": {"flag_key": "exp", "variant": "control", "experiment_key": "exp", "metadata": {"flagVersion": 2}}},
        {"event_type": "$exposure", "user_id": "u1", "insert_id": "a1",
         "event_properties": {"flag_key": "exp", "variant": "control"}},
        {"event_type": "$exposure", "device_id": "d2", "insert_id": "a2",
         "event_properties": {"flag_key": "exp", "variant": "treatment"}},
        // A server SDK's exposure after local evaluation.
        {"event_type": "[Experiment] Exposure", "user_id": "u3", "insert_id": "a3",
         "event_properties": {"[Experiment] Flag Key": "exp", "[Experiment] Variant": "treatment",
                              "metadata": {"segmentName": "All Other Users", "flagType": "experiment"}}},
        // Legacy client integration.
        {"event_type": "[Experiment] Exposure", "user_id": "u4", "event_properties": {"key": "exp", "variant": "treatment"}},
        // Deprecated assignment tracking: two flags, one of them off.
        {"event_type": "[Experiment] Assignment", "user_id": "u5", "insert_id": "a5",
         "event_properties": {"exp.variant": "control", "exp.details": "v3 rule:All Other Users",
                              "never.variant": "off", "never.details": "v1 rule:All Other Users"}},
        // Unknown flags are stored anyway; other events are only counted.
        {"event_type": "$exposure", "user_id": "u6", "event_properties": {"flag_key": "unknown-flag", "variant": "x"}},
        {"event_type": "session_start", "user_id": "u6"}
    ]);
    let r = srv.ingest(&fx.client, events.clone()).await.ok(200);
    assert_eq!(r.json["events_ingested"], 8);
    // The same batch again (a client retry) stores nothing new, except the events without id.
    srv.ingest(&fx.client, events).await.ok(200);
    let ex = stats(srv, "exp", "").await;
    assert_eq!(
        totals(&ex),
        json!({"control": {"count": 1, "users": 1}, "treatment": {"count": 4, "users": 3}}),
        "{ex}"
    );
    let assigned = stats(srv, "exp", "&kind=assignment").await;
    assert_eq!(
        totals(&assigned),
        json!({"control": {"count": 1, "users": 1}})
    );
    assert_eq!(
        totals(&stats(srv, "never", "&kind=assignment").await),
        json!({"off": {"count": 1, "users": 1}})
    );
    assert_eq!(
        totals(&stats(srv, "exp", "&kind=all").await)["control"]["count"],
        2
    );

    // Remote evaluation's own records: an assignment per flag unless told not to, exposures
    // when asked, never for default results.
    let eval = |user: Value, headers: &[(&str, &str)]| {
        let mut request = srv
            .sdk(Method::GET, "/sdk/v2/vardata", &fx.server)
            .header("X-Amp-Exp-User", common::sdk::b64(&user));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        srv.send(request)
    };
    eval(json!({"user_id": "r1"}), &[("X-Amp-Exp-Track", "no-track")])
        .await
        .ok(200);
    eval(
        json!({"user_id": "r2"}),
        &[("X-Amp-Exp-Track", "read-only")],
    )
    .await
    .ok(200);
    eval(json!({"user_id": "r3"}), &[]).await.ok(200);
    eval(
        json!({"user_id": "r4"}),
        &[
            ("X-Amp-Exp-Track", "no-track"),
            ("X-Amp-Exp-Exposure-Track", "track"),
        ],
    )
    .await
    .ok(200);
    let after = srv
        .eventually("the remote records to be stored", || async {
            let a = stats(srv, "exp", "&kind=assignment").await;
            let e = stats(srv, "exp", "").await;
            let assignments: i64 = a["totals"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v["count"].as_i64().unwrap())
                .sum();
            let exposures: i64 = e["totals"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v["count"].as_i64().unwrap())
                .sum();
            (assignments == 2 && exposures == 6).then_some((a, e))
        })
        .await;
    let _ = after;
    // r3's assignment of `never` is off; r4 was exposed to `exp` only (never is a default).
    assert_eq!(
        totals(&stats(srv, "never", "&kind=assignment").await)["off"]["count"],
        2
    );
    assert_eq!(totals(&stats(srv, "never", "").await), json!({}));

    // Buckets and bad parameters.
    let hourly = stats(srv, "exp", "&interval=hour").await;
    assert_eq!(hourly["buckets"].as_array().unwrap().len(), 48);
    let daily = srv
        .get("/api/v1/flags/exp/exposures?days=14")
        .await
        .ok(200)
        .json;
    assert_eq!(daily["buckets"].as_array().unwrap().len(), 14);
    srv.get("/api/v1/flags/exp/exposures?days=0")
        .await
        .err(422, "out_of_range", Some("days"));
    srv.get("/api/v1/flags/exp/exposures?interval=week")
        .await
        .err(400, "invalid_query", Some("interval"));
    srv.get("/api/v1/flags/ghost/exposures")
        .await
        .err(404, "not_found", None);
}

/// Batches share a bounded buffer: while one batch holds all of it (here, a client that sends a
/// 20 MiB batch slowly), others wait briefly and are then told to retry, with `Retry-After`
/// and before their bodies are read; once it is free they are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_past_the_buffer_are_told_to_retry() {
    use tokio::io::AsyncWriteExt;

    let mut config = common::fast_config();
    config.ingest_buffer = 20 << 20;
    let srv = Server::start_with(common::Backend::Sqlite, config)
        .await
        .unwrap();
    let fx = srv.sdk_fixture("Busy").await;
    let mut slow = tokio::net::TcpStream::connect(srv.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST /batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"api_key\":\"{}\",\"events\":[",
        20 << 20,
        fx.server
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let event = json!([{"event_type": "$exposure", "user_id": "u1", "insert_id": "b1",
        "event_properties": {"flag_key": "f", "variant": "on"}}]);
    // The slow batch takes the whole buffer once the server has read its head; until then a
    // small batch may still get in (and is stored), after it each one is told to retry.
    let refused = srv
        .eventually("the slow batch to hold the buffer", || async {
            let r = srv.ingest(&fx.server, event.clone()).await;
            (r.status == 429).then_some(r)
        })
        .await;
    assert_eq!(refused.json["code"], 429, "{}", refused.text);
    assert_eq!(refused.headers["retry-after"], "1");
    drop(slow);
    srv.eventually("the buffer to be free again", || async {
        let r = srv.ingest(&fx.server, event.clone()).await;
        (r.status == 200).then_some(())
    })
    .await;
    srv.assert_no_server_errors();
}

/// Every event besides Vexil's experiment events is kept for metrics, de-duplicated by insert
/// id; a batch with malformed events is refused with their indexes and stores nothing.
async fn product_events_are_kept_for_metrics(srv: &Server) {
    let fx = srv.sdk_fixture("Products").await;
    let events = json!([
        {"event_type": "Purchase", "user_id": "u1", "time": 1_700_000_000_000_i64, "insert_id": "p-1",
         "event_properties": {"amount": 30.5}, "user_properties": {"plan": "pro"},
         "groups": {"company": "acme"}},
        {"event_type": "Purchase", "user_id": "u1", "insert_id": "p-1", "event_properties": {"amount": 99}},
        {"event_type": "Page View", "device_id": "d1"},
        {"event_type": "$exposure", "user_id": "u1", "event_properties": {"flag_key": "f", "variant": "on"}},
    ]);
    let r = srv.ingest(&fx.server, events).await.ok(200);
    assert_eq!(r.json["events_ingested"], 4);
    let project = fx.project.clone();
    let (purchases, views, exposures_as_events) = events_of(srv, move |tx| {
        Ok((
            tx.latest_events(&project, "Purchase", 10)?,
            tx.latest_events(&project, "Page View", 10)?,
            tx.latest_events(&project, "$exposure", 10)?,
        ))
    })
    .await;
    assert_eq!(purchases.len(), 1, "the duplicate insert id is stored once");
    let p = &purchases[0];
    assert_eq!(
        (p.user_id.as_deref(), p.event_time, p.insert_id.as_deref()),
        (Some("u1"), 1_700_000_000_000, Some("p-1"))
    );
    assert_eq!(p.event_properties.as_deref(), Some(r#"{"amount":30.5}"#));
    assert_eq!(p.user_properties.as_deref(), Some(r#"{"plan":"pro"}"#));
    assert_eq!(p.groups.as_deref(), Some(r#"{"company":"acme"}"#));
    assert_eq!(views[0].device_id.as_deref(), Some("d1"));
    assert!(
        views[0].event_time > 1_700_000_000_000,
        "no time: the receive time"
    );
    assert!(
        exposures_as_events.is_empty(),
        "exposures are kept as exposures"
    );

    // Malformed events: their indexes by field, as Amplitude answers; nothing is stored.
    let bad = json!([
        {"event_type": "Signup", "user_id": "u2"},
        {"user_id": "u3"},
        {"event_type": "Signup", "user_id": "u4", "time": "yesterday"},
        {"event_type": 7, "user_id": "u5"},
    ]);
    let r = srv.ingest(&fx.server, bad).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["code"], 400);
    assert_eq!(
        r.json["events_with_missing_fields"],
        json!({"event_type": [1]})
    );
    assert_eq!(
        r.json["events_with_invalid_fields"],
        json!({"event_type": [3], "time": [2]})
    );
    let project = fx.project.clone();
    let signups = events_of(srv, move |tx| tx.latest_events(&project, "Signup", 10)).await;
    assert!(signups.is_empty(), "a refused batch stores nothing");
}

/// Reads the store on a blocking thread (the PostgreSQL driver blocks).
async fn events_of<T: Send + 'static>(
    srv: &Server,
    f: impl FnOnce(&mut dyn vexil_store::Tx) -> vexil_store::Result<T> + Send + 'static,
) -> T {
    let store = srv.store();
    tokio::task::spawn_blocking(move || vexil_store::read(&*store, f).unwrap())
        .await
        .unwrap()
}
