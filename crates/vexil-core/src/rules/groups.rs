//! The rules of mutual-exclusion and holdout groups, the prerequisite rules extended to them:
//! a member and its group are in the same project; a local flag only joins local groups; a slot
//! holds one member unless the member asks to share it; slots, percentages, the bucketing unit
//! and the salt are fixed while a member is active (changing them would move users between
//! experiments); a group with active members cannot be archived, and a member cannot be
//! activated while one of its groups is archived. Every refusal names what blocks it.
//!
//! Cycles cannot pass through groups: a group depends on nothing but, for a holdout, a
//! mutual-exclusion group, which depends on nothing.

use super::{field_blocked, FlagSource};
use crate::error::{Error, FieldError, Result};
use crate::model::{EvaluationMode, Flag, FlagState, Group, GroupKind, SlotRef};

/// A document that can sit in a group: a flag, or a holdout in a mutual-exclusion slot.
pub(super) struct Candidate<'a> {
    pub key: &'a str,
    pub project: &'a str,
    pub mode: EvaluationMode,
}

/// Checks the groups a flag about to be saved belongs to. Joining (or moving) is checked
/// against the groups' state; staying only against what cannot drift (they exist, modes).
pub(super) fn check_flag_groups(
    src: &mut dyn FlagSource,
    before: Option<&Flag>,
    flag: &Flag,
) -> Result<()> {
    let member = Candidate {
        key: &flag.key,
        project: &flag.project,
        mode: flag.evaluation_mode,
    };
    let mut errors = Vec::new();
    for (i, key) in flag.holdouts.iter().enumerate() {
        let joined = before.is_none_or(|b| !b.holdouts.contains(key));
        let at = format!("holdouts[{i}]");
        match find(src, key, GroupKind::Holdout, &member, &at)? {
            Err(e) => errors.push(e),
            Ok(group) => check_join(&group, &member, joined, &at)?,
        }
    }
    if let Some(slot) = &flag.mutex_group {
        let before_slot = before.and_then(|b| b.mutex_group.as_ref());
        check_slot(src, &member, before_slot, slot, &mut errors)?;
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}

/// The mutual-exclusion slot of a flag or holdout: the group exists, the slot exists, and a
/// member joining it (or asking to share it anew) finds it free or shares it explicitly.
pub(super) fn check_slot(
    src: &mut dyn FlagSource,
    member: &Candidate<'_>,
    before: Option<&SlotRef>,
    slot: &SlotRef,
    errors: &mut Vec<FieldError>,
) -> Result<()> {
    let group = match find(
        src,
        &slot.group,
        GroupKind::MutualExclusion,
        member,
        "mutex_group.group",
    )? {
        Err(e) => {
            errors.push(e);
            return Ok(());
        }
        Ok(group) => group,
    };
    let moved = before.is_none_or(|b| b.group != slot.group || b.slot != slot.slot);
    check_join(&group, member, moved, "mutex_group.group")?;
    if group.slot(slot.slot).is_none() {
        errors.push(FieldError::new(
            "mutex_group.slot",
            "unknown_slot",
            format!(
                "{:?} has no slot {} (its slots: {})",
                group.key,
                slot.slot,
                (1..=group.slots.len())
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
        return Ok(());
    }
    if !moved && before.is_some_and(|b| b.shared == slot.shared) {
        return Ok(());
    }
    let occupants: Vec<String> = slot_members(src, &group)?
        .into_iter()
        .filter(|(key, at)| key != member.key && *at == slot.slot)
        .map(|(key, _)| key)
        .collect();
    if !occupants.is_empty() && !slot.shared {
        return Err(field_blocked(
            "mutex_group.slot".to_string(),
            "slot_taken",
            format!(
                "slot {} of {:?} already holds {}; choose a free slot, or share this one explicitly (\"shared\": true) if the experiments may overlap",
                slot.slot,
                group.key,
                occupants.join(", ")
            ),
            occupants,
        ));
    }
    Ok(())
}

/// The group `key` of `kind` in the member's project, or the field error saying it is not.
fn find(
    src: &mut dyn FlagSource,
    key: &str,
    kind: GroupKind,
    member: &Candidate<'_>,
    at: &str,
) -> Result<std::result::Result<Group, FieldError>> {
    Ok(match src.group(key)? {
        Some(group) if group.kind == kind => Ok(group),
        _ => Err(FieldError::new(
            at,
            match kind {
                GroupKind::Holdout => "unknown_holdout",
                GroupKind::MutualExclusion => "unknown_mutex_group",
            },
            format!(
                "there is no {} {key:?} in project {:?}; groups must be in the member's project",
                kind.label(),
                member.project
            ),
        )),
    })
}

/// An archived group takes no new member; a local member only sits in a local group.
fn check_join(group: &Group, member: &Candidate<'_>, joined: bool, at: &str) -> Result<()> {
    if joined && group.archived {
        return Err(field_blocked(
            at.to_string(),
            "group_archived",
            format!(
                "{:?} is archived and takes no new members; unarchive it first",
                group.key
            ),
            vec![group.key.clone()],
        ));
    }
    if member.mode == EvaluationMode::Local && group.evaluation_mode == EvaluationMode::Remote {
        return Err(field_blocked(
            at.to_string(),
            "incompatible_evaluation_mode",
            format!(
                "{:?} is evaluated locally and can only join local groups, but {:?} is evaluated remotely",
                member.key, group.key
            ),
            vec![group.key.clone()],
        ));
    }
    Ok(())
}

/// The unarchived members of mutual-exclusion group `group` with their slots: flags, and
/// holdouts placed in its slots ([`Group::members`] over the flags that depend on it).
fn slot_members(src: &mut dyn FlagSource, group: &Group) -> Result<Vec<(String, u8)>> {
    let (flags, holdouts) = (src.dependents(&group.key)?, src.holdouts_in(&group.key)?);
    Ok(group
        .members(&flags, &holdouts)
        .filter_map(|m| Some((m.key().to_owned(), m.slot()?.slot)))
        .collect())
}

/// The active, unarchived flags a group governs: its own members and, for a mutual-exclusion
/// group, the members of the holdouts in its slots.
pub(crate) fn active_members(src: &mut dyn FlagSource, group: &Group) -> Result<Vec<String>> {
    let mut keys = vec![group.key.clone()];
    if group.kind == GroupKind::MutualExclusion {
        keys.extend(
            src.holdouts_in(&group.key)?
                .into_iter()
                .filter(|h| !h.archived)
                .map(|h| h.key),
        );
    }
    let mut out = Vec::new();
    for key in keys {
        for f in src.dependents(&key)? {
            if !f.archived && f.state == FlagState::Active && !out.contains(&f.key) {
                out.push(f.key);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Checks a group about to be saved (`before` is the stored version, `None` on create).
pub fn check_group_save(
    src: &mut dyn FlagSource,
    before: Option<&Group>,
    group: &Group,
) -> Result<()> {
    if let Some(slot) = &group.mutex_group {
        let member = Candidate {
            key: &group.key,
            project: &group.project,
            mode: group.evaluation_mode,
        };
        let mut errors = Vec::new();
        check_slot(
            src,
            &member,
            before.and_then(|b| b.mutex_group.as_ref()),
            slot,
            &mut errors,
        )?;
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
    }
    let Some(before) = before else {
        return Ok(());
    };
    let mut moved = Vec::new();
    if before.slots != group.slots {
        moved.push("slots");
    }
    if before.percentage != group.percentage {
        moved.push("percentage");
    }
    if before.bucketing_unit != group.bucketing_unit {
        moved.push("bucketing_unit");
    }
    if before.bucketing_salt != group.bucketing_salt {
        moved.push("bucketing_salt");
    }
    if before.mutex_group != group.mutex_group {
        moved.push("mutex_group");
    }
    if let Some(&field) = moved.first() {
        let active = active_members(src, before)?;
        if !active.is_empty() {
            return Err(field_blocked(
                field.to_string(),
                "group_in_use",
                format!(
                    "the {} of {:?} cannot change while {} {} active: it would move users between experiments; deactivate {} first",
                    moved.join(", ").replace('_', " "),
                    group.key,
                    active.join(", "),
                    if active.len() == 1 { "is" } else { "are" },
                    if active.len() == 1 { "it" } else { "them" },
                ),
                active,
            ));
        }
    }
    if group.kind == GroupKind::MutualExclusion && group.slots.len() < before.slots.len() {
        let orphans: Vec<String> = slot_members(src, group)?
            .into_iter()
            .filter(|&(_, slot)| usize::from(slot) > group.slots.len())
            .map(|(key, _)| key)
            .collect();
        if !orphans.is_empty() {
            return Err(field_blocked(
                "slots".to_string(),
                "slot_in_use",
                format!(
                    "{:?} cannot drop to {} slot{}: {} still sit{} in the slots removed; move {} first",
                    group.key,
                    group.slots.len(),
                    if group.slots.len() == 1 { "" } else { "s" },
                    orphans.join(", "),
                    if orphans.len() == 1 { "s" } else { "" },
                    if orphans.len() == 1 { "it" } else { "them" },
                ),
                orphans,
            ));
        }
    }
    if group.evaluation_mode == EvaluationMode::Remote {
        let mut local: Vec<String> = src
            .dependents(&group.key)?
            .into_iter()
            .filter(|f| !f.archived && f.evaluation_mode == EvaluationMode::Local)
            .map(|f| f.key)
            .collect();
        local.extend(
            src.holdouts_in(&group.key)?
                .into_iter()
                .filter(|h| !h.archived && h.evaluation_mode == EvaluationMode::Local)
                .map(|h| h.key),
        );
        if !local.is_empty() {
            return Err(field_blocked(
                "evaluation_mode".to_string(),
                "incompatible_evaluation_mode",
                format!(
                    "{:?} cannot be evaluated remotely: local members can only sit in local groups, and {} {} local",
                    group.key,
                    local.join(", "),
                    if local.len() == 1 { "is" } else { "are" },
                ),
                local,
            ));
        }
    }
    Ok(())
}

/// A group cannot be archived while it governs active flags, nor a mutual-exclusion group
/// while holdouts sit in its slots.
pub fn check_group_archive(src: &mut dyn FlagSource, group: &Group) -> Result<()> {
    let active = active_members(src, group)?;
    if !active.is_empty() {
        return Err(Error::blocked(
            "has_active_members",
            format!(
                "{:?} cannot be archived while {} {} active in it; deactivate {} or take {} out of the group first",
                group.key,
                active.join(", "),
                if active.len() == 1 { "is" } else { "are" },
                if active.len() == 1 { "it" } else { "them" },
                if active.len() == 1 { "it" } else { "them" },
            ),
            active,
        ));
    }
    let holdouts: Vec<String> = src
        .holdouts_in(&group.key)?
        .into_iter()
        .filter(|h| !h.archived)
        .map(|h| h.key)
        .collect();
    if !holdouts.is_empty() {
        return Err(Error::blocked(
            "has_members",
            format!(
                "{:?} cannot be archived while the holdout group{} {} sit{} in its slots; archive or move {} first",
                group.key,
                if holdouts.len() == 1 { "" } else { "s" },
                holdouts.join(", "),
                if holdouts.len() == 1 { "s" } else { "" },
                if holdouts.len() == 1 { "it" } else { "them" },
            ),
            holdouts,
        ));
    }
    Ok(())
}

/// A holdout cannot come back from the archive while its mutual-exclusion group is archived.
pub fn check_group_unarchive(src: &mut dyn FlagSource, group: &Group) -> Result<()> {
    archived_groups(src, group.mutex_group.iter().map(|m| m.group.as_str()))
        .and_then(|archived| blocked_by_archived(&group.key, "unarchived", archived))
}

/// The groups among `keys` that are archived or gone.
pub(super) fn archived_groups<'a>(
    src: &mut dyn FlagSource,
    keys: impl Iterator<Item = &'a str>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for key in keys {
        if src.group(key)?.is_none_or(|g| g.archived) {
            out.push(key.to_string());
        }
    }
    Ok(out)
}

/// `group_archived`, naming the archived groups, unless there are none.
pub(super) fn blocked_by_archived(key: &str, verb: &str, archived: Vec<String>) -> Result<()> {
    if archived.is_empty() {
        return Ok(());
    }
    Err(Error::blocked(
        "group_archived",
        format!(
            "{key:?} cannot be {verb} while its group{} {} {} archived; unarchive {} or leave {} first",
            if archived.len() == 1 { "" } else { "s" },
            archived.join(", "),
            if archived.len() == 1 { "is" } else { "are" },
            if archived.len() == 1 { "it" } else { "them" },
            if archived.len() == 1 { "it" } else { "them" },
        ),
        archived,
    ))
}
