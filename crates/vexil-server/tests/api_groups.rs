//! Mutual-exclusion and holdout groups over HTTP, on both backends: creation and validation,
//! membership through the flag, every rule's refusal (status, code, field, what blocks it),
//! history, the dependencies card, and what deployments serve.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
mod common;

use common::{Resp, Server};
use serde_json::{json, Value};

on_both_backends!(groups_and_their_rules, group_history_and_serving);

const MUTEX: &str = "/api/v1/projects/p/mutex-groups";
const HOLDOUTS: &str = "/api/v1/projects/p/holdouts";

/// Asserts a refusal, the keys it names as blocking, and that its message names each of
/// `named`.
#[track_caller]
fn refused(
    r: &Resp,
    status: u16,
    code: &str,
    field: Option<&str>,
    blocking: &[&str],
    named: &[&str],
) {
    r.err(status, code, field);
    assert_eq!(r.blocking(), blocking, "blocking of {}", r.text);
    for n in named {
        assert!(r.message().contains(n), "the message names {n}: {}", r.text);
    }
}

async fn group_version(srv: &Server, path: &str) -> i64 {
    srv.get(path).await.ok(200).etag()
}

async fn patch_group(srv: &Server, path: &str, body: Value) -> Resp {
    let v = group_version(srv, path).await;
    srv.patch(path, v, &body).await
}

async fn group_action(srv: &Server, path: &str, action: &str) -> Resp {
    let v = group_version(srv, path).await;
    srv.post_if(&format!("{path}/{action}"), v).await
}

async fn groups_and_their_rules(srv: &Server) {
    srv.create_project("P").await;
    srv.create_project("Q").await;

    // Creation: keys from the name with the kind's prefix, slots numbered, defaults.
    let m = srv
        .post(
            MUTEX,
            &json!({"name": "Home page", "slots": [{"percentage": 50}, {"percentage": 30}]}),
        )
        .await
        .ok(201)
        .json;
    assert_eq!(m["key"], "mutex-home-page");
    assert_eq!(m["type"], "mutual_exclusion");
    assert_eq!(m["evaluation_mode"], "local");
    assert_eq!(
        m["slots"],
        json!([{"index": 1, "key": "slot-1", "percentage": 50}, {"index": 2, "key": "slot-2", "percentage": 30}])
    );
    let h = srv
        .post(HOLDOUTS, &json!({"name": "Q4 program", "percentage": 5,
                                 "inclusions": {"ids": ["always"]}, "exclusions": {"ids": ["never"]}}))
        .await
        .ok(201)
        .json;
    assert_eq!(h["key"], "holdout-q4-program");
    srv.post(
        HOLDOUTS,
        &json!({"name": "Remote", "percentage": 10, "evaluation_mode": "remote"}),
    )
    .await
    .ok(201);
    srv.post(MUTEX, &json!({"name": "Remote slots", "evaluation_mode": "remote", "slots": [{"percentage": 100}]}))
        .await
        .ok(201);
    srv.post(
        "/api/v1/projects/q/holdouts",
        &json!({"name": "Elsewhere", "percentage": 5}),
    )
    .await
    .ok(201);

    // Validation names the field.
    for (body, code, field) in [
        (
            json!({"name": "x", "slots": [{"percentage": 60}, {"percentage": 50}]}),
            "over_allocated",
            "slots",
        ),
        (json!({"name": "x", "slots": []}), "slot_count", "slots"),
        (
            json!({"name": "x", "slots": [{"percentage": 0}]}),
            "out_of_range",
            "slots[0].percentage",
        ),
        (
            json!({"name": "x", "key": "nope", "slots": [{"percentage": 10}]}),
            "invalid_key",
            "key",
        ),
    ] {
        srv.post(MUTEX, &body).await.err(422, code, Some(field));
    }
    let too_many: Vec<Value> = (0..21).map(|_| json!({"percentage": 1})).collect();
    srv.post(MUTEX, &json!({"name": "x", "slots": too_many}))
        .await
        .err(422, "slot_count", Some("slots"));
    for (body, code, field) in [
        (
            json!({"name": "x", "percentage": 100}),
            "out_of_range",
            "percentage",
        ),
        (
            json!({"name": "x", "percentage": 5, "inclusions": {"ids": ["a"]}, "exclusions": {"ids": ["a"]}}),
            "included_and_excluded",
            "inclusions.ids[0]",
        ),
        (
            json!({"name": "x", "percentage": 5, "inclusions": {"cohorts": ["ghost"]}}),
            "unknown_cohort",
            "inclusions.cohorts[0]",
        ),
    ] {
        srv.post(HOLDOUTS, &body).await.err(422, code, Some(field));
    }

    // Keys are shared by flags and groups.
    srv.post(
        MUTEX,
        &json!({"name": "Home page", "slots": [{"percentage": 10}]}),
    )
    .await
    .err(409, "group_key_taken", Some("key"));
    srv.flag_in("p", "taken", json!({})).await;
    srv.post(
        HOLDOUTS,
        &json!({"name": "x", "key": "holdout-x", "percentage": 5}),
    )
    .await
    .ok(201);
    srv.post(
        "/api/v1/flags",
        &json!({"project": "p", "name": "x", "key": "holdout-x"}),
    )
    .await
    .err(409, "group_key_taken", Some("key"));

    // Membership through the flag.
    let exp = json!({"type": "experiment", "evaluation_mode": "local",
                     "all_other_users": {"percentage": 100, "weights": {"control": 1, "treatment": 1}}});
    for key in ["exp-a", "exp-b", "exp-c"] {
        srv.flag_in("p", key, exp.clone()).await;
    }
    srv.update(
        "exp-a",
        &json!({"mutex_group": {"group": "mutex-home-page", "slot": 1},
                                 "holdouts": ["holdout-q4-program"]}),
    )
    .await
    .ok(200);
    srv.update("exp-c", &json!({"holdouts": ["holdout-elsewhere"]}))
        .await
        .err(422, "unknown_holdout", Some("holdouts[0]"));
    srv.update("exp-c", &json!({"holdouts": ["mutex-home-page"]}))
        .await
        .err(422, "not_a_holdout", Some("holdouts[0]"));
    srv.update(
        "exp-c",
        &json!({"mutex_group": {"group": "mutex-nope", "slot": 1}}),
    )
    .await
    .err(422, "unknown_mutex_group", Some("mutex_group.group"));
    let r = srv
        .update(
            "exp-c",
            &json!({"mutex_group": {"group": "mutex-home-page", "slot": 3}}),
        )
        .await;
    r.err(422, "unknown_slot", Some("mutex_group.slot"));
    assert!(r.message().contains("1, 2"), "{}", r.text);
    let r = srv
        .update(
            "exp-b",
            &json!({"mutex_group": {"group": "mutex-home-page", "slot": 1}}),
        )
        .await;
    refused(
        &r,
        409,
        "slot_taken",
        Some("mutex_group.slot"),
        &["exp-a"],
        &["exp-a", "shared"],
    );
    srv.update(
        "exp-b",
        &json!({"mutex_group": {"group": "mutex-home-page", "slot": 1, "shared": true}}),
    )
    .await
    .ok(200);
    srv.update(
        "exp-b",
        &json!({"mutex_group": {"group": "mutex-home-page", "slot": 2}}),
    )
    .await
    .ok(200);
    let r = srv
        .update("exp-c", &json!({"holdouts": ["holdout-remote"]}))
        .await;
    refused(
        &r,
        409,
        "incompatible_evaluation_mode",
        Some("holdouts[0]"),
        &["holdout-remote"],
        &["exp-c"],
    );
    let r = srv
        .update(
            "exp-c",
            &json!({"mutex_group": {"group": "mutex-remote-slots", "slot": 1}}),
        )
        .await;
    refused(
        &r,
        409,
        "incompatible_evaluation_mode",
        Some("mutex_group.group"),
        &["mutex-remote-slots"],
        &[],
    );
    srv.update(
        "exp-c",
        &json!({"evaluation_mode": "remote", "holdouts": ["holdout-remote"]}),
    )
    .await
    .ok(200);

    // While a member is active, what decides who is where is fixed.
    srv.action("exp-a", "activate").await.ok(200);
    let home = format!("{MUTEX}/mutex-home-page");
    let r = patch_group(
        srv,
        &home,
        json!({"slots": [{"percentage": 40}, {"percentage": 30}]}),
    )
    .await;
    refused(
        &r,
        409,
        "group_in_use",
        Some("slots"),
        &["exp-a"],
        &["exp-a", "deactivate"],
    );
    let q4 = format!("{HOLDOUTS}/holdout-q4-program");
    refused(
        &patch_group(srv, &q4, json!({"bucketing_salt": "new-salt"})).await,
        409,
        "group_in_use",
        Some("bucketing_salt"),
        &["exp-a"],
        &[],
    );
    // What does not move users is free.
    patch_group(
        srv,
        &q4,
        json!({"name": "Q4", "inclusions": {"ids": ["always", "also"]}}),
    )
    .await
    .ok(200);
    // A slot that still holds a member cannot go, active or not.
    srv.action("exp-a", "deactivate").await.ok(200);
    let r = patch_group(srv, &home, json!({"slots": [{"percentage": 40}]})).await;
    refused(
        &r,
        409,
        "slot_in_use",
        Some("slots"),
        &["exp-b"],
        &["exp-b"],
    );
    patch_group(
        srv,
        &home,
        json!({"slots": [{"percentage": 40}, {"percentage": 40}]}),
    )
    .await
    .ok(200);
    // A local member keeps its group local.
    let r = patch_group(srv, &home, json!({"evaluation_mode": "remote"})).await;
    refused(
        &r,
        409,
        "incompatible_evaluation_mode",
        Some("evaluation_mode"),
        &["exp-a", "exp-b"],
        &[],
    );

    // Archiving: refused while a member is active; an archived group takes no members and
    // blocks its members' activation.
    srv.action("exp-a", "activate").await.ok(200);
    let r = group_action(srv, &q4, "archive").await;
    refused(&r, 409, "has_active_members", None, &["exp-a"], &["exp-a"]);
    srv.action("exp-a", "deactivate").await.ok(200);
    group_action(srv, &q4, "archive").await.ok(200);
    let r = srv.action("exp-a", "activate").await;
    refused(
        &r,
        409,
        "group_archived",
        None,
        &["holdout-q4-program"],
        &["holdout-q4-program"],
    );
    let r = srv
        .update("exp-b", &json!({"holdouts": ["holdout-q4-program"]}))
        .await;
    refused(
        &r,
        409,
        "group_archived",
        Some("holdouts[0]"),
        &["holdout-q4-program"],
        &[],
    );
    patch_group(srv, &q4, json!({"name": "again"}))
        .await
        .err(409, "group_archived", None);
    group_action(srv, &q4, "unarchive").await.ok(200);
    srv.action("exp-a", "activate").await.ok(200);

    // A holdout in a mutual-exclusion slot.
    let r = srv
        .post(
            HOLDOUTS,
            &json!({"name": "In slot", "percentage": 10,
                                 "mutex_group": {"group": "mutex-home-page", "slot": 2}}),
        )
        .await;
    refused(
        &r,
        409,
        "slot_taken",
        Some("mutex_group.slot"),
        &["exp-b"],
        &[],
    );
    srv.update("exp-b", &json!({"mutex_group": null}))
        .await
        .ok(200);
    srv.post(
        HOLDOUTS,
        &json!({"name": "In slot", "percentage": 10,
                               "mutex_group": {"group": "mutex-home-page", "slot": 2}}),
    )
    .await
    .ok(201);
    srv.action("exp-a", "deactivate").await.ok(200);
    let r = group_action(srv, &home, "archive").await;
    refused(
        &r,
        409,
        "has_members",
        None,
        &["holdout-in-slot"],
        &["holdout-in-slot"],
    );

    // The card and the eligible groups.
    srv.action("exp-a", "activate").await.ok(200);
    let card = srv
        .get("/api/v1/flags/exp-a/dependencies")
        .await
        .ok(200)
        .json;
    assert_eq!(card["mutex_group"]["key"], "mutex-home-page");
    assert_eq!(card["mutex_group"]["slot"], 1);
    assert_eq!(card["mutex_group"]["percentage"], 40);
    assert_eq!(card["holdouts"][0]["key"], "holdout-q4-program");
    assert_eq!(card["holdouts"][0]["percentage"], 95);
    assert!(
        (card["max_reach"].as_f64().unwrap() - 38.0).abs() < 1e-9,
        "{card}"
    );
    let eligible = srv
        .get("/api/v1/flags/exp-b/eligible-groups")
        .await
        .ok(200)
        .json;
    let mutexes: Vec<&str> = eligible["mutex_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        mutexes,
        ["mutex-home-page"],
        "local flag: local groups only"
    );
    assert_eq!(
        eligible["mutex_groups"][0]["slots"][0]["members"],
        json!(["exp-a"])
    );
    assert_eq!(
        eligible["mutex_groups"][0]["slots"][1]["members"],
        json!(["holdout-in-slot"])
    );

    // The group's page: members with their slots and state.
    let view = srv.get(&home).await.ok(200).json;
    assert_eq!(view["locked"], true);
    let members: Vec<(String, Value, bool)> = view["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["key"].as_str().unwrap().to_string(),
                m["slot"].clone(),
                m["active"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        members,
        [
            ("exp-a".to_string(), json!(1), true),
            ("holdout-in-slot".to_string(), json!(2), false)
        ]
    );
    let listed = srv.get(MUTEX).await.ok(200).json;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    srv.get(&format!("{HOLDOUTS}/mutex-home-page"))
        .await
        .err(404, "not_found", None);

    // Readers read, writers write.
    let reader = srv
        .post("/api/v1/keys", &json!({"name": "r", "role": "reader"}))
        .await
        .ok(201)
        .json;
    let token = reader["secret"].as_str().unwrap();
    let r = srv
        .send(
            srv.http
                .post(srv.url(MUTEX))
                .bearer_auth(token)
                .json(&json!({"name": "r", "slots": [{"percentage": 5}]})),
        )
        .await;
    r.err(403, "forbidden", None);
    let r = srv
        .send(srv.http.get(srv.url(MUTEX)).bearer_auth(token))
        .await;
    r.ok(200);
    // Writes need If-Match.
    srv.patch(&home, None, &json!({"name": "x"}))
        .await
        .err(428, "version_required", None);
}

async fn group_history_and_serving(srv: &Server) {
    srv.create_project("P").await;
    let prod = srv.create_deployment("p", "Prod", "server").await;
    let key = prod["api_key"].as_str().unwrap().to_string();
    srv.post(
        MUTEX,
        &json!({"name": "Surface", "slots": [{"percentage": 50}, {"percentage": 50}]}),
    )
    .await
    .ok(201);
    let path = format!("{MUTEX}/mutex-surface");
    patch_group(srv, &path, json!({"description": "two tests"}))
        .await
        .ok(200);
    patch_group(
        srv,
        &path,
        json!({"slots": [{"percentage": 30}, {"percentage": 30}]}),
    )
    .await
    .ok(200);
    let versions = srv.get(&format!("{path}/versions")).await.ok(200).json;
    let actions: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["update", "update", "create"]);
    assert!(
        versions[0]["summary"].as_str().unwrap().contains("slots"),
        "{versions}"
    );
    let compare = srv
        .get(&format!("{path}/versions/compare?from=1&to=3"))
        .await
        .ok(200)
        .json;
    assert!(!compare["changes"].as_array().unwrap().is_empty());
    let one = srv.get(&format!("{path}/versions/1")).await.ok(200).json;
    assert_eq!(one["group"]["slots"][0]["percentage"], 50);
    let v = group_version(srv, &path).await;
    let restored = srv
        .post_if(&format!("{path}/versions/1/restore"), v)
        .await
        .ok(200)
        .json;
    assert_eq!(restored["version"], 4);
    assert_eq!(restored["slots"][0]["percentage"], 50);
    assert_eq!(restored["description"], "");

    // Served: the member is deployed, the group comes with it, not deployed.
    srv.flag_in("p", "exp", json!({"type": "experiment", "evaluation_mode": "local",
                                   "deployments": ["prod"],
                                   "mutex_group": {"group": "mutex-surface", "slot": 2},
                                   "all_other_users": {"percentage": 100, "weights": {"control": 1, "treatment": 1}}}))
        .await;
    srv.action("exp", "activate").await.ok(200);
    let mut served = Value::Null;
    for _ in 0..200 {
        let r = srv
            .send(srv.sdk(reqwest::Method::GET, "/sdk/v2/flags", &key))
            .await;
        served = r.json;
        if served.as_array().is_some_and(|a| a.len() == 2) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let keys: Vec<&str> = served
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["mutex-surface", "exp"], "{served}");
    assert_eq!(served[0]["metadata"]["flagType"], "mutual-exclusion-group");
    assert_eq!(served[0]["metadata"]["deployed"], false);
    assert_eq!(
        served[0]["variants"]["slot-2"]["payload"],
        json!({"flagIds": ["exp"]})
    );
    assert_eq!(served[1]["dependencies"], json!(["mutex-surface"]));
}
