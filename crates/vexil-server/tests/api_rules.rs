//! The prerequisite rules of seed 003 over HTTP: each refusal with its status, code, field,
//! the flags that block it and a message naming them; and the dependencies card and the
//! eligible prerequisites.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
mod common;

use common::{keys, strings, Resp, Server};
use serde_json::{json, Value};

on_both_backends!(seed_003_prerequisite_rules);

/// Asserts a refusal and that its message names every flag in `named`.
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
    for flag in named {
        assert!(
            r.message().contains(flag),
            "the message names {flag}: {}",
            r.text
        );
    }
}

fn prerequisite(flag: &str, variants: &[&str]) -> Value {
    json!({"prerequisites": [{"flag": flag, "variants": variants}]})
}

/// The keys of a list of flag summaries, sorted.
fn sorted_keys(v: &Value) -> Vec<String> {
    let mut k = keys(v);
    k.sort();
    k
}

async fn seed_003_prerequisite_rules(srv: &Server) {
    srv.create_project("Rules").await;
    srv.create_project("Other").await;
    let local = json!({"evaluation_mode": "local"});
    let remote = json!({"evaluation_mode": "remote"});
    srv.flag_in(
        "rules",
        "infra",
        json!({
            "evaluation_mode": "local",
            "variants": [{"key": "on"}, {"key": "beta"}],
            "segments": [{"name": "Premium", "percentage": 100, "weights": {"on": 1, "beta": 3},
                          "conditions": [{"type": "user_property", "property": "premium", "op": "is", "values": ["true"]}]}],
            "all_other_users": {"percentage": 10, "weights": {"on": 1, "beta": 1}},
            "inclusions": {"beta": {"ids": ["qa-1"]}},
        }),
    )
    .await;
    for (key, mode) in [
        ("remote-flag", &remote),
        ("local-flag", &local),
        ("cyc-a", &remote),
        ("cyc-b", &remote),
        ("tri-x", &remote),
        ("tri-y", &remote),
        ("tri-z", &remote),
        ("base", &local),
        ("leaf", &local),
    ] {
        srv.flag_in("rules", key, mode.clone()).await;
    }
    srv.flag_in("other", "elsewhere", local.clone()).await;

    // Same project only.
    let r = srv
        .post("/api/v1/flags", &json!({"project": "rules", "name": "x", "prerequisites": [{"flag": "elsewhere", "variants": ["on"]}]}))
        .await;
    r.err(422, "unknown_prerequisite", Some("prerequisites[0].flag"));
    assert!(
        r.message().contains("elsewhere") && r.message().contains("same project"),
        "{}",
        r.text
    );
    srv.update("local-flag", &prerequisite("elsewhere", &["on"]))
        .await
        .err(422, "unknown_prerequisite", Some("prerequisites[0].flag"));

    // A local flag depends only on local flags; a remote flag on either.
    let r = srv
        .update("local-flag", &prerequisite("remote-flag", &["on"]))
        .await;
    refused(
        &r,
        409,
        "incompatible_evaluation_mode",
        Some("prerequisites[0].flag"),
        &["remote-flag"],
        &["local-flag", "remote-flag"],
    );
    let r = srv
        .post("/api/v1/flags", &json!({"project": "rules", "name": "Local New", "evaluation_mode": "local",
                                        "prerequisites": [{"flag": "remote-flag", "variants": ["on"]}]}))
        .await;
    refused(
        &r,
        409,
        "incompatible_evaluation_mode",
        Some("prerequisites[0].flag"),
        &["remote-flag"],
        &["remote-flag"],
    );
    srv.update("remote-flag", &prerequisite("local-flag", &["on"]))
        .await
        .ok(200);
    srv.update("remote-flag", &prerequisite("cyc-a", &["on"]))
        .await
        .ok(200);

    // No cycles; the message shows the loop.
    srv.update("cyc-a", &prerequisite("cyc-b", &["on"]))
        .await
        .ok(200);
    let r = srv.update("cyc-b", &prerequisite("cyc-a", &["on"])).await;
    refused(
        &r,
        409,
        "dependency_cycle",
        Some("prerequisites[0].flag"),
        &["cyc-a"],
        &["cyc-b → cyc-a → cyc-b"],
    );
    srv.update("tri-x", &prerequisite("tri-y", &["on"]))
        .await
        .ok(200);
    srv.update("tri-y", &prerequisite("tri-z", &["on"]))
        .await
        .ok(200);
    let r = srv
        .update("tri-z", &json!({"prerequisites": [{"flag": "local-flag", "variants": ["on"]}, {"flag": "tri-x", "variants": ["on"]}]}))
        .await;
    refused(
        &r,
        409,
        "dependency_cycle",
        Some("prerequisites[1].flag"),
        &["tri-x", "tri-y"],
        &["tri-z → tri-x → tri-y → tri-z"],
    );
    srv.update("tri-z", &prerequisite("tri-z", &["on"]))
        .await
        .err(422, "dependency_cycle", Some("prerequisites[0].flag"));
    srv.update("tri-z", &prerequisite("local-flag", &["on"]))
        .await
        .ok(200);

    // Activation waits for the prerequisites.
    srv.flag_in("rules", "dep", json!({"evaluation_mode": "local", "prerequisites": [{"flag": "infra", "variants": ["on"]}]})).await;
    let r = srv.action("dep", "activate").await;
    refused(
        &r,
        409,
        "prerequisite_inactive",
        None,
        &["infra"],
        &["infra"],
    );
    assert_eq!(srv.flag("dep").await.json["state"], "inactive");
    srv.action("infra", "activate").await.ok(200);
    let r = srv.action("dep", "activate").await.ok(200);
    assert_eq!(r.json["state"], "active");
    srv.flag_in(
        "rules",
        "dep2",
        json!({"evaluation_mode": "local",
               "prerequisites": [{"flag": "infra", "variants": ["on"]}, {"flag": "local-flag", "variants": ["on", "off"]}]}),
    )
    .await;
    let r = srv.action("dep2", "activate").await;
    refused(
        &r,
        409,
        "prerequisite_inactive",
        None,
        &["local-flag"],
        &["local-flag"],
    );

    // `off` is a valid prerequisite variant; variants that do not exist are not.
    srv.flag_in(
        "rules",
        "excl",
        json!({"prerequisites": [{"flag": "infra", "variants": ["off"]}]}),
    )
    .await;
    let r = srv
        .update("excl", &prerequisite("infra", &["off", "gamma"]))
        .await;
    r.err(422, "unknown_variant", Some("prerequisites[0].variants[1]"));
    assert!(
        r.message().contains("gamma") && r.message().contains("infra"),
        "{}",
        r.text
    );
    srv.update("excl", &prerequisite("infra", &["OFF"]))
        .await
        .err(422, "unknown_variant", Some("prerequisites[0].variants[0]"));

    // A prerequisite with dependents cannot be archived.
    let r = srv.action("infra", "archive").await;
    refused(
        &r,
        409,
        "has_dependents",
        None,
        &["dep", "dep2", "excl"],
        &["infra", "dep", "dep2", "excl"],
    );
    assert_eq!(srv.flag("infra").await.json["archived"], false);

    // A variant a dependent allows can be neither deleted nor renamed.
    let v = srv.version("infra").await;
    let r = srv.delete("/api/v1/flags/infra/variants/on", v).await;
    refused(
        &r,
        409,
        "variant_in_use",
        Some("variants"),
        &["dep", "dep2"],
        &["\"on\"", "dep", "dep2"],
    );
    let r = srv
        .put(
            "/api/v1/flags/infra/variants/on",
            v,
            &json!({"key": "enabled"}),
        )
        .await;
    refused(
        &r,
        409,
        "variant_in_use",
        Some("variants"),
        &["dep", "dep2"],
        &["dep", "dep2"],
    );
    let r = srv
        .patch(
            "/api/v1/flags/infra",
            v,
            &json!({"variants": [{"key": "beta"}]}),
        )
        .await;
    refused(
        &r,
        409,
        "variant_in_use",
        Some("variants"),
        &["dep", "dep2"],
        &["dep"],
    );
    assert_eq!(srv.version("infra").await, v, "refusals write nothing");
    // ... but its payload and name can change.
    let r = srv
        .put(
            "/api/v1/flags/infra/variants/on",
            v,
            &json!({"key": "on", "name": "Enabled", "payload": {"x": 1}}),
        )
        .await
        .ok(200);
    let v = r.etag();

    // A variant no dependent uses can be renamed (weights and inclusions follow) and deleted.
    let r = srv
        .put(
            "/api/v1/flags/infra/variants/beta",
            v,
            &json!({"key": "beta-2", "name": "Beta two"}),
        )
        .await
        .ok(200);
    let f = &r.json;
    assert_eq!(keys(&f["variants"]), ["on", "beta-2"]);
    assert_eq!(
        f["variants"][1]["value"], "beta-2",
        "an empty value becomes the new key"
    );
    assert_eq!(f["segments"][0]["weights"], json!({"on": 1, "beta-2": 3}));
    assert_eq!(
        f["all_other_users"]["weights"],
        json!({"on": 1, "beta-2": 1})
    );
    assert_eq!(
        f["inclusions"],
        json!({"beta-2": {"ids": ["qa-1"], "cohorts": []}})
    );
    srv.put(
        "/api/v1/flags/infra/variants/nope",
        r.etag(),
        &json!({"key": "x"}),
    )
    .await
    .err(404, "not_found", None);
    let r = srv
        .delete("/api/v1/flags/infra/variants/beta-2", r.etag())
        .await
        .ok(200);
    assert_eq!(keys(&r.json["variants"]), ["on"]);
    assert_eq!(r.json["segments"][0]["weights"], json!({"on": 1}));
    assert_eq!(r.json["inclusions"], json!({}));

    // A prerequisite cannot become remote while a local flag depends on it.
    let r = srv
        .update("infra", &json!({"evaluation_mode": "remote"}))
        .await;
    refused(
        &r,
        409,
        "incompatible_evaluation_mode",
        Some("evaluation_mode"),
        &["dep", "dep2"],
        &["infra", "dep", "dep2"],
    );
    assert_eq!(srv.flag("infra").await.json["evaluation_mode"], "local");

    // Unarchiving waits for archived prerequisites; archived flags cannot become prerequisites.
    srv.update("leaf", &prerequisite("base", &["on"]))
        .await
        .ok(200);
    srv.action("leaf", "archive").await.ok(200);
    srv.action("base", "archive").await.ok(200);
    let r = srv.action("leaf", "unarchive").await;
    refused(
        &r,
        409,
        "prerequisite_archived",
        None,
        &["base"],
        &["leaf", "base"],
    );
    let r = srv
        .update("local-flag", &prerequisite("base", &["on"]))
        .await;
    refused(
        &r,
        409,
        "prerequisite_archived",
        Some("prerequisites[0].flag"),
        &["base"],
        &["base"],
    );
    srv.update("base", &json!({"name": "changed"}))
        .await
        .err(409, "flag_archived", None);
    srv.action("base", "unarchive").await.ok(200);
    srv.action("leaf", "unarchive").await.ok(200);

    // The dependencies card shows both sides.
    let card = srv
        .get("/api/v1/flags/infra/dependencies")
        .await
        .ok(200)
        .json;
    assert_eq!(card["prerequisites"], json!([]));
    let dependents: Vec<(String, Vec<String>)> = card["dependents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["key"].as_str().unwrap().to_owned(),
                strings(&d["variants"]),
            )
        })
        .collect();
    let expected = [
        ("dep", vec!["on"]),
        ("dep2", vec!["on"]),
        ("excl", vec!["off"]),
    ];
    assert_eq!(dependents.len(), expected.len(), "{card}");
    for (key, variants) in expected {
        assert!(
            dependents.contains(&(
                key.to_owned(),
                variants.iter().map(|v| (*v).to_owned()).collect()
            )),
            "{key} in {card}"
        );
    }
    let card = srv
        .get("/api/v1/flags/dep2/dependencies")
        .await
        .ok(200)
        .json;
    let prerequisites = card["prerequisites"].as_array().unwrap();
    assert_eq!(keys(&card["prerequisites"]), ["infra", "local-flag"]);
    assert_eq!(strings(&prerequisites[0]["variants"]), ["on"]);
    assert_eq!(prerequisites[0]["state"], "active");
    assert_eq!(strings(&prerequisites[1]["variants"]), ["on", "off"]);
    assert_eq!(prerequisites[1]["state"], "inactive");
    assert_eq!(card["dependents"], json!([]));
    let card = srv
        .get("/api/v1/flags/local-flag/dependencies")
        .await
        .ok(200)
        .json;
    assert_eq!(sorted_keys(&card["dependents"]), ["dep2", "tri-z"]);
    srv.get("/api/v1/flags/ghost/dependencies")
        .await
        .err(404, "not_found", None);

    // Eligible prerequisites: same project, unarchived, compatible mode, no cycle, not itself.
    let eligible = |key: &'static str| async move {
        sorted_keys(
            &srv.get(&format!("/api/v1/flags/{key}/eligible-prerequisites"))
                .await
                .ok(200)
                .json,
        )
    };
    // cyc-b: everything but itself and cyc-a, remote-flag (which depend on it).
    assert_eq!(
        eligible("cyc-b").await,
        [
            "base",
            "dep",
            "dep2",
            "excl",
            "infra",
            "leaf",
            "local-flag",
            "tri-x",
            "tri-y",
            "tri-z"
        ]
    );
    // tri-z: not tri-x, tri-y (they reach it).
    assert_eq!(
        eligible("tri-z").await,
        [
            "base",
            "cyc-a",
            "cyc-b",
            "dep",
            "dep2",
            "excl",
            "infra",
            "leaf",
            "local-flag",
            "remote-flag"
        ]
    );
    // A local flag: only local flags, and not those that depend on it (dep2).
    assert_eq!(
        eligible("local-flag").await,
        ["base", "dep", "infra", "leaf"]
    );
    srv.action("leaf", "archive").await.ok(200);
    assert_eq!(
        eligible("dep").await,
        ["base", "dep2", "infra", "local-flag"]
    );
}
