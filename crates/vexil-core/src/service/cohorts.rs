//! Cohorts: static sets of user ids (or group names) uploaded as JSON or CSV, replaced
//! atomically on re-upload, and protected from deletion while a flag uses them.

use serde::Deserialize;
use utoipa::ToSchema;

use super::convert::{cohort, cohort_row, doc, flag};
use super::{check_version, now_ms, record, Actor, Core, Role};
use crate::error::{Error, FieldError, Result};
use crate::keys::{is_url_safe_key, key_from_name};
use crate::model::Cohort;

/// How uploaded members are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberFormat {
    /// `["u1", "u2"]`, `{"memberIds": [...]}` (Amplitude's cohort format) or `{"members": [...]}`.
    Json,
    /// One member per line in the first column; a first line `user_id`, `id`, `member`,
    /// `member_id`, `device_id`, `group` or `name` is a header and skipped.
    Csv,
}

/// A cohort to create or replace.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CohortUpload {
    /// Generated from the name when absent.
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `User` (default) or a group type such as `company`.
    #[serde(default = "user")]
    #[schema(min_length = 1, max_length = 128)]
    pub group_type: String,
}

fn user() -> String {
    "User".to_string()
}

/// Cohort use cases.
#[derive(Clone)]
pub struct CohortService {
    pub(crate) core: Core,
}

const HEADERS: &[&str] = &[
    "user_id",
    "id",
    "member",
    "member_id",
    "device_id",
    "group",
    "name",
    "memberid",
];

/// Reads members from an upload body, keeping the first occurrence of each.
pub fn parse_members(body: &[u8], format: MemberFormat) -> Result<Vec<String>> {
    let raw: Vec<String> = match format {
        MemberFormat::Json => {
            #[derive(Deserialize)]
            #[serde(untagged)]
            enum Body {
                List(Vec<String>),
                Amplitude {
                    #[serde(rename = "memberIds")]
                    member_ids: Vec<String>,
                },
                Members {
                    members: Vec<String>,
                },
            }
            match serde_json::from_slice::<Body>(body) {
                Ok(Body::List(m) | Body::Amplitude { member_ids: m } | Body::Members { members: m }) => m,
                Err(e) => {
                    return Err(Error::invalid(
                        "members",
                        "invalid_members",
                        format!("members are a JSON array of strings, or an object with memberIds or members: {e}"),
                    ))
                }
            }
        }
        MemberFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(body);
            let mut out = Vec::new();
            for (i, record) in reader.records().enumerate() {
                let record = record.map_err(|e| {
                    Error::invalid("members", "invalid_csv", format!("line {}: {e}", i + 1))
                })?;
                let Some(first) = record.get(0).map(str::trim) else {
                    continue;
                };
                if first.is_empty()
                    || (i == 0 && HEADERS.contains(&first.to_ascii_lowercase().as_str()))
                {
                    continue;
                }
                out.push(first.to_string());
            }
            out
        }
    };
    clean_members(raw)
}

/// Checks member ids and keeps the first occurrence of each.
pub fn clean_members(raw: Vec<String>) -> Result<Vec<String>> {
    let mut seen = std::collections::HashSet::with_capacity(raw.len());
    let mut members = Vec::with_capacity(raw.len());
    for (i, m) in raw.into_iter().enumerate() {
        if m.is_empty() || m.contains('\n') || m.len() > 1024 {
            return Err(Error::invalid(
                format!("members[{i}]"),
                "invalid_member",
                "a member id is a non-empty single-line string of at most 1024 bytes",
            ));
        }
        if seen.insert(m.clone()) {
            members.push(m);
        }
    }
    Ok(members)
}

impl CohortService {
    /// Creates the cohort, or replaces its name and members atomically when it exists (then
    /// `expected` must name its current version).
    pub fn upload(
        &self,
        actor: &Actor,
        project: &str,
        req: CohortUpload,
        members: Vec<String>,
        expected: Option<i64>,
    ) -> Result<Cohort> {
        actor.require(Role::Writer)?;
        let id = req.id.clone().unwrap_or_else(|| key_from_name(&req.name));
        check_fields(&id, &req.name, &req.group_type)?;
        let saved = self.core.write(|tx| {
            super::projects::lock(tx, project)?;
            match tx.get_cohort(project, &id)? {
                None => {
                    let new = Cohort {
                        project: project.to_string(),
                        id: id.clone(),
                        name: req.name.trim().to_string(),
                        description: req.description.clone(),
                        group_type: req.group_type.clone(),
                        size: 0,
                        version: 0,
                        created_at: 0,
                        updated_at: 0,
                    };
                    insert(tx, actor, new, &members, "create")
                }
                Some(row) => {
                    let mut c = cohort(&row)?;
                    check_version("cohort", &id, expected, c.version)?;
                    if c.group_type != req.group_type {
                        return Err(Error::invalid(
                            "group_type",
                            "immutable",
                            format!("cohort {id:?} holds {} members; a cohort's group type cannot change", c.group_type),
                        ));
                    }
                    c.name = req.name.trim().to_string();
                    c.description = req.description.clone();
                    replace(tx, actor, c, &members, "replace")
                }
            }
        })?;
        self.core.changed(project);
        Ok(saved)
    }

    pub fn list(&self, project: &str) -> Result<Vec<Cohort>> {
        self.core.read(|tx| {
            super::projects::get(tx, project)?;
            tx.list_cohorts(project)?.iter().map(cohort).collect()
        })
    }

    pub fn get(&self, project: &str, id: &str) -> Result<Cohort> {
        self.core.read(|tx| get(tx, project, id))
    }

    pub fn members(&self, project: &str, id: &str) -> Result<Vec<String>> {
        self.core.read(|tx| {
            get(tx, project, id)?;
            Ok(tx.cohort_members(project, id)?)
        })
    }

    /// Deletes a cohort no flag uses.
    pub fn delete(
        &self,
        actor: &Actor,
        project: &str,
        id: &str,
        expected: Option<i64>,
    ) -> Result<()> {
        actor.require(Role::Writer)?;
        self.core.write(|tx| {
            super::projects::lock(tx, project)?;
            let c = get(tx, project, id)?;
            check_version("cohort", id, expected, c.version)?;
            let mut users = Vec::new();
            for row in tx.project_flags(project)? {
                let f = flag(&row)?;
                let uses = match &f.imported_config {
                    Some(config) => config.json().contains(&format!("\"{id}\"")),
                    None => super::flags::cohort_references(&f)
                        .iter()
                        .any(|(_, c)| c == id),
                };
                if uses {
                    users.push(f.key);
                }
            }
            if !users.is_empty() {
                return Err(Error::blocked(
                    "cohort_in_use",
                    format!(
                        "cohort {id:?} cannot be deleted: {} use{} it",
                        users.join(", "),
                        if users.len() == 1 { "s" } else { "" }
                    ),
                    users,
                ));
            }
            tx.delete_cohort(project, id)?;
            record(
                tx,
                actor,
                project,
                "cohort",
                id,
                c.version + 1,
                now_ms(),
                "delete",
                "deleted".into(),
                doc(&c)?,
            )
        })?;
        self.core.changed(project);
        Ok(())
    }
}

/// Inserts `c` with its members as a new cohort. A deleted cohort's history stays, so a new one
/// with the same id continues its version numbers.
pub(crate) fn insert(
    tx: &mut dyn vexil_store::Tx,
    actor: &Actor,
    mut c: Cohort,
    members: &[String],
    action: &str,
) -> Result<Cohort> {
    let now = now_ms();
    c.version = tx
        .list_history(&c.project, "cohort", &c.id, None, 1)?
        .first()
        .map_or(1, |h| h.version + 1);
    c.size = i64::try_from(members.len()).unwrap_or(i64::MAX);
    (c.created_at, c.updated_at) = (now, now);
    let row = cohort_row(&c)?;
    tx.insert_cohort(&row, members)?;
    let summary = members_summary(action, c.size);
    record(
        tx, actor, &c.project, "cohort", &c.id, c.version, now, action, summary, row.doc,
    )?;
    Ok(c)
}

/// Writes `c` (changed by the caller) as the next version of a stored cohort, replacing its
/// members.
pub(crate) fn replace(
    tx: &mut dyn vexil_store::Tx,
    actor: &Actor,
    mut c: Cohort,
    members: &[String],
    action: &str,
) -> Result<Cohort> {
    let now = now_ms();
    c.size = i64::try_from(members.len()).unwrap_or(i64::MAX);
    c.version += 1;
    c.updated_at = now.max(c.updated_at + 1);
    let row = cohort_row(&c)?;
    tx.update_cohort(&row, Some(members), c.version - 1)?;
    let summary = members_summary(action, c.size);
    record(
        tx, actor, &c.project, "cohort", &c.id, c.version, now, action, summary, row.doc,
    )?;
    Ok(c)
}

fn members_summary(action: &str, size: i64) -> String {
    match action {
        "create" => format!("created with {size} members"),
        "import" => format!("imported {size} members"),
        _ => format!("replaced members: {size}"),
    }
}

fn get(tx: &mut dyn vexil_store::Tx, project: &str, id: &str) -> Result<Cohort> {
    let row = if is_url_safe_key(project) && is_url_safe_key(id) {
        tx.get_cohort(project, id)?
    } else {
        None
    };
    match row {
        Some(row) => cohort(&row),
        None => Err(Error::NotFound {
            entity: "cohort",
            key: id.to_string(),
        }),
    }
}

fn check_fields(id: &str, name: &str, group_type: &str) -> Result<()> {
    let mut errors = Vec::new();
    if !is_url_safe_key(id) {
        errors.push(FieldError::new(
            "id",
            "invalid_key",
            "a cohort id is 1 to 128 characters of letters, digits, '.', '_' and '-'",
        ));
    }
    errors.extend(crate::validate::text_error("name", name, 255, true));
    // The group type is optional (absent means `User`), so a blank one is an invalid value, not
    // a missing one: `required` would tell clients, and API fuzzers, that it must be sent.
    if group_type.trim().is_empty() {
        errors.push(FieldError::new(
            "group_type",
            "invalid_group_type",
            "group_type is blank: give a group type such as `company`, or leave it out for `User`",
        ));
    } else {
        errors.extend(crate::validate::text_error(
            "group_type",
            group_type,
            128,
            false,
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}
