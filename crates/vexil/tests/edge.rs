//! `vexil edge` against the real `vexil serve`, all on port 0: an edge (and an edge following
//! an edge) answers remote evaluation, OFREP, flag downloads and cohort downloads exactly as
//! the server does for a few hundred users over realistic flags; a change at the server
//! reaches an SSE client of the edge quickly (p50/p99 printed); with the server stopped the
//! edge keeps serving its last snapshot and says `stale` (in `/readyz` and on its metrics
//! listener), accepts events that arrive upstream once the server is back on the same
//! database, and a restarted edge serves from its data directory; a client deployment is
//! relayed with a server key of its project, through a chain of edges too, and refused
//! without one.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a panic in a test helper is a failed test with its location; tests print figures"
)]

use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use vexil_sdk::sse::SseParser;

mod common;

use common::fixtures::{realistic_flags, started, stop, users, Api, Fixture, DEADLINE};
use common::{start_edge, start_edge_with, start_on, Server, TempDir};

/// `/sdk/v2/vardata` for `user` at `base` (GET, user in the header).
async fn vardata(http: &reqwest::Client, base: &str, key: &str, user: &Value) -> Value {
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(user.to_string());
    let response = http
        .get(format!("{base}/sdk/v2/vardata"))
        .header("Authorization", format!("Api-Key {key}"))
        .header("X-Amp-Exp-User", encoded)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{base}");
    response.json().await.unwrap()
}

/// OFREP bulk for `user` at `base`, without `eventStreams` (its URL names the node).
async fn ofrep_bulk(http: &reqwest::Client, base: &str, key: &str, user: &Value) -> Value {
    let mut context = user.clone();
    if let Some(id) = user.get("user_id") {
        context["targetingKey"] = id.clone();
    }
    let response = http
        .post(format!("{base}/ofrep/v1/evaluate/flags"))
        .bearer_auth(key)
        .json(&json!({ "context": context }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{base}");
    let mut body: Value = response.json().await.unwrap();
    body.as_object_mut().unwrap().remove("eventStreams");
    body
}

/// `(status, body, ETag)` of `GET path` with the deployment key.
async fn get(http: &reqwest::Client, url: String, auth: String) -> (u16, String, Option<String>) {
    let response = http
        .get(url)
        .header("Authorization", auth)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let etag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, response.text().await.unwrap(), etag)
}

async fn readyz(http: &reqwest::Client, base: &str) -> (u16, Value) {
    let response = http.get(format!("{base}/readyz")).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Polls `check` every 20 ms until it gives `Some`, failing with `what` after [`DEADLINE`].
async fn until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the edge at `base` serves the deployment at the server's revision.
async fn follows(http: &reqwest::Client, server: &str, edge: &str, key: &str) {
    let auth = format!("Api-Key {key}");
    until("the edge to serve the server's revision", || async {
        let (_, _, want) = get(http, format!("{server}/sdk/v2/flags"), auth.clone()).await;
        let (status, _, have) = get(http, format!("{edge}/sdk/v2/flags"), auth.clone()).await;
        (status == 200 && have == want).then_some(())
    })
    .await;
}

/// Waits until the server serves the whole realistic scenario to `key`: `dormant`, the last
/// flag it makes, is published after every change before it, so nothing changes after this.
async fn published(http: &reqwest::Client, server: &str, key: &str) {
    until("the server to publish every flag", || async {
        let (status, body, _) = get(
            http,
            format!("{server}/sdk/v2/flags"),
            format!("Api-Key {key}"),
        )
        .await;
        (status == 200 && body.contains("\"key\":\"dormant\"")).then_some(())
    })
    .await;
}

/// The value of the first sample of `name` whose labels include `labels`, in OpenMetrics text.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            let matches = metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            matches.then(|| value.parse().ok()).flatten()
        })
}

/// Scrapes the edge's metrics listener.
async fn scrape(http: &reqwest::Client, edge: &Server) -> String {
    let url = edge
        .metrics
        .as_deref()
        .expect("the edge has a metrics listener");
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

fn setup(name: &str) -> (TempDir, Server, String) {
    let dir = TempDir::new(name);
    let (server, admin) = started(&dir.0.join("v.db"));
    (dir, server, admin)
}

/// An edge, and an edge that follows that edge, answer every request as the server does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_answer_as_the_server_does() {
    let (_dir, server, admin) = setup("vexil-edge-agree");
    let api = Api::new(&server, &admin);
    let fx: Fixture = api.fixture("Edge").await;
    realistic_flags(&api, &fx).await;
    let http = reqwest::Client::new();
    published(&http, &server.base(), &fx.key).await;
    let edge = start_edge(&server.base(), &[&fx.key], None, "127.0.0.1:0");
    let chained = start_edge(&edge.base(), &[&fx.key], None, "127.0.0.1:0");
    follows(&http, &server.base(), &edge.base(), &fx.key).await;
    follows(&http, &server.base(), &chained.base(), &fx.key).await;

    let auth = format!("Api-Key {}", fx.key);
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", fx.api_key, fx.secret_key));
    for path in ["/sdk/v2/flags", "/sdk/v2/flags?eval_mode=remote"] {
        let want = get(&http, format!("{}{path}", server.base()), auth.clone()).await;
        assert_eq!(want.0, 200);
        for node in [&edge, &chained] {
            let have = get(&http, format!("{}{path}", node.base()), auth.clone()).await;
            assert_eq!(have, want, "{path} on {}", node.base());
        }
    }
    let cohort = format!("Basic {basic}");
    let want = get(
        &http,
        format!("{}/sdk/v1/cohort/beta", server.base()),
        cohort.clone(),
    )
    .await;
    assert_eq!(want.0, 200, "{}", want.1);
    for node in [&edge, &chained] {
        let have = get(
            &http,
            format!("{}/sdk/v1/cohort/beta", node.base()),
            cohort.clone(),
        )
        .await;
        assert_eq!((have.0, &have.1), (want.0, &want.1), "cohort download");
    }

    let people = users(300);
    for user in &people {
        let want = vardata(&http, &server.base(), &fx.key, user).await;
        let want_ofrep = ofrep_bulk(&http, &server.base(), &fx.key, user).await;
        for node in [&edge, &chained] {
            let have = vardata(&http, &node.base(), &fx.key, user).await;
            assert_eq!(have, want, "vardata of {user} on {}", node.base());
            let have = ofrep_bulk(&http, &node.base(), &fx.key, user).await;
            assert_eq!(have, want_ofrep, "OFREP of {user} on {}", node.base());
        }
    }
    // The answers vary: the comparison above is not over a constant.
    let variants: std::collections::BTreeSet<String> = {
        let mut seen = std::collections::BTreeSet::new();
        for user in &people[..60] {
            let v = vardata(&http, &edge.base(), &fx.key, user).await;
            seen.insert(v["checkout"]["key"].as_str().unwrap_or("-").to_owned());
        }
        seen
    };
    assert!(variants.len() >= 3, "{variants:?}");

    // Relay credentials: unknown keys and a client key are refused with a stable code.
    let (status, body, _) = get(
        &http,
        format!("{}/sdk/relay/v1/deployment", edge.base()),
        "Api-Key server-nope".to_owned(),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["code"],
        "invalid_deployment_key"
    );
    let path = format!("/api/v1/projects/{}/deployments", fx.project);
    let body = json!({"label": "web", "type": "client"});
    let (status, client, _) = api.call(Method::POST, &path, None, Some(&body)).await;
    assert_eq!(status, 201, "{client}");
    let client_key = client["api_key"].as_str().unwrap();
    // Once the new deployment is published.
    let body = until("the client key to be known", || async {
        let (status, body, _) = get(
            &http,
            format!("{}/sdk/relay/v1/deployment", server.base()),
            format!("Api-Key {client_key}"),
        )
        .await;
        (status == 403).then_some(body)
    })
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["code"],
        "relay_needs_server_key"
    );
    // A matching If-None-Match is a 304.
    let (_, _, etag) = get(
        &http,
        format!("{}/sdk/relay/v1/deployment", edge.base()),
        auth.clone(),
    )
    .await;
    let response = http
        .get(format!("{}/sdk/relay/v1/deployment", edge.base()))
        .header("Authorization", &auth)
        .header("If-None-Match", etag.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 304);
}

/// Reads flag-stream events from `base` into `tx` with their arrival time.
/// A 503 ("the deployment is being published", while a snapshot is being installed) is
/// retried, as SDKs retry it.
async fn listen(base: String, key: String, tx: mpsc::UnboundedSender<(Instant, String)>) {
    let http = reqwest::Client::new();
    let mut attempts = 0;
    let mut response = loop {
        let response = http
            .get(format!("{base}/sdk/stream/v1/flags"))
            .header("Authorization", format!("Api-Key {key}"))
            .header("Accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        attempts += 1;
        if response.status() != 503 || attempts == 100 {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(response.status(), 200);
    let mut parser = SseParser::new(1 << 24);
    while let Ok(Some(chunk)) = response.chunk().await {
        let at = Instant::now();
        for event in parser.push(&chunk).unwrap() {
            if event.data.trim().is_empty() {
                continue;
            }
            if tx.send((at, event.data)).is_err() {
                return;
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// A change at the server reaches a stream on the edge: 20 changes, latency printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_streams_on_the_edge() {
    let (_dir, server, admin) = setup("vexil-edge-latency");
    let api = Api::new(&server, &admin);
    let fx = api.fixture("Latency").await;
    api.flag(
        &fx,
        "toggle",
        json!({"all_other_users": {"percentage": 100, "weights": {"on": 1}}}),
    )
    .await;
    let edge = start_edge(&server.base(), &[&fx.key], None, "127.0.0.1:0");
    let http = reqwest::Client::new();
    follows(&http, &server.base(), &edge.base(), &fx.key).await;
    let (to_edge, mut on_edge) = mpsc::unbounded_channel();
    let (to_server, mut on_server) = mpsc::unbounded_channel();
    tokio::spawn(listen(edge.base(), fx.key.clone(), to_edge));
    tokio::spawn(listen(server.base(), fx.key.clone(), to_server));
    let first = on_edge.recv().await.unwrap().1;
    on_server.recv().await.unwrap();
    let mut edge_ms = Vec::new();
    let mut server_ms = Vec::new();
    let mut last = first;
    for i in 0..20 {
        let action = if i % 2 == 0 { "deactivate" } else { "activate" };
        let sent = Instant::now();
        api.action("toggle", action).await;
        let (at, data) = tokio::time::timeout(Duration::from_secs(2), on_edge.recv())
            .await
            .expect("the change reached the edge's stream within 2 s")
            .unwrap();
        assert_ne!(data, last, "change {i} changed the flags");
        last = data;
        edge_ms.push(at - sent);
        let (at, _) = tokio::time::timeout(Duration::from_secs(2), on_server.recv())
            .await
            .unwrap()
            .unwrap();
        server_ms.push(at - sent);
    }
    edge_ms.sort();
    server_ms.sort();
    println!(
        "change -> stream event, 20 changes (from the API call): on the server p50 {:?} p99 {:?}; on the edge p50 {:?} p99 {:?}",
        percentile(&server_ms, 0.5),
        percentile(&server_ms, 0.99),
        percentile(&edge_ms, 0.5),
        percentile(&edge_ms, 0.99),
    );
    assert!(percentile(&edge_ms, 0.99) < Duration::from_secs(2));
}

/// With the server stopped the edge serves its last snapshot, says so, keeps the events it
/// is sent (delivered once the server is back), and a restarted edge serves from its data
/// directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_rides_out_the_loss_of_its_upstream() {
    let dir = TempDir::new("vexil-edge-outage");
    let db = dir.0.join("v.db");
    let (server, admin) = started(&db);
    let addr = server.addr.clone();
    let api = Api::new(&server, &admin);
    let fx = api.fixture("Outage").await;
    realistic_flags(&api, &fx).await;
    let http = reqwest::Client::new();
    published(&http, &server.base(), &fx.key).await;
    let data = dir.0.join("edge");
    let with_metrics = ["--metrics-listen", "127.0.0.1:0"];
    let edge = start_edge_with(
        &server.base(),
        &[&fx.key],
        Some(&data),
        "127.0.0.1:0",
        &with_metrics,
    );
    follows(&http, &server.base(), &edge.base(), &fx.key).await;
    let people = users(40);
    let mut before = Vec::new();
    for user in &people {
        before.push(vardata(&http, &edge.base(), &fx.key, user).await);
    }
    until("readyz to say connected", || async {
        let (status, body) = readyz(&http, &edge.base()).await;
        (status == 200 && body["upstream"] == "connected").then_some(())
    })
    .await;
    // The edge's metrics: the SDK requests as a node counts them, and its link upstream.
    let prod = [("project", fx.project.as_str()), ("deployment", "prod")];
    let text = scrape(&http, &edge).await;
    let vardata_ok = [("family", "sdk_vardata"), ("status", "200")];
    let served = sample(&text, "vexil_http_requests_total", &vardata_ok);
    assert!(served >= Some(40.0), "{text}");
    assert!(
        sample(&text, "vexil_snapshot_revision", &prod) >= Some(1.0),
        "{text}"
    );
    assert!(
        sample(&text, "vexil_snapshot_age_seconds", &prod).is_some(),
        "{text}"
    );
    assert_eq!(
        sample(&text, "vexil_edge_upstream_connected", &prod),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "vexil_edge_keys_unserved", &[]),
        Some(0.0),
        "{text}"
    );
    assert!(sample(&text, "vexil_spool_bytes", &[]).is_some(), "{text}");
    assert!(
        sample(&text, "vexil_edge_forwarded_batches_total", &[]).is_some(),
        "{text}"
    );
    let contact = sample(&text, "vexil_edge_upstream_contact_age_seconds", &prod).unwrap();
    let retried = [("kind", "retried")];
    let failures = sample(&text, "vexil_edge_forward_failures_total", &retried).unwrap();

    stop(server);
    let (status, body) = until("readyz to say stale", || async {
        let (status, body) = readyz(&http, &edge.base()).await;
        (body["upstream"] == "stale").then_some((status, body))
    })
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["stale_seconds"].is_u64(), "{body}");
    let text = scrape(&http, &edge).await;
    assert_eq!(
        sample(&text, "vexil_edge_upstream_connected", &prod),
        Some(0.0),
        "{text}"
    );
    until(
        "the seconds since the upstream's last answer to grow",
        || async {
            let text = scrape(&http, &edge).await;
            let age = sample(&text, "vexil_edge_upstream_contact_age_seconds", &prod).unwrap();
            (age > contact).then_some(())
        },
    )
    .await;
    for (user, want) in people.iter().zip(&before) {
        assert_eq!(&vardata(&http, &edge.base(), &fx.key, user).await, want);
    }
    // Exposures sent to the edge while the server is down.
    let events: Vec<Value> = (0..5)
        .map(|i| {
            json!({"event_type": "[Experiment] Exposure", "user_id": format!("outage-{i}"),
                "insert_id": format!("outage-{i}"),
                "event_properties": {"[Experiment] Flag Key": "checkout", "[Experiment] Variant": "treatment"}})
        })
        .collect();
    let response = http
        .post(format!("{}/batch", edge.base()))
        .json(&json!({"api_key": fx.key, "events": events}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["code"], 200, "{answer}");
    until(
        "the spooled batch and its failed forward to show",
        || async {
            let text = scrape(&http, &edge).await;
            let bytes = sample(&text, "vexil_spool_bytes", &[]).unwrap();
            let batches = sample(&text, "vexil_spool_batches", &[]).unwrap();
            let failed = sample(&text, "vexil_edge_forward_failures_total", &retried).unwrap();
            (bytes > 0.0 && batches >= 1.0 && failed > failures).then_some(())
        },
    )
    .await;

    // An edge restarted while the upstream is down serves from its data directory.
    drop(edge);
    let edge = start_edge_with(
        &format!("http://{addr}"),
        &[&fx.key],
        Some(&data),
        "127.0.0.1:0",
        &with_metrics,
    );
    // It knows the restored deployment before the upstream answers.
    let text = scrape(&http, &edge).await;
    assert_eq!(
        sample(&text, "vexil_edge_upstream_connected", &prod),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "vexil_edge_keys_unserved", &[]),
        Some(0.0),
        "{text}"
    );
    let (status, body) = readyz(&http, &edge.base()).await;
    assert_eq!(
        (status, &body["upstream"]),
        (200, &json!("stale")),
        "{body}"
    );
    assert!(
        body["spool"]["batches"].as_u64().unwrap() >= 1,
        "the unsent batches are counted again on restart: {body}"
    );
    for (user, want) in people.iter().zip(&before) {
        assert_eq!(&vardata(&http, &edge.base(), &fx.key, user).await, want);
    }

    // The server comes back on the same database and address: the events arrive.
    let server = start_on(&db, &addr, &["--sync-interval-ms", "100"], &[]);
    let api = Api::new(&server, &admin);
    until("the spooled exposures to arrive upstream", || async {
        let counts = api.exposures("checkout").await;
        let treatment = counts.get("treatment").map_or(0, |c| c.0);
        (treatment >= 5).then_some(())
    })
    .await;
    until(
        "readyz to say connected, with nothing left to forward",
        || async {
            let (_, body) = readyz(&http, &edge.base()).await;
            (body["upstream"] == "connected" && body["spool"]["batches"] == 0).then_some(())
        },
    )
    .await;
    until("the metrics to show the upstream back", || async {
        let text = scrape(&http, &edge).await;
        let connected = sample(&text, "vexil_edge_upstream_connected", &prod);
        let forwarded = sample(&text, "vexil_edge_forwarded_batches_total", &[]).unwrap();
        (connected == Some(1.0) && forwarded >= 1.0).then_some(())
    })
    .await;
    let counts = api.exposures("checkout").await;
    assert_eq!(counts.get("treatment").map(|c| c.0), Some(5), "{counts:?}");
    // Remote evaluation on the edge recorded assignments, forwarded as assignment events:
    // one per user (40, each with a user or device id), de-duplicated by insert id.
    let path = "/api/v1/flags/checkout/exposures?days=2&kind=assignment";
    let assigned = until("the edge's assignments to arrive upstream", || async {
        let (status, stats, _) = api.call(Method::GET, path, None, None).await;
        assert_eq!(status, 200, "{stats}");
        let total: i64 = stats["totals"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v["count"].as_i64().unwrap())
            .sum();
        (total > 0).then_some(total)
    })
    .await;
    assert!(assigned <= 40, "{assigned} assignments for 40 users");
}

/// `(status, JSON body)` of a relay request at `base` with `Api-Key <auth>` and `query`.
async fn relay(http: &reqwest::Client, base: &str, auth: &str, query: &str) -> (u16, Value) {
    let (status, body, _) = get(
        http,
        format!("{base}/sdk/relay/v1/deployment{query}"),
        format!("Api-Key {auth}"),
    )
    .await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// A client deployment (what browsers read) is relayed with a server key of its project: an
/// edge following both keys, and an edge of that edge, serve it as the server does and pass
/// its changes on; the wrong credentials are refused with their codes, and an edge without a
/// server key of the project says why it cannot serve the client key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_deployments_are_relayed_with_a_server_key() {
    let (_dir, server, admin) = setup("vexil-edge-client");
    let api = Api::new(&server, &admin);
    let mut fx = api.fixture("Browser").await;
    let client = api.client_deployment(&mut fx).await;
    realistic_flags(&api, &fx).await;
    let other = api.fixture("Elsewhere").await;
    let http = reqwest::Client::new();
    let base = server.base();
    published(&http, &base, &client).await;
    until(
        "the client and the other project's keys to be known",
        || async {
            let (a, _) = relay(&http, &base, &client, "").await;
            let (b, _) = relay(&http, &base, &other.key, "").await;
            (a == 403 && b == 200).then_some(())
        },
    )
    .await;

    // What the node says to each credential.
    let named = format!("?deployment={client}");
    let nope = "server-nope".to_owned();
    // (Authorization key, query, status, code, whether the message names the parameter)
    let cases = [
        (&client, String::new(), 403, "relay_needs_server_key", true),
        (&client, named.clone(), 403, "relay_needs_server_key", true),
        (&other.key, named.clone(), 403, "relay_other_project", true),
        (
            &fx.key,
            "?deployment=client-nope".to_owned(),
            401,
            "invalid_deployment_key",
            true,
        ),
        (
            &fx.key,
            format!("{named}&deployment={client}"),
            400,
            "invalid_parameter",
            true,
        ),
        (&nope, named.clone(), 401, "invalid_deployment_key", false),
    ];
    for (auth, query, status, code, names) in &cases {
        let (have, body) = relay(&http, &base, auth, query).await;
        assert_eq!(
            (have, body["code"].as_str()),
            (*status, Some(*code)),
            "{query}: {body}"
        );
        let message = body["message"].as_str().unwrap();
        assert_eq!(message.contains("`deployment`"), *names, "{body}");
    }
    let (status, body) = relay(&http, &base, &fx.key, &named).await;
    assert_eq!(status, 200, "{body}");
    let (_, own) = relay(&http, &base, &fx.key, "").await;
    assert_ne!(
        body, own,
        "the client deployment's document, not the server key's own"
    );

    // The other project's key comes first: the edge moves on to the next server key.
    let edge = start_edge(&base, &[&other.key, &client, &fx.key], None, "127.0.0.1:0");
    let chained = start_edge(&edge.base(), &[&client, &fx.key], None, "127.0.0.1:0");
    let lonely = start_edge(&base, &[&client, &other.key], None, "127.0.0.1:0");
    follows(&http, &base, &edge.base(), &client).await;
    follows(&http, &base, &chained.base(), &client).await;

    let auth = format!("Api-Key {client}");
    for path in ["/sdk/v2/flags", "/sdk/v2/flags?eval_mode=remote"] {
        let want = get(&http, format!("{base}{path}"), auth.clone()).await;
        assert_eq!(want.0, 200);
        assert!(want.1.contains("checkout"), "{}", want.1);
        for node in [&edge, &chained] {
            let have = get(&http, format!("{}{path}", node.base()), auth.clone()).await;
            assert_eq!(have, want, "{path} on {}", node.base());
        }
    }
    for user in &users(60) {
        let want = vardata(&http, &base, &client, user).await;
        for node in [&edge, &chained] {
            assert_eq!(
                vardata(&http, &node.base(), &client, user).await,
                want,
                "{user}"
            );
        }
    }
    // The middle edge checks the credentials of the deployments it follows as the node does.
    for (auth, query, status, code, _) in &cases[..3] {
        let (have, body) = relay(&http, &edge.base(), auth, query).await;
        assert_eq!(
            (have, body["code"].as_str()),
            (*status, Some(*code)),
            "{query}: {body}"
        );
    }

    // A change reaches a browser's stream on the chained edge.
    let (tx, mut events) = mpsc::unbounded_channel();
    tokio::spawn(listen(chained.base(), client.clone(), tx));
    let first = events.recv().await.unwrap().1;
    api.action("checkout", "deactivate").await;
    let (_, changed) = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("the change reached the chained edge's stream")
        .unwrap();
    assert_ne!(changed, first);
    follows(&http, &base, &chained.base(), &client).await;

    // Without a server key of the project the edge cannot serve the client key, and says so.
    let body = until("the edge to give up on the client key", || async {
        let (_, body) = readyz(&http, &lonely.base()).await;
        let error = body["deployments"][0]["error"].as_str().unwrap_or_default();
        error.contains("client deployment").then_some(body)
    })
    .await;
    let error = body["deployments"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("--key number 1") && error.contains("relay_other_project"),
        "{body}"
    );
    assert_eq!(body["upstream"], "stale", "{body}");
    let (status, _, _) = get(
        &http,
        format!("{}/sdk/v2/flags", lonely.base()),
        auth.clone(),
    )
    .await;
    assert_eq!(status, 401);
}
