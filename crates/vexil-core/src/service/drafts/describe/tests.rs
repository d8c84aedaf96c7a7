//! Each kind of change described once, through one `check()`.

use std::collections::BTreeMap;

use super::*;
use crate::model::{EvaluationMode, FlagType, Inclusion, Prerequisite, Variant};

fn base() -> Flag {
    let weights = |pairs: &[(&str, u32)]| -> BTreeMap<String, u32> {
        pairs.iter().map(|(k, w)| ((*k).to_string(), *w)).collect()
    };
    Flag {
        project: "p".into(),
        key: "checkout".into(),
        name: "Checkout".into(),
        description: String::new(),
        kind: FlagType::Release,
        experiment_key: None,
        experiment: None,
        evaluation_mode: EvaluationMode::Remote,
        bucketing_unit: "user_id".into(),
        bucketing_salt: "salt1234".into(),
        tags: Vec::new(),
        deployments: vec!["web".into()],
        state: FlagState::Inactive,
        archived: false,
        permanent: false,
        variants: ["single-page", "express"]
            .iter()
            .map(|k| Variant {
                key: (*k).into(),
                name: String::new(),
                value: String::new(),
                payload: None,
                description: String::new(),
            })
            .collect(),
        segments: vec![Segment {
            name: "Pro plan".into(),
            conditions: Vec::new(),
            percentage: 20,
            weights: weights(&[("single-page", 1), ("express", 4)]),
        }],
        all_other_users: Rollout {
            percentage: 0,
            weights: weights(&[("single-page", 1)]),
        },
        inclusions: BTreeMap::new(),
        prerequisites: Vec::new(),
        mutex_group: None,
        holdouts: Vec::new(),
        imported_config: None,
        version: 3,
        created_at: 0,
        updated_at: 0,
        created_by: String::new(),
        updated_by: String::new(),
    }
}

fn check(name: &str, edit: fn(&mut Flag), expected: &[&str]) {
    let before = base();
    let mut after = base();
    edit(&mut after);
    assert_eq!(describe(&before, &after), expected, "{name}");
}

#[test]
fn changes_read_in_the_products_words() {
    check("nothing", |_| {}, &[]);
    check(
        "a segment's rollout",
        |f| f.segments[0].percentage = 50,
        &["Segment *Pro plan*: 20% (*express* 80%, *single-page* 20%) → 50% (*express* 80%, *single-page* 20%)"],
    );
    check(
        "all other users switched on",
        |f| {
            f.all_other_users.percentage = 100;
            f.all_other_users.weights.insert("express".into(), 3);
        },
        &["All other users: off → 100% (*express* 75%, *single-page* 25%)"],
    );
    check(
        "a variant deleted, not renamed",
        |f| {
            f.variants.retain(|v| v.key != "express");
            f.segments[0].weights.remove("express");
        },
        &[
            "Variant *express* deleted",
            "Segment *Pro plan*: 20% (*express* 80%, *single-page* 20%) → 20% (*single-page* 100%)",
        ],
    );
    check(
        "activation",
        |f| f.state = FlagState::Active,
        &["Activated: serves its targeting"],
    );
    check(
        "a segment added and one removed",
        |f| {
            f.segments[0].name = "Beta".into();
        },
        &[
            "Segment *Beta* added: 20% (*express* 80%, *single-page* 20%)",
            "Segment *Pro plan* removed",
        ],
    );
    check(
        "a dependency and a deployment",
        |f| {
            f.prerequisites.push(Prerequisite {
                flag: "gate".into(),
                variants: vec!["on".into()],
            });
            f.deployments = vec!["server".into()];
        },
        &[
            "Dependency added: *gate* is on",
            "Removed from deployment *web*",
            "Added to deployment *server*",
        ],
    );
    check(
        "inclusions",
        |f| {
            f.inclusions.insert(
                "express".into(),
                Inclusion {
                    ids: vec!["u1".into(), "u2".into()],
                    cohorts: Vec::new(),
                },
            );
        },
        &["Individual inclusions in *express*: 0 → 2 (ids and cohorts)"],
    );
    check(
        "bucketing",
        |f| f.bucketing_salt = "other".into(),
        &["Bucketing changed: users move between variants"],
    );
}

#[test]
fn what_a_flag_serves_reads_as_rules() {
    let f = base();
    assert_eq!(
        serves(&f),
        [
            "Inactive: everyone gets off. Once active:",
            "Pro plan users: 20% get *express* 80%, *single-page* 20% (the rest off)",
            "Everyone else: off",
            "Served to the SDKs of web",
        ]
    );
    let mut f = base();
    f.state = FlagState::Active;
    f.segments[0].percentage = 100;
    f.all_other_users.percentage = 100;
    f.deployments.clear();
    f.prerequisites.push(Prerequisite {
        flag: "gate".into(),
        variants: vec!["on".into()],
    });
    f.inclusions.insert(
        "express".into(),
        Inclusion {
            ids: vec!["qa-1".into()],
            cohorts: Vec::new(),
        },
    );
    assert_eq!(
        serves(&f),
        [
            "1 user(s) pinned to *express*",
            "Pro plan users: *express* 80%, *single-page* 20%",
            "Everyone else: *single-page*",
            "Only for users who get *on* from *gate*",
            "Attached to no deployment: no SDK serves it yet",
        ]
    );
}
