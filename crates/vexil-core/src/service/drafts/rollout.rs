//! Progressive rollouts: a series of rollout percentages on one segment or on All Other Users
//! (5% → 25% → 50% → 100%, one step every interval), each step applied by the scheduler as a
//! typed change on behalf of the person who planned it. A plan can be paused, resumed or
//! cancelled. A step whose base changed (someone edited the flag since the last step) is not
//! applied: the plan pauses and says why, and resuming continues from the flag as it is.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vexil_store::{DocumentRow, Tx};

use super::{refuse_unreviewed, DraftService};
use crate::error::{Error, Result};
use crate::keys::{is_url_safe_key, random_base62};
use crate::model::Rollout;
use crate::service::flags::{apply_in, load, resolve, FlagChange};
use crate::service::{now_ms, record, Actor, Role};

const ROLLOUTS: &str = "rollout";
/// Steps a plan holds at most.
const MAX_STEPS: usize = 20;
/// The longest wait between two steps.
const MAX_INTERVAL_SECONDS: u64 = 30 * 24 * 3600;

/// Where a plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RolloutStatus {
    Running,
    /// By a person, or because the flag changed since the last step (see `outcome`).
    Paused,
    Cancelled,
    Completed,
}

impl RolloutStatus {
    /// The status as stored and served (`running`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutStatus::Running => "running",
            RolloutStatus::Paused => "paused",
            RolloutStatus::Cancelled => "cancelled",
            RolloutStatus::Completed => "completed",
        }
    }
}

/// A progressive rollout of one flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RolloutPlan {
    pub id: String,
    pub project: String,
    pub flag: String,
    /// The segment whose percentage moves; absent for All Other Users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// The percentages, in order.
    pub steps: Vec<u8>,
    pub interval_seconds: u64,
    /// The next step's index in `steps` (`steps.len()` once completed).
    pub next_step: usize,
    /// When the next step is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<i64>,
    pub status: RolloutStatus,
    #[serde(default)]
    pub comment: String,
    pub created_by: String,
    /// The flag's version the next step is based on (the one the last step made).
    pub base_version: i64,
    /// Why the plan paused on its own, or the last step's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A new plan.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRollout {
    pub flag: String,
    /// A segment of the flag by name; absent for All Other Users.
    #[serde(default)]
    pub segment: Option<String>,
    /// Percentages from 0 to 100, 1 to 20 of them.
    pub steps: Vec<u8>,
    /// Seconds between steps (at least 1, at most 30 days).
    pub interval_seconds: u64,
    /// When the first step is applied (Unix milliseconds; default: now).
    #[serde(default)]
    pub start_at: Option<i64>,
    #[serde(default)]
    pub comment: String,
}

impl DraftService {
    /// Plans a progressive rollout. Refused while the approval policy covers the flag (its
    /// changes then go through reviewed drafts).
    pub fn create_rollout(
        &self,
        actor: &Actor,
        project: &str,
        new: NewRollout,
    ) -> Result<RolloutPlan> {
        actor.require(Role::Writer)?;
        if new.steps.is_empty() || new.steps.len() > MAX_STEPS {
            return Err(Error::invalid(
                "steps",
                "invalid_steps",
                format!("a rollout has 1 to {MAX_STEPS} steps"),
            ));
        }
        if let Some(i) = new.steps.iter().position(|p| *p > 100) {
            return Err(Error::invalid(
                format!("steps[{i}]"),
                "invalid_percentage",
                "a step is a percentage from 0 to 100",
            ));
        }
        if new.interval_seconds == 0 || new.interval_seconds > MAX_INTERVAL_SECONDS {
            return Err(Error::invalid(
                "interval_seconds",
                "invalid_interval",
                "the interval is from 1 second to 30 days",
            ));
        }
        let project = self.core.read(|tx| resolve(tx, Some(project), &new.flag))?;
        let id = format!("ro-{}", random_base62(10)?.to_lowercase());
        self.core.write(|tx| {
            crate::service::projects::lock(tx, &project)?;
            let flag = load(tx, &project, &new.flag)?;
            refuse_unreviewed(tx, &flag, &flag)?;
            if let Some(name) = &new.segment {
                if !flag.segments.iter().any(|s| &s.name == name) {
                    return Err(Error::invalid(
                        "segment",
                        "unknown_segment",
                        format!("{:?} has no segment named {name:?}", flag.key),
                    ));
                }
            }
            let now = now_ms();
            let plan = RolloutPlan {
                id: id.clone(),
                project: project.clone(),
                flag: flag.key.clone(),
                segment: new.segment.clone(),
                steps: new.steps.clone(),
                interval_seconds: new.interval_seconds,
                next_step: 0,
                next_at: Some(new.start_at.unwrap_or(now)),
                status: RolloutStatus::Running,
                comment: new.comment.trim().to_string(),
                created_by: actor.name.clone(),
                base_version: flag.version,
                outcome: None,
                version: 1,
                created_at: now,
                updated_at: now,
            };
            tx.insert_document(&row(&plan)?)?;
            let steps: Vec<String> = plan.steps.iter().map(|p| format!("{p}%")).collect();
            history(
                tx,
                actor,
                &plan,
                "create",
                format!(
                    "planned on {}: {} every {} s",
                    plan.flag,
                    steps.join(" → "),
                    plan.interval_seconds
                ),
            )?;
            Ok(plan)
        })
    }

    /// A project's rollout plans, newest first (of one flag when given).
    pub fn rollouts(&self, project: &str, flag: Option<&str>) -> Result<Vec<RolloutPlan>> {
        self.core.read(|tx| {
            crate::service::projects::get(tx, project)?;
            let mut plans: Vec<RolloutPlan> = tx
                .list_documents(project, ROLLOUTS, None)?
                .iter()
                .map(plan)
                .collect::<Result<_>>()?;
            plans.retain(|p| flag.is_none_or(|f| p.flag == f));
            plans.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
            Ok(plans)
        })
    }

    pub fn rollout(&self, project: &str, id: &str) -> Result<RolloutPlan> {
        self.core.read(|tx| find(tx, project, id))
    }

    /// Pauses, resumes or cancels a plan. Resuming continues from the flag as it is now.
    pub fn steer_rollout(
        &self,
        actor: &Actor,
        project: &str,
        id: &str,
        to: RolloutStatus,
    ) -> Result<RolloutPlan> {
        actor.require(Role::Writer)?;
        self.core.write(|tx| {
            crate::service::projects::lock(tx, project)?;
            let mut p = find(tx, project, id)?;
            let allowed = match to {
                RolloutStatus::Paused => p.status == RolloutStatus::Running,
                RolloutStatus::Running => p.status == RolloutStatus::Paused,
                RolloutStatus::Cancelled => {
                    matches!(p.status, RolloutStatus::Running | RolloutStatus::Paused)
                }
                RolloutStatus::Completed => false,
            };
            if !allowed {
                return Err(Error::Blocked {
                    code: "rollout_state",
                    message: format!(
                        "rollout {} is {}; it cannot become {}",
                        p.id,
                        p.status.as_str(),
                        to.as_str()
                    ),
                    field: None,
                    blocking: Vec::new(),
                });
            }
            let action = match to {
                RolloutStatus::Paused => "pause",
                RolloutStatus::Running => {
                    p.base_version = load(tx, project, &p.flag)?.version;
                    p.next_at = Some(p.next_at.unwrap_or(0).max(now_ms()));
                    p.outcome = None;
                    "resume"
                }
                _ => {
                    p.next_at = None;
                    "cancel"
                }
            };
            p.status = to;
            save(tx, actor, &mut p, action, format!("{action}d"))?;
            Ok(p)
        })
    }

    /// Applies the rollout steps due at `now`, each under its project's lock (once across
    /// nodes); returns the plans that stepped and those that paused, as `(project, id)`.
    pub(super) fn run_rollouts(&self, now: i64) -> Result<super::DueRun> {
        let due: Vec<(String, String)> = self.core.read(|tx| {
            let mut due = Vec::new();
            for p in tx.list_projects()? {
                for row in
                    tx.list_documents(&p.key, ROLLOUTS, Some(RolloutStatus::Running.as_str()))?
                {
                    let plan = plan(&row)?;
                    if plan.status == RolloutStatus::Running
                        && plan.next_at.is_some_and(|t| t <= now)
                    {
                        due.push((p.key.clone(), plan.id));
                    }
                }
            }
            Ok(due)
        })?;
        let (mut stepped, mut paused) = (Vec::new(), Vec::new());
        for (project, id) in due {
            let attempt = self.core.write(|tx| {
                crate::service::projects::lock(tx, &project)?;
                let p = find(tx, &project, &id)?;
                if p.status != RolloutStatus::Running || p.next_at.is_none_or(|t| t > now) {
                    return Ok(None);
                }
                step(tx, p, now).map(Some)
            });
            match attempt {
                Ok(Some(true)) => {
                    self.core.changed(&project);
                    stepped.push((project, id));
                }
                Ok(Some(false)) => paused.push((project, id)),
                Ok(None) => {}
                Err(e) => {
                    // A rule refused the step: pause with the reason, in its own transaction.
                    let reason = e.to_string();
                    self.core.write(|tx| {
                        crate::service::projects::lock(tx, &project)?;
                        let mut p = find(tx, &project, &id)?;
                        if p.status == RolloutStatus::Running {
                            pause(tx, &mut p, format!("step refused: {reason}"))?;
                        }
                        Ok(())
                    })?;
                    paused.push((project, id));
                }
            }
        }
        Ok((stepped, paused))
    }
}

/// Applies plan `p`'s next step; false when it paused instead (the flag changed since the last
/// step, or the segment is gone).
fn step(tx: &mut dyn Tx, mut p: RolloutPlan, now: i64) -> Result<bool> {
    let flag = load(tx, &p.project, &p.flag)?;
    if flag.version != p.base_version {
        let why = format!(
            "{} changed since the last step (version {} → {}): resume to continue from the flag as it is",
            p.flag, p.base_version, flag.version
        );
        pause(tx, &mut p, why)?;
        return Ok(false);
    }
    let percentage = p.steps.get(p.next_step).copied().unwrap_or(100);
    let change = match p.segment.clone() {
        None => FlagChange::SetAllocation {
            segments: None,
            all_other_users: Some(Rollout {
                percentage,
                weights: flag.all_other_users.weights.clone(),
            }),
        },
        Some(name) => {
            let mut segments = flag.segments.clone();
            let Some(segment) = segments.iter_mut().find(|s| s.name == name) else {
                let why = format!("{} has no segment named {name:?} any more", p.flag);
                pause(tx, &mut p, why)?;
                return Ok(false);
            };
            segment.percentage = percentage;
            FlagChange::SetAllocation {
                segments: Some(segments),
                all_other_users: None,
            }
        }
    };
    let total = p.steps.len();
    let why = format!(
        "progressive rollout {}: step {} of {total}, {percentage}%{}",
        p.id,
        p.next_step + 1,
        if p.comment.is_empty() {
            String::new()
        } else {
            format!(" ({})", p.comment)
        }
    );
    let author = Actor {
        name: p.created_by.clone(),
        role: Role::Writer,
        comment: Some(why),
    };
    let saved = apply_in(
        tx,
        &author,
        &p.project,
        &p.flag,
        Some(flag.version),
        vec![change],
    )?;
    p.base_version = saved.value.version;
    p.next_step += 1;
    if p.next_step >= total {
        p.status = RolloutStatus::Completed;
        p.next_at = None;
    } else {
        let wait = i64::try_from(p.interval_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        p.next_at = Some(p.next_at.unwrap_or(now).saturating_add(wait).max(now));
    }
    p.outcome = Some(format!(
        "step {} applied: version {}",
        p.next_step, saved.value.version
    ));
    let summary = format!("step {} of {total}: {percentage}%", p.next_step);
    let system = Actor {
        name: p.created_by.clone(),
        role: Role::Writer,
        comment: None,
    };
    save(tx, &system, &mut p, "step", summary)?;
    Ok(true)
}

fn pause(tx: &mut dyn Tx, p: &mut RolloutPlan, why: String) -> Result<()> {
    p.status = RolloutStatus::Paused;
    p.outcome = Some(why.clone());
    let by = Actor {
        name: p.created_by.clone(),
        role: Role::Writer,
        comment: None,
    };
    save(tx, &by, p, "step_refused", why)
}

fn find(tx: &mut dyn Tx, project: &str, id: &str) -> Result<RolloutPlan> {
    let not_found = || Error::NotFound {
        entity: "rollout",
        key: id.to_string(),
    };
    if !is_url_safe_key(id) {
        return Err(not_found());
    }
    crate::service::projects::get(tx, project)?;
    tx.get_document(project, ROLLOUTS, id)?
        .as_ref()
        .map(plan)
        .transpose()?
        .ok_or_else(not_found)
}

fn plan(row: &DocumentRow) -> Result<RolloutPlan> {
    crate::service::convert::from_doc("rollout", &row.key, &row.doc)
}

fn row(p: &RolloutPlan) -> Result<DocumentRow> {
    Ok(DocumentRow {
        project: p.project.clone(),
        collection: ROLLOUTS.to_string(),
        key: p.id.clone(),
        // The status, so that the scheduler lists only the running plans.
        kind: p.status.as_str().to_string(),
        archived: false,
        doc: serde_json::to_string(p).map_err(|e| Error::Internal(e.into()))?,
        version: p.version,
        created_at: p.created_at,
        updated_at: p.updated_at,
    })
}

fn save(
    tx: &mut dyn Tx,
    actor: &Actor,
    p: &mut RolloutPlan,
    action: &str,
    summary: String,
) -> Result<()> {
    let expected = p.version;
    p.version += 1;
    p.updated_at = now_ms().max(p.updated_at);
    tx.update_document(&row(p)?, expected)?;
    history(tx, actor, p, action, summary)
}

fn history(
    tx: &mut dyn Tx,
    actor: &Actor,
    p: &RolloutPlan,
    action: &str,
    summary: String,
) -> Result<()> {
    let doc = serde_json::to_string(p).map_err(|e| Error::Internal(e.into()))?;
    record(
        tx,
        actor,
        &p.project,
        "rollout",
        &p.id,
        p.version,
        p.updated_at,
        action,
        summary,
        doc,
    )
}
