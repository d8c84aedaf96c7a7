//! Deployments: create (with a generated SDK key), list, show, relabel, archive, and rotate
//! the key.

use serde::Deserialize;
use utoipa::ToSchema;

use super::convert::{deployment, deployment_row, doc};
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
}

/// Fields of a deployment to change; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentPatch {
    pub label: Option<String>,
    pub archived: Option<bool>,
    /// `true` replaces the SDK key with a new one; the old key stops working at once.
    #[serde(default)]
    pub rotate_key: bool,
}

/// Deployment use cases.
#[derive(Clone)]
pub struct DeploymentService {
    pub(crate) core: Core,
}

impl DeploymentService {
    pub fn create(&self, actor: &Actor, project: &str, req: NewDeployment) -> Result<Deployment> {
        actor.require(Role::Writer)?;
        let key = req.key.clone().unwrap_or_else(|| key_from_name(&req.label));
        check_fields(&key, &req.label)?;
        let now = now_ms();
        let d = Deployment {
            project: project.to_string(),
            key,
            label: req.label.trim().to_string(),
            kind: req.kind,
            api_key: deployment_key(req.kind)?,
            archived: false,
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

    pub fn list(&self, project: &str) -> Result<Vec<Deployment>> {
        self.core.read(|tx| {
            super::projects::get(tx, project)?;
            tx.list_deployments(project)?
                .iter()
                .map(deployment)
                .collect()
        })
    }

    pub fn get(&self, project: &str, key: &str) -> Result<Deployment> {
        self.core.read(|tx| get(tx, project, key))
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
        actor.require(Role::Writer)?;
        let updated = self.core.write(|tx| {
            super::projects::lock(tx, project)?;
            let mut d = get(tx, project, key)?;
            check_version("deployment", key, expected, d.version)?;
            let mut what = Vec::new();
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
        self.core.changed(project);
        Ok(updated)
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
