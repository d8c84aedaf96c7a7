//! The staleness rule, case by case through one `check()`.

use std::collections::BTreeMap;

use super::*;
use crate::model::{EvaluationMode, FlagType, Inclusion, Segment, Variant};

const NOW: i64 = 1_800_000_000_000;

fn flag(days_unchanged: i64) -> Flag {
    Flag {
        project: "p".into(),
        key: "f".into(),
        name: "f".into(),
        description: String::new(),
        kind: FlagType::Release,
        experiment_key: None,
        experiment: None,
        evaluation_mode: EvaluationMode::Remote,
        bucketing_unit: "user_id".into(),
        bucketing_salt: "salt".into(),
        tags: Vec::new(),
        deployments: Vec::new(),
        state: FlagState::Active,
        archived: false,
        permanent: false,
        variants: ["on", "blue"]
            .iter()
            .map(|k| Variant {
                key: (*k).into(),
                name: String::new(),
                value: String::new(),
                payload: None,
                description: String::new(),
            })
            .collect(),
        segments: Vec::new(),
        all_other_users: rollout(100, &[("on", 1)]),
        inclusions: BTreeMap::new(),
        prerequisites: Vec::new(),
        mutex_group: None,
        holdouts: Vec::new(),
        imported_config: None,
        version: 1,
        created_at: 0,
        updated_at: NOW - days_unchanged * DAY_MS,
        created_by: String::new(),
        updated_by: String::new(),
    }
}

fn rollout(percentage: u8, weights: &[(&str, u32)]) -> Rollout {
    Rollout {
        percentage,
        weights: weights
            .iter()
            .map(|(k, w)| ((*k).to_string(), *w))
            .collect(),
    }
}

fn check(name: &str, days: i64, edit: fn(&mut Flag), expected: Option<&str>) {
    let mut f = flag(days);
    edit(&mut f);
    assert_eq!(reason(&f, NOW).as_deref(), expected, "{name}");
}

#[test]
fn stale_is_unchanged_for_30_days_deciding_nothing() {
    check(
        "one variant to everyone",
        31,
        |_| {},
        Some("serves on to everyone, unchanged for 31 days"),
    );
    check("changed 29 days ago", 29, |_| {}, None);
    check(
        "inactive",
        40,
        |f| f.state = FlagState::Inactive,
        Some("inactive for 40 days: serves off to everyone"),
    );
    check(
        "0% everywhere",
        30,
        |f| f.all_other_users.percentage = 0,
        Some("serves off to everyone (0%), unchanged for 30 days"),
    );
    check(
        "a 50% rollout decides",
        90,
        |f| f.all_other_users.percentage = 50,
        None,
    );
    check(
        "a split decides",
        90,
        |f| f.all_other_users = rollout(100, &[("on", 1), ("blue", 1)]),
        None,
    );
    check(
        "a segment serving another variant decides",
        90,
        |f| {
            f.segments.push(Segment {
                name: "Beta".into(),
                conditions: Vec::new(),
                percentage: 100,
                weights: [("blue".to_string(), 1)].into_iter().collect(),
            })
        },
        None,
    );
    check(
        "someone included in another variant decides",
        90,
        |f| {
            f.inclusions.insert(
                "blue".into(),
                Inclusion {
                    ids: vec!["u1".into()],
                    cohorts: Vec::new(),
                },
            );
        },
        None,
    );
    check("permanent", 400, |f| f.permanent = true, None);
    check("archived already", 400, |f| f.archived = true, None);
}
