//! Stale flags: unchanged for 30 days while serving one variant to everyone, or nothing to
//! anyone (inactive, or every rollout at 0%), the rule Amplitude applies. Such a flag no longer
//! decides anything: its code path can be removed and the flag archived. A flag marked
//! `permanent` (a kill switch, an operational flag) is never stale.

use serde::Serialize;
use utoipa::ToSchema;

use super::{FlagChange, FlagService};
use crate::error::Result;
use crate::model::{Flag, FlagState, Rollout};
use crate::service::{now_ms, Actor, Role};

/// Days without a change after which a flag that decides nothing is stale.
pub const STALE_AFTER_DAYS: i64 = 30;
const DAY_MS: i64 = 86_400_000;

/// Why `f` is stale at `now`, if it is.
pub fn reason(f: &Flag, now: i64) -> Option<String> {
    if f.permanent || f.archived || now - f.updated_at < STALE_AFTER_DAYS * DAY_MS {
        return None;
    }
    let days = (now - f.updated_at) / DAY_MS;
    if f.state == FlagState::Inactive {
        return Some(format!("inactive for {days} days: serves off to everyone"));
    }
    let rollouts: Vec<Rollout> = f
        .segments
        .iter()
        .map(|s| s.rollout())
        .chain(std::iter::once(f.all_other_users.clone()))
        .collect();
    if rollouts.iter().all(|r| r.percentage == 0) && f.inclusions.values().all(|i| i.is_empty()) {
        return Some(format!(
            "serves off to everyone (0%), unchanged for {days} days"
        ));
    }
    // One variant to everyone: every rollout at 100% to the same single variant, and no one
    // included in another.
    let single = |r: &Rollout| -> Option<String> {
        let mut with_weight = r.weights.iter().filter(|(_, w)| **w > 0);
        let (key, _) = with_weight.next()?;
        (r.percentage == 100 && with_weight.next().is_none()).then(|| key.clone())
    };
    let first = single(&rollouts[0])?;
    let everyone = rollouts
        .iter()
        .all(|r| single(r).as_deref() == Some(first.as_str()))
        && f.inclusions
            .iter()
            .all(|(v, i)| *v == first || i.is_empty());
    everyone.then(|| format!("serves {first} to everyone, unchanged for {days} days"))
}

/// What archiving a project's stale flags did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StaleArchive {
    pub archived: Vec<String>,
    /// Stale flags left as they are, with the reason (other flags depend on them, a policy).
    pub kept: Vec<KeptFlag>,
}

/// A stale flag not archived, and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeptFlag {
    pub flag: String,
    pub reason: String,
}

impl FlagService {
    /// Archives every stale flag of `project` that nothing depends on (or only other stale flags
    /// archived here); each is its own change (`archive`, with its rules), and the ones refused
    /// are listed with the reason.
    pub fn archive_stale(&self, actor: &Actor, project: &str) -> Result<StaleArchive> {
        actor.require(Role::Writer)?;
        let now = now_ms();
        let stale: Vec<(String, i64)> = self.core.read(|tx| {
            crate::service::projects::get(tx, project)?;
            Ok(tx
                .project_flags(project)?
                .iter()
                .map(super::flag)
                .collect::<Result<Vec<Flag>>>()?
                .into_iter()
                .filter(|f| reason(f, now).is_some())
                .map(|f| (f.key, f.version))
                .collect())
        })?;
        let mut out = StaleArchive {
            archived: Vec::new(),
            kept: Vec::new(),
        };
        let why = actor
            .clone()
            .with_comment(Some("archived as stale".to_string()));
        // Passes until one archives nothing: a stale flag that only stale flags depend on goes
        // once they have.
        let mut left = stale;
        loop {
            let mut refused = Vec::new();
            let before = out.archived.len();
            for (key, version) in left {
                match self.apply(
                    &why,
                    Some(project),
                    &key,
                    Some(version),
                    vec![FlagChange::Archive],
                ) {
                    Ok(_) => out.archived.push(key),
                    Err(e) => refused.push((key, version, e.to_string())),
                }
            }
            if refused.is_empty() || out.archived.len() == before {
                out.kept = refused
                    .into_iter()
                    .map(|(flag, _, reason)| KeptFlag { flag, reason })
                    .collect();
                return Ok(out);
            }
            left = refused.into_iter().map(|(k, v, _)| (k, v)).collect();
        }
    }
}

#[cfg(test)]
mod tests;
