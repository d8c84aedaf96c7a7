//! Compiles the management model ([`Flag`]) into the engine's flag-config format
//! ([`FlagConfig`], `evaluation.md` §10) and decides what a deployment serves (§10.1).
//!
//! Everything here is pure and deterministic: the same management state gives byte-identical
//! JSON (§10.8), because ETags and `flagVersion` must change only on real changes. Inputs were
//! validated when they were stored, so the compiler never fails; where a stored document breaks
//! an invariant anyway (an imported config that no longer parses, a dependency cycle), it serves
//! the safest thing it can (`off`, or ignoring the back edge) instead of panicking.

use std::collections::{BTreeMap, BTreeSet};

use vexil_eval::{
    AllocationConfig, BucketConfig, ConditionConfig, DistributionConfig, FlagConfig, Object,
    OrderedMap, SegmentConfig, Value, VariantConfig, MAX_DISTRIBUTION,
};

use crate::model::{
    Condition, Flag, FlagState, FlagType, Group, Inclusion, Rollout, Slot, Target, Variant, OFF,
    USER_FIELDS,
};

mod groups;
#[cfg(test)]
mod tests;

pub use groups::{HOLDOUT, HOLDOUT_PASS, UNALLOCATED};

/// Segment name of the individual-inclusion segments (§10.4).
const INCLUSIONS_SEGMENT: &str = "individual-inclusions";
/// Segment name of the prerequisite gate (§10.5).
const GATE_SEGMENT: &str = "flag-dependencies";
/// Segment name of the catch-all segment (§10.6).
const ALL_OTHER_USERS: &str = "All Other Users";
/// Segment name of an inactive flag's only segment (§10.3).
const DEFAULT_SEGMENT: &str = "default";

/// Compiles one flag to the engine config. `deployed` goes into metadata.
pub fn compile_flag(flag: &Flag, deployed: bool) -> FlagConfig {
    if let Some(imported) = &flag.imported_config {
        return compile_imported(flag, imported.json());
    }
    let active = flag.state == FlagState::Active;
    let dependencies: Vec<String> = flag.dependency_keys().map(str::to_owned).collect();
    let mut segments = Vec::new();
    if active {
        segments.extend(inclusion_segments(flag));
        if !dependencies.is_empty() {
            segments.push(gate_segment(flag));
        }
        for segment in &flag.segments {
            let conditions = segment_conditions(&segment.conditions);
            segments.push(rollout_segment(
                flag,
                &segment.name,
                conditions,
                &segment.rollout(),
            ));
        }
        segments.push(rollout_segment(
            flag,
            ALL_OTHER_USERS,
            None,
            &flag.all_other_users,
        ));
    } else {
        segments.push(default_segment());
    }
    FlagConfig {
        key: flag.key.clone(),
        variants: variants(flag),
        segments,
        // An inactive flag serves `off` without looking at its prerequisites (§10.3).
        dependencies: (active && !dependencies.is_empty()).then_some(dependencies),
        metadata: Some(flag_metadata(flag, deployed)),
    }
}

/// The distributions for the given weights (variant key, weight) per §10.7 (u128 integer maths).
///
/// Variants with weight 0 get no range; all-zero (or no) weights give no distributions.
pub fn distributions(weights: &[(&str, u32)]) -> Vec<DistributionConfig> {
    let total: u128 = weights.iter().map(|&(_, w)| u128::from(w)).sum();
    if total == 0 {
        return Vec::new();
    }
    // `MAX_DISTRIBUTION` is the largest distribution value: starts scale it (floor) and ends
    // scale one past it (ceil), so consecutive ranges overlap slightly and never leave a gap,
    // and the last range ends at exactly MAX_DISTRIBUTION + 1.
    let max = u128::from(MAX_DISTRIBUTION.unsigned_abs());
    let mut before: u128 = 0;
    let mut out = Vec::new();
    for &(variant, weight) in weights {
        if weight == 0 {
            continue;
        }
        let after = before + u128::from(weight);
        let start = before * max / total;
        let end = (after * (max + 1)).div_ceil(total);
        out.push(DistributionConfig {
            variant: variant.to_owned(),
            range: [to_i64(start), to_i64(end)],
        });
        before = after;
    }
    out
}

/// What a deployment serves (§10.1): `flags` and `groups` are all flags and groups of the
/// deployment's project (any order, archived included); returns the non-archived flags
/// attached to `deployment` with `deployed: true`, plus every (transitive) dependency they need
/// that is not attached (prerequisites, holdout and mutual-exclusion groups), with
/// `deployed: false`, in the §6 order of the flags sorted by key (ancestors first).
///
/// Dependencies are read from the compiled configs, so an inactive flag (which serves `off`
/// without a gate) pulls in no ancestors, and an imported config pulls in exactly what it
/// names. A dependency missing from `flags` or archived is skipped: the engine then treats it
/// as giving no result.
pub fn deployment_flags(deployment: &str, flags: &[Flag], groups: &[Group]) -> Vec<FlagConfig> {
    let roots: Vec<&str> = flags
        .iter()
        .filter(|f| !f.archived && f.deployments.iter().any(|d| d == deployment))
        .map(|f| f.key.as_str())
        .collect();
    serve(&roots, flags, groups)
}

/// Same as [`deployment_flags`] for an explicit set of root keys (the QA "evaluate one flag"
/// endpoint): the named flags with `deployed: true` (archived or not: the caller asked for
/// them by name), plus their transitive dependencies with `deployed: false`. Unknown root keys
/// are ignored.
pub fn flags_with_prerequisites(
    roots: &[&str],
    flags: &[Flag],
    groups: &[Group],
) -> Vec<FlagConfig> {
    serve(roots, flags, groups)
}

/// A flag or a group: what a served config is compiled from.
#[derive(Clone, Copy)]
enum Source<'a> {
    Flag(&'a Flag),
    Group(&'a Group),
}

/// Compiles `roots` (deployed) and the dependencies they reach (not deployed), then orders them.
fn serve(roots: &[&str], flags: &[Flag], groups: &[Group]) -> Vec<FlagConfig> {
    // First occurrence wins should a key repeat; keys are unique per project (flags and groups
    // together), so a repeat is a stored inconsistency and flags win.
    let mut by_key: BTreeMap<&str, Source<'_>> = BTreeMap::new();
    for flag in flags {
        by_key
            .entry(flag.key.as_str())
            .or_insert(Source::Flag(flag));
    }
    for group in groups {
        by_key
            .entry(group.key.as_str())
            .or_insert(Source::Group(group));
    }
    let members = groups::Members::of(flags, groups);
    let mut compiled: BTreeMap<String, FlagConfig> = BTreeMap::new();
    let mut pending: Vec<&str> = Vec::new();
    let root_set: BTreeSet<&str> = roots.iter().copied().collect();
    for &key in &root_set {
        if let Some(Source::Flag(flag)) = by_key.get(key) {
            compiled.insert(key.to_owned(), compile_flag(flag, true));
            pending.push(key);
        }
    }
    // The dependency closure; each flag is compiled once.
    while let Some(key) = pending.pop() {
        let deps: Vec<String> = compiled
            .get(key)
            .and_then(|c| c.dependencies.clone())
            .unwrap_or_default();
        for dep in deps {
            if compiled.contains_key(&dep) {
                continue;
            }
            let Some((&dep_key, &source)) = by_key.get_key_value(dep.as_str()) else {
                continue;
            };
            let config = match source {
                Source::Flag(flag) if !flag.archived => compile_flag(flag, false),
                Source::Group(group) if !group.archived => groups::compile_group(group, &members),
                _ => continue,
            };
            compiled.insert(dep.clone(), config);
            pending.push(dep_key);
        }
    }
    topological_order(compiled)
}

/// The §6 sort over `configs` taken in ascending key order: every flag once, each after the
/// dependencies that are present. Served configs never contain a cycle (the management API
/// refuses them); should one appear anyway, the back edge is ignored so that serving still
/// works and the engine reports the cycle at evaluation time.
fn topological_order(mut configs: BTreeMap<String, FlagConfig>) -> Vec<FlagConfig> {
    let keys: Vec<String> = configs.keys().cloned().collect();
    let mut out = Vec::with_capacity(keys.len());
    let mut path: Vec<String> = Vec::new();
    for key in keys {
        visit(&key, &mut configs, &mut path, &mut out);
    }
    out
}

/// One step of the §6 depth-first walk: emits `key`'s dependencies, then `key`. Removing a
/// config from `available` marks it emitted.
fn visit(
    key: &str,
    available: &mut BTreeMap<String, FlagConfig>,
    path: &mut Vec<String>,
    out: &mut Vec<FlagConfig>,
) {
    if path.iter().any(|p| p == key) {
        return;
    }
    let Some(deps) = available.get(key).map(|c| c.dependencies.clone()) else {
        return;
    };
    path.push(key.to_owned());
    for dep in deps.unwrap_or_default() {
        visit(&dep, available, path, out);
    }
    path.pop();
    if let Some(config) = available.remove(key) {
        out.push(config);
    }
}

/// `deployed`, `evaluationMode`, `flagType`, `flagVersion` and, for experiments,
/// `experimentKey`, in that order (§10.2).
fn flag_metadata(flag: &Flag, deployed: bool) -> Object {
    let mut metadata = Object::new();
    metadata.insert("deployed", Value::Bool(deployed));
    metadata.insert("evaluationMode", Value::from(flag.evaluation_mode.as_str()));
    metadata.insert("flagType", Value::from(flag.kind.as_str()));
    metadata.insert("flagVersion", Value::Int(flag.version));
    if flag.kind == FlagType::Experiment {
        let key = flag.experiment_key.as_deref().unwrap_or(&flag.key);
        metadata.insert("experimentKey", Value::from(key));
    }
    metadata
}

/// The management variants in order, then `off` (§10.2, §7).
fn variants(flag: &Flag) -> OrderedMap<VariantConfig> {
    let mut out: Vec<(String, VariantConfig)> = managed_variants(flag)
        .map(|v| {
            let value = if v.value.is_empty() { &v.key } else { &v.value };
            let config = VariantConfig {
                key: Some(v.key.clone()),
                value: Some(Value::from(value.as_str())),
                payload: v.payload.clone().map(Value::from),
                metadata: None,
            };
            (v.key.clone(), config)
        })
        .collect();
    out.push((OFF.to_owned(), off_variant()));
    OrderedMap(out)
}

/// The flag's variants except a stray `off` (reserved, refused by validation): the compiler
/// adds `off` itself and a second entry would make the variant map ambiguous.
fn managed_variants(flag: &Flag) -> impl Iterator<Item = &Variant> {
    flag.variants.iter().filter(|v| v.key != OFF)
}

/// `{"key": "off", "metadata": {"default": true}}`.
fn off_variant() -> VariantConfig {
    let mut metadata = Object::new();
    metadata.insert("default", Value::Bool(true));
    VariantConfig {
        key: Some(OFF.to_owned()),
        value: None,
        payload: None,
        metadata: Some(metadata),
    }
}

/// `{"segmentName": name}`.
fn segment_metadata(name: &str) -> Object {
    let mut metadata = Object::new();
    metadata.insert("segmentName", Value::from(name));
    metadata
}

/// An inactive flag's only segment: everyone gets `off` (§10.3).
fn default_segment() -> SegmentConfig {
    SegmentConfig {
        conditions: None,
        bucket: None,
        variant: Some(OFF.to_owned()),
        metadata: Some(segment_metadata(DEFAULT_SEGMENT)),
    }
}

/// One segment per variant (in variant order) that has inclusions (§10.4).
fn inclusion_segments(flag: &Flag) -> Vec<SegmentConfig> {
    managed_variants(flag)
        .filter_map(|v| {
            let inclusion = flag.inclusions.get(&v.key)?;
            let conditions = inclusion_conditions(inclusion);
            (!conditions.is_empty()).then(|| SegmentConfig {
                conditions: Some(conditions),
                bucket: None,
                variant: Some(v.key.clone()),
                metadata: Some(segment_metadata(INCLUSIONS_SEGMENT)),
            })
        })
        .collect()
}

/// The OR of: ids as `user_id`, the same ids as `device_id`, cohorts (each only if non-empty).
fn inclusion_conditions(inclusion: &Inclusion) -> Vec<Vec<ConditionConfig>> {
    let mut out = Vec::new();
    if !inclusion.ids.is_empty() {
        for field in ["user_id", "device_id"] {
            out.push(vec![ConditionConfig {
                selector: path(&["context", "user", field]),
                op: "is".to_owned(),
                values: inclusion.ids.clone(),
            }]);
        }
    }
    if !inclusion.cohorts.is_empty() {
        out.push(vec![ConditionConfig {
            selector: path(&["context", "user", "cohort_ids"]),
            op: "set contains any".to_owned(),
            values: inclusion.cohorts.clone(),
        }]);
    }
    out
}

/// The `flag-dependencies` gate: `off` unless every prerequisite gave an allowed variant, every
/// holdout let the user through (`on`) and the mutual-exclusion group put the user in the
/// flag's slot (§10.5). One inner list per dependency, in `dependencies` order, so any failing
/// one matches.
fn gate_segment(flag: &Flag) -> SegmentConfig {
    let gate = |key: &str, values: Vec<String>| {
        vec![ConditionConfig {
            selector: path(&["result", key, "key"]),
            op: "is not".to_owned(),
            values,
        }]
    };
    let conditions = flag
        .prerequisites
        .iter()
        .map(|p| gate(&p.flag, p.variants.clone()))
        .chain(
            flag.holdouts
                .iter()
                .map(|h| gate(h, vec![HOLDOUT_PASS.to_owned()])),
        )
        .chain(
            flag.mutex_group
                .iter()
                .map(|m| gate(&m.group, vec![Slot::key_of(m.slot)])),
        )
        .collect();
    SegmentConfig {
        conditions: Some(conditions),
        bucket: None,
        variant: Some(OFF.to_owned()),
        metadata: Some(segment_metadata(GATE_SEGMENT)),
    }
}

/// A segment's AND-list as the engine's OR-of-ANDs. An empty list matches everyone, which in
/// the engine is an absent `conditions` (`[]` would match no one).
fn segment_conditions(conditions: &[Condition]) -> Option<Vec<Vec<ConditionConfig>>> {
    (!conditions.is_empty()).then(|| vec![conditions.iter().map(condition).collect()])
}

/// One management condition (§10.6). Regex values are anchored as `^(?:…)$` so that engines
/// that search for a partial match (JS) agree with the full-match rule.
fn condition(condition: &Condition) -> ConditionConfig {
    let selector = match &condition.target {
        Target::UserField { field } => path(&["context", "user", field]),
        Target::UserProperty { property } => {
            path(&["context", "user", "user_properties", property])
        }
        Target::Cohort => path(&["context", "user", "cohort_ids"]),
        Target::GroupName { group_type } => path(&["context", "groups", group_type, "group_name"]),
        Target::GroupProperty {
            group_type,
            property,
        } => path(&[
            "context",
            "groups",
            group_type,
            "group_properties",
            property,
        ]),
        Target::GroupCohort { group_type } => {
            path(&["context", "groups", group_type, "cohort_ids"])
        }
    };
    let is_regex = matches!(
        condition.op.as_str(),
        "regex match" | "regex does not match"
    );
    let values = if is_regex {
        condition
            .values
            .iter()
            .map(|v| format!("^(?:{v})$"))
            .collect()
    } else {
        condition.values.clone()
    };
    ConditionConfig {
        selector,
        op: condition.op.clone(),
        values,
    }
}

/// A targeting segment or All Other Users with its rollout (§10.6, §10.7).
fn rollout_segment(
    flag: &Flag,
    name: &str,
    conditions: Option<Vec<Vec<ConditionConfig>>>,
    rollout: &Rollout,
) -> SegmentConfig {
    let weights: Vec<(&str, u32)> = managed_variants(flag)
        .map(|v| {
            let weight = rollout.weights.get(&v.key).copied().unwrap_or(0);
            (v.key.as_str(), weight)
        })
        .collect();
    let positive: Vec<&str> = weights
        .iter()
        .filter(|&&(_, w)| w > 0)
        .map(|&(k, _)| k)
        .collect();
    let percentage = rollout.percentage.min(100);
    let (bucket, variant) = match positive.as_slice() {
        [] => (None, OFF),
        _ if percentage == 0 => (None, OFF),
        // Everyone who matches gets the one variant, even without a bucketing value.
        [only] if percentage == 100 => (None, *only),
        _ => {
            let bucket = BucketConfig {
                selector: bucketing_selector(&flag.bucketing_unit),
                salt: flag.bucketing_salt.clone(),
                allocations: vec![AllocationConfig {
                    range: [0, i64::from(percentage)],
                    distributions: distributions(&weights),
                }],
            };
            (Some(bucket), OFF)
        }
    };
    SegmentConfig {
        conditions,
        bucket,
        variant: Some(variant.to_owned()),
        metadata: Some(segment_metadata(name)),
    }
}

/// Where the bucketing value is read: a built-in user field, else the name of the user's group
/// of that type (§10.6).
fn bucketing_selector(unit: &str) -> Vec<String> {
    if USER_FIELDS.contains(&unit) {
        path(&["context", "user", unit])
    } else {
        path(&["context", "groups", unit, "group_name"])
    }
}

/// An imported Amplitude config: served as given while active; when inactive, `off` for
/// everyone without dependencies, like a native flag (§10.3).
fn compile_imported(flag: &Flag, json: &str) -> FlagConfig {
    let Ok(mut config) = serde_json::from_str::<FlagConfig>(json) else {
        // Validated at save time, so unreachable in practice; serving `off` is the safe answer.
        return FlagConfig {
            key: flag.key.clone(),
            variants: OrderedMap(vec![(OFF.to_owned(), off_variant())]),
            segments: vec![default_segment()],
            dependencies: None,
            metadata: None,
        };
    };
    // The management layer identifies the flag by its own key; a config saved under another
    // key would otherwise be served (and ordered) under a name nothing refers to.
    config.key = flag.key.clone();
    if flag.state == FlagState::Inactive {
        config.segments = vec![default_segment()];
        config.dependencies = None;
        if config.variants.get(OFF).is_none() {
            config.variants.0.push((OFF.to_owned(), off_variant()));
        }
    }
    config
}

/// Owned selector path.
fn path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|&p| p.to_owned()).collect()
}

/// Range bounds are at most `MAX_DISTRIBUTION + 1`, so they always fit.
fn to_i64(n: u128) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
