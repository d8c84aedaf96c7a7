//! Bootstrap parsing and OFREP reasons on configs shaped like the ones Vexil compiles.

use serde_json::json;

use super::*;

/// Configs as `vexil-core` compiles them: static, targeted, split, inactive, an inclusion, a
/// cohort, a prerequisite and an ancestor served with `deployed: false`.
fn configs() -> serde_json::Value {
    let off = json!({"key": "off", "metadata": {"default": true}});
    let on = json!({"key": "on", "value": "on"});
    let meta = |v: i64| json!({"deployed": true, "evaluationMode": "local", "flagType": "release", "flagVersion": v});
    let aou =
        |variant: &str| json!({"metadata": {"segmentName": "All Other Users"}, "variant": variant});
    let bucket = |pct: i64| {
        json!({"selector": ["context", "user", "user_id"], "salt": "s",
        "allocations": [{"range": [0, pct], "distributions": [{"variant": "on", "range": [0, 42949673]}]}]})
    };
    json!([
        {"key": "static", "metadata": meta(1), "variants": {"on": on, "off": off}, "segments": [aou("on")]},
        {"key": "targeted", "metadata": meta(2), "variants": {"on": on, "off": off}, "segments": [
            {"metadata": {"segmentName": "Canada"}, "variant": "on",
             "conditions": [[{"selector": ["context", "user", "country"], "op": "is", "values": ["CA"]}]]},
            aou("off")]},
        {"key": "split", "metadata": meta(3), "variants": {"on": on, "off": off}, "segments": [
            {"metadata": {"segmentName": "All Other Users"}, "variant": "off", "bucket": bucket(50)}]},
        {"key": "inactive", "metadata": meta(4), "variants": {"on": on, "off": off}, "segments": [
            {"metadata": {"segmentName": "default"}, "variant": "off"}]},
        {"key": "cohort", "metadata": meta(5), "variants": {"on": on, "off": off}, "segments": [
            {"metadata": {"segmentName": "Beta"}, "variant": "on",
             "conditions": [[{"selector": ["context", "user", "cohort_ids"], "op": "set contains any", "values": ["c_beta"]}]]},
            aou("off")]},
        {"key": "parent", "metadata": {"deployed": false, "flagVersion": 1}, "variants": {"on": on, "off": off},
         "segments": [aou("on")]},
        {"key": "child", "metadata": meta(6), "dependencies": ["parent"], "variants": {"on": on, "off": off}, "segments": [
            {"metadata": {"segmentName": "flag-dependencies"}, "variant": "off",
             "conditions": [[{"selector": ["result", "parent", "key"], "op": "is not", "values": ["on"]}]]},
            aou("on")]},
        {"key": "payload", "metadata": meta(7), "variants": {"t": {"key": "t", "value": "t", "payload": {"a": [1]}}, "off": off},
         "segments": [aou("t")]}
    ])
}

fn snapshot(cohorts: &[(&str, &str, &[&str])]) -> Snapshot {
    let flags = Flags::parse(&configs().to_string(), None).unwrap();
    let cohorts = cohorts
        .iter()
        .map(|(id, group_type, members)| {
            let cohort = Cohort {
                id: (*id).to_owned(),
                group_type: (*group_type).to_owned(),
                last_modified: 1,
                members: members.iter().map(|m| (*m).to_owned()).collect(),
            };
            ((*id).to_owned(), Arc::new(cohort))
        })
        .collect();
    Snapshot {
        flags: Some(Arc::new(flags)),
        cohorts: Arc::new(cohorts),
        cohort_sync: true,
    }
}

/// (what, bootstrap text, number of flags or `None` for an error)
#[test]
fn bootstrap_texts_parse_or_fail_cleanly() {
    let cases: &[(&str, &str, Option<usize>)] = &[
        ("empty array", "[]", Some(0)),
        ("the fixture", &configs().to_string(), Some(8)),
        ("not JSON", "{", None),
        ("an object", "{}", None),
        ("trailing garbage", "[] x", None),
        ("no key", r#"[{"variants": {}, "segments": []}]"#, None),
        (
            "duplicate keys",
            r#"[{"key":"a","variants":{},"segments":[]},{"key":"a","variants":{},"segments":[]}]"#,
            None,
        ),
        ("empty text", "", None),
    ];
    for (what, text, expected) in cases {
        let got = Flags::parse(text, None).map(|f| f.len()).ok();
        assert_eq!(got, *expected, "{what}");
    }
    let flags = Flags::parse(&configs().to_string(), Some("W/\"1\"".into())).unwrap();
    assert_eq!(flags.cohort_ids, ["c_beta"]);
    assert_eq!(flags.etag.as_deref(), Some("W/\"1\""));
}

/// (flag, user, reason or error code, variant, value)
#[test]
fn reasons_follow_ofrep() {
    let s = snapshot(&[("c_beta", "User", &["beta-user"])]);
    let in_split = (0..100)
        .map(|i| format!("u{i}"))
        .find(|u| {
            s.variant(&User::new().with_user_id(u.as_str()), "split")
                .is_some_and(|v| v.key == "on")
        })
        .unwrap();
    type Case = (
        &'static str,
        serde_json::Value,
        &'static str,
        Option<&'static str>,
        Option<serde_json::Value>,
    );
    let cases: Vec<Case> = vec![
        (
            "static",
            json!({"user_id": "u1"}),
            "STATIC",
            Some("on"),
            Some(json!("on")),
        ),
        ("static", json!({}), "STATIC", Some("on"), Some(json!("on"))),
        (
            "targeted",
            json!({"country": "CA"}),
            "TARGETING_MATCH",
            Some("on"),
            Some(json!("on")),
        ),
        (
            "targeted",
            json!({"country": "US"}),
            "DEFAULT",
            Some("off"),
            None,
        ),
        (
            "split",
            json!({"user_id": in_split}),
            "SPLIT",
            Some("on"),
            Some(json!("on")),
        ),
        ("split", json!({}), "TARGETING_KEY_MISSING", None, None),
        (
            "inactive",
            json!({"user_id": "u1"}),
            "DISABLED",
            Some("off"),
            None,
        ),
        (
            "cohort",
            json!({"user_id": "beta-user"}),
            "TARGETING_MATCH",
            Some("on"),
            Some(json!("on")),
        ),
        // Synced cohorts replace what the user claims.
        (
            "cohort",
            json!({"user_id": "u1", "cohort_ids": ["c_beta"]}),
            "DEFAULT",
            Some("off"),
            None,
        ),
        (
            "child",
            json!({"user_id": "u1"}),
            "DEFAULT",
            Some("on"),
            Some(json!("on")),
        ),
        (
            "parent",
            json!({"user_id": "u1"}),
            "FLAG_NOT_FOUND",
            None,
            None,
        ),
        (
            "ghost",
            json!({"user_id": "u1"}),
            "FLAG_NOT_FOUND",
            None,
            None,
        ),
        ("payload", json!({}), "STATIC", Some("t"), Some(json!("t"))),
    ];
    for (flag, user, reason, variant, value) in cases {
        let d = s.detail(&User::from_json(user.clone()).unwrap(), flag);
        let got = d.error.map_or(d.reason.as_str(), ErrorCode::as_str);
        assert_eq!(
            (got, d.variant_key(), d.value.clone()),
            (reason, variant, value),
            "{flag} {user}"
        );
    }
    let d = s.detail(&User::new(), "payload");
    assert_eq!(d.flag_metadata()["payload"], json!(r#"{"a":[1]}"#));
    assert_eq!(d.flag_metadata()["flagVersion"], json!(7));
    // Before any configs: not ready.
    let empty = Snapshot::default();
    assert_eq!(
        empty.detail(&User::new(), "static").error,
        Some(ErrorCode::ProviderNotReady)
    );
    assert!(empty.all(&User::new()).is_empty());
    // All results, ancestors included.
    let all = s.all(&User::new().with_user_id("u1"));
    assert_eq!(all.len(), 8);
    assert_eq!(all["parent"].key, "on");
}
