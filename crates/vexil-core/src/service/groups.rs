//! Mutual-exclusion groups and holdout groups: create, list, show (with their members), change
//! (with the group rules of [`crate::rules`]), archive, unarchive, and their history (versions,
//! compare, restore). Membership is set on the flag (`FlagPatch::mutex_group`, `holdouts`).

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use vexil_store::{DocumentRow, Tx};

use super::convert::{doc, doc_value, from_doc};
use super::flags::TxSource;
use super::{check_version, now_ms, record, Actor, Core, Role, Saved};
use crate::diff::{diff, Change};
use crate::error::{Error, Result};
use crate::keys::{is_url_safe_key, key_from_name, salt};
use crate::model::{
    EvaluationMode, Flag, FlagState, FlagType, Group, GroupKind, Inclusion, Member, Slot, SlotRef,
};
use crate::rules;
use crate::validate::validate_group;

/// A slot to create: its share of users. Slots are numbered in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlotSpec {
    /// 1–100.
    pub percentage: u8,
}

/// A mutual-exclusion group to create. Absent fields get the console's defaults: local
/// evaluation (so local and remote flags can join), bucketing by `user_id`, a random salt.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMutexGroup {
    pub name: String,
    /// `mutex-` and a key generated from the name when absent; immutable after creation.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default = "local")]
    pub evaluation_mode: EvaluationMode,
    #[serde(default = "user_id")]
    pub bucketing_unit: String,
    #[serde(default)]
    pub bucketing_salt: Option<String>,
    /// 1 to 20 slots whose percentages total at most 100.
    pub slots: Vec<SlotSpec>,
}

/// A holdout group to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHoldout {
    pub name: String,
    /// `holdout-` and a key generated from the name when absent; immutable after creation.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default = "local")]
    pub evaluation_mode: EvaluationMode,
    #[serde(default = "user_id")]
    pub bucketing_unit: String,
    #[serde(default)]
    pub bucketing_salt: Option<String>,
    /// The share of users held out, 1–99.
    pub percentage: u8,
    /// Users always held out.
    #[serde(default)]
    pub inclusions: Inclusion,
    /// Users never held out.
    #[serde(default)]
    pub exclusions: Inclusion,
    /// A mutual-exclusion slot to run the holdout in.
    #[serde(default)]
    pub mutex_group: Option<SlotRef>,
    /// The program's metrics (the first is the primary): held-out users against everyone else.
    #[serde(default)]
    pub metrics: Vec<String>,
}

/// Fields of a mutual-exclusion group to change; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MutexGroupPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub evaluation_mode: Option<EvaluationMode>,
    pub bucketing_unit: Option<String>,
    pub bucketing_salt: Option<String>,
    /// Replaces the slots. Refused while a member is active.
    pub slots: Option<Vec<SlotSpec>>,
}

/// Fields of a holdout group to change; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldoutPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub evaluation_mode: Option<EvaluationMode>,
    pub bucketing_unit: Option<String>,
    pub bucketing_salt: Option<String>,
    /// Refused while a member is active.
    pub percentage: Option<u8>,
    pub inclusions: Option<Inclusion>,
    pub exclusions: Option<Inclusion>,
    /// A slot to run in, or `null` to leave the mutual-exclusion group.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<SlotRef>)]
    pub mutex_group: Option<Option<SlotRef>>,
    /// Replaces the program's metrics.
    pub metrics: Option<Vec<String>>,
}

/// A change to a group of either kind.
#[derive(Debug, Clone)]
pub enum GroupPatch {
    MutualExclusion(MutexGroupPatch),
    Holdout(HoldoutPatch),
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
pub(crate) fn double_option<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn local() -> EvaluationMode {
    EvaluationMode::Local
}
fn user_id() -> String {
    "user_id".to_string()
}

/// A flag or holdout in a group, as the group's page lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupMember {
    pub key: String,
    pub name: String,
    /// `release`, `experiment` or `holdout`.
    pub kind: String,
    pub evaluation_mode: EvaluationMode,
    /// Whether it serves users now. A holdout is active when one of its members is.
    pub active: bool,
    /// The slot it sits in (mutual-exclusion groups).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<u8>,
    /// Whether it asked to share its slot.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

/// A group with its members: the read model of the group's page and listings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupView {
    #[serde(flatten)]
    pub group: Group,
    /// Unarchived members in key order.
    pub members: Vec<GroupMember>,
    /// Whether slots, percentages, unit and salt are fixed because a member is active.
    pub locked: bool,
}

/// One version of a group.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupVersion {
    #[serde(flatten)]
    pub meta: super::VersionMeta,
    /// The group as it was after this change (only when one version is requested).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<Group>,
}

/// Group use cases.
#[derive(Clone)]
pub struct GroupService {
    pub(crate) core: Core,
}

impl GroupService {
    pub fn create_mutex(
        &self,
        actor: &Actor,
        project: &str,
        req: NewMutexGroup,
    ) -> Result<Saved<Group>> {
        let mut g = new_group(
            actor,
            project,
            GroupKind::MutualExclusion,
            &req.name,
            req.key,
            req.bucketing_salt,
        )?;
        g.description = req.description;
        g.evaluation_mode = req.evaluation_mode;
        g.bucketing_unit = req.bucketing_unit;
        g.slots = slots(&req.slots);
        self.create(actor, g)
    }

    pub fn create_holdout(
        &self,
        actor: &Actor,
        project: &str,
        req: NewHoldout,
    ) -> Result<Saved<Group>> {
        let mut g = new_group(
            actor,
            project,
            GroupKind::Holdout,
            &req.name,
            req.key,
            req.bucketing_salt,
        )?;
        g.description = req.description;
        g.evaluation_mode = req.evaluation_mode;
        g.bucketing_unit = req.bucketing_unit;
        g.percentage = Some(req.percentage);
        g.inclusions = req.inclusions;
        g.exclusions = req.exclusions;
        g.mutex_group = req.mutex_group;
        g.metrics = req.metrics;
        self.create(actor, g)
    }

    fn create(&self, actor: &Actor, mut g: Group) -> Result<Saved<Group>> {
        actor.require(Role::Writer)?;
        let project = g.project.clone();
        let saved = self.core.write(|tx| {
            super::projects::lock(tx, &project)?;
            check_key_free(tx, &project, &g.key)?;
            check_and_normalize(tx, None, &mut g)?;
            let row = group_row(&g)?;
            tx.insert_document(&row)?;
            record(
                tx,
                actor,
                &project,
                g.kind.entity(),
                &g.key,
                1,
                g.created_at,
                "create",
                "created".into(),
                row.doc,
            )?;
            Ok(g)
        })?;
        self.core.changed(&project);
        Ok(Saved {
            value: saved,
            warnings: Vec::new(),
        })
    }

    /// The project's groups of `kind` with their members, archived ones when `archived`.
    pub fn list(&self, project: &str, kind: GroupKind, archived: bool) -> Result<Vec<GroupView>> {
        self.core.read(|tx| {
            super::projects::get(tx, project)?;
            let flags = project_flags(tx, project)?;
            let groups = project_groups(tx, project)?;
            Ok(groups
                .iter()
                .filter(|g| g.kind == kind && g.archived == archived)
                .map(|g| view(g, &flags, &groups))
                .collect())
        })
    }

    /// The group `key` of `kind` with its members.
    pub fn get(&self, project: &str, kind: GroupKind, key: &str) -> Result<GroupView> {
        self.core.read(|tx| {
            let g = load(tx, project, kind, key)?;
            let flags = project_flags(tx, project)?;
            let groups = project_groups(tx, project)?;
            Ok(view(&g, &flags, &groups))
        })
    }

    /// Changes the fields `patch` names.
    pub fn update(
        &self,
        actor: &Actor,
        project: &str,
        key: &str,
        expected: Option<i64>,
        patch: GroupPatch,
    ) -> Result<Saved<Group>> {
        let kind = match &patch {
            GroupPatch::MutualExclusion(_) => GroupKind::MutualExclusion,
            GroupPatch::Holdout(_) => GroupKind::Holdout,
        };
        self.change(actor, project, kind, key, expected, "update", |g, _| {
            apply_patch(g, patch);
            Ok(())
        })
    }

    pub fn archive(
        &self,
        actor: &Actor,
        project: &str,
        kind: GroupKind,
        key: &str,
        expected: Option<i64>,
    ) -> Result<Saved<Group>> {
        self.change(actor, project, kind, key, expected, "archive", |g, src| {
            rules::check_group_archive(src, g)?;
            g.archived = true;
            Ok(())
        })
    }

    pub fn unarchive(
        &self,
        actor: &Actor,
        project: &str,
        kind: GroupKind,
        key: &str,
        expected: Option<i64>,
    ) -> Result<Saved<Group>> {
        self.change(
            actor,
            project,
            kind,
            key,
            expected,
            "unarchive",
            |g, src| {
                rules::check_group_unarchive(src, g)?;
                g.archived = false;
                Ok(())
            },
        )
    }

    /// Versions newest first, `limit` of them before `before` (exclusive) when given.
    pub fn versions(
        &self,
        project: &str,
        kind: GroupKind,
        key: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<GroupVersion>> {
        self.core.read(|tx| {
            load(tx, project, kind, key)?;
            tx.list_history(project, kind.entity(), key, before, limit.clamp(1, 500))?
                .iter()
                .map(|r| version_info(r, false))
                .collect()
        })
    }

    /// One version with the group as it was.
    pub fn version(
        &self,
        project: &str,
        kind: GroupKind,
        key: &str,
        version: i64,
    ) -> Result<GroupVersion> {
        self.core.read(|tx| {
            load(tx, project, kind, key)?;
            match tx.get_history(project, kind.entity(), key, version)? {
                Some(row) => version_info(&row, true),
                None => Err(version_not_found(key, version)),
            }
        })
    }

    /// What changed from version `from` to version `to`.
    pub fn compare(
        &self,
        project: &str,
        kind: GroupKind,
        key: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<Change>> {
        let a = self.version(project, kind, key, from)?.group;
        let b = self.version(project, kind, key, to)?.group;
        match (a, b) {
            (Some(a), Some(b)) => Ok(diff(&doc_value(&a)?, &doc_value(&b)?)),
            _ => Err(version_not_found(key, from)),
        }
    }

    /// Writes the configuration of version `version` as a new version; the archive flag stays
    /// as it is, and the group rules apply as to any change.
    pub fn restore(
        &self,
        actor: &Actor,
        project: &str,
        kind: GroupKind,
        key: &str,
        expected: Option<i64>,
        version: i64,
    ) -> Result<Saved<Group>> {
        let Some(old) = self.version(project, kind, key, version)?.group else {
            return Err(version_not_found(key, version));
        };
        self.change(
            actor,
            project,
            kind,
            key,
            expected,
            "restore",
            move |g, _| {
                let archived = g.archived;
                let (version, created_at, created_by) =
                    (g.version, g.created_at, g.created_by.clone());
                *g = old;
                g.archived = archived;
                g.version = version;
                g.created_at = created_at;
                g.created_by = created_by;
                Ok(())
            },
        )
    }

    /// Loads, changes with `mutate`, validates, checks the rules, and writes a new version.
    #[allow(clippy::too_many_arguments, reason = "the change's coordinates")]
    fn change(
        &self,
        actor: &Actor,
        project: &str,
        kind: GroupKind,
        key: &str,
        expected: Option<i64>,
        action: &'static str,
        mutate: impl FnOnce(&mut Group, &mut dyn rules::FlagSource) -> Result<()>,
    ) -> Result<Saved<Group>> {
        actor.require(Role::Writer)?;
        let saved = self.core.write(|tx| {
            super::projects::lock(tx, project)?;
            let before = load(tx, project, kind, key)?;
            check_version(kind.entity(), key, expected, before.version)?;
            if before.archived && action != "unarchive" {
                return Err(Error::Blocked {
                    code: "group_archived",
                    message: format!("{key:?} is archived; unarchive it before changing it"),
                    field: None,
                    blocking: Vec::new(),
                });
            }
            let mut after = before.clone();
            mutate(
                &mut after,
                &mut TxSource {
                    tx: &mut *tx,
                    project,
                },
            )?;
            check_and_normalize(tx, Some(&before), &mut after)?;
            after.version = before.version + 1;
            after.updated_at = now_ms().max(before.updated_at);
            after.updated_by = actor.name.clone();
            let row = group_row(&after)?;
            tx.update_document(&row, before.version)?;
            super::record_version(
                tx,
                actor,
                super::VersionRef {
                    project,
                    entity: kind.entity(),
                    key,
                    version: after.version,
                    at: after.updated_at,
                    changes: String::new(),
                },
                action,
                (&doc_value(&before)?, &doc_value(&after)?),
                row.doc,
            )?;
            let mut warnings = Vec::new();
            if after.bucketing_salt != before.bucketing_salt
                || after.bucketing_unit != before.bucketing_unit
            {
                warnings.push(
                    "the bucketing changed: users will move between slots or in and out of the holdout"
                        .to_string(),
                );
            }
            Ok(Saved {
                value: after,
                warnings,
            })
        })?;
        self.core.changed(project);
        Ok(saved)
    }
}

fn new_group(
    actor: &Actor,
    project: &str,
    kind: GroupKind,
    name: &str,
    key: Option<String>,
    bucketing_salt: Option<String>,
) -> Result<Group> {
    let prefix = kind.key_prefix();
    let key = key.unwrap_or_else(|| {
        let base = key_from_name(name);
        if base.starts_with(prefix) {
            base
        } else {
            format!("{prefix}{base}")
        }
    });
    let now = now_ms();
    Ok(Group {
        project: project.to_string(),
        key,
        name: name.trim().to_string(),
        description: String::new(),
        kind,
        evaluation_mode: EvaluationMode::Local,
        bucketing_unit: user_id(),
        bucketing_salt: match bucketing_salt {
            Some(s) => s,
            None => salt()?,
        },
        slots: Vec::new(),
        percentage: None,
        inclusions: Inclusion::default(),
        exclusions: Inclusion::default(),
        mutex_group: None,
        metrics: Vec::new(),
        archived: false,
        version: 1,
        created_at: now,
        updated_at: now,
        created_by: actor.name.clone(),
        updated_by: actor.name.clone(),
    })
}

/// Slots numbered in order (validation numbers them again after a patch).
fn slots(specs: &[SlotSpec]) -> Vec<Slot> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let index = u8::try_from(i + 1).unwrap_or(u8::MAX);
            Slot {
                index,
                key: Slot::key_of(index),
                percentage: s.percentage,
            }
        })
        .collect()
}

fn apply_patch(g: &mut Group, patch: GroupPatch) {
    macro_rules! set {
        ($p:ident: $($field:ident),*) => { $( if let Some(v) = $p.$field { g.$field = v; } )* };
    }
    match patch {
        GroupPatch::MutualExclusion(p) => {
            set!(p: name, description, evaluation_mode, bucketing_unit, bucketing_salt);
            if let Some(s) = p.slots {
                g.slots = slots(&s);
            }
        }
        GroupPatch::Holdout(p) => {
            set!(p: name, description, evaluation_mode, bucketing_unit, bucketing_salt, inclusions, exclusions, mutex_group, metrics);
            if let Some(percentage) = p.percentage {
                g.percentage = Some(percentage);
            }
        }
    }
}

/// A new key must not name a flag or another group of the project.
pub(crate) fn check_key_free(tx: &mut dyn Tx, project: &str, key: &str) -> Result<()> {
    let taken = if !is_url_safe_key(key) {
        None
    } else if tx.get_flag(project, key)?.is_some() {
        Some(("flag", "flag_key_taken"))
    } else if tx.get_document(project, GROUPS, key)?.is_some() {
        Some(("group", "group_key_taken"))
    } else {
        None
    };
    match taken {
        Some((what, code)) => Err(Error::Conflict {
            code,
            message: format!(
                "project {project:?} already has a {what} with the key {key:?}; flags and groups share keys, so choose another"
            ),
            field: Some("key".into()),
        }),
        None => Ok(()),
    }
}

/// Field validation, cohort references, and the group rules.
fn check_and_normalize(tx: &mut dyn Tx, before: Option<&Group>, g: &mut Group) -> Result<()> {
    let mut errors = validate_group(g);
    if before.is_some_and(|b| b.key != g.key) {
        errors.push(crate::error::FieldError::new(
            "key",
            "immutable",
            "a group's key cannot change after creation",
        ));
    }
    for (field, inclusion) in [("inclusions", &g.inclusions), ("exclusions", &g.exclusions)] {
        for (k, cohort) in inclusion.cohorts.iter().enumerate() {
            if !is_url_safe_key(cohort) || tx.get_cohort(&g.project, cohort)?.is_none() {
                errors.push(crate::error::FieldError::new(
                    format!("{field}.cohorts[{k}]"),
                    "unknown_cohort",
                    format!(
                        "project {:?} has no cohort {cohort:?}; upload it first",
                        g.project
                    ),
                ));
            }
        }
    }
    for (i, key) in g.metrics.iter().enumerate() {
        match super::metrics::find(tx, &g.project, key)? {
            None => errors.push(crate::error::FieldError::new(
                format!("metrics[{i}]"),
                "unknown_metric",
                format!(
                    "project {:?} has no metric {key:?}; define it first",
                    g.project
                ),
            )),
            Some(m) if m.archived => errors.push(crate::error::FieldError::new(
                format!("metrics[{i}]"),
                "metric_archived",
                format!("the metric {key:?} is archived"),
            )),
            Some(_) => {}
        }
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let project = g.project.clone();
    rules::check_group_save(
        &mut TxSource {
            tx,
            project: &project,
        },
        before,
        g,
    )
}

/// The members of `g` among the project's flags and groups, and whether one is active.
fn view(g: &Group, flags: &[Flag], groups: &[Group]) -> GroupView {
    let active_flag = |f: &Flag| f.state == FlagState::Active && !f.archived;
    let mut members: Vec<GroupMember> = g
        .members(flags, groups)
        .map(|m| {
            let slot = m.slot();
            let (name, kind, evaluation_mode, active) = match m {
                Member::Flag { flag: f, .. } => (
                    &f.name,
                    match f.kind {
                        FlagType::Release => "release",
                        FlagType::Experiment => "experiment",
                    },
                    f.evaluation_mode,
                    active_flag(f),
                ),
                Member::Holdout { holdout: h, .. } => (
                    &h.name,
                    "holdout",
                    h.evaluation_mode,
                    flags
                        .iter()
                        .any(|f| active_flag(f) && f.holdouts.contains(&h.key)),
                ),
            };
            GroupMember {
                key: m.key().to_owned(),
                name: name.clone(),
                kind: kind.to_string(),
                evaluation_mode,
                active,
                slot: slot.map(|s| s.slot),
                shared: slot.is_some_and(|s| s.shared),
            }
        })
        .collect();
    members.sort_by(|a, b| a.key.cmp(&b.key));
    GroupView {
        locked: members.iter().any(|m| m.active),
        group: g.clone(),
        members,
    }
}

/// The store's collection of groups.
pub(crate) const GROUPS: &str = "group";

fn group_row(g: &Group) -> Result<DocumentRow> {
    Ok(DocumentRow {
        project: g.project.clone(),
        collection: GROUPS.to_string(),
        key: g.key.clone(),
        kind: g.kind.as_str().to_string(),
        archived: g.archived,
        doc: doc(g)?,
        version: g.version,
        created_at: g.created_at,
        updated_at: g.updated_at,
    })
}

pub(crate) fn group(row: &DocumentRow) -> Result<Group> {
    from_doc("group", &row.key, &row.doc)
}

/// Every group of a project, archived ones included.
pub(crate) fn project_groups(tx: &mut dyn Tx, project: &str) -> Result<Vec<Group>> {
    tx.list_documents(project, GROUPS, None)?
        .iter()
        .map(group)
        .collect()
}

fn project_flags(tx: &mut dyn Tx, project: &str) -> Result<Vec<Flag>> {
    tx.project_flags(project)?
        .iter()
        .map(super::convert::flag)
        .collect()
}

/// The group `key` of `kind` in `project` (a group of the other kind is not found).
pub(crate) fn load(tx: &mut dyn Tx, project: &str, kind: GroupKind, key: &str) -> Result<Group> {
    let not_found = || Error::NotFound {
        entity: kind.entity(),
        key: key.to_string(),
    };
    if !is_url_safe_key(project) || !is_url_safe_key(key) {
        return Err(not_found());
    }
    match tx.get_document(project, GROUPS, key)? {
        Some(row) if row.kind == kind.as_str() => group(&row),
        _ => Err(not_found()),
    }
}

fn version_info(row: &vexil_store::HistoryRow, with_doc: bool) -> Result<GroupVersion> {
    Ok(GroupVersion {
        meta: super::VersionMeta::of(row),
        group: super::version_document(row, "group version", with_doc)?,
    })
}

fn version_not_found(key: &str, version: i64) -> Error {
    super::version_not_found("group version", key, version)
}
