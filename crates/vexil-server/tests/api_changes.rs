//! The one model of change, on both backends: every typed change through
//! `POST /api/v1/flags/{key}/changes` (and the endpoints that are one change each), a list
//! applied as one version or refused whole, the history entry's action, changes, comment and
//! role, and the audit log over every entity.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
mod common;

use common::Server;
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(
    every_change_type_goes_through_one_entry_point,
    a_list_is_one_version_or_nothing,
    the_audit_log_says_who_what_when_and_why
);

/// Applies `changes` to `key` at its current version with `comment`.
async fn apply(srv: &Server, key: &str, changes: Value, comment: Option<&str>) -> common::Resp {
    let v = srv.version(key).await;
    let mut body = json!({ "changes": changes });
    if let Some(c) = comment {
        body["comment"] = json!(c);
    }
    srv.send(
        srv.req(Method::POST, &format!("/api/v1/flags/{key}/changes"))
            .header("If-Match", format!("\"{v}\""))
            .json(&body),
    )
    .await
}

/// The newest history entry of flag `key`.
async fn last_entry(srv: &Server, key: &str) -> Value {
    let versions = srv
        .get(&format!("/api/v1/flags/{key}/versions"))
        .await
        .ok(200)
        .json;
    versions[0].clone()
}

/// One table: each change type, what it does to the flag, the history action it records.
async fn every_change_type_goes_through_one_entry_point(srv: &Server) {
    let p = srv.create_project("Changes").await;
    srv.flag_in(&p, "gate", json!({})).await;
    srv.flag_in(&p, "checkout", json!({})).await;
    srv.action("gate", "activate").await.ok(200);
    type Check = fn(&Value) -> bool;
    let table: Vec<(Value, &str, Check)> = vec![
        (
            json!({"kind": "update", "patch": {"description": "New checkout"}}),
            "update",
            |f| f["description"] == "New checkout",
        ),
        (
            json!({"kind": "add_variant", "variant": {"key": "express", "name": "Express"}}),
            "update",
            |f| {
                f["variants"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v["key"] == "express")
            },
        ),
        (
            json!({"kind": "update_variant", "key": "express", "variant": {"key": "fast", "name": "Fast"}}),
            "update",
            |f| {
                f["variants"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v["key"] == "fast")
            },
        ),
        (
            json!({"kind": "set_allocation", "all_other_users": {"percentage": 40, "weights": {"on": 1, "fast": 1}}}),
            "update",
            |f| f["all_other_users"]["percentage"] == 40,
        ),
        (
            json!({"kind": "delete_variant", "key": "fast"}),
            "update",
            |f| f["all_other_users"]["weights"].get("fast").is_none(),
        ),
        (
            json!({"kind": "set_prerequisites", "prerequisites": [{"flag": "gate", "variants": ["on"]}]}),
            "update",
            |f| f["prerequisites"][0]["flag"] == "gate",
        ),
        (json!({"kind": "activate"}), "activate", |f| {
            f["state"] == "active"
        }),
        (json!({"kind": "deactivate"}), "deactivate", |f| {
            f["state"] == "inactive"
        }),
        (
            json!({"kind": "set_prerequisites", "prerequisites": []}),
            "update",
            |f| f["prerequisites"].as_array().is_none_or(Vec::is_empty),
        ),
        (json!({"kind": "archive"}), "archive", |f| {
            f["archived"] == true
        }),
        (json!({"kind": "unarchive"}), "unarchive", |f| {
            f["archived"] == false
        }),
        (json!({"kind": "restore", "version": 2}), "restore", |f| {
            f["description"] == "New checkout"
                && !f["variants"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v["key"] == "express")
        }),
    ];
    for (change, action, check) in table {
        let before = srv.version("checkout").await;
        let r = apply(srv, "checkout", json!([change.clone()]), None)
            .await
            .ok(200);
        assert!(check(&r.json), "{change}: {}", r.json);
        assert_eq!(r.etag(), before + 1, "{change}: one version");
        let entry = last_entry(srv, "checkout").await;
        assert_eq!(entry["action"], action, "{change}");
        let recorded = entry["changes"].as_array().unwrap();
        assert_eq!(recorded.len(), 1, "{change}");
        assert_eq!(
            recorded[0]["kind"], change["kind"],
            "{change}: recorded as typed"
        );
        assert_eq!(entry["role"], "admin");
    }
    // The endpoints that are one change each record theirs too.
    srv.update("checkout", &json!({"name": "Checkout v2"}))
        .await
        .ok(200);
    let entry = last_entry(srv, "checkout").await;
    assert_eq!(entry["changes"][0]["kind"], "update");
    assert_eq!(entry["changes"][0]["patch"], json!({"name": "Checkout v2"}));
    srv.action("checkout", "activate").await.ok(200);
    assert_eq!(
        last_entry(srv, "checkout").await["changes"],
        json!([{"kind": "activate"}])
    );
}

async fn a_list_is_one_version_or_nothing(srv: &Server) {
    let p = srv.create_project("Lists").await;
    srv.flag_in(&p, "gate", json!({})).await;
    srv.flag_in(&p, "banner", json!({})).await;
    // Several changes: one version, action update, all recorded.
    let v = srv.version("banner").await;
    let r = apply(
        srv,
        "banner",
        json!([
            {"kind": "add_variant", "variant": {"key": "blue"}},
            {"kind": "set_allocation", "all_other_users": {"percentage": 100, "weights": {"on": 1, "blue": 3}}},
            {"kind": "activate"}
        ]),
        Some("Blue banner for everyone"),
    )
    .await
    .ok(200);
    assert_eq!(r.etag(), v + 1);
    assert_eq!(r.json["state"], "active");
    let entry = last_entry(srv, "banner").await;
    assert_eq!(entry["action"], "update");
    assert_eq!(entry["changes"].as_array().unwrap().len(), 3);
    assert_eq!(entry["comment"], "Blue banner for everyone");
    // A change that fails refuses the whole list: nothing is written.
    let v = srv.version("banner").await;
    apply(
        srv,
        "banner",
        json!([
            {"kind": "update", "patch": {"description": "never written"}},
            {"kind": "delete_variant", "key": "green"}
        ]),
        None,
    )
    .await
    .err(404, "not_found", None);
    // A rule refuses it too: activating behind an inactive prerequisite.
    apply(srv, "gate", json!([{"kind": "deactivate"}]), None)
        .await
        .ok(200);
    let r = apply(
        srv,
        "banner",
        json!([
            {"kind": "deactivate"},
            {"kind": "set_prerequisites", "prerequisites": [{"flag": "gate", "variants": ["on"]}]},
            {"kind": "activate"}
        ]),
        None,
    )
    .await;
    assert!(r.status >= 400 && r.status < 500, "{}", r.json);
    assert!(
        r.message().contains("gate"),
        "names the blocker: {}",
        r.message()
    );
    let after = srv.flag("banner").await;
    assert_eq!(after.etag(), v, "nothing written");
    assert_eq!(after.json["description"], "");
    // Bad lists are refused with the field.
    apply(srv, "banner", json!([]), None)
        .await
        .err(422, "no_changes", Some("changes"));
    apply(srv, "banner", json!([{"kind": "explode"}]), None)
        .await
        .err(400, "invalid_field", Some("changes[0].kind"));
    // An archived flag takes no change but unarchiving first.
    apply(
        srv,
        "banner",
        json!([{"kind": "deactivate"}, {"kind": "archive"}]),
        None,
    )
    .await
    .ok(200);
    apply(
        srv,
        "banner",
        json!([{"kind": "update", "patch": {"name": "x"}}]),
        None,
    )
    .await
    .err(409, "flag_archived", None);
    apply(
        srv,
        "banner",
        json!([{"kind": "unarchive"}, {"kind": "update", "patch": {"name": "Banner"}}]),
        None,
    )
    .await
    .ok(200);
    // A stale version conflicts.
    let r = srv
        .send(
            srv.req(Method::POST, "/api/v1/flags/banner/changes")
                .header("If-Match", "\"1\"")
                .json(&json!({"changes": [{"kind": "activate"}]})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.json);
}

async fn the_audit_log_says_who_what_when_and_why(srv: &Server) {
    let p = srv.create_project("Audit trail").await;
    srv.flag_in(&p, "search", json!({})).await;
    // A comment by header on any change; by body on typed changes.
    let v = srv.version("search").await;
    srv.send(
        srv.req(Method::PATCH, "/api/v1/flags/search")
            .header("If-Match", format!("\"{v}\""))
            .header("Vexil-Comment", "Ticket 42: rename for the launch")
            .json(&json!({"name": "Search v2"})),
    )
    .await
    .ok(200);
    apply(srv, "search", json!([{"kind": "activate"}]), Some("Launch"))
        .await
        .ok(200);
    srv.create_deployment(&p, "Web", "client").await;
    let audit = |query: String| async move {
        srv.get(&format!("/api/v1/audit?{query}"))
            .await
            .ok(200)
            .json
    };
    let all = audit(format!("project={p}")).await;
    let entries = all["entries"].as_array().unwrap();
    let seen: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["entity"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e["comment"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(seen[0].0, "deployment", "newest first: {seen:?}");
    assert!(seen.contains(&(
        "flag".to_owned(),
        "update".to_owned(),
        "Ticket 42: rename for the launch".to_owned()
    )));
    assert!(seen.contains(&(
        "flag".to_owned(),
        "activate".to_owned(),
        "Launch".to_owned()
    )));
    assert!(entries
        .iter()
        .all(|e| e["role"] == "admin" && e["project"] == p.as_str()));
    // Filters and pages.
    let flags = audit(format!("project={p}&entity=flag&key=search")).await;
    assert_eq!(
        flags["entries"].as_array().unwrap().len(),
        3,
        "create, update, activate"
    );
    let mut listed = 0;
    let mut after: Option<String> = None;
    loop {
        let q = match &after {
            Some(a) => format!("project={p}&limit=2&after={a}"),
            None => format!("project={p}&limit=2"),
        };
        let page = audit(q).await;
        listed += page["entries"].as_array().unwrap().len();
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(listed, entries.len(), "every entry once over the pages");
    assert!(audit(format!("project={p}&actor=nobody")).await["entries"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(audit(format!("project={p}&from=1&to=2")).await["entries"]
        .as_array()
        .unwrap()
        .is_empty());
    // Management keys (which belong to no project) are audited too, never with their hash.
    let key = srv
        .post("/api/v1/keys", &json!({"name": "ci-bot", "role": "writer"}))
        .await
        .ok(201)
        .json;
    let id = key["id"].as_str().unwrap().to_owned();
    srv.delete(&format!("/api/v1/keys/{id}"), None)
        .await
        .ok(200);
    let keys = audit("entity=api_key".to_string()).await;
    let summaries: Vec<&str> = keys["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["key"] == id.as_str())
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert_eq!(
        summaries,
        [
            "revoked the writer key \"ci-bot\"",
            "created the writer key \"ci-bot\""
        ]
    );
    assert!(!keys.to_string().contains("hash"), "{keys}");
    // Bad input names the field.
    srv.get("/api/v1/audit?limit=0")
        .await
        .err(422, "invalid_limit", Some("limit"));
    srv.get("/api/v1/audit?after=nonsense")
        .await
        .err(422, "invalid_cursor", Some("after"));
    srv.get("/api/v1/audit?from=5&to=5")
        .await
        .err(422, "invalid_range", Some("to"));
    let long = "x".repeat(2_001);
    apply(srv, "search", json!([{"kind": "deactivate"}]), Some(&long))
        .await
        .err(400, "comment_too_long", Some("comment"));
}
