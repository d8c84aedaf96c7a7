//! Cohorts (CSV and JSON uploads, atomic replacement, use in targeting and inclusions, QA
//! enrichment, protected deletion) and the import of Amplitude flag configs and cohorts, whose
//! QA results must equal the engine's on the raw configs.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
mod common;

use common::{keys, strings, Server};
use serde_json::{json, Value};

on_both_backends!(
    cohorts_upload_replace_use_and_delete,
    import_amplitude_configs,
    import_over_the_model_limits
);

/// The members of a cohort, sorted.
async fn members(srv: &Server, project: &str, cohort: &str) -> Vec<String> {
    let r = srv
        .get(&format!(
            "/api/v1/projects/{project}/cohorts/{cohort}/members"
        ))
        .await
        .ok(200);
    let mut m = strings(&r.json);
    m.sort();
    m
}

async fn cohorts_upload_replace_use_and_delete(srv: &Server) {
    srv.create_project("Coh").await;
    let cohort = |id: &str| format!("/api/v1/projects/coh/cohorts/{id}");

    // CSV with a header, blank lines and a repeat.
    let r = srv
        .put_raw(
            &format!("{}?name=Beta%20users", cohort("beta-users")),
            None,
            "text/csv",
            "user_id\nu1\nu2\n\nu3\r\nu2\n",
        )
        .await
        .ok(200);
    assert_eq!(
        (r.json["id"].as_str(), r.json["name"].as_str()),
        (Some("beta-users"), Some("Beta users"))
    );
    assert_eq!(
        (
            r.json["size"].as_i64(),
            r.json["group_type"].as_str(),
            r.etag()
        ),
        (Some(3), Some("User"), 1)
    );
    assert_eq!(members(srv, "coh", "beta-users").await, ["u1", "u2", "u3"]);
    // CSV with several columns: the first one counts.
    let r = srv
        .put_raw(
            &cohort("csv-wide"),
            None,
            "text/csv",
            "id,email\nu7,a@example.com\nu8,b@example.com\n",
        )
        .await
        .ok(200);
    assert_eq!(r.json["size"], 2);
    assert_eq!(members(srv, "coh", "csv-wide").await, ["u7", "u8"]);
    // A JSON array and Amplitude's {"memberIds": [...]}.
    let r = srv
        .put(&cohort("json-list"), None, &json!(["a", "b", "c"]))
        .await
        .ok(200);
    assert_eq!(r.json["size"], 3);
    let r = srv
        .put(
            &cohort("amplitude"),
            None,
            &json!({"memberIds": ["x", "y", "x"]}),
        )
        .await
        .ok(200);
    assert_eq!(r.json["size"], 2);
    assert_eq!(members(srv, "coh", "amplitude").await, ["x", "y"]);
    // A JSON body on the collection.
    let r = srv
        .post(
            "/api/v1/projects/coh/cohorts",
            &json!({"id": "vip", "name": "VIP", "members": ["v1", "v2"]}),
        )
        .await
        .ok(201);
    assert_eq!((r.json["size"].as_i64(), r.etag()), (Some(2), 1));
    let list = srv.get("/api/v1/projects/coh/cohorts").await.ok(200).json;
    let sizes: Vec<(&str, i64)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["size"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        sizes,
        [
            ("amplitude", 2),
            ("beta-users", 3),
            ("csv-wide", 2),
            ("json-list", 3),
            ("vip", 2)
        ]
    );
    srv.put_raw(&cohort("xml"), None, "application/xml", "<ids/>")
        .await
        .err(415, "unsupported_media_type", Some("Content-Type"));
    srv.put(&cohort("bad"), None, &json!({"ids": ["a"]}))
        .await
        .err(422, "invalid_members", Some("members"));
    srv.put(&cohort("bad id"), None, &json!(["a"]))
        .await
        .err(422, "invalid_key", Some("id"));
    srv.get(&cohort("ghost")).await.err(404, "not_found", None);

    // Re-upload replaces the members atomically, based on the version read.
    srv.put_raw(&cohort("beta-users"), None, "text/csv", "u4\nu5\n")
        .await
        .err(428, "version_required", None);
    let stale = srv
        .put_raw(&cohort("beta-users"), 7, "text/csv", "u4\nu5\n")
        .await;
    stale.err(409, "version_conflict", None);
    assert_eq!(stale.json["current_version"], 1);
    let r = srv
        .put_raw(
            &format!("{}?name=Beta%20users", cohort("beta-users")),
            1,
            "text/csv",
            "u4\nu5\n",
        )
        .await
        .ok(200);
    assert_eq!((r.json["size"].as_i64(), r.etag()), (Some(2), 2));
    assert_eq!(members(srv, "coh", "beta-users").await, ["u4", "u5"]);
    srv.put(&cohort("beta-users"), 2, &json!(["u6", ""]))
        .await
        .err(422, "invalid_member", Some("members[1]"));
    let r = srv.get(&cohort("beta-users")).await.ok(200);
    assert_eq!(
        (r.json["size"].as_i64(), r.etag()),
        (Some(2), 2),
        "a refused upload changes nothing"
    );
    assert_eq!(members(srv, "coh", "beta-users").await, ["u4", "u5"]);
    srv.put(
        &format!("{}?group_type=company", cohort("beta-users")),
        2,
        &json!(["acme"]),
    )
    .await
    .err(422, "immutable", Some("group_type"));

    // A cohort in a segment condition and in inclusions.
    srv.flag_in(
        "coh",
        "cohort-gated",
        json!({"segments": [{"name": "Beta", "percentage": 100,
                              "conditions": [{"type": "cohort", "op": "set contains any", "values": ["beta-users"]}]}],
               "inclusions": {"on": {"cohorts": ["vip"]}}}),
    )
    .await;
    srv.action("cohort-gated", "activate").await.ok(200);
    for (user, variant, segment, cohorts) in [
        ("u4", "on", "Beta", json!(["beta-users"])),
        ("v2", "on", "individual-inclusions", json!(["vip"])),
        ("u1", "off", "All Other Users", json!([])),
        ("nobody", "off", "All Other Users", json!([])),
    ] {
        let qa = srv.evaluate("cohort-gated", json!({"user_id": user})).await;
        assert_eq!(qa["variant"], variant, "{user}: {qa}");
        assert_eq!(
            qa["results"]["cohort-gated"]["metadata"]["segmentName"], segment,
            "{user}: {qa}"
        );
        assert_eq!(
            qa["user"]["cohort_ids"], cohorts,
            "the user as evaluated: {qa}"
        );
        assert_eq!(qa["user"]["user_id"], user);
    }

    // A group cohort.
    let r = srv
        .put_raw(
            &format!("{}?group_type=company", cohort("big-accounts")),
            None,
            "text/csv",
            "acme\nglobex\n",
        )
        .await
        .ok(200);
    assert_eq!(r.json["group_type"], "company");
    srv.flag_in(
        "coh",
        "group-gated",
        json!({"segments": [{"name": "Big", "percentage": 100,
                              "conditions": [{"type": "group_cohort", "group_type": "company", "op": "set contains any", "values": ["big-accounts"]}]}]}),
    )
    .await;
    srv.action("group-gated", "activate").await.ok(200);
    let qa = srv
        .evaluate(
            "group-gated",
            json!({"user_id": "u9", "groups": {"company": ["acme"]}}),
        )
        .await;
    assert_eq!(qa["variant"], "on", "{qa}");
    assert_eq!(
        qa["user"]["group_cohort_ids"],
        json!({"company": {"acme": ["big-accounts"]}})
    );
    let qa = srv
        .evaluate(
            "group-gated",
            json!({"user_id": "u9", "groups": {"company": ["initech"]}}),
        )
        .await;
    assert_eq!(qa["variant"], "off", "{qa}");

    // Deleting a cohort in use is refused, naming the flags; allowed once unused.
    srv.delete(&cohort("beta-users"), None)
        .await
        .err(428, "version_required", None);
    let r = srv.delete(&cohort("beta-users"), 2).await;
    r.err(409, "cohort_in_use", None);
    assert_eq!(r.blocking(), ["cohort-gated"]);
    assert!(r.message().contains("cohort-gated"), "{}", r.text);
    let r = srv.delete(&cohort("vip"), 1).await;
    r.err(409, "cohort_in_use", None);
    assert_eq!(r.blocking(), ["cohort-gated"]);
    let r = srv.delete(&cohort("big-accounts"), 1).await;
    assert_eq!(r.blocking(), ["group-gated"], "{}", r.text);
    srv.update("cohort-gated", &json!({"segments": [], "inclusions": {}}))
        .await
        .ok(200);
    srv.delete(&cohort("beta-users"), 1)
        .await
        .err(409, "version_conflict", None);
    srv.delete(&cohort("beta-users"), 2).await.ok(204);
    srv.delete(&cohort("vip"), 1).await.ok(204);
    srv.get(&cohort("beta-users"))
        .await
        .err(404, "not_found", None);
    let list = srv.get("/api/v1/projects/coh/cohorts").await.ok(200).json;
    assert_eq!(
        list.as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["amplitude", "big-accounts", "csv-wide", "json-list"]
    );
    // The flag cannot reference it any more.
    srv.update(
        "cohort-gated",
        &json!({"inclusions": {"on": {"cohorts": ["vip"]}}}),
    )
    .await
    .err(422, "unknown_cohort", Some("inclusions.on.cohorts[0]"));
}

/// Three Amplitude configs: an experiment behind a prerequisite (with a `flag-dependencies`
/// gate, inclusions and bucketed segments), the prerequisite, and a cohort-targeted flag.
fn configs(beta_cohorts: &[&str]) -> Value {
    json!([
        {"key": "imp-checkout",
         "metadata": {"deployed": true, "evaluationMode": "local", "flagType": "experiment", "flagVersion": 12, "experimentKey": "exp-1"},
         "dependencies": ["imp-infra"],
         "variants": {"control": {"key": "control", "value": "control"},
                      "treatment": {"key": "treatment", "value": "treatment", "payload": {"layout": "b"}},
                      "off": {"key": "off", "metadata": {"default": true}}},
         "segments": [
            {"metadata": {"segmentName": "individual-inclusions"}, "variant": "treatment",
             "conditions": [[{"selector": ["context", "user", "user_id"], "op": "is", "values": ["qa-1"]}],
                            [{"selector": ["context", "user", "device_id"], "op": "is", "values": ["qa-1"]}]]},
            {"metadata": {"segmentName": "flag-dependencies"}, "variant": "off",
             "conditions": [[{"selector": ["result", "imp-infra", "key"], "op": "is not", "values": ["on"]}]]},
            {"metadata": {"segmentName": "US"}, "variant": "off",
             "conditions": [[{"selector": ["context", "user", "country"], "op": "is", "values": ["US"]}]],
             "bucket": {"selector": ["context", "user", "user_id"], "salt": "Xq93kLm2",
                        "allocations": [{"range": [0, 80], "distributions": [
                            {"variant": "control", "range": [0, 21474837]},
                            {"variant": "treatment", "range": [21474836, 42949673]}]}]}},
            {"metadata": {"segmentName": "All Other Users"}, "variant": "off",
             "bucket": {"selector": ["context", "user", "user_id"], "salt": "Xq93kLm2",
                        "allocations": [{"range": [0, 10], "distributions": [
                            {"variant": "control", "range": [0, 21474837]},
                            {"variant": "treatment", "range": [21474836, 42949673]}]}]}}]},
        {"key": "imp-infra",
         "metadata": {"deployed": false, "evaluationMode": "local", "flagType": "release", "flagVersion": 3},
         "variants": {"on": {"key": "on", "value": "on"}, "off": {"key": "off", "metadata": {"default": true}}},
         "segments": [
            {"metadata": {"segmentName": "Premium"}, "variant": "on",
             "conditions": [[{"selector": ["context", "user", "user_properties", "premium"], "op": "is", "values": ["true"]}]]},
            {"metadata": {"segmentName": "All Other Users"}, "variant": "off",
             "bucket": {"selector": ["context", "user", "device_id"], "salt": "infraSLT",
                        "allocations": [{"range": [0, 50], "distributions": [{"variant": "on", "range": [0, 42949673]}]}]}}]},
        {"key": "imp-beta",
         "metadata": {"deployed": true, "evaluationMode": "remote", "flagType": "release", "flagVersion": 1},
         "variants": {"on": {"key": "on", "value": "on", "payload": [1, 2, 3]}, "off": {"key": "off", "metadata": {"default": true}}},
         "segments": [
            {"metadata": {"segmentName": "Beta cohort"}, "variant": "on",
             "conditions": [[{"selector": ["context", "user", "cohort_ids"], "op": "set contains any", "values": beta_cohorts}]]},
            {"metadata": {"segmentName": "All Other Users"}, "variant": "off"}]}
    ])
}

fn cohorts(beta: &[&str]) -> Value {
    json!([
        {"cohortId": "c-beta", "groupType": "User", "memberIds": beta},
        {"cohortId": "c-empty", "groupType": "User", "memberIds": []}
    ])
}

fn sorted(v: &Value) -> Vec<String> {
    let mut s = strings(v);
    s.sort();
    s
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

/// QA of `key` for `user` must equal the engine on the raw configs, for a user enriched with
/// `cohorts` as serving does (a user with a `user_id` gets their cohorts, even none), byte for
/// byte once serialized.
async fn check_qa(srv: &Server, raw: &Value, key: &str, user: Value, cohorts: &[&str]) -> String {
    let qa = srv.evaluate(key, user.clone()).await;
    let mut enriched = user;
    if enriched.get("user_id").is_some() {
        enriched["cohort_ids"] = json!(cohorts);
    }
    assert_eq!(qa["user"], enriched, "the user as evaluated");
    let set = vexil_eval::FlagSet::from_json(&raw.to_string()).unwrap();
    let context = vexil_eval::Context::from_sdk_user(vexil_eval::Value::from(enriched.clone()));
    let results = vexil_eval::evaluate(&set, &context, &[key]).unwrap();
    let expected = serde_json::to_value(&results).unwrap();
    assert_eq!(
        serde_json::to_string(&qa["results"][key]).unwrap(),
        serde_json::to_string(&expected[key]).unwrap(),
        "{key} for {enriched}"
    );
    assert_eq!(
        qa["results"], expected,
        "{key} and its prerequisites for {enriched}"
    );
    let variant = results.get(key).map_or("off", |r| r.key());
    assert_eq!(qa["variant"], variant);
    variant.to_owned()
}

async fn import_amplitude_configs(srv: &Server) {
    srv.create_project("Imp").await;
    srv.create_deployment("imp", "Production", "server").await;
    let raw = configs(&["c-beta"]);
    let body =
        json!({"deployment": "Production", "flags": raw, "cohorts": cohorts(&["u-1", "u-2"])});
    let report = srv
        .post("/api/v1/projects/imp/import", &body)
        .await
        .ok(200)
        .json;
    assert_eq!(
        sorted(&report["created"]),
        ["imp-beta", "imp-checkout", "imp-infra"]
    );
    for field in [
        "updated",
        "unchanged",
        "cohorts_updated",
        "cohorts_unchanged",
    ] {
        assert_eq!(report[field], json!([]), "{field}: {report}");
    }
    assert_eq!(sorted(&report["cohorts_created"]), ["c-beta", "c-empty"]);

    // Listed, attached to the deployment, versioned, active, served as given.
    let listed = srv
        .get("/api/v1/flags?project=imp&deployment=production")
        .await
        .ok(200)
        .json;
    assert_eq!(
        keys(&listed["items"]),
        ["imp-beta", "imp-checkout", "imp-infra"]
    );
    let listed = srv
        .get("/api/v1/flags?project=imp&tag=imported&state=active")
        .await
        .ok(200)
        .json;
    assert_eq!(listed["total"], 3);
    let checkout = srv.flag("imp-checkout").await;
    assert_eq!(checkout.etag(), 1);
    let f = &checkout.json;
    assert_eq!(strings(&f["deployments"]), ["production"]);
    assert_eq!(
        (
            f["state"].as_str(),
            f["type"].as_str(),
            f["experiment_key"].as_str()
        ),
        (Some("active"), Some("experiment"), Some("exp-1"))
    );
    assert_eq!(
        (f["evaluation_mode"].as_str(), f["bucketing_salt"].as_str()),
        (Some("local"), Some("Xq93kLm2"))
    );
    assert_eq!(keys(&f["variants"]), ["control", "treatment"]);
    assert_eq!(
        f["prerequisites"],
        json!([{"flag": "imp-infra", "variants": ["on"]}])
    );
    assert_eq!(f["imported_config"], raw[0]);
    let infra = srv.flag("imp-infra").await.json;
    assert_eq!(
        (
            infra["bucketing_unit"].as_str(),
            infra["bucketing_salt"].as_str()
        ),
        (Some("device_id"), Some("infraSLT"))
    );
    assert_eq!(srv.flag("imp-beta").await.json["evaluation_mode"], "remote");
    for key in ["imp-beta", "imp-checkout", "imp-infra"] {
        assert_eq!(history(srv, key).await, [(1, "import".to_owned())], "{key}");
    }
    let card = srv
        .get("/api/v1/flags/imp-infra/dependencies")
        .await
        .ok(200)
        .json;
    assert_eq!(keys(&card["dependents"]), ["imp-checkout"]);
    let list = srv.get("/api/v1/projects/imp/cohorts").await.ok(200).json;
    let sizes: Vec<(&str, i64)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["size"].as_i64().unwrap()))
        .collect();
    assert_eq!(sizes, [("c-beta", 2), ("c-empty", 0)]);

    // QA equals the engine on the raw configs.
    let prem = json!({"premium": true});
    let mut seen = std::collections::BTreeSet::new();
    for user in [
        json!({"user_id": "qa-1"}),
        json!({"device_id": "qa-1", "country": "US"}),
        json!({"user_id": "user-108", "country": "US"}),
        json!({"user_id": "user-108", "country": "US", "user_properties": prem}),
        json!({"user_id": "user-386", "country": "US", "user_properties": {"premium": "true"}}),
        json!({"user_id": "user-58", "country": "US", "user_properties": prem}),
        json!({"user_id": "user-51", "country": "FR", "user_properties": prem}),
        json!({"user_id": "user-386", "country": "FR", "device_id": "d-1", "user_properties": prem}),
        json!({"user_id": "user-7", "country": "US", "device_id": "dev-4"}),
        json!({"country": "US", "user_properties": prem}),
    ]
    .into_iter()
    .chain((0..8).map(|i| json!({"user_id": format!("buyer-{i}"), "country": "US", "user_properties": prem})))
    {
        seen.insert(check_qa(srv, &raw, "imp-checkout", user, &[]).await);
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["control", "off", "treatment"],
        "the sample reaches every outcome"
    );
    for (user, cohorts) in [
        (json!({"user_id": "u-1"}), &["c-beta"][..]),
        (json!({"user_id": "u-2", "device_id": "x"}), &["c-beta"][..]),
        (json!({"user_id": "u-3"}), &[][..]),
        (json!({"device_id": "u-1"}), &[][..]),
    ] {
        check_qa(srv, &raw, "imp-beta", user, cohorts).await;
    }
    check_qa(srv, &raw, "imp-infra", json!({"device_id": "dev-4"}), &[]).await;

    // The mirrored prerequisite protects the prerequisite; the targeting is edited as config.
    let r = srv.action("imp-infra", "archive").await;
    r.err(409, "has_dependents", None);
    assert_eq!(r.blocking(), ["imp-checkout"]);
    srv.update("imp-beta", &json!({"segments": []})).await.err(
        422,
        "imported_flag",
        Some("imported_config"),
    );

    // Importing the same files again changes nothing.
    let report = srv
        .post("/api/v1/projects/imp/import", &body)
        .await
        .ok(200)
        .json;
    assert_eq!(
        sorted(&report["unchanged"]),
        ["imp-beta", "imp-checkout", "imp-infra"]
    );
    assert_eq!(sorted(&report["cohorts_unchanged"]), ["c-beta", "c-empty"]);
    for field in ["created", "updated", "cohorts_created", "cohorts_updated"] {
        assert_eq!(report[field], json!([]), "{field}: {report}");
    }
    for key in ["imp-beta", "imp-checkout", "imp-infra"] {
        assert_eq!(history(srv, key).await.len(), 1, "{key} has no new version");
    }

    // One changed config (and cohort) updates only that one.
    let raw2 = configs(&["c-beta", "c-empty"]);
    let body2 = json!({"deployment": "production", "flags": raw2, "cohorts": cohorts(&["u-1", "u-2", "u-3"])});
    let report = srv
        .post("/api/v1/projects/imp/import", &body2)
        .await
        .ok(200)
        .json;
    assert_eq!(sorted(&report["updated"]), ["imp-beta"]);
    assert_eq!(sorted(&report["unchanged"]), ["imp-checkout", "imp-infra"]);
    assert_eq!(sorted(&report["cohorts_updated"]), ["c-beta"]);
    assert_eq!(sorted(&report["cohorts_unchanged"]), ["c-empty"]);
    assert_eq!(
        history(srv, "imp-beta").await,
        [(2, "import".to_owned()), (1, "import".to_owned())]
    );
    assert_eq!(history(srv, "imp-checkout").await.len(), 1);
    assert_eq!(srv.flag("imp-beta").await.json["imported_config"], raw2[2]);
    check_qa(
        srv,
        &raw2,
        "imp-beta",
        json!({"user_id": "u-3"}),
        &["c-beta"],
    )
    .await;

    // Deactivated, an imported flag is marked inactive; QA still shows the targeting it will
    // serve once activated (SDKs get off meanwhile, which the compiler's tests cover).
    let user = json!({"user_id": "qa-1"});
    let qa = srv.evaluate("imp-checkout", user.clone()).await;
    assert_eq!(
        (qa["variant"].as_str(), qa["active"].as_bool()),
        (Some("treatment"), Some(true)),
        "{qa}"
    );
    srv.action("imp-checkout", "deactivate").await.ok(200);
    let qa = srv.evaluate("imp-checkout", user).await;
    assert_eq!(
        (qa["variant"].as_str(), qa["active"].as_bool()),
        (Some("treatment"), Some(false)),
        "{qa}"
    );

    // Refused imports change nothing.
    let r = srv
        .post(
            "/api/v1/projects/imp/import",
            &json!({"deployment": "staging", "flags": raw2}),
        )
        .await;
    r.err(404, "not_found", None);
    let bad = json!([{"key": "imp-bad", "variants": {"on": {"key": "on"}}, "segments": [{"variant": "on", "bucket": {"salt": 3}}]}]);
    let r = srv
        .post(
            "/api/v1/projects/imp/import",
            &json!({"deployment": "production", "flags": bad}),
        )
        .await;
    r.err(422, "invalid_flag_config", Some("flags[0]"));
    let cycle = json!([
        {"key": "loop-a", "dependencies": ["loop-b"], "variants": {}, "segments": []},
        {"key": "loop-b", "dependencies": ["loop-a"], "variants": {}, "segments": []}
    ]);
    let r = srv
        .post(
            "/api/v1/projects/imp/import",
            &json!({"deployment": "production", "flags": cycle}),
        )
        .await;
    assert!(
        r.status == 409 || r.status == 422,
        "a cycle is refused: {}",
        r.text
    );
    assert!(
        r.message().contains("loop-a") && r.message().contains("loop-b"),
        "{}",
        r.text
    );
    srv.flag_in("imp", "native", json!({})).await;
    let clash = json!([{"key": "native", "variants": {"on": {"key": "on"}}, "segments": [{"variant": "on"}]}]);
    srv.post(
        "/api/v1/projects/imp/import",
        &json!({"deployment": "production", "flags": clash}),
    )
    .await
    .err(409, "flag_key_taken", Some("key"));
    srv.post(
        "/api/v1/projects/imp/import",
        &json!({"deployment": "production"}),
    )
    .await
    .err(400, "invalid_field", None);
    let listed = srv.get("/api/v1/flags?project=imp").await.ok(200).json;
    assert_eq!(
        keys(&listed["items"]),
        ["imp-beta", "imp-checkout", "imp-infra", "native"]
    );
}

/// Every flag of project `lim`: key, version and imported config.
async fn lim_flags(srv: &Server) -> Vec<(String, i64, Value)> {
    let listed = srv.get("/api/v1/flags?project=lim").await.ok(200).json;
    let mut out = Vec::new();
    for key in keys(&listed["items"]) {
        let f = srv.flag(&key).await;
        let config = f.json["imported_config"].clone();
        out.push((key, f.etag(), config));
    }
    out
}

/// Imports past the model's limits (`vexil_core::limits`) answer 422 with the limit's code and
/// a message naming the flag and the JSON path, and store nothing: the project's flags, managed
/// and imported, stay as they were.
async fn import_over_the_model_limits(srv: &Server) {
    srv.create_project("Lim").await;
    srv.create_deployment("lim", "Production", "server").await;
    srv.flag_in("lim", "managed", json!({})).await;
    let raw = configs(&["c-beta"]);
    let body = json!({"deployment": "production", "flags": raw});
    srv.post("/api/v1/projects/lim/import", &body).await.ok(200);
    let before = lim_flags(srv).await;
    assert_eq!(before.len(), 4, "{before:?}");

    // A changed config for a stored flag, and a new flag with one value too many: neither is
    // stored.
    let mut changed = raw.clone();
    changed[0]["metadata"]["flagVersion"] = json!(13);
    let ids: Vec<String> = (0..20_001).map(|i| format!("user-{i}")).collect();
    let oversized = json!({"key": "checkout-v2", "variants": {"on": {"key": "on"}, "off": {"key": "off"}},
        "segments": [{"variant": "off"},
                     {"variant": "on", "conditions": [[{"selector": ["context", "user", "user_id"], "op": "is", "values": ids}]]}]});
    changed.as_array_mut().unwrap().push(oversized);
    let r = srv
        .post(
            "/api/v1/projects/lim/import",
            &json!({"deployment": "production", "flags": changed}),
        )
        .await;
    r.err(
        422,
        "too_many_values",
        Some("flags[3].segments[1].conditions[0][0].values"),
    );
    assert_eq!(
        r.message(),
        "flags[3] (checkout-v2): segments[1].conditions[0][0].values: 20001 values, at most 20000"
    );
    assert_eq!(lim_flags(srv).await, before, "nothing changed");

    // A 4 MB regex is refused by the config's size, before the config is parsed.
    let pattern = "a".repeat(4 << 20);
    let huge = json!([{"key": "big-regex", "variants": {"on": {"key": "on"}},
        "segments": [{"variant": "on", "conditions": [[{"selector": ["context", "user", "user_id"], "op": "regex match", "values": [pattern]}]]}]}]);
    let size = huge[0].to_string().len();
    let r = srv
        .post(
            "/api/v1/projects/lim/import",
            &json!({"deployment": "production", "flags": huge}),
        )
        .await;
    r.err(422, "config_too_large", Some("flags[0]"));
    assert_eq!(
        r.message(),
        format!("flags[0] (big-regex): {size} bytes, at most 1048576")
    );

    // A long pattern within a config of allowed size is refused before it is compiled.
    let long = json!([{"key": "long-regex", "variants": {"on": {"key": "on"}},
        "segments": [{"variant": "on", "conditions": [[{"selector": ["context", "user", "user_id"], "op": "regex match", "values": ["ok", "a".repeat(4097)]}]]}]}]);
    let r = srv
        .post(
            "/api/v1/projects/lim/import",
            &json!({"deployment": "production", "flags": long}),
        )
        .await;
    r.err(
        422,
        "regex_too_long",
        Some("flags[0].segments[0].conditions[0][0].values[1]"),
    );
    assert!(
        r.message().starts_with(
            "flags[0] (long-regex): segments[0].conditions[0][0].values[1]: 4097 bytes"
        ),
        "{}",
        r.text
    );
    assert_eq!(lim_flags(srv).await, before, "nothing changed");
}
