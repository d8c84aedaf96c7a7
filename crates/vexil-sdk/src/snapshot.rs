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

use crate::events;
use crate::variant::{Detail, ErrorCode, Reason, Variant};
use crate::User;

/// The segment name of the catch-all segment, which never counts as targeting (§B5).
const ALL_OTHER_USERS: &str = "All Other Users";
/// The group type of user cohorts in cohort downloads (§A9).
pub(crate) const USER_GROUP_TYPE: &str = "User";

/// What OFREP reasons need to know of a segment, and what its possible results' metadata say.
#[derive(Debug)]
struct SegmentInfo {
    user_id_bucket: bool,
    has_conditions: bool,
    /// By variant index, each result the segment can give: read once here rather than from
    /// three metadata layers on every evaluation.
    results: Vec<(usize, ResultTraits)>,
}

/// What a result's merged metadata says, for typed accessors and exposures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ResultTraits {
    /// `metadata.default = true`: the `off` convention; the code's default applies.
    pub default: bool,
    /// Evaluating it records an exposure ([`events::records_exposure`]).
    pub exposed: bool,
}

impl ResultTraits {
    fn of(r: &VariantResult<'_>) -> ResultTraits {
        ResultTraits {
            default: r.is_default(),
            exposed: events::records_exposure(r),
        }
    }
}

impl FlagInfo {
    /// The traits of `r`, a result of this flag.
    fn traits(&self, r: &VariantResult<'_>, segment: Option<&SegmentInfo>) -> ResultTraits {
        let variant = r.variant_index();
        segment
            .and_then(|s| s.results.iter().find(|(v, _)| *v == variant))
            .map_or_else(|| ResultTraits::of(r), |(_, traits)| *traits)
    }
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
    let mut segments: Vec<SegmentInfo> = config
        .segments
        .iter()
        .map(|s| SegmentInfo {
            user_id_bucket: s
                .bucket
                .as_ref()
                .is_some_and(|b| b.selector == ["context", "user", "user_id"]),
            has_conditions: s.conditions.is_some()
                && segment_name(s.metadata.as_ref()) != Some(ALL_OTHER_USERS),
            results: Vec::new(),
        })
        .collect();
    for (segment, variant) in set.possible_results(index) {
        if let (Some(info), Some(r)) = (
            segments.get_mut(segment),
            set.result_at(index, segment, variant),
        ) {
            info.results.push((variant, ResultTraits::of(&r)));
        }
    }
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

/// One flag's evaluation, borrowed from the snapshot: what typed accessors, [`Detail`] and
/// exposures read. Nothing is copied out of the compiled flags until a caller asks for an
/// owned [`Variant`] or [`Detail`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome<'a> {
    /// The variant the flag gave (also `off`); `None` with an error, or when no segment gave one.
    pub result: Option<VariantResult<'a>>,
    /// What the result's metadata say (all false without a result).
    pub traits: ResultTraits,
    /// The value to use: the variant's value, or `None` when the code's default applies (`off`,
    /// an inactive flag, an error).
    pub value: Option<&'a Value>,
    pub reason: Reason,
    pub error: Option<ErrorCode>,
}

impl Outcome<'_> {
    fn error(code: ErrorCode) -> Self {
        Outcome {
            result: None,
            traits: ResultTraits::default(),
            value: None,
            reason: Reason::Error,
            error: Some(code),
        }
    }

    /// The owned [`Detail`] (variant and value copied, metadata merged).
    pub fn detail(&self, flag_key: &str) -> Detail {
        Detail {
            flag_key: flag_key.to_owned(),
            variant: self.result.as_ref().map(variant_of),
            value: self.value.cloned().map(Into::into),
            reason: self.reason,
            error: self.error,
        }
    }
}

impl Snapshot {
    /// The evaluation context of `user`, enriched with the synced cohorts.
    pub fn context(&self, user: &User) -> Context {
        let mut fields = user.fields.clone();
        if self.cohort_sync {
            enrich(&mut fields, &self.cohorts);
        }
        Context::from_sdk_user(Value::Object(fields))
    }

    /// Every flag's variant for `context`, as `/sdk/v2/vardata` answers (default and
    /// `deployed: false` results included, groups left out).
    pub fn all(&self, context: &Context) -> BTreeMap<String, Variant> {
        let mut out = BTreeMap::new();
        let Some(flags) = &self.flags else {
            return out;
        };
        let mut add = |r: VariantResult<'_>| {
            if !flags.infos[r.flag_index()].group {
                out.insert(r.flag_key().to_owned(), variant_of(&r));
            }
        };
        match &flags.plan_all {
            Ok(plan) => evaluate_plan(&flags.set, context, plan)
                .iter()
                .for_each(&mut add),
            // A cycle in imported configs: every flag that does not reach it still evaluates.
            Err(_) => {
                for (index, info) in flags.infos.iter().enumerate() {
                    if let Ok(plan) = &info.plan {
                        let results = evaluate_plan(&flags.set, context, plan);
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

    /// Evaluates flag `index` (and, first, only its ancestors) and gives its result.
    fn evaluate<'a>(
        flags: &'a Flags,
        plan: &Plan,
        context: &Context,
        index: usize,
    ) -> Option<VariantResult<'a>> {
        let results = evaluate_plan(&flags.set, context, plan);
        // By index: `Results::get` would look the key up again. A plan holds the flag and its
        // few ancestors, so the scan is short.
        let found = results.iter().find(|r| r.flag_index() == index);
        found
    }

    /// The raw result of one flag (as in [`Snapshot::all`]) and its traits; `None` when it is
    /// unknown, a group, or reaches a cycle.
    pub fn result(
        &self,
        context: &Context,
        flag_key: &str,
    ) -> Option<(VariantResult<'_>, ResultTraits)> {
        let flags = self.flags.as_ref()?;
        let index = flags.set.index_of(flag_key)?;
        let info = &flags.infos[index];
        let plan = info.plan.as_ref().ok().filter(|_| !info.group)?;
        let r = Snapshot::evaluate(flags, plan, context, index)?;
        let segment = info.segments.get(r.detail().segment_index);
        Some((r, info.traits(&r, segment)))
    }

    /// One flag with OFREP's reason, value and error code (§B5, §B6).
    pub fn outcome(&self, context: &Context, flag_key: &str) -> Outcome<'_> {
        let Some(flags) = &self.flags else {
            return Outcome::error(ErrorCode::ProviderNotReady);
        };
        let Some(index) = flags.set.index_of(flag_key) else {
            return Outcome::error(ErrorCode::FlagNotFound);
        };
        let info = &flags.infos[index];
        if info.group || info.not_deployed {
            return Outcome::error(ErrorCode::FlagNotFound);
        }
        let Ok(plan) = &info.plan else {
            return Outcome::error(ErrorCode::General);
        };
        let Some(r) = Snapshot::evaluate(flags, plan, context, index) else {
            return Outcome {
                result: None,
                traits: ResultTraits::default(),
                value: None,
                reason: Reason::Default,
                error: None,
            };
        };
        let detail = r.detail();
        let segment = info.segments.get(detail.segment_index);
        if !info.inactive
            && detail.missing_bucket_value
            && segment.is_some_and(|s| s.user_id_bucket)
        {
            return Outcome::error(ErrorCode::TargetingKeyMissing);
        }
        let traits = info.traits(&r, segment);
        let value = r.value().filter(|_| !info.inactive && !traits.default);
        let reason = match (&value, segment) {
            _ if info.inactive => Reason::Disabled,
            (None, _) => Reason::Default,
            _ if detail.bucketed => Reason::Split,
            (_, Some(s)) if s.has_conditions => Reason::TargetingMatch,
            _ if info.segments.len() == 1 => Reason::Static,
            _ => Reason::Default,
        };
        Outcome {
            result: Some(r),
            traits,
            value,
            reason,
            error: None,
        }
    }
}

/// The owned [`Variant`] of a result: key, value and payload copied, metadata merged.
pub(crate) fn variant_of(r: &VariantResult<'_>) -> Variant {
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
