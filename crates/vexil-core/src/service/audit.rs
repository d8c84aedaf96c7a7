//! The audit log: every history entry of every entity (flags, groups, metrics, cohorts,
//! deployments, webhooks, projects, keys), newest first, with who (the key's name and role), when, what
//! (the action, a summary of the diff and, for flags, the typed changes) and why (the comment),
//! filtered by project, person, entity and time.

use serde::Serialize;
use utoipa::ToSchema;
use vexil_store::{AuditCursor, AuditQuery};

use super::{Actor, Core, Role, VersionMeta};
use crate::error::{Error, Result};

/// The most entries one page holds.
pub const AUDIT_PAGE_LIMIT: u32 = 500;

/// Which entries to list; every filter given must hold.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub project: Option<String>,
    pub actor: Option<String>,
    pub entity: Option<String>,
    pub key: Option<String>,
    /// Unix milliseconds, `[from, to)`.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// The `next` of the previous page.
    pub after: Option<String>,
    pub limit: Option<u32>,
}

/// One change in the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AuditEntry {
    pub project: String,
    /// `flag`, `mutex_group`, `holdout`, `metric`, `cohort`, `deployment`, `webhook`,
    /// `project`, ...
    pub entity: String,
    pub key: String,
    #[serde(flatten)]
    pub meta: VersionMeta,
}

/// A page of the audit log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Audit log use cases.
#[derive(Clone)]
pub struct AuditService {
    pub(crate) core: Core,
}

impl AuditService {
    pub fn list(&self, actor: &Actor, filter: AuditFilter) -> Result<AuditPage> {
        actor.require(Role::Reader)?;
        let limit = filter.limit.unwrap_or(50);
        if limit == 0 || limit > AUDIT_PAGE_LIMIT {
            return Err(Error::invalid(
                "limit",
                "invalid_limit",
                format!("limit is from 1 to {AUDIT_PAGE_LIMIT}"),
            ));
        }
        if let (Some(from), Some(to)) = (filter.from, filter.to) {
            if from >= to {
                return Err(Error::invalid(
                    "to",
                    "invalid_range",
                    "to must be after from",
                ));
            }
        }
        let after = filter.after.as_deref().map(parse_cursor).transpose()?;
        let query = AuditQuery {
            project: filter.project,
            actor: filter.actor,
            entity: filter.entity,
            key: filter.key,
            from: filter.from,
            to: filter.to,
            after,
            // One more than asked: whether there is a next page.
            limit: limit + 1,
        };
        let mut rows = self.core.read(|tx| Ok(tx.audit(&query)?))?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = more.then(|| rows.last().map(cursor)).flatten();
        Ok(AuditPage {
            entries: rows
                .iter()
                .map(|r| AuditEntry {
                    project: r.project.clone(),
                    entity: r.entity.clone(),
                    key: r.key.clone(),
                    meta: VersionMeta::of(r),
                })
                .collect(),
            next,
        })
    }
}

/// `at:version:project:entity:key` (keys and entity names hold no `:`).
fn cursor(r: &vexil_store::HistoryRow) -> String {
    format!(
        "{}:{}:{}:{}:{}",
        r.at, r.version, r.project, r.entity, r.key
    )
}

fn parse_cursor(text: &str) -> Result<AuditCursor> {
    let bad = || {
        Error::invalid(
            "after",
            "invalid_cursor",
            "after is the next of a previous page",
        )
    };
    let mut parts = text.splitn(5, ':');
    let mut next = || parts.next().ok_or_else(bad);
    let at = next()?.parse().map_err(|_| bad())?;
    let version = next()?.parse().map_err(|_| bad())?;
    let (project, entity, key) = (next()?.to_owned(), next()?.to_owned(), next()?.to_owned());
    Ok(AuditCursor {
        at,
        project,
        entity,
        key,
        version,
    })
}
