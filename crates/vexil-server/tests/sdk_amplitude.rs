//! The Amplitude-compatible SDK endpoints end to end, on both backends: flag download with its
//! filtering, ETags, compression, path normalisation and CORS; remote evaluation that gives
//! exactly what the engine gives on the downloaded configs, in every request shape (all base64
//! flavours, POST, flag keys, eval modes, v1 filtering); cohort enrichment and download; the
//! `[Experiment] <flag>` user properties that assignments and exposures set and targeting reads.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
mod common;

use std::io::Read;

use base64::Engine;
use common::sdk::{b64, Fixture};
use common::{keys, Server};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(
    download_filters_by_key_and_mode,
    download_etag_gzip_paths_and_cors,
    remote_evaluation_matches_the_engine,
    request_shapes_and_their_errors,
    cohorts_enrich_and_download,
    experiment_properties_feed_targeting,
);

/// A user cohort `beta` with u1..u20 (via CSV) and a group cohort `big-orgs` of type `org`.
async fn cohorts(srv: &Server, fx: &Fixture) {
    let members: String = (1..=20).map(|i| format!("u{i}\n")).collect();
    let path = format!("/api/v1/projects/{}/cohorts/beta", fx.project);
    srv.put_raw(&path, None, "text/csv", members).await.ok(200);
    let path = format!(
        "/api/v1/projects/{}/cohorts/big-orgs?group_type=org",
        fx.project
    );
    srv.put_raw(&path, None, "text/csv", "acme\nglobex\n")
        .await
        .ok(200);
}

/// A realistic set of flags: rollouts with weights, targeting on properties, versions,
/// cohorts and groups, inclusions, a release group and chained mutual exclusion.
async fn realistic_flags(srv: &Server, fx: &Fixture) {
    let variants = json!([
        {"key": "control", "payload": {"layout": "a"}},
        {"key": "treatment", "value": "treat", "payload": {"layout": "b", "n": 2.5}},
        {"key": "big"}
    ]);
    srv.live_flag(fx, "checkout", json!({
        "type": "experiment", "evaluation_mode": "remote", "variants": variants,
        "segments": [
            {"name": "Canada", "conditions": [{"type": "user_field", "field": "country", "op": "is", "values": ["CA"]}],
             "percentage": 100, "weights": {"treatment": 1}},
            {"name": "Beta", "conditions": [{"type": "cohort", "op": "set contains any", "values": ["beta"]}],
             "percentage": 60, "weights": {"control": 1, "treatment": 3}}
        ],
        "all_other_users": {"percentage": 40, "weights": {"control": 1, "treatment": 1, "big": 2}},
        "inclusions": {"big": {"ids": ["vip"]}}
    })).await;
    srv.live_flag(fx, "new-version", json!({
        "evaluation_mode": "local",
        "segments": [{"name": "Modern", "conditions": [
            {"type": "user_field", "field": "version", "op": "version greater or equal", "values": ["2.1.0"]},
            {"type": "user_property", "property": "age", "op": "greater", "values": ["17"]}
        ], "percentage": 100, "weights": {"on": 1}}],
        "all_other_users": {"percentage": 0, "weights": {"on": 1}}
    })).await;
    srv.live_flag(fx, "org-pricing", json!({
        "evaluation_mode": "remote", "bucketing_unit": "org",
        "segments": [
            {"name": "Big orgs", "conditions": [{"type": "group_cohort", "group_type": "org", "op": "set contains any", "values": ["big-orgs"]}],
             "percentage": 100, "weights": {"on": 1}},
            {"name": "Gold", "conditions": [{"type": "group_property", "group_type": "org", "property": "tier", "op": "is", "values": ["gold"]}],
             "percentage": 50, "weights": {"on": 1}}
        ],
        "all_other_users": {"percentage": 0, "weights": {"on": 1}}
    })).await;
    // Release group: primary on premium users, sub-features on top of it.
    srv.live_flag(fx, "primary", json!({
        "evaluation_mode": "local",
        "segments": [{"name": "Premium", "conditions": [{"type": "user_property", "property": "premium", "op": "is", "values": ["true"]}],
                      "percentage": 100, "weights": {"on": 1}}],
        "all_other_users": {"percentage": 0, "weights": {"on": 1}}
    })).await;
    srv.live_flag(fx, "sub-feature", json!({
        "evaluation_mode": "local",
        "prerequisites": [{"flag": "primary", "variants": ["on"]}],
        "segments": [{"name": "Beta", "conditions": [{"type": "user_property", "property": "beta", "op": "is", "values": ["true"]}],
                      "percentage": 100, "weights": {"on": 1}}],
        "all_other_users": {"percentage": 0, "weights": {"on": 1}},
        "inclusions": {"on": {"ids": ["tester"]}}
    })).await;
    // Chained mutual exclusion; experiment-1 itself is not attached (an ancestor only).
    let mut e1 = json!({"project": fx.project, "name": "experiment-1", "key": "experiment-1",
        "type": "experiment", "evaluation_mode": "local",
        "variants": [{"key": "control"}, {"key": "treatment"}],
        "all_other_users": {"percentage": 20, "weights": {"control": 1, "treatment": 1}}});
    e1["deployments"] = json!([]);
    srv.create_flag(e1).await;
    srv.action("experiment-1", "activate").await.ok(200);
    srv.live_flag(
        fx,
        "experiment-2",
        json!({
            "type": "experiment", "evaluation_mode": "local",
            "variants": [{"key": "control"}, {"key": "treatment"}],
            "prerequisites": [{"flag": "experiment-1", "variants": ["off"]}],
            "all_other_users": {"percentage": 100, "weights": {"control": 1, "treatment": 1}}
        }),
    )
    .await;
    // Inactive: served, to give `off`.
    srv.create_flag(json!({"project": fx.project, "name": "dormant", "key": "dormant",
        "deployments": ["prod", "web"], "all_other_users": {"percentage": 100, "weights": {"on": 1}}}))
        .await;
}

fn users() -> Vec<Value> {
    let countries = ["US", "CA", "DE", "NZ"];
    let orgs = ["acme", "initech", "globex", "umbrella"];
    (0..160)
        .map(|i| {
            let mut user = json!({
                "user_id": format!("u{i}"),
                "device_id": format!("d{}", i % 37),
                "country": countries[i % 4],
                "version": format!("2.{}.{}", i % 4, i % 3),
                "user_properties": {"premium": i % 3 == 0, "beta": i % 2 == 0, "age": 10 + i % 20},
                "groups": {"org": [orgs[i % 4]]},
                "group_properties": {"org": {orgs[i % 4]: {"tier": if i % 5 == 0 { "gold" } else { "silver" }}}}
            });
            match i % 10 {
                0 => {
                    user.as_object_mut().unwrap().remove("user_id");
                }
                1 => user["user_id"] = json!("vip"),
                2 => user["user_id"] = json!("tester"),
                // The client's cohort ids are replaced by the server's.
                3 => user["cohort_ids"] = json!(["beta", "other"]),
                _ => {}
            }
            user
        })
        .collect()
}

/// The user as the server enriches it: `cohort_ids` from the user cohort `beta` (u1..u20),
/// `group_cohort_ids` from `big-orgs` (acme, globex).
fn enriched(user: &Value) -> Value {
    let mut user = user.clone();
    if let Some(id) = user["user_id"].as_str() {
        let n: Option<u32> = id.strip_prefix('u').and_then(|n| n.parse().ok());
        let ids: Vec<&str> = n
            .filter(|n| (1..=20).contains(n))
            .map(|_| "beta")
            .into_iter()
            .collect();
        user["cohort_ids"] = json!(ids);
    }
    let org = user["groups"]["org"][0].as_str().unwrap().to_owned();
    if org == "acme" || org == "globex" {
        user["group_cohort_ids"] = json!({"org": {org: ["big-orgs"]}});
    }
    user
}

/// What the engine gives on `configs` for `user`.
fn engine(configs: &Value, user: &Value, keys: &[&str]) -> Value {
    let set = vexil_eval::FlagSet::from_json(&configs.to_string()).unwrap();
    let context = vexil_eval::Context::from_sdk_user_json(&enriched(user).to_string()).unwrap();
    let results = vexil_eval::evaluate(&set, &context, keys).unwrap();
    serde_json::to_value(&results).unwrap()
}

async fn download_filters_by_key_and_mode(srv: &Server) {
    let fx = srv.sdk_fixture("Download").await;
    srv.live_flag(&fx, "local-a", json!({"evaluation_mode": "local"}))
        .await;
    srv.live_flag(&fx, "remote-b", json!({"evaluation_mode": "remote"}))
        .await;
    let mut parent = json!({"project": fx.project, "name": "parent", "key": "parent", "evaluation_mode": "local"});
    parent["all_other_users"] = json!({"percentage": 100, "weights": {"on": 1}});
    srv.create_flag(parent).await;
    srv.action("parent", "activate").await.ok(200);
    srv.live_flag(&fx, "child", json!({"evaluation_mode": "local", "prerequisites": [{"flag": "parent", "variants": ["on"]}]}))
        .await;
    let gone = srv
        .live_flag(&fx, "gone", json!({"evaluation_mode": "local"}))
        .await;
    let archived = srv.action("gone", "archive").await.ok(200);
    assert!(archived.etag() > gone["version"].as_i64().unwrap());
    srv.create_flag(json!({"project": fx.project, "name": "idle", "key": "idle", "evaluation_mode": "local", "deployments": ["prod"]}))
        .await;

    let served = |configs: &Value| -> Vec<(String, bool)> {
        configs
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["key"].as_str().unwrap().to_owned(),
                    c["metadata"]["deployed"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    let owned = |list: &[(&str, bool)]| -> Vec<(String, bool)> {
        list.iter().map(|(k, d)| ((*k).to_owned(), *d)).collect()
    };
    srv.eventually(
        "the archive and the inactive flag to be published",
        || async {
            let configs = srv.download(&fx.server, "").await;
            (!keys(&configs).contains(&"gone".to_owned())
                && keys(&configs).contains(&"idle".to_owned()))
            .then_some(())
        },
    )
    .await;
    // Local flags and their ancestors, in dependency order; the inactive flag serves `off`.
    let local = srv.download(&fx.server, "?v=0&eval_mode=local").await;
    let local_keys = keys(&local);
    let pos = |k: &str| local_keys.iter().position(|x| x == k).unwrap();
    assert!(
        pos("parent") < pos("child"),
        "ancestors first: {local_keys:?}"
    );
    let mut sorted = served(&local);
    sorted.sort();
    assert_eq!(
        sorted,
        owned(&[
            ("child", true),
            ("idle", true),
            ("local-a", true),
            ("parent", false)
        ])
    );
    let idle = local
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == "idle")
        .unwrap();
    assert_eq!(
        idle["segments"],
        json!([{"metadata": {"segmentName": "default"}, "variant": "off"}])
    );
    assert_eq!(
        srv.download(&fx.server, "").await,
        local,
        "local is the default"
    );

    // A server key may see remote configs; a client key never does.
    let all = srv.download(&fx.server, "?eval_mode=remote").await;
    let mut all_keys = keys(&all);
    all_keys.sort();
    assert_eq!(all_keys, ["child", "idle", "local-a", "parent", "remote-b"]);
    let client = srv.download(&fx.client, "?eval_mode=remote").await;
    let mut client_keys = keys(&client);
    client_keys.sort();
    assert_eq!(
        client_keys,
        ["child", "local-a", "parent"],
        "idle is attached to prod only"
    );
    assert_eq!(
        srv.download(&fx.server, "?delivery_method=web").await,
        json!([])
    );

    // Authentication.
    for auth in [
        None,
        Some("Bearer x".to_owned()),
        Some(format!("Bearer {}", fx.server)),
        Some("Api-Key server-nope".to_owned()),
    ] {
        let mut request = srv.http.get(srv.url("/sdk/v2/flags"));
        if let Some(a) = &auth {
            request = request.header("Authorization", a);
        }
        let r = srv.send(request).await;
        assert_eq!(
            (r.status, &r.json),
            (401, &json!({"error": "Invalid deployment"})),
            "{auth:?}"
        );
    }
    let lower = srv
        .http
        .get(srv.url("/sdk/v2/flags"))
        .header("Authorization", format!("api-key {}", fx.server));
    srv.send(lower).await.ok(200);

    // Archiving the deployment revokes its key.
    let d = srv
        .get(&format!("/api/v1/projects/{}/deployments/prod", fx.project))
        .await
        .ok(200);
    srv.patch(
        &format!("/api/v1/projects/{}/deployments/prod", fx.project),
        d.etag(),
        &json!({"archived": true}),
    )
    .await
    .ok(200);
    srv.eventually("the archived deployment's key to stop working", || async {
        let r = srv
            .send(srv.sdk(Method::GET, "/sdk/v2/flags", &fx.server))
            .await;
        (r.status == 401).then_some(())
    })
    .await;
    srv.send(srv.sdk(Method::GET, "/sdk/v2/flags", &fx.client))
        .await
        .ok(200);
}

async fn download_etag_gzip_paths_and_cors(srv: &Server) {
    let fx = srv.sdk_fixture("Etags").await;
    srv.live_flag(&fx, "local-a", json!({"evaluation_mode": "local"}))
        .await;
    let first = srv
        .send(srv.sdk(Method::GET, "/sdk/v2/flags", &fx.server))
        .await
        .ok(200);
    let etag = first.headers["etag"].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with("W/\"") && etag.ends_with("-local\""),
        "{etag}"
    );
    assert_eq!(first.headers["cache-control"], "no-cache");
    assert_eq!(first.headers["content-type"], "application/json");
    let again = srv
        .sdk(Method::GET, "/sdk/v2/flags", &fx.server)
        .header("If-None-Match", &etag);
    let r = srv.send(again).await.ok(304);
    assert!(r.text.is_empty());
    // Remote mode has its own tag.
    let remote = srv
        .send(
            srv.sdk(Method::GET, "/sdk/v2/flags?eval_mode=remote", &fx.server)
                .header("If-None-Match", &etag),
        )
        .await
        .ok(200);
    assert!(remote.headers["etag"]
        .to_str()
        .unwrap()
        .ends_with("-remote\""));

    // gzip only when accepted, with the same content.
    let gz = srv
        .http
        .get(srv.url("/sdk/v2/flags"))
        .header("Authorization", format!("Api-Key {}", fx.server))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let bytes = gz.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, first.text);

    // A change bumps the revision.
    srv.update(
        "local-a",
        &json!({"description": "same targeting, new version"}),
    )
    .await
    .ok(200);
    srv.eventually("a new ETag after a change", || async {
        let r = srv
            .send(srv.sdk(Method::GET, "/sdk/v2/flags", &fx.server))
            .await;
        (r.headers["etag"].to_str().unwrap() != etag).then_some(())
    })
    .await;

    // Doubled and trailing slashes reach the same endpoint; unknown query parameters are ignored.
    for path in [
        "//sdk/v2/flags",
        "/sdk/v2/flags/",
        "/sdk//v2/flags?v=0&d=abc",
    ] {
        srv.send(srv.sdk(Method::GET, path, &fx.server))
            .await
            .ok(200);
    }

    // CORS: preflight on every SDK path, and the origin on every answer.
    for path in [
        "/sdk/v2/flags",
        "/sdk/v2/vardata",
        "/sdk/vardata",
        "/v1/vardata",
        "/sdk/stream/v1/flags",
        "/sdk/v1/cohort/x",
        "/2/httpapi",
        "/batch",
        "/ofrep/v1/evaluate/flags",
        "/ofrep/v1/evaluate/flags/x",
    ] {
        let r = srv
            .send(
                srv.http
                    .request(Method::OPTIONS, srv.url(path))
                    .header("Origin", "https://app.example.com")
                    .header("Access-Control-Request-Method", "GET"),
            )
            .await
            .ok(204);
        assert_eq!(r.headers["access-control-allow-origin"], "*", "{path}");
        assert_eq!(
            r.headers["access-control-allow-methods"],
            "GET, POST, OPTIONS"
        );
        assert_eq!(r.headers["access-control-max-age"], "86400");
        let allowed = r.headers["access-control-allow-headers"].to_str().unwrap();
        for h in [
            "Authorization",
            "X-Amp-Exp-User",
            "X-Amp-Exp-Flag-Keys",
            "X-API-Key",
            "If-None-Match",
            "Last-Event-ID",
        ] {
            assert!(allowed.contains(h), "{path}: {h} not in {allowed}");
        }
        assert!(r.headers.get("access-control-allow-credentials").is_none());
    }
    let r = srv
        .send(srv.sdk(Method::GET, "/sdk/v2/vardata", &fx.client))
        .await
        .ok(200);
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    assert_eq!(
        r.headers["access-control-expose-headers"],
        "ETag, Retry-After"
    );
    let r = srv.send(srv.http.get(srv.url("/sdk/v2/flags"))).await;
    assert_eq!(
        (
            r.status,
            r.headers["access-control-allow-origin"].to_str().unwrap()
        ),
        (401, "*")
    );
}

async fn remote_evaluation_matches_the_engine(srv: &Server) {
    let fx = srv.sdk_fixture("Remote").await;
    cohorts(srv, &fx).await;
    realistic_flags(srv, &fx).await;
    let configs = srv
        .eventually("every flag to be served", || async {
            let configs = srv.download(&fx.server, "?eval_mode=remote").await;
            (configs.as_array().unwrap().len() == 8).then_some(configs)
        })
        .await;
    let base64 = base64::engine::general_purpose::STANDARD;
    for (i, user) in users().iter().enumerate() {
        let expected = engine(&configs, user, &[] as &[&str]);
        // Every request shape gives the same answer.
        let json = user.to_string();
        let encoded = match i % 4 {
            0 => b64(user),
            1 => base64.encode(&json),
            2 => base64::engine::general_purpose::URL_SAFE.encode(&json),
            _ => base64.encode(&json).trim_end_matches('=').to_owned(),
        };
        let got = if i % 5 == 4 {
            let request = srv
                .sdk(Method::POST, "/sdk/v2/vardata", &fx.server)
                .header("Content-Type", "application/json;charset=utf-8")
                .header("X-Amp-Exp-Track", "no-track")
                .body(json);
            srv.send(request).await.ok(200)
        } else {
            let request = srv
                .sdk(Method::GET, "/sdk/v2/vardata?v=0", &fx.server)
                .header("X-Amp-Exp-User", encoded)
                .header("X-Amp-Exp-Track", "no-track");
            srv.send(request).await.ok(200)
        };
        assert_eq!(got.headers["cache-control"], "no-store");
        assert_eq!(got.json, expected, "user {user}");
        // v1: default and not-deployed results left out.
        let v1 = srv
            .send(
                srv.sdk(Method::GET, "/sdk/vardata", &fx.server)
                    .header("X-Amp-Exp-User", b64(user))
                    .header("X-Amp-Exp-Track", "no-track"),
            )
            .await
            .ok(200)
            .json;
        let mut filtered = expected.as_object().unwrap().clone();
        filtered
            .retain(|_, r| r["metadata"]["default"] != true && r["metadata"]["deployed"] != false);
        assert_eq!(v1, Value::Object(filtered.clone()), "v1 for {user}");
        if i % 7 == 0 {
            // The REST shape: context in the query, user_id overriding it, flag keys listed.
            let mut context = user.clone();
            context["user_id"] = json!("overridden");
            let url = format!(
                "/v1/vardata?context={}&user_id={}&flag_keys=checkout,sub-feature",
                urlencode(&context.to_string()),
                user["user_id"].as_str().unwrap_or("")
            );
            let rest = srv
                .send(
                    srv.sdk(Method::GET, &url, &fx.server)
                        .header("X-Amp-Exp-Track", "no-track"),
                )
                .await
                .ok(200)
                .json;
            let mut user2 = user.clone();
            if user.get("user_id").is_none() {
                user2["user_id"] = json!("");
            }
            let mut want = engine(&configs, &user2, &["checkout", "sub-feature"])
                .as_object()
                .unwrap()
                .clone();
            want.retain(|_, r| {
                r["metadata"]["default"] != true && r["metadata"]["deployed"] != false
            });
            assert_eq!(rest, Value::Object(want), "REST for {user}");
        }
    }
    // Flag keys: only those and their ancestors; unknown keys ignored.
    let user = users()[6].clone();
    let keyed = srv
        .send(
            srv.sdk(Method::GET, "/sdk/v2/vardata", &fx.server)
                .header("X-Amp-Exp-User", b64(&user))
                .header("X-Amp-Exp-Track", "no-track")
                .header("X-Amp-Exp-Flag-Keys", b64(&json!(["sub-feature", "nope"]))),
        )
        .await
        .ok(200)
        .json;
    let mut got: Vec<&String> = keyed.as_object().unwrap().keys().collect();
    got.sort();
    assert_eq!(got, ["primary", "sub-feature"]);
    assert_eq!(keyed, engine(&configs, &user, &["sub-feature"]));
    // eval_mode=local: the local flags and their ancestors.
    let local = srv
        .send(
            srv.sdk(Method::GET, "/sdk/v2/vardata?eval_mode=local", &fx.server)
                .header("X-Amp-Exp-User", b64(&user))
                .header("X-Amp-Exp-Track", "no-track"),
        )
        .await
        .ok(200)
        .json;
    let mut got: Vec<&String> = local.as_object().unwrap().keys().collect();
    got.sort();
    assert_eq!(
        got,
        [
            "experiment-1",
            "experiment-2",
            "new-version",
            "primary",
            "sub-feature"
        ]
    );
    let web = srv
        .send(
            srv.sdk(
                Method::GET,
                "/sdk/v2/vardata?delivery_method=web",
                &fx.server,
            )
            .header("X-Amp-Exp-Track", "no-track"),
        )
        .await
        .ok(200);
    assert_eq!(web.json, json!({}));
    // A client key evaluates remotely too.
    assert_eq!(
        srv.vardata(&fx.client, &user).await,
        engine(&configs, &user, &[] as &[&str])
    );
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn request_shapes_and_their_errors(srv: &Server) {
    let fx = srv.sdk_fixture("Errors").await;
    srv.live_flag(
        &fx,
        "f",
        json!({"all_other_users": {"percentage": 100, "weights": {"on": 1}}}),
    )
    .await;
    let get = |user: &str| {
        srv.sdk(Method::GET, "/sdk/v2/vardata", &fx.server)
            .header("X-Amp-Exp-User", user)
    };
    let cases = [
        (get("***"), 400),
        (get(&b64(&json!([1, 2]))), 400),
        (
            get(&base64::engine::general_purpose::STANDARD.encode("{not json")),
            400,
        ),
        (
            srv.sdk(Method::GET, "/sdk/v2/vardata", &fx.server)
                .header("X-Amp-Exp-Flag-Keys", b64(&json!({"a": 1}))),
            400,
        ),
        (
            srv.sdk(Method::POST, "/sdk/v2/vardata", &fx.server)
                .body("[1]"),
            400,
        ),
        (
            srv.sdk(Method::POST, "/sdk/v2/vardata", &fx.server)
                .body(vec![b' '; 2 << 20]),
            413,
        ),
        (
            srv.sdk(Method::GET, "/v1/vardata?context=%5B%5D", &fx.server),
            400,
        ),
        (
            srv.sdk(Method::GET, "/v1/vardata?context=nope", &fx.server),
            400,
        ),
    ];
    for (request, status) in cases {
        let r = srv.send(request).await;
        assert_eq!(r.status, status, "{}", r.text);
        assert!(
            r.json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{}",
            r.text
        );
    }
    // Empty users: no header, empty body, `null`.
    for request in [
        srv.sdk(Method::GET, "/sdk/v2/vardata", &fx.server),
        srv.sdk(Method::POST, "/sdk/v2/vardata", &fx.server),
        srv.sdk(Method::POST, "/sdk/v2/vardata", &fx.server)
            .body("null"),
        srv.sdk(Method::POST, "/v1/vardata", &fx.server).body("{}"),
    ] {
        let r = srv
            .send(request.header("X-Amp-Exp-Track", "no-track"))
            .await
            .ok(200);
        assert!(r.json.is_object(), "{}", r.text);
    }
    // A gzip body.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, br#"{"user_id": "u1"}"#).unwrap();
    let r = srv
        .send(
            srv.sdk(Method::POST, "/sdk/v2/vardata", &fx.server)
                .header("Content-Encoding", "gzip")
                .header("X-Amp-Exp-Track", "no-track")
                .body(gz.finish().unwrap()),
        )
        .await
        .ok(200);
    assert_eq!(r.json["f"]["key"], "on");
}

async fn cohorts_enrich_and_download(srv: &Server) {
    let fx = srv.sdk_fixture("Cohorts").await;
    cohorts(srv, &fx).await;
    srv.live_flag(&fx, "beta-only", json!({
        "segments": [{"name": "Beta", "conditions": [{"type": "cohort", "op": "set contains any", "values": ["beta"]}],
                      "percentage": 100, "weights": {"on": 1}}],
        "all_other_users": {"percentage": 0, "weights": {"on": 1}}
    })).await;
    let key = &fx.server;
    let variant = |user: Value| async move { srv.variant(key, &user, "beta-only").await };
    assert_eq!(
        variant(json!({"user_id": "u3"})).await.as_deref(),
        Some("on")
    );
    assert_eq!(
        variant(json!({"user_id": "u99"})).await.as_deref(),
        Some("off")
    );
    // The server's memberships replace what the client claims.
    assert_eq!(
        variant(json!({"user_id": "u99", "cohort_ids": ["beta"]}))
            .await
            .as_deref(),
        Some("off")
    );
    // Without a user id the client's list stands.
    assert_eq!(
        variant(json!({"device_id": "d", "cohort_ids": ["beta"]}))
            .await
            .as_deref(),
        Some("on")
    );

    // A replaced membership is served right after.
    let path = format!("/api/v1/projects/{}/cohorts/beta", fx.project);
    let v = srv.get(&path).await.ok(200).etag();
    srv.put_raw(&path, v, "text/csv", "u99\n").await.ok(200);
    srv.eventually("the new membership", || async {
        (variant(json!({"user_id": "u99"})).await.as_deref() == Some("on")).then_some(())
    })
    .await;

    // Download with the project's credentials (§A9).
    let basic = |key: &str, secret: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}"))
        )
    };
    let download = |query: &str, auth: String| {
        srv.http
            .get(srv.url(&format!("/sdk/v1/cohort/beta{query}")))
            .header("Authorization", auth)
    };
    let good = basic(&fx.api_key, &fx.secret_key);
    srv.send(download("", basic(&fx.api_key, "wrong")))
        .await
        .ok(401);
    srv.send(download("", basic("nope", &fx.secret_key)))
        .await
        .ok(401);
    srv.send(srv.http.get(srv.url("/sdk/v1/cohort/beta")))
        .await
        .ok(401);
    let ghost = srv
        .http
        .get(srv.url("/sdk/v1/cohort/ghost"))
        .header("Authorization", good.clone());
    srv.send(ghost).await.ok(404);
    let body = srv
        .send(download("?maxCohortSize=10", good.clone()))
        .await
        .ok(200)
        .json;
    assert_eq!(body["cohortId"], "beta");
    assert_eq!(body["groupType"], "User");
    assert_eq!(body["groupTypeId"], 0);
    assert_eq!(body["size"], 1);
    assert_eq!(body["memberIds"], json!(["u99"]));
    let modified = body["lastModified"].as_i64().unwrap();
    assert_eq!(body["lastComputed"], modified);
    srv.send(download("?maxCohortSize=0", good.clone()))
        .await
        .ok(413);
    srv.send(download(&format!("?lastModified={modified}"), good.clone()))
        .await
        .ok(204);
    srv.send(download(
        &format!("?lastModified={}", modified - 1),
        good.clone(),
    ))
    .await
    .ok(200);
    // Uploading the same members again is not a change of membership.
    let v = srv.get(&path).await.ok(200).etag();
    srv.put_raw(&path, v, "text/csv", "u99\n").await.ok(200);
    let v2 = srv.get(&path).await.ok(200).etag();
    srv.eventually("the re-upload to be published", || async {
        // The cohort version is in the snapshot digest only through its members' last change,
        // so poll the download until the new version is loaded, then compare.
        let b = srv.send(download("", good.clone())).await.ok(200).json;
        (b["size"] == 1).then_some(())
    })
    .await;
    assert!(v2 > v);
    let b = srv.send(download("", good.clone())).await.ok(200).json;
    assert_eq!(
        b["lastModified"], modified,
        "same members, same lastModified"
    );
    let groups = srv
        .http
        .get(srv.url("/sdk/v1/cohort/big-orgs"))
        .header("Authorization", good);
    let g = srv.send(groups).await.ok(200).json;
    assert_eq!(
        (g["groupType"].as_str(), g["size"].as_i64()),
        (Some("org"), Some(2))
    );
    assert!(g["groupTypeId"].as_i64().unwrap() > 0);
}

async fn experiment_properties_feed_targeting(srv: &Server) {
    let fx = srv.sdk_fixture("Props").await;
    srv.live_flag(
        &fx,
        "flag-a",
        json!({"evaluation_mode": "remote",
        "all_other_users": {"percentage": 100, "weights": {"on": 1}}}),
    )
    .await;
    // An exposure before any flag targets flag-a: stored, and read back once one does. Sent
    // with the public client key it is stored but sets no property (anyone could send it);
    // sent with a server key or the project API key it does.
    let early = |user: &str| {
        json!([{"event_type": "$exposure", "user_id": user,
        "event_properties": {"flag_key": "flag-a", "variant": "on"}}])
    };
    srv.ingest(&fx.client, early("u6")).await.ok(200);
    srv.ingest(&fx.server, early("u7")).await.ok(200);
    srv.ingest(&fx.api_key, early("u8")).await.ok(200);
    srv.live_flag(&fx, "flag-b", json!({
        "evaluation_mode": "remote",
        "segments": [{"name": "Saw A", "conditions": [{"type": "user_property", "property": "[Experiment] flag-a", "op": "is", "values": ["on"]}],
                      "percentage": 100, "weights": {"on": 1}}],
        "all_other_users": {"percentage": 0, "weights": {"on": 1}}
    })).await;
    let key = &fx.server;
    let b = |user: Value| async move { srv.variant(key, &user, "flag-b").await };
    for (user, expected, why) in [
        ("u6", "off", "a client key sets no targeting property"),
        ("u7", "on", "loaded when targeted (server key)"),
        ("u8", "on", "loaded when targeted (project API key)"),
    ] {
        assert_eq!(
            b(json!({ "user_id": user })).await.as_deref(),
            Some(expected),
            "{why}"
        );
    }
    let u1 = json!({"user_id": "u1"});
    assert_eq!(
        b(u1.clone()).await.as_deref(),
        Some("off"),
        "no property before any assignment"
    );
    // A tracked remote evaluation records the assignment and sets the property.
    let tracked = srv
        .sdk(Method::GET, "/sdk/v2/vardata", &fx.server)
        .header("X-Amp-Exp-User", b64(&u1))
        .header("X-Amp-Exp-Library", "experiment-test/1.0");
    let first = srv.send(tracked).await.ok(200).json;
    assert_eq!(first["flag-b"]["key"], "off");
    srv.eventually("[Experiment] flag-a to reach targeting", || async {
        (b(u1.clone()).await.as_deref() == Some("on")).then_some(())
    })
    .await;
    // What the client sends wins over the stored property.
    let claims = json!({"user_id": "u1", "user_properties": {"[Experiment] flag-a": "off"}});
    assert_eq!(b(claims).await.as_deref(), Some("off"));

    // Exposure events set and unset it too, for users and for devices.
    let exposure = |who: Value, variant: Option<&str>, insert: &str| {
        let mut e = json!({"event_type": "$exposure", "insert_id": insert,
            "event_properties": {"flag_key": "flag-a"}});
        e.as_object_mut()
            .unwrap()
            .extend(who.as_object().unwrap().clone());
        if let Some(v) = variant {
            e["event_properties"]["variant"] = json!(v);
        }
        e
    };
    srv.ingest(
        &fx.server,
        json!([
            exposure(json!({"user_id": "u2"}), Some("on"), "e1"),
            exposure(json!({"device_id": "d9"}), Some("on"), "e2")
        ]),
    )
    .await
    .ok(200);
    assert_eq!(b(json!({"user_id": "u2"})).await.as_deref(), Some("on"));
    assert_eq!(b(json!({"device_id": "d9"})).await.as_deref(), Some("on"));
    assert_eq!(
        b(json!({"user_id": "u3", "device_id": "d9"}))
            .await
            .as_deref(),
        Some("on"),
        "device properties carry over"
    );
    srv.ingest(
        &fx.server,
        json!([exposure(json!({"user_id": "u2"}), None, "e3")]),
    )
    .await
    .ok(200);
    assert_eq!(
        b(json!({"user_id": "u2"})).await.as_deref(),
        Some("off"),
        "a fallback exposure unsets it"
    );

    // The assignments are in the management API, once per user and result within a day.
    let again = srv
        .sdk(Method::GET, "/sdk/v2/vardata", &fx.server)
        .header("X-Amp-Exp-User", b64(&u1));
    srv.send(again).await.ok(200);
    let counts = srv
        .eventually("the assignments to be stored", || async {
            let stats = srv
                .get("/api/v1/flags/flag-a/exposures?kind=assignment&days=2")
                .await
                .ok(200)
                .json;
            (stats["totals"]["on"]["count"].as_i64() >= Some(2)).then_some(stats)
        })
        .await;
    // u1's first evaluation (flag-b off), then again with flag-b on: two distinct results.
    assert_eq!(
        counts["totals"]["on"],
        json!({"count": 2, "users": 1}),
        "{counts}"
    );
    let b_stats = srv
        .get("/api/v1/flags/flag-b/exposures?kind=assignment&days=2")
        .await
        .ok(200)
        .json;
    assert_eq!(
        b_stats["totals"],
        json!({"off": {"count": 1, "users": 1}, "on": {"count": 1, "users": 1}})
    );
    // Exposures: the ingested events (u6, u7, u8, e1, e2 on; e3 fallback); the client key's
    // exposure is counted like the others.
    let ex = srv
        .get("/api/v1/flags/flag-a/exposures?days=2&interval=hour")
        .await
        .ok(200)
        .json;
    assert_eq!(
        ex["totals"],
        json!({"off": {"count": 1, "users": 1}, "on": {"count": 5, "users": 5}})
    );
    assert_eq!(ex["buckets"].as_array().unwrap().len(), 48);
}
