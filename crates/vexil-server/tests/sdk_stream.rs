//! Server-sent events end to end: the flag stream of the server SDKs (first event at once, a
//! new full payload on every change, keep-alives of one space, the end of the stream when the
//! deployment is archived or the stream reaches its maximum age, a client that does not read
//! never holding others back) and OFREP's change notifications; the relay stream and document
//! of a client deployment, asked for with a server key of its project, and the refusals of the
//! wrong credentials; and a second node on the same PostgreSQL database that picks up and
//! pushes changes made through the first.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::{fast_config, Backend, Server};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(
    flag_stream_pushes_every_change,
    ofrep_events_notify_revisions
);

/// Reads server-sent events from a streaming answer.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    fn new(response: reqwest::Response) -> Events {
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (its raw lines, without the blank line that ends it), or `None` when
    /// the stream ends; fails after `within`.
    async fn next(&mut self, within: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event = self.buffer[..end].to_owned();
                self.buffer.drain(..end + 2);
                return Some(event);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no event within {within:?}; have {:?}", self.buffer))
                .unwrap();
            match chunk {
                Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                None => return None,
            }
        }
    }

    /// The next event that is not a keep-alive or comment, as `data` JSON.
    async fn next_data(&mut self, within: Duration) -> Value {
        loop {
            let event = self.next(within).await.expect("the stream ended");
            if let Some(data) = event.strip_prefix("data: ") {
                if data.trim().is_empty() {
                    continue;
                }
                return serde_json::from_str(data).unwrap();
            }
        }
    }
}

async fn open_stream(srv: &Server, key: &str) -> Events {
    let response = srv
        .sdk(Method::GET, "/sdk/stream/v1/flags", key)
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let h = response.headers();
    assert_eq!(h["content-type"], "text/event-stream");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["x-accel-buffering"], "no");
    Events::new(response)
}

fn aou(percentage: u8) -> Value {
    json!({"all_other_users": {"percentage": percentage, "weights": {"on": 1}}})
}

fn percentage_of(configs: &Value, flag: &str) -> Option<i64> {
    let config = configs.as_array()?.iter().find(|c| c["key"] == flag)?;
    config["segments"][0]["bucket"]["allocations"][0]["range"][1].as_i64()
}

async fn flag_stream_pushes_every_change(srv: &Server) {
    let fx = srv.sdk_fixture("Streams").await;
    let mut body = aou(10);
    body["evaluation_mode"] = json!("local");
    srv.live_flag(&fx, "rollout", body).await;
    let started = Instant::now();
    let mut stream = open_stream(srv, &fx.server).await;
    let first = stream.next_data(Duration::from_millis(1500)).await;
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_eq!(
        first,
        srv.download(&fx.server, "").await,
        "the first event is /sdk/v2/flags"
    );
    let mut idle = open_stream(srv, &fx.server).await;

    // Each change arrives as a full payload, within a second.
    for percentage in [20u8, 35, 50] {
        let changed = Instant::now();
        srv.update("rollout", &aou(percentage)).await.ok(200);
        let next = stream.next_data(Duration::from_secs(1)).await;
        assert_eq!(
            percentage_of(&next, "rollout"),
            Some(i64::from(percentage)),
            "{next}"
        );
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "{:?}",
            changed.elapsed()
        );
    }
    // The stream nobody read meanwhile held no one back, and still ends at the newest payload
    // (intermediate ones are skipped when it falls behind).
    let mut seen = Vec::new();
    while seen.last() != Some(&50) {
        seen.push(percentage_of(&idle.next_data(Duration::from_secs(1)).await, "rollout").unwrap());
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    // A remote-mode flag is not in the local payload, so adding one sends nothing new; the
    // next local change does arrive.
    srv.live_flag(&fx, "remote-only", json!({"evaluation_mode": "remote"}))
        .await;
    srv.update("rollout", &aou(60)).await.ok(200);
    let next = stream.next_data(Duration::from_secs(1)).await;
    assert_eq!(percentage_of(&next, "rollout"), Some(60), "{next}");
    assert!(!common::keys(&next).contains(&"remote-only".to_owned()));

    // Archiving the deployment ends its streams.
    let path = format!("/api/v1/projects/{}/deployments/prod", fx.project);
    let d = srv.get(&path).await.ok(200);
    srv.patch(&path, d.etag(), &json!({"archived": true}))
        .await
        .ok(200);
    while let Some(event) = stream.next(Duration::from_secs(2)).await {
        assert!(event.starts_with("data:"), "{event}");
    }
    let r = srv
        .send(srv.sdk(Method::GET, "/sdk/stream/v1/flags", &fx.server))
        .await;
    assert_eq!(r.status, 401);
}

/// A client deployment is relayed with a server key of its project (`?deployment=`), on the
/// document and the stream alike; every other pairing is refused with its code and a message
/// that names the parameter. The relay reads snapshots only, so one backend covers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relaying_a_client_deployment_takes_a_server_key_of_its_project() {
    let srv = Server::sqlite().await;
    let fx = srv.sdk_fixture("Relay").await;
    let other = srv.sdk_fixture("Relay elsewhere").await;
    let mut body = aou(10);
    body["deployments"] = json!(["prod", "web"]);
    srv.live_flag(&fx, "rollout", body).await;
    let named = format!("deployment={}", fx.client);
    let refused = [
        (&fx.client, String::new(), 403, "relay_needs_server_key"),
        (&fx.client, named.clone(), 403, "relay_needs_server_key"),
        (&other.server, named.clone(), 403, "relay_other_project"),
        (
            &fx.server,
            "deployment=web-nope".to_owned(),
            401,
            "invalid_deployment_key",
        ),
        (
            &fx.server,
            "deployment=".to_owned(),
            401,
            "invalid_deployment_key",
        ),
        (
            &fx.server,
            format!("{named}&{named}"),
            400,
            "invalid_parameter",
        ),
    ];
    let relay =
        |path: &str, key: &str, query: &str| srv.sdk(Method::GET, &format!("{path}?{query}"), key);
    for path in ["/sdk/relay/v1/deployment", "/sdk/relay/v1/stream"] {
        for (key, query, status, code) in &refused {
            let r = srv.send(relay(path, key, query)).await;
            assert_eq!((r.status, r.code()), (*status, *code), "{path}?{query}");
            assert!(r.message().contains("`deployment`"), "{}", r.message());
        }
    }

    let document = srv
        .send(relay("/sdk/relay/v1/deployment", &fx.server, &named))
        .await
        .ok(200);
    assert_eq!(
        document.json["project"]["deployments"][0]["deployment"]["key"], "web",
        "{}",
        document.json
    );
    let response = relay("/sdk/relay/v1/stream", &fx.server, &named)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = Events::new(response);
    let first = stream.next(Duration::from_secs(2)).await.unwrap();
    assert!(first.starts_with("event: revision"), "{first}");
    srv.update("rollout", &aou(30)).await.ok(200);
    let next = loop {
        let event = stream.next(Duration::from_secs(2)).await.unwrap();
        if event.starts_with("event: revision") {
            break event;
        }
    };
    assert_ne!(next, first);

    // An archived deployment's key relays only its own deployment.
    let path = format!("/api/v1/projects/{}/deployments/prod", fx.project);
    let d = srv.get(&path).await.ok(200);
    srv.patch(&path, d.etag(), &json!({"archived": true}))
        .await
        .ok(200);
    let archived = srv
        .eventually("the archive to be published", || async {
            let r = srv
                .send(relay("/sdk/relay/v1/deployment", &fx.server, &named))
                .await;
            (r.status == 403).then_some(r)
        })
        .await;
    assert_eq!(archived.code(), "relay_key_archived");
    // The stream it opened for the client deployment ends with it.
    let ended = async { while stream.next(Duration::from_secs(5)).await.is_some() {} };
    tokio::time::timeout(Duration::from_secs(5), ended)
        .await
        .expect("the relay stream of an archived key to end");
    let own = format!("deployment={}", fx.server);
    srv.send(relay("/sdk/relay/v1/deployment", &fx.server, &own))
        .await
        .ok(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalives_and_disabled_streaming() {
    let mut config = fast_config();
    config.keepalive = Duration::from_millis(150);
    let srv = Server::start_with(Backend::Sqlite, config).await.unwrap();
    let fx = srv.sdk_fixture("Keepalive").await;
    let mut stream = open_stream(&srv, &fx.server).await;
    assert!(stream
        .next(Duration::from_secs(1))
        .await
        .unwrap()
        .starts_with("data: ["));
    // `data:` and two spaces: SSE parsing strips one, leaving data of a single space.
    for _ in 0..2 {
        assert_eq!(
            stream.next(Duration::from_secs(1)).await.unwrap(),
            "data:  "
        );
    }
    let r = srv
        .send(srv.sdk(Method::GET, "/sdk/stream/v1/flags", "server-unknown"))
        .await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (401, Some("Invalid deployment"))
    );

    let mut config = fast_config();
    config.streaming = false;
    let off = Server::start_with(Backend::Sqlite, config).await.unwrap();
    let fx = off.sdk_fixture("Off").await;
    let r = off
        .send(off.sdk(Method::GET, "/sdk/stream/v1/flags", &fx.server))
        .await;
    assert_eq!(r.status, 501);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_at_its_maximum_age() {
    let mut config = fast_config();
    config.keepalive = Duration::from_millis(150);
    config.stream_max_age = Duration::from_millis(500);
    let srv = Server::start_with(Backend::Sqlite, config).await.unwrap();
    let fx = srv.sdk_fixture("Age").await;
    let started = Instant::now();
    let mut stream = open_stream(&srv, &fx.server).await;
    let mut keepalives = 0;
    while let Some(event) = stream.next(Duration::from_secs(2)).await {
        keepalives += usize::from(event == "data:  ");
    }
    // Keep-alives until the age limit, then the end of the stream (and the SDK reconnects).
    assert!(keepalives >= 2, "{keepalives} keep-alives");
    assert!(started.elapsed() >= Duration::from_millis(500));
}

async fn bulk_stream_url(srv: &Server, key: &str) -> String {
    let r = srv
        .send(
            srv.http
                .post(srv.url("/ofrep/v1/evaluate/flags"))
                .bearer_auth(key)
                .json(&json!({"context": {"targetingKey": "u"}})),
        )
        .await
        .ok(200);
    r.json["eventStreams"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn refetch(event: &str) -> (i64, Value) {
    let mut lines = event.lines();
    assert_eq!(lines.next(), Some("event: message"), "{event}");
    let id: i64 = lines
        .next()
        .unwrap()
        .strip_prefix("id: ")
        .unwrap()
        .parse()
        .unwrap();
    let data: Value =
        serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(data["type"], "refetchEvaluation");
    assert_eq!(data["etag"], id.to_string());
    assert!(
        data["lastModified"].as_i64().unwrap() > 1_700_000_000,
        "seconds: {data}"
    );
    (id, data)
}

async fn ofrep_events_notify_revisions(srv: &Server) {
    let fx = srv.sdk_fixture("Events").await;
    srv.live_flag(&fx, "f", aou(10)).await;
    let url = bulk_stream_url(srv, &fx.server).await;
    assert_ne!(
        url,
        bulk_stream_url(srv, &fx.client).await,
        "one token per deployment"
    );
    let response = srv.http.get(&url).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events = Events::new(response);
    assert_eq!(
        events.next(Duration::from_secs(1)).await.unwrap(),
        "retry: 5000"
    );
    srv.update("f", &aou(30)).await.ok(200);
    let (id, _) = refetch(&events.next(Duration::from_secs(2)).await.unwrap());
    let revision: i64 = srv
        .send(
            srv.http
                .post(srv.url("/ofrep/v1/evaluate/flags"))
                .bearer_auth(&fx.server)
                .json(&json!({"context": {}})),
        )
        .await
        .json["metadata"]["version"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(id, revision);
    // Reconnecting behind the current revision gets a notification at once.
    let behind = srv
        .http
        .get(&url)
        .header("Last-Event-ID", (id - 1).to_string())
        .send()
        .await
        .unwrap();
    let mut behind = Events::new(behind);
    assert_eq!(
        behind.next(Duration::from_secs(1)).await.unwrap(),
        "retry: 5000"
    );
    assert_eq!(
        refetch(&behind.next(Duration::from_secs(1)).await.unwrap()).0,
        id
    );
    // The token is a secret of its own deployment.
    let wrong = url.replace("token=", "token=x");
    assert_eq!(srv.http.get(&wrong).send().await.unwrap().status(), 401);
    assert_eq!(
        srv.http
            .get(srv.url("/sdk/ofrep/v1/events"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ofrep_stream_pings() {
    let mut config = fast_config();
    config.ofrep_ping = Duration::from_millis(150);
    let srv = Server::start_with(Backend::Sqlite, config).await.unwrap();
    let fx = srv.sdk_fixture("Pings").await;
    let url = bulk_stream_url(&srv, &fx.server).await;
    let mut events = Events::new(srv.http.get(&url).send().await.unwrap());
    assert_eq!(
        events.next(Duration::from_secs(1)).await.unwrap(),
        "retry: 5000"
    );
    assert_eq!(events.next(Duration::from_secs(1)).await.unwrap(), ": ping");
}

/// Two nodes on one PostgreSQL database: a change through one is served and pushed by the
/// other, with the same revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_follows_the_first() {
    let Some(a) = Server::postgres().await else {
        return;
    };
    let b = a.another_node(fast_config()).await;
    let fx = a.sdk_fixture("Nodes").await;
    let mut body = aou(10);
    body["evaluation_mode"] = json!("local");
    a.live_flag(&fx, "shared", body).await;
    b.eventually("node b to serve the new deployment and flag", || async {
        let r = b
            .send(b.sdk(Method::GET, "/sdk/v2/flags", &fx.server))
            .await;
        (r.status == 200 && percentage_of(&r.json, "shared") == Some(10)).then_some(())
    })
    .await;
    let mut stream = open_stream(&b, &fx.server).await;
    stream.next_data(Duration::from_secs(1)).await;
    let changed = Instant::now();
    a.update("shared", &aou(40)).await.ok(200);
    let next = stream.next_data(Duration::from_secs(3)).await;
    assert_eq!(percentage_of(&next, "shared"), Some(40));
    println!(
        "a change through node a reached node b's stream in {:?}",
        changed.elapsed()
    );
    let (ta, tb) = (etag(&a, &fx.server).await, etag(&b, &fx.server).await);
    assert_eq!(ta, tb, "both nodes agree on the revision");
    // Properties written through one node reach the other's evaluation.
    a.live_flag(&fx, "flag-a", aou(100)).await;
    a.live_flag(&fx, "flag-b", json!({
        "segments": [{"name": "Saw A", "conditions": [{"type": "user_property", "property": "[Experiment] flag-a", "op": "is", "values": ["on"]}],
                      "percentage": 100, "weights": {"on": 1}}],
        "all_other_users": {"percentage": 0, "weights": {"on": 1}}})).await;
    a.ingest(&fx.server, json!([{"event_type": "$exposure", "user_id": "n1", "event_properties": {"flag_key": "flag-a", "variant": "on"}}]))
        .await
        .ok(200);
    b.eventually("node b to read the property node a stored", || async {
        (b.variant(&fx.server, &json!({"user_id": "n1"}), "flag-b")
            .await
            .as_deref()
            == Some("on"))
        .then_some(())
    })
    .await;
}

async fn etag(srv: &Server, key: &str) -> String {
    let r = srv.send(srv.sdk(Method::GET, "/sdk/v2/flags", key)).await;
    r.headers["etag"].to_str().unwrap().to_owned()
}
