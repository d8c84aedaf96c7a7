//! OFREP end to end (`sdk-protocol.md` Part B): the reason of every kind of result, errors and
//! their status codes, authentication in its three forms, bulk evaluation with partial failures,
//! the ETag over revision and canonical context with its 304, agreement with
//! `/sdk/v2/vardata`, and the configs that say `deployed: false` (groups, imported ones), which
//! OFREP does not know even when the deployment carries them.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
mod common;

use common::sdk::{imported_groups, Fixture};
use common::{fast_config, Backend, Resp, Server};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(
    reasons_values_and_errors,
    bulk_etags_and_agreement,
    not_deployed_configs_are_not_found
);

async fn flags(srv: &Server, fx: &Fixture) {
    let all_on = json!({"percentage": 100, "weights": {"on": 1}});
    let canada = json!([{"name": "Canada", "conditions": [{"type": "user_field", "field": "country", "op": "is", "values": ["CA"]}],
                         "percentage": 100, "weights": {"on": 1}}]);
    srv.live_flag(fx, "static-flag", json!({"all_other_users": all_on}))
        .await;
    srv.live_flag(
        fx,
        "split-flag",
        json!({"variants": [{"key": "a"}, {"key": "b"}],
        "all_other_users": {"percentage": 50, "weights": {"a": 1, "b": 1}}}),
    )
    .await;
    srv.live_flag(
        fx,
        "targeted",
        json!({"segments": canada, "all_other_users": {"percentage": 0, "weights": {"on": 1}}}),
    )
    .await;
    srv.live_flag(
        fx,
        "fallback-value",
        json!({"segments": canada, "all_other_users": all_on}),
    )
    .await;
    srv.live_flag(
        fx,
        "included",
        json!({"inclusions": {"on": {"ids": ["vip"]}},
        "all_other_users": {"percentage": 0, "weights": {"on": 1}}}),
    )
    .await;
    srv.live_flag(
        fx,
        "device-split",
        json!({"bucketing_unit": "device_id",
        "all_other_users": {"percentage": 50, "weights": {"on": 1}}}),
    )
    .await;
    srv.live_flag(
        fx,
        "json-payload",
        json!({"type": "experiment",
        "variants": [{"key": "treatment", "value": "t", "payload": {"a": 1, "list": [true]}}],
        "all_other_users": {"percentage": 100, "weights": {"treatment": 1}}}),
    )
    .await;
    srv.create_flag(
        json!({"project": fx.project, "name": "disabled", "key": "disabled",
        "deployments": ["prod"], "all_other_users": all_on}),
    )
    .await;
    // Not attached: an ancestor of `child`, and a flag of nobody's.
    srv.create_flag(json!({"project": fx.project, "name": "parent", "key": "parent", "all_other_users": all_on})).await;
    srv.action("parent", "activate").await.ok(200);
    srv.create_flag(json!({"project": fx.project, "name": "loner", "key": "loner"}))
        .await;
    srv.live_flag(fx, "child", json!({"prerequisites": [{"flag": "parent", "variants": ["on"]}], "all_other_users": all_on})).await;
    srv.eventually("the inactive flag to be served", || async {
        let c = srv.download(&fx.server, "?eval_mode=remote").await;
        common::keys(&c)
            .contains(&"disabled".to_owned())
            .then_some(())
    })
    .await;
}

/// (flag, context, status, reason or error code, variant, value)
type Case = (
    &'static str,
    Value,
    u16,
    &'static str,
    Option<&'static str>,
    Option<Value>,
);

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

async fn reasons_values_and_errors(srv: &Server) {
    let fx = srv.sdk_fixture("Ofrep").await;
    flags(srv, &fx).await;
    let key = &fx.server;
    let cases: &[Case] = &[
        (
            "static-flag",
            json!({"targetingKey": "u1"}),
            200,
            "STATIC",
            Some("on"),
            Some(json!("on")),
        ),
        (
            "targeted",
            json!({"targetingKey": "u1", "country": "CA"}),
            200,
            "TARGETING_MATCH",
            Some("on"),
            Some(json!("on")),
        ),
        (
            "targeted",
            json!({"targetingKey": "u1", "country": "US"}),
            200,
            "DEFAULT",
            Some("off"),
            None,
        ),
        (
            "fallback-value",
            json!({"targetingKey": "u1", "country": "US"}),
            200,
            "DEFAULT",
            Some("on"),
            Some(json!("on")),
        ),
        (
            "fallback-value",
            json!({"country": "CA"}),
            200,
            "TARGETING_MATCH",
            Some("on"),
            Some(json!("on")),
        ),
        (
            "included",
            json!({"targetingKey": "vip"}),
            200,
            "TARGETING_MATCH",
            Some("on"),
            Some(json!("on")),
        ),
        (
            "included",
            json!({"targetingKey": "other"}),
            200,
            "DEFAULT",
            Some("off"),
            None,
        ),
        (
            "disabled",
            json!({"targetingKey": "u1"}),
            200,
            "DISABLED",
            Some("off"),
            None,
        ),
        (
            "device-split",
            json!({"targetingKey": "u1"}),
            200,
            "DEFAULT",
            Some("off"),
            None,
        ),
        // Past the prerequisite gate, All Other Users is not the only segment (§B5).
        (
            "child",
            json!({"targetingKey": "u1"}),
            200,
            "DEFAULT",
            Some("on"),
            Some(json!("on")),
        ),
        (
            "split-flag",
            json!({}),
            400,
            "TARGETING_KEY_MISSING",
            None,
            None,
        ),
        (
            "split-flag",
            json!({"targetingKey": ""}),
            400,
            "TARGETING_KEY_MISSING",
            None,
            None,
        ),
        (
            "parent",
            json!({"targetingKey": "u1"}),
            404,
            "FLAG_NOT_FOUND",
            None,
            None,
        ),
        (
            "loner",
            json!({"targetingKey": "u1"}),
            404,
            "FLAG_NOT_FOUND",
            None,
            None,
        ),
        (
            "ghost",
            json!({"targetingKey": "u1"}),
            404,
            "FLAG_NOT_FOUND",
            None,
            None,
        ),
    ];
    for (flag, context, status, reason, variant, value) in cases {
        let r = one(srv, key, flag, context.clone()).await;
        let what = format!("{flag} {context}: {}", r.text);
        assert_eq!(r.status, *status, "{what}");
        assert_eq!(r.json["key"], *flag, "{what}");
        assert_eq!(r.headers["cache-control"], "private, no-cache", "{what}");
        assert_eq!(r.headers["vary"], "Authorization, X-API-Key", "{what}");
        if *status == 200 {
            assert_eq!(r.json["reason"], *reason, "{what}");
            assert_eq!(r.json["variant"].as_str(), *variant, "{what}");
            assert_eq!(r.json.get("value"), value.as_ref(), "{what}");
            let m = r.json["metadata"].as_object().unwrap();
            assert!(
                m.values().all(|v| !v.is_object() && !v.is_array()),
                "{what}"
            );
            assert_eq!(m["deployed"], true, "{what}");
        } else {
            assert_eq!(r.json["errorCode"], *reason, "{what}");
            assert!(
                r.json["errorDetails"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{what}"
            );
        }
    }
    // A split: SPLIT with the variant's value for users who are in, DEFAULT for the others.
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..60 {
        let r = one(
            srv,
            key,
            "split-flag",
            json!({"targetingKey": format!("user-{i}")}),
        )
        .await
        .ok(200);
        let reason = r.json["reason"].as_str().unwrap().to_owned();
        match reason.as_str() {
            "SPLIT" => assert_eq!(r.json["value"], r.json["variant"]),
            "DEFAULT" => assert!(r.json.get("value").is_none() && r.json["variant"] == "off"),
            other => panic!("unexpected reason {other}"),
        }
        seen.insert(format!("{reason}/{}", r.json["variant"]));
    }
    assert_eq!(
        seen.len(),
        3,
        "both variants and the rollout's off: {seen:?}"
    );
    // Payloads travel as JSON text in metadata, with the experiment's metadata.
    let r = one(srv, key, "json-payload", json!({"targetingKey": "u1"}))
        .await
        .ok(200);
    assert_eq!(r.json["metadata"]["payload"], r#"{"a":1,"list":[true]}"#);
    assert_eq!(r.json["metadata"]["flagType"], "experiment");
    assert_eq!(r.json["metadata"]["experimentKey"], "json-payload");
    assert_eq!(
        (r.json["reason"].as_str(), r.json["value"].as_str()),
        (Some("STATIC"), Some("t"))
    );

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
    flags(srv, &fx).await;
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
    let mut seen = std::collections::BTreeSet::new();
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
