//! When the store is down (project issue 10, §3), through a proxy to PostgreSQL that the tests
//! take down and bring back: event batches are answered `200` and spooled to the node's state
//! directory, then stored once the store answers, each event exactly once; and a node started
//! while the store is down serves the snapshots it persisted before, then follows the store
//! when it is back. Every wait polls with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[allow(
    unused_macros,
    reason = "these tests need PostgreSQL behind a proxy, not both backends"
)]
mod common;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::outage::{postgres_address, Outage};
use common::{fast_config, Server};
use reqwest::Method;
use serde_json::{json, Value};
use vexil_server::ServerConfig;

/// How long the store may take to be noticed back: the replay thread's backoff reaches 5 s, and
/// the pool waits a second per attempt.
const RECOVERY: Duration = Duration::from_secs(60);

/// A state directory removed when the test ends.
struct StateDir(PathBuf);

impl StateDir {
    fn new(name: &str) -> StateDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vexil-outage-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        StateDir(dir)
    }

    fn config(&self) -> ServerConfig {
        let mut config = fast_config();
        config.state_dir = Some(self.0.clone());
        config
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `check` until it gives `Some`, failing with `what` after `deadline`.
async fn until<T, Fut: Future<Output = Option<T>>>(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> Fut,
) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn minute_ago() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000
}

/// An exposure of `flag`'s `on` for `user`, with an insert id when given.
fn exposure(flag: &str, user: &str, insert_id: Option<&str>) -> Value {
    let mut event = json!({"event_type": "$exposure", "user_id": user, "time": minute_ago(),
        "event_properties": {"flag_key": flag, "variant": "on"}});
    if let Some(id) = insert_id {
        event["insert_id"] = json!(id);
    }
    event
}

/// The exposure totals of `flag` (`{"on": {"count", "users"}}`).
async fn totals(srv: &Server, flag: &str) -> Value {
    let path = format!("/api/v1/flags/{flag}/exposures?days=2");
    srv.get(&path).await.ok(200).json["totals"].clone()
}

async fn readyz(srv: &Server) -> common::Resp {
    srv.send(srv.http.get(srv.url("/readyz"))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_sent_during_an_outage_are_stored_once_it_ends() {
    let upstream = postgres_address();
    let outage = Outage::start(upstream.clone()).await;
    let state = StateDir::new("events");
    let Some(srv) = Server::postgres_via(state.config(), outage.via(&upstream)).await else {
        return;
    };
    let fx = srv.sdk_fixture("Spooled").await;
    srv.live_flag(
        &fx,
        "spooled",
        json!({"all_other_users": {"percentage": 100, "weights": {"on": 1}}}),
    )
    .await;

    outage.set_down(true);
    let first = json!([
        exposure("spooled", "u1", Some("i1")),
        exposure("spooled", "u2", Some("i2")),
        exposure("spooled", "u3", None),
        {"event_type": "session_start", "user_id": "u3"},
    ]);
    let second = json!([
        exposure("spooled", "u4", Some("i4")),
        exposure("spooled", "u1", Some("i1")),
    ]);
    // The first batch, a client's retry of it, and another batch that repeats an insert id:
    // all answered as stored batches are.
    for (batch, events) in [(&first, 4), (&first, 4), (&second, 2)] {
        let started = Instant::now();
        let r = srv.ingest(&fx.server, batch.clone()).await.ok(200);
        assert_eq!(r.json["code"], 200, "{}", r.text);
        assert_eq!(r.json["events_ingested"], events, "{}", r.text);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
    let ready = readyz(&srv).await.ok(200);
    assert_eq!(ready.json["store"], "unreachable", "{}", ready.text);
    assert!(
        ready.json["spool"]["bytes"].as_u64().unwrap() > 0,
        "{}",
        ready.text
    );
    assert_eq!(ready.json["spool"]["batches"], 3, "{}", ready.text);
    // Management calls still fail fast meanwhile.
    let r = srv.send(srv.req(Method::GET, "/api/v1/projects")).await;
    assert_eq!(r.status, 503);

    outage.set_down(false);
    until("the spool to drain", RECOVERY, || async {
        let ready = readyz(&srv).await;
        let drained = ready.json["spool"]["bytes"] == 0 && ready.json["spool"]["batches"] == 0;
        (drained && ready.json["store"] == "reachable").then_some(())
    })
    .await;
    // i1, i2 and i4 once each; u3's exposure has no insert id, so its retry counts again (as it
    // would have with the store up).
    assert_eq!(
        totals(&srv, "spooled").await,
        json!({"on": {"count": 5, "users": 4}})
    );
    // The ids the spool stored are claimed: sending them again stores nothing.
    srv.ingest(&fx.server, second).await.ok(200);
    assert_eq!(
        totals(&srv, "spooled").await,
        json!({"on": {"count": 5, "users": 4}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_during_an_outage_serves_its_persisted_snapshots() {
    let upstream = postgres_address();
    let outage = Outage::start(upstream.clone()).await;
    let state = StateDir::new("cold");
    let Some(mut srv) = Server::postgres_via(state.config(), outage.via(&upstream)).await else {
        return;
    };
    let fx = srv.sdk_fixture("Cold").await;
    srv.live_flag(
        &fx,
        "persisted",
        json!({"all_other_users": {"percentage": 100, "weights": {"on": 1}}}),
    )
    .await;
    let file = state
        .0
        .join(format!("snapshots/projects/{}.json", fx.project));
    until(
        "the snapshot to be persisted",
        common::sdk::DEADLINE,
        || async {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            text.contains("\"persisted\"").then_some(())
        },
    )
    .await;
    srv.stop().await;

    outage.set_down(true);
    // A node with nothing persisted starts anyway, is not ready, and asks for batches again
    // later instead of calling the key invalid.
    let empty = StateDir::new("empty");
    let bare = srv.another_node(empty.config()).await;
    let r = readyz(&bare).await;
    assert_eq!(
        (r.status, &r.json["snapshots"]["loaded"]),
        (503, &json!(false)),
        "{}",
        r.text
    );
    let r = bare
        .ingest(&fx.server, json!([exposure("persisted", "u0", None)]))
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.headers["retry-after"], "1");

    // A node on the first one's state directory serves what it persisted.
    let node = srv.another_node(state.config()).await;
    let r = readyz(&node).await.ok(200);
    assert_eq!(r.json["snapshots"]["source"], "disk", "{}", r.text);
    assert_eq!(r.json["store"], "unreachable", "{}", r.text);
    assert_eq!(r.json["snapshots"]["deployments"], 2, "{}", r.text);
    let served = node.vardata(&fx.server, &json!({"user_id": "u1"})).await;
    assert_eq!(served["persisted"]["key"], "on", "{served}");
    let configs = node.download(&fx.server, "?eval_mode=remote").await;
    assert!(
        configs
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["key"] == "persisted"),
        "{configs}"
    );
    node.ingest(&fx.server, json!([exposure("persisted", "u1", Some("c1"))]))
        .await
        .ok(200);

    // Back: both nodes load the store's snapshots, the spooled event is stored, and changes
    // made now are served.
    outage.set_down(false);
    for n in [&node, &bare] {
        until("the store's snapshots", RECOVERY, || async {
            let r = readyz(n).await;
            (r.status == 200 && r.json["snapshots"]["source"] == "store").then_some(())
        })
        .await;
    }
    until("the spooled event", RECOVERY, || async {
        let r = node.get("/api/v1/flags/persisted/exposures?days=2").await;
        (r.status == 200 && r.json["totals"] == json!({"on": {"count": 1, "users": 1}}))
            .then_some(())
    })
    .await;
    let off = node.action("persisted", "deactivate").await.ok(200);
    node.served(&fx.server, "persisted", off.etag()).await;
    let variant = node
        .variant(&fx.server, &json!({"user_id": "u1"}), "persisted")
        .await;
    assert_ne!(variant.as_deref(), Some("on"));
}
