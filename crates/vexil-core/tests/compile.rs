#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
//! End-to-end tests of the compiler (`evaluation.md` §10): management state in, engine configs
//! out, then evaluated with the engine. Covers the §10.10 worked example, release groups and
//! chained mutual exclusion (seed 003), inactive and archived flags, served order, determinism,
//! expand-only rollouts and imported configs.

use std::collections::BTreeMap;

use serde_json::json;
use vexil_core::compile::{compile_flag, deployment_flags, flags_with_prerequisites};
use vexil_core::{
    Condition, Flag, FlagState, ImportedConfig, Inclusion, Prerequisite, Rollout, Segment, Target,
};
use vexil_eval::{bucket_values, evaluate, Context, FlagConfig, FlagSet};

mod support;
use support::{experiment, flag, rollout, variant};

// ---------------------------------------------------------------------------------------------
// Builders

fn segment(name: &str, conditions: Vec<Condition>, rollout: Rollout) -> Segment {
    Segment {
        name: name.into(),
        conditions,
        percentage: rollout.percentage,
        weights: rollout.weights,
    }
}

fn property_is(property: &str, value: &str) -> Condition {
    Condition {
        target: Target::UserProperty {
            property: property.into(),
        },
        op: "is".into(),
        values: vec![value.into()],
    }
}

fn prerequisite(flag: &str, variants: &[&str]) -> Prerequisite {
    Prerequisite {
        flag: flag.into(),
        variants: variants.iter().map(|&v| v.to_owned()).collect(),
    }
}

fn ids(ids: &[&str]) -> Inclusion {
    Inclusion {
        ids: ids.iter().map(|&i| i.to_owned()).collect(),
        cohorts: Vec::new(),
    }
}

fn imported(json: &str) -> Option<ImportedConfig> {
    Some(ImportedConfig(
        serde_json::value::RawValue::from_string(json.to_owned()).unwrap(),
    ))
}

// ---------------------------------------------------------------------------------------------
// Evaluation helpers

/// The engine's results for an SDK user, serialized (`{flag: {key, value?, payload?, metadata?}}`).
fn results_json(set: &FlagSet, user: &serde_json::Value) -> String {
    let context = Context::from_sdk_user_json(&user.to_string()).unwrap();
    serde_json::to_string(&evaluate(set, &context, &[] as &[&str]).unwrap()).unwrap()
}

/// `(variant key, segmentName)` of every flag that gave a result.
fn outcomes(set: &FlagSet, user: &serde_json::Value) -> BTreeMap<String, (String, String)> {
    let context = Context::from_sdk_user_json(&user.to_string()).unwrap();
    evaluate(set, &context, &[] as &[&str])
        .unwrap()
        .iter()
        .map(|r| {
            let segment = r
                .metadata_value("segmentName")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            (
                r.flag_key().to_owned(),
                (r.key().to_owned(), segment.to_owned()),
            )
        })
        .collect()
}

/// The variant `flag` gave, `"-"` when absent.
fn variant_of(set: &FlagSet, user: &serde_json::Value, flag: &str) -> String {
    outcomes(set, user)
        .remove(flag)
        .map_or_else(|| "-".to_owned(), |(v, _)| v)
}

fn compile_set(configs: Vec<FlagConfig>) -> FlagSet {
    FlagSet::compile(configs).unwrap()
}

/// Deterministic pseudo-random numbers (splitmix64) so that failures are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `true`, `false` or absent (`None`), equally likely.
    fn tri(&mut self) -> Option<bool> {
        match self.next() % 3 {
            0 => Some(true),
            1 => Some(false),
            _ => None,
        }
    }
}

fn share(count: usize, total: usize) -> f64 {
    100.0 * count as f64 / total as f64
}

// ---------------------------------------------------------------------------------------------
// §10.10 worked example

fn worked_example() -> Vec<Flag> {
    let infra = Flag {
        version: 3,
        segments: vec![segment(
            "Premium",
            vec![property_is("premium", "true")],
            rollout(100, &[("on", 1)]),
        )],
        all_other_users: rollout(0, &[("on", 1)]),
        ..flag("new-checkout-infra")
    };
    let mut treatment = variant("treatment");
    treatment.payload = Some(json!({"layout": "b"}));
    let us = Condition {
        target: Target::UserField {
            field: "country".into(),
        },
        op: "is".into(),
        values: vec!["US".into()],
    };
    let checkout = Flag {
        experiment_key: Some("exp-12".into()),
        bucketing_salt: "vx".into(),
        version: 7,
        deployments: vec!["prod".into()],
        variants: vec![variant("control"), treatment],
        inclusions: BTreeMap::from([(
            "treatment".to_owned(),
            Inclusion {
                ids: vec!["qa-1".into()],
                cohorts: vec!["c_beta".into()],
            },
        )]),
        prerequisites: vec![prerequisite("new-checkout-infra", &["on"])],
        segments: vec![segment(
            "US",
            vec![us],
            rollout(80, &[("control", 1), ("treatment", 1)]),
        )],
        all_other_users: rollout(10, &[("control", 1), ("treatment", 1)]),
        ..experiment("checkout-v2")
    };
    // The dependent first: the served order must not depend on the input order.
    vec![checkout, infra]
}

/// The compiled JSON of §10.10, verbatim.
const WORKED_EXAMPLE_JSON: &str = r#"
[{"key": "new-checkout-infra",
  "metadata": {"deployed": false, "evaluationMode": "local", "flagType": "release", "flagVersion": 3},
  "variants": {"on": {"key": "on", "value": "on"}, "off": {"key": "off", "metadata": {"default": true}}},
  "segments": [
    {"metadata": {"segmentName": "Premium"}, "variant": "on",
     "conditions": [[{"selector": ["context","user","user_properties","premium"], "op": "is", "values": ["true"]}]]},
    {"metadata": {"segmentName": "All Other Users"}, "variant": "off"}]},
 {"key": "checkout-v2", "dependencies": ["new-checkout-infra"],
  "metadata": {"deployed": true, "evaluationMode": "local", "flagType": "experiment", "flagVersion": 7, "experimentKey": "exp-12"},
  "variants": {"control": {"key": "control", "value": "control"},
               "treatment": {"key": "treatment", "value": "treatment", "payload": {"layout": "b"}},
               "off": {"key": "off", "metadata": {"default": true}}},
  "segments": [
    {"metadata": {"segmentName": "individual-inclusions"}, "variant": "treatment",
     "conditions": [[{"selector": ["context","user","user_id"], "op": "is", "values": ["qa-1"]}],
                    [{"selector": ["context","user","device_id"], "op": "is", "values": ["qa-1"]}],
                    [{"selector": ["context","user","cohort_ids"], "op": "set contains any", "values": ["c_beta"]}]]},
    {"metadata": {"segmentName": "flag-dependencies"}, "variant": "off",
     "conditions": [[{"selector": ["result","new-checkout-infra","key"], "op": "is not", "values": ["on"]}]]},
    {"metadata": {"segmentName": "US"}, "variant": "off",
     "conditions": [[{"selector": ["context","user","country"], "op": "is", "values": ["US"]}]],
     "bucket": {"selector": ["context","user","user_id"], "salt": "vx",
                "allocations": [{"range": [0, 80], "distributions": [
                  {"variant": "control", "range": [0, 21474837]},
                  {"variant": "treatment", "range": [21474836, 42949673]}]}]}},
    {"metadata": {"segmentName": "All Other Users"}, "variant": "off",
     "bucket": {"selector": ["context","user","user_id"], "salt": "vx",
                "allocations": [{"range": [0, 10], "distributions": [
                  {"variant": "control", "range": [0, 21474837]},
                  {"variant": "treatment", "range": [21474836, 42949673]}]}]}}]}]
"#;

#[test]
fn worked_example_compiles_to_the_spec_json() {
    let served = deployment_flags("prod", &worked_example(), &[]);
    let expected: serde_json::Value = serde_json::from_str(WORKED_EXAMPLE_JSON).unwrap();
    assert_eq!(serde_json::to_value(&served).unwrap(), expected);
    // Key order inside metadata is part of the contract (byte-identical output).
    let text = serde_json::to_string(&served).unwrap();
    assert!(text.contains(
        r#""metadata":{"deployed":true,"evaluationMode":"local","flagType":"experiment","flagVersion":7,"experimentKey":"exp-12"}"#
    ));
}

#[test]
fn worked_example_evaluates_to_the_spec_table() {
    // The bucketing numbers the table quotes.
    assert_eq!(bucket_values("vx", "user-108"), (49, 10585848));
    assert_eq!(bucket_values("vx", "user-386"), (50, 32699885));
    assert_eq!(bucket_values("vx", "user-58").0, 99);
    assert_eq!(bucket_values("vx", "user-51").0, 0);

    let set = compile_set(deployment_flags("prod", &worked_example(), &[]));
    let prem = json!({"premium": true});
    let rows = [
        (
            json!({"user_id": "qa-1"}),
            "treatment",
            "individual-inclusions",
        ),
        (
            json!({"user_id": "u9", "cohort_ids": ["c_beta"]}),
            "treatment",
            "individual-inclusions",
        ),
        (
            json!({"user_id": "user-108", "country": "US"}),
            "off",
            "flag-dependencies",
        ),
        (
            json!({"user_id": "user-108", "country": "US", "user_properties": prem}),
            "control",
            "US",
        ),
        (
            json!({"user_id": "user-386", "country": "US", "user_properties": prem}),
            "treatment",
            "US",
        ),
        (
            json!({"user_id": "user-58", "country": "US", "user_properties": prem}),
            "off",
            "US",
        ),
        (
            json!({"user_id": "user-51", "country": "FR", "user_properties": prem}),
            "treatment",
            "All Other Users",
        ),
        (
            json!({"user_id": "user-386", "country": "FR", "user_properties": prem}),
            "off",
            "All Other Users",
        ),
        (
            json!({"country": "US", "user_properties": prem}),
            "off",
            "US",
        ),
    ];
    for (user, variant, segment_name) in &rows {
        let context = Context::from_sdk_user_json(&user.to_string()).unwrap();
        let results = evaluate(&set, &context, &[] as &[&str]).unwrap();
        let result = results.get("checkout-v2").unwrap();
        assert_eq!(result.key(), *variant, "{user}");
        assert_eq!(
            result
                .metadata_value("segmentName")
                .and_then(|v| v.as_str()),
            Some(*segment_name),
            "{user}"
        );
        // `off` always comes with the default marker.
        assert_eq!(result.is_default(), *variant == "off", "{user}");
    }
    // The first row: the prerequisite gave `off`, the inclusion still wins.
    assert_eq!(
        variant_of(&set, &rows[0].0, "new-checkout-infra"),
        "off".to_owned()
    );

    let fifth = results_json(&set, &rows[4].0);
    assert_eq!(
        fifth,
        concat!(
            r#"{"new-checkout-infra":{"key":"on","value":"on","metadata":{"deployed":false,"evaluationMode":"local","flagType":"release","flagVersion":3,"segmentName":"Premium"}},"#,
            r#""checkout-v2":{"key":"treatment","value":"treatment","payload":{"layout":"b"},"metadata":{"deployed":true,"evaluationMode":"local","flagType":"experiment","flagVersion":7,"experimentKey":"exp-12","segmentName":"US"}}}"#
        )
    );
}

#[test]
fn flags_with_prerequisites_serves_roots_and_their_ancestors() {
    let flags = worked_example();
    let served = flags_with_prerequisites(&["checkout-v2"], &flags, &[]);
    let expected: serde_json::Value = serde_json::from_str(WORKED_EXAMPLE_JSON).unwrap();
    assert_eq!(serde_json::to_value(&served).unwrap(), expected);

    // A prerequisite asked for by itself is a root: deployed, and alone.
    let served = flags_with_prerequisites(&["new-checkout-infra", "nope"], &flags, &[]);
    assert_eq!(served.len(), 1);
    assert_eq!(
        served[0].metadata.as_ref().unwrap().get("deployed"),
        Some(&vexil_eval::Value::Bool(true))
    );
}

// ---------------------------------------------------------------------------------------------
// Seed 003: release groups and chained mutual exclusion

fn release_group() -> Vec<Flag> {
    let attached = |f: Flag| Flag {
        deployments: vec!["prod".into()],
        ..f
    };
    let gated = |key: &str| Flag {
        prerequisites: vec![prerequisite("primary", &["on"])],
        ..attached(flag(key))
    };
    let primary = Flag {
        segments: vec![segment(
            "Premium",
            vec![property_is("premium", "true")],
            rollout(100, &[("on", 1)]),
        )],
        ..attached(flag("primary"))
    };
    let sub1 = Flag {
        segments: vec![segment(
            "Beta",
            vec![property_is("beta", "true")],
            rollout(100, &[("on", 1)]),
        )],
        inclusions: BTreeMap::from([("on".to_owned(), ids(&["tester-1"]))]),
        ..gated("sub-feature-1")
    };
    let sub2 = Flag {
        all_other_users: rollout(100, &[("on", 1)]),
        ..gated("sub-feature-2")
    };
    let sub3 = gated("sub-feature-3");
    vec![sub3, sub1, primary, sub2]
}

/// A user with random `premium` / `beta` (true, false or absent).
fn random_user(rng: &mut Rng, i: usize) -> (serde_json::Value, bool, bool) {
    let (premium, beta) = (rng.tri(), rng.tri());
    let mut props = serde_json::Map::new();
    if let Some(p) = premium {
        props.insert("premium".into(), json!(p));
    }
    if let Some(b) = beta {
        props.insert("beta".into(), json!(b));
    }
    let user = json!({"user_id": format!("user-{i}"), "user_properties": props});
    (user, premium == Some(true), beta == Some(true))
}

#[test]
fn release_group_sub_features_follow_the_primary() {
    let set = compile_set(deployment_flags("prod", &release_group(), &[]));
    let mut rng = Rng(3);
    let mut seen = [0usize; 4];
    for i in 0..10_000 {
        let (user, premium, beta) = random_user(&mut rng, i);
        seen[usize::from(premium) * 2 + usize::from(beta)] += 1;
        let got = outcomes(&set, &user);
        let on = |f: &str| got.get(f).is_some_and(|(v, _)| v == "on");
        assert_eq!(on("primary"), premium, "{user}");
        assert_eq!(on("sub-feature-1"), premium && beta, "{user}");
        assert_eq!(on("sub-feature-2"), premium, "{user}");
        assert!(!on("sub-feature-3"), "{user}");
        // Every flag answers (with `off` at worst), so SDKs never see an unknown flag.
        assert_eq!(got.len(), 4, "{user}");
    }
    // The generator really produced all four combinations.
    assert!(seen.iter().all(|&n| n > 1_000), "{seen:?}");
}

#[test]
fn release_group_inclusion_beats_the_primary() {
    let set = compile_set(deployment_flags("prod", &release_group(), &[]));
    let user = json!({"user_id": "tester-1", "user_properties": {"premium": false}});
    let got = outcomes(&set, &user);
    assert_eq!(got["primary"].0, "off");
    assert_eq!(
        got["sub-feature-1"],
        ("on".to_owned(), "individual-inclusions".to_owned())
    );
    assert_eq!(
        got["sub-feature-2"],
        ("off".to_owned(), "flag-dependencies".to_owned())
    );
    // Included by device id too.
    let device = json!({"device_id": "tester-1"});
    assert_eq!(variant_of(&set, &device, "sub-feature-1"), "on");
}

#[test]
fn chained_mutual_exclusion_splits_users() {
    let exp1 = Flag {
        deployments: vec!["prod".into()],
        all_other_users: rollout(20, &[("control", 1), ("treatment", 1)]),
        ..experiment("experiment-1")
    };
    let exp2 = Flag {
        deployments: vec!["prod".into()],
        prerequisites: vec![prerequisite("experiment-1", &["off"])],
        all_other_users: rollout(100, &[("control", 1), ("treatment", 1)]),
        ..experiment("experiment-2")
    };
    let set = compile_set(deployment_flags("prod", &[exp2, exp1], &[]));
    let n = 10_000;
    let mut counts: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for i in 0..n {
        let user = json!({"user_id": format!("user-{i}")});
        let v1 = variant_of(&set, &user, "experiment-1");
        let v2 = variant_of(&set, &user, "experiment-2");
        assert!(v1 == "off" || v2 == "off", "user-{i} in both: {v1} / {v2}");
        assert!(v1 != "off" || v2 != "off", "user-{i} in neither");
        *counts.entry(("experiment-1", v1)).or_default() += 1;
        *counts.entry(("experiment-2", v2)).or_default() += 1;
    }
    for (flag, expected) in [("experiment-1", 20.0), ("experiment-2", 80.0)] {
        let control = counts
            .get(&(flag, "control".to_owned()))
            .copied()
            .unwrap_or(0);
        let treatment = counts
            .get(&(flag, "treatment".to_owned()))
            .copied()
            .unwrap_or(0);
        let inside = control + treatment;
        assert!(
            (share(inside, n) - expected).abs() <= 1.5,
            "{flag}: {counts:?}"
        );
        assert!(
            (share(control, inside) - 50.0).abs() <= 3.0,
            "{flag}: {counts:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Inactive, archived, order, determinism, stability

#[test]
fn inactive_flag_serves_off_to_everyone_including_inclusions() {
    let f = Flag {
        state: FlagState::Inactive,
        deployments: vec!["prod".into()],
        all_other_users: rollout(100, &[("on", 1)]),
        inclusions: BTreeMap::from([("on".to_owned(), ids(&["vip"]))]),
        prerequisites: vec![prerequisite("missing", &["on"])],
        ..flag("dormant")
    };
    let served = deployment_flags("prod", &[f], &[]);
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].dependencies, None);
    let set = compile_set(served);
    for user in ["vip", "user-1", "user-2"] {
        let got = outcomes(&set, &json!({"user_id": user}));
        assert_eq!(
            got["dormant"],
            ("off".to_owned(), "default".to_owned()),
            "{user}"
        );
    }
}

#[test]
fn inactive_prerequisite_turns_dependents_off_except_their_inclusions() {
    let primary = Flag {
        state: FlagState::Inactive,
        all_other_users: rollout(100, &[("on", 1)]),
        ..flag("primary")
    };
    let sub = Flag {
        deployments: vec!["prod".into()],
        prerequisites: vec![prerequisite("primary", &["on"])],
        all_other_users: rollout(100, &[("on", 1)]),
        inclusions: BTreeMap::from([("on".to_owned(), ids(&["vip"]))]),
        ..flag("sub")
    };
    let set = compile_set(deployment_flags("prod", &[sub, primary], &[]));
    for i in 0..200 {
        let got = outcomes(&set, &json!({"user_id": format!("user-{i}")}));
        assert_eq!(got["primary"].0, "off");
        assert_eq!(
            got["sub"],
            ("off".to_owned(), "flag-dependencies".to_owned())
        );
    }
    let got = outcomes(&set, &json!({"user_id": "vip"}));
    assert_eq!(
        got["sub"],
        ("on".to_owned(), "individual-inclusions".to_owned())
    );
}

#[test]
fn archived_flags_are_never_served() {
    let archived = Flag {
        archived: true,
        deployments: vec!["prod".into()],
        all_other_users: rollout(100, &[("on", 1)]),
        ..flag("archived")
    };
    let archived_parent = Flag {
        archived: true,
        all_other_users: rollout(100, &[("on", 1)]),
        ..flag("archived-parent")
    };
    let child = Flag {
        deployments: vec!["prod".into()],
        prerequisites: vec![
            prerequisite("archived-parent", &["on"]),
            prerequisite("not-in-project", &["on"]),
        ],
        all_other_users: rollout(100, &[("on", 1)]),
        ..flag("child")
    };
    let served = deployment_flags("prod", &[archived, archived_parent, child], &[]);
    let keys: Vec<&str> = served.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["child"]);
    // The unserved prerequisites give no result, so the gate keeps everyone out.
    let set = compile_set(served);
    let got = outcomes(&set, &json!({"user_id": "u1"}));
    assert_eq!(
        got["child"],
        ("off".to_owned(), "flag-dependencies".to_owned())
    );
}

#[test]
fn ancestors_come_first_and_are_not_deployed() {
    let on_for_all = rollout(100, &[("on", 1)]);
    let with = |key: &str, deployments: &[&str], prerequisites: &[&str]| Flag {
        deployments: deployments.iter().map(|&d| d.to_owned()).collect(),
        prerequisites: prerequisites
            .iter()
            .map(|&p| prerequisite(p, &["on"]))
            .collect(),
        all_other_users: on_for_all.clone(),
        ..flag(key)
    };
    let flags = vec![
        with("b-other", &["prod"], &[]),
        with("z-base", &["staging"], &["m-mid"]),
        with("y-unrelated", &["staging"], &[]),
        with("c-shared", &["prod"], &[]),
        with("a-root", &["prod", "staging"], &["z-base", "c-shared"]),
        with("m-mid", &[], &[]),
    ];
    let served = deployment_flags("prod", &flags, &[]);
    let order: Vec<(&str, bool)> = served
        .iter()
        .map(|c| {
            let deployed = c.metadata.as_ref().unwrap().get("deployed");
            (
                c.key.as_str(),
                deployed == Some(&vexil_eval::Value::Bool(true)),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("m-mid", false),
            ("z-base", false),
            ("c-shared", true),
            ("a-root", true),
            ("b-other", true),
        ]
    );
    let set = compile_set(served);
    assert_eq!(variant_of(&set, &json!({"user_id": "u"}), "a-root"), "on");
    // A deployment with nothing attached serves nothing.
    assert!(deployment_flags("dev", &flags, &[]).is_empty());
}

#[test]
fn compilation_is_deterministic() {
    let mut flags = worked_example();
    flags.extend(release_group());
    let first = serde_json::to_string(&deployment_flags("prod", &flags, &[])).unwrap();
    let second = serde_json::to_string(&deployment_flags("prod", &flags, &[])).unwrap();
    assert_eq!(first, second);
    // Input order does not matter either.
    flags.reverse();
    let reversed = serde_json::to_string(&deployment_flags("prod", &flags, &[])).unwrap();
    assert_eq!(first, reversed);
    for f in &flags {
        let a = serde_json::to_string(&compile_flag(f, true)).unwrap();
        let b = serde_json::to_string(&compile_flag(&f.clone(), true)).unwrap();
        assert_eq!(a, b);
    }
}

#[test]
fn raising_a_rollout_only_adds_users() {
    let at = |percentage: u8| {
        let f = Flag {
            all_other_users: rollout(percentage, &[("control", 1), ("treatment", 1)]),
            ..experiment("grow")
        };
        compile_set(vec![compile_flag(&f, true)])
    };
    let (ten, twenty, ten_again) = (at(10), at(20), at(10));
    let mut newly_in = 0;
    for i in 0..10_000 {
        let user = json!({"user_id": format!("user-{i}")});
        let before = variant_of(&ten, &user, "grow");
        let after = variant_of(&twenty, &user, "grow");
        let allocation = bucket_values("salt-grow", &format!("user-{i}")).0;
        if before != "off" {
            assert_eq!(before, after, "user-{i} moved");
        } else if after != "off" {
            newly_in += 1;
            assert!((10..20).contains(&allocation), "user-{i}: {allocation}");
        }
        // Lowering again returns exactly the same users.
        assert_eq!(before, variant_of(&ten_again, &user, "grow"));
    }
    assert!((800..1200).contains(&newly_in), "{newly_in}");
}

// ---------------------------------------------------------------------------------------------
// Imported configs

const IMPORTED: &str = r#"{"key": "imp", "dependencies": ["gate"],
  "metadata": {"flagType": "release", "flagVersion": 5, "evaluationMode": "remote", "custom": [1, 2.5]},
  "variants": {"on": {"key": "on", "value": "on", "payload": {"x": 1}},
               "blue": {"key": "blue", "value": {"rgb": "00f"}},
               "off": {"key": "off", "metadata": {"default": true}}},
  "segments": [
    {"metadata": {"segmentName": "Mobile"}, "variant": "off",
     "conditions": [[{"selector": ["context","user","platform"], "op": "regex match", "values": ["iOS|Android"]}]],
     "bucket": {"selector": ["context","user","device_id"], "salt": "AbCd1234",
                "allocations": [{"range": [0, 60], "distributions": [
                  {"variant": "on", "range": [0, 30000000]}, {"variant": "blue", "range": [30000000, 42949673]}]}]}},
    {"conditions": [[{"selector": ["result","gate","key"], "op": "is", "values": ["on"]}]], "variant": "blue"},
    {"metadata": {"segmentName": "All Other Users"}, "variant": "off"}]}"#;

fn imported_flag(state: FlagState, config: &str) -> Flag {
    Flag {
        state,
        deployments: vec!["prod".into()],
        imported_config: imported(config),
        ..flag("imp")
    }
}

#[test]
fn imported_config_is_served_as_given() {
    let gate = Flag {
        all_other_users: rollout(50, &[("on", 1)]),
        ..flag("gate")
    };
    let f = imported_flag(FlagState::Active, IMPORTED);
    let compiled = compile_flag(&f, true);
    let raw: serde_json::Value = serde_json::from_str(IMPORTED).unwrap();
    assert_eq!(serde_json::to_value(&compiled).unwrap(), raw);

    // The imported dependency is served as an ancestor.
    let served = deployment_flags("prod", &[f, gate.clone()], &[]);
    let keys: Vec<&str> = served.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["gate", "imp"]);

    let from_raw = FlagSet::from_json(&format!(
        "[{}, {IMPORTED}]",
        serde_json::to_string(&compile_flag(&gate, false)).unwrap()
    ))
    .unwrap();
    let from_compiled = compile_set(served);
    let mut rng = Rng(6);
    let platforms = ["iOS", "Android", "web", "iOS 17"];
    for i in 0..2_000 {
        let platform = platforms[(rng.next() % 4) as usize];
        let user = json!({"user_id": format!("user-{i}"), "device_id": format!("d-{i}"), "platform": platform});
        assert_eq!(
            results_json(&from_raw, &user),
            results_json(&from_compiled, &user)
        );
    }
}

#[test]
fn inactive_imported_config_serves_off() {
    // Without an `off` variant of its own, the compiler appends one.
    let without_off = IMPORTED.replace(
        r#",
               "off": {"key": "off", "metadata": {"default": true}}"#,
        "",
    );
    assert_ne!(without_off, IMPORTED);
    for config in [IMPORTED, without_off.as_str()] {
        let f = imported_flag(FlagState::Inactive, config);
        let served = deployment_flags("prod", &[f], &[]);
        assert_eq!(served.len(), 1, "no ancestors for an inactive flag");
        let c = serde_json::to_value(&served[0]).unwrap();
        assert!(c.get("dependencies").is_none());
        assert_eq!(
            c["segments"],
            json!([{"metadata": {"segmentName": "default"}, "variant": "off"}])
        );
        assert_eq!(
            c["variants"]["off"],
            json!({"key": "off", "metadata": {"default": true}})
        );
        assert_eq!(c["variants"].as_object().unwrap().len(), 3);
        // Its own metadata is kept, nothing added.
        assert_eq!(c["metadata"]["flagVersion"], 5);
        assert!(c["metadata"].get("deployed").is_none());

        let set = compile_set(served);
        for user in ["user-1", "user-2"] {
            let user = json!({"user_id": user, "device_id": "d", "platform": "iOS"});
            let got = outcomes(&set, &user);
            assert_eq!(got["imp"], ("off".to_owned(), "default".to_owned()));
        }
    }
}
