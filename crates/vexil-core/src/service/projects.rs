//! Projects: create, list, show, rename, rotate their keys; and [`ProjectView`], what a caller
//! may see of one.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::convert::{doc, project, project_row};
use super::{check_version, now_ms, record, Actor, Core, Role};
use crate::error::{Error, FieldError, Result};
use crate::keys::{hash_secret, is_url_safe_key, key_from_name, project_secret, random_base62};
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

/// A project as its caller may see it. The API key lets whoever holds it send events in the
/// project's name (and, with the secret key, download its cohorts), so only writers and admins
/// see it; readers get the project without it. The secret key is stored only as a hash: it
/// appears once, in the answer of the creation or rotation that made it. The JSON API and the
/// console both show this view, so the rule lives here once. In the OpenAPI document it is the
/// `Project` schema.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Project)]
pub struct ProjectView {
    /// URL-safe identifier generated from the name, unique, immutable.
    pub key: String,
    pub name: String,
    pub description: String,
    /// Authenticates event ingestion, and cohort downloads together with the secret key.
    /// Absent when the caller's key has the reader role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Only in the answer of the creation or key rotation that made it: it is stored as a
    /// hash, so keep it then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
    /// While the keys a rotation replaced still work: until when (Unix milliseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_key_expires_at: Option<i64>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ProjectView {
    /// What `actor` may see of `project`: all of it but the secret key, or no keys for a
    /// reader.
    pub fn seen_by(project: Project, actor: &Actor) -> ProjectView {
        let mut view = ProjectView::from(project);
        if !sees_secrets(actor) {
            view.api_key = None;
        }
        view
    }
}

impl From<Project> for ProjectView {
    /// The whole project, API key included (for its writers); never a secret key, which the
    /// project does not hold in clear.
    fn from(p: Project) -> ProjectView {
        let previous_key_expires_at = p.previous_key_expires_at.filter(|&end| end > now_ms());
        ProjectView {
            key: p.key,
            name: p.name,
            description: p.description,
            api_key: Some(p.api_key),
            secret_key: None,
            previous_key_expires_at,
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// Which project keys to replace; at least one. The replaced keys keep working for
/// `grace_seconds` (0, the default, stops them at once; at most 604800, 7 days). A rotation
/// ends the grace period of the one before.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateProjectKeys {
    /// Replace the API key.
    #[serde(default)]
    pub api_key: bool,
    /// Replace the secret key; the answer holds the new one, shown this once.
    #[serde(default)]
    pub secret_key: bool,
    #[serde(default)]
    pub grace_seconds: u32,
}

/// Whether `actor` may see the credentials of projects and deployments: readers may not, since
/// a credential does more than read.
pub(crate) fn sees_secrets(actor: &Actor) -> bool {
    actor.role >= Role::Writer
}

/// Project use cases.
#[derive(Clone)]
pub struct ProjectService {
    pub(crate) core: Core,
}

impl ProjectService {
    /// Creates a project. The answer is the only place its secret key ever appears.
    pub fn create(&self, actor: &Actor, req: NewProject) -> Result<ProjectView> {
        actor.require(Role::Writer)?;
        let key = req.key.clone().unwrap_or_else(|| key_from_name(&req.name));
        check_project_fields(&key, &req.name)?;
        let now = now_ms();
        let secret_key = project_secret()?;
        let project = Project {
            key,
            name: req.name.trim().to_string(),
            description: req.description,
            api_key: random_base62(32)?,
            secret_key_hash: hash_secret(&secret_key),
            previous_api_key: None,
            previous_secret_key_hash: None,
            previous_key_expires_at: None,
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
        let mut view = ProjectView::from(project);
        view.secret_key = Some(secret_key);
        Ok(view)
    }

    /// Replaces the project's API key, secret key or both (writers and admins, based on
    /// version `expected`). The replaced keys keep working for the grace period; the answer
    /// holds the new secret key (shown this once) and comes only once this node's SDK
    /// endpoints refuse what no longer works. Other nodes follow within their sync interval.
    pub fn rotate_keys(
        &self,
        actor: &Actor,
        key: &str,
        expected: Option<i64>,
        req: RotateProjectKeys,
    ) -> Result<ProjectView> {
        actor.require(Role::Writer)?;
        let grace = super::secrets::grace_ms(req.grace_seconds)?;
        if !req.api_key && !req.secret_key {
            return Err(Error::invalid(
                "api_key",
                "nothing_to_rotate",
                "name the keys to replace: \"api_key\": true, \"secret_key\": true or both",
            ));
        }
        let secret_key = project_secret()?;
        let api_key = random_base62(32)?;
        let rotated = self.core.write(|tx| {
            let mut p = project(&lock(tx, key)?)?;
            check_version("project", key, expected, p.version)?;
            let now = now_ms();
            let in_grace = grace > 0;
            p.previous_api_key = (in_grace && req.api_key).then(|| p.api_key.clone());
            p.previous_secret_key_hash =
                (in_grace && req.secret_key).then(|| p.secret_key_hash.clone());
            p.previous_key_expires_at = in_grace.then(|| now.saturating_add(grace));
            let mut what = Vec::new();
            if req.api_key {
                p.api_key = api_key.clone();
                what.push("the API key");
            }
            if req.secret_key {
                p.secret_key_hash = hash_secret(&secret_key);
                what.push("the secret key");
            }
            p.version += 1;
            p.updated_at = now;
            let row = project_row(&p)?;
            tx.update_project(&row, p.version - 1)?;
            let summary = format!(
                "rotated {}; the replaced keys {}",
                what.join(" and "),
                match in_grace {
                    true => format!("work for {} s more", req.grace_seconds),
                    false => "stopped at once".to_owned(),
                }
            );
            record(
                tx,
                actor,
                key,
                "project",
                key,
                p.version,
                now,
                "rotate_keys",
                summary,
                row.doc,
            )?;
            Ok(p)
        })?;
        self.core.changed_now(key);
        let mut view = ProjectView::from(rotated);
        if req.secret_key {
            view.secret_key = Some(secret_key);
        }
        Ok(view)
    }

    /// Every project with its keys, whoever asks: for callers with direct access to the store
    /// (the command line). Requests go through [`ProjectService::list_for`].
    pub fn list(&self) -> Result<Vec<Project>> {
        self.core
            .read(|tx| tx.list_projects()?.iter().map(project).collect())
    }

    /// A project with its keys, whoever asks (see [`ProjectService::list`]); requests go
    /// through [`ProjectService::get_for`].
    pub fn get(&self, key: &str) -> Result<Project> {
        self.core.read(|tx| get(tx, key))
    }

    /// Every project, as `actor` may see it.
    pub fn list_for(&self, actor: &Actor) -> Result<Vec<ProjectView>> {
        let projects = self.list()?;
        Ok(projects
            .into_iter()
            .map(|p| ProjectView::seen_by(p, actor))
            .collect())
    }

    /// A project, as `actor` may see it.
    pub fn get_for(&self, actor: &Actor, key: &str) -> Result<ProjectView> {
        self.get(key).map(|p| ProjectView::seen_by(p, actor))
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
