//! Between domain types and store rows: the row's columns are derived from the document, and
//! a row reads back through its document.

use serde::de::DeserializeOwned;
use vexil_store::{CohortRow, DeploymentRow, FlagRow, ProjectRow};

use crate::error::{Error, Result};
use crate::model::{Cohort, Deployment, Flag, Project};

fn to_doc<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(Box::new(e)))
}

pub(crate) fn from_doc<T: DeserializeOwned>(
    entity: &'static str,
    key: &str,
    doc: &str,
) -> Result<T> {
    serde_json::from_str(doc).map_err(|source| Error::Corrupt {
        entity,
        key: key.to_string(),
        source,
    })
}

pub(crate) fn flag_row(flag: &Flag) -> Result<FlagRow> {
    Ok(FlagRow {
        project: flag.project.clone(),
        key: flag.key.clone(),
        name: flag.name.clone(),
        kind: flag.kind.as_str().to_string(),
        state: flag.state.as_str().to_string(),
        mode: flag.evaluation_mode.as_str().to_string(),
        archived: flag.archived,
        tags: flag.tags.clone(),
        deployments: flag.deployments.clone(),
        prerequisites: flag.dependency_keys().map(str::to_string).collect(),
        doc: to_doc(flag)?,
        version: flag.version,
        created_at: flag.created_at,
        updated_at: flag.updated_at,
    })
}

pub(crate) fn flag(row: &FlagRow) -> Result<Flag> {
    from_doc("flag", &row.key, &row.doc)
}

pub(crate) fn project_row(project: &Project) -> Result<ProjectRow> {
    Ok(ProjectRow {
        key: project.key.clone(),
        name: project.name.clone(),
        api_key: project.api_key.clone(),
        doc: to_doc(project)?,
        version: project.version,
        created_at: project.created_at,
        updated_at: project.updated_at,
    })
}

pub(crate) fn project(row: &ProjectRow) -> Result<Project> {
    from_doc("project", &row.key, &row.doc)
}

pub(crate) fn deployment_row(d: &Deployment) -> Result<DeploymentRow> {
    Ok(DeploymentRow {
        project: d.project.clone(),
        key: d.key.clone(),
        label: d.label.clone(),
        kind: d.kind.as_str().to_string(),
        api_key: d.api_key.clone(),
        archived: d.archived,
        doc: to_doc(d)?,
        version: d.version,
        created_at: d.created_at,
        updated_at: d.updated_at,
    })
}

pub(crate) fn deployment(row: &DeploymentRow) -> Result<Deployment> {
    from_doc("deployment", &row.key, &row.doc)
}

pub(crate) fn cohort_row(c: &Cohort) -> Result<CohortRow> {
    Ok(CohortRow {
        project: c.project.clone(),
        id: c.id.clone(),
        name: c.name.clone(),
        group_type: c.group_type.clone(),
        size: c.size,
        doc: to_doc(c)?,
        version: c.version,
        created_at: c.created_at,
        updated_at: c.updated_at,
    })
}

pub(crate) fn cohort(row: &CohortRow) -> Result<Cohort> {
    from_doc("cohort", &row.id, &row.doc)
}

pub(crate) fn doc_value<T: serde::Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| Error::Internal(Box::new(e)))
}

pub(crate) fn doc<T: serde::Serialize>(value: &T) -> Result<String> {
    to_doc(value)
}
