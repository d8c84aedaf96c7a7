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

/// The detail of one flag; checks on the way that the traits looked up for the result are
/// the ones its metadata give.
fn detail(s: &Snapshot, user: &User, flag_key: &str) -> Detail {
    let outcome = s.outcome(&s.context(user), flag_key);
    if let Some(r) = &outcome.result {
        assert_eq!(outcome.traits, ResultTraits::of(r), "{flag_key}");
    }
    outcome.detail(flag_key)
}

fn all(s: &Snapshot, user: &User) -> BTreeMap<String, Variant> {
    s.all(&s.context(user))
}

/// (flag, user, reason or error code, variant, value)
#[test]
fn reasons_follow_ofrep() {
    let s = snapshot(&[("c_beta", "User", &["beta-user"])]);
    let in_split = (0..100)
        .map(|i| format!("u{i}"))
        .find(|u| {
            let user = User::new().with_user_id(u.as_str());
            s.result(&s.context(&user), "split")
                .is_some_and(|(r, _)| r.key() == "on")
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
        let d = detail(&s, &User::from_json(user.clone()).unwrap(), flag);
        let got = d.error.map_or(d.reason.as_str(), ErrorCode::as_str);
        assert_eq!(
            (got, d.variant_key(), d.value.clone()),
            (reason, variant, value),
            "{flag} {user}"
        );
    }
    let d = detail(&s, &User::new(), "payload");
    assert_eq!(d.flag_metadata()["payload"], json!(r#"{"a":[1]}"#));
    assert_eq!(d.flag_metadata()["flagVersion"], json!(7));
    // Before any configs: not ready.
    let empty = Snapshot::default();
    assert_eq!(
        detail(&empty, &User::new(), "static").error,
        Some(ErrorCode::ProviderNotReady)
    );
    assert!(all(&empty, &User::new()).is_empty());
    // All results, ancestors included.
    let every = all(&s, &User::new().with_user_id("u1"));
    assert_eq!(every.len(), 8);
    assert_eq!(every["parent"].key, "on");
}

/// What a typed accessor gives for `Detail::typed`'s answer.
fn or<T>(typed: Result<Option<T>, ErrorCode>, fallback: T) -> T {
    typed.ok().flatten().unwrap_or(fallback)
}

/// The typed accessors read values where the compiled flags hold them, without building a
/// `Detail`; flag by flag, for users reaching every outcome and for values of every JSON type,
/// they give what `Detail::typed` gives, through an `Evaluation` and per call.
#[test]
fn typed_accessors_agree_with_details() {
    let mut flags = configs();
    let typed = |key: &str, value: serde_json::Value| json!({"key": key, "variants": {"v": {"key": "v", "value": value}}, "segments": [{"variant": "v"}]});
    let values = [
        json!(true),
        json!(7),
        json!(-0.0),
        json!(2.5),
        json!(18_446_744_073_709_551_615_u64),
        json!({"a": [1]}),
    ];
    for (i, value) in values.into_iter().enumerate() {
        flags
            .as_array_mut()
            .unwrap()
            .push(typed(&format!("typed-{i}"), value));
    }
    let client = crate::LocalClient::start(crate::LocalConfig::offline(flags.to_string())).unwrap();
    let mut keys: Vec<String> = flags
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_owned())
        .collect();
    keys.push("ghost".to_owned());
    let mut users = vec![
        json!({}),
        json!({"country": "CA"}),
        json!({"device_id": "d"}),
    ];
    users.extend((0..20).map(|i| json!({"user_id": format!("u{i}")})));
    let fallback = json!("fallback");
    let mut seen = BTreeSet::new();
    for json in users {
        let user = User::from_json(json.clone()).unwrap();
        let eval = client.evaluation(&user);
        for key in &keys {
            let d = client.detail(&user, key);
            let what = format!("{key} {json}");
            seen.insert(d.value.is_some());
            assert_eq!(eval.detail(key), d, "{what}");
            assert_eq!(
                eval.is_enabled(key),
                d.error.is_none() && d.value.is_some(),
                "{what}"
            );
            let s = or(d.typed(|v| v.as_str().map(str::to_owned)), "fb".to_owned());
            assert_eq!(eval.string_variation(key, "fb"), s, "{what}");
            assert_eq!(client.string_variation(&user, key, "fb"), s, "{what}");
            let b = or(d.typed(serde_json::Value::as_bool), false);
            assert_eq!(eval.bool_variation(key, false), b, "{what}");
            assert_eq!(client.bool_variation(&user, key, false), b, "{what}");
            let i = or(d.typed(serde_json::Value::as_i64), -1);
            assert_eq!(eval.int_variation(key, -1), i, "{what}");
            assert_eq!(client.int_variation(&user, key, -1), i, "{what}");
            let f = or(d.typed(serde_json::Value::as_f64), -1.5);
            assert_eq!(
                eval.float_variation(key, -1.5).to_bits(),
                f.to_bits(),
                "{what}"
            );
            assert_eq!(
                client.float_variation(&user, key, -1.5).to_bits(),
                f.to_bits(),
                "{what}"
            );
            let j = or(d.typed(|v| Some(v.clone())), fallback.clone());
            assert_eq!(eval.json_variation(key, fallback.clone()), j, "{what}");
            assert_eq!(
                client.json_variation(&user, key, fallback.clone()),
                j,
                "{what}"
            );
            assert_eq!(eval.variant(key), client.variant(&user, key), "{what}");
        }
        assert_eq!(eval.all_variants(), client.all_variants(&user), "{json}");
    }
    // Both values and fallbacks were compared.
    assert_eq!(seen.len(), 2);
}
