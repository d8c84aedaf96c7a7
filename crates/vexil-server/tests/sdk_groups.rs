//! Mutual-exclusion and holdout groups on the remote-evaluation side, on both backends, for
//! Vexil's own groups and imported ones alike: a group is evaluated for its members but its
//! result is never returned (v2, v1, with flag keys; prerequisite ancestors still are); a
//! tracked evaluation records a holdout like a flag (a `remote_assignment` and its
//! `[Experiment]` property, which targeting then reads) and a mutual-exclusion group not at
//! all; exposure events for a mutual-exclusion group set no property either. QA ("test a
//! user") keeps the groups' results and says in its explanation why a group kept a member
//! from a user.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
mod common;

use std::collections::BTreeMap;

use common::sdk::{b64, imported_groups, Fixture};
use common::{keys, Server};
use reqwest::Method;
use serde_json::{json, Value};
use vexil_store::{ExposureQuery, Tx};

on_both_backends!(
    group_results_are_not_returned,
    groups_in_tracking,
    qa_explains_group_decisions
);

/// The group configs: Vexil's own and imported.
const GROUPS: [&str; 4] = [
    "holdout-program",
    "imp-holdout",
    "imp-mutex",
    "mutex-surface",
];

/// A holdout and a mutual-exclusion group with a member; a prerequisite served only as an
/// ancestor; two flags that target the groups' `[Experiment]` properties; the imported
/// configs. Returns the configs the server deployment serves.
async fn setup(srv: &Server, fx: &Fixture) -> Value {
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
    let remote = |mut extra: Value| {
        extra["evaluation_mode"] = json!("remote");
        extra
    };
    srv.live_flag(
        fx,
        "member",
        remote(json!({"mutex_group": {"group": "mutex-surface", "slot": 1},
                      "holdouts": ["holdout-program"],
                      "all_other_users": {"percentage": 100, "weights": {"on": 1}}})),
    )
    .await;
    srv.create_flag(json!({"project": p, "name": "parent", "key": "parent",
                           "all_other_users": {"percentage": 100, "weights": {"on": 1}}}))
        .await;
    srv.action("parent", "activate").await.ok(200);
    srv.live_flag(
        fx,
        "child",
        remote(
            json!({"prerequisites": [{"flag": "parent", "variants": ["on"]}],
                      "all_other_users": {"percentage": 100, "weights": {"on": 1}}}),
        ),
    )
    .await;
    for (key, group, variant) in [
        ("saw-holdout", "holdout-program", "holdout"),
        ("saw-mutex", "mutex-surface", "slot-1"),
    ] {
        let condition = json!({"type": "user_property", "property": format!("[Experiment] {group}"),
                               "op": "is", "values": [variant]});
        srv.live_flag(
            fx,
            key,
            remote(
                json!({"segments": [{"name": "Saw it", "conditions": [condition],
                                        "percentage": 100, "weights": {"on": 1}}],
                          "all_other_users": {"percentage": 0, "weights": {"on": 1}}}),
            ),
        )
        .await;
    }
    srv.post(
        &format!("/api/v1/projects/{p}/import"),
        &json!({"deployment": "prod", "flags": imported_groups()}),
    )
    .await
    .ok(200);
    srv.eventually("the imported configs to be served", || async {
        let c = srv.download(&fx.server, "?eval_mode=remote").await;
        keys(&c).contains(&"imp-hidden".to_owned()).then_some(c)
    })
    .await
}

/// What the engine gives on `configs` for `user` (as enriched: no cohort is referenced).
fn engine(configs: &Value, user: &Value, keys: &[&str]) -> Value {
    let mut user = user.clone();
    if user.get("user_id").is_some() {
        user["cohort_ids"] = json!([]);
    }
    let set = vexil_eval::FlagSet::from_json(&configs.to_string()).unwrap();
    let context = vexil_eval::Context::from_sdk_user_json(&user.to_string()).unwrap();
    let results = vexil_eval::evaluate(&set, &context, keys).unwrap();
    serde_json::to_value(&results).unwrap()
}

fn without_groups(mut results: Value) -> Value {
    for g in GROUPS {
        results.as_object_mut().unwrap().remove(g);
    }
    results
}

fn sorted_keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

/// A remote evaluation without tracking: `GET` with the user in `X-Amp-Exp-User`, except
/// `/v1/vardata`, which reads it from a `POST` body.
async fn remote(
    srv: &Server,
    path: &str,
    key: &str,
    user: &Value,
    flags: Option<&[&str]>,
) -> Value {
    let request = if path == "/v1/vardata" {
        srv.sdk(Method::POST, path, key).json(user)
    } else {
        srv.sdk(Method::GET, path, key)
            .header("X-Amp-Exp-User", b64(user))
    };
    let mut request = request.header("X-Amp-Exp-Track", "no-track");
    if let Some(flags) = flags {
        request = request.header("X-Amp-Exp-Flag-Keys", b64(&json!(flags)));
    }
    srv.send(request).await.ok(200).json
}

async fn group_results_are_not_returned(srv: &Server) {
    let fx = srv.sdk_fixture("Groups").await;
    let configs = setup(srv, &fx).await;
    let key = &fx.server;
    let served = keys(&configs);
    for g in GROUPS {
        assert!(served.contains(&g.to_owned()), "{g} is served: {served:?}");
    }
    let mut members = std::collections::BTreeSet::new();
    for i in 0..40 {
        let user = json!({"user_id": format!("user-{i}"), "device_id": format!("d-{i}")});
        let expected = without_groups(engine(&configs, &user, &[]));
        let v2 = remote(srv, "/sdk/v2/vardata", key, &user, None).await;
        assert_eq!(v2, expected, "v2 for {user}");
        assert!(
            v2.get("parent").is_some() && v2.get("imp-hidden").is_some(),
            "deployed: false ancestors and flags stay: {v2}"
        );
        for path in ["/sdk/vardata", "/v1/vardata"] {
            let v1 = remote(srv, path, key, &user, None).await;
            let mut want: Vec<String> = expected
                .as_object()
                .unwrap()
                .iter()
                .filter(|(_, r)| {
                    r["metadata"]["default"] != true && r["metadata"]["deployed"] != false
                })
                .map(|(k, _)| k.clone())
                .collect();
            want.sort();
            assert_eq!(sorted_keys(&v1), want, "{path} for {user}");
        }
        for (asked, want) in [
            (&["holdout-program", "imp-mutex"][..], &[][..]),
            (&["member"], &["member"]),
            (&["imp-member", "mutex-surface"], &["imp-member"]),
            (&["child"], &["child", "parent"]),
        ] {
            let got = remote(srv, "/sdk/v2/vardata", key, &user, Some(asked)).await;
            assert_eq!(sorted_keys(&got), want, "flag keys {asked:?} for {user}");
        }
        for flag in ["member", "imp-member"] {
            members.insert(format!("{flag}={}", v2[flag]["key"].as_str().unwrap()));
        }
    }
    assert_eq!(
        members.into_iter().collect::<Vec<_>>(),
        ["imp-member=off", "imp-member=on", "member=off", "member=on"],
        "the groups let some users in and keep others out"
    );
}

/// Reads the store on a blocking thread (the PostgreSQL driver must not run on an async one).
async fn read<T: Send + 'static>(
    srv: &Server,
    f: impl FnOnce(&mut dyn Tx) -> T + Send + 'static,
) -> T {
    let store = srv.store();
    tokio::task::spawn_blocking(move || {
        vexil_store::read(&*store, |tx| Ok::<_, vexil_store::StoreError>(f(tx))).unwrap()
    })
    .await
    .unwrap()
}

/// `remote_assignment` records of `flag`: count by variant (`-` for none).
async fn assignments(srv: &Server, project: &str, flag: &str) -> BTreeMap<String, i64> {
    let query = ExposureQuery {
        project: project.to_owned(),
        flag_key: flag.to_owned(),
        kinds: vec!["remote_assignment".to_owned()],
        from: 0,
        to: i64::MAX,
        bucket: i64::MAX,
    };
    let counts = read(srv, move |tx| tx.exposure_counts(&query).unwrap()).await;
    counts
        .into_iter()
        .map(|c| (c.variant.unwrap_or_else(|| "-".to_owned()), c.count))
        .collect()
}

/// The stored `[Experiment] <flag>` properties: user id -> variant.
async fn properties(srv: &Server, project: &str, flag: &str) -> BTreeMap<String, String> {
    let (project, flag) = (project.to_owned(), flag.to_owned());
    let rows = read(srv, move |tx| {
        tx.flag_experiment_properties(&project, &flag).unwrap()
    })
    .await;
    rows.into_iter()
        .map(|r| (r.id, r.variant.unwrap_or_default()))
        .collect()
}

async fn groups_in_tracking(srv: &Server) {
    let fx = srv.sdk_fixture("Tracked").await;
    let configs = setup(srv, &fx).await;
    let key = &fx.server;
    // Tracked evaluations (X-Amp-Exp-Track defaults to track).
    let mut want: BTreeMap<&str, BTreeMap<String, i64>> = BTreeMap::new();
    let mut held_out = Vec::new();
    for i in 0..30 {
        let id = format!("user-{i}");
        let user = json!({ "user_id": id });
        let request = srv
            .sdk(Method::GET, "/sdk/v2/vardata", key)
            .header("X-Amp-Exp-User", b64(&user));
        let got = srv.send(request).await.ok(200).json;
        for g in GROUPS {
            assert!(got.get(g).is_none(), "{g} is not returned: {got}");
        }
        let results = engine(&configs, &user, &[]);
        for flag in ["holdout-program", "imp-holdout"] {
            let variant = results[flag]["key"].as_str().unwrap().to_owned();
            *want.entry(flag).or_default().entry(variant).or_default() += 1;
        }
        if results["holdout-program"]["key"] == "holdout" {
            held_out.push(id);
        }
    }
    assert!(!held_out.is_empty() && held_out.len() < 30, "{held_out:?}");
    for (flag, counts) in &want {
        let project = fx.project.clone();
        srv.eventually(&format!("the assignments of {flag}"), || async {
            (assignments(srv, &project, flag).await == *counts).then_some(())
        })
        .await;
        let props = properties(srv, &fx.project, flag).await;
        assert_eq!(props.len(), 30, "{flag}: a property per user: {props:?}");
    }
    for flag in ["mutex-surface", "imp-mutex"] {
        assert_eq!(
            assignments(srv, &fx.project, flag).await,
            BTreeMap::new(),
            "{flag}"
        );
        assert_eq!(
            properties(srv, &fx.project, flag).await,
            BTreeMap::new(),
            "{flag}"
        );
    }
    // Ordinary flags are recorded as before.
    assert_eq!(
        assignments(srv, &fx.project, "member")
            .await
            .values()
            .sum::<i64>(),
        30
    );
    // The holdout's property reaches targeting; the mutual-exclusion group has none to read.
    for id in &held_out {
        let user = json!({ "user_id": id });
        srv.eventually(
            "[Experiment] holdout-program to reach targeting",
            || async {
                (srv.variant(key, &user, "saw-holdout").await.as_deref() == Some("on"))
                    .then_some(())
            },
        )
        .await;
    }
    for i in 0..30 {
        let user = json!({"user_id": format!("user-{i}")});
        assert_eq!(
            srv.variant(key, &user, "saw-mutex").await.as_deref(),
            Some("off")
        );
    }

    // Exposure events: a holdout's sets its property, a mutual-exclusion group's does not.
    let exposure = |flag: &str, variant: &str, insert: &str| {
        json!({"event_type": "[Experiment] Exposure", "user_id": "x1", "insert_id": insert,
               "event_properties": {"[Experiment] Flag Key": flag, "[Experiment] Variant": variant}})
    };
    srv.ingest(
        key,
        json!([
            exposure("mutex-surface", "slot-1", "e1"),
            exposure("imp-mutex", "slot-1", "e2"),
            exposure("holdout-program", "holdout", "e3")
        ]),
    )
    .await
    .ok(200);
    assert_eq!(
        properties(srv, &fx.project, "holdout-program")
            .await
            .get("x1")
            .map(String::as_str),
        Some("holdout")
    );
    for flag in ["mutex-surface", "imp-mutex"] {
        assert_eq!(
            properties(srv, &fx.project, flag).await,
            BTreeMap::new(),
            "{flag}"
        );
    }
    assert_eq!(
        srv.variant(key, &json!({"user_id": "x1"}), "saw-mutex")
            .await
            .as_deref(),
        Some("off")
    );
    assert_eq!(
        srv.variant(key, &json!({"user_id": "x1"}), "saw-holdout")
            .await
            .as_deref(),
        Some("on")
    );
}

/// The lines QA adds under a member's `flag-dependencies` gate, for a member of `holdout` and
/// of slot 1 of `mutex`, given what the groups gave.
fn group_lines(holdout: &str, held: &str, mutex: &str, slot: &str) -> Vec<String> {
    let mut lines = Vec::new();
    if held != "on" {
        lines.push(format!("held out by `{holdout}` (the holdout gave {held})"));
    }
    if slot != "slot-1" {
        lines.push(format!(
            "{slot} of `{mutex}`: not this experiment's slot (slot-1)"
        ));
    }
    lines
}

async fn qa_explains_group_decisions(srv: &Server) {
    let fx = srv.sdk_fixture("Qa groups").await;
    setup(srv, &fx).await;
    let key = &fx.server;
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..60 {
        let user = json!({"user_id": format!("user-{i}")});
        let vardata = srv.vardata(key, &user).await;
        for (member, holdout, mutex) in [
            ("member", "holdout-program", "mutex-surface"),
            ("imp-member", "imp-holdout", "imp-mutex"),
        ] {
            let qa = srv.evaluate(member, user.clone()).await;
            assert_eq!(qa["variant"], vardata[member]["key"], "{member} for {user}");
            let held = qa["results"][holdout]["key"].as_str().unwrap();
            let slot = qa["results"][mutex]["key"].as_str().unwrap();
            let text = qa["explanation"].as_str().unwrap();
            let want = group_lines(holdout, held, mutex, slot);
            let got: Vec<String> = text
                .lines()
                .filter(|l| l.contains("held out by") || l.contains("not this experiment's slot"))
                .map(|l| l.trim().to_owned())
                .collect();
            assert_eq!(got, want, "{member} for {user}:\n{text}");
            assert_eq!(
                qa["variant"] == "off",
                !want.is_empty(),
                "off exactly when a group says so: {text}"
            );
            if !want.is_empty() {
                // The reasons follow the gate's own line.
                let gate = text
                    .lines()
                    .position(|l| l.contains("\"flag-dependencies\""))
                    .unwrap();
                assert!(
                    text.lines().nth(gate + 1).unwrap().starts_with("    "),
                    "{text}"
                );
            }
            seen.insert(format!("{member}: {} line(s)", want.len()));
        }
    }
    assert_eq!(
        seen.len(),
        6,
        "let in, kept out by one group, by both: {seen:?}"
    );
    // A prerequisite that blocks is named too.
    srv.update(
        "parent",
        &json!({"all_other_users": {"percentage": 0, "weights": {"on": 1}}}),
    )
    .await
    .ok(200);
    let qa = srv.evaluate("child", json!({"user_id": "u1"})).await;
    assert_eq!(qa["variant"], "off");
    assert!(
        qa["explanation"]
            .as_str()
            .unwrap()
            .contains("    prerequisite `parent` gave off, not on\n"),
        "{qa}"
    );
}
