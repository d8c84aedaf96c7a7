//! The prerequisite rules of the product (`003` seed, `evaluation.md` §10.9): what may depend on
//! what, and which changes dependencies forbid. Each refusal names the flags that block it.
//!
//! The rules read other flags through [`FlagSource`], which the services implement over a
//! store transaction that holds the project's write lock, so the flags they check cannot
//! change before the write commits.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, FieldError, Result};
use crate::model::{EvaluationMode, Flag, FlagState, Group, OFF};

mod groups;

pub use groups::{check_group_archive, check_group_save, check_group_unarchive};

/// Other flags and groups of the same project, as stored.
pub trait FlagSource {
    /// The flag with this key in the project.
    fn flag(&mut self, key: &str) -> Result<Option<Flag>>;
    /// The flags that list `key` as a prerequisite or group, archived ones included.
    fn dependents(&mut self, key: &str) -> Result<Vec<Flag>>;
    /// The group with this key in the project.
    fn group(&mut self, key: &str) -> Result<Option<Group>>;
    /// The holdout groups placed in the slots of mutual-exclusion group `key`, archived ones
    /// included.
    fn holdouts_in(&mut self, key: &str) -> Result<Vec<Group>>;
}

/// Checks a flag about to be saved (`before` is the stored version, `None` on create).
pub fn check_save(src: &mut dyn FlagSource, before: Option<&Flag>, after: &Flag) -> Result<()> {
    check_prerequisites(src, after)?;
    groups::check_flag_groups(src, before, after)?;
    if before.is_some() {
        check_dependents(src, after)?;
    }
    Ok(())
}

fn check_prerequisites(src: &mut dyn FlagSource, flag: &Flag) -> Result<()> {
    let mut errors = Vec::new();
    for (i, prerequisite) in flag.prerequisites.iter().enumerate() {
        let at = format!("prerequisites[{i}]");
        let found = if crate::keys::is_url_safe_key(&prerequisite.flag) {
            src.flag(&prerequisite.flag)?
        } else {
            None
        };
        let Some(other) = found else {
            errors.push(FieldError::new(
                format!("{at}.flag"),
                "unknown_prerequisite",
                format!(
                    "there is no flag {:?} in project {:?}; prerequisites must be in the same project",
                    prerequisite.flag, flag.project
                ),
            ));
            continue;
        };
        if other.archived {
            return Err(field_blocked(
                format!("{at}.flag"),
                "prerequisite_archived",
                format!("{:?} is archived and cannot be a prerequisite", other.key),
                vec![other.key],
            ));
        }
        if flag.evaluation_mode == EvaluationMode::Local
            && other.evaluation_mode == EvaluationMode::Remote
        {
            return Err(field_blocked(
                format!("{at}.flag"),
                "incompatible_evaluation_mode",
                format!(
                    "{:?} is a local-evaluation flag and can only depend on local flags, but {:?} is evaluated remotely",
                    flag.key, other.key
                ),
                vec![other.key],
            ));
        }
        for (j, variant) in prerequisite.variants.iter().enumerate() {
            if !other.allows_variant(variant) {
                errors.push(FieldError::new(
                    format!("{at}.variants[{j}]"),
                    "unknown_variant",
                    format!(
                        "{:?} has no variant {variant:?} (its variants: {}, and off)",
                        other.key,
                        variant_list(&other)
                    ),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    check_cycles(src, flag)
}

fn variant_list(flag: &Flag) -> String {
    flag.variants
        .iter()
        .map(|v| v.key.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses a prerequisite from which `flag` can be reached again, naming the loop.
fn check_cycles(src: &mut dyn FlagSource, flag: &Flag) -> Result<()> {
    for (i, prerequisite) in flag.prerequisites.iter().enumerate() {
        // Depth-first walk over stored prerequisites; `parent` rebuilds the path found.
        let mut parent: HashMap<String, String> = HashMap::new();
        let mut seen = HashSet::new();
        let mut stack = vec![prerequisite.flag.clone()];
        seen.insert(prerequisite.flag.clone());
        while let Some(key) = stack.pop() {
            if key == flag.key {
                // `parent` maps a flag to the one that depends on it; walking it back from the
                // flag itself gives the chain prerequisite -> ... -> (a flag depending on us).
                let mut chain = Vec::new();
                let mut at = key;
                while let Some(p) = parent.get(&at) {
                    chain.push(p.clone());
                    at = p.clone();
                }
                chain.reverse();
                let mut loop_path = vec![flag.key.clone()];
                loop_path.extend(chain.iter().cloned());
                loop_path.push(flag.key.clone());
                return Err(field_blocked(
                    format!("prerequisites[{i}].flag"),
                    "dependency_cycle",
                    format!(
                        "adding {:?} as a prerequisite would create a circular dependency: {}",
                        prerequisite.flag,
                        loop_path.join(" → ")
                    ),
                    chain,
                ));
            }
            let Some(node) = src.flag(&key)? else {
                continue;
            };
            for next in node.prerequisite_keys() {
                if seen.insert(next.to_string()) {
                    parent.insert(next.to_string(), key.clone());
                    stack.push(next.to_string());
                }
            }
        }
    }
    Ok(())
}

/// What the flags depending on `flag` forbid: removing or renaming a variant they allow, and
/// becoming a remote flag while a local flag depends on it.
fn check_dependents(src: &mut dyn FlagSource, flag: &Flag) -> Result<()> {
    let dependents = src.dependents(&flag.key)?;
    let mut missing: Vec<(String, String)> = Vec::new();
    let mut local = Vec::new();
    for dependent in dependents.iter().filter(|d| !d.archived) {
        for prerequisite in dependent
            .prerequisites
            .iter()
            .filter(|p| p.flag == flag.key)
        {
            for variant in &prerequisite.variants {
                if variant != OFF
                    && flag.imported_config.is_none()
                    && flag.variant(variant).is_none()
                {
                    missing.push((variant.clone(), dependent.key.clone()));
                }
            }
        }
        if dependent.evaluation_mode == EvaluationMode::Local
            && flag.evaluation_mode == EvaluationMode::Remote
        {
            local.push(dependent.key.clone());
        }
    }
    if !missing.is_empty() {
        let mut blocking: Vec<String> = missing.iter().map(|(_, d)| d.clone()).collect();
        blocking.sort();
        blocking.dedup();
        let mut variants: Vec<&str> = missing.iter().map(|(v, _)| v.as_str()).collect();
        variants.sort_unstable();
        variants.dedup();
        return Err(field_blocked(
            "variants".to_string(),
            "variant_in_use",
            format!(
                "variant {} cannot be deleted or have its key changed: {} depend{} on it",
                variants
                    .iter()
                    .map(|v| format!("{v:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                blocking.join(", "),
                if blocking.len() == 1 { "s" } else { "" }
            ),
            blocking,
        ));
    }
    if !local.is_empty() {
        return Err(field_blocked(
            "evaluation_mode".to_string(),
            "incompatible_evaluation_mode",
            format!(
                "{:?} cannot become a remote flag: local flags can only depend on local flags, and {} depend{} on it",
                flag.key,
                local.join(", "),
                if local.len() == 1 { "s" } else { "" }
            ),
            local,
        ));
    }
    Ok(())
}

/// A flag cannot be activated while a prerequisite is inactive (or archived).
pub fn check_activate(src: &mut dyn FlagSource, flag: &Flag) -> Result<()> {
    let mut inactive = Vec::new();
    for key in flag.prerequisite_keys() {
        match src.flag(key)? {
            Some(p) if p.state == FlagState::Active && !p.archived => {}
            _ => inactive.push(key.to_string()),
        }
    }
    if inactive.is_empty() {
        let archived = groups::archived_groups(src, flag.group_keys())?;
        return groups::blocked_by_archived(&flag.key, "activated", archived);
    }
    Err(Error::blocked(
        "prerequisite_inactive",
        format!(
            "{:?} cannot be activated while its prerequisite{} {} {} not active; activate {} first",
            flag.key,
            if inactive.len() == 1 { "" } else { "s" },
            inactive.join(", "),
            if inactive.len() == 1 { "is" } else { "are" },
            if inactive.len() == 1 { "it" } else { "them" },
        ),
        inactive,
    ))
}

/// A flag that other (unarchived) flags depend on cannot be archived.
pub fn check_archive(src: &mut dyn FlagSource, flag: &Flag) -> Result<()> {
    let blocking: Vec<String> = src
        .dependents(&flag.key)?
        .into_iter()
        .filter(|d| !d.archived)
        .map(|d| d.key)
        .collect();
    if blocking.is_empty() {
        return Ok(());
    }
    Err(Error::blocked(
        "has_dependents",
        format!(
            "{:?} cannot be archived: {} depend{} on it; remove the dependency or archive {} first",
            flag.key,
            blocking.join(", "),
            if blocking.len() == 1 { "s" } else { "" },
            if blocking.len() == 1 {
                "that flag"
            } else {
                "those flags"
            },
        ),
        blocking,
    ))
}

/// A flag cannot come back from the archive while one of its prerequisites is archived.
pub fn check_unarchive(src: &mut dyn FlagSource, flag: &Flag) -> Result<()> {
    let mut archived = Vec::new();
    for key in flag.prerequisite_keys() {
        if src.flag(key)?.is_none_or(|p| p.archived) {
            archived.push(key.to_string());
        }
    }
    if archived.is_empty() {
        let archived = groups::archived_groups(src, flag.group_keys())?;
        return groups::blocked_by_archived(&flag.key, "unarchived", archived);
    }
    Err(Error::blocked(
        "prerequisite_archived",
        format!(
            "{:?} cannot be unarchived while its prerequisites {} are archived or gone; unarchive them first",
            flag.key,
            archived.join(", ")
        ),
        archived,
    ))
}

fn field_blocked(
    field: String,
    code: &'static str,
    message: String,
    blocking: Vec<String>,
) -> Error {
    Error::Blocked {
        code,
        message,
        field: Some(field),
        blocking,
    }
}
