//! Projects: create, list, show, rename.

use serde::Deserialize;
use utoipa::ToSchema;

use super::convert::{doc, project, project_row};
use super::{check_version, now_ms, record, Actor, Core, Role};
use crate::error::{Error, FieldError, Result};
use crate::keys::{is_url_safe_key, key_from_name, random_base62};
use crate::model::Project;

/// A project to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    pub name: String,
    /// Generated from the name when absent.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub description: String,
}

/// Fields of a project to change; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    pub name: Option<String>,
    pub description: Option<String>,
}

/// Project use cases.
#[derive(Clone)]
pub struct ProjectService {
    pub(crate) core: Core,
}

impl ProjectService {
    pub fn create(&self, actor: &Actor, req: NewProject) -> Result<Project> {
        actor.require(Role::Writer)?;
        let key = req.key.clone().unwrap_or_else(|| key_from_name(&req.name));
        check_project_fields(&key, &req.name)?;
        let now = now_ms();
        let project = Project {
            key,
            name: req.name.trim().to_string(),
            description: req.description,
            api_key: random_base62(32)?,
            secret_key: random_base62(32)?,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let row = project_row(&project)?;
        self.core.write(|tx| {
            tx.insert_project(&row)?;
            record(
                tx,
                actor,
                &project.key,
                "project",
                &project.key,
                1,
                now,
                "create",
                "created".into(),
                row.doc.clone(),
            )
        })?;
        self.core.changed(&project.key);
        Ok(project)
    }

    pub fn list(&self) -> Result<Vec<Project>> {
        self.core
            .read(|tx| tx.list_projects()?.iter().map(project).collect())
    }

    pub fn get(&self, key: &str) -> Result<Project> {
        self.core.read(|tx| get(tx, key))
    }

    pub fn update(
        &self,
        actor: &Actor,
        key: &str,
        expected: Option<i64>,
        patch: ProjectPatch,
    ) -> Result<Project> {
        actor.require(Role::Writer)?;
        let updated = self.core.write(|tx| {
            let mut p = project(&lock(tx, key)?)?;
            check_version("project", key, expected, p.version)?;
            if let Some(name) = patch.name {
                p.name = name.trim().to_string();
            }
            if let Some(description) = patch.description {
                p.description = description;
            }
            check_project_fields(&p.key, &p.name)?;
            p.version += 1;
            p.updated_at = now_ms();
            let row = project_row(&p)?;
            tx.update_project(&row, p.version - 1)?;
            record(
                tx,
                actor,
                key,
                "project",
                key,
                p.version,
                p.updated_at,
                "update",
                "updated".into(),
                doc(&p)?,
            )?;
            Ok(p)
        })?;
        self.core.changed(key);
        Ok(updated)
    }
}

/// Locks a project for the rest of the write transaction (see `Tx::lock_project`).
pub(crate) fn lock(tx: &mut dyn vexil_store::Tx, key: &str) -> Result<vexil_store::ProjectRow> {
    if !is_url_safe_key(key) {
        return Err(not_found(key));
    }
    tx.lock_project(key)?.ok_or_else(|| not_found(key))
}

pub(crate) fn get(tx: &mut dyn vexil_store::Tx, key: &str) -> Result<Project> {
    // Keys are validated on creation, so anything else (a NUL byte, say) names nothing; it
    // never reaches the database, which may refuse such text.
    if !is_url_safe_key(key) {
        return Err(not_found(key));
    }
    match tx.get_project(key)? {
        Some(row) => project(&row),
        None => Err(not_found(key)),
    }
}

pub(crate) fn not_found(key: &str) -> Error {
    Error::NotFound {
        entity: "project",
        key: key.to_string(),
    }
}

fn check_project_fields(key: &str, name: &str) -> Result<()> {
    let mut errors = Vec::new();
    errors.extend(crate::validate::text_error("name", name, 255, true));
    if !is_url_safe_key(key) {
        errors.push(FieldError::new(
            "key",
            "invalid_key",
            "a project key is 1 to 128 characters of letters, digits, '.', '_' and '-'",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}
