//! Field validation of a group document, and of a flag's (or a holdout's) place in groups.
//! Rules that involve other documents (the group exists, is not archived, the slot is free)
//! live in [`crate::rules`].

use std::collections::HashSet;

use super::{check_list, check_text, check_unit, inclusion_ids_error};
use crate::error::FieldError;
use crate::keys::is_url_safe_key;
use crate::model::{Group, GroupKind, Inclusion, Slot, SlotRef};

/// The most slots a mutual-exclusion group has.
pub const MAX_SLOTS: usize = 20;
/// The most holdout groups one flag belongs to.
pub const MAX_HOLDOUTS_PER_FLAG: usize = 20;

/// Normalizes the slots (numbered 1…n with their keys, in order) and returns every field error
/// of `group`, in document order.
pub fn validate_group(group: &mut Group) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let e = &mut errors;
    let prefix = group.kind.key_prefix();
    if !is_url_safe_key(&group.key) || !group.key.starts_with(prefix) || group.key == prefix {
        e.push(FieldError::new(
            "key",
            "invalid_key",
            format!(
                "a {} key starts with {prefix:?}, followed by letters, digits, '.', '_' and '-' (128 characters in all at most)",
                group.kind.label()
            ),
        ));
    }
    check_text(e, "name", &group.name, 255, true);
    check_text(e, "description", &group.description, 10_000, false);
    check_unit(e, "bucketing_unit", &group.bucketing_unit);
    check_text(e, "bucketing_salt", &group.bucketing_salt, 128, true);
    match group.kind {
        GroupKind::MutualExclusion => check_mutex(e, group),
        GroupKind::Holdout => check_holdout(e, group),
    }
    errors
}

fn check_mutex(e: &mut Vec<FieldError>, group: &mut Group) {
    if group.slots.is_empty() || group.slots.len() > MAX_SLOTS {
        e.push(FieldError::new(
            "slots",
            "slot_count",
            format!("a mutual-exclusion group has 1 to {MAX_SLOTS} slots"),
        ));
    }
    let mut total = 0u32;
    for (i, slot) in group.slots.iter_mut().enumerate() {
        // Slots are numbered by position; the key follows the number.
        slot.index = u8::try_from(i + 1).unwrap_or(u8::MAX);
        slot.key = Slot::key_of(slot.index);
        if !(1..=100).contains(&slot.percentage) {
            e.push(FieldError::new(
                format!("slots[{i}].percentage"),
                "out_of_range",
                "a slot's percentage is an integer from 1 to 100",
            ));
        }
        total += u32::from(slot.percentage);
    }
    if total > 100 {
        e.push(FieldError::new(
            "slots",
            "over_allocated",
            format!("the slots' percentages total {total}; they may total at most 100 (the rest of the users are unallocated)"),
        ));
    }
    for (field, present) in [
        ("metrics", !group.metrics.is_empty()),
        ("percentage", group.percentage.is_some()),
        ("inclusions", !group.inclusions.is_empty()),
        ("exclusions", !group.exclusions.is_empty()),
        ("mutex_group", group.mutex_group.is_some()),
    ] {
        if present {
            e.push(FieldError::new(
                field,
                "not_for_mutual_exclusion",
                format!("{field} is a field of holdout groups; a mutual-exclusion group has slots"),
            ));
        }
    }
}

fn check_holdout(e: &mut Vec<FieldError>, group: &Group) {
    match group.percentage {
        Some(p) if (1..=99).contains(&p) => {}
        _ => e.push(FieldError::new(
            "percentage",
            "out_of_range",
            "a holdout group holds out an integer percentage of users from 1 to 99",
        )),
    }
    if !group.slots.is_empty() {
        e.push(FieldError::new(
            "slots",
            "not_for_holdout",
            "slots are a field of mutual-exclusion groups; a holdout group has a percentage",
        ));
    }
    check_ids(e, "inclusions", &group.inclusions);
    check_ids(e, "exclusions", &group.exclusions);
    let excluded: HashSet<&String> = group.exclusions.ids.iter().collect();
    for (i, id) in group.inclusions.ids.iter().enumerate() {
        if excluded.contains(id) {
            e.push(FieldError::new(
                format!("inclusions.ids[{i}]"),
                "included_and_excluded",
                format!("{id:?} is both always and never held out; keep it in one list"),
            ));
        }
    }
    if let Some(slot) = &group.mutex_group {
        check_slot_ref(e, "mutex_group", slot);
    }
    let mut seen = HashSet::new();
    for (i, m) in group.metrics.iter().enumerate() {
        if !seen.insert(m) {
            e.push(FieldError::new(
                format!("metrics[{i}]"),
                "duplicate",
                format!("{m:?} is listed twice"),
            ));
        }
    }
    if group.metrics.len() > 50 {
        e.push(FieldError::new(
            "metrics",
            "too_many",
            "a holdout has at most 50 metrics",
        ));
    }
}

fn check_ids(e: &mut Vec<FieldError>, at: &str, inclusion: &Inclusion) {
    for (i, id) in inclusion.ids.iter().enumerate() {
        e.extend(inclusion_ids_error(&format!("{at}.ids[{i}]"), id));
    }
    check_list(e, &format!("{at}.cohorts"), &inclusion.cohorts, 128);
}

fn check_slot_ref(e: &mut Vec<FieldError>, at: &str, slot: &SlotRef) {
    if !slot
        .group
        .starts_with(GroupKind::MutualExclusion.key_prefix())
        || !is_url_safe_key(&slot.group)
    {
        e.push(FieldError::new(
            format!("{at}.group"),
            "not_a_mutex_group",
            format!(
                "{:?} is not a mutual-exclusion group key (they start with \"mutex-\")",
                slot.group
            ),
        ));
    }
    if slot.slot == 0 || usize::from(slot.slot) > MAX_SLOTS {
        e.push(FieldError::new(
            format!("{at}.slot"),
            "unknown_slot",
            format!("a slot is numbered from 1 to {MAX_SLOTS}"),
        ));
    }
}

/// A flag's memberships: holdout keys well-formed and listed once, a well-formed slot, and
/// none at all for an imported flag (its config says what it depends on).
pub(super) fn check_memberships(
    e: &mut Vec<FieldError>,
    key: &str,
    imported: bool,
    holdouts: &[String],
    mutex_group: Option<&SlotRef>,
) {
    if imported && (!holdouts.is_empty() || mutex_group.is_some()) {
        e.push(FieldError::new(
            if holdouts.is_empty() { "mutex_group" } else { "holdouts" },
            "imported_flag",
            format!("{key:?} was imported from Amplitude: its config names what it depends on, so it cannot join groups"),
        ));
        return;
    }
    if holdouts.len() > MAX_HOLDOUTS_PER_FLAG {
        e.push(FieldError::new(
            "holdouts",
            "too_many",
            format!("a flag belongs to at most {MAX_HOLDOUTS_PER_FLAG} holdout groups"),
        ));
    }
    let mut seen = HashSet::new();
    for (i, holdout) in holdouts.iter().enumerate() {
        if !holdout.starts_with(GroupKind::Holdout.key_prefix()) || !is_url_safe_key(holdout) {
            e.push(FieldError::new(
                format!("holdouts[{i}]"),
                "not_a_holdout",
                format!("{holdout:?} is not a holdout group key (they start with \"holdout-\")"),
            ));
        } else if !seen.insert(holdout) {
            e.push(FieldError::new(
                format!("holdouts[{i}]"),
                "duplicate",
                format!("{holdout:?} is listed twice"),
            ));
        }
    }
    if let Some(slot) = mutex_group {
        check_slot_ref(e, "mutex_group", slot);
    }
}
