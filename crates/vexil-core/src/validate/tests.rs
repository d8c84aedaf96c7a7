//! One table of flag documents through one `check()`: each case changes a valid flag and
//! names the field and code it expects (or none).

use serde_json::{json, Value};

use super::validate_flag;
use crate::model::Flag;

fn valid() -> Value {
    json!({
        "project": "p", "key": "new-checkout", "name": "New checkout", "type": "release",
        "evaluation_mode": "remote", "bucketing_unit": "user_id", "bucketing_salt": "abcd1234",
        "state": "inactive", "version": 1, "created_at": 0, "updated_at": 0,
        "variants": [{"key": "control"}, {"key": "treatment", "payload": {"a": 1}}],
        "segments": [{"name": "US", "percentage": 50, "weights": {"control": 1, "treatment": 4},
                      "conditions": [{"type": "user_field", "field": "country", "op": "is", "values": ["US"]}]}],
        "all_other_users": {"percentage": 0, "weights": {}},
        "inclusions": {"treatment": {"ids": ["qa-1"], "cohorts": ["c1"]}},
        "prerequisites": [{"flag": "infra", "variants": ["on", "off"]}]
    })
}

/// Applies `edit` to the valid flag and returns the (field, code) pairs found.
fn check(edit: impl FnOnce(&mut Value)) -> Vec<(String, &'static str)> {
    let mut doc = valid();
    edit(&mut doc);
    let mut flag: Flag = serde_json::from_value(doc).unwrap();
    validate_flag(&mut flag)
        .into_iter()
        .map(|e| (e.field, e.code))
        .collect()
}

#[test]
fn a_valid_flag_has_no_errors_and_gets_default_values() {
    let mut flag: Flag = serde_json::from_value(valid()).unwrap();
    assert!(validate_flag(&mut flag).is_empty());
    assert_eq!(
        flag.variants[0].value, "control",
        "an empty value becomes the key"
    );
    assert_eq!(flag.variants[0].name, "control");
}

#[test]
fn each_rule_names_its_field() {
    type Edit = fn(&mut Value);
    let cases: &[(&str, Edit, &str, &str)] = &[
        ("bad key", |d| d["key"] = json!("a b"), "key", "invalid_key"),
        (
            "empty name",
            |d| d["name"] = json!("  "),
            "name",
            "required",
        ),
        (
            "no variants",
            |d| d["variants"] = json!([]),
            "variants",
            "no_variants",
        ),
        (
            "off",
            |d| d["variants"][0]["key"] = json!("off"),
            "variants[0].key",
            "reserved_variant_key",
        ),
        (
            "OFF",
            |d| d["variants"][1]["key"] = json!("OfF"),
            "variants[1].key",
            "reserved_variant_key",
        ),
        (
            "(none)",
            |d| d["variants"][0]["key"] = json!("(none)"),
            "variants[0].key",
            "reserved_variant_key",
        ),
        (
            "duplicate variant",
            |d| d["variants"][1]["key"] = json!("Control"),
            "variants[1].key",
            "duplicate_variant_key",
        ),
        (
            "reserved segment",
            |d| d["segments"][0]["name"] = json!("All Other Users"),
            "segments[0].name",
            "reserved_segment_name",
        ),
        (
            "percentage",
            |d| d["segments"][0]["percentage"] = json!(101),
            "segments[0].percentage",
            "out_of_range",
        ),
        (
            "aou percentage",
            |d| d["all_other_users"]["percentage"] = json!(200),
            "all_other_users.percentage",
            "out_of_range",
        ),
        (
            "unknown weight",
            |d| d["segments"][0]["weights"]["nope"] = json!(1),
            "segments[0].weights.nope",
            "unknown_variant",
        ),
        (
            "unknown op",
            |d| d["segments"][0]["conditions"][0]["op"] = json!("equals"),
            "segments[0].conditions[0].op",
            "unknown_operator",
        ),
        (
            "no values",
            |d| d["segments"][0]["conditions"][0]["values"] = json!([]),
            "segments[0].conditions[0].values",
            "required",
        ),
        (
            "unknown field",
            |d| d["segments"][0]["conditions"][0]["field"] = json!("plan"),
            "segments[0].conditions[0].field",
            "unknown_user_field",
        ),
        (
            "bad regex",
            |d| {
                d["segments"][0]["conditions"][0]["op"] = json!("regex match");
                d["segments"][0]["conditions"][0]["values"] = json!(["ok", "("]);
            },
            "segments[0].conditions[0].values[1]",
            "invalid_regex",
        ),
        (
            "bad version",
            |d| {
                d["segments"][0]["conditions"][0]["op"] = json!("version greater");
                d["segments"][0]["conditions"][0]["values"] = json!(["1.2.x"]);
            },
            "segments[0].conditions[0].values[0]",
            "invalid_version",
        ),
        (
            "cohort op",
            |d| {
                d["segments"][0]["conditions"][0] =
                    json!({"type": "cohort", "op": "is", "values": ["c1"]})
            },
            "segments[0].conditions[0].op",
            "invalid_operator",
        ),
        (
            "empty property",
            |d| {
                d["segments"][0]["conditions"][0] =
                    json!({"type": "user_property", "property": "", "op": "is", "values": ["x"]})
            },
            "segments[0].conditions[0].property",
            "required",
        ),
        (
            "inclusion variant",
            |d| d["inclusions"]["nope"] = json!({"ids": ["u"]}),
            "inclusions.nope",
            "unknown_variant",
        ),
        (
            "inclusion id",
            |d| d["inclusions"]["treatment"]["ids"] = json!(["(none)"]),
            "inclusions.treatment.ids[0]",
            "invalid_id",
        ),
        (
            "self prerequisite",
            |d| d["prerequisites"][0]["flag"] = json!("new-checkout"),
            "prerequisites[0].flag",
            "dependency_cycle",
        ),
        (
            "no prerequisite variants",
            |d| d["prerequisites"][0]["variants"] = json!([]),
            "prerequisites[0].variants",
            "required",
        ),
        (
            "duplicate prerequisite",
            |d| {
                d["prerequisites"] =
                    json!([{"flag": "x", "variants": ["on"]}, {"flag": "x", "variants": ["off"]}])
            },
            "prerequisites[1].flag",
            "duplicate",
        ),
        (
            "duplicate tag",
            |d| d["tags"] = json!(["a", "a"]),
            "tags[1]",
            "duplicate",
        ),
        (
            "bad unit",
            |d| d["bucketing_unit"] = json!(" company"),
            "bucketing_unit",
            "invalid_bucketing_unit",
        ),
    ];
    for (name, edit, field, code) in cases {
        let errors = check(edit);
        assert!(
            errors.iter().any(|(f, c)| f == field && c == code),
            "{name}: expected {code} at {field}, got {errors:?}"
        );
    }
}

#[test]
fn group_targets_and_group_units_are_valid() {
    let errors = check(|d| {
        d["bucketing_unit"] = json!("company");
        d["segments"][0]["conditions"] = json!([
            {"type": "group_name", "group_type": "company", "op": "is", "values": ["acme"]},
            {"type": "group_property", "group_type": "company", "property": "plan", "op": "is", "values": ["pro"]},
            {"type": "group_cohort", "group_type": "company", "op": "set contains any", "values": ["gc"]},
            {"type": "user_property", "property": "[Experiment] flag-a", "op": "is", "values": ["on"]}
        ]);
    });
    assert!(errors.is_empty(), "{errors:?}");
}
