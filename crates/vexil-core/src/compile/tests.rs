//! Unit tests of the compiler's building blocks: the §10.7 distribution arithmetic, condition
//! and bucketing selectors, rollout shapes, variants, metadata and imported configs. End-to-end
//! behaviour through the engine lives in `tests/compile.rs`.

use std::collections::BTreeMap;

use proptest::prelude::*;
use vexil_eval::{DistributionConfig, MAX_DISTRIBUTION};

use super::*;
use crate::model::{EvaluationMode, ImportedConfig, Prerequisite, Segment};

/// A minimal active release flag with variants `on`; callers adjust the fields they test.
fn flag(key: &str) -> Flag {
    Flag {
        project: "p".into(),
        key: key.into(),
        name: key.into(),
        description: String::new(),
        kind: FlagType::Release,
        experiment_key: None,
        experiment: None,
        evaluation_mode: EvaluationMode::Remote,
        bucketing_unit: "user_id".into(),
        bucketing_salt: "salt1234".into(),
        tags: Vec::new(),
        deployments: Vec::new(),
        state: FlagState::Active,
        archived: false,
        permanent: false,
        variants: vec![variant("on", "", None)],
        segments: Vec::new(),
        all_other_users: rollout(0, &[]),
        inclusions: BTreeMap::new(),
        prerequisites: Vec::new(),
        mutex_group: None,
        holdouts: Vec::new(),
        imported_config: None,
        version: 1,
        created_at: 0,
        updated_at: 0,
        created_by: String::new(),
        updated_by: String::new(),
    }
}

fn variant(key: &str, value: &str, payload: Option<serde_json::Value>) -> Variant {
    Variant {
        key: key.into(),
        name: String::new(),
        value: value.into(),
        payload,
        description: String::new(),
    }
}

fn rollout(percentage: u8, weights: &[(&str, u32)]) -> Rollout {
    Rollout {
        percentage,
        weights: weights.iter().map(|&(k, w)| (k.to_owned(), w)).collect(),
    }
}

fn json(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap()
}

fn ranges(distributions: &[DistributionConfig]) -> Vec<(String, [i64; 2])> {
    distributions
        .iter()
        .map(|d| (d.variant.clone(), d.range))
        .collect()
}

/// Every row of the §10.7 table, verbatim.
#[test]
fn distribution_table() {
    type Row = (&'static [u32], &'static [Option<[i64; 2]>]);
    let table: &[Row] = &[
        (&[1, 1], &[Some([0, 21474837]), Some([21474836, 42949673])]),
        (&[1, 99], &[Some([0, 429497]), Some([429496, 42949673])]),
        (&[99, 1], &[Some([0, 42520177]), Some([42520175, 42949673])]),
        (&[10, 90], &[Some([0, 4294968]), Some([4294967, 42949673])]),
        (
            &[1, 1, 1],
            &[
                Some([0, 14316558]),
                Some([14316557, 28633116]),
                Some([28633114, 42949673]),
            ],
        ),
        (
            &[1, 1, 2],
            &[
                Some([0, 10737419]),
                Some([10737418, 21474837]),
                Some([21474836, 42949673]),
            ],
        ),
        (
            &[1, 0, 1],
            &[Some([0, 21474837]), None, Some([21474836, 42949673])],
        ),
        (
            &[1, 1, 1, 1],
            &[
                Some([0, 10737419]),
                Some([10737418, 21474837]),
                Some([21474836, 32212255]),
                Some([32212254, 42949673]),
            ],
        ),
    ];
    let names = ["a", "b", "c", "d"];
    for (weights, expected) in table {
        let input: Vec<(&str, u32)> = names.iter().copied().zip(weights.iter().copied()).collect();
        let expected: Vec<(String, [i64; 2])> = names
            .iter()
            .zip(expected.iter())
            .filter_map(|(n, r)| r.map(|r| ((*n).to_owned(), r)))
            .collect();
        assert_eq!(
            ranges(&distributions(&input)),
            expected,
            "weights {weights:?}"
        );
    }
}

#[test]
fn distributions_without_weight_are_empty() {
    assert!(distributions(&[]).is_empty());
    assert!(distributions(&[("a", 0), ("b", 0)]).is_empty());
}

#[test]
fn huge_weights_do_not_overflow() {
    let d = distributions(&[("a", u32::MAX), ("b", u32::MAX), ("c", u32::MAX)]);
    assert_eq!(d.len(), 3);
    assert_eq!(d[0].range[0], 0);
    assert_eq!(d[2].range[1], MAX_DISTRIBUTION + 1);
}

const SPACE: f64 = (MAX_DISTRIBUTION + 1) as f64;

proptest! {
    /// Coverage without gaps, the exact end, no range for zero weights, and each variant's
    /// effective share (first match wins on the overlaps) within 1e-6 of w / W.
    #[test]
    fn distributions_cover_the_space_in_proportion(
        weights in prop::collection::vec(0u32..10_000, 1..8)
    ) {
        let names: Vec<String> = (0..weights.len()).map(|i| format!("v{i}")).collect();
        let input: Vec<(&str, u32)> =
            names.iter().map(String::as_str).zip(weights.iter().copied()).collect();
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let out = distributions(&input);
        let positive: Vec<&(&str, u32)> = input.iter().filter(|(_, w)| *w > 0).collect();
        prop_assert_eq!(out.len(), positive.len());
        if total == 0 {
            return Ok(());
        }
        prop_assert_eq!(out[0].range[0], 0);
        prop_assert_eq!(out[out.len() - 1].range[1], MAX_DISTRIBUTION + 1);
        let mut covered = 0i64;
        for (d, (name, weight)) in out.iter().zip(positive) {
            prop_assert_eq!(&d.variant, name);
            prop_assert!(d.range[0] <= covered, "gap before {:?}", d);
            prop_assert!(d.range[0] <= d.range[1]);
            let effective = (d.range[1] - covered.max(d.range[0])).max(0);
            covered = covered.max(d.range[1]);
            let share = effective as f64 / SPACE;
            let expected = f64::from(*weight) / total as f64;
            prop_assert!((share - expected).abs() < 1e-6, "{} vs {}", share, expected);
        }
    }
}

#[test]
fn condition_selectors_follow_the_mapping() {
    let cases: Vec<(Target, serde_json::Value)> = vec![
        (
            Target::UserField {
                field: "country".into(),
            },
            serde_json::json!(["context", "user", "country"]),
        ),
        (
            Target::UserProperty {
                property: "[Experiment] a".into(),
            },
            serde_json::json!(["context", "user", "user_properties", "[Experiment] a"]),
        ),
        (
            Target::Cohort,
            serde_json::json!(["context", "user", "cohort_ids"]),
        ),
        (
            Target::GroupName {
                group_type: "org".into(),
            },
            serde_json::json!(["context", "groups", "org", "group_name"]),
        ),
        (
            Target::GroupProperty {
                group_type: "org".into(),
                property: "tier".into(),
            },
            serde_json::json!(["context", "groups", "org", "group_properties", "tier"]),
        ),
        (
            Target::GroupCohort {
                group_type: "org".into(),
            },
            serde_json::json!(["context", "groups", "org", "cohort_ids"]),
        ),
    ];
    for (target, expected) in cases {
        let c = condition(&Condition {
            target,
            op: "is".into(),
            values: vec!["x".into(), "y".into()],
        });
        assert_eq!(json(&c.selector), expected);
        assert_eq!(c.op, "is");
        assert_eq!(c.values, ["x", "y"]);
    }
}

#[test]
fn regex_values_are_anchored_and_others_verbatim() {
    let field = Target::UserField {
        field: "platform".into(),
    };
    for (op, value, expected) in [
        ("regex match", "i(OS|Pad)", "^(?:i(OS|Pad))$"),
        ("regex does not match", "a|b", "^(?:a|b)$"),
        ("contains", "a|b", "a|b"),
        ("is", "^x$", "^x$"),
    ] {
        let c = condition(&Condition {
            target: field.clone(),
            op: op.into(),
            values: vec![value.into()],
        });
        assert_eq!(c.values, [expected], "{op}");
    }
}

#[test]
fn bucketing_unit_selects_user_field_or_group_name() {
    assert_eq!(
        bucketing_selector("device_id"),
        ["context", "user", "device_id"]
    );
    assert_eq!(
        bucketing_selector("amplitude_id"),
        ["context", "user", "amplitude_id"]
    );
    assert_eq!(
        bucketing_selector("company"),
        ["context", "groups", "company", "group_name"]
    );
}

#[test]
fn rollout_shapes() {
    let mut f = flag("f");
    f.variants = vec![variant("a", "", None), variant("b", "", None)];
    f.bucketing_unit = "company".into();
    let shape = |r: Rollout| {
        let s = rollout_segment(&f, "S", None, &r);
        (s.variant.unwrap(), s.bucket.map(|b| json(&b)))
    };
    // No rollout or no weight: `off` without hashing.
    assert_eq!(shape(rollout(0, &[("a", 1)])), ("off".into(), None));
    assert_eq!(shape(rollout(50, &[("a", 0)])), ("off".into(), None));
    assert_eq!(shape(rollout(50, &[])), ("off".into(), None));
    // Weights for unknown variants are ignored.
    assert_eq!(shape(rollout(50, &[("zzz", 3)])), ("off".into(), None));
    // 100% to one variant: served directly.
    assert_eq!(
        shape(rollout(100, &[("a", 0), ("b", 7)])),
        ("b".into(), None)
    );
    // Otherwise a bucket on the unit with the flag's salt.
    assert_eq!(
        shape(rollout(100, &[("a", 1), ("b", 1)])),
        (
            "off".into(),
            Some(serde_json::json!({
                "selector": ["context", "groups", "company", "group_name"], "salt": "salt1234",
                "allocations": [{"range": [0, 100], "distributions": [
                    {"variant": "a", "range": [0, 21474837]},
                    {"variant": "b", "range": [21474836, 42949673]}]}]}))
        )
    );
    // A single variant below 100% is bucketed so that only P% get it.
    let (variant, bucket) = shape(rollout(30, &[("a", 2)]));
    assert_eq!(variant, "off");
    assert_eq!(
        bucket.unwrap()["allocations"],
        serde_json::json!([{"range": [0, 30], "distributions": [
            {"variant": "a", "range": [0, 42949673]}]}])
    );
}

#[test]
fn variants_metadata_and_empty_conditions() {
    let mut f = flag("f");
    f.kind = FlagType::Experiment;
    f.version = 12;
    f.variants = vec![
        variant("a", "", None),
        variant("b", "B!", Some(serde_json::json!([1, {"x": null}]))),
    ];
    f.segments = vec![Segment {
        name: "everyone".into(),
        conditions: Vec::new(),
        percentage: 100,
        weights: rollout(100, &[("a", 1)]).weights,
    }];
    let c = json(&compile_flag(&f, false));
    assert_eq!(
        c["variants"],
        serde_json::json!({
            "a": {"key": "a", "value": "a"},
            "b": {"key": "b", "value": "B!", "payload": [1, {"x": null}]},
            "off": {"key": "off", "metadata": {"default": true}}})
    );
    // Fixed key order; experimentKey falls back to the flag key.
    let metadata = compile_flag(&f, false).metadata.unwrap();
    assert_eq!(
        serde_json::to_string(&metadata).unwrap(),
        r#"{"deployed":false,"evaluationMode":"remote","flagType":"experiment","flagVersion":12,"experimentKey":"f"}"#
    );
    f.experiment_key = Some("exp-1".into());
    let metadata = compile_flag(&f, true).metadata.unwrap();
    assert_eq!(metadata.get("experimentKey"), Some(&Value::from("exp-1")));
    assert_eq!(metadata.get("deployed"), Some(&Value::Bool(true)));
    // Release flags carry no experimentKey, even with one stored.
    f.kind = FlagType::Release;
    let metadata = compile_flag(&f, true).metadata.unwrap();
    assert_eq!(metadata.get("experimentKey"), None);
    assert_eq!(metadata.get("flagType"), Some(&Value::from("release")));
    // An empty AND-list matches everyone: no `conditions` at all.
    assert!(c["segments"][0].get("conditions").is_none());
    assert_eq!(c["segments"][0]["variant"], "a");
}

#[test]
fn segment_conditions_are_one_and_list() {
    let conditions = vec![
        Condition {
            target: Target::UserField {
                field: "country".into(),
            },
            op: "is".into(),
            values: vec!["US".into()],
        },
        Condition {
            target: Target::Cohort,
            op: "set does not contain any".into(),
            values: vec!["c1".into()],
        },
    ];
    let out = segment_conditions(&conditions).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].len(), 2);
    assert_eq!(out[0][1].op, "set does not contain any");
    assert_eq!(segment_conditions(&[]), None);
}

#[test]
fn gate_has_one_list_per_prerequisite_in_order() {
    let mut f = flag("child");
    f.prerequisites = vec![
        Prerequisite {
            flag: "b".into(),
            variants: vec!["on".into()],
        },
        Prerequisite {
            flag: "a".into(),
            variants: vec!["off".into(), "x".into()],
        },
    ];
    let c = json(&compile_flag(&f, true));
    assert_eq!(c["dependencies"], serde_json::json!(["b", "a"]));
    assert_eq!(
        c["segments"][0],
        serde_json::json!({"metadata": {"segmentName": "flag-dependencies"}, "variant": "off",
            "conditions": [
                [{"selector": ["result", "b", "key"], "op": "is not", "values": ["on"]}],
                [{"selector": ["result", "a", "key"], "op": "is not", "values": ["off", "x"]}]]})
    );
    f.state = FlagState::Inactive;
    let c = json(&compile_flag(&f, true));
    assert!(c.get("dependencies").is_none());
    assert_eq!(
        c["segments"],
        serde_json::json!([{"metadata": {"segmentName": "default"}, "variant": "off"}])
    );
}

#[test]
fn inclusions_follow_variant_order_and_skip_empty_lists() {
    let mut f = flag("f");
    f.variants = vec![
        variant("a", "", None),
        variant("b", "", None),
        variant("c", "", None),
    ];
    let cohort_only = Inclusion {
        ids: Vec::new(),
        cohorts: vec!["c1".into()],
    };
    let ids_only = Inclusion {
        ids: vec!["u1".into(), "u2".into()],
        cohorts: Vec::new(),
    };
    f.inclusions.insert("c".into(), cohort_only);
    f.inclusions.insert("a".into(), ids_only);
    f.inclusions.insert("b".into(), Inclusion::default());
    f.inclusions.insert("ghost".into(), Inclusion::default());
    let c = json(&compile_flag(&f, true));
    let segments = c["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 3, "a, c, All Other Users");
    assert_eq!(
        segments[0],
        serde_json::json!({"metadata": {"segmentName": "individual-inclusions"}, "variant": "a",
            "conditions": [
                [{"selector": ["context", "user", "user_id"], "op": "is", "values": ["u1", "u2"]}],
                [{"selector": ["context", "user", "device_id"], "op": "is", "values": ["u1", "u2"]}]]})
    );
    assert_eq!(
        segments[1],
        serde_json::json!({"metadata": {"segmentName": "individual-inclusions"}, "variant": "c",
            "conditions": [[{"selector": ["context", "user", "cohort_ids"],
                             "op": "set contains any", "values": ["c1"]}]]})
    );
    assert_eq!(segments[2]["metadata"]["segmentName"], "All Other Users");
}

#[test]
fn unparsable_imported_config_serves_off() {
    let mut f = flag("imp");
    f.imported_config = Some(ImportedConfig(
        serde_json::value::RawValue::from_string(r#"{"key": "imp", "variants": 3}"#.into())
            .unwrap(),
    ));
    assert_eq!(
        json(&compile_flag(&f, true)),
        serde_json::json!({"key": "imp",
            "variants": {"off": {"key": "off", "metadata": {"default": true}}},
            "segments": [{"metadata": {"segmentName": "default"}, "variant": "off"}]})
    );
}

#[test]
fn a_dependency_cycle_does_not_hang_and_serves_each_flag_once() {
    let mut a = flag("a");
    let mut b = flag("b");
    a.prerequisites = vec![Prerequisite {
        flag: "b".into(),
        variants: vec!["on".into()],
    }];
    b.prerequisites = vec![Prerequisite {
        flag: "a".into(),
        variants: vec!["on".into()],
    }];
    a.deployments = vec!["d".into()];
    let served = deployment_flags("d", &[a, b], &[]);
    let keys: Vec<&str> = served.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["b", "a"]);
}
