//! A flag's history: every version as written (who, when, what changed), comparison of two
//! versions, and restoring an old configuration as a new version.

use serde::Serialize;
use utoipa::ToSchema;
use vexil_store::HistoryRow;

use super::{load, resolve, FlagService};
use crate::diff::{diff, Change};
use crate::error::{Error, Result};
use crate::model::Flag;
use crate::service::convert::doc_value;
use crate::service::{version_document, Actor, Saved, VersionMeta};

/// One version of a flag.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VersionInfo {
    #[serde(flatten)]
    pub meta: VersionMeta,
    /// The flag as it was after this change (only when one version is requested).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flag: Option<Flag>,
}

fn info(row: &HistoryRow, with_doc: bool) -> Result<VersionInfo> {
    Ok(VersionInfo {
        meta: VersionMeta::of(row),
        flag: version_document(row, "flag version", with_doc)?,
    })
}

impl FlagService {
    /// Versions newest first, `limit` of them before `before` (exclusive) when given.
    pub fn versions(
        &self,
        project: Option<&str>,
        key: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<VersionInfo>> {
        self.core.read(|tx| {
            let project = resolve(tx, project, key)?;
            load(tx, &project, key)?;
            tx.list_history(&project, "flag", key, before, limit.clamp(1, 500))?
                .iter()
                .map(|r| info(r, false))
                .collect()
        })
    }

    /// One version with the flag as it was.
    pub fn version(&self, project: Option<&str>, key: &str, version: i64) -> Result<VersionInfo> {
        self.core.read(|tx| {
            let project = resolve(tx, project, key)?;
            match tx.get_history(&project, "flag", key, version)? {
                Some(row) => info(&row, true),
                None => Err(version_not_found(key, version)),
            }
        })
    }

    /// What changed from version `from` to version `to`.
    pub fn compare(
        &self,
        project: Option<&str>,
        key: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<Change>> {
        let a = self.version(project, key, from)?.flag;
        let b = self.version(project, key, to)?.flag;
        match (a, b) {
            (Some(a), Some(b)) => Ok(diff(&doc_value(&a)?, &doc_value(&b)?)),
            _ => Err(version_not_found(key, from)),
        }
    }

    /// Writes the configuration of version `version` as a new version. The state (active or
    /// not) and the archive flag stay as they are now; the restored configuration goes through
    /// the same validation and prerequisite rules as any change.
    pub fn restore(
        &self,
        actor: &Actor,
        project: Option<&str>,
        key: &str,
        expected: Option<i64>,
        version: i64,
    ) -> Result<Saved<Flag>> {
        let Some(old) = self.version(project, key, version)?.flag else {
            return Err(version_not_found(key, version));
        };
        self.change(actor, project, key, expected, "restore", move |f, _| {
            f.name = old.name;
            f.description = old.description;
            f.experiment_key = old.experiment_key;
            f.experiment = old.experiment;
            f.evaluation_mode = old.evaluation_mode;
            f.bucketing_unit = old.bucketing_unit;
            f.bucketing_salt = old.bucketing_salt;
            f.tags = old.tags;
            f.deployments = old.deployments;
            f.variants = old.variants;
            f.segments = old.segments;
            f.all_other_users = old.all_other_users;
            f.inclusions = old.inclusions;
            f.prerequisites = old.prerequisites;
            f.mutex_group = old.mutex_group;
            f.holdouts = old.holdouts;
            f.imported_config = old.imported_config;
            Ok(vec![format!(
                "restored the configuration of version {version}"
            )])
        })
    }
}

fn version_not_found(key: &str, version: i64) -> Error {
    super::super::version_not_found("flag version", key, version)
}
