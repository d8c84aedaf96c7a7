//! "Test a user" (QA) evaluates exactly what `/sdk/v2/vardata` serves, on both backends: the
//! same enrichment (cohorts computed by the server, replacing what the client sent when the
//! user has a `user_id`; group cohorts; stored `[Experiment]` properties, set by exposure
//! events and by tracked remote evaluations, the client's own values winning), for a flag
//! that targets cohorts, group cohorts and another flag's `[Experiment]` property.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
mod common;

use common::sdk::{b64, Fixture};
use common::Server;
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(qa_and_vardata_agree);

/// `beta` holds u1..u10; `big-orgs` (type `org`) holds acme. `other` serves half the users;
/// `target` gives `beta` to the cohort, `org` to big orgs and `saw` to users whose
/// `[Experiment] other` is `on`.
async fn setup(srv: &Server, fx: &Fixture) {
    let p = &fx.project;
    let members: String = (1..=10).map(|i| format!("u{i}\n")).collect();
    srv.put_raw(
        &format!("/api/v1/projects/{p}/cohorts/beta"),
        None,
        "text/csv",
        members,
    )
    .await
    .ok(200);
    srv.put_raw(
        &format!("/api/v1/projects/{p}/cohorts/big-orgs?group_type=org"),
        None,
        "text/csv",
        "acme\n",
    )
    .await
    .ok(200);
    srv.live_flag(
        fx,
        "other",
        json!({"evaluation_mode": "remote", "bucketing_salt": "othersal",
               "all_other_users": {"percentage": 50, "weights": {"on": 1}}}),
    )
    .await;
    let all = |variant: &str| json!({"percentage": 100, "weights": {variant: 1}});
    let segment = |name: &str, condition: Value, variant: &str| {
        let mut s = all(variant);
        s["name"] = json!(name);
        s["conditions"] = json!([condition]);
        s
    };
    srv.live_flag(
        fx,
        "target",
        json!({"evaluation_mode": "remote",
               "variants": [{"key": "beta"}, {"key": "org"}, {"key": "saw"}],
               "segments": [
                   segment("Beta", json!({"type": "cohort", "op": "set contains any", "values": ["beta"]}), "beta"),
                   segment("Big org", json!({"type": "group_cohort", "group_type": "org",
                                             "op": "set contains any", "values": ["big-orgs"]}), "org"),
                   segment("Saw other", json!({"type": "user_property", "property": "[Experiment] other",
                                               "op": "is", "values": ["on"]}), "saw")
               ],
               "all_other_users": {"percentage": 0, "weights": {"beta": 1}}}),
    )
    .await;
}

/// QA's answer, and whether it agrees with remote evaluation for `target`.
async fn both(srv: &Server, key: &str, user: &Value) -> (Value, Option<String>) {
    let qa = srv.evaluate("target", user.clone()).await;
    let served = srv.variant(key, user, "target").await;
    (qa, served)
}

async fn qa_and_vardata_agree(srv: &Server) {
    let fx = srv.sdk_fixture("Agree").await;
    setup(srv, &fx).await;
    let key = &fx.server;

    // Stored properties: exposure events (for a user and for a device), and tracked remote
    // evaluations of u20..u29, whose `[Experiment] other` is what `other` gave them.
    let exposure = |who: Value, insert: &str| {
        let mut e = json!({"event_type": "$exposure", "insert_id": insert,
                           "event_properties": {"flag_key": "other", "variant": "on"}});
        e.as_object_mut()
            .unwrap()
            .extend(who.as_object().unwrap().clone());
        e
    };
    srv.ingest(
        key,
        json!([
            exposure(json!({"user_id": "u12"}), "e1"),
            exposure(json!({"device_id": "d9"}), "e2")
        ]),
    )
    .await
    .ok(200);
    let mut tracked = Vec::new();
    for i in 20..30 {
        let user = json!({"user_id": format!("u{i}")});
        let request = srv
            .sdk(Method::GET, "/sdk/v2/vardata", key)
            .header("X-Amp-Exp-User", b64(&user));
        let got = srv.send(request).await.ok(200).json;
        let other = got["other"]["key"].as_str().unwrap().to_owned();
        tracked.push((user, (other == "on").then_some(other)));
    }
    assert!(
        tracked.iter().any(|(_, p)| p.is_some()) && tracked.iter().any(|(_, p)| p.is_none()),
        "some tracked users got other, some did not: {tracked:?}"
    );

    // (user, cohort_ids as evaluated, [Experiment] other as evaluated, target's variant)
    let mut cases: Vec<(Value, Value, Option<String>, &str)> = vec![
        (json!({"user_id": "u1"}), json!(["beta"]), None, "beta"),
        (
            json!({"user_id": "u2", "cohort_ids": ["nope"]}),
            json!(["beta"]),
            None,
            "beta",
        ),
        (
            json!({"user_id": "u15", "cohort_ids": ["beta"]}),
            json!([]),
            None,
            "off",
        ),
        (
            json!({"device_id": "d1", "cohort_ids": ["beta"]}),
            json!(["beta"]),
            None,
            "beta",
        ),
        (
            json!({"user_id": "u40", "groups": {"org": ["acme"]}}),
            json!([]),
            None,
            "org",
        ),
        (
            json!({"user_id": "u12"}),
            json!([]),
            Some("on".into()),
            "saw",
        ),
        (
            json!({"user_id": "u3", "device_id": "d9"}),
            json!(["beta"]),
            Some("on".into()),
            "beta",
        ),
        (
            json!({"user_id": "u41", "device_id": "d9"}),
            json!([]),
            Some("on".into()),
            "saw",
        ),
        (
            json!({"user_id": "u12", "user_properties": {"[Experiment] other": "off"}}),
            json!([]),
            Some("off".into()),
            "off",
        ),
    ];
    for (user, property) in tracked {
        let variant = if property.is_some() { "saw" } else { "off" };
        cases.push((user, json!([]), property, variant));
    }
    for (user, cohorts, property, variant) in cases {
        // Tracked records reach the store and the server's memory asynchronously.
        let (qa, served) = srv
            .eventually(&format!("QA and serving to agree for {user}"), || async {
                let (qa, served) = both(srv, key, &user).await;
                (qa["variant"] == variant && served.as_deref() == Some(variant))
                    .then_some((qa, served))
            })
            .await;
        assert_eq!(qa["variant"].as_str(), served.as_deref(), "{user}");
        let evaluated = &qa["user"];
        assert_eq!(evaluated["cohort_ids"], cohorts, "{user}: {qa}");
        assert_eq!(
            evaluated["user_properties"]["[Experiment] other"].as_str(),
            property.as_deref(),
            "{user}: {qa}"
        );
        if user["groups"].is_object() {
            assert_eq!(
                evaluated["group_cohort_ids"],
                json!({"org": {"acme": ["big-orgs"]}})
            );
        }
    }
}
