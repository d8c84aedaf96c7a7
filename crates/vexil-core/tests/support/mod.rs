//! Builders of management documents shared by the compiler tests.
#![allow(dead_code, reason = "each test file uses a part")]

use std::collections::BTreeMap;

use vexil_core::{EvaluationMode, Flag, FlagState, FlagType, Rollout, Variant};

/// An active local release flag with the single variant `on`, serving `off` to everyone.
pub fn flag(key: &str) -> Flag {
    Flag {
        project: "proj".into(),
        key: key.into(),
        name: key.into(),
        description: String::new(),
        kind: FlagType::Release,
        experiment_key: None,
        experiment: None,
        evaluation_mode: EvaluationMode::Local,
        bucketing_unit: "user_id".into(),
        bucketing_salt: format!("salt-{key}"),
        tags: Vec::new(),
        deployments: Vec::new(),
        state: FlagState::Active,
        archived: false,
        permanent: false,
        variants: vec![variant("on")],
        segments: Vec::new(),
        all_other_users: rollout(0, &[("on", 1)]),
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

/// A two-variant experiment `control` / `treatment`.
pub fn experiment(key: &str) -> Flag {
    Flag {
        kind: FlagType::Experiment,
        variants: vec![variant("control"), variant("treatment")],
        all_other_users: rollout(0, &[("control", 1), ("treatment", 1)]),
        ..flag(key)
    }
}

pub fn variant(key: &str) -> Variant {
    Variant {
        key: key.into(),
        name: key.into(),
        value: String::new(),
        payload: None,
        description: String::new(),
    }
}

pub fn rollout(percentage: u8, weights: &[(&str, u32)]) -> Rollout {
    Rollout {
        percentage,
        weights: weights.iter().map(|&(k, w)| (k.to_owned(), w)).collect(),
    }
}
