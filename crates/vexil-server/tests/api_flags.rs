//! Flags over HTTP: the seed 000 walkthrough (create a flag, its variants and targeting, QA,
//! activate, change the salt), optimistic concurrency, and history (versions, comparison,
//! restore).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
mod common;

use std::sync::Arc;

use common::{keys, strings, Server};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(
    seed_000_walkthrough,
    concurrent_writes_one_wins,
    history_compare_and_restore
);

/// The variant a user in the 50% / 1:4 segment gets (spec §3.4, §10.7): `off` outside the
/// allocation, then `control` for the first fifth of the distribution range.
fn expected_variant(salt: &str, user_id: &str) -> &'static str {
    let (allocation, distribution) = vexil_eval::bucket_values(salt, user_id);
    if allocation >= 50 {
        "off"
    } else if distribution < 8_589_935 {
        "control"
    } else {
        "treatment"
    }
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

async fn seed_000_walkthrough(srv: &Server) {
    // A project and its deployments.
    let project = srv
        .post(
            "/api/v1/projects",
            &json!({"name": "Web Store", "description": "the shop"}),
        )
        .await
        .ok(201);
    assert_eq!(project.json["key"], "web-store");
    assert_eq!(project.etag(), 1);
    let server = srv
        .create_deployment("web-store", "Production Server", "server")
        .await;
    let client = srv
        .create_deployment("web-store", "Production Browser", "client")
        .await;
    assert_eq!(server["key"], "production-server");
    for (d, prefix) in [(&server, "server-"), (&client, "client-")] {
        let key = d["api_key"].as_str().unwrap();
        let rest = key
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{key} starts with {prefix}"));
        assert!(
            rest.len() == 32 && is_base62(rest),
            "32 base62 characters after the prefix: {key}"
        );
    }
    assert_ne!(server["api_key"], client["api_key"]);
    let deployments = srv
        .get("/api/v1/projects/web-store/deployments")
        .await
        .ok(200);
    assert_eq!(
        keys(&deployments.json),
        ["production-browser", "production-server"]
    );
    srv.post(
        "/api/v1/projects/web-store/deployments",
        &json!({"label": "production server", "type": "server"}),
    )
    .await
    .err(409, "already_exists", Some("label"));

    // The flag: the key comes from the name, the salt is 8 random alphanumerics.
    let created = srv
        .post(
            "/api/v1/flags",
            &json!({"project": "web-store", "name": "New Checkout Flow", "description": "One-page checkout",
                    "evaluation_mode": "remote", "bucketing_unit": "user_id"}),
        )
        .await
        .ok(201);
    assert_eq!(created.etag(), 1);
    let flag = &created.json;
    assert_eq!(flag["key"], "new-checkout-flow");
    assert_eq!(flag["state"], "inactive");
    assert_eq!(flag["type"], "release");
    assert_eq!(flag["evaluation_mode"], "remote");
    let salt = flag["bucketing_salt"].as_str().unwrap().to_owned();
    assert!(salt.len() == 8 && is_base62(&salt), "salt {salt:?}");
    let other = srv.flag_in("web-store", "other-flag", json!({})).await;
    assert_ne!(
        other["bucketing_salt"].as_str(),
        Some(salt.as_str()),
        "salts are random"
    );
    srv.post(
        "/api/v1/flags",
        &json!({"project": "web-store", "name": "new checkout flow"}),
    )
    .await
    .err(409, "flag_key_taken", Some("key"));

    // Variants: added with a value generated from the key.
    let variants = "/api/v1/flags/new-checkout-flow/variants";
    let payload = json!({"layout": "one-page", "steps": [1, 2], "beta": true});
    let r = srv.post_if(variants, 1).await;
    r.err(415, "unsupported_media_type", None);
    let add = |v: i64, body: Value| {
        let request = srv
            .req(Method::POST, variants)
            .header("If-Match", format!("\"{v}\""))
            .json(&body);
        srv.send(request)
    };
    let r = add(1, json!({"key": "control", "payload": payload}))
        .await
        .ok(201);
    assert_eq!(r.etag(), 2);
    let r = add(
        2,
        json!({"key": "treatment", "description": "the new flow"}),
    )
    .await
    .ok(201);
    assert_eq!(r.etag(), 3);
    let vs = r.json["variants"].as_array().unwrap();
    assert_eq!(keys(&r.json["variants"]), ["on", "control", "treatment"]);
    assert_eq!(
        (vs[1]["value"].as_str(), vs[1]["name"].as_str()),
        (Some("control"), Some("control"))
    );
    assert_eq!(vs[1]["payload"], payload);
    assert_eq!(vs[2]["value"], "treatment");
    assert!(vs[2].get("payload").is_none());

    // Reserved and duplicate keys are refused, naming the variant's field.
    for (key, code) in [
        ("off", "reserved_variant_key"),
        ("OFF", "reserved_variant_key"),
        ("Off", "reserved_variant_key"),
        ("oFf", "reserved_variant_key"),
        ("(none)", "reserved_variant_key"),
        ("Control", "duplicate_variant_key"),
        ("TREATMENT", "duplicate_variant_key"),
        ("treatment", "duplicate_variant_key"),
    ] {
        let r = add(3, json!({"key": key})).await;
        r.err(422, code, Some("variants[3].key"));
        if key.eq_ignore_ascii_case("off") {
            assert!(r.message().contains("reserved"), "{}", r.text);
        }
    }
    let r = srv
        .patch(
            "/api/v1/flags/new-checkout-flow",
            3,
            &json!({"variants": [{"key": "control"}, {"key": "OFF"}]}),
        )
        .await;
    r.err(422, "reserved_variant_key", Some("variants[1].key"));
    assert_eq!(
        srv.version("new-checkout-flow").await,
        3,
        "refused changes write nothing"
    );

    // The default `on` variant goes.
    let r = srv.delete(&format!("{variants}/on"), 3).await.ok(200);
    assert_eq!(keys(&r.json["variants"]), ["control", "treatment"]);
    assert_eq!(r.etag(), 4);
    srv.delete(&format!("{variants}/on"), 4)
        .await
        .err(404, "not_found", None);

    // Targeting: US at 50% with weights 1:4; everyone else 0%.
    let targeting = json!({
        "deployments": ["production-server"],
        "segments": [{"name": "US customers",
                      "conditions": [{"type": "user_field", "field": "country", "op": "is", "values": ["US"]}],
                      "percentage": 50, "weights": {"control": 1, "treatment": 4}}],
        "all_other_users": {"percentage": 0, "weights": {"control": 1, "treatment": 1}},
    });
    let r = srv
        .patch("/api/v1/flags/new-checkout-flow", 4, &targeting)
        .await
        .ok(200);
    assert_eq!(r.etag(), 5);
    assert!(r.json.get("warnings").is_none(), "no warning: {}", r.text);
    assert_eq!(r.json["segments"], targeting["segments"]);
    assert_eq!(r.json["all_other_users"]["percentage"], 0);
    assert_eq!(strings(&r.json["deployments"]), ["production-server"]);

    // Activate.
    let r = srv
        .post_if("/api/v1/flags/new-checkout-flow/activate", 5)
        .await
        .ok(200);
    assert_eq!((r.json["state"].as_str(), r.etag()), (Some("active"), 6));

    // QA: users in the segment get the bucketed variant, the others `off`.
    let mut seen = std::collections::BTreeMap::<&str, Vec<String>>::new();
    for i in 0..200 {
        let user = format!("user-{i}");
        let list = seen.entry(expected_variant(&salt, &user)).or_default();
        if list.len() < 3 {
            list.push(user);
        }
    }
    assert_eq!(seen.len(), 3, "the sample reaches every outcome: {seen:?}");
    for (variant, users) in &seen {
        for user in users {
            let qa = srv
                .evaluate(
                    "new-checkout-flow",
                    json!({"user_id": user, "country": "US"}),
                )
                .await;
            assert_eq!(qa["flag"], "new-checkout-flow");
            assert_eq!(qa["variant"].as_str(), Some(*variant), "{user}: {qa}");
            let result = &qa["results"]["new-checkout-flow"];
            assert_eq!(result["key"].as_str(), Some(*variant), "{qa}");
            assert_eq!(result["metadata"]["segmentName"], "US customers", "{qa}");
            match *variant {
                "control" => {
                    assert_eq!(result["value"], "control");
                    assert_eq!(result["payload"], payload);
                }
                "treatment" => assert_eq!(result["value"], "treatment"),
                _ => assert_eq!(result["metadata"]["default"], true),
            }
            assert!(!qa["explanations"].as_array().unwrap().is_empty(), "{qa}");
        }
    }
    let in_segment = &seen["control"][0];
    for user in [
        json!({"user_id": in_segment, "country": "FR"}),
        json!({"user_id": in_segment}),
    ] {
        let qa = srv.evaluate("new-checkout-flow", user).await;
        assert_eq!(qa["variant"], "off", "{qa}");
        assert_eq!(
            qa["results"]["new-checkout-flow"]["metadata"]["segmentName"], "All Other Users",
            "{qa}"
        );
    }

    // A new salt is accepted with a warning that users move, and is used at once.
    let r = srv
        .patch(
            "/api/v1/flags/new-checkout-flow",
            6,
            &json!({"bucketing_salt": "Reshuff1"}),
        )
        .await
        .ok(200);
    assert_eq!(
        (r.etag(), r.json["bucketing_salt"].as_str()),
        (7, Some("Reshuff1"))
    );
    let warnings = strings(&r.json["warnings"]).join(" ");
    assert!(
        warnings.contains("salt") && warnings.contains("users") && warnings.contains("move"),
        "{}",
        r.text
    );
    let r = srv
        .patch(
            "/api/v1/flags/new-checkout-flow",
            7,
            &json!({"description": "same salt"}),
        )
        .await
        .ok(200);
    assert!(r.json.get("warnings").is_none(), "{}", r.text);
    for user in ["user-1", "user-2", "user-3", "user-4"] {
        let qa = srv
            .evaluate(
                "new-checkout-flow",
                json!({"user_id": user, "country": "US"}),
            )
            .await;
        assert_eq!(
            qa["variant"].as_str(),
            Some(expected_variant("Reshuff1", user)),
            "{user}"
        );
    }
    let versions = srv
        .get("/api/v1/flags/new-checkout-flow/versions")
        .await
        .ok(200);
    assert_eq!(versions.json.as_array().unwrap().len(), 8);
}

/// Seed 000 says to QA a flag before activating it. The QA endpoint evaluates an inactive flag
/// as served now (`off` for everyone), so QA cannot show what the targeting will do before the
/// flag goes live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_000_qa_before_activation_shows_the_targeting() {
    let srv = Server::sqlite().await;
    srv.create_project("Web Store").await;
    srv.flag_in(
        "web-store",
        "checkout",
        json!({"segments": [{"name": "US", "percentage": 100,
                              "conditions": [{"type": "user_field", "field": "country", "op": "is", "values": ["US"]}]}]}),
    )
    .await;
    let qa = srv
        .evaluate("checkout", json!({"user_id": "u1", "country": "US"}))
        .await;
    assert_eq!(qa["variant"], "on", "QA of the inactive flag: {qa}");
    let qa = srv
        .evaluate("checkout", json!({"user_id": "u1", "country": "FR"}))
        .await;
    assert_eq!(qa["variant"], "off", "{qa}");
    srv.assert_no_server_errors();
}

async fn concurrent_writes_one_wins(srv: &Server) {
    srv.create_project("Race").await;
    srv.flag_in("race", "contested", json!({})).await;
    let path = "/api/v1/flags/contested";

    // Writers on separate connections, all based on version 1, released together.
    let writers = 6;
    let barrier = Arc::new(tokio::sync::Barrier::new(writers));
    let mut tasks = Vec::new();
    for i in 0..writers {
        let request = reqwest::Client::new()
            .patch(srv.url(path))
            .bearer_auth(&srv.admin)
            .header("If-Match", "\"1\"")
            .json(&json!({"name": format!("writer {i}"), "tags": [format!("t{i}")]}));
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            request.send().await.unwrap()
        }));
    }
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let r = srv.read(task.await.unwrap()).await;
        match r.status {
            200 => winners.push((i, r)),
            _ => losers.push(r),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one write wins: {:?}",
        winners.iter().map(|(_, r)| &r.text).collect::<Vec<_>>()
    );
    let (winner, won) = winners.pop().unwrap();
    assert_eq!(won.etag(), 2);
    for r in &losers {
        r.err(409, "version_conflict", None);
        assert_eq!(r.json["current_version"], 2, "{}", r.text);
    }

    // The winner's change is stored, and the history has nothing else.
    let stored = srv.flag("contested").await;
    assert_eq!(stored.etag(), 2);
    assert_eq!(stored.json["name"], format!("writer {winner}"));
    assert_eq!(strings(&stored.json["tags"]), [format!("t{winner}")]);
    assert_eq!(
        history(srv, "contested").await,
        [(2, "update".to_owned()), (1, "create".to_owned())]
    );
    let v2 = srv
        .get("/api/v1/flags/contested/versions/2")
        .await
        .ok(200)
        .json;
    assert_eq!(v2["flag"]["name"], format!("writer {winner}"));

    // A retry on the stale version still loses; no version at all is 428.
    srv.patch(path, 1, &json!({"name": "late"}))
        .await
        .err(409, "version_conflict", None);
    srv.patch(path, None, &json!({"name": "blind"}))
        .await
        .err(428, "version_required", None);
    srv.post_if("/api/v1/flags/contested/activate", None)
        .await
        .err(428, "version_required", None);
    srv.delete("/api/v1/flags/contested/variants/on", None)
        .await
        .err(428, "version_required", None);
    assert_eq!(srv.version("contested").await, 2);

    // Concurrent state changes on one version: one wins as well.
    let a = reqwest::Client::new();
    let b = reqwest::Client::new();
    let activate = a
        .post(srv.url("/api/v1/flags/contested/activate"))
        .bearer_auth(&srv.admin)
        .header("If-Match", "\"2\"");
    let rename = b
        .patch(srv.url(path))
        .bearer_auth(&srv.admin)
        .header("If-Match", "\"2\"")
        .json(&json!({"name": "renamed"}));
    let (x, y) = tokio::join!(activate.send(), rename.send());
    let (x, y) = (srv.read(x.unwrap()).await, srv.read(y.unwrap()).await);
    let mut statuses = [x.status, y.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{} / {}", x.text, y.text);
    let stored = srv.flag("contested").await;
    assert_eq!(stored.etag(), 3);
    let contested = stored.json;

    // Concurrent creates: distinct keys all succeed; one key is created once.
    let created = send_together(
        srv,
        (0..8)
            .map(|i| json!({"project": "race", "name": format!("Parallel {i}")}))
            .collect(),
    )
    .await;
    assert!(
        created.iter().all(|r| r.status == 201),
        "{:?}",
        created.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    let same = send_together(
        srv,
        (0..4)
            .map(|i| json!({"project": "race", "name": "Same", "description": format!("{i}")}))
            .collect(),
    )
    .await;
    let mut statuses: Vec<u16> = same.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [201, 409, 409, 409],
        "{:?}",
        same.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    for r in same.iter().filter(|r| r.status == 409) {
        r.err(409, "flag_key_taken", Some("key"));
    }
    let listed = srv.get("/api/v1/flags?project=race").await.ok(200).json;
    assert_eq!(listed["total"], 10);
    assert_eq!(history(srv, "same").await.len(), 1);

    if x.status == 200 {
        assert_eq!(
            (contested["state"].as_str(), contested["name"].as_str()),
            (Some("active"), Some(format!("writer {winner}").as_str()))
        );
    } else {
        assert_eq!(
            (contested["state"].as_str(), contested["name"].as_str()),
            (Some("inactive"), Some("renamed"))
        );
    }
}

/// POSTs each body to `/api/v1/flags` from its own client, all released together.
async fn send_together(srv: &Server, bodies: Vec<Value>) -> Vec<common::Resp> {
    let barrier = Arc::new(tokio::sync::Barrier::new(bodies.len()));
    let mut tasks = Vec::new();
    for body in bodies {
        let request = reqwest::Client::new()
            .post(srv.url("/api/v1/flags"))
            .bearer_auth(&srv.admin)
            .json(&body);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            request.send().await.unwrap()
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.push(srv.read(task.await.unwrap()).await);
    }
    out
}

/// (version, action) of a flag's history, newest first.
async fn history(srv: &Server, key: &str) -> Vec<(i64, String)> {
    let h = srv
        .get(&format!("/api/v1/flags/{key}/versions"))
        .await
        .ok(200)
        .json;
    h.as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The changed paths of a comparison, sorted (the service lists them in JSON key order).
fn paths(comparison: &Value) -> Vec<String> {
    let mut paths: Vec<String> = comparison["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap().to_owned())
        .collect();
    paths.sort();
    paths
}

/// The field names of a summary such as `changed a, b`, sorted.
fn summary_fields(summary: &str) -> Vec<&str> {
    let mut fields: Vec<&str> = summary
        .strip_prefix("changed ")
        .unwrap_or(summary)
        .split(", ")
        .collect();
    fields.sort_unstable();
    fields
}

async fn history_compare_and_restore(srv: &Server) {
    srv.create_project("Hist").await;
    srv.flag_in("hist", "hist", json!({"name": "History"}))
        .await;
    let base = "/api/v1/flags/hist";
    srv.patch(base, 1, &json!({"name": "History two"}))
        .await
        .ok(200);
    let segments = json!([{"name": "Beta", "percentage": 20,
                           "conditions": [{"type": "user_property", "property": "beta", "op": "is", "values": ["true"]}]}]);
    srv.patch(
        base,
        2,
        &json!({"segments": segments, "all_other_users": {"percentage": 30, "weights": {"on": 1}}}),
    )
    .await
    .ok(200);
    srv.post_if(&format!("{base}/activate"), 3).await.ok(200);

    // Newest first, with who, what and a summary.
    let versions = srv.get(&format!("{base}/versions")).await.ok(200).json;
    let rows: Vec<(i64, &str, &str, &str)> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            assert!(v["at"].as_i64().unwrap() > 0);
            assert!(v.get("flag").is_none(), "the list carries no documents");
            let summary = v["summary"].as_str().unwrap();
            (
                v["version"].as_i64().unwrap(),
                v["actor"].as_str().unwrap(),
                v["action"].as_str().unwrap(),
                summary,
            )
        })
        .collect();
    let actions: Vec<(i64, &str, &str)> = rows
        .iter()
        .map(|&(v, who, what, _)| (v, who, what))
        .collect();
    assert_eq!(
        actions,
        [
            (4, "admin", "activate"),
            (3, "admin", "update"),
            (2, "admin", "update"),
            (1, "admin", "create")
        ]
    );
    assert_eq!(rows[0].3, "activate");
    assert!(rows[1].3.starts_with("changed "), "{}", rows[1].3);
    assert_eq!(summary_fields(rows[1].3), ["all_other_users", "segments"]);
    assert_eq!(rows[2].3, "changed name");
    assert_eq!(rows[3].3, "created");
    let page = srv
        .get(&format!("{base}/versions?limit=2"))
        .await
        .ok(200)
        .json;
    assert_eq!(
        page.as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [4, 3]
    );
    let page = srv
        .get(&format!("{base}/versions?before=3"))
        .await
        .ok(200)
        .json;
    assert_eq!(
        page.as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [2, 1]
    );
    let v2 = srv.get(&format!("{base}/versions/2")).await.ok(200).json;
    assert_eq!(
        (
            v2["version"].as_i64(),
            v2["flag"]["name"].as_str(),
            v2["flag"]["version"].as_i64()
        ),
        (Some(2), Some("History two"), Some(2))
    );
    srv.get(&format!("{base}/versions/99"))
        .await
        .err(404, "not_found", None);

    // Comparison lists the changed paths, without bookkeeping.
    let c = srv
        .get(&format!("{base}/versions/compare?from=1&to=3"))
        .await
        .ok(200)
        .json;
    assert_eq!((c["from"].as_i64(), c["to"].as_i64()), (Some(1), Some(3)));
    assert_eq!(
        paths(&c),
        ["all_other_users.percentage", "name", "segments[0]"]
    );
    let name = c["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "name")
        .unwrap();
    assert_eq!(
        (name["before"].as_str(), name["after"].as_str()),
        (Some("History"), Some("History two"))
    );
    let c = srv
        .get(&format!("{base}/versions/compare?from=3&to=4"))
        .await
        .ok(200)
        .json;
    assert_eq!(paths(&c), ["state"]);
    assert_eq!(
        (
            c["changes"][0]["before"].as_str(),
            c["changes"][0]["after"].as_str()
        ),
        (Some("inactive"), Some("active"))
    );
    srv.get(&format!("{base}/versions/compare?from=1&to=42"))
        .await
        .err(404, "not_found", None);
    let r = srv.get(&format!("{base}/versions/compare?from=1")).await;
    assert_eq!((r.status, r.code()), (400, "invalid_query"), "{}", r.text);

    // Restore version 2: a new version with its configuration; the state stays active.
    srv.post_if(&format!("{base}/versions/2/restore"), None)
        .await
        .err(428, "version_required", None);
    let stale = srv.post_if(&format!("{base}/versions/2/restore"), 3).await;
    stale.err(409, "version_conflict", None);
    assert_eq!(stale.json["current_version"], 4);
    srv.post_if(&format!("{base}/versions/77/restore"), 4)
        .await
        .err(404, "not_found", None);
    let r = srv
        .post_if(&format!("{base}/versions/2/restore"), 4)
        .await
        .ok(200);
    assert_eq!(
        (r.etag(), r.json["state"].as_str(), r.json["name"].as_str()),
        (5, Some("active"), Some("History two"))
    );
    assert_eq!(r.json["segments"], json!([]));
    assert!(
        strings(&r.json["warnings"])
            .iter()
            .any(|w| w.contains("version 2")),
        "{}",
        r.text
    );
    let c = srv
        .get(&format!("{base}/versions/compare?from=2&to=5"))
        .await
        .ok(200)
        .json;
    assert_eq!(
        paths(&c),
        ["state"],
        "the restored configuration equals version 2's: {c}"
    );
    let latest = &srv
        .get(&format!("{base}/versions?limit=1"))
        .await
        .ok(200)
        .json[0];
    assert_eq!(
        (latest["version"].as_i64(), latest["action"].as_str()),
        (Some(5), Some("restore"))
    );
    assert!(
        latest["summary"].as_str().unwrap().starts_with("restored"),
        "{latest}"
    );

    // A restore that would break a prerequisite rule is refused.
    srv.flag_in("hist", "infra", json!({})).await;
    let add = srv
        .send(
            srv.req(Method::POST, "/api/v1/flags/infra/variants")
                .header("If-Match", "\"1\"")
                .json(&json!({"key": "beta"})),
        )
        .await
        .ok(201);
    assert_eq!(add.etag(), 2);
    srv.flag_in(
        "hist",
        "uses-beta",
        json!({"prerequisites": [{"flag": "infra", "variants": ["beta"]}]}),
    )
    .await;
    let r = srv
        .post_if("/api/v1/flags/infra/versions/1/restore", 2)
        .await;
    r.err(409, "variant_in_use", Some("variants"));
    assert_eq!(r.blocking(), ["uses-beta"]);
    assert!(
        r.message().contains("beta") && r.message().contains("uses-beta"),
        "{}",
        r.text
    );
    assert_eq!(srv.version("infra").await, 2);
}
