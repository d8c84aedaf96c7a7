//! OFREP end to end (`sdk-protocol.md` Part B): the reason of every kind of result, errors and
//! their status codes (the cases of `ofrep_scenario/scenario.json`, which the Rust SDK's
//! OpenFeature test runs too), authentication in its three forms, bulk evaluation with partial
//! failures, the ETag over revision and canonical context with its 304, agreement with
//! `/sdk/v2/vardata`, and the configs that say `deployed: false` (groups, imported ones), which
//! OFREP does not know even when the deployment carries them.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
mod common;
mod ofrep_scenario;

use std::collections::BTreeSet;

use common::sdk::{imported_groups, Fixture};
use common::{fast_config, Backend, Resp, Server};
use ofrep_scenario::{scenario, Scenario};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(
    reasons_values_and_errors,
    bulk_etags_and_agreement,
    not_deployed_configs_are_not_found
);

/// Creates the scenario's flags and waits until the server deployment `prod` serves them all.
async fn flags(srv: &Server, fx: &Fixture, scenario: &Scenario) {
    for flag in &scenario.flags {
        if flag.attached && flag.active {
            srv.live_flag(fx, &flag.key, flag.body.clone()).await;
            continue;
        }
        let mut body = flag.body.clone();
        if flag.attached {
            body["deployments"] = json!(["prod"]);
        }
        srv.flag_in(&fx.project, &flag.key, body).await;
        if flag.active {
            srv.action(&flag.key, "activate").await.ok(200);
        }
    }
    // `live_flag` waited for its flag; the others are waited for here.
    let served = scenario.served();
    srv.eventually("every flag to be served", || async {
        let c = srv.download(&fx.server, "?eval_mode=remote").await;
        let keys = common::keys(&c);
        served
            .iter()
            .all(|k| keys.iter().any(|s| s == k))
            .then_some(())
    })
    .await;
}

fn ofrep(srv: &Server, path: &str, key: &str, context: Value) -> reqwest::RequestBuilder {
    srv.http
        .post(srv.url(path))
        .bearer_auth(key)
        .json(&json!({ "context": context }))
}

async fn one(srv: &Server, key: &str, flag: &str, context: Value) -> Resp {
    srv.send(ofrep(
        srv,
        &format!("/ofrep/v1/evaluate/flags/{flag}"),
        key,
        context,
    ))
    .await
}

/// The scenario's cases, with what only the HTTP answer shows: the headers, flat metadata that
/// says `deployed`, and an error's details.
async fn reasons_values_and_errors(srv: &Server) {
    let fx = srv.sdk_fixture("Ofrep").await;
    let scenario = scenario();
    flags(srv, &fx, &scenario).await;
    let key = &fx.server;
    for case in &scenario.cases {
        let mut given = BTreeSet::new();
        for context in case.contexts() {
            let r = one(srv, key, &case.flag, context.clone()).await;
            let what = format!("{}: {}", case.what(&context), r.text);
            given.insert(case.check(r.status, &r.json, &what));
            assert_eq!(r.headers["cache-control"], "private, no-cache", "{what}");
            assert_eq!(r.headers["vary"], "Authorization, X-API-Key", "{what}");
            if r.status == 200 {
                let m = r.json["metadata"].as_object().unwrap();
                assert!(
                    m.values().all(|v| !v.is_object() && !v.is_array()),
                    "{what}"
                );
                assert_eq!(m["deployed"], true, "{what}");
            } else {
                assert!(
                    r.json["errorDetails"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{what}"
                );
            }
        }
        case.check_all_given(&given);
    }

    // Invalid contexts.
    for body in [
        "",
        "not json",
        "[]",
        r#"{"ctx": {}}"#,
        r#"{"context": [1]}"#,
        r#"{"context": {"targetingKey": 7}}"#,
    ] {
        let request = srv
            .http
            .post(srv.url("/ofrep/v1/evaluate/flags/static-flag"))
            .bearer_auth(key)
            .header("Content-Type", "application/json")
            .body(body);
        let r = srv.send(request).await;
        assert_eq!(
            (r.status, r.json["errorCode"].as_str()),
            (400, Some("INVALID_CONTEXT")),
            "{body}: {}",
            r.text
        );
        assert_eq!(r.json["key"], "static-flag");
    }
    // Credentials: Bearer, X-API-Key, Api-Key; unknown or missing 401; archived 403.
    let path = srv.url("/ofrep/v1/evaluate/flags/static-flag");
    let body = json!({"context": {"targetingKey": "u"}});
    for (header, value, status) in [
        ("Authorization", format!("Bearer {key}"), 200),
        ("X-API-Key", key.clone(), 200),
        ("Authorization", format!("Api-Key {key}"), 200),
        ("Authorization", "Bearer server-unknown".to_owned(), 401),
        ("X-API-Key", String::new(), 401),
    ] {
        let r = srv
            .send(srv.http.post(&path).header(header, &value).json(&body))
            .await;
        assert_eq!(r.status, status, "{header}: {value}");
    }
    assert_eq!(srv.send(srv.http.post(&path).json(&body)).await.status, 401);
    let d = srv
        .get(&format!("/api/v1/projects/{}/deployments/web", fx.project))
        .await
        .ok(200);
    srv.patch(
        &format!("/api/v1/projects/{}/deployments/web", fx.project),
        d.etag(),
        &json!({"archived": true}),
    )
    .await
    .ok(200);
    srv.eventually("the archived deployment's key to be refused", || async {
        (one(srv, &fx.client, "static-flag", json!({})).await.status == 403).then_some(())
    })
    .await;
}

async fn bulk_etags_and_agreement(srv: &Server) {
    let fx = srv.sdk_fixture("Bulk").await;
    flags(srv, &fx, &scenario()).await;
    let key = &fx.server;
    let bulk = |context: Value| ofrep(srv, "/ofrep/v1/evaluate/flags", key, context);
    let r = srv
        .send(bulk(json!({"targetingKey": "u1", "country": "CA"})))
        .await
        .ok(200);
    let items = r.json["flags"].as_array().unwrap();
    let keys: Vec<&str> = items.iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "child",
            "device-split",
            "disabled",
            "fallback-value",
            "included",
            "json-payload",
            "split-flag",
            "static-flag",
            "targeted"
        ],
        "attached flags in key order, no ancestors"
    );
    let revision = r.json["metadata"]["version"].as_str().unwrap().to_owned();
    assert!(revision.parse::<i64>().unwrap() > 0);
    let stream = r.json["eventStreams"][0].clone();
    assert_eq!(stream["type"], "sse");
    assert_eq!(stream["inactivityDelaySec"], 120);
    assert!(stream["url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/sdk/ofrep/v1/events?token=", srv.base)));
    let etag = r.headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with("W/\"") && etag.len() == 32 + 4, "{etag}");

    // Partial failure: no targeting key fails only the flags that need one.
    let r = srv.send(bulk(json!({"country": "CA"}))).await.ok(200);
    for item in r.json["flags"].as_array().unwrap() {
        let needs_key = item["key"] == "split-flag";
        assert_eq!(
            item["errorCode"] == "TARGETING_KEY_MISSING",
            needs_key,
            "{item}"
        );
    }
    let r = srv
        .send(
            srv.http
                .post(srv.url("/ofrep/v1/evaluate/flags"))
                .bearer_auth(key)
                .body("{}"),
        )
        .await;
    assert_eq!(
        (r.status, r.json["errorCode"].as_str(), r.json.get("key")),
        (400, Some("INVALID_CONTEXT"), None)
    );

    // 304 for the same context, in any member order; 200 for another user or key.
    let same = json!({"country": "CA", "targetingKey": "u1"});
    let r = srv
        .send(bulk(same.clone()).header("If-None-Match", &etag))
        .await
        .ok(304);
    assert_eq!(r.headers["etag"], etag.as_str());
    assert!(r.text.is_empty());
    srv.send(bulk(same.clone()).header("If-None-Match", "\"x\", *"))
        .await
        .ok(304);
    srv.send(bulk(json!({"targetingKey": "u2", "country": "CA"})).header("If-None-Match", &etag))
        .await
        .ok(200);
    let other_key = ofrep(srv, "/ofrep/v1/evaluate/flags", &fx.client, same.clone())
        .header("If-None-Match", &etag);
    srv.send(other_key).await.ok(200);
    // A change anywhere in the deployment changes the tag.
    srv.update("static-flag", &json!({"description": "changed"}))
        .await
        .ok(200);
    let fresh = srv
        .eventually("a new bulk ETag", || async {
            let r = srv
                .send(bulk(same.clone()).header("If-None-Match", &etag))
                .await;
            (r.status == 200).then_some(r)
        })
        .await;
    assert_ne!(
        fresh.json["metadata"]["version"].as_str(),
        Some(revision.as_str())
    );

    // OFREP and remote evaluation agree (§B10).
    for i in 0..40 {
        let country = ["CA", "US"][i % 2];
        let context = json!({"targetingKey": format!("p{i}"), "country": country, "plan": "pro"});
        let user = json!({"user_id": format!("p{i}"), "country": country, "user_properties": {"plan": "pro"}});
        let vardata = srv.vardata(key, &user).await;
        let items = srv.send(bulk(context)).await.ok(200).json;
        for item in items["flags"].as_array().unwrap() {
            let flag = item["key"].as_str().unwrap();
            assert_eq!(item["variant"], vardata[flag]["key"], "{flag} for p{i}");
        }
    }
}

/// A holdout and a mutual-exclusion group of Vexil's own with a member, and the imported
/// configs of [`imported_groups`], all on the server deployment `prod`.
async fn groups(srv: &Server, fx: &Fixture) {
    let p = &fx.project;
    srv.post(
        &format!("/api/v1/projects/{p}/mutex-groups"),
        &json!({"name": "Surface", "evaluation_mode": "remote",
                "slots": [{"percentage": 50}, {"percentage": 50}]}),
    )
    .await
    .ok(201);
    srv.post(
        &format!("/api/v1/projects/{p}/holdouts"),
        &json!({"name": "Program", "percentage": 30, "evaluation_mode": "remote"}),
    )
    .await
    .ok(201);
    srv.live_flag(
        fx,
        "member",
        json!({"evaluation_mode": "remote",
               "mutex_group": {"group": "mutex-surface", "slot": 1}, "holdouts": ["holdout-program"],
               "all_other_users": {"percentage": 100, "weights": {"on": 1}}}),
    )
    .await;
    srv.post(
        &format!("/api/v1/projects/{p}/import"),
        &json!({"deployment": "prod", "flags": imported_groups()}),
    )
    .await
    .ok(200);
    srv.eventually("the imported configs to be served", || async {
        let c = srv.download(&fx.server, "?eval_mode=remote").await;
        common::keys(&c)
            .contains(&"imp-hidden".to_owned())
            .then_some(())
    })
    .await;
}

/// A config served with `deployed: false` is not found (§B3) and not listed (§B4), whether it
/// is a group (Vexil's or imported) or an imported flag that says so while attached; the
/// members that depend on the groups are evaluated through them.
async fn not_deployed_configs_are_not_found(srv: &Server) {
    let fx = srv.sdk_fixture("Hidden").await;
    groups(srv, &fx).await;
    let key = &fx.server;
    let served = srv.download(key, "?eval_mode=remote").await;
    let hidden = [
        "holdout-program",
        "imp-hidden",
        "imp-holdout",
        "imp-mutex",
        "mutex-surface",
    ];
    for flag in hidden {
        let config = served
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["key"] == flag)
            .unwrap_or_else(|| panic!("{flag} is served: {served}"));
        assert_eq!(config["metadata"]["deployed"], false, "{flag}");
        for context in [json!({"targetingKey": "u1"}), json!({})] {
            let r = one(srv, key, flag, context).await;
            assert_eq!(
                (
                    r.status,
                    r.json["errorCode"].as_str(),
                    r.json["key"].as_str()
                ),
                (404, Some("FLAG_NOT_FOUND"), Some(flag)),
                "{flag}: {}",
                r.text
            );
        }
    }
    let bulk = srv
        .send(ofrep(
            srv,
            "/ofrep/v1/evaluate/flags",
            key,
            json!({"targetingKey": "u1"}),
        ))
        .await
        .ok(200);
    assert_eq!(
        common::keys(&bulk.json["flags"]),
        ["imp-member", "member"],
        "{}",
        bulk.text
    );
    // The members agree with remote evaluation, which evaluates them through their groups.
    let mut seen = BTreeSet::new();
    for i in 0..60 {
        let user = format!("user-{i}");
        let vardata = srv.vardata(key, &json!({ "user_id": user })).await;
        for flag in ["member", "imp-member"] {
            let r = one(srv, key, flag, json!({ "targetingKey": user }))
                .await
                .ok(200);
            assert_eq!(r.json["variant"], vardata[flag]["key"], "{flag} for {user}");
            seen.insert(format!("{flag}={}", r.json["variant"].as_str().unwrap()));
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["imp-member=off", "imp-member=on", "member=off", "member=on"],
        "the groups let some users in and keep others out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    let mut config = fast_config();
    config.rate_limit = Some(3);
    let srv = Server::start_with(Backend::Sqlite, config).await.unwrap();
    let fx = srv.sdk_fixture("Limits").await;
    srv.live_flag(&fx, "f", json!({})).await;
    // Setting up used part of each key's budget (3 a second): a burst of 5 runs out.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = srv
            .send(ofrep(
                &srv,
                "/ofrep/v1/evaluate/flags/f",
                &fx.client,
                json!({}),
            ))
            .await;
        if r.status == 429 {
            let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(retry >= 1);
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(
        statuses.windows(2).all(|w| w[0] <= w[1]),
        "allowed, then limited: {statuses:?}"
    );
    // Every family of endpoints counts against the key.
    for _ in 0..4 {
        srv.send(srv.sdk(Method::GET, "/sdk/v2/flags", &fx.server))
            .await;
    }
    let r = srv
        .send(srv.sdk(Method::GET, "/sdk/v2/vardata", &fx.server))
        .await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (429, Some("Too many requests"))
    );
    assert!(r.headers.contains_key("retry-after"));
    let r = srv.ingest(&fx.server, json!([])).await;
    assert_eq!(
        (
            r.status,
            r.json["code"].as_i64(),
            r.json["eps_threshold"].as_i64()
        ),
        (429, Some(429), Some(3))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ofrep_can_be_turned_off() {
    let mut config = fast_config();
    config.ofrep = false;
    let srv = Server::start_with(Backend::Sqlite, config).await.unwrap();
    let fx = srv.sdk_fixture("Off").await;
    let r = srv
        .send(ofrep(
            &srv,
            "/ofrep/v1/evaluate/flags",
            &fx.server,
            json!({}),
        ))
        .await;
    assert_eq!(r.status, 403);
    let r = srv
        .send(srv.http.get(srv.url("/sdk/ofrep/v1/events?token=x")))
        .await;
    assert_eq!(r.status, 404);
}
