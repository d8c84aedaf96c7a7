//! The state evaluation reads: compiled flag configs and synced cohorts, immutable once built and
//! swapped whole (an `Arc`) when either changes. Evaluating never touches the network.
//!
//! The user is enriched as the server enriches it (`sdk-protocol.md` §A7) so that a local
//! evaluation gives what `/sdk/v2/vardata` gives: with cohort sync on and a `user_id`, the
//! user's `cohort_ids` are the synced user cohorts that hold it; each group's first name gets
//! the synced group cohorts that hold it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use vexil_eval::{
    evaluate_plan, CompileError, Context, CycleError, FlagConfig, FlagSet, Object, Plan, Value,
    VariantResult,
};

use crate::variant::{Detail, ErrorCode, Reason, Variant};
use crate::User;

/// The segment name of the catch-all segment, which never counts as targeting (§B5).
const ALL_OTHER_USERS: &str = "All Other Users";
/// The group type of user cohorts in cohort downloads (§A9).
pub(crate) const USER_GROUP_TYPE: &str = "User";

/// What OFREP reasons need to know of a segment.
#[derive(Debug, Clone, Copy)]
struct SegmentInfo {
    user_id_bucket: bool,
    has_conditions: bool,
}

/// What is computed once per flag when configs arrive.
#[derive(Debug)]
struct FlagInfo {
    plan: Result<Plan, CycleError>,
    /// Compiled to serve `off` (a single `default` segment).
    inactive: bool,
    /// A mutual-exclusion or holdout group: evaluated for its members, never answered.
    group: bool,
    /// The config says `deployed: false` (an ancestor served only for its dependents).
    not_deployed: bool,
    segments: Vec<SegmentInfo>,
}

/// Compiled flag configs, as one download or stream event delivered them.
#[derive(Debug)]
pub(crate) struct Flags {
    set: FlagSet,
    plan_all: Result<Plan, CycleError>,
    infos: Vec<FlagInfo>,
    /// The cohort ids conditions reference (`... cohort_ids` selectors, §A9), ascending.
    pub cohort_ids: Vec<String>,
    /// The JSON text they came from.
    pub text: Arc<str>,
    /// The download's `ETag`, for `If-None-Match` (none after a stream event).
    pub etag: Option<String>,
}

impl Flags {
    /// Parses and compiles the JSON array `/sdk/v2/flags` serves.
    pub fn parse(text: &str, etag: Option<String>) -> Result<Flags, CompileError> {
        let set = FlagSet::from_json(text)?;
        let configs: Vec<&FlagConfig> = set.configs().collect();
        let infos = (0..configs.len())
            .map(|i| flag_info(&set, i, configs[i]))
            .collect();
        let cohort_ids = referenced_cohort_ids(&configs).into_iter().collect();
        Ok(Flags {
            plan_all: set.plan(&[] as &[&str]),
            set,
            infos,
            cohort_ids,
            text: text.into(),
            etag,
        })
    }

    /// Number of flags.
    pub fn len(&self) -> usize {
        self.set.len()
    }
}

fn segment_name(metadata: Option<&Object>) -> Option<&str> {
    metadata?.get("segmentName")?.as_str()
}

fn flag_info(set: &FlagSet, index: usize, config: &FlagConfig) -> FlagInfo {
    let inactive = config.segments.len() == 1
        && segment_name(config.segments[0].metadata.as_ref()) == Some("default")
        && config.segments[0].conditions.is_none()
        && config.segments[0].bucket.is_none();
    let flag_meta = |k: &str| config.metadata.as_ref().and_then(|m| m.get(k));
    let group = matches!(
        flag_meta("flagType").and_then(Value::as_str),
        Some("mutual-exclusion-group" | "holdout-group")
    );
    // As the server decides it: the flag says `deployed: false`, or every result it can give does.
    let outcomes: Vec<bool> = set
        .possible_results(index)
        .into_iter()
        .filter_map(|(s, v)| set.result_at(index, s, v))
        .map(|r| r.metadata_value("deployed") == Some(&Value::Bool(false)))
        .collect();
    let not_deployed = flag_meta("deployed") == Some(&Value::Bool(false))
        || (!outcomes.is_empty() && outcomes.iter().all(|&not| not));
    let segments = config
        .segments
        .iter()
        .map(|s| SegmentInfo {
            user_id_bucket: s
                .bucket
                .as_ref()
                .is_some_and(|b| b.selector == ["context", "user", "user_id"]),
            has_conditions: s.conditions.is_some()
                && segment_name(s.metadata.as_ref()) != Some(ALL_OTHER_USERS),
        })
        .collect();
    FlagInfo {
        plan: set.plan(&[config.key.as_str()]),
        inactive,
        group,
        not_deployed,
        segments,
    }
}

/// The ids named by conditions whose selector ends in `cohort_ids` (§A9).
fn referenced_cohort_ids(configs: &[&FlagConfig]) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for config in configs {
        for segment in &config.segments {
            for condition in segment.conditions.iter().flatten().flatten() {
                if condition.selector.last().is_some_and(|s| s == "cohort_ids") {
                    ids.extend(condition.values.iter().cloned());
                }
            }
        }
    }
    ids
}

/// One synced cohort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cohort {
    pub id: String,
    /// `User`, or the group type whose names the members are.
    pub group_type: String,
    /// Unix ms; sent back as `lastModified` so an unchanged cohort answers 204.
    pub last_modified: i64,
    pub members: HashSet<String>,
}

/// The synced cohorts by id.
pub(crate) type Cohorts = BTreeMap<String, Arc<Cohort>>;

/// Everything an evaluation reads.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub flags: Option<Arc<Flags>>,
    pub cohorts: Arc<Cohorts>,
    /// Whether cohort memberships replace the user's own `cohort_ids` (cohort sync is on).
    pub cohort_sync: bool,
}

impl Snapshot {
    /// The evaluation context of `user`, enriched with the synced cohorts.
    fn context(&self, user: &User) -> Context {
        let mut fields = user.fields.clone();
        if self.cohort_sync {
            enrich(&mut fields, &self.cohorts);
        }
        Context::from_sdk_user(Value::Object(fields))
    }

    /// Every flag's variant for `user`, as `/sdk/v2/vardata` answers (default and
    /// `deployed: false` results included, groups left out).
    pub fn all(&self, user: &User) -> BTreeMap<String, Variant> {
        let mut out = BTreeMap::new();
        let Some(flags) = &self.flags else {
            return out;
        };
        let context = self.context(user);
        let mut add = |r: VariantResult<'_>| {
            if !flags.infos[r.flag_index()].group {
                out.insert(r.flag_key().to_owned(), variant_of(&r));
            }
        };
        match &flags.plan_all {
            Ok(plan) => evaluate_plan(&flags.set, &context, plan)
                .iter()
                .for_each(&mut add),
            // A cycle in imported configs: every flag that does not reach it still evaluates.
            Err(_) => {
                for (index, info) in flags.infos.iter().enumerate() {
                    if let Ok(plan) = &info.plan {
                        let results = evaluate_plan(&flags.set, &context, plan);
                        results
                            .iter()
                            .filter(|r| r.flag_index() == index)
                            .for_each(&mut add);
                    }
                }
            }
        }
        out
    }

    /// The raw variant of one flag (as in [`Snapshot::all`]); `None` when it is unknown, a
    /// group, or reaches a cycle.
    pub fn variant(&self, user: &User, flag_key: &str) -> Option<Variant> {
        let flags = self.flags.as_ref()?;
        let index = flags.set.index_of(flag_key)?;
        let info = &flags.infos[index];
        let plan = info.plan.as_ref().ok().filter(|_| !info.group)?;
        let results = evaluate_plan(&flags.set, &self.context(user), plan);
        results.get(flag_key).map(|r| variant_of(&r))
    }

    /// One flag with OFREP's reason, value and error code (§B5, §B6).
    pub fn detail(&self, user: &User, flag_key: &str) -> Detail {
        let Some(flags) = &self.flags else {
            return Detail::error(flag_key, ErrorCode::ProviderNotReady);
        };
        let Some(index) = flags.set.index_of(flag_key) else {
            return Detail::error(flag_key, ErrorCode::FlagNotFound);
        };
        let info = &flags.infos[index];
        if info.group || info.not_deployed {
            return Detail::error(flag_key, ErrorCode::FlagNotFound);
        }
        let Ok(plan) = &info.plan else {
            return Detail::error(flag_key, ErrorCode::General);
        };
        let results = evaluate_plan(&flags.set, &self.context(user), plan);
        let Some(r) = results.get(flag_key) else {
            return Detail {
                flag_key: flag_key.to_owned(),
                variant: None,
                value: None,
                reason: Reason::Default,
                error: None,
            };
        };
        let detail = r.detail();
        let segment = info.segments.get(detail.segment_index).copied();
        if !info.inactive
            && detail.missing_bucket_value
            && segment.is_some_and(|s| s.user_id_bucket)
        {
            return Detail::error(flag_key, ErrorCode::TargetingKeyMissing);
        }
        let variant = variant_of(&r);
        let value = variant
            .value
            .clone()
            .filter(|_| !info.inactive && !variant.is_default());
        let reason = match (&value, segment) {
            _ if info.inactive => Reason::Disabled,
            (None, _) => Reason::Default,
            _ if detail.bucketed => Reason::Split,
            (_, Some(s)) if s.has_conditions => Reason::TargetingMatch,
            _ if info.segments.len() == 1 => Reason::Static,
            _ => Reason::Default,
        };
        Detail {
            flag_key: flag_key.to_owned(),
            variant: Some(variant),
            value,
            reason,
            error: None,
        }
    }
}

fn variant_of(r: &VariantResult<'_>) -> Variant {
    Variant {
        key: r.key().to_owned(),
        value: r.value().cloned().map(Into::into),
        payload: r.payload().cloned().map(Into::into),
        metadata: r
            .metadata()
            .map(|m| match serde_json::Value::from(Value::Object(m)) {
                serde_json::Value::Object(map) => map,
                _ => serde_json::Map::new(),
            }),
    }
}

/// Sets the user's cohorts from the synced ones (§A7), as the server's enrichment does.
fn enrich(user: &mut Object, cohorts: &Cohorts) {
    if let Some(user_id) = user
        .get("user_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        let ids: Vec<Value> = cohorts
            .values()
            .filter(|c| c.group_type == USER_GROUP_TYPE && c.members.contains(user_id))
            .map(|c| Value::from(c.id.as_str()))
            .collect();
        user.insert("cohort_ids", Value::Array(ids));
    }
    let Some(Value::Object(groups)) = user.get("groups") else {
        return;
    };
    let mut found: Vec<(String, String, Vec<Value>)> = Vec::new();
    for (group_type, names) in groups.iter() {
        let name = match names {
            Value::Array(names) => names
                .first()
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty()),
            _ => None,
        };
        let Some(name) = name else { continue };
        let ids: Vec<Value> = cohorts
            .values()
            .filter(|c| c.group_type == group_type && c.members.contains(name))
            .map(|c| Value::from(c.id.as_str()))
            .collect();
        if !ids.is_empty() {
            found.push((group_type.to_owned(), name.to_owned(), ids));
        }
    }
    if found.is_empty() {
        return;
    }
    if !matches!(user.get("group_cohort_ids"), Some(Value::Object(_))) {
        user.insert("group_cohort_ids", Value::Object(Object::new()));
    }
    if let Some(Value::Object(all)) = user.get_mut("group_cohort_ids") {
        for (group_type, name, ids) in found {
            if !matches!(all.get(&group_type), Some(Value::Object(_))) {
                all.insert(group_type.as_str(), Value::Object(Object::new()));
            }
            if let Some(Value::Object(by_name)) = all.get_mut(&group_type) {
                by_name.insert(name, Value::Array(ids));
            }
        }
    }
}

#[cfg(test)]
mod tests;
