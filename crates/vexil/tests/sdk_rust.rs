//! The Rust SDK (`vexil-sdk`) against the real `vexil serve` on port 0: local evaluation
//! agrees with remote evaluation over a few hundred users and realistic flags (cohorts, group
//! cohorts, percentages, several operators, a prerequisite, inclusions, an inactive flag); a
//! change reaches the SDK over the stream (the latency is printed); the SDK keeps evaluating
//! while the server is down, a bootstrapped client starts without it, and both resume when it
//! returns on the same database and port; exposures arrive de-duplicated, in the client and by
//! their insert ids on the server; product events tracked with the SDK reach an experiment's
//! results; the OpenFeature provider answers what OFREP answers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a panic in a test helper is a failed test with its location; tests print figures"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use open_feature::provider::FeatureProvider;
use open_feature::{EvaluationContext, EvaluationErrorCode, EvaluationReason};
use reqwest::Method;
use serde_json::{json, Value};
use vexil_sdk::openfeature::VexilProvider;
use vexil_sdk::{
    CohortSyncConfig, EventsConfig, LocalClient, LocalConfig, RemoteClient, RemoteConfig,
    TrackError, User,
};

mod common;
#[path = "../../vexil-server/tests/ofrep_scenario/mod.rs"]
mod ofrep_scenario;

use common::fixtures::{
    self, eventually, realistic_flags, started, stop, users, Api, DEADLINE, REALISTIC,
};
use common::{start, start_on, TempDir};

/// Waits until `client` serves every flag of `keys`.
async fn serves(client: &LocalClient, keys: &[&str]) {
    eventually("the client to serve the flags", || {
        fixtures::serves(client.flags_json().as_deref(), keys)
    })
    .await;
}

fn no_events(config: LocalConfig) -> LocalConfig {
    config.events(None)
}

/// Local evaluation (with cohort sync) gives every user exactly what `/sdk/v2/vardata` gives,
/// which the remote client fetches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_variants_equal_remote_evaluation() {
    let dir = TempDir::new("vexil-sdk-agree");
    let (server, admin) = started(&dir.0.join("v.db"));
    let api = Api::new(&server, &admin);
    let fx = api.fixture("Agree").await;
    realistic_flags(&api, &fx).await;

    let config = no_events(LocalConfig::new(server.base(), &fx.key))
        .cohort_sync(CohortSyncConfig::new(&fx.api_key, &fx.secret_key));
    let client = LocalClient::start(config).unwrap();
    client.wait_until_ready(DEADLINE).await.unwrap();
    serves(&client, REALISTIC).await;
    let remote = RemoteClient::new(RemoteConfig::new(server.base(), &fx.key)).unwrap();
    let users = users(300);
    // The cohorts follow the configs that reference them: wait until a member of each is seen.
    let probe = User::from_json(users[5].clone()).unwrap();
    let want = remote.fetch(&probe).await.unwrap();
    let mut seen = client.changes();
    while client.all_variants(&probe) != want {
        tokio::time::timeout(DEADLINE, seen.changed())
            .await
            .unwrap()
            .unwrap();
    }
    let mut differ = Vec::new();
    let mut variants = std::collections::BTreeSet::new();
    for json in &users {
        let user = User::from_json(json.clone()).unwrap();
        let local = client.all_variants(&user);
        let remote = remote.fetch(&user).await.unwrap();
        assert_eq!(local.len(), REALISTIC.len(), "{json}");
        for (flag, v) in &local {
            variants.insert(format!("{flag}={}", v.key));
        }
        if local != remote {
            differ.push(format!("{json}\n local {local:?}\nremote {remote:?}"));
        }
    }
    assert!(
        differ.is_empty(),
        "{} users differ:\n{}",
        differ.len(),
        differ[..differ.len().min(3)].join("\n")
    );
    // The users cover the flags' outcomes, so the agreement is not agreement on `off`.
    for expected in [
        "checkout=treatment",
        "checkout=control",
        "checkout=big",
        "checkout=off",
        "new-version=on",
        "new-version=off",
        "org-pricing=on",
        "org-pricing=off",
        "staff=on",
        "staff=off",
        "primary=on",
        "sub-feature=on",
        "sub-feature=off",
        "dormant=off",
    ] {
        assert!(
            variants.contains(expected),
            "{expected} never served: {variants:?}"
        );
    }
    client.close().await;
}

/// A change reaches the SDK over the stream (latency printed); while the server is stopped the
/// SDK evaluates from its snapshot and a bootstrapped client starts without it; when a server
/// returns on the same database and port, both follow it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_changes_outages_and_bootstrap() {
    let dir = TempDir::new("vexil-sdk-stream");
    let db = dir.0.join("v.db");
    let (server, admin) = started(&db);
    let addr = server.addr.clone();
    let api = Api::new(&server, &admin);
    let fx = api.fixture("Stream").await;
    api.flag(
        &fx,
        "banner",
        json!({"all_other_users": {"percentage": 100, "weights": {"on": 1}}}),
    )
    .await;
    let config = no_events(LocalConfig::new(server.base(), &fx.key))
        .poll_interval(Duration::from_millis(200))
        .reconnect(Duration::from_millis(50), Duration::from_millis(400));
    let client = LocalClient::start(config.clone()).unwrap();
    client.wait_until_ready(DEADLINE).await.unwrap();
    serves(&client, &["banner"]).await;
    let user = User::new().with_user_id("u1");
    let key = |c: &LocalClient| c.variant(&user, "banner").map(|v| v.key);
    eventually("the banner to be on", || {
        (key(&client)? == "on").then_some(())
    })
    .await;
    eventually("the stream to deliver", || {
        client.status().streaming.then_some(())
    })
    .await;

    // Latency of a change: from the management API's answer (the change is committed) to the
    // SDK serving it, watched through the client's change notifications.
    let mut latencies = Vec::new();
    for (action, expected) in [
        ("deactivate", "off"),
        ("activate", "on"),
        ("deactivate", "off"),
    ] {
        let mut changes = client.changes();
        let sent = Instant::now();
        api.action("banner", action).await;
        let committed = Instant::now();
        while key(&client).as_deref() != Some(expected) {
            tokio::time::timeout(DEADLINE, changes.changed())
                .await
                .unwrap()
                .unwrap();
        }
        let seen = Instant::now();
        println!(
            "stream change latency ({action}): {:?} after the commit, {:?} after the request",
            seen - committed,
            seen - sent
        );
        latencies.push(seen - committed);
    }
    assert!(
        latencies.iter().all(|l| *l < Duration::from_secs(2)),
        "{latencies:?}"
    );

    // The server goes away: the SDK notices, and keeps evaluating from its snapshot.
    let saved = client.flags_json().unwrap();
    stop(server);
    eventually("the SDK to notice the outage", || {
        (!client.status().streaming).then_some(())
    })
    .await;
    let started_at = Instant::now();
    for _ in 0..100 {
        assert_eq!(key(&client).as_deref(), Some("off"));
    }
    println!(
        "100 evaluations during the outage took {:?}",
        started_at.elapsed()
    );
    // A service started now comes up on its bootstrap, evaluates it, and is not ready.
    let bootstrapped = LocalClient::start(config.clone().bootstrap(saved.to_string())).unwrap();
    assert_eq!(key(&bootstrapped).as_deref(), Some("off"));
    assert!(bootstrapped
        .wait_until_ready(Duration::from_millis(300))
        .await
        .is_err());
    assert!(bootstrapped.status().last_error.is_some());

    // A server returns on the same database and address: both clients follow it.
    let server = start_on(&db, &addr, &["--sync-interval-ms", "100"], &[]);
    let api = Api::new(&server, &admin);
    bootstrapped.wait_until_ready(DEADLINE).await.unwrap();
    api.action("banner", "activate").await;
    eventually("both clients to follow the new server", || {
        (key(&client)? == "on" && key(&bootstrapped)? == "on").then_some(())
    })
    .await;
    eventually("the stream to be back", || {
        client.status().streaming.then_some(())
    })
    .await;
    client.close().await;
    bootstrapped.close().await;
    // Closed clients still evaluate their last snapshot.
    assert_eq!(key(&client).as_deref(), Some("on"));
}

/// Exposures are sent once per user, flag and variant: the client de-duplicates within its
/// window, and a second client (a restarted service) sends the same insert ids, which the
/// server skips. Defaults are not exposures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exposures_arrive_deduplicated() {
    let dir = TempDir::new("vexil-sdk-events");
    let (server, admin) = started(&dir.0.join("v.db"));
    let api = Api::new(&server, &admin);
    let fx = api.fixture("Events").await;
    api.flag(
        &fx,
        "exp",
        json!({"type": "experiment", "variants": [{"key": "control"}, {"key": "treatment"}],
        "all_other_users": {"percentage": 100, "weights": {"control": 1, "treatment": 1}}}),
    )
    .await;
    api.flag(
        &fx,
        "never",
        json!({"all_other_users": {"percentage": 0, "weights": {"on": 1}}}),
    )
    .await;
    let events = EventsConfig {
        flush_interval: Duration::from_millis(50),
        ..EventsConfig::default()
    };
    let config = LocalConfig::new(server.base(), &fx.key).events(Some(events));
    let run = |client: LocalClient| async move {
        client.wait_until_ready(DEADLINE).await.unwrap();
        serves(&client, &["exp", "never"]).await;
        // `exp` is created, then activated, and the server may publish the two apart. Asked
        // through `all_variants`, which records no exposure.
        eventually("the client to serve `exp` activated", || {
            let variants = client.all_variants(&User::new().with_user_id("probe"));
            (variants.get("exp")?.key != "off").then_some(())
        })
        .await;
        let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for i in 0..10 {
            let user = User::new().with_user_id(format!("u{i}"));
            for _ in 0..3 {
                let value = client.string_variation(&user, "exp", "fallback");
                assert!(value == "control" || value == "treatment", "{value}");
                assert_eq!(
                    client.string_variation(&user, "never", "fallback"),
                    "fallback"
                );
            }
            let v = client.variant(&user, "exp").unwrap().key;
            let entry = expected.entry(v).or_default();
            entry.0 += 1;
            entry.1 += 1;
        }
        client.close().await;
        (client.event_stats(), expected)
    };
    let (stats, expected) = run(LocalClient::start(config.clone()).unwrap()).await;
    assert_eq!(
        (stats.sent, stats.deduplicated, stats.dropped, stats.failed),
        (10, 30, 0, 0),
        "{stats:?}"
    );
    assert_eq!(api.exposures("exp").await, expected);
    assert_eq!(api.exposures("never").await, BTreeMap::new());

    let (stats, _) = run(LocalClient::start(config).unwrap()).await;
    assert_eq!(stats.sent, 10, "{stats:?}");
    assert_eq!(
        api.exposures("exp").await,
        expected,
        "the server skips the same insert ids"
    );
}

/// An experiment measured with the SDK alone: its exposures and the `Purchase` events it
/// tracks reach the results, which count each treatment buyer once and sum their revenue.
/// What cannot be tracked says why and sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracked_events_reach_experiment_results() {
    let dir = TempDir::new("vexil-sdk-track");
    let (server, admin) = started(&dir.0.join("v.db"));
    let api = Api::new(&server, &admin);
    let fx = api.fixture("Tracked").await;
    let events = EventsConfig {
        flush_interval: Duration::from_millis(50),
        ..EventsConfig::default()
    };
    let client =
        LocalClient::start(LocalConfig::new(server.base(), &fx.key).events(Some(events))).unwrap();
    client.wait_until_ready(DEADLINE).await.unwrap();

    // Metrics are defined on events the project has seen: the SDK sends the first one.
    let seed = User::new().with_user_id("seed");
    client
        .track(&seed, "Purchase", json!({"revenue": 1}))
        .unwrap();
    assert_eq!(
        client.track(&User::new(), "Purchase", Value::Null),
        Err(TrackError::NoUnit)
    );
    assert_eq!(
        client.track(&seed, "[Experiment] Exposure", Value::Null),
        Err(TrackError::InvalidEventType)
    );
    assert_eq!(
        client.track(&seed, "Purchase", json!([1])),
        Err(TrackError::InvalidProperties)
    );
    client.flush().await;
    let metrics = format!("/api/v1/projects/{}/metrics", fx.project);
    for body in [
        json!({"name": "Purchase", "type": "conversion", "event_type": "Purchase"}),
        json!({"name": "Revenue", "type": "sum", "event_type": "Purchase", "property": "revenue"}),
    ] {
        let (status, m, _) = api.call(Method::POST, &metrics, None, Some(&body)).await;
        assert_eq!(status, 201, "{m}");
    }
    api.flag(
        &fx,
        "checkout",
        json!({"type": "experiment", "variants": [{"key": "control"}, {"key": "treatment"}],
        "all_other_users": {"percentage": 100, "weights": {"control": 1, "treatment": 1}},
        "experiment": {"primary_metric": "purchase", "secondary_metrics": ["revenue"]}}),
    )
    .await;
    serves(&client, &["checkout"]).await;
    eventually("the client to serve `checkout` activated", || {
        let variants = client.all_variants(&User::new().with_user_id("probe"));
        (variants.get("checkout")?.key != "off").then_some(())
    })
    .await;

    // Every treatment user buys three times, twice the same (each call is an occurrence, not
    // a duplicate), for 25 in all; control users buy nothing.
    let mut units = BTreeMap::<String, u64>::new();
    for i in 0..40 {
        let user = User::new().with_user_id(format!("buyer-{i}"));
        let variant = client.string_variation(&user, "checkout", "off");
        *units.entry(variant.clone()).or_default() += 1;
        if variant == "treatment" {
            for revenue in [10, 10, 5] {
                client
                    .track(&user, "Purchase", json!({"revenue": revenue}))
                    .unwrap();
            }
        }
    }
    client.close().await;
    let stats = client.event_stats();
    assert_eq!((stats.dropped, stats.failed), (0, 0), "{stats:?}");
    let treated = units["treatment"];
    assert!(treated > 0 && units["control"] > 0, "{units:?}");

    let deadline = Instant::now() + DEADLINE;
    let results = loop {
        let (status, r, _) = api
            .call(Method::GET, "/api/v1/flags/checkout/results", None, None)
            .await;
        assert_eq!(status, 200, "{r}");
        let units_seen: Vec<u64> = r["variants"]
            .as_array()
            .map(|v| v.iter().filter_map(|v| v["units"].as_u64()).collect())
            .unwrap_or_default();
        if units_seen.iter().sum::<u64>() == 40 {
            break r;
        }
        assert!(Instant::now() < deadline, "results: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let metric = |key: &str| {
        results["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("{key} in {results}"))
    };
    let variant = |m: &Value, name: &str| {
        let i = ["control", "treatment"]
            .iter()
            .position(|v| *v == name)
            .unwrap();
        m["variants"][i].clone()
    };
    let purchase = metric("purchase");
    assert_eq!(
        variant(&purchase, "control")["conversions"],
        0,
        "{purchase}"
    );
    assert_eq!(
        variant(&purchase, "treatment")["conversions"],
        treated,
        "{purchase}"
    );
    let revenue = metric("revenue");
    let mean = variant(&revenue, "treatment")["value"].as_f64().unwrap();
    assert!((mean - 25.0).abs() < 1e-9, "{revenue}");
}

fn context_of(json: &Value) -> EvaluationContext {
    let mut context = EvaluationContext::default();
    for (k, v) in json.as_object().unwrap() {
        match (k.as_str(), v) {
            ("targetingKey", Value::String(s)) => context.targeting_key = Some(s.clone()),
            (_, Value::String(s)) => context.add_custom_field(k.as_str(), s.as_str()),
            (_, Value::Bool(b)) => context.add_custom_field(k.as_str(), *b),
            _ => panic!("unsupported context member {k}"),
        }
    }
    context
}

/// The OpenFeature provider gives the value, variant, reason, error code and metadata the
/// server's OFREP endpoint gives, case by case, on the scenario of the server's OFREP tests
/// (`crates/vexil-server/tests/ofrep_scenario/`), whose answers the server must still give.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openfeature_provider_answers_as_ofrep() {
    let dir = TempDir::new("vexil-sdk-ofrep");
    let (server, admin) = started(&dir.0.join("v.db"));
    let api = Api::new(&server, &admin);
    let fx = api.fixture("Ofrep").await;
    let scenario = ofrep_scenario::scenario();
    for flag in &scenario.flags {
        let mut body = flag.body.clone();
        if !flag.attached {
            body["deployments"] = json!([]);
        }
        if !flag.active {
            body["inactive"] = json!(true);
        }
        api.flag(&fx, &flag.key, body).await;
    }

    let client = LocalClient::start(no_events(LocalConfig::new(server.base(), &fx.key))).unwrap();
    client.wait_until_ready(DEADLINE).await.unwrap();
    serves(&client, &scenario.served()).await;
    let provider = VexilProvider::new(client.clone());
    let http = reqwest::Client::new();
    let ofrep = |flag: &str, context: &Value| {
        let request = http
            .post(format!("{}/ofrep/v1/evaluate/flags/{flag}", server.base()))
            .bearer_auth(&fx.key)
            .json(&json!({ "context": context }));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    for case in &scenario.cases {
        let mut given = BTreeSet::new();
        for context in case.contexts() {
            let (status, answer) = ofrep(&case.flag, &context).await;
            let what = format!("{}: OFREP {answer}", case.what(&context));
            given.insert(case.check(status, &answer, &what));
            resolves_as_ofrep(
                &provider, &client, &case.flag, &context, status, &answer, &what,
            )
            .await;
        }
        case.check_all_given(&given);
    }
    // Types are checked by the provider (OFREP leaves it to providers).
    let context = context_of(&json!({"targetingKey": "u1"}));
    let e = provider
        .resolve_bool_value("static-flag", &context)
        .await
        .err()
        .unwrap();
    assert_eq!(e.code, EvaluationErrorCode::TypeMismatch);
    let r = provider
        .resolve_string_value("static-flag", &context)
        .await
        .unwrap();
    assert_eq!(r.reason, Some(EvaluationReason::Static));
    client.close().await;
}

/// Checks that the provider resolves `flag` for `context` as OFREP answered (`status`,
/// `answer`); where the answer has no value, the client's own detail says why.
async fn resolves_as_ofrep(
    provider: &VexilProvider,
    client: &LocalClient,
    flag: &str,
    context: &Value,
    status: u16,
    answer: &Value,
    what: &str,
) {
    let resolved = provider
        .resolve_string_value(flag, &context_of(context))
        .await;
    match (status, answer.get("value")) {
        (200, Some(ofrep_value)) => {
            let r = resolved.unwrap_or_else(|e| panic!("{what}: {e:?}"));
            assert_eq!(json!(r.value), *ofrep_value, "{what}");
            assert_eq!(r.variant.as_deref(), answer["variant"].as_str(), "{what}");
            assert_eq!(
                r.reason.unwrap().to_string(),
                answer["reason"].as_str().unwrap(),
                "{what}"
            );
            let metadata = r.flag_metadata.unwrap();
            for (k, v) in answer["metadata"].as_object().unwrap() {
                let got = match metadata
                    .values
                    .get(k)
                    .unwrap_or_else(|| panic!("{what}: no {k}"))
                {
                    open_feature::FlagMetadataValue::Bool(b) => json!(b),
                    open_feature::FlagMetadataValue::Int(i) => json!(i),
                    open_feature::FlagMetadataValue::Float(f) => json!(f),
                    open_feature::FlagMetadataValue::String(s) => json!(s),
                };
                assert_eq!(&got, v, "{what}: metadata {k}");
            }
            assert_eq!(
                metadata.values.len(),
                answer["metadata"].as_object().unwrap().len(),
                "{what}"
            );
        }
        (200, None) => {
            // No value: the application's default applies; the provider says why.
            let e = resolved.err().unwrap_or_else(|| panic!("{what}: a value"));
            assert_eq!(
                e.code,
                EvaluationErrorCode::General(answer["reason"].as_str().unwrap().to_owned()),
                "{what}"
            );
            let d = client.detail(&User::from_json(user_json(context)).unwrap(), flag);
            assert_eq!(d.variant_key(), answer["variant"].as_str(), "{what}");
            assert_eq!(
                d.reason.as_str(),
                answer["reason"].as_str().unwrap(),
                "{what}"
            );
        }
        _ => {
            let e = resolved.err().unwrap_or_else(|| panic!("{what}: a value"));
            assert_eq!(
                e.code.to_string(),
                answer["errorCode"].as_str().unwrap(),
                "{what}"
            );
        }
    }
}

/// The SDK user an OFREP context stands for, in this test's simple contexts.
fn user_json(context: &Value) -> Value {
    let mut user = serde_json::Map::new();
    let mut props = serde_json::Map::new();
    for (k, v) in context.as_object().unwrap() {
        match k.as_str() {
            "targetingKey" if v != "" => {
                user.insert("user_id".into(), v.clone());
            }
            "targetingKey" => {}
            "country" => {
                user.insert(k.clone(), v.clone());
            }
            _ => {
                props.insert(k.clone(), v.clone());
            }
        }
    }
    if !props.is_empty() {
        user.insert("user_properties".into(), Value::Object(props));
    }
    Value::Object(user)
}

/// A server with streaming off answers the stream with 501: the SDK polls `/sdk/v2/flags`
/// (with `If-None-Match`) instead and still follows changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_when_the_server_does_not_stream() {
    let dir = TempDir::new("vexil-sdk-poll");
    let server = start(&dir.0.join("v.db"), &["--streaming", "false"]);
    let admin = server.key.clone().unwrap();
    let api = Api::new(&server, &admin);
    let fx = api.fixture("Poll").await;
    api.flag(
        &fx,
        "banner",
        json!({"all_other_users": {"percentage": 100, "weights": {"on": 1}}}),
    )
    .await;
    let config = no_events(LocalConfig::new(server.base(), &fx.key))
        .poll_interval(Duration::from_millis(100));
    let client = LocalClient::start(config).unwrap();
    client.wait_until_ready(DEADLINE).await.unwrap();
    serves(&client, &["banner"]).await;
    let user = User::new().with_user_id("u1");
    api.action("banner", "deactivate").await;
    eventually("the change to be polled", || {
        (client.variant(&user, "banner")?.key == "off").then_some(())
    })
    .await;
    assert!(!client.status().streaming);
    assert!(
        client.status().last_error.is_none(),
        "{:?}",
        client.status()
    );
    client.close().await;
}
