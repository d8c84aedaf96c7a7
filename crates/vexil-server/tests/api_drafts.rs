//! Drafts on both backends (and the project-wide "what does this user get?" evaluation): previewed in the product's words and as the users they move,
//! published as one version, refused on a moved base or by a rule; approval policies (the
//! author may not approve, N reviewers, direct changes refused); scheduled publication, once
//! with two nodes running, and marked failed with the reason when refused.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
mod common;

use std::time::Duration;

use common::{fast_config, Resp, Server};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(
    a_draft_previews_then_publishes_as_one_version,
    approvals_gate_publishing,
    scheduled_drafts_publish_once,
    progressive_rollouts_step_pause_and_cancel,
    every_flag_for_one_user,
    stale_flags_are_listed_kept_or_archived
);

/// Sends `body` as `key` (a management key's secret).
async fn as_key(srv: &Server, key: &str, method: Method, path: &str, body: Option<&Value>) -> Resp {
    let mut req = srv.http.request(method, srv.url(path)).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(b);
    }
    srv.read(req.send().await.unwrap()).await
}

async fn new_key(srv: &Server, name: &str, role: &str) -> String {
    srv.post("/api/v1/keys", &json!({"name": name, "role": role}))
        .await
        .ok(201)
        .json["secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn a_draft_previews_then_publishes_as_one_version(srv: &Server) {
    let p = srv.create_project("Drafts").await;
    srv.flag_in(&p, "gate", json!({})).await;
    srv.action("gate", "activate").await.ok(200);
    srv.flag_in(
        &p,
        "checkout",
        json!({"variants": [{"key": "single-page"}, {"key": "express"}]}),
    )
    .await;
    let drafts = format!("/api/v1/projects/{p}/drafts");
    let base = srv.version("checkout").await;
    let created = srv
        .post(
            &drafts,
            &json!({
                "flag": "checkout",
                "title": "Half of everyone on express",
                "comment": "Ticket 7",
                "changes": [
                    {"kind": "set_allocation", "all_other_users": {"percentage": 50, "weights": {"express": 1}}},
                    {"kind": "activate"}
                ]
            }),
        )
        .await
        .ok(201)
        .json;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "open");
    assert_eq!(created["base_version"], base);
    assert_eq!(
        created["summary"],
        json!([
            "Activated: serves its targeting",
            "All other users: off → 50% (*express* 100%)"
        ]),
        "{created}"
    );
    let moved = &created["moved"];
    assert_eq!(moved["sample"], 10_000);
    let n = moved["moved"].as_u64().unwrap();
    assert!((4_700..=5_300).contains(&n), "about half move: {moved}");
    assert_eq!(moved["transitions"][0]["from"], "off");
    assert_eq!(moved["transitions"][0]["to"], "express");
    assert!(created.get("blocked").is_none(), "{created}");
    assert_eq!(
        srv.version("checkout").await,
        base,
        "a draft writes nothing"
    );

    let published = srv
        .post(&format!("{drafts}/{id}/publish"), &json!({}))
        .await
        .ok(200)
        .json;
    assert_eq!(published["status"], "published");
    assert_eq!(published["published_version"], base + 1);
    let flag = srv.flag("checkout").await;
    assert_eq!(flag.etag(), base + 1, "one version");
    assert_eq!(flag.json["state"], "active");
    let versions = srv
        .get("/api/v1/flags/checkout/versions")
        .await
        .ok(200)
        .json;
    let comment = versions[0]["comment"].as_str().unwrap();
    assert!(
        comment.contains("Half of everyone on express") && comment.contains(&id),
        "{comment}"
    );
    srv.post(&format!("{drafts}/{id}/publish"), &json!({}))
        .await
        .err(409, "draft_not_open", None);

    // A draft whose base moved on is refused with the reason, until its base is updated.
    let stale = srv
        .post(
            &drafts,
            &json!({"flag": "checkout", "title": "Describe it",
                    "changes": [{"kind": "update", "patch": {"description": "Fast checkout"}}]}),
        )
        .await
        .ok(201)
        .json;
    let stale_id = stale["id"].as_str().unwrap().to_owned();
    srv.update("checkout", &json!({"name": "Checkout 2"}))
        .await
        .ok(200);
    let view = srv.get(&format!("{drafts}/{stale_id}")).await.ok(200);
    assert!(
        view.json["blocked"].as_str().unwrap().contains("moved on"),
        "{}",
        view.json
    );
    srv.post(&format!("{drafts}/{stale_id}/publish"), &json!({}))
        .await
        .err(409, "base_moved", Some("base_version"));
    let current = srv.version("checkout").await;
    srv.patch(
        &format!("{drafts}/{stale_id}"),
        view.etag(),
        &json!({"base_version": current}),
    )
    .await
    .ok(200);
    srv.post(&format!("{drafts}/{stale_id}/publish"), &json!({}))
        .await
        .ok(200);
    assert_eq!(
        srv.flag("checkout").await.json["description"],
        "Fast checkout"
    );

    // A rule that blocks the changes now refuses the publication, naming the blocker.
    srv.flag_in(
        &p,
        "banner",
        json!({"prerequisites": [{"flag": "gate", "variants": ["on"]}]}),
    )
    .await;
    let ruled = srv
        .post(
            &drafts,
            &json!({"flag": "banner", "title": "Banner on", "changes": [{"kind": "activate"}]}),
        )
        .await
        .ok(201)
        .json;
    let ruled_id = ruled["id"].as_str().unwrap().to_owned();
    srv.action("gate", "deactivate").await.ok(200);
    let view = srv.get(&format!("{drafts}/{ruled_id}")).await.ok(200).json;
    assert!(
        view["blocked"].as_str().unwrap().contains("gate"),
        "the preview says so: {view}"
    );
    let r = srv
        .post(&format!("{drafts}/{ruled_id}/publish"), &json!({}))
        .await;
    assert!(r.status == 409 || r.status == 422, "{}", r.json);
    assert!(r.message().contains("gate"), "{}", r.message());
    assert_eq!(srv.flag("banner").await.json["state"], "inactive");
    srv.post(&format!("{drafts}/{ruled_id}/close"), &json!({}))
        .await
        .ok(200);

    // Lists, and bad drafts named by field.
    let closed = srv
        .get(&format!("{drafts}?flag=banner&status=closed"))
        .await
        .ok(200)
        .json;
    assert_eq!(closed.as_array().unwrap().len(), 1);
    let published = srv
        .get(&format!("{drafts}?status=published"))
        .await
        .ok(200)
        .json;
    assert_eq!(published.as_array().unwrap().len(), 2);
    srv.post(
        &drafts,
        &json!({"flag": "checkout", "title": " ", "changes": [{"kind": "activate"}]}),
    )
    .await
    .err(422, "invalid_title", Some("title"));
    srv.post(
        &drafts,
        &json!({"flag": "checkout", "title": "x", "changes": []}),
    )
    .await
    .err(422, "invalid_changes", Some("changes"));
    srv.post(&drafts, &json!({"flag": "checkout", "title": "x", "changes": [{"kind": "delete_variant", "key": "nope"}]}))
        .await
        .err(404, "not_found", None);
    srv.get(&format!("{drafts}/dr-missing"))
        .await
        .err(404, "not_found", None);
    // The audit log tells the story.
    let audit = srv
        .get(&format!("/api/v1/audit?project={p}&entity=draft&key={id}"))
        .await
        .ok(200)
        .json;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["publish", "create"]);
}

async fn approvals_gate_publishing(srv: &Server) {
    let p = srv.create_project("Reviewed").await;
    srv.flag_in(&p, "search", json!({})).await;
    let alice = new_key(srv, "alice", "writer").await;
    let bob = new_key(srv, "bob", "writer").await;
    let reader = new_key(srv, "rita", "reader").await;
    let policy = format!("/api/v1/projects/{p}/approval-policy");
    assert_eq!(srv.get(&policy).await.ok(200).json["required_approvals"], 0);
    as_key(
        srv,
        &alice,
        Method::PUT,
        &policy,
        Some(&json!({"required_approvals": 2})),
    )
    .await
    .err(403, "forbidden", None);
    srv.put(
        &policy,
        None,
        &json!({"required_approvals": 2, "applies_to": "all_flags"}),
    )
    .await
    .ok(200);
    srv.put(&policy, None, &json!({"required_approvals": 11}))
        .await
        .err(422, "invalid_approvals", Some("required_approvals"));

    // Direct changes are refused while the policy covers the flag.
    srv.action("search", "activate")
        .await
        .err(409, "approval_required", None);

    let drafts = format!("/api/v1/projects/{p}/drafts");
    let d = srv
        .post(
            &drafts,
            &json!({"flag": "search", "title": "Launch search", "changes": [{"kind": "activate"}]}),
        )
        .await
        .ok(201)
        .json;
    let id = d["id"].as_str().unwrap().to_owned();
    assert_eq!(d["approvals"]["required"], true);
    assert_eq!(d["approvals"]["needed"], 2);
    assert!(
        d["blocked"].as_str().unwrap().contains("needs 2 approval"),
        "{d}"
    );
    let reviews = format!("{drafts}/{id}/reviews");
    // The author (the admin key) may not review their own draft; a reader may not review.
    srv.post(&reviews, &json!({"decision": "approve"}))
        .await
        .err(409, "self_review", None);
    as_key(
        srv,
        &reader,
        Method::POST,
        &reviews,
        Some(&json!({"decision": "approve"})),
    )
    .await
    .err(403, "forbidden", None);
    as_key(
        srv,
        &alice,
        Method::POST,
        &reviews,
        Some(&json!({"decision": "approve", "comment": "LGTM"})),
    )
    .await
    .ok(200);
    srv.post(&format!("{drafts}/{id}/publish"), &json!({}))
        .await
        .err(409, "approval_required", None);
    let v = as_key(
        srv,
        &bob,
        Method::POST,
        &reviews,
        Some(&json!({"decision": "request_changes", "comment": "Wait for the index"})),
    )
    .await
    .ok(200)
    .json;
    assert_eq!(v["approvals"]["blocked_by"], json!(["bob"]));
    srv.post(&format!("{drafts}/{id}/publish"), &json!({}))
        .await
        .err(409, "approval_required", None);
    let v = as_key(
        srv,
        &bob,
        Method::POST,
        &reviews,
        Some(&json!({"decision": "approve"})),
    )
    .await
    .ok(200)
    .json;
    assert_eq!(v["approvals"]["satisfied"], true, "{v}");
    assert_eq!(v["approvals"]["approved_by"], json!(["alice", "bob"]));
    // Editing the changes asks for new reviews.
    let edited = srv
        .patch(
            &format!("{drafts}/{id}"),
            v["version"].as_i64(),
            &json!({"changes": [{"kind": "activate"}, {"kind": "update", "patch": {"description": "Live"}}]}),
        )
        .await
        .ok(200)
        .json;
    assert_eq!(edited["approvals"]["approved_by"], json!([]), "{edited}");
    for key in [&alice, &bob] {
        as_key(
            srv,
            key,
            Method::POST,
            &reviews,
            Some(&json!({"decision": "approve"})),
        )
        .await
        .ok(200);
    }
    // Anyone with write access may publish once approved.
    as_key(
        srv,
        &alice,
        Method::POST,
        &format!("{drafts}/{id}/publish"),
        Some(&json!({})),
    )
    .await
    .ok(200);
    let flag = srv.flag("search").await.json;
    assert_eq!(
        (flag["state"].as_str(), flag["description"].as_str()),
        (Some("active"), Some("Live"))
    );
    // Policy scoped to active flags: an inactive flag changes directly.
    srv.put(
        &policy,
        None,
        &json!({"required_approvals": 1, "applies_to": "active_flags"}),
    )
    .await
    .ok(200);
    srv.flag_in(&p, "quiet", json!({})).await;
    srv.update("quiet", &json!({"description": "no review needed"}))
        .await
        .ok(200);
    srv.update("search", &json!({"description": "x"}))
        .await
        .err(409, "approval_required", None);

    // Policy scoped to protected deployments: only flags in a deployment an admin protected.
    let prod = srv.create_deployment(&p, "Production", "client").await;
    let prod_key = prod["key"].as_str().unwrap().to_owned();
    let staging = srv.create_deployment(&p, "Staging", "server").await;
    let staging_key = staging["key"].as_str().unwrap().to_owned();
    assert_eq!(prod["protected"], false);
    let deployment = format!("/api/v1/projects/{p}/deployments/{prod_key}");
    // A writer may not protect (or unprotect) a deployment.
    as_key(
        srv,
        &alice,
        Method::PATCH,
        &deployment,
        Some(&json!({"protected": true})),
    )
    .await
    .err(403, "forbidden", None);
    let v = srv.get(&deployment).await.ok(200).etag();
    let protected = srv
        .patch(&deployment, v, &json!({"protected": true}))
        .await
        .ok(200)
        .json;
    assert_eq!(protected["protected"], true);
    srv.put(
        &policy,
        None,
        &json!({"required_approvals": 1, "applies_to": "protected_deployments"}),
    )
    .await
    .ok(200);
    srv.flag_in(&p, "in-staging", json!({"deployments": [staging_key]}))
        .await;
    srv.flag_in(&p, "in-prod", json!({"deployments": [prod_key]}))
        .await;
    srv.update("in-staging", &json!({"description": "no review needed"}))
        .await
        .ok(200);
    srv.update("in-prod", &json!({"description": "x"}))
        .await
        .err(409, "approval_required", None);
    // Attaching a flag to a protected deployment is covered too.
    srv.update("in-staging", &json!({"deployments": [prod_key]}))
        .await
        .err(409, "approval_required", None);
}

async fn scheduled_drafts_publish_once(srv: &Server) {
    let p = srv.create_project("Scheduled").await;
    srv.flag_in(&p, "promo", json!({})).await;
    // A second node on the same store runs its own scheduler too (PostgreSQL: two nodes;
    // SQLite: two servers in one process over one database).
    let other = srv.another_node(fast_config()).await;
    let drafts = format!("/api/v1/projects/{p}/drafts");
    let base = srv.version("promo").await;
    let d = srv
        .post(
            &drafts,
            &json!({"flag": "promo", "title": "Promo at noon", "changes": [{"kind": "activate"}]}),
        )
        .await
        .ok(201)
        .json;
    let id = d["id"].as_str().unwrap().to_owned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let s = srv
        .post(
            &format!("{drafts}/{id}/schedule"),
            &json!({"at": now + 300}),
        )
        .await
        .ok(200)
        .json;
    assert_eq!(s["status"], "scheduled");
    let mut published = Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        published = srv.get(&format!("{drafts}/{id}")).await.ok(200).json;
        if published["status"] == "published" {
            break;
        }
    }
    assert_eq!(published["status"], "published", "{published}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let flag = srv.flag("promo").await;
    assert_eq!(flag.etag(), base + 1, "published once");
    assert_eq!(flag.json["state"], "active");
    let versions = srv.get("/api/v1/flags/promo/versions").await.ok(200).json;
    assert_eq!(
        versions[0]["actor"], "admin",
        "on behalf of who scheduled it: {}",
        versions[0]
    );
    let audit = srv
        .get(&format!("/api/v1/audit?project={p}&entity=draft&key={id}"))
        .await
        .ok(200)
        .json;
    let publishes = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "publish")
        .count();
    assert_eq!(publishes, 1, "{audit}");

    // A scheduled draft whose base moved is marked failed with the reason.
    let d = srv
        .post(&drafts, &json!({"flag": "promo", "title": "Deactivate later", "changes": [{"kind": "deactivate"}]}))
        .await
        .ok(201)
        .json;
    let late = d["id"].as_str().unwrap().to_owned();
    srv.post(
        &format!("{drafts}/{late}/schedule"),
        &json!({"at": now + 60_000}),
    )
    .await
    .ok(200);
    srv.update("promo", &json!({"description": "moved on"}))
        .await
        .ok(200);
    srv.post(&format!("{drafts}/{late}/schedule"), &json!({"at": 0}))
        .await
        .ok(200);
    let mut failed = Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        failed = other.get(&format!("{drafts}/{late}")).await.ok(200).json;
        if failed["status"] == "failed" {
            break;
        }
    }
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["outcome"].as_str().unwrap().contains("moved on"),
        "{failed}"
    );
    assert_eq!(
        srv.flag("promo").await.json["state"],
        "active",
        "nothing applied"
    );
    drop(other);
}

async fn progressive_rollouts_step_pause_and_cancel(srv: &Server) {
    let p = srv.create_project("Rollouts").await;
    srv.flag_in(
        &p,
        "search",
        json!({"segments": [{"name": "Beta", "conditions": [], "percentage": 0, "weights": {"on": 1}}]}),
    )
    .await;
    let rollouts = format!("/api/v1/projects/{p}/rollouts");
    // Bad plans are refused with the field.
    for (body, code, field) in [
        (
            json!({"flag": "search", "steps": [], "interval_seconds": 60}),
            "invalid_steps",
            "steps",
        ),
        (
            json!({"flag": "search", "steps": [5, 101], "interval_seconds": 60}),
            "invalid_percentage",
            "steps[1]",
        ),
        (
            json!({"flag": "search", "steps": [5], "interval_seconds": 0}),
            "invalid_interval",
            "interval_seconds",
        ),
        (
            json!({"flag": "search", "segment": "Nobody", "steps": [5], "interval_seconds": 60}),
            "unknown_segment",
            "segment",
        ),
    ] {
        srv.post(&rollouts, &body).await.err(422, code, Some(field));
    }
    // The first step now, the next in an hour: the first is applied by the scheduler.
    let plan = srv
        .post(
            &rollouts,
            &json!({"flag": "search", "segment": "Beta", "steps": [10, 50, 100], "interval_seconds": 3600}),
        )
        .await
        .ok(201)
        .json;
    let id = plan["id"].as_str().unwrap().to_owned();
    let mut seen = Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = srv.get(&format!("{rollouts}/{id}")).await.ok(200).json;
        if seen["next_step"] == 1 {
            break;
        }
    }
    assert_eq!(seen["next_step"], 1, "{seen}");
    assert_eq!(seen["status"], "running");
    assert_eq!(
        srv.flag("search").await.json["segments"][0]["percentage"],
        10
    );
    srv.post(&format!("{rollouts}/{id}/pause"), &json!({}))
        .await
        .ok(200);
    srv.post(&format!("{rollouts}/{id}/pause"), &json!({}))
        .await
        .err(409, "rollout_state", None);
    srv.post(&format!("{rollouts}/{id}/explode"), &json!({}))
        .await
        .err(404, "not_found", Some("action"));
    let cancelled = srv
        .post(&format!("{rollouts}/{id}/cancel"), &json!({}))
        .await
        .ok(200)
        .json;
    assert_eq!(cancelled["status"], "cancelled");
    let listed = srv
        .get(&format!("{rollouts}?flag=search"))
        .await
        .ok(200)
        .json;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let audit = srv
        .get(&format!("/api/v1/audit?project={p}&entity=rollout"))
        .await
        .ok(200)
        .json;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["cancel", "pause", "step", "create"]);
}

/// "What does this user get?": every flag of a project, or of one deployment as its SDKs
/// would, for one user, with the reason in words.
async fn every_flag_for_one_user(srv: &Server) {
    let p = srv.create_project("Users").await;
    srv.create_deployment(&p, "Web", "client").await;
    let flags = [
        (
            "banner",
            json!({"deployments": ["web"], "all_other_users": {"percentage": 100, "weights": {"on": 1}}}),
        ),
        (
            "beta",
            json!({"deployments": ["web"], "segments": [{"name": "Pro", "percentage": 100, "weights": {"on": 1},
            "conditions": [{"type": "user_property", "property": "plan", "op": "is", "values": ["pro"]}]}]}),
        ),
        (
            "hidden",
            json!({"all_other_users": {"percentage": 100, "weights": {"on": 1}}}),
        ),
        (
            "dormant",
            json!({"deployments": ["web"], "all_other_users": {"percentage": 100, "weights": {"on": 1}}}),
        ),
    ];
    for (key, extra) in flags {
        srv.flag_in(&p, key, extra).await;
    }
    for key in ["banner", "beta", "hidden"] {
        srv.action(key, "activate").await.ok(200);
    }
    let path = format!("/api/v1/projects/{p}/evaluate");
    let user = json!({"user_id": "u1", "user_properties": {"plan": "pro"}});
    let web = srv
        .post(&path, &json!({"user": user, "deployment": "web"}))
        .await
        .ok(200)
        .json;
    let got: Vec<(String, String)> = web["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["flag"].as_str().unwrap().to_owned(),
                f["variant"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("banner", "on"), ("beta", "on"), ("dormant", "off")]
            .map(|(a, b)| (a.to_owned(), b.to_owned())),
        "the deployment's flags, an inactive one off: {web}"
    );
    let beta = &web["flags"][1];
    assert!(
        beta["reason"].as_str().unwrap().contains("\"Pro\""),
        "{beta}"
    );
    assert!(
        beta["trace"].as_str().unwrap().contains("beta: on"),
        "{beta}"
    );
    let free = srv
        .post(
            &path,
            &json!({"user": {"user_id": "u2", "user_properties": {"plan": "free"}}}),
        )
        .await
        .ok(200)
        .json;
    let keys: Vec<&str> = free["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["flag"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["banner", "beta", "dormant", "hidden"],
        "every flag without a deployment"
    );
    assert_eq!(free["flags"][1]["variant"], "off");
    srv.post(&path, &json!({"user": "u1"}))
        .await
        .err(422, "invalid_user", Some("user"));
    srv.post(
        &path,
        &json!({"user": {"user_id": "u1"}, "deployment": "nowhere"}),
    )
    .await
    .err(404, "not_found", None);
}

/// Stale flags: listed with the reason, kept on purpose, archived in bulk unless something
/// depends on them.
async fn stale_flags_are_listed_kept_or_archived(srv: &Server) {
    let p = srv.create_project("Stale").await;
    srv.flag_in(
        &p,
        "old-launch",
        json!({"all_other_users": {"percentage": 100, "weights": {"on": 1}}}),
    )
    .await;
    srv.action("old-launch", "activate").await.ok(200);
    srv.flag_in(&p, "dead", json!({})).await;
    srv.flag_in(&p, "kill-switch", json!({})).await;
    srv.flag_in(
        &p,
        "fresh",
        json!({"prerequisites": [{"flag": "old-launch", "variants": ["on"]}]}),
    )
    .await;
    srv.flag_in(
        &p,
        "needs-dead",
        json!({"prerequisites": [{"flag": "dead", "variants": ["on"]}]}),
    )
    .await;
    for key in ["old-launch", "dead", "kill-switch", "needs-dead"] {
        srv.age_flag(&p, key, 40).await;
    }
    srv.update("kill-switch", &json!({"permanent": true}))
        .await
        .ok(200);
    srv.age_flag(&p, "kill-switch", 40).await;
    let list = srv
        .get(&format!("/api/v1/flags?project={p}&stale=true"))
        .await
        .ok(200)
        .json;
    let stale: Vec<(&str, &str)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["key"].as_str().unwrap(), f["stale"].as_str().unwrap()))
        .collect();
    assert_eq!(stale.len(), 3, "{list}");
    assert_eq!(list["total"], 3);
    assert!(
        stale.contains(&("old-launch", "serves on to everyone, unchanged for 40 days")),
        "{stale:?}"
    );
    assert!(stale
        .iter()
        .any(|(k, why)| *k == "dead" && why.starts_with("inactive for 40 days")));
    assert!(!stale
        .iter()
        .any(|(k, _)| *k == "kill-switch" || *k == "fresh"));
    let done = srv
        .post(&format!("/api/v1/projects/{p}/archive-stale"), &json!({}))
        .await
        .ok(200)
        .json;
    let mut archived: Vec<&str> = done["archived"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    archived.sort();
    assert_eq!(
        archived,
        ["dead", "needs-dead"],
        "dead once the stale flag depending on it went: {done}"
    );
    assert_eq!(
        done["kept"][0]["flag"], "old-launch",
        "fresh depends on it: {done}"
    );
    assert!(
        done["kept"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("fresh"),
        "{done}"
    );
    let versions = srv.get("/api/v1/flags/dead/versions").await.ok(200).json;
    assert_eq!(versions[0]["comment"], "archived as stale");
}
