//! Deployments: create (with a generated SDK key), list, show, relabel, archive, and rotate
//! the key (with a grace period for the old one); and [`DeploymentView`], what a caller may see
//! of one.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::convert::{deployment, deployment_row, doc};
use super::projects::sees_secrets;
use super::{check_version, now_ms, record, Actor, Core, Role};
use crate::error::{Error, FieldError, Result};
use crate::keys::{deployment_key, is_url_safe_key, key_from_name};
use crate::model::{Deployment, DeploymentType};

/// A deployment to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDeployment {
    pub label: String,
    /// Generated from the label when absent.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(rename = "type")]
    pub kind: DeploymentType,
    /// Marks it production-critical (admins only); see [`Deployment::protected`].
    #[serde(default)]
    pub protected: bool,
}

/// Fields of a deployment to change; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentPatch {
    pub label: Option<String>,
    pub archived: Option<bool>,
    /// Marks it production-critical or not (admins only): an approval policy scoped to
    /// protected deployments covers every flag attached to it.
    pub protected: Option<bool>,
    /// `true` replaces the SDK key with a new one; the old key stops working at once (the
    /// `rotate-key` endpoint can give it a grace period).
    #[serde(default)]
    pub rotate_key: bool,
}

/// How to replace a deployment's SDK key: the replaced key keeps working for `grace_seconds`
/// (0, the default, stops it at once; at most 604800, 7 days). A rotation ends the grace
/// period of the one before.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateDeploymentKey {
    #[serde(default)]
    pub grace_seconds: u32,
}

/// A deployment as its caller may see it: the SDK key only for writers and admins (the rule of
/// [`super::ProjectView`]), since it lets an SDK read every flag the deployment serves and
/// record events. In the OpenAPI document it is the `Deployment` schema.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Deployment)]
pub struct DeploymentView {
    pub project: String,
    /// URL-safe identifier generated from the label, unique per project, immutable.
    pub key: String,
    /// Human label, unique per project.
    pub label: String,
    #[serde(rename = "type")]
    pub kind: DeploymentType,
    /// The SDK key: `client-` or `server-` and 32 random base62 characters. Absent when the
    /// caller's key has the reader role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// While the key a rotation replaced still works: until when (Unix milliseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_key_expires_at: Option<i64>,
    pub archived: bool,
    /// Production-critical: approval policies scoped to protected deployments cover its flags.
    pub protected: bool,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl DeploymentView {
    /// What `actor` may see of `deployment`: all of it, or no SDK key for a reader.
    pub fn seen_by(deployment: Deployment, actor: &Actor) -> DeploymentView {
        let mut view = DeploymentView::from(deployment);
        if !sees_secrets(actor) {
            view.api_key = None;
        }
        view
    }
}

impl From<Deployment> for DeploymentView {
    /// The whole deployment, SDK key included (for its writers).
    fn from(d: Deployment) -> DeploymentView {
        let previous_key_expires_at = d.previous_key_expires_at.filter(|&end| end > now_ms());
        DeploymentView {
            project: d.project,
            key: d.key,
            label: d.label,
            kind: d.kind,
            api_key: Some(d.api_key),
            previous_key_expires_at,
            archived: d.archived,
            protected: d.protected,
            version: d.version,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// Deployment use cases.
#[derive(Clone)]
pub struct DeploymentService {
    pub(crate) core: Core,
}

impl DeploymentService {
    pub fn create(&self, actor: &Actor, project: &str, req: NewDeployment) -> Result<Deployment> {
        actor.require(if req.protected {
            Role::Admin
        } else {
            Role::Writer
        })?;
        let key = req.key.clone().unwrap_or_else(|| key_from_name(&req.label));
        check_fields(&key, &req.label)?;
        let now = now_ms();
        let d = Deployment {
            project: project.to_string(),
            key,
            label: req.label.trim().to_string(),
            kind: req.kind,
            api_key: deployment_key(req.kind)?,
            previous_api_key: None,
            previous_key_expires_at: None,
            archived: false,
            protected: req.protected,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let row = deployment_row(&d)?;
        self.core.write(|tx| {
            super::projects::lock(tx, project)?;
            if tx
                .list_deployments(project)?
                .iter()
                .any(|o| o.label.eq_ignore_ascii_case(&d.label))
            {
                return Err(Error::Conflict {
                    code: "already_exists",
                    message: format!(
                        "project {project:?} already has a deployment labelled {:?}",
                        d.label
                    ),
                    field: Some("label".into()),
                });
            }
            tx.insert_deployment(&row)?;
            record(
                tx,
                actor,
                project,
                "deployment",
                &d.key,
                1,
                now,
                "create",
                "created".into(),
                row.doc.clone(),
            )
        })?;
        self.core.changed(project);
        Ok(d)
    }

    /// A project's deployments with their SDK keys, whoever asks: for callers with direct
    /// access to the store. Requests go through [`DeploymentService::list_for`].
    pub fn list(&self, project: &str) -> Result<Vec<Deployment>> {
        self.core.read(|tx| {
            super::projects::get(tx, project)?;
            tx.list_deployments(project)?
                .iter()
                .map(deployment)
                .collect()
        })
    }

    /// A deployment with its SDK key, whoever asks (see [`DeploymentService::list`]); requests
    /// go through [`DeploymentService::get_for`].
    pub fn get(&self, project: &str, key: &str) -> Result<Deployment> {
        self.core.read(|tx| get(tx, project, key))
    }

    /// A project's deployments, as `actor` may see them.
    pub fn list_for(&self, actor: &Actor, project: &str) -> Result<Vec<DeploymentView>> {
        let deployments = self.list(project)?;
        Ok(deployments
            .into_iter()
            .map(|d| DeploymentView::seen_by(d, actor))
            .collect())
    }

    /// A deployment, as `actor` may see it.
    pub fn get_for(&self, actor: &Actor, project: &str, key: &str) -> Result<DeploymentView> {
        self.get(project, key)
            .map(|d| DeploymentView::seen_by(d, actor))
    }

    /// Finds a deployment by key or, failing that, by label (case-insensitive).
    pub fn find(&self, project: &str, key_or_label: &str) -> Result<Deployment> {
        self.core.read(|tx| find(tx, project, key_or_label))
    }

    pub fn update(
        &self,
        actor: &Actor,
        project: &str,
        key: &str,
        expected: Option<i64>,
        patch: DeploymentPatch,
    ) -> Result<Deployment> {
        actor.require(if patch.protected.is_some() {
            Role::Admin
        } else {
            Role::Writer
        })?;
        let updated = self.core.write(|tx| {
            super::projects::lock(tx, project)?;
            let mut d = get(tx, project, key)?;
            check_version("deployment", key, expected, d.version)?;
            let mut what = Vec::new();
            if let Some(protected) = patch.protected {
                d.protected = protected;
                what.push(if protected {
                    "protected"
                } else {
                    "unprotected"
                });
            }
            if let Some(label) = &patch.label {
                d.label = label.trim().to_string();
                what.push("label");
            }
            if let Some(archived) = patch.archived {
                d.archived = archived;
                what.push(if archived { "archived" } else { "unarchived" });
            }
            if patch.rotate_key {
                d.api_key = deployment_key(d.kind)?;
                d.previous_api_key = None;
                d.previous_key_expires_at = None;
                what.push("rotated key");
            }
            check_fields(&d.key, &d.label)?;
            d.version += 1;
            d.updated_at = now_ms();
            tx.update_deployment(&deployment_row(&d)?, d.version - 1)?;
            let summary = if what.is_empty() {
                "no changes".to_string()
            } else {
                what.join(", ")
            };
            record(
                tx,
                actor,
                project,
                "deployment",
                key,
                d.version,
                d.updated_at,
                "update",
                summary,
                doc(&d)?,
            )?;
            Ok(d)
        })?;
        // The old key must fail on the next request, not after an asynchronous publish.
        if patch.rotate_key {
            self.core.changed_now(project);
        } else {
            self.core.changed(project);
        }
        Ok(updated)
    }

    /// Replaces the deployment's SDK key (writers and admins, based on version `expected`);
    /// the replaced key keeps working for the grace period. The answer comes only once this
    /// node's SDK endpoints refuse what no longer works; other nodes follow within their sync
    /// interval.
    pub fn rotate_key(
        &self,
        actor: &Actor,
        project: &str,
        key: &str,
        expected: Option<i64>,
        req: RotateDeploymentKey,
    ) -> Result<Deployment> {
        actor.require(Role::Writer)?;
        let grace = super::secrets::grace_ms(req.grace_seconds)?;
        let rotated = self.core.write(|tx| {
            super::projects::lock(tx, project)?;
            let mut d = get(tx, project, key)?;
            check_version("deployment", key, expected, d.version)?;
            let now = now_ms();
            let in_grace = grace > 0;
            d.previous_api_key = in_grace.then(|| d.api_key.clone());
            d.previous_key_expires_at = in_grace.then(|| now.saturating_add(grace));
            d.api_key = deployment_key(d.kind)?;
            d.version += 1;
            d.updated_at = now;
            tx.update_deployment(&deployment_row(&d)?, d.version - 1)?;
            let summary = match in_grace {
                true => format!(
                    "rotated key; the old key works for {} s more",
                    req.grace_seconds
                ),
                false => "rotated key; the old key stopped at once".to_owned(),
            };
            record(
                tx,
                actor,
                project,
                "deployment",
                key,
                d.version,
                now,
                "rotate_key",
                summary,
                doc(&d)?,
            )?;
            Ok(d)
        })?;
        self.core.changed_now(project);
        Ok(rotated)
    }
}

pub(crate) fn get(tx: &mut dyn vexil_store::Tx, project: &str, key: &str) -> Result<Deployment> {
    let row = if is_url_safe_key(project) && is_url_safe_key(key) {
        tx.get_deployment(project, key)?
    } else {
        None
    };
    match row {
        Some(row) => deployment(&row),
        None => Err(Error::NotFound {
            entity: "deployment",
            key: key.to_string(),
        }),
    }
}

pub(crate) fn find(
    tx: &mut dyn vexil_store::Tx,
    project: &str,
    key_or_label: &str,
) -> Result<Deployment> {
    if !is_url_safe_key(project) {
        return Err(super::projects::not_found(project));
    }
    if is_url_safe_key(key_or_label) {
        if let Some(row) = tx.get_deployment(project, key_or_label)? {
            return deployment(&row);
        }
    }
    match tx
        .list_deployments(project)?
        .iter()
        .find(|d| d.label.eq_ignore_ascii_case(key_or_label))
    {
        Some(row) => deployment(row),
        None => Err(Error::NotFound {
            entity: "deployment",
            key: key_or_label.to_string(),
        }),
    }
}

fn check_fields(key: &str, label: &str) -> Result<()> {
    let mut errors = Vec::new();
    errors.extend(crate::validate::text_error("label", label, 255, true));
    if !is_url_safe_key(key) {
        errors.push(FieldError::new(
            "key",
            "invalid_key",
            "a deployment key is 1 to 128 characters of letters, digits, '.', '_' and '-'",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}
