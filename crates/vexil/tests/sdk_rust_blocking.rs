//! The Rust SDK's blocking clients (`vexil_sdk::blocking`) against the real `vexil serve` on
//! port 0, used from the test's own thread with no runtime on it (a runtime of the test makes
//! the management API calls of the fixtures only): the local client becomes ready and
//! evaluates what the async client and remote evaluation give over realistic flags; a client
//! bootstrapped from a string starts and evaluates with the server down, and its waiting
//! calls give up within their bounds; shutting down, and dropping, send the queued exposures,
//! which arrive at the server; and inside tokio runtimes of both flavours the same calls
//! neither panic nor deadlock.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test helper is a failed test with its location"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::json;
use vexil_sdk::blocking::{self, SHUTDOWN_ON_DROP};
use vexil_sdk::{
    CohortSyncConfig, Error, EventsConfig, LocalClient, LocalConfig, RemoteConfig, User,
};

mod common;

use common::fixtures::{
    eventually, realistic_flags, serves, started, stop, users, Api, Fixture, DEADLINE, REALISTIC,
};
use common::TempDir;

/// A runtime for the fixtures' management API calls; the blocking clients are used outside it.
fn fixtures_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// `Some` once `client` serves `exp` activated (it is created, then activated, and the
/// server may publish the two apart). Asks through `all_variants`, which records no exposure.
fn exp_is_live(client: &blocking::LocalClient) -> Option<()> {
    let variants = client.all_variants(&User::new().with_user_id("probe"));
    (variants.get("exp")?.key != "off").then_some(())
}

/// `f` returns within `bound` of when it was called.
fn within<T>(bound: Duration, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    assert!(
        started.elapsed() < bound,
        "took {:?}, more than {bound:?}",
        started.elapsed()
    );
    out
}

/// Exposures that go out only when flushed: the sender's interval is an hour.
fn held_events() -> EventsConfig {
    EventsConfig {
        flush_interval: Duration::from_secs(3600),
        flush_at: 1_000,
        ..EventsConfig::default()
    }
}

async fn experiment(api: &Api, fx: &Fixture) {
    api.flag(
        fx,
        "exp",
        json!({"type": "experiment", "variants": [{"key": "control"}, {"key": "treatment"}],
        "all_other_users": {"percentage": 100, "weights": {"control": 1, "treatment": 1}}}),
    )
    .await;
}

/// The blocking client, with cohort sync, gives every user what the async client and remote
/// evaluation (through the blocking remote client) give, per flag and through an
/// `Evaluation`.
#[test]
fn blocking_client_is_ready_and_agrees_with_async_and_remote() {
    let rt = fixtures_runtime();
    let dir = TempDir::new("vexil-sdk-blocking-agree");
    let (server, admin) = started(&dir.0.join("v.db"));
    let api = Api::new(&server, &admin);
    let fx = rt.block_on(async {
        let fx = api.fixture("Blocking").await;
        realistic_flags(&api, &fx).await;
        fx
    });
    let config = LocalConfig::new(server.base(), &fx.key)
        .events(None)
        .cohort_sync(CohortSyncConfig::new(&fx.api_key, &fx.secret_key));

    assert!(tokio::runtime::Handle::try_current().is_err());
    let client = blocking::LocalClient::start(config.clone()).unwrap();
    client.wait_until_ready(DEADLINE).unwrap();
    assert!(client.is_ready());
    let remote = blocking::RemoteClient::new(RemoteConfig::new(server.base(), &fx.key)).unwrap();
    let reference = rt.block_on(async {
        let client = LocalClient::start(config).unwrap();
        client.wait_until_ready(DEADLINE).await.unwrap();
        client
    });
    // `dormant`, the last flag written, is there: the server publishes in order, so every
    // change before it is too.
    rt.block_on(eventually("both clients to serve the flags", || {
        serves(client.flags_json().as_deref(), REALISTIC)?;
        serves(reference.flags_json().as_deref(), REALISTIC)
    }));
    let users = users(300);
    // The cohorts follow the configs that reference them: wait until both clients give a
    // member of each what the server gives.
    let probe = User::from_json(users[5].clone()).unwrap();
    let want = remote.fetch(&probe).unwrap();
    rt.block_on(eventually(
        "both clients to serve configs and cohorts",
        || {
            (client.all_variants(&probe) == want && reference.all_variants(&probe) == want)
                .then_some(())
        },
    ));

    let mut variants = BTreeSet::new();
    for json in &users {
        let user = User::from_json(json.clone()).unwrap();
        let local = client.all_variants(&user);
        assert_eq!(local.len(), REALISTIC.len(), "{json}");
        assert_eq!(local, reference.all_variants(&user), "{json}");
        assert_eq!(local, remote.fetch(&user).unwrap(), "{json}");
        let flags = client.evaluation(&user);
        for flag in REALISTIC {
            let detail = reference.detail(&user, flag);
            assert_eq!(client.detail(&user, flag), detail, "{flag} {json}");
            assert_eq!(flags.detail(flag), detail, "{flag} {json}");
            let value = reference.string_variation(&user, flag, "fallback");
            assert_eq!(
                flags.string_variation(flag, "fallback"),
                value,
                "{flag} {json}"
            );
            assert_eq!(
                client.string_variation(&user, flag, "fallback"),
                value,
                "{flag} {json}"
            );
            assert_eq!(
                flags.is_enabled(flag),
                reference.is_enabled(&user, flag),
                "{flag} {json}"
            );
            variants.insert(format!("{flag}={}", local[*flag].key));
        }
    }
    // The users reach the flags' outcomes, so this is not agreement on `off` alone.
    for expected in [
        "checkout=treatment",
        "checkout=control",
        "checkout=big",
        "checkout=off",
        "org-pricing=on",
        "sub-feature=on",
        "sub-feature=off",
    ] {
        assert!(variants.contains(expected), "{expected}: {variants:?}");
    }
    // A remote fetch of some flags answers them and their ancestors.
    let user = User::from_json(users[2].clone()).unwrap();
    let some = remote.fetch_flags(&user, &["sub-feature"]).unwrap();
    let keys: Vec<&str> = some.keys().map(String::as_str).collect();
    assert_eq!(keys, ["primary", "sub-feature"]);
    assert_eq!(
        some["sub-feature"],
        client.all_variants(&user)["sub-feature"]
    );

    client.shutdown(DEADLINE).unwrap();
    // A client shut down still evaluates its last snapshot.
    assert_eq!(client.all_variants(&probe), want);
    rt.block_on(reference.close());
}

/// A client bootstrapped from the configs a first client saved starts with the server down,
/// evaluates them at once, is not ready, and gives up waiting within its bounds: for
/// readiness, and for exposures that cannot be sent. Remote evaluation fails after its
/// retries.
#[test]
fn blocking_bootstrap_with_the_server_down() {
    let rt = fixtures_runtime();
    let dir = TempDir::new("vexil-sdk-blocking-down");
    let (server, admin) = started(&dir.0.join("v.db"));
    let api = Api::new(&server, &admin);
    let fx = rt.block_on(async {
        let fx = api.fixture("Down").await;
        api.flag(
            &fx,
            "banner",
            json!({"all_other_users": {"percentage": 100, "weights": {"on": 1}}}),
        )
        .await;
        fx
    });
    let base = server.base();
    let user = User::new().with_user_id("u1");
    let first =
        blocking::LocalClient::start(LocalConfig::new(&base, &fx.key).events(None)).unwrap();
    first.wait_until_ready(DEADLINE).unwrap();
    rt.block_on(eventually("the banner to be on", || {
        (first.string_variation(&user, "banner", "fallback") == "on").then_some(())
    }));
    let saved = first.flags_json().unwrap().to_string();
    first.shutdown(DEADLINE).unwrap();
    stop(server);

    let events = EventsConfig {
        retry_min: Duration::from_secs(1),
        ..held_events()
    };
    let config = LocalConfig::new(&base, &fx.key)
        .bootstrap(saved)
        .reconnect(Duration::from_millis(50), Duration::from_millis(200))
        .events(Some(events));
    let client = blocking::LocalClient::start(config).unwrap();
    assert_eq!(client.string_variation(&user, "banner", "fallback"), "on");
    assert!(client.evaluation(&user).is_enabled("banner"));
    let wait = Duration::from_millis(300);
    let ready = within(wait + Duration::from_secs(1), || {
        client.wait_until_ready(wait)
    });
    assert!(matches!(ready, Err(Error::Timeout(_))), "{ready:?}");
    assert!(!client.is_ready());
    assert!(
        client.status().last_error.is_some(),
        "{:?}",
        client.status()
    );
    // The exposure above cannot be sent: shutting down gives up at its timeout.
    let short = Duration::from_millis(500);
    let shut = within(short + Duration::from_secs(1), || client.shutdown(short));
    assert!(matches!(shut, Err(Error::Timeout(_))), "{shut:?}");
    assert_eq!(client.event_stats().sent, 0);

    let config = RemoteConfig::new(&base, &fx.key)
        .timeout(Duration::from_millis(500))
        .retries(1);
    let remote = blocking::RemoteClient::new(config).unwrap();
    let fetched = within(Duration::from_secs(5), || remote.fetch(&user));
    assert!(
        fetched.as_ref().is_err_and(Error::is_retryable),
        "{fetched:?}"
    );
}

/// Ten users' exposures wait in the queue (the sender's interval is an hour) until
/// `shutdown`, then arrive at the server, once per user; those of a client that is dropped
/// without a shutdown arrive too.
#[test]
fn blocking_shutdown_and_drop_send_the_queued_exposures() {
    let rt = fixtures_runtime();
    let dir = TempDir::new("vexil-sdk-blocking-events");
    let (server, admin) = started(&dir.0.join("v.db"));
    let api = Api::new(&server, &admin);
    let fx = rt.block_on(async {
        let fx = api.fixture("Events").await;
        experiment(&api, &fx).await;
        fx
    });
    let config = LocalConfig::new(server.base(), &fx.key).events(Some(held_events()));
    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let expose = |client: &blocking::LocalClient, users: std::ops::Range<i32>| {
        let mut seen = BTreeMap::new();
        for i in users {
            let user = User::new().with_user_id(format!("u{i}"));
            let flags = client.evaluation(&user);
            let value = flags.string_variation("exp", "fallback");
            assert!(value == "control" || value == "treatment", "{value}");
            for _ in 0..2 {
                assert_eq!(flags.string_variation("exp", "fallback"), value);
            }
            assert_eq!(client.string_variation(&user, "exp", "fallback"), value);
            let entry: &mut (i64, i64) = seen.entry(value).or_default();
            entry.0 += 1;
            entry.1 += 1;
        }
        seen
    };

    let client = blocking::LocalClient::start(config.clone()).unwrap();
    client.wait_until_ready(DEADLINE).unwrap();
    rt.block_on(eventually("the client to serve exp", || {
        exp_is_live(&client)
    }));
    for (variant, (count, users)) in expose(&client, 0..10) {
        let entry = expected.entry(variant).or_default();
        entry.0 += count;
        entry.1 += users;
    }
    // A tracked product event goes out with them.
    let buyer = User::new().with_user_id("u0");
    client
        .track(&buyer, "Purchase", json!({"revenue": 3}))
        .unwrap();
    assert_eq!(rt.block_on(api.exposures("exp")), BTreeMap::new());
    assert_eq!(client.event_stats().sent, 0);
    client.shutdown(DEADLINE).unwrap();
    let stats = client.event_stats();
    assert_eq!(
        (stats.sent, stats.deduplicated, stats.dropped, stats.failed),
        (11, 30, 0, 0),
        "10 exposures and the purchase: {stats:?}"
    );
    assert_eq!(rt.block_on(api.exposures("exp")), expected);

    let client = blocking::LocalClient::start(config).unwrap();
    client.wait_until_ready(DEADLINE).unwrap();
    rt.block_on(eventually("the client to serve exp", || {
        exp_is_live(&client)
    }));
    for (variant, (count, users)) in expose(&client, 10..15) {
        let entry = expected.entry(variant).or_default();
        entry.0 += count;
        entry.1 += users;
    }
    within(SHUTDOWN_ON_DROP, || drop(client));
    assert_eq!(rt.block_on(api.exposures("exp")), expected);
}

/// Inside a runtime: made, waited on, flushed, shut down and dropped on the runtime's thread
/// (on a current-thread runtime, its only one) without a panic or a deadlock; the flushed
/// exposure arrives, and remote evaluation agrees.
async fn blocking_clients_inside_a_runtime(name: &str) {
    let dir = TempDir::new(name);
    let (server, admin) = started(&dir.0.join("v.db"));
    let api = Api::new(&server, &admin);
    let fx = api.fixture("Inside").await;
    experiment(&api, &fx).await;
    let config = LocalConfig::new(server.base(), &fx.key).events(Some(held_events()));

    let client = blocking::LocalClient::start(config.clone()).unwrap();
    client.wait_until_ready(DEADLINE).unwrap();
    eventually("the client to serve exp", || exp_is_live(&client)).await;
    let user = User::new().with_user_id("u1");
    let value = client.string_variation(&user, "exp", "fallback");
    client.flush(DEADLINE).unwrap();
    assert_eq!(
        api.exposures("exp").await,
        BTreeMap::from([(value, (1, 1))])
    );
    let remote = blocking::RemoteClient::new(RemoteConfig::new(server.base(), &fx.key)).unwrap();
    assert_eq!(remote.fetch(&user).unwrap(), client.all_variants(&user));
    client.shutdown(DEADLINE).unwrap();

    // Dropped without a shutdown, inside the runtime.
    let other = blocking::LocalClient::start(config).unwrap();
    other.wait_until_ready(DEADLINE).unwrap();
    within(SHUTDOWN_ON_DROP, || drop(other));
    drop(remote);
}

#[tokio::test(flavor = "current_thread")]
async fn blocking_clients_inside_a_current_thread_runtime() {
    blocking_clients_inside_a_runtime("vexil-sdk-blocking-current").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_clients_inside_a_multi_thread_runtime() {
    blocking_clients_inside_a_runtime("vexil-sdk-blocking-multi").await;
}
