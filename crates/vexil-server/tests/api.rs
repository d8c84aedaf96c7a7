//! The management API over HTTP: the OpenAPI document, management keys and authorization,
//! request validation (a table of bad requests, each with its status, code and field), and
//! flag listing with filters and pagination.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
mod common;

use common::{keys, strings, Server};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(nul_characters_are_refused_not_500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_is_3_1_with_the_routes_and_bearer_security() {
    let srv = Server::sqlite().await;
    let r = srv.get("/api/v1/openapi.json").await.ok(200);
    let doc = &r.json;
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "OpenAPI version {version}");
    for path in [
        "/api/v1/flags",
        "/api/v1/flags/{key}",
        "/api/v1/flags/{key}/activate",
        "/api/v1/flags/{key}/evaluate",
        "/api/v1/flags/{key}/versions/{version}/restore",
        "/api/v1/projects/{project}/import",
        "/api/v1/projects/{project}/cohorts/{cohort}",
        "/api/v1/keys",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "the document describes {path}"
        );
    }
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(bearer["type"], "http", "{bearer}");
    assert_eq!(
        bearer["scheme"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("bearer")
    );
    let activate = &doc["paths"]["/api/v1/flags/{key}/activate"]["post"];
    assert!(
        activate["security"].to_string().contains("bearer"),
        "{activate}"
    );
    srv.assert_no_server_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_shown_once_listed_without_secrets_and_revocable() {
    let srv = Server::sqlite().await;
    assert!(srv.admin.starts_with("vxm_"), "bootstrap key {}", srv.admin);

    let created = srv
        .post(
            "/api/v1/keys",
            &json!({"name": "reader-bot", "role": "reader"}),
        )
        .await
        .ok(201)
        .json;
    let reader = created["secret"].as_str().unwrap().to_owned();
    assert!(reader.starts_with("vxm_"), "{reader}");
    assert!(reader.len() > 30 && reader[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(created["role"], "reader");
    assert_eq!(created["name"], "reader-bot");
    assert!(reader.starts_with(created["prefix"].as_str().unwrap()));
    let reader_id = created["id"].as_str().unwrap().to_owned();

    let writer = srv
        .post("/api/v1/keys", &json!({"name": "ci"}))
        .await
        .ok(201)
        .json;
    assert_eq!(writer["role"], "writer", "the default role is writer");
    let writer = writer["secret"].as_str().unwrap().to_owned();

    let list = srv.get("/api/v1/keys").await.ok(200);
    let names: Vec<&str> = list
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    for name in ["admin", "reader-bot", "ci"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    for k in list.json.as_array().unwrap() {
        assert!(k.get("secret").is_none(), "a listed key has no secret: {k}");
    }
    for secret in [&srv.admin, &reader, &writer] {
        assert!(
            !list.text.contains(secret.as_str()),
            "the list never shows a secret"
        );
    }

    // Roles: a reader reads, a writer writes but does not manage keys.
    let as_key = |secret: &str, method: Method, path: &str| {
        srv.http.request(method, srv.url(path)).bearer_auth(secret)
    };
    srv.send(as_key(&reader, Method::GET, "/api/v1/projects"))
        .await
        .ok(200);
    srv.send(as_key(&reader, Method::POST, "/api/v1/projects").json(&json!({"name": "Nope"})))
        .await
        .err(403, "forbidden", None);
    srv.send(as_key(&reader, Method::GET, "/api/v1/keys"))
        .await
        .err(403, "forbidden", None);
    srv.send(as_key(&writer, Method::POST, "/api/v1/projects").json(&json!({"name": "Yes"})))
        .await
        .ok(201);
    srv.send(as_key(&writer, Method::POST, "/api/v1/keys").json(&json!({"name": "x"})))
        .await
        .err(403, "forbidden", None);

    // Revocation takes effect at once.
    let revoked = srv
        .delete(&format!("/api/v1/keys/{reader_id}"), None)
        .await
        .ok(200);
    assert!(revoked.json["revoked_at"].is_i64(), "{}", revoked.text);
    let r = srv
        .send(as_key(&reader, Method::GET, "/api/v1/projects"))
        .await;
    r.err(401, "unauthorized", None);
    assert!(r.message().contains("revoked"), "{}", r.text);
    let list = srv.get("/api/v1/keys").await.ok(200).json;
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == reader_id.as_str())
        .unwrap();
    assert!(listed["revoked_at"].is_i64(), "{listed}");
    srv.delete("/api/v1/keys/no-such-key", None)
        .await
        .err(404, "not_found", None);
    srv.post("/api/v1/keys", &json!({"name": "x", "role": "superuser"}))
        .await
        .err(400, "invalid_field", Some("role"));
    srv.assert_no_server_errors();
}

/// A body sent to `POST /api/v1/flags`.
enum Body {
    /// Fields merged into a valid flag.
    Merge(Value),
    /// Exactly these bytes.
    Raw(&'static str),
}

/// (case, body, status, code, field)
fn flag_cases() -> Vec<(&'static str, Body, u16, &'static str, Option<&'static str>)> {
    use Body::{Merge, Raw};
    let condition =
        |c: Value| json!({"segments": [{"name": "s", "conditions": [c], "percentage": 10}]});
    let segment_named =
        |name: &str| json!({"segments": [{"name": name, "conditions": [], "percentage": 10}]});
    let mut cases = vec![
        // A syntax error names where the text broke off, when it is inside a field.
        (
            "truncated JSON",
            Raw(r#"{"project": "val", "name": "#),
            400,
            "invalid_json",
            Some("name"),
        ),
        ("not JSON", Raw("flag please"), 400, "invalid_json", None),
        (
            "name is a number",
            Merge(json!({"name": 5})),
            400,
            "invalid_field",
            Some("name"),
        ),
        (
            "percentage is a string",
            Merge(json!({"all_other_users": {"percentage": "ten"}})),
            400,
            "invalid_field",
            Some("all_other_users.percentage"),
        ),
        (
            "percentage is negative",
            Merge(json!({"all_other_users": {"percentage": -1}})),
            400,
            "invalid_field",
            Some("all_other_users.percentage"),
        ),
        (
            "percentage is fractional",
            Merge(json!({"all_other_users": {"percentage": 12.5}})),
            400,
            "invalid_field",
            Some("all_other_users.percentage"),
        ),
        (
            "percentage 101",
            Merge(json!({"all_other_users": {"percentage": 101}})),
            422,
            "out_of_range",
            Some("all_other_users.percentage"),
        ),
        (
            "percentage 256",
            Merge(json!({"all_other_users": {"percentage": 256}})),
            400,
            "invalid_field",
            Some("all_other_users.percentage"),
        ),
        (
            "negative weight",
            Merge(json!({"all_other_users": {"percentage": 10, "weights": {"on": -1}}})),
            400,
            "invalid_field",
            Some("all_other_users.weights.on"),
        ),
        (
            "weight of an unknown variant",
            Merge(json!({"all_other_users": {"percentage": 10, "weights": {"nope": 1}}})),
            422,
            "unknown_variant",
            Some("all_other_users.weights.nope"),
        ),
        (
            "segment percentage 101",
            Merge(json!({"segments": [{"name": "s", "percentage": 101}]})),
            422,
            "out_of_range",
            Some("segments[0].percentage"),
        ),
        (
            "unknown evaluation mode",
            Merge(json!({"evaluation_mode": "hybrid"})),
            400,
            "invalid_field",
            Some("evaluation_mode"),
        ),
        (
            "unknown flag type",
            Merge(json!({"type": "rollout"})),
            400,
            "invalid_field",
            Some("type"),
        ),
        (
            "unknown field",
            Merge(json!({"colour": "red"})),
            400,
            "invalid_field",
            Some("colour"),
        ),
        (
            "bad regex",
            Merge(condition(
                json!({"type": "user_property", "property": "email", "op": "regex match", "values": ["(unclosed"]}),
            )),
            422,
            "invalid_regex",
            Some("segments[0].conditions[0].values[0]"),
        ),
        (
            "bad regex in the second value",
            Merge(condition(
                json!({"type": "user_field", "field": "city", "op": "regex does not match", "values": ["ok.*", "[a-"]}),
            )),
            422,
            "invalid_regex",
            Some("segments[0].conditions[0].values[1]"),
        ),
        (
            "bad semantic version",
            Merge(condition(
                json!({"type": "user_field", "field": "version", "op": "version greater", "values": ["1.x"]}),
            )),
            422,
            "invalid_version",
            Some("segments[0].conditions[0].values[0]"),
        ),
        (
            "unknown operator",
            Merge(condition(
                json!({"type": "user_field", "field": "country", "op": "resembles", "values": ["US"]}),
            )),
            422,
            "unknown_operator",
            Some("segments[0].conditions[0].op"),
        ),
        (
            "unknown built-in field",
            Merge(condition(
                json!({"type": "user_field", "field": "shoe_size", "op": "is", "values": ["44"]}),
            )),
            422,
            "unknown_user_field",
            Some("segments[0].conditions[0].field"),
        ),
        (
            "condition without values",
            Merge(condition(
                json!({"type": "user_field", "field": "country", "op": "is", "values": []}),
            )),
            422,
            "required",
            Some("segments[0].conditions[0].values"),
        ),
        (
            "cohort condition with a string operator",
            Merge(condition(
                json!({"type": "cohort", "op": "is", "values": ["ghosts"]}),
            )),
            422,
            "invalid_operator",
            Some("segments[0].conditions[0].op"),
        ),
        (
            "unknown cohort in a condition",
            Merge(condition(
                json!({"type": "cohort", "op": "set contains any", "values": ["ghosts"]}),
            )),
            422,
            "unknown_cohort",
            Some("segments[0].conditions[0].values[0]"),
        ),
        (
            "unknown cohort in inclusions",
            Merge(json!({"inclusions": {"on": {"cohorts": ["ghosts"]}}})),
            422,
            "unknown_cohort",
            Some("inclusions.on.cohorts[0]"),
        ),
        (
            "inclusion of (none)",
            Merge(json!({"inclusions": {"on": {"ids": ["u1", "(none)"]}}})),
            422,
            "invalid_id",
            Some("inclusions.on.ids[1]"),
        ),
        (
            "empty inclusion id",
            Merge(json!({"inclusions": {"on": {"ids": [""]}}})),
            422,
            "invalid_id",
            Some("inclusions.on.ids[0]"),
        ),
        (
            "inclusion in an unknown variant",
            Merge(json!({"inclusions": {"nope": {"ids": ["u1"]}}})),
            422,
            "unknown_variant",
            Some("inclusions.nope"),
        ),
        (
            "unknown deployment",
            Merge(json!({"deployments": ["staging"]})),
            422,
            "unknown_deployment",
            Some("deployments[0]"),
        ),
        (
            "no variants",
            Merge(json!({"variants": []})),
            422,
            "no_variants",
            Some("variants"),
        ),
        (
            "variant off",
            Merge(json!({"variants": [{"key": "on"}, {"key": "Off"}]})),
            422,
            "reserved_variant_key",
            Some("variants[1].key"),
        ),
        (
            "variant (none)",
            Merge(json!({"variants": [{"key": "(none)"}]})),
            422,
            "reserved_variant_key",
            Some("variants[0].key"),
        ),
        (
            "duplicate variant keys",
            Merge(json!({"variants": [{"key": "blue"}, {"key": "BLUE"}]})),
            422,
            "duplicate_variant_key",
            Some("variants[1].key"),
        ),
        (
            "key with a space",
            Merge(json!({"key": "a b"})),
            422,
            "invalid_key",
            Some("key"),
        ),
        (
            "key with a slash",
            Merge(json!({"key": "a/b"})),
            422,
            "invalid_key",
            Some("key"),
        ),
        (
            "blank name",
            Merge(json!({"name": "  ", "key": "blank"})),
            422,
            "required",
            Some("name"),
        ),
        (
            "depends on itself",
            Merge(
                json!({"key": "selfie", "prerequisites": [{"flag": "selfie", "variants": ["on"]}]}),
            ),
            422,
            "dependency_cycle",
            Some("prerequisites[0].flag"),
        ),
        (
            "prerequisite without variants",
            Merge(json!({"prerequisites": [{"flag": "ghost", "variants": []}]})),
            422,
            "required",
            Some("prerequisites[0].variants"),
        ),
        (
            "unknown prerequisite",
            Merge(json!({"prerequisites": [{"flag": "ghost", "variants": ["on"]}]})),
            422,
            "unknown_prerequisite",
            Some("prerequisites[0].flag"),
        ),
        (
            "unknown project",
            Merge(json!({"project": "nowhere"})),
            404,
            "not_found",
            None,
        ),
    ];
    for name in [
        "individual-inclusions",
        "flag-dependencies",
        "All Other Users",
        "default",
        "sticky-bucketing",
    ] {
        cases.push((
            "reserved segment name",
            Merge(segment_named(name)),
            422,
            "reserved_segment_name",
            Some("segments[0].name"),
        ));
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flag_bodies_are_refused_with_the_field_at_fault() {
    let srv = Server::sqlite().await;
    srv.create_project("Val").await;
    srv.create_deployment("val", "Prod", "server").await;
    let mut failures = Vec::new();
    for (case, body, status, code, field) in flag_cases() {
        let request = srv
            .req(Method::POST, "/api/v1/flags")
            .header("Content-Type", "application/json");
        let request = match body {
            Body::Raw(text) => request.body(text),
            Body::Merge(extra) => {
                let mut flag = json!({"project": "val", "name": "Validated"});
                flag.as_object_mut()
                    .unwrap()
                    .extend(extra.as_object().unwrap().clone());
                request.body(flag.to_string())
            }
        };
        let r = srv.send(request).await;
        if (r.status, r.code(), r.field()) != (status, code, field) || r.message().is_empty() {
            failures.push(format!(
                "{case}: expected {status} {code} {field:?}, got {} {}",
                r.status, r.text
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Nothing was created by a refused request.
    let list = srv.get("/api/v1/flags?project=val").await.ok(200);
    assert_eq!(list.json["total"], 0, "{}", list.text);
    srv.assert_no_server_errors();
}

/// Sends each (case, body) to `POST /api/v1/flags` and collects the answers that differ from
/// (status, code, field).
async fn refused(srv: &Server, cases: Vec<(&str, &str, u16, &str, Option<&str>)>) -> Vec<String> {
    let mut failures = Vec::new();
    for (case, body, status, code, field) in cases {
        let request = srv
            .req(Method::POST, "/api/v1/flags")
            .header("Content-Type", "application/json");
        let r = srv.send(request.body(body.to_owned())).await;
        if (r.status, r.code(), r.field()) != (status, code, field) {
            failures.push(format!(
                "{case}: expected {status} {code} {field:?}, got {} {}",
                r.status, r.text
            ));
        }
    }
    failures
}

/// Product bug: the JSON extractor ignores whatever follows the first JSON value, so a body
/// that is not JSON is accepted (and the flag created).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailing_characters_after_the_json_body_are_refused() {
    let srv = Server::sqlite().await;
    srv.create_project("Val").await;
    let failures = refused(
        &srv,
        vec![
            (
                "trailing word",
                r#"{"project": "val", "name": "x"} x"#,
                400,
                "invalid_json",
                None,
            ),
            (
                "two objects",
                r#"{"project": "val", "name": "y"}{"project": "val", "name": "z"}"#,
                400,
                "invalid_json",
                None,
            ),
        ],
    )
    .await;
    let list = srv.get("/api/v1/flags?project=val").await.ok(200);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        list.json["total"], 0,
        "nothing is created from a body that is not JSON: {}",
        list.text
    );
    srv.assert_no_server_errors();
}

/// Product bug: a segment's rollout is `#[serde(flatten)]`ed, so a type error in a segment's
/// `percentage` or `weights` names only `segments[0]` instead of the field's JSON path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_errors_inside_a_segment_name_the_field() {
    let srv = Server::sqlite().await;
    srv.create_project("Val").await;
    let failures = refused(
        &srv,
        vec![
            (
                "segment percentage is a string",
                r#"{"project": "val", "name": "x", "segments": [{"name": "s", "percentage": "half"}]}"#,
                400,
                "invalid_field",
                Some("segments[0].percentage"),
            ),
            (
                "segment weight negative",
                r#"{"project": "val", "name": "x", "segments": [{"name": "s", "percentage": 10, "weights": {"on": -4}}]}"#,
                400,
                "invalid_field",
                Some("segments[0].weights.on"),
            ),
            (
                "condition value is a number",
                r#"{"project": "val", "name": "x", "segments": [{"name": "s", "percentage": 10,
                    "conditions": [{"type": "user_field", "field": "country", "op": "is", "values": [1]}]}]}"#,
                400,
                "invalid_field",
                Some("segments[0].conditions[0].values[0]"),
            ),
        ],
    )
    .await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    srv.assert_no_server_errors();
}

/// Product bug: a missing query parameter answers `"field": "."` (the root of the query
/// string) instead of naming the parameter (or leaving `field` out, as JSON bodies do).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_query_parameter_is_named() {
    let srv = Server::sqlite().await;
    srv.create_project("Val").await;
    srv.flag_in("val", "f", json!({})).await;
    let r = srv.get("/api/v1/flags/f/versions/compare?from=1").await;
    assert_eq!((r.status, r.code()), (400, "invalid_query"), "{}", r.text);
    assert!(r.message().contains("`to`"), "{}", r.text);
    assert!(
        matches!(r.field(), None | Some("to")),
        "field names the parameter: {}",
        r.text
    );
    srv.assert_no_server_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_invalid_fields_are_all_listed() {
    let srv = Server::sqlite().await;
    srv.create_project("Val").await;
    let body = json!({
        "project": "val", "name": "x",
        "variants": [{"key": "off"}, {"key": "ok"}],
        "all_other_users": {"percentage": 150},
    });
    let r = srv.post("/api/v1/flags", &body).await;
    r.err(422, "reserved_variant_key", Some("variants[0].key"));
    let errors: Vec<(&str, &str)> = r.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [
            ("variants[0].key", "reserved_variant_key"),
            ("all_other_users.percentage", "out_of_range")
        ]
    );
    srv.assert_no_server_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_outside_the_rules_get_json_errors_never_500() {
    let srv = Server::sqlite().await;
    srv.create_project("Val").await;
    let flag = srv.flag_in("val", "f", json!({})).await;
    assert_eq!(flag["key"], "f");

    // Body over 1 MiB on the JSON API.
    let big = json!({"project": "val", "name": "big", "description": "x".repeat((1 << 20) + 10)});
    srv.post("/api/v1/flags", &big)
        .await
        .err(413, "body_too_large", None);
    let patched = srv.patch("/api/v1/flags/f", 1, &big).await;
    patched.err(413, "body_too_large", None);

    // Authentication.
    let path = srv.url("/api/v1/flags");
    let no_auth = srv.send(srv.http.get(&path)).await;
    no_auth.err(401, "unauthorized", Some("Authorization"));
    srv.send(srv.http.get(&path).bearer_auth("vxm_not-a-key"))
        .await
        .err(401, "unauthorized", None);
    srv.send(
        srv.http
            .get(&path)
            .header("Authorization", format!("Basic {}", srv.admin)),
    )
    .await
    .err(401, "unauthorized", Some("Authorization"));
    srv.send(
        srv.http
            .post(&path)
            .json(&json!({"project": "val", "name": "anon"})),
    )
    .await
    .err(401, "unauthorized", Some("Authorization"));

    // A reader key cannot write.
    let reader = srv
        .post("/api/v1/keys", &json!({"name": "r", "role": "reader"}))
        .await
        .ok(201)
        .json;
    let reader = reader["secret"].as_str().unwrap().to_owned();
    srv.send(srv.http.get(&path).bearer_auth(&reader))
        .await
        .ok(200);
    for (method, p, body) in [
        (
            Method::POST,
            "/api/v1/flags",
            json!({"project": "val", "name": "by reader"}),
        ),
        (Method::PATCH, "/api/v1/flags/f", json!({"name": "renamed"})),
        (Method::POST, "/api/v1/flags/f/activate", Value::Null),
        (Method::POST, "/api/v1/projects", json!({"name": "R"})),
    ] {
        let mut request = srv
            .http
            .request(method, srv.url(p))
            .bearer_auth(&reader)
            .header("If-Match", "\"1\"");
        if !body.is_null() {
            request = request.json(&body);
        }
        srv.send(request).await.err(403, "forbidden", None);
    }
    assert_eq!(srv.version("f").await, 1, "refused writes change nothing");

    // Unknown routes and methods answer JSON.
    let r = srv.get("/api/v1/nothing-here").await;
    r.err(404, "not_found", None);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    srv.send(srv.http.get(srv.url("/nope")))
        .await
        .err(404, "not_found", None);
    srv.get("/api/v1/flags/ghost")
        .await
        .err(404, "not_found", None);
    srv.get("/api/v1/projects/ghost")
        .await
        .err(404, "not_found", None);
    srv.send(srv.req(Method::DELETE, "/api/v1/flags"))
        .await
        .err(405, "method_not_allowed", None);

    // Content type, If-Match and query parameters.
    srv.send(
        srv.req(Method::POST, "/api/v1/flags")
            .body(r#"{"project": "val", "name": "x"}"#),
    )
    .await
    .err(415, "unsupported_media_type", None);
    srv.send(
        srv.req(Method::PATCH, "/api/v1/flags/f")
            .header("If-Match", "yesterday")
            .json(&json!({"name": "n"})),
    )
    .await
    .err(400, "invalid_if_match", Some("If-Match"));
    srv.patch("/api/v1/flags/f", None, &json!({"name": "n"}))
        .await
        .err(428, "version_required", None);
    srv.patch("/api/v1/flags/f", 7, &json!({"name": "n"}))
        .await
        .err(409, "version_conflict", None);
    srv.get("/api/v1/flags?limit=many")
        .await
        .err(400, "invalid_query", Some("limit"));
    srv.get("/api/v1/flags?state=asleep")
        .await
        .err(400, "invalid_query", Some("state"));
    srv.post("/api/v1/flags/f/evaluate", &json!({"user": "u1"}))
        .await
        .err(422, "invalid_user", Some("user"));
    srv.post("/api/v1/flags/f/evaluate", &json!({"usr": {}}))
        .await
        .err(400, "invalid_field", Some("usr"));
    srv.assert_no_server_errors();
}

/// One flag of the listing fixture and what the filters should see of it.
#[derive(Debug, Clone)]
struct Listed {
    project: &'static str,
    key: String,
    name: String,
    kind: &'static str,
    tags: Vec<&'static str>,
    active: bool,
    archived: bool,
}

fn listing_fixture() -> Vec<Listed> {
    (0..120)
        .map(|i| {
            let name = format!(
                "Feature {i:03} {}",
                if i % 10 == 0 { "Checkout" } else { "Search" }
            );
            let mut tags = Vec::new();
            if i % 5 == 0 {
                tags.push("mobile");
            }
            if i % 2 == 0 {
                tags.push("web");
            }
            Listed {
                project: if i % 3 == 0 { "beta" } else { "alpha" },
                key: name.to_lowercase().replace(' ', "-"),
                name,
                kind: if i % 4 == 0 { "experiment" } else { "release" },
                tags,
                active: i % 6 == 0,
                archived: i % 20 == 1,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_filters_searches_and_pages() {
    let srv = Server::sqlite().await;
    srv.create_project("Alpha").await;
    srv.create_project("Beta").await;
    let fixture = listing_fixture();
    for f in &fixture {
        let created = srv
            .create_flag(
                json!({"project": f.project, "name": f.name, "type": f.kind, "tags": f.tags}),
            )
            .await;
        assert_eq!(created["key"].as_str(), Some(f.key.as_str()));
        let path = format!("/api/v1/flags/{}", f.key);
        if f.active {
            srv.post_if(&format!("{path}/activate"), 1).await.ok(200);
        }
        if f.archived {
            srv.post_if(&format!("{path}/archive"), 1).await.ok(200);
        }
    }

    type Filter = fn(&Listed) -> bool;
    let cases: Vec<(&str, Filter)> = vec![
        ("", |f| !f.archived),
        ("project=alpha", |f| !f.archived && f.project == "alpha"),
        ("project=beta", |f| !f.archived && f.project == "beta"),
        ("state=active", |f| !f.archived && f.active),
        ("state=inactive&project=alpha", |f| {
            !f.archived && !f.active && f.project == "alpha"
        }),
        ("type=experiment", |f| !f.archived && f.kind == "experiment"),
        ("type=release&state=active", |f| {
            !f.archived && f.kind == "release" && f.active
        }),
        ("tag=mobile", |f| !f.archived && f.tags.contains(&"mobile")),
        ("tag=web&project=beta", |f| {
            !f.archived && f.tags.contains(&"web") && f.project == "beta"
        }),
        ("tag=desktop", |_| false),
        ("q=checkout", |f| !f.archived && f.name.contains("Checkout")),
        ("q=CHECKOUT", |f| !f.archived && f.name.contains("Checkout")),
        ("q=feature-01", |f| {
            !f.archived && f.key.starts_with("feature-01")
        }),
        ("q=Feature%20011", |f| {
            !f.archived && f.name.starts_with("Feature 011")
        }),
        ("q=sEaRcH&type=experiment", |f| {
            !f.archived && f.name.contains("Search") && f.kind == "experiment"
        }),
        ("archived=true", |f| f.archived),
        ("archived=true&project=beta", |f| {
            f.archived && f.project == "beta"
        }),
        ("archived=false&state=inactive", |f| {
            !f.archived && !f.active
        }),
    ];
    for (query, filter) in cases {
        let mut expected: Vec<(&str, &str)> = fixture
            .iter()
            .filter(|f| filter(f))
            .map(|f| (f.project, f.key.as_str()))
            .collect();
        expected.sort_unstable();
        // Page through with 7 per page and compare with the model.
        let mut got: Vec<(String, String)> = Vec::new();
        let mut offset = 0;
        loop {
            let r = srv
                .get(&format!("/api/v1/flags?{query}&limit=7&offset={offset}"))
                .await
                .ok(200);
            assert_eq!(r.json["total"], expected.len(), "total for {query:?}");
            assert_eq!(r.json["offset"], offset);
            assert_eq!(r.json["limit"], 7);
            let items = r.json["items"].as_array().unwrap();
            assert!(items.len() <= 7);
            for item in items {
                assert!(
                    item.get("variants").is_none(),
                    "listed flags are summaries: {item}"
                );
                got.push((
                    item["project"].as_str().unwrap().to_owned(),
                    item["key"].as_str().unwrap().to_owned(),
                ));
            }
            if items.is_empty() {
                break;
            }
            offset += 7;
        }
        let got: Vec<(&str, &str)> = got.iter().map(|(p, k)| (p.as_str(), k.as_str())).collect();
        assert_eq!(
            got, expected,
            "items of {query:?}, in project and key order"
        );
    }

    // Defaults, bounds and an offset past the end.
    let r = srv.get("/api/v1/flags").await.ok(200);
    assert_eq!(
        (r.json["limit"].as_u64(), r.json["offset"].as_u64()),
        (Some(50), Some(0))
    );
    assert_eq!(r.json["items"].as_array().unwrap().len(), 50);
    let r = srv.get("/api/v1/flags?limit=500").await.ok(200);
    assert_eq!(r.json["items"].as_array().unwrap().len(), 114);
    let r = srv.get("/api/v1/flags?offset=1000").await.ok(200);
    assert_eq!(
        (
            r.json["total"].as_u64(),
            r.json["items"].as_array().map(Vec::len)
        ),
        (Some(114), Some(0))
    );
    for limit in [0, 501] {
        srv.get(&format!("/api/v1/flags?limit={limit}")).await.err(
            422,
            "out_of_range",
            Some("limit"),
        );
    }
    srv.get("/api/v1/flags?offset=-1")
        .await
        .err(400, "invalid_query", Some("offset"));
    let summary = &srv.get("/api/v1/flags?q=feature-000").await.ok(200).json["items"][0];
    assert_eq!(summary["type"], "experiment");
    assert_eq!(summary["state"], "active");
    assert_eq!(strings(&summary["tags"]), ["mobile", "web"]);
    assert_eq!(
        keys(&srv.get("/api/v1/flags?q=zzz").await.ok(200).json["items"]),
        Vec::<String>::new()
    );
    srv.assert_no_server_errors();
}

/// Product bug: names, labels and tags are not checked for control characters. A NUL in one
/// is stored by SQLite but makes PostgreSQL fail, so the same request answers 201 on one
/// backend and 500 on the other.
async fn nul_characters_are_refused_not_500(srv: &Server) {
    srv.create_project("Val").await;
    let cases = [
        (
            "/api/v1/flags",
            json!({"project": "val", "key": "n1", "name": "a\u{0}b"}),
            "name",
        ),
        (
            "/api/v1/flags",
            json!({"project": "val", "key": "n2", "name": "ok", "tags": ["x\u{0}"]}),
            "tags[0]",
        ),
        ("/api/v1/projects", json!({"name": "p\u{0}q"}), "name"),
        (
            "/api/v1/projects/val/deployments",
            json!({"label": "l\u{0}", "type": "server"}),
            "label",
        ),
    ];
    let mut failures = Vec::new();
    for (path, body, field) in cases {
        let r = srv.post(path, &body).await;
        if r.status != 422 || r.field() != Some(field) {
            failures.push(format!(
                "POST {path} {body}: expected 422 on {field}, got {} {}",
                r.status, r.text
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{:?}: {}",
        srv.backend,
        failures.join("\n")
    );
}

/// Product bug (minor): the `Authorization` scheme is matched case-sensitively, but HTTP auth
/// schemes are case-insensitive (RFC 9110 §11.1), so `bearer <key>` is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() {
    let srv = Server::sqlite().await;
    for scheme in ["bearer", "BEARER"] {
        let request = srv
            .http
            .get(srv.url("/api/v1/projects"))
            .header("Authorization", format!("{scheme} {}", srv.admin));
        let r = srv.send(request).await;
        assert_eq!(r.status, 200, "{scheme}: {}", r.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_key_in_two_projects_needs_the_project() {
    let srv = Server::sqlite().await;
    srv.create_project("One").await;
    srv.create_project("Two").await;
    srv.flag_in("one", "shared", json!({"description": "first"}))
        .await;
    srv.flag_in("two", "shared", json!({"description": "second"}))
        .await;
    let r = srv.get("/api/v1/flags/shared").await;
    r.err(422, "project_required", Some("project"));
    assert!(
        r.message().contains("one") && r.message().contains("two"),
        "{}",
        r.text
    );
    let two = srv.get("/api/v1/flags/shared?project=two").await.ok(200);
    assert_eq!(two.json["description"], "second");
    srv.patch(
        "/api/v1/flags/shared?project=one",
        1,
        &json!({"description": "changed"}),
    )
    .await
    .ok(200);
    assert_eq!(
        srv.get("/api/v1/flags/shared?project=one").await.json["description"],
        "changed"
    );
    assert_eq!(
        srv.get("/api/v1/flags/shared?project=two").await.json["description"],
        "second"
    );
    srv.patch("/api/v1/flags/shared", 2, &json!({"description": "which?"}))
        .await
        .err(422, "project_required", Some("project"));
    let qa = srv
        .post(
            "/api/v1/flags/shared/evaluate?project=two",
            &json!({"user": {"user_id": "u"}}),
        )
        .await
        .ok(200);
    assert_eq!(qa.json["variant"], "off");
    srv.get("/api/v1/flags/shared?project=three")
        .await
        .err(404, "not_found", None);
    srv.assert_no_server_errors();
}

/// Product bug: `.` and `..` pass the URL-safe key check, but as path segments they are
/// normalized away by every HTTP client, so such a flag or project can be created and never
/// addressed again (`GET /api/v1/flags/..` is `GET /api/v1/`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segment_keys_are_refused() {
    let srv = Server::sqlite().await;
    srv.create_project("Val").await;
    let mut failures = Vec::new();
    for key in [".", ".."] {
        let r = srv
            .post(
                "/api/v1/flags",
                &json!({"project": "val", "name": "dots", "key": key}),
            )
            .await;
        if (r.status, r.code(), r.field()) != (422, "invalid_key", Some("key")) {
            failures.push(format!("flag key {key:?}: {} {}", r.status, r.text));
        }
        let r = srv.post("/api/v1/projects", &json!({"name": key})).await;
        if (r.status, r.code(), r.field()) != (422, "invalid_key", Some("key")) {
            failures.push(format!("project named {key:?}: {} {}", r.status, r.text));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
