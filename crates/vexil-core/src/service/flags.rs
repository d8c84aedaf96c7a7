//! Flags and experiments: create, list, show, change (with the prerequisite rules), activate,
//! deactivate, archive, unarchive, and their dependencies card. History and QA evaluation are in
//! the sibling modules `history` and `qa`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vexil_store::{FlagFilter, Tx};

use super::convert::{doc_value, flag, flag_row};
use super::{check_version, now_ms, record, Actor, Core, Role, Saved};
use crate::error::{Error, FieldError, Result};
use crate::keys::{is_url_safe_key, key_from_name, salt};
use crate::model::{
    EvaluationMode, ExperimentSettings, Flag, FlagState, FlagType, ImportedConfig, Inclusion,
    Prerequisite, Rollout, Segment, SlotRef, Target, Variant,
};
use crate::rules::{self, FlagSource};
use crate::validate::validate_flag;

mod change;
mod exposures;
mod history;
mod qa;
mod stale;
mod words;

pub use change::FlagChange;
pub(crate) use change::{apply_in, preview_in};
pub(crate) use qa::stored_cohorts;
pub use qa::{UserFlag, UserView};
pub use stale::{reason as stale_reason, StaleArchive, STALE_AFTER_DAYS};
pub use words::{op_words, OPERATORS};

pub use exposures::{
    ExposureBucket, ExposureKind, ExposureParams, ExposureStats, Interval, VariantCount,
};
pub use history::VersionInfo;
pub use qa::Evaluation;

/// A flag or experiment to create. Absent fields get the defaults a new flag has in the
/// console: release type, remote evaluation, bucketing by `user_id`, a random salt, one
/// variant `on` (experiments: `control` and `treatment`), All Other Users at 0%.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFlag {
    pub project: String,
    pub name: String,
    /// Generated from the name when absent; immutable after creation.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "type", default = "release")]
    pub kind: FlagType,
    #[serde(default)]
    pub experiment_key: Option<String>,
    /// Experiments: metrics, analysis window and test (defaults when absent).
    #[serde(default)]
    pub experiment: Option<ExperimentSettings>,
    #[serde(default = "remote")]
    pub evaluation_mode: EvaluationMode,
    #[serde(default = "user_id")]
    pub bucketing_unit: String,
    #[serde(default)]
    pub bucketing_salt: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub deployments: Vec<String>,
    #[serde(default)]
    pub variants: Option<Vec<Variant>>,
    #[serde(default)]
    pub segments: Vec<Segment>,
    #[serde(default)]
    pub all_other_users: Option<Rollout>,
    #[serde(default)]
    pub inclusions: BTreeMap<String, Inclusion>,
    #[serde(default)]
    pub prerequisites: Vec<Prerequisite>,
    /// A mutual-exclusion slot to run in.
    #[serde(default)]
    pub mutex_group: Option<SlotRef>,
    /// Holdout groups to belong to.
    #[serde(default)]
    pub holdouts: Vec<String>,
}

fn release() -> FlagType {
    FlagType::Release
}
fn remote() -> EvaluationMode {
    EvaluationMode::Remote
}
fn user_id() -> String {
    "user_id".to_string()
}

/// Fields of a flag to change; absent fields stay as they are. Lists replace the stored list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment_key: Option<String>,
    /// Experiments: replaces the metrics, analysis window and test settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluation_mode: Option<EvaluationMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucketing_unit: Option<String>,
    /// Changing the salt moves users between variants; the response says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucketing_salt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployments: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variants: Option<Vec<Variant>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<Vec<Segment>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all_other_users: Option<Rollout>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inclusions: Option<BTreeMap<String, Inclusion>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prerequisites: Option<Vec<Prerequisite>>,
    /// A mutual-exclusion slot to run in, or `null` to leave the group.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "super::groups::double_option"
    )]
    #[schema(value_type = Option<SlotRef>)]
    pub mutex_group: Option<Option<SlotRef>>,
    /// Replaces the holdout groups the flag belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holdouts: Option<Vec<String>>,
    /// Keep the flag on purpose: it is never reported stale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permanent: Option<bool>,
    /// Imported flags only: the engine config, validated like an import.
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported_config: Option<ImportedConfig>,
}

/// The order of the flag list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlagOrder {
    Key,
    Name,
    Updated,
}

/// Which flags to list.
#[derive(Debug, Clone, Default, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlagQuery {
    pub project: Option<String>,
    pub state: Option<FlagState>,
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<FlagType>,
    pub evaluation_mode: Option<EvaluationMode>,
    pub tag: Option<String>,
    pub deployment: Option<String>,
    /// `false` (default) lists unarchived flags, `true` archived ones.
    pub archived: Option<bool>,
    /// `true`: only stale flags (see [`FlagSummary::stale`]).
    pub stale: Option<bool>,
    /// `key` (default, by project then key), `name`, or `updated` (the most recent first).
    pub sort: Option<FlagOrder>,
    /// Case-insensitive text search on name and key.
    pub q: Option<String>,
    /// Rows to skip (default 0).
    #[param(minimum = 0, maximum = 9223372036854775807_u64)]
    pub offset: Option<u64>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// A flag as listed and in dependency cards.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FlagSummary {
    pub project: String,
    pub key: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FlagType,
    pub evaluation_mode: EvaluationMode,
    pub state: FlagState,
    pub archived: bool,
    pub tags: Vec<String>,
    pub deployments: Vec<String>,
    pub version: i64,
    pub updated_at: i64,
    /// Why the flag is stale, when it is: unchanged for 30 days while serving one variant to
    /// everyone or nothing to anyone (a candidate for removal from the code and archiving).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale: Option<String>,
    /// Kept on purpose: never stale.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub permanent: bool,
    /// Who made the last change.
    pub updated_by: String,
    /// The targeting in a few words: "Everyone: *on*", "2 segments; everyone else: off".
    pub targeting: String,
    /// The flags it depends on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<String>,
    /// The mutual-exclusion group and holdouts it is in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// One side of a dependency.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DependencyInfo {
    #[serde(flatten)]
    pub flag: FlagSummary,
    /// The allowed variants of the prerequisite.
    pub variants: Vec<String>,
}

/// A group a flag belongs to, as the dependencies card shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupInfo {
    pub key: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: crate::model::GroupKind,
    pub evaluation_mode: EvaluationMode,
    pub archived: bool,
    /// Mutual-exclusion groups: the flag's slot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<u8>,
    /// The share of users this group lets through to the flag: the slot's percentage, or 100
    /// minus the holdout's.
    pub percentage: u8,
    /// Other members of the same slot (mutual-exclusion groups), or of the holdout.
    pub other_members: Vec<String>,
}

/// The dependencies card: what a flag depends on and what depends on it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Dependencies {
    pub prerequisites: Vec<DependencyInfo>,
    /// The mutual-exclusion group and slot the flag runs in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mutex_group: Option<GroupInfo>,
    /// The holdout groups the flag belongs to.
    pub holdouts: Vec<GroupInfo>,
    pub dependents: Vec<DependencyInfo>,
    /// The largest share of users the flag can reach given its groups (the product of what
    /// each lets through: a 5% holdout and a 50% slot leave 47.5%), in percent. Prerequisites
    /// and targeting narrow it further.
    pub max_reach: f64,
}

/// The groups a flag could join now: unarchived, same project, a compatible evaluation mode.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EligibleGroups {
    /// Mutual-exclusion groups with their slots and who holds each.
    pub mutex_groups: Vec<EligibleMutex>,
    /// Holdout groups the flag is not in yet.
    pub holdouts: Vec<GroupInfo>,
}

/// A mutual-exclusion group a flag could join, with its slots.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EligibleMutex {
    #[serde(flatten)]
    pub group: GroupInfo,
    pub slots: Vec<SlotInfo>,
}

/// One slot and its members (joining a held slot needs `shared: true`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SlotInfo {
    pub index: u8,
    pub key: String,
    pub percentage: u8,
    pub members: Vec<String>,
}

impl From<&Flag> for FlagSummary {
    fn from(f: &Flag) -> Self {
        FlagSummary {
            project: f.project.clone(),
            key: f.key.clone(),
            name: f.name.clone(),
            kind: f.kind,
            evaluation_mode: f.evaluation_mode,
            state: f.state,
            archived: f.archived,
            tags: f.tags.clone(),
            deployments: f.deployments.clone(),
            version: f.version,
            updated_at: f.updated_at,
            stale: stale::reason(f, now_ms()),
            permanent: f.permanent,
            updated_by: f.updated_by.clone(),
            targeting: super::drafts::targeting(f),
            prerequisites: f.prerequisites.iter().map(|p| p.flag.clone()).collect(),
            groups: f
                .mutex_group
                .iter()
                .map(|m| m.group.clone())
                .chain(f.holdouts.iter().cloned())
                .collect(),
        }
    }
}

/// Flag use cases.
#[derive(Clone)]
pub struct FlagService {
    pub(crate) core: Core,
}

/// Reads other flags of one project inside the current transaction.
pub(crate) struct TxSource<'a> {
    pub tx: &'a mut dyn Tx,
    pub project: &'a str,
}

impl FlagSource for TxSource<'_> {
    fn flag(&mut self, key: &str) -> Result<Option<Flag>> {
        self.tx
            .get_flag(self.project, key)?
            .as_ref()
            .map(flag)
            .transpose()
    }

    fn dependents(&mut self, key: &str) -> Result<Vec<Flag>> {
        self.tx
            .dependents(self.project, key)?
            .iter()
            .map(flag)
            .collect()
    }

    fn group(&mut self, key: &str) -> Result<Option<crate::model::Group>> {
        if !is_url_safe_key(key) {
            return Ok(None);
        }
        self.tx
            .get_document(self.project, super::groups::GROUPS, key)?
            .as_ref()
            .map(super::groups::group)
            .transpose()
    }

    fn holdouts_in(&mut self, key: &str) -> Result<Vec<crate::model::Group>> {
        Ok(super::groups::project_groups(self.tx, self.project)?
            .into_iter()
            .filter(|g| g.mutex_group.as_ref().is_some_and(|m| m.group == key))
            .collect())
    }
}

impl FlagService {
    pub fn create(&self, actor: &Actor, req: NewFlag) -> Result<Saved<Flag>> {
        actor.require(Role::Writer)?;
        let mut f = new_flag(actor, req)?;
        let project = f.project.clone();
        let saved = self.core.write(|tx| {
            super::projects::lock(tx, &project)?;
            crate::limits::check_flag_count(tx, &project, 1)?;
            super::groups::check_key_free(tx, &project, &f.key)?;
            check_and_normalize(tx, None, &mut f)?;
            let row = flag_row(&f)?;
            tx.insert_flag(&row).map_err(|e| match e {
                vexil_store::StoreError::Conflict { .. } => Error::Conflict {
                    code: "flag_key_taken",
                    message: format!("project {project:?} already has a flag with the key {:?}; choose another key", f.key),
                    field: Some("key".into()),
                },
                other => other.into(),
            })?;
            record(tx, actor, &project, "flag", &f.key, 1, f.created_at, "create", "created".into(), row.doc)?;
            Ok(f)
        })?;
        self.core.changed(&project);
        Ok(Saved {
            value: saved,
            warnings: Vec::new(),
        })
    }

    /// The flag with `key`; `project` may be omitted when the key is unique across projects.
    pub fn get(&self, project: Option<&str>, key: &str) -> Result<Flag> {
        self.core.read(|tx| {
            let project = resolve(tx, project, key)?;
            load(tx, &project, key)
        })
    }

    pub fn list(&self, q: &FlagQuery) -> Result<vexil_store::Page<FlagSummary>> {
        let limit = q.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(Error::invalid("limit", "out_of_range", "limit is 1 to 500"));
        }
        for (field, value) in [
            ("q", &q.q),
            ("tag", &q.tag),
            ("project", &q.project),
            ("deployment", &q.deployment),
        ] {
            if value
                .as_deref()
                .is_some_and(|v| v.chars().any(char::is_control))
            {
                return Err(Error::invalid(
                    field,
                    "control_character",
                    format!("{field} must not contain control characters"),
                ));
            }
        }
        let filter = FlagFilter {
            project: q.project.clone(),
            key: None,
            state: q.state.map(|s| s.as_str().to_string()),
            kind: q.kind.map(|k| k.as_str().to_string()),
            mode: q.evaluation_mode.map(|m| m.as_str().to_string()),
            archived: Some(q.archived.unwrap_or(false)),
            tag: q.tag.clone(),
            deployment: q.deployment.clone(),
            text: q.q.clone().filter(|t| !t.is_empty()),
            sort: match q.sort {
                None | Some(FlagOrder::Key) => vexil_store::FlagSort::Key,
                Some(FlagOrder::Name) => vexil_store::FlagSort::Name,
                Some(FlagOrder::Updated) => vexil_store::FlagSort::Updated,
            },
            offset: q.offset.unwrap_or(0),
            limit,
        };
        self.core.read(|tx| {
            if q.stale != Some(true) {
                let page = tx.list_flags(&filter)?;
                let items = page
                    .items
                    .iter()
                    .map(|r| flag(r).map(|f| FlagSummary::from(&f)))
                    .collect::<Result<_>>()?;
                return Ok(vexil_store::Page {
                    items,
                    total: page.total,
                });
            }
            // Staleness is computed, not stored: every match is read (a project holds a bounded
            // number of flags), then the stale ones are paged here.
            let mut stale = Vec::new();
            let mut offset = 0;
            loop {
                let page = tx.list_flags(&FlagFilter {
                    offset,
                    limit: 500,
                    ..filter.clone()
                })?;
                let n = page.items.len();
                for r in &page.items {
                    let s = FlagSummary::from(&flag(r)?);
                    if s.stale.is_some() {
                        stale.push(s);
                    }
                }
                if n < 500 {
                    break;
                }
                offset += 500;
            }
            let total = stale.len() as u64;
            let start = usize::try_from(filter.offset).unwrap_or(usize::MAX);
            let items = stale.into_iter().skip(start).take(limit as usize).collect();
            Ok(vexil_store::Page { items, total })
        })
    }

    /// The dependencies card of a flag.
    pub fn dependencies(&self, project: Option<&str>, key: &str) -> Result<Dependencies> {
        self.core.read(|tx| {
            let project = resolve(tx, project, key)?;
            let f = load(tx, &project, key)?;
            let mut prerequisites = Vec::new();
            for p in &f.prerequisites {
                if let Some(row) = tx.get_flag(&project, &p.flag)? {
                    prerequisites.push(DependencyInfo {
                        flag: FlagSummary::from(&flag(&row)?),
                        variants: p.variants.clone(),
                    });
                }
            }
            let all: Vec<Flag> = tx
                .project_flags(&project)?
                .iter()
                .map(flag)
                .collect::<Result<_>>()?;
            let groups = super::groups::project_groups(tx, &project)?;
            let find = |k: &str| groups.iter().find(|g| g.key == k);
            let mutex_group = f.mutex_group.as_ref().and_then(|m| {
                Some(group_info(
                    find(&m.group)?,
                    Some(m.slot),
                    &all,
                    &groups,
                    key,
                ))
            });
            let holdouts: Vec<GroupInfo> = f
                .holdouts
                .iter()
                .filter_map(|h| Some(group_info(find(h)?, None, &all, &groups, key)))
                .collect();
            let max_reach = mutex_group
                .iter()
                .chain(&holdouts)
                .map(|g| f64::from(g.percentage) / 100.0)
                .product::<f64>()
                * 100.0;
            let mut dependents = Vec::new();
            for row in tx.dependents(&project, key)? {
                let d = flag(&row)?;
                let variants = d
                    .prerequisites
                    .iter()
                    .find(|p| p.flag == key)
                    .map(|p| p.variants.clone())
                    .unwrap_or_default();
                dependents.push(DependencyInfo {
                    flag: FlagSummary::from(&d),
                    variants,
                });
            }
            Ok(Dependencies {
                prerequisites,
                mutex_group,
                holdouts,
                dependents,
                max_reach,
            })
        })
    }

    /// The groups `key` could join now: unarchived, and evaluated locally unless the flag is
    /// remote. Slots list their members, so a caller sees which are free.
    pub fn eligible_groups(&self, project: Option<&str>, key: &str) -> Result<EligibleGroups> {
        self.core.read(|tx| {
            let project = resolve(tx, project, key)?;
            let f = load(tx, &project, key)?;
            let all: Vec<Flag> = tx
                .project_flags(&project)?
                .iter()
                .map(flag)
                .collect::<Result<_>>()?;
            let groups = super::groups::project_groups(tx, &project)?;
            let eligible = groups.iter().filter(|g| {
                !g.archived
                    && (f.evaluation_mode == EvaluationMode::Remote
                        || g.evaluation_mode == EvaluationMode::Local)
            });
            let mut out = EligibleGroups {
                mutex_groups: Vec::new(),
                holdouts: Vec::new(),
            };
            for g in eligible {
                match g.kind {
                    crate::model::GroupKind::MutualExclusion => {
                        out.mutex_groups.push(EligibleMutex {
                            group: group_info(g, None, &all, &groups, key),
                            slots: g
                                .slots
                                .iter()
                                .map(|s| SlotInfo {
                                    index: s.index,
                                    key: s.key.clone(),
                                    percentage: s.percentage,
                                    members: slot_members(g, s.index, &all, &groups, key),
                                })
                                .collect(),
                        })
                    }
                    crate::model::GroupKind::Holdout if !f.holdouts.contains(&g.key) => {
                        out.holdouts.push(group_info(g, None, &all, &groups, key));
                    }
                    crate::model::GroupKind::Holdout => {}
                }
            }
            Ok(out)
        })
    }

    /// The flags `key` could add as a prerequisite now: same project, unarchived, a compatible
    /// evaluation mode, and no cycle.
    pub fn eligible_prerequisites(
        &self,
        project: Option<&str>,
        key: &str,
    ) -> Result<Vec<FlagSummary>> {
        self.core.read(|tx| {
            let project = resolve(tx, project, key)?;
            let f = load(tx, &project, key)?;
            let all: Vec<Flag> = tx
                .project_flags(&project)?
                .iter()
                .map(flag)
                .collect::<Result<_>>()?;
            let reaches_us = dependents_closure(&all, key);
            Ok(all
                .iter()
                .filter(|o| o.key != key && !o.archived && !reaches_us.contains(&o.key))
                .filter(|o| {
                    f.evaluation_mode == EvaluationMode::Remote
                        || o.evaluation_mode == EvaluationMode::Local
                })
                .map(FlagSummary::from)
                .collect())
        })
    }
}

/// Validates `after`, checks the rules and references, and writes it as the next version of
/// `before`, with its history entry.
pub(crate) fn write_version(
    tx: &mut dyn Tx,
    actor: &Actor,
    before: &Flag,
    mut after: Flag,
    action: &'static str,
    warnings: Vec<String>,
    changes: String,
) -> Result<Saved<Flag>> {
    check_and_normalize(tx, Some(before), &mut after)?;
    after.version = before.version + 1;
    after.updated_at = now_ms().max(before.updated_at);
    after.updated_by = actor.name.clone();
    let row = flag_row(&after)?;
    tx.update_flag(&row, before.version)?;
    super::record_version(
        tx,
        actor,
        super::VersionRef {
            project: &after.project,
            entity: "flag",
            key: &after.key,
            version: after.version,
            at: after.updated_at,
            changes,
        },
        action,
        (&doc_value(before)?, &doc_value(&after)?),
        row.doc,
    )?;
    Ok(Saved {
        value: after,
        warnings,
    })
}

fn new_flag(actor: &Actor, req: NewFlag) -> Result<Flag> {
    let key = req.key.clone().unwrap_or_else(|| key_from_name(&req.name));
    let variants = req.variants.unwrap_or_else(|| default_variants(req.kind));
    let equal: BTreeMap<String, u32> = variants.iter().map(|v| (v.key.clone(), 1)).collect();
    let mut segments = req.segments;
    let all_other_users = req.all_other_users.unwrap_or(Rollout {
        percentage: 0,
        weights: equal.clone(),
    });
    for s in &mut segments {
        if s.weights.is_empty() {
            s.weights = equal.clone();
        }
    }
    let now = now_ms();
    Ok(Flag {
        project: req.project,
        key,
        name: req.name.trim().to_string(),
        description: req.description,
        kind: req.kind,
        experiment_key: req.experiment_key,
        experiment: match req.kind {
            FlagType::Experiment => Some(req.experiment.unwrap_or_default()),
            FlagType::Release => req.experiment,
        },
        evaluation_mode: req.evaluation_mode,
        bucketing_unit: req.bucketing_unit,
        bucketing_salt: match req.bucketing_salt {
            Some(s) => s,
            None => salt()?,
        },
        tags: req.tags,
        deployments: req.deployments,
        state: FlagState::Inactive,
        archived: false,
        permanent: false,
        variants,
        segments,
        all_other_users,
        inclusions: req.inclusions,
        prerequisites: req.prerequisites,
        mutex_group: req.mutex_group,
        holdouts: req.holdouts,
        imported_config: None,
        version: 1,
        created_at: now,
        updated_at: now,
        created_by: actor.name.clone(),
        updated_by: actor.name.clone(),
    })
}

fn default_variants(kind: FlagType) -> Vec<Variant> {
    let keys: &[&str] = match kind {
        FlagType::Release => &["on"],
        FlagType::Experiment => &["control", "treatment"],
    };
    keys.iter()
        .map(|k| Variant {
            key: k.to_string(),
            name: k.to_string(),
            value: k.to_string(),
            payload: None,
            description: String::new(),
        })
        .collect()
}

fn apply_patch(f: &mut Flag, p: FlagPatch) -> Result<Vec<String>> {
    if f.imported_config.is_some() {
        if p.variants.is_some()
            || p.segments.is_some()
            || p.all_other_users.is_some()
            || p.inclusions.is_some()
            || p.prerequisites.is_some()
            || p.mutex_group.is_some()
            || p.holdouts.is_some()
        {
            return Err(Error::invalid(
                "imported_config",
                "imported_flag",
                "this flag was imported from Amplitude: change its targeting by editing imported_config",
            ));
        }
    } else if p.imported_config.is_some() {
        return Err(Error::invalid(
            "imported_config",
            "not_imported",
            "only imported flags have an imported_config",
        ));
    }
    let patched_targeting = p.segments.is_some() || p.all_other_users.is_some();
    let patched_inclusions = p.inclusions.is_some();
    macro_rules! set {
        ($($field:ident),*) => { $( if let Some(v) = p.$field { f.$field = v; } )* };
    }
    set!(
        name,
        description,
        evaluation_mode,
        bucketing_unit,
        bucketing_salt,
        tags,
        deployments,
        variants,
        segments,
        all_other_users,
        inclusions,
        prerequisites,
        mutex_group,
        holdouts,
        permanent
    );
    if let Some(settings) = p.experiment {
        f.experiment = Some(settings);
    }
    if let Some(k) = p.experiment_key {
        f.experiment_key = Some(k);
    }
    if let Some(config) = p.imported_config {
        super::import::apply_config(f, config)?;
    }
    // A variants-only change keeps what the patch did not replace consistent with the new
    // list by itself; what the patch did replace is validated as sent.
    prune_variants(f, !patched_targeting, !patched_inclusions);
    Ok(Vec::new())
}

/// Drops the weights (segments and All Other Users) and the inclusions of variants the flag no
/// longer has, each when asked.
fn prune_variants(f: &mut Flag, weights: bool, inclusions: bool) {
    let keys: Vec<String> = f.variants.iter().map(|v| v.key.clone()).collect();
    let keep = |k: &String| keys.contains(k);
    if weights {
        for s in &mut f.segments {
            s.weights.retain(|k, _| keep(k));
        }
        f.all_other_users.weights.retain(|k, _| keep(k));
    }
    if inclusions {
        f.inclusions.retain(|k, _| keep(k));
    }
}

fn rename_variant(f: &mut Flag, old: &str, new: &str) {
    for w in f
        .segments
        .iter_mut()
        .map(|s| &mut s.weights)
        .chain(std::iter::once(&mut f.all_other_users.weights))
    {
        if let Some(weight) = w.remove(old) {
            w.insert(new.to_string(), weight);
        }
    }
    if let Some(inclusion) = f.inclusions.remove(old) {
        f.inclusions.insert(new.to_string(), inclusion);
    }
}

/// Field validation, references to deployments and cohorts, and the prerequisite rules.
fn check_and_normalize(tx: &mut dyn Tx, before: Option<&Flag>, f: &mut Flag) -> Result<()> {
    let mut errors = validate_flag(f);
    if let Some(before) = before {
        if before.key != f.key {
            errors.push(FieldError::new(
                "key",
                "immutable",
                "a flag's key cannot change after creation",
            ));
        }
    }
    for (i, d) in f.deployments.iter().enumerate() {
        let row = if is_url_safe_key(d) {
            tx.get_deployment(&f.project, d)?
        } else {
            None
        };
        match row {
            None => errors.push(FieldError::new(
                format!("deployments[{i}]"),
                "unknown_deployment",
                format!("project {:?} has no deployment {d:?}", f.project),
            )),
            Some(row) if row.archived && !before.is_some_and(|b| b.deployments.contains(d)) => {
                errors.push(FieldError::new(
                    format!("deployments[{i}]"),
                    "deployment_archived",
                    format!("deployment {d:?} is archived"),
                ))
            }
            Some(_) => {}
        }
    }
    if let Some(settings) = &f.experiment {
        for (field, key) in settings.metric_references() {
            match super::metrics::find(tx, &f.project, key)? {
                None => errors.push(FieldError::new(
                    field,
                    "unknown_metric",
                    format!(
                        "project {:?} has no metric {key:?}; define it first",
                        f.project
                    ),
                )),
                Some(m) if m.archived => errors.push(FieldError::new(
                    field,
                    "metric_archived",
                    format!("the metric {key:?} is archived"),
                )),
                Some(_) => {}
            }
        }
    }
    if f.imported_config.is_none() {
        for (field, cohort) in cohort_references(f) {
            if !is_url_safe_key(&cohort) || tx.get_cohort(&f.project, &cohort)?.is_none() {
                errors.push(FieldError::new(
                    field,
                    "unknown_cohort",
                    format!(
                        "project {:?} has no cohort {cohort:?}; upload it first",
                        f.project
                    ),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let project = f.project.clone();
    rules::check_save(
        &mut TxSource {
            tx,
            project: &project,
        },
        before,
        f,
    )
}

/// Every cohort id a managed flag references, with the field that references it.
pub(crate) fn cohort_references(f: &Flag) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, s) in f.segments.iter().enumerate() {
        for (j, c) in s.conditions.iter().enumerate() {
            if matches!(c.target, Target::Cohort | Target::GroupCohort { .. }) {
                for (k, v) in c.values.iter().enumerate() {
                    out.push((
                        format!("segments[{i}].conditions[{j}].values[{k}]"),
                        v.clone(),
                    ));
                }
            }
        }
    }
    for (variant, inclusion) in &f.inclusions {
        for (k, c) in inclusion.cohorts.iter().enumerate() {
            out.push((format!("inclusions.{variant}.cohorts[{k}]"), c.clone()));
        }
    }
    out
}

/// A group as the card shows it to flag `me`: its share for `me` and its other members.
fn group_info(
    g: &crate::model::Group,
    slot: Option<u8>,
    flags: &[Flag],
    groups: &[crate::model::Group],
    me: &str,
) -> GroupInfo {
    let (percentage, other_members) = match g.kind {
        crate::model::GroupKind::MutualExclusion => match slot {
            Some(slot) => (
                g.slot(slot).map_or(0, |s| s.percentage),
                slot_members(g, slot, flags, groups, me),
            ),
            None => (100 - g.unallocated(), Vec::new()),
        },
        crate::model::GroupKind::Holdout => (
            100 - g.percentage.unwrap_or(0).min(100),
            g.members(flags, groups)
                .map(|m| m.key())
                .filter(|k| *k != me)
                .map(str::to_owned)
                .collect(),
        ),
    };
    GroupInfo {
        key: g.key.clone(),
        name: g.name.clone(),
        kind: g.kind,
        evaluation_mode: g.evaluation_mode,
        archived: g.archived,
        slot,
        percentage,
        other_members,
    }
}

/// The unarchived flags and holdouts in slot `slot` of `group`, other than `me`.
fn slot_members(
    group: &crate::model::Group,
    slot: u8,
    flags: &[Flag],
    groups: &[crate::model::Group],
    me: &str,
) -> Vec<String> {
    group
        .members(flags, groups)
        .filter(|m| m.slot().is_some_and(|s| s.slot == slot) && m.key() != me)
        .map(|m| m.key().to_owned())
        .collect()
}

/// Keys of the flags that depend on `key`, directly or not.
fn dependents_closure(all: &[Flag], key: &str) -> std::collections::HashSet<String> {
    let mut found = std::collections::HashSet::new();
    let mut stack = vec![key.to_string()];
    while let Some(k) = stack.pop() {
        for f in all.iter().filter(|f| f.prerequisite_keys().any(|p| p == k)) {
            if found.insert(f.key.clone()) {
                stack.push(f.key.clone());
            }
        }
    }
    found
}

/// The project of flag `key`: the one given, or the only project that has such a flag.
pub(crate) fn resolve(tx: &mut dyn Tx, project: Option<&str>, key: &str) -> Result<String> {
    if !is_url_safe_key(key) || project.is_some_and(|p| !is_url_safe_key(p)) {
        return Err(Error::NotFound {
            entity: "flag",
            key: key.to_string(),
        });
    }
    if let Some(p) = project {
        return Ok(p.to_string());
    }
    let page = tx.list_flags(&FlagFilter {
        key: Some(key.to_string()),
        limit: 10,
        ..FlagFilter::default()
    })?;
    match page.items.as_slice() {
        [] => Err(Error::NotFound {
            entity: "flag",
            key: key.to_string(),
        }),
        [one] => Ok(one.project.clone()),
        many => Err(Error::invalid(
            "project",
            "project_required",
            format!(
                "projects {} all have a flag {key:?}; name the project",
                many.iter()
                    .map(|r| r.project.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

pub(crate) fn load(tx: &mut dyn Tx, project: &str, key: &str) -> Result<Flag> {
    match tx.get_flag(project, key)? {
        Some(row) => flag(&row),
        None => Err(Error::NotFound {
            entity: "flag",
            key: key.to_string(),
        }),
    }
}
