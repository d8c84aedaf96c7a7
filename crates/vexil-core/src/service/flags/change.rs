//! The one model of change to a flag: every write is a list of typed [`FlagChange`]s applied
//! through [`FlagService::apply`], which checks the version, applies each change in order,
//! validates the result, applies the seed's rules, writes one new version with its history
//! entry (the action named by the change, the changes themselves, the author's comment) and
//! publishes it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    apply_patch, check_version, load, prune_variants, rename_variant, resolve, write_version,
    FlagPatch, FlagService, TxSource,
};
use crate::error::{Error, Result};
use crate::model::{Flag, FlagState, Prerequisite, Rollout, Segment, Variant};
use crate::rules::{self, FlagSource};
use vexil_store::Tx;

use crate::service::{now_ms, Actor, Role, Saved};

/// One change to a flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FlagChange {
    /// Changes the settings `patch` names; the others stay.
    Update {
        patch: Box<FlagPatch>,
    },
    /// Adds a variant at the end (weight 0 everywhere, so nobody moves).
    AddVariant {
        variant: Variant,
    },
    /// Replaces the variant `key`; a new key renames it in weights and inclusions.
    UpdateVariant {
        key: String,
        variant: Variant,
    },
    /// Deletes the variant `key`, with its weights and inclusions.
    DeleteVariant {
        key: String,
    },
    /// Replaces the targeting segments, All Other Users' rollout, or both.
    SetAllocation {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        segments: Option<Vec<Segment>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        all_other_users: Option<Rollout>,
    },
    /// Replaces the prerequisites.
    SetPrerequisites {
        prerequisites: Vec<Prerequisite>,
    },
    /// Serves the flag's targeting (an experiment's analysis window opens).
    Activate,
    /// Serves off to everyone but individual inclusions (an experiment's window closes).
    Deactivate,
    Archive,
    Unarchive,
    /// Writes the configuration of `version` as the new one; the state and archive flag stay.
    Restore {
        version: i64,
    },
}

impl FlagChange {
    /// The history action a version made of this change alone records.
    pub fn action(&self) -> &'static str {
        match self {
            FlagChange::Activate => "activate",
            FlagChange::Deactivate => "deactivate",
            FlagChange::Archive => "archive",
            FlagChange::Unarchive => "unarchive",
            FlagChange::Restore { .. } => "restore",
            _ => "update",
        }
    }

    /// Applies the change to `f`, reading other flags and groups through `src`; returns what
    /// the author should know (warnings).
    fn apply(
        self,
        f: &mut Flag,
        src: &mut dyn FlagSource,
        restored: Option<Flag>,
    ) -> Result<Vec<String>> {
        match self {
            FlagChange::Update { patch } => apply_patch(f, *patch),
            FlagChange::AddVariant { variant } => {
                f.variants.push(variant);
                Ok(Vec::new())
            }
            FlagChange::UpdateVariant { key, variant } => {
                let Some(slot) = f.variants.iter_mut().find(|v| v.key == key) else {
                    return Err(no_variant(&key));
                };
                let old = std::mem::replace(slot, variant);
                let new_key = slot.key.clone();
                if new_key != old.key {
                    rename_variant(f, &old.key, &new_key);
                }
                Ok(Vec::new())
            }
            FlagChange::DeleteVariant { key } => {
                let before = f.variants.len();
                f.variants.retain(|v| v.key != key);
                if f.variants.len() == before {
                    return Err(no_variant(&key));
                }
                prune_variants(f, true, true);
                Ok(Vec::new())
            }
            FlagChange::SetAllocation {
                segments,
                all_other_users,
            } => {
                if let Some(segments) = segments {
                    f.segments = segments;
                }
                if let Some(rollout) = all_other_users {
                    f.all_other_users = rollout;
                }
                Ok(Vec::new())
            }
            FlagChange::SetPrerequisites { prerequisites } => {
                f.prerequisites = prerequisites;
                Ok(Vec::new())
            }
            FlagChange::Activate => {
                rules::check_activate(src, f)?;
                f.state = FlagState::Active;
                if let Some(settings) = &mut f.experiment {
                    // The analysis window opens at the first activation and stays open while
                    // the experiment runs.
                    settings.start.get_or_insert_with(now_ms);
                    settings.end = None;
                }
                Ok(if f.deployments.is_empty() {
                    vec!["the flag is attached to no deployment: no SDK serves it until you attach one".to_string()]
                } else {
                    Vec::new()
                })
            }
            FlagChange::Deactivate => {
                f.state = FlagState::Inactive;
                if let Some(settings) = &mut f.experiment {
                    settings.end = Some(now_ms());
                }
                let active: Vec<String> = src
                    .dependents(&f.key)?
                    .into_iter()
                    .filter(|d| !d.archived && d.state == FlagState::Active)
                    .map(|d| d.key)
                    .collect();
                Ok(if active.is_empty() {
                    Vec::new()
                } else {
                    vec![format!(
                        "{} depend{} on this flag and will serve off to everyone but their individual inclusions while it is inactive",
                        active.join(", "),
                        if active.len() == 1 { "s" } else { "" }
                    )]
                })
            }
            FlagChange::Archive => {
                rules::check_archive(src, f)?;
                f.archived = true;
                Ok(Vec::new())
            }
            FlagChange::Unarchive => {
                rules::check_unarchive(src, f)?;
                f.archived = false;
                Ok(Vec::new())
            }
            FlagChange::Restore { version } => {
                let Some(old) = restored else {
                    return Err(super::history::version_not_found(&f.key, version));
                };
                restore(f, old);
                Ok(vec![format!(
                    "restored the configuration of version {version}"
                )])
            }
        }
    }
}

fn no_variant(key: &str) -> Error {
    Error::NotFound {
        entity: "variant",
        key: key.to_string(),
    }
}

/// The configuration of `old` on `f` (not its state, archive flag or identity).
fn restore(f: &mut Flag, old: Flag) {
    f.name = old.name;
    f.description = old.description;
    f.experiment_key = old.experiment_key;
    f.experiment = old.experiment;
    f.evaluation_mode = old.evaluation_mode;
    f.bucketing_unit = old.bucketing_unit;
    f.bucketing_salt = old.bucketing_salt;
    f.tags = old.tags;
    f.deployments = old.deployments;
    f.variants = old.variants;
    f.segments = old.segments;
    f.all_other_users = old.all_other_users;
    f.inclusions = old.inclusions;
    f.prerequisites = old.prerequisites;
    f.mutex_group = old.mutex_group;
    f.holdouts = old.holdouts;
    f.imported_config = old.imported_config;
}

impl FlagService {
    /// Applies `changes` in order to flag `key` at version `expected` (any version when
    /// `None`) and writes the result as one new version. The whole list is refused when one
    /// change, the result's validation or a rule refuses it; nothing is written then. When
    /// the project's approval policy covers the flag, changes go through a reviewed draft
    /// instead, and this refuses them.
    pub fn apply(
        &self,
        actor: &Actor,
        project: Option<&str>,
        key: &str,
        expected: Option<i64>,
        changes: Vec<FlagChange>,
    ) -> Result<Saved<Flag>> {
        actor.require(Role::Writer)?;
        let project = self.core.read(|tx| resolve(tx, project, key))?;
        let saved = self.core.write(|tx| {
            super::super::projects::lock(tx, &project)?;
            // What the change makes of the flag decides too (activating it, attaching it to a
            // covered deployment).
            let (before, after, _) = build(tx, &project, key, expected, changes.clone())?;
            super::super::drafts::refuse_unreviewed(tx, &before, &after)?;
            apply_in(tx, actor, &project, key, expected, changes)
        })?;
        self.core.changed(&project);
        Ok(saved)
    }
}

/// What `changes` make of flag `key` at version `expected`: the flag before and after, and the
/// warnings, without writing anything (the result is not validated yet).
pub(crate) fn build(
    tx: &mut dyn Tx,
    project: &str,
    key: &str,
    expected: Option<i64>,
    changes: Vec<FlagChange>,
) -> Result<(Flag, Flag, Vec<String>)> {
    if changes.is_empty() {
        return Err(Error::invalid(
            "changes",
            "no_changes",
            "give at least one change",
        ));
    }
    let before = load(tx, project, key)?;
    check_version("flag", key, expected, before.version)?;
    if before.archived && !matches!(changes.first(), Some(FlagChange::Unarchive)) {
        return Err(Error::Blocked {
            code: "flag_archived",
            message: format!("{key:?} is archived; unarchive it before changing it"),
            field: None,
            blocking: Vec::new(),
        });
    }
    let mut after = before.clone();
    let mut warnings = Vec::new();
    for change in changes {
        let restored = match &change {
            FlagChange::Restore { version } => {
                super::history::stored_version(tx, project, key, *version)?
            }
            _ => None,
        };
        warnings.extend(change.apply(
            &mut after,
            &mut TxSource {
                tx: &mut *tx,
                project,
            },
            restored,
        )?);
    }
    if after.bucketing_salt != before.bucketing_salt {
        warnings.push("the bucketing salt changed: users will move between variants".to_string());
    }
    if after.bucketing_unit != before.bucketing_unit {
        warnings.push("the bucketing unit changed: users will move between variants".to_string());
    }
    Ok((before, after, warnings))
}

/// What `changes` would make of flag `key`, validated and checked against the rules like a
/// write, without writing: the flag before and after, and the warnings.
pub(crate) fn preview_in(
    tx: &mut dyn Tx,
    project: &str,
    key: &str,
    expected: Option<i64>,
    changes: Vec<FlagChange>,
) -> Result<(Flag, Flag, Vec<String>)> {
    let (before, mut after, warnings) = build(tx, project, key, expected, changes)?;
    super::check_and_normalize(tx, Some(&before), &mut after)?;
    Ok((before, after, warnings))
}

/// [`FlagService::apply`] inside a write transaction that holds the project's lock, without
/// the approval policy's check (a published draft has passed it).
pub(crate) fn apply_in(
    tx: &mut dyn Tx,
    actor: &Actor,
    project: &str,
    key: &str,
    expected: Option<i64>,
    changes: Vec<FlagChange>,
) -> Result<Saved<Flag>> {
    actor.require(Role::Writer)?;
    let action = match changes.as_slice() {
        [one] => one.action(),
        _ => "update",
    };
    let recorded = serde_json::to_string(&changes).map_err(|e| Error::Internal(e.into()))?;
    let (before, after, warnings) = build(tx, project, key, expected, changes)?;
    write_version(tx, actor, &before, after, action, warnings, recorded)
}
