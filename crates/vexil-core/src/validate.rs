//! Field validation of a flag document on its own (rules that involve other flags, deployments
//! or cohorts live in [`crate::rules`] and the services). Every error names the field by its
//! JSON path so the API and the console can show it next to the input. The model's limits
//! ([`crate::limits`]) are checked first, by counting alone, so an oversized document is
//! refused before any of its values is parsed or compiled.

use std::collections::HashSet;

use vexil_eval::{is_version, Op};

use crate::error::FieldError;
use crate::keys::is_url_safe_key;
use crate::limits::{
    is_regex, json_bytes, Violations, CONDITIONS_PER_SEGMENT, CONFIG_BYTES, REGEXES_PER_FLAG,
    SEGMENTS_PER_FLAG, VALUES_PER_CONDITION, VARIANTS_PER_FLAG,
};
mod group;
mod metric;

pub use group::{validate_group, MAX_HOLDOUTS_PER_FLAG, MAX_SLOTS};
pub use metric::{validate_metric, MAX_FILTERS, MAX_WINDOW_HOURS};

use crate::model::{Condition, Flag, Rollout, Target, OFF, RESERVED_SEGMENT_NAMES, USER_FIELDS};

/// Normalizes what has a canonical form (an empty variant value becomes the key) and returns
/// every field error of `flag`, in document order. A document past the model's limits gets only
/// those errors: they are checked first, and the other rules would read all of it.
pub fn validate_flag(flag: &mut Flag) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if !check_limits(flag, &mut errors) {
        return errors;
    }
    let label = label(flag);
    let e = &mut errors;
    if !is_url_safe_key(&flag.key) {
        e.push(FieldError::new(
            "key",
            "invalid_key",
            "a flag key is 1 to 128 characters of letters, digits, '.', '_' and '-'",
        ));
    }
    check_text(e, "name", &flag.name, 255, true);
    check_text(e, "description", &flag.description, 10_000, false);
    check_unit(e, "bucketing_unit", &flag.bucketing_unit);
    check_text(e, "bucketing_salt", &flag.bucketing_salt, 128, true);
    if let Some(key) = &flag.experiment_key {
        check_text(e, "experiment_key", key, 128, true);
    }
    check_list(e, "tags", &flag.tags, 64);
    check_list(e, "deployments", &flag.deployments, 128);
    if flag.imported_config.is_none() {
        check_variants(e, flag);
        for (i, segment) in flag.segments.iter().enumerate() {
            let at = format!("segments[{i}]");
            check_text(e, &format!("{at}.name"), &segment.name, 255, true);
            if RESERVED_SEGMENT_NAMES.contains(&segment.name.as_str()) {
                e.push(FieldError::new(
                    format!("{at}.name"),
                    "reserved_segment_name",
                    format!(
                        "the segment name {:?} is reserved for segments Vexil adds itself",
                        segment.name
                    ),
                ));
            }
            for (j, condition) in segment.conditions.iter().enumerate() {
                check_condition(e, &label, &format!("{at}.conditions[{j}]"), condition);
            }
            check_rollout(e, &at, &segment.rollout(), flag);
        }
        check_rollout(e, "all_other_users", &flag.all_other_users, flag);
        check_inclusions(e, flag);
    }
    check_prerequisites(e, flag);
    metric::check_experiment(e, flag);
    group::check_memberships(
        e,
        &flag.key,
        flag.imported_config.is_some(),
        &flag.holdouts,
        flag.mutex_group.as_ref(),
    );
    errors
}

/// How limit violations name the flag: `flag "checkout-v2"`.
fn label(flag: &Flag) -> String {
    format!("flag {:?}", flag.key)
}

/// Checks the document against the model's limits by counting, and returns whether it is
/// within all of them. An imported flag's targeting is its config, whose limits the import
/// checks when the config is set; here only its size is.
fn check_limits(flag: &Flag, errors: &mut Vec<FieldError>) -> bool {
    let mut v = Violations::new(errors, "", label(flag));
    let bytes = match &flag.imported_config {
        Some(config) => config.json().len(),
        None => json_bytes(flag),
    };
    let mut within = v.count(&CONFIG_BYTES, "", bytes);
    if flag.imported_config.is_some() {
        return within;
    }
    within &= v.count(&VARIANTS_PER_FLAG, "variants", flag.variants.len());
    within &= v.count(&SEGMENTS_PER_FLAG, "segments", flag.segments.len());
    let mut regexes = 0;
    for (i, segment) in flag.segments.iter().enumerate() {
        let at = format!("segments[{i}].conditions");
        within &= v.count(&CONDITIONS_PER_SEGMENT, &at, segment.conditions.len());
        for (j, condition) in segment.conditions.iter().enumerate() {
            let field = format!("{at}[{j}].values");
            within &= v.count(&VALUES_PER_CONDITION, &field, condition.values.len());
            if is_regex(&condition.op) {
                regexes += condition.values.len();
            }
        }
    }
    within &= v.count(&REGEXES_PER_FLAG, "segments", regexes);
    // An inclusion compiles to one condition on the ids and one on the cohorts.
    for (variant, inclusion) in &flag.inclusions {
        let at = format!("inclusions.{variant}");
        within &= v.count(
            &VALUES_PER_CONDITION,
            &format!("{at}.ids"),
            inclusion.ids.len(),
        );
        within &= v.count(
            &VALUES_PER_CONDITION,
            &format!("{at}.cohorts"),
            inclusion.cohorts.len(),
        );
    }
    within
}

fn check_text(e: &mut Vec<FieldError>, field: &str, value: &str, max: usize, required: bool) {
    e.extend(text_error(field, value, max, required));
}

/// The error of a text field, if any: empty when required, longer than `max` characters, or
/// holding control characters (long texts, `max` >= 10,000, may hold line breaks and tabs).
pub fn text_error(field: &str, value: &str, max: usize, required: bool) -> Option<FieldError> {
    let multiline = max >= 10_000;
    if required && value.trim().is_empty() {
        Some(FieldError::new(
            field,
            "required",
            format!("{field} must not be empty"),
        ))
    } else if value.chars().count() > max {
        Some(FieldError::new(
            field,
            "too_long",
            format!("{field} is longer than {max} characters"),
        ))
    } else if value
        .chars()
        .any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
    {
        Some(FieldError::new(
            field,
            "control_character",
            format!(
                "{field} must not contain control characters{}",
                if multiline {
                    " other than line breaks and tabs"
                } else {
                    ""
                }
            ),
        ))
    } else {
        None
    }
}

fn check_list(e: &mut Vec<FieldError>, field: &str, values: &[String], max: usize) {
    let mut seen = HashSet::new();
    for (i, value) in values.iter().enumerate() {
        check_text(e, &format!("{field}[{i}]"), value, max, true);
        if !seen.insert(value) {
            e.push(FieldError::new(
                format!("{field}[{i}]"),
                "duplicate",
                format!("{value:?} appears twice in {field}"),
            ));
        }
    }
}

fn check_unit(e: &mut Vec<FieldError>, field: &str, unit: &str) {
    if unit.trim().is_empty() || unit.trim() != unit || unit.len() > 128 {
        e.push(FieldError::new(
            field,
            "invalid_bucketing_unit",
            "the bucketing unit is user_id, device_id, another built-in user field, or a group type such as company",
        ));
    }
}

fn check_variants(e: &mut Vec<FieldError>, flag: &mut Flag) {
    if flag.variants.is_empty() {
        e.push(FieldError::new(
            "variants",
            "no_variants",
            "a flag needs at least one variant",
        ));
    }
    let mut seen = HashSet::new();
    for (i, variant) in flag.variants.iter_mut().enumerate() {
        let field = format!("variants[{i}].key");
        if variant.key.eq_ignore_ascii_case(OFF) {
            e.push(FieldError::new(
                field,
                "reserved_variant_key",
                format!(
                    "{:?} is reserved: `off` is what users outside the rollout get, so no variant may be called off in any letter case",
                    variant.key
                ),
            ));
        } else if variant.key == "(none)" {
            e.push(FieldError::new(
                field,
                "reserved_variant_key",
                "\"(none)\" is not a valid variant key",
            ));
        } else if !is_url_safe_key(&variant.key) {
            e.push(FieldError::new(
                field,
                "invalid_key",
                "a variant key is 1 to 128 characters of letters, digits, '.', '_' and '-'",
            ));
        } else if !seen.insert(variant.key.to_ascii_lowercase()) {
            e.push(FieldError::new(
                field,
                "duplicate_variant_key",
                format!("another variant already has the key {:?} (keys are compared without regard to case)", variant.key),
            ));
        }
        if variant.value.is_empty() {
            variant.value = variant.key.clone();
        }
        if variant.name.is_empty() {
            variant.name = variant.key.clone();
        }
        check_text(e, &format!("variants[{i}].name"), &variant.name, 255, true);
        check_text(
            e,
            &format!("variants[{i}].description"),
            &variant.description,
            10_000,
            false,
        );
    }
}

fn check_condition(e: &mut Vec<FieldError>, label: &str, at: &str, condition: &Condition) {
    let op = Op::parse(&condition.op);
    if op == Op::Unknown {
        e.push(FieldError::new(
            format!("{at}.op"),
            "unknown_operator",
            format!(
                "unknown operator {:?}; the operators are: {}",
                condition.op,
                Op::ALL.join(", ")
            ),
        ));
        return;
    }
    match &condition.target {
        Target::UserField { field } if !USER_FIELDS.contains(&field.as_str()) => {
            e.push(FieldError::new(
                format!("{at}.field"),
                "unknown_user_field",
                format!(
                    "{field:?} is not a built-in user field ({}); use a user property instead",
                    USER_FIELDS.join(", ")
                ),
            ))
        }
        Target::UserProperty { property } => {
            check_text(e, &format!("{at}.property"), property, 255, true)
        }
        Target::GroupName { group_type } | Target::GroupCohort { group_type } => {
            check_text(e, &format!("{at}.group_type"), group_type, 128, true);
        }
        Target::GroupProperty {
            group_type,
            property,
        } => {
            check_text(e, &format!("{at}.group_type"), group_type, 128, true);
            check_text(e, &format!("{at}.property"), property, 255, true);
        }
        _ => {}
    }
    if matches!(
        condition.target,
        Target::Cohort | Target::GroupCohort { .. }
    ) && !matches!(op, Op::SetContainsAny | Op::SetDoesNotContainAny)
    {
        e.push(FieldError::new(
            format!("{at}.op"),
            "invalid_operator",
            "cohort conditions use `set contains any` (in any of the cohorts) or `set does not contain any`",
        ));
    }
    if condition.values.is_empty() {
        e.push(FieldError::new(
            format!("{at}.values"),
            "required",
            "a condition needs at least one value",
        ));
    }
    for (k, value) in condition.values.iter().enumerate() {
        let field = format!("{at}.values[{k}]");
        match op {
            Op::RegexMatch | Op::RegexDoesNotMatch => {
                // The pattern's length and compiled size are limits; a pattern that does not
                // parse is refused here, where a person can fix it.
                let invalid = Violations::new(e, "", label).regex(&field, value);
                if let Some(err) = invalid {
                    e.push(FieldError::new(
                        field,
                        "invalid_regex",
                        format!("{value:?} is not a valid regular expression: {err}"),
                    ));
                }
            }
            Op::VersionLess
            | Op::VersionLessOrEqual
            | Op::VersionGreater
            | Op::VersionGreaterOrEqual
                if !is_version(value) =>
            {
                e.push(FieldError::new(
                    field,
                    "invalid_version",
                    format!("{value:?} is not a semantic version (MAJOR[.MINOR[.PATCH]][-prerelease], e.g. 2.1.0)"),
                ));
            }
            _ => {}
        }
    }
}

fn check_rollout(e: &mut Vec<FieldError>, at: &str, rollout: &Rollout, flag: &Flag) {
    if rollout.percentage > 100 {
        e.push(FieldError::new(
            format!("{at}.percentage"),
            "out_of_range",
            format!(
                "the rollout percentage is 0 to 100, not {}",
                rollout.percentage
            ),
        ));
    }
    for key in rollout.weights.keys() {
        if flag.variant(key).is_none() {
            e.push(FieldError::new(
                format!("{at}.weights.{key}"),
                "unknown_variant",
                format!("{key:?} is not a variant of this flag"),
            ));
        }
    }
}

fn check_inclusions(e: &mut Vec<FieldError>, flag: &Flag) {
    for (variant, inclusion) in &flag.inclusions {
        let at = format!("inclusions.{variant}");
        if flag.variant(variant).is_none() {
            e.push(FieldError::new(
                at.clone(),
                "unknown_variant",
                format!("{variant:?} is not a variant of this flag; users can only be included in one of its variants"),
            ));
        }
        for (i, id) in inclusion.ids.iter().enumerate() {
            e.extend(inclusion_ids_error(&format!("{at}.ids[{i}]"), id));
        }
        check_list(e, &format!("{at}.cohorts"), &inclusion.cohorts, 128);
    }
}

fn check_prerequisites(e: &mut Vec<FieldError>, flag: &Flag) {
    let mut seen = HashSet::new();
    for (i, prerequisite) in flag.prerequisites.iter().enumerate() {
        let at = format!("prerequisites[{i}]");
        if prerequisite.flag == flag.key {
            e.push(FieldError::new(
                format!("{at}.flag"),
                "dependency_cycle",
                "a flag cannot depend on itself",
            ));
        }
        if !seen.insert(&prerequisite.flag) {
            e.push(FieldError::new(
                format!("{at}.flag"),
                "duplicate",
                format!(
                    "{:?} is already a prerequisite; list its variants once",
                    prerequisite.flag
                ),
            ));
        }
        if prerequisite.variants.is_empty() && flag.imported_config.is_none() {
            e.push(FieldError::new(
                format!("{at}.variants"),
                "required",
                "choose at least one variant of the prerequisite (`off` for users it does not serve)",
            ));
        }
        check_list(e, &format!("{at}.variants"), &prerequisite.variants, 128);
    }
}

/// An included (or excluded) id is a non-empty single line other than `(none)`.
fn inclusion_ids_error(field: &str, id: &str) -> Option<FieldError> {
    (id.is_empty() || id == "(none)" || id.contains('\n') || id.len() > 1024).then(|| {
        FieldError::new(
            field,
            "invalid_id",
            "an included id is a non-empty single-line string other than \"(none)\"",
        )
    })
}

#[cfg(test)]
mod tests;
