//! Mutual-exclusion and holdout groups compiled to the engine configs Amplitude serves for them
//! (`evaluation.md` §7): a flag of type `mutual-exclusion-group` or `holdout-group`, never
//! deployed, with one bucketed `All Other Users` segment on the group's unit and salt, and a
//! `{"flagIds": [...]}` payload on each variant naming the members it lets through.

use std::collections::BTreeMap;

use vexil_eval::{
    AllocationConfig, BucketConfig, ConditionConfig, FlagConfig, Object, OrderedMap, SegmentConfig,
    Value, VariantConfig,
};

use super::{
    bucketing_selector, distributions, inclusion_conditions, off_variant, path, segment_metadata,
    ALL_OTHER_USERS, GATE_SEGMENT, INCLUSIONS_SEGMENT,
};
use crate::model::{Flag, Group, GroupKind, Inclusion, Slot, OFF};

/// Segment name of a holdout's exclusions: users never held out.
pub(super) const EXCLUSIONS_SEGMENT: &str = "individual-exclusions";
/// The variant of held-out users.
pub const HOLDOUT: &str = "holdout";
/// The variant of users a holdout lets through to its members.
pub const HOLDOUT_PASS: &str = "on";
/// The variant of users a mutual-exclusion group puts in no slot.
pub const UNALLOCATED: &str = "unallocated";

/// Who sits where: per group key, the member keys by slot (0 for a holdout's members), in key
/// order. Archived members are left out.
#[derive(Debug, Default)]
pub(super) struct Members<'a>(BTreeMap<&'a str, BTreeMap<u8, Vec<&'a str>>>);

impl<'a> Members<'a> {
    pub(super) fn of(flags: &'a [Flag], groups: &'a [Group]) -> Members<'a> {
        let mut m = Members::default();
        for f in flags.iter().filter(|f| !f.archived) {
            for h in &f.holdouts {
                m.add(h, 0, &f.key);
            }
            if let Some(slot) = &f.mutex_group {
                m.add(&slot.group, slot.slot, &f.key);
            }
        }
        for g in groups.iter().filter(|g| !g.archived) {
            if let Some(slot) = &g.mutex_group {
                m.add(&slot.group, slot.slot, &g.key);
            }
        }
        for slots in m.0.values_mut() {
            for keys in slots.values_mut() {
                keys.sort_unstable();
                keys.dedup();
            }
        }
        m
    }

    fn add(&mut self, group: &'a str, slot: u8, member: &'a str) {
        self.0
            .entry(group)
            .or_default()
            .entry(slot)
            .or_default()
            .push(member);
    }

    fn in_slot(&self, group: &str, slot: u8) -> &[&'a str] {
        self.0
            .get(group)
            .and_then(|s| s.get(&slot))
            .map_or(&[], Vec::as_slice)
    }
}

/// A variant config with its key.
type NamedVariant = (String, VariantConfig);

/// Compiles one group (always `deployed: false`).
pub(super) fn compile_group(group: &Group, members: &Members<'_>) -> FlagConfig {
    let (variants, weights): (Vec<NamedVariant>, Vec<(String, u32)>) = match group.kind {
        GroupKind::MutualExclusion => {
            let mut variants: Vec<_> = group
                .slots
                .iter()
                .map(|s| variant(&s.key, members.in_slot(&group.key, s.index)))
                .collect();
            let mut weights: Vec<(String, u32)> = group
                .slots
                .iter()
                .map(|s| (s.key.clone(), u32::from(s.percentage)))
                .collect();
            let rest = group.unallocated();
            if rest > 0 {
                variants.push(variant(UNALLOCATED, &[]));
                weights.push((UNALLOCATED.to_owned(), u32::from(rest)));
            }
            (variants, weights)
        }
        GroupKind::Holdout => {
            let held = group.percentage.unwrap_or(0).min(100);
            (
                vec![
                    variant(HOLDOUT, &[]),
                    variant(HOLDOUT_PASS, members.in_slot(&group.key, 0)),
                ],
                vec![
                    (HOLDOUT.to_owned(), u32::from(held)),
                    (HOLDOUT_PASS.to_owned(), u32::from(100 - held)),
                ],
            )
        }
    };
    let mut segments = Vec::new();
    let dependencies = group.mutex_group.as_ref().map(|m| vec![m.group.clone()]);
    if let Some(slot) = &group.mutex_group {
        segments.push(SegmentConfig {
            conditions: Some(vec![vec![ConditionConfig {
                selector: path(&["result", &slot.group, "key"]),
                op: "is not".to_owned(),
                values: vec![Slot::key_of(slot.slot)],
            }]]),
            bucket: None,
            variant: Some(OFF.to_owned()),
            metadata: Some(segment_metadata(GATE_SEGMENT)),
        });
    }
    pinned(
        &mut segments,
        &group.inclusions,
        HOLDOUT,
        INCLUSIONS_SEGMENT,
    );
    pinned(
        &mut segments,
        &group.exclusions,
        HOLDOUT_PASS,
        EXCLUSIONS_SEGMENT,
    );
    segments.push(all_other_users(group, &weights));
    let mut variants = variants;
    variants.push((OFF.to_owned(), off_variant()));
    FlagConfig {
        key: group.key.clone(),
        variants: OrderedMap(variants),
        segments,
        dependencies,
        metadata: Some(metadata(group)),
    }
}

/// `{"key": k, "value": k, "payload": {"flagIds": [...]}}`.
fn variant(key: &str, members: &[&str]) -> NamedVariant {
    let mut payload = Object::new();
    payload.insert(
        "flagIds",
        Value::Array(members.iter().map(|&m| Value::from(m)).collect()),
    );
    (
        key.to_owned(),
        VariantConfig {
            key: Some(key.to_owned()),
            value: Some(Value::from(key)),
            payload: Some(Value::Object(payload)),
            metadata: None,
        },
    )
}

/// A segment pinning the users of `inclusion` to `variant`, when it names any.
fn pinned(segments: &mut Vec<SegmentConfig>, inclusion: &Inclusion, variant: &str, name: &str) {
    let conditions = inclusion_conditions(inclusion);
    if !conditions.is_empty() {
        segments.push(SegmentConfig {
            conditions: Some(conditions),
            bucket: None,
            variant: Some(variant.to_owned()),
            metadata: Some(segment_metadata(name)),
        });
    }
}

/// Everyone, bucketed on the group's unit and salt over the variants' weights (§10.7 maths). A
/// single variant with all users needs no bucket, so it serves users without a bucketing value
/// too.
fn all_other_users(group: &Group, weights: &[(String, u32)]) -> SegmentConfig {
    let weights: Vec<(&str, u32)> = weights.iter().map(|(k, w)| (k.as_str(), *w)).collect();
    let positive: Vec<&str> = weights
        .iter()
        .filter(|&&(_, w)| w > 0)
        .map(|&(k, _)| k)
        .collect();
    let (bucket, variant) = match positive.as_slice() {
        [only] => (None, *only),
        _ => (
            Some(BucketConfig {
                selector: bucketing_selector(&group.bucketing_unit),
                salt: group.bucketing_salt.clone(),
                allocations: vec![AllocationConfig {
                    range: [0, 100],
                    distributions: distributions(&weights),
                }],
            }),
            OFF,
        ),
    };
    SegmentConfig {
        conditions: None,
        bucket,
        variant: Some(variant.to_owned()),
        metadata: Some(segment_metadata(ALL_OTHER_USERS)),
    }
}

/// `deployed` (always false), `evaluationMode`, `flagType`, `flagVersion`.
fn metadata(group: &Group) -> Object {
    let mut metadata = Object::new();
    metadata.insert("deployed", Value::Bool(false));
    metadata.insert(
        "evaluationMode",
        Value::from(group.evaluation_mode.as_str()),
    );
    metadata.insert("flagType", Value::from(group.kind.flag_type()));
    metadata.insert("flagVersion", Value::Int(group.version));
    metadata
}
