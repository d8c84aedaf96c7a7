#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
//! Mutual-exclusion and holdout groups compiled (`evaluation.md` §7, §10.2–10.5): the group
//! configs field by field against the Amplitude-shaped configs of the shared vectors, the
//! members' gates, and over 100,000 users the guarantees groups exist for.

use serde_json::{json, Value as Json};
use vexil_core::compile::deployment_flags;
use vexil_core::{EvaluationMode, Flag, Group, GroupKind, Inclusion, Slot, SlotRef};
use vexil_eval::{evaluate, Context, FlagConfig, FlagSet};

mod support;
use support::{experiment, rollout};

fn group(key: &str, kind: GroupKind, unit: &str, salt: &str, version: i64) -> Group {
    Group {
        project: "proj".into(),
        key: key.into(),
        name: key.into(),
        description: String::new(),
        kind,
        evaluation_mode: EvaluationMode::Local,
        bucketing_unit: unit.into(),
        bucketing_salt: salt.into(),
        slots: Vec::new(),
        percentage: None,
        inclusions: Inclusion::default(),
        exclusions: Inclusion::default(),
        mutex_group: None,
        metrics: Vec::new(),
        archived: false,
        version,
        created_at: 0,
        updated_at: 0,
        created_by: String::new(),
        updated_by: String::new(),
    }
}

fn mutex(key: &str, salt: &str, version: i64, percentages: &[u8]) -> Group {
    Group {
        slots: percentages
            .iter()
            .zip(1u8..)
            .map(|(&percentage, index)| Slot {
                index,
                key: Slot::key_of(index),
                percentage,
            })
            .collect(),
        ..group(key, GroupKind::MutualExclusion, "user_id", salt, version)
    }
}

fn holdout(key: &str, salt: &str, version: i64, percentage: u8) -> Group {
    Group {
        percentage: Some(percentage),
        ..group(key, GroupKind::Holdout, "device_id", salt, version)
    }
}

fn in_slot(group: &str, slot: u8) -> Option<SlotRef> {
    Some(SlotRef {
        group: group.into(),
        slot,
        shared: false,
    })
}

/// An active experiment attached to `prod`, serving everyone control or treatment.
fn member(key: &str, holdouts: &[&str], slot: Option<SlotRef>) -> Flag {
    Flag {
        deployments: vec!["prod".into()],
        all_other_users: rollout(100, &[("control", 1), ("treatment", 1)]),
        holdouts: holdouts.iter().map(|h| h.to_string()).collect(),
        mutex_group: slot,
        ..experiment(key)
    }
}

fn vector(name: &str) -> Vec<Json> {
    let dir = std::env::var("VEXIL_VECTORS").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/vectors").to_string()
    });
    let text = std::fs::read_to_string(format!("{dir}/engine/{name}")).unwrap();
    let doc: Json = serde_json::from_str(&text).unwrap();
    doc["flags"].as_array().unwrap().clone()
}

fn config(served: &[FlagConfig], key: &str) -> Json {
    let found = served.iter().find(|c| c.key == key).expect(key);
    serde_json::to_value(found).unwrap()
}

/// Removes the variants' `flagIds` payloads (Amplitude's are its numeric flag ids, ours the
/// member keys) and returns them by variant.
fn take_flag_ids(config: &mut Json) -> Vec<(String, Json)> {
    let mut out = Vec::new();
    for (key, variant) in config["variants"].as_object_mut().unwrap() {
        if let Some(payload) = variant.as_object_mut().unwrap().remove("payload") {
            out.push((key.clone(), payload["flagIds"].clone()));
        }
    }
    out
}

/// Checks one compiled group against the vector's config of the same key, field by field, then
/// its `flagIds` against `expected_ids`.
fn check(served: &[FlagConfig], vectors: &[Json], key: &str, expected_ids: &[(&str, Json)]) {
    let mut ours = config(served, key);
    let mut theirs = vectors.iter().find(|c| c["key"] == key).unwrap().clone();
    let ids = take_flag_ids(&mut ours);
    take_flag_ids(&mut theirs);
    for field in ["key", "metadata", "segments", "variants", "dependencies"] {
        assert_eq!(ours.get(field), theirs.get(field), "{key}: {field}");
    }
    let expected: Vec<(String, Json)> = expected_ids
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    assert_eq!(ids, expected, "{key}: flagIds by variant");
}

#[test]
fn holdout_and_mutex_compile_to_the_amplitude_shape() {
    let groups = [
        holdout("holdout-global", "hOld0ut2", 251, 5),
        mutex("mutex-home", "mUtEx002", 252, &[50, 50]),
    ];
    let flags = [
        member("home-exp", &["holdout-global"], in_slot("mutex-home", 1)),
        member("home-exp-2", &["holdout-global"], in_slot("mutex-home", 2)),
    ];
    let served = deployment_flags("prod", &flags, &groups);
    let keys: Vec<&str> = served.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(
        keys,
        ["holdout-global", "mutex-home", "home-exp", "home-exp-2"],
        "groups served first, not deployed"
    );
    let vectors = vector("deps-holdout-and-mutex.json");
    check(
        &served,
        &vectors,
        "holdout-global",
        &[
            ("holdout", json!([])),
            ("on", json!(["home-exp", "home-exp-2"])),
        ],
    );
    check(
        &served,
        &vectors,
        "mutex-home",
        &[
            ("slot-1", json!(["home-exp"])),
            ("slot-2", json!(["home-exp-2"])),
        ],
    );
    let exp = config(&served, "home-exp");
    assert_eq!(exp["dependencies"], json!(["holdout-global", "mutex-home"]));
    assert_eq!(
        exp["segments"][0],
        json!({"metadata": {"segmentName": "flag-dependencies"}, "variant": "off",
               "conditions": [
                   [{"selector": ["result", "holdout-global", "key"], "op": "is not", "values": ["on"]}],
                   [{"selector": ["result", "mutex-home", "key"], "op": "is not", "values": ["slot-1"]}]]})
    );
}

#[test]
fn mutex_with_unallocated_users_and_holdout_compile_to_the_amplitude_shape() {
    let mutex_vectors = vector("deps-mutex.json");
    let groups = [mutex("mutex-pricing", "mUtEx001", 247, &[30, 30, 30])];
    let served = deployment_flags("prod", &[], &groups);
    assert!(served.is_empty(), "a group nobody uses is not served");
    let flags = [member("pricing-a", &[], in_slot("mutex-pricing", 1))];
    let served = deployment_flags("prod", &flags, &groups);
    check(
        &served,
        &mutex_vectors,
        "mutex-pricing",
        &[
            ("slot-1", json!(["pricing-a"])),
            ("slot-2", json!([])),
            ("slot-3", json!([])),
            ("unallocated", json!([])),
        ],
    );

    let holdout_vectors = vector("deps-holdout.json");
    let groups = [holdout("holdout-checkout", "hOld0ut1", 245, 10)];
    let flags = [member("checkout-exp", &["holdout-checkout"], None)];
    let served = deployment_flags("prod", &flags, &groups);
    check(
        &served,
        &holdout_vectors,
        "holdout-checkout",
        &[("holdout", json!([])), ("on", json!(["checkout-exp"]))],
    );
}

#[test]
fn one_slot_for_everyone_needs_no_bucket() {
    let groups = [mutex("mutex-all", "s", 1, &[100])];
    let flags = [member("a", &[], in_slot("mutex-all", 1))];
    let served = deployment_flags("prod", &flags, &groups);
    let group = config(&served, "mutex-all");
    assert_eq!(
        group["segments"],
        json!([{"metadata": {"segmentName": "All Other Users"}, "variant": "slot-1"}])
    );
    // A user without a bucketing value is still in the slot.
    let set = FlagSet::compile(served).unwrap();
    assert_eq!(
        variant(&set, &json!({"device_id": "d"}), "mutex-all"),
        "slot-1"
    );
}

#[test]
fn archived_members_and_inactive_members_leave_the_payloads_and_gates() {
    let groups = [holdout("holdout-h", "s", 3, 10)];
    let mut archived = member("b", &["holdout-h"], None);
    archived.archived = true;
    let mut inactive = member("c", &["holdout-h"], None);
    inactive.state = vexil_core::FlagState::Inactive;
    let flags = [member("a", &["holdout-h"], None), archived, inactive];
    let served = deployment_flags("prod", &flags, &groups);
    let h = config(&served, "holdout-h");
    assert_eq!(h["variants"]["on"]["payload"]["flagIds"], json!(["a", "c"]));
    assert!(config(&served, "c").get("dependencies").is_none());
}

fn variant(set: &FlagSet, user: &Json, key: &str) -> String {
    let context = Context::from_sdk_user_json(&user.to_string()).unwrap();
    let results = evaluate(set, &context, &[] as &[&str]).unwrap();
    results
        .get(key)
        .map_or("off".to_string(), |r| r.key().to_string())
}

/// Over 100,000 users: nobody is in two experiments of one mutual-exclusion group; each slot
/// and the holdout get their share within 0.5 points; held-out users get `off` from every
/// member; an individually included user is held out and an excluded one never is.
#[test]
fn groups_keep_their_promises_over_100000_users() {
    let mut h = holdout("holdout-program", "pRoGrAm1", 1, 5);
    h.bucketing_unit = "user_id".into();
    h.inclusions.ids = vec!["always-held".into()];
    h.exclusions.ids = vec!["never-held".into()];
    let groups = [mutex("mutex-surface", "sUrFaCe1", 1, &[30, 30, 30]), h];
    let flags = [
        member("exp-a", &["holdout-program"], in_slot("mutex-surface", 1)),
        member("exp-b", &["holdout-program"], in_slot("mutex-surface", 2)),
        member("exp-c", &[], in_slot("mutex-surface", 3)),
    ];
    let set = FlagSet::compile(deployment_flags("prod", &flags, &groups)).unwrap();
    let n = 100_000;
    let mut in_slot = [0u32; 3];
    let mut held = 0u32;
    for i in 0..n {
        let user = json!({"user_id": format!("user-{i}")});
        let context = Context::from_sdk_user_json(&user.to_string()).unwrap();
        let results = evaluate(&set, &context, &[] as &[&str]).unwrap();
        let key = |k: &str| results.get(k).map_or("off", |r| r.key());
        let served: Vec<&str> = ["exp-a", "exp-b", "exp-c"]
            .into_iter()
            .filter(|&e| key(e) != "off")
            .collect();
        assert!(served.len() <= 1, "user-{i} is in {served:?}");
        let slot = key("mutex-surface");
        for (k, count) in in_slot.iter_mut().enumerate() {
            if slot == format!("slot-{}", k + 1) {
                *count += 1;
            }
        }
        if key("holdout-program") == "holdout" {
            held += 1;
            assert_eq!(key("exp-a"), "off", "held-out user-{i}");
            assert_eq!(key("exp-b"), "off", "held-out user-{i}");
        } else if slot == "slot-1" {
            assert_ne!(key("exp-a"), "off", "user-{i} in slot-1 and not held out");
        }
    }
    let share = |count: u32| f64::from(count) * 100.0 / f64::from(n);
    for (k, &count) in in_slot.iter().enumerate() {
        assert!(
            (share(count) - 30.0).abs() < 0.5,
            "slot-{}: {:.2}%",
            k + 1,
            share(count)
        );
    }
    assert!(
        (share(held) - 5.0).abs() < 0.5,
        "holdout {:.2}%",
        share(held)
    );

    // The individual lists win over the bucket; find a held-out and a let-through bucket first.
    for (id, expected) in [("always-held", "holdout"), ("never-held", "on")] {
        for device in [json!({"user_id": id}), json!({"device_id": id})] {
            assert_eq!(variant(&set, &device, "holdout-program"), expected, "{id}");
        }
    }
    let held_user = (0..n)
        .map(|i| format!("user-{i}"))
        .find(|u| variant(&set, &json!({ "user_id": u }), "holdout-program") == "holdout")
        .unwrap();
    let mut excluded = groups[1].clone();
    excluded.exclusions.ids = vec![held_user.clone()];
    excluded.inclusions.ids.clear();
    let set = FlagSet::compile(deployment_flags(
        "prod",
        &flags,
        &[groups[0].clone(), excluded],
    ))
    .unwrap();
    assert_eq!(
        variant(&set, &json!({ "user_id": held_user }), "holdout-program"),
        "on",
        "an excluded user is never held out"
    );
}

#[test]
fn a_holdout_in_a_mutex_slot_gates_its_members_on_the_slot() {
    let mut h = holdout("holdout-in-slot", "hIs00001", 1, 10);
    h.bucketing_unit = "user_id".into();
    h.mutex_group = in_slot("mutex-m", 2);
    let groups = [mutex("mutex-m", "mM000001", 1, &[50, 50]), h];
    let flags = [
        member("exp-x", &[], in_slot("mutex-m", 1)),
        member("exp-y", &["holdout-in-slot"], None),
    ];
    let served = deployment_flags("prod", &flags, &groups);
    let m = config(&served, "mutex-m");
    assert_eq!(
        m["variants"]["slot-2"]["payload"]["flagIds"],
        json!(["holdout-in-slot"])
    );
    assert_eq!(
        config(&served, "holdout-in-slot")["dependencies"],
        json!(["mutex-m"])
    );
    let set = FlagSet::compile(served).unwrap();
    for i in 0..5_000 {
        let user = json!({"user_id": format!("user-{i}")});
        let x = variant(&set, &user, "exp-x");
        let y = variant(&set, &user, "exp-y");
        assert!(x == "off" || y == "off", "user-{i} in both");
        if variant(&set, &user, "mutex-m") == "slot-1" {
            assert_eq!(y, "off", "user-{i}: exp-y runs only in slot-2");
        }
    }
}
