//! A flag's history: every version as written (who, when, what changed), comparison of two
//! versions, and restoring an old configuration as a new version.

use serde::Serialize;
use utoipa::ToSchema;
use vexil_store::{HistoryRow, Tx};

use super::{load, resolve, FlagService};
use crate::diff::{diff, Change};
use crate::error::{Error, Result};
use crate::model::Flag;
use crate::service::convert::doc_value;
use crate::service::{version_document, VersionMeta};

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
        let (a, b) = self.two_versions(project, key, from, to)?;
        Ok(diff(&doc_value(&a)?, &doc_value(&b)?))
    }

    /// What changed from version `from` to version `to`, in the product's words (the lines a
    /// draft's preview shows: "Segment *Pro plan*: 20% → 50%").
    pub fn describe_versions(
        &self,
        project: Option<&str>,
        key: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<String>> {
        let (a, b) = self.two_versions(project, key, from, to)?;
        Ok(crate::service::drafts::describe(&a, &b))
    }

    fn two_versions(
        &self,
        project: Option<&str>,
        key: &str,
        from: i64,
        to: i64,
    ) -> Result<(Flag, Flag)> {
        let a = self.version(project, key, from)?.flag;
        let b = self.version(project, key, to)?.flag;
        match (a, b) {
            (Some(a), Some(b)) => Ok((a, b)),
            (None, _) => Err(version_not_found(key, from)),
            (_, None) => Err(version_not_found(key, to)),
        }
    }
}

/// The flag as version `version` stored it, if that version exists.
pub(super) fn stored_version(
    tx: &mut dyn Tx,
    project: &str,
    key: &str,
    version: i64,
) -> Result<Option<Flag>> {
    match tx.get_history(project, "flag", key, version)? {
        Some(row) => Ok(info(&row, true)?.flag),
        None => Ok(None),
    }
}

pub(super) fn version_not_found(key: &str, version: i64) -> Error {
    super::super::version_not_found("flag version", key, version)
}
