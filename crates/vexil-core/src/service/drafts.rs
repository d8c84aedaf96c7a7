//! Drafts (change requests): typed changes to a flag held server-side against a base version,
//! with a title and a comment, previewed in the product's words and as the users they move,
//! reviewed under the project's approval policy, then published as one new version, now or at
//! a scheduled time. Publishing is refused, with the reason, when the flag moved on since the
//! base, a rule blocks the changes, or the policy does not hold yet.
//!
//! Drafts and the policy are project documents (collections `draft` and `policy`); every step
//! (created, edited, reviewed, scheduled, published, closed, failed) is a history entry of the
//! draft, so the audit log shows who did what, when and why.

mod describe;
mod moved;
mod rollout;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vexil_store::{DocumentRow, Tx};

use super::flags::{apply_in, load, preview_in, resolve, FlagChange};
use super::{now_ms, record, Actor, Core, Role, Saved};
use crate::error::{Error, Result};
use crate::keys::{is_url_safe_key, random_base62};
use crate::model::{DeploymentType, Flag, FlagState};

pub use describe::{describe, serves, targeting};
pub use moved::Moved;
pub use rollout::{NewRollout, RolloutPlan, RolloutStatus};

const DRAFTS: &str = "draft";
const POLICIES: &str = "policy";
const APPROVALS: &str = "approvals";
/// A draft holds at most this many changes.
const MAX_CHANGES: usize = 100;

/// Where a draft stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DraftStatus {
    /// Being reviewed; can be edited, published, scheduled or closed.
    Open,
    /// To be published at `scheduled_at` by the scheduler.
    Scheduled,
    Published,
    Closed,
    /// A scheduled publication was refused (see `outcome`); it can be edited and tried again.
    Failed,
}

impl DraftStatus {
    /// The status as stored and served (`open`, `scheduled`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DraftStatus::Open => "open",
            DraftStatus::Scheduled => "scheduled",
            DraftStatus::Published => "published",
            DraftStatus::Closed => "closed",
            DraftStatus::Failed => "failed",
        }
    }
}

/// A reviewer's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    RequestChanges,
    Reject,
}

/// One review of a draft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Review {
    pub reviewer: String,
    pub decision: Decision,
    #[serde(default)]
    pub comment: String,
    pub at: i64,
    /// The draft's revision reviewed: editing the changes asks for new reviews.
    pub revision: u32,
}

/// A change request on one flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Draft {
    pub id: String,
    pub project: String,
    pub flag: String,
    pub title: String,
    #[serde(default)]
    pub comment: String,
    /// The flag's version the changes are based on; publishing is refused once it moved on.
    pub base_version: i64,
    pub changes: Vec<FlagChange>,
    pub author: String,
    pub status: DraftStatus,
    /// Increases with each edit of the changes.
    pub revision: u32,
    #[serde(default)]
    pub reviews: Vec<Review>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<i64>,
    /// Who scheduled it: the scheduler publishes on their behalf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_by: Option<String>,
    /// The flag's version the draft became.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_version: Option<i64>,
    /// Why the last attempt to publish failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Which flags of a project need approved drafts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyScope {
    /// Every flag.
    #[default]
    AllFlags,
    /// Flags that are active, or that the change activates.
    ActiveFlags,
    /// Flags attached to a deployment of type `server`.
    ServerDeployments,
    /// Flags attached to a deployment an admin marked protected (production-critical).
    ProtectedDeployments,
}

/// A project's approval policy. With `required_approvals` 0 (the default) changes need none.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalPolicy {
    /// Approvals a covered change needs before it is published (0 to 10).
    pub required_approvals: u32,
    /// Whether the draft's author may approve it.
    #[serde(default)]
    pub allow_self_approval: bool,
    #[serde(default)]
    pub applies_to: PolicyScope,
}

/// Where a draft's approvals stand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Approvals {
    /// Whether the project's policy covers this change.
    pub required: bool,
    pub needed: u32,
    /// Reviewers whose latest review of this revision approves (the author only when allowed).
    pub approved_by: Vec<String>,
    /// Reviewers whose latest review of this revision requests changes or rejects.
    pub blocked_by: Vec<String>,
    /// Whether publishing may go ahead as far as reviews go.
    pub satisfied: bool,
}

/// A draft with what it would do now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DraftView {
    #[serde(flatten)]
    pub draft: Draft,
    /// The changes in the product's words, against the flag as it is now.
    pub summary: Vec<String>,
    pub warnings: Vec<String>,
    /// Users whose variant the draft changes, on a sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved: Option<Moved>,
    pub approvals: Approvals,
    /// Why it cannot be published now, if it cannot (the flag moved on, a rule, approvals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
}

/// A new draft.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDraft {
    pub flag: String,
    pub title: String,
    #[serde(default)]
    pub comment: String,
    /// The flag's version the changes are based on (default: the current one).
    #[serde(default)]
    pub base_version: Option<i64>,
    pub changes: Vec<FlagChange>,
}

/// An edit of an open draft: the fields given replace the draft's.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftPatch {
    pub title: Option<String>,
    pub comment: Option<String>,
    pub base_version: Option<i64>,
    pub changes: Option<Vec<FlagChange>>,
}

/// A review to add.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReview {
    pub decision: Decision,
    #[serde(default)]
    pub comment: String,
}

/// What one run of the scheduler did: the drafts published and rollout steps applied, then
/// the drafts marked failed and rollouts paused, as `(project, id)`.
pub type DueRun = (Vec<(String, String)>, Vec<(String, String)>);

/// Draft use cases.
#[derive(Clone)]
pub struct DraftService {
    pub(crate) core: Core,
}

impl DraftService {
    pub fn policy(&self, project: &str) -> Result<ApprovalPolicy> {
        self.core.read(|tx| {
            super::projects::get(tx, project)?;
            policy(tx, project)
        })
    }

    /// Replaces the project's approval policy (admins only).
    pub fn set_policy(
        &self,
        actor: &Actor,
        project: &str,
        p: ApprovalPolicy,
    ) -> Result<ApprovalPolicy> {
        actor.require(Role::Admin)?;
        if p.required_approvals > 10 {
            return Err(Error::invalid(
                "required_approvals",
                "invalid_approvals",
                "required_approvals is from 0 to 10",
            ));
        }
        self.core.write(|tx| {
            super::projects::lock(tx, project)?;
            let doc = serde_json::to_string(&p).map_err(|e| Error::Internal(e.into()))?;
            let now = now_ms();
            let version = match tx.get_document(project, POLICIES, APPROVALS)? {
                Some(row) => {
                    let next = DocumentRow {
                        doc: doc.clone(),
                        version: row.version + 1,
                        updated_at: now,
                        ..row.clone()
                    };
                    tx.update_document(&next, row.version)?;
                    next.version
                }
                None => {
                    tx.insert_document(&DocumentRow {
                        project: project.to_string(),
                        collection: POLICIES.to_string(),
                        key: APPROVALS.to_string(),
                        kind: APPROVALS.to_string(),
                        archived: false,
                        doc: doc.clone(),
                        version: 1,
                        created_at: now,
                        updated_at: now,
                    })?;
                    1
                }
            };
            let summary = format!(
                "{} approval(s) for {}, author {} approve",
                p.required_approvals,
                match p.applies_to {
                    PolicyScope::AllFlags => "every flag",
                    PolicyScope::ActiveFlags => "active flags",
                    PolicyScope::ServerDeployments => "flags in server deployments",
                    PolicyScope::ProtectedDeployments => "flags in protected deployments",
                },
                if p.allow_self_approval {
                    "may"
                } else {
                    "may not"
                }
            );
            record(
                tx,
                actor,
                project,
                "approval_policy",
                APPROVALS,
                version,
                now,
                "update",
                summary,
                doc,
            )?;
            Ok(p)
        })
    }

    /// Opens a draft. Its changes must apply to the flag now (they are checked like a
    /// publication, without writing).
    pub fn create(&self, actor: &Actor, project: Option<&str>, new: NewDraft) -> Result<DraftView> {
        actor.require(Role::Writer)?;
        check_text(&new.title, &new.changes)?;
        let project = self.core.read(|tx| resolve(tx, project, &new.flag))?;
        let id = format!("dr-{}", random_base62(10)?.to_lowercase());
        let draft = self.core.write(|tx| {
            super::projects::lock(tx, &project)?;
            let flag = load(tx, &project, &new.flag)?;
            let base_version = new.base_version.unwrap_or(flag.version);
            let now = now_ms();
            let draft = Draft {
                id: id.clone(),
                project: project.clone(),
                flag: new.flag.clone(),
                title: new.title.trim().to_string(),
                comment: new.comment.trim().to_string(),
                base_version,
                changes: new.changes,
                author: actor.name.clone(),
                status: DraftStatus::Open,
                revision: 1,
                reviews: Vec::new(),
                scheduled_at: None,
                scheduled_by: None,
                published_version: None,
                outcome: None,
                version: 1,
                created_at: now,
                updated_at: now,
            };
            preview_in(
                tx,
                &project,
                &draft.flag,
                Some(base_version),
                draft.changes.clone(),
            )?;
            tx.insert_document(&row(&draft)?)?;
            history(
                tx,
                actor,
                &draft,
                "create",
                format!("opened on {}: {}", draft.flag, draft.title),
            )?;
            Ok(draft)
        })?;
        self.get(&project, &draft.id)
    }

    /// The drafts of a project, newest first, of one flag and status when given.
    pub fn list(
        &self,
        project: &str,
        flag: Option<&str>,
        status: Option<DraftStatus>,
    ) -> Result<Vec<Draft>> {
        self.core.read(|tx| {
            super::projects::get(tx, project)?;
            let mut drafts: Vec<Draft> = tx
                .list_documents(project, DRAFTS, None)?
                .iter()
                .map(draft)
                .collect::<Result<_>>()?;
            drafts.retain(|d| {
                flag.is_none_or(|f| d.flag == f) && status.is_none_or(|s| d.status == s)
            });
            drafts.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
            Ok(drafts)
        })
    }

    /// A draft with its preview: the changes in words against the flag now, the users they
    /// move on a sample, where approvals stand, and what blocks publishing.
    pub fn get(&self, project: &str, id: &str) -> Result<DraftView> {
        self.core.read(|tx| {
            let d = find(tx, project, id)?;
            let policy = policy(tx, project)?;
            let flag = load(tx, project, &d.flag)?;
            let mut blocked = None;
            let (mut summary, mut warnings, mut moved) = (Vec::new(), Vec::new(), None);
            let open = matches!(
                d.status,
                DraftStatus::Open | DraftStatus::Scheduled | DraftStatus::Failed
            );
            if open {
                if flag.version != d.base_version {
                    blocked = Some(moved_on(&d, flag.version));
                }
                // Against the flag now, so the preview shows what publishing would do.
                match preview_in(tx, project, &d.flag, Some(flag.version), d.changes.clone()) {
                    Ok((before, after, w)) => {
                        summary = describe(&before, &after);
                        warnings = w;
                        moved = Some(moved::moved(tx, project, &before, &after)?);
                    }
                    Err(e) => {
                        blocked.get_or_insert_with(|| format!("the changes no longer apply: {e}"));
                    }
                }
            }
            let approvals = approvals(tx, &policy, &d, &flag)?;
            if open && blocked.is_none() && !approvals.satisfied {
                blocked = Some(approval_reason(&approvals));
            }
            Ok(DraftView {
                draft: d,
                summary,
                warnings,
                moved,
                approvals,
                blocked,
            })
        })
    }

    /// Edits an open draft; new changes ask for new reviews.
    pub fn update(
        &self,
        actor: &Actor,
        project: &str,
        id: &str,
        expected: Option<i64>,
        patch: DraftPatch,
    ) -> Result<DraftView> {
        actor.require(Role::Writer)?;
        self.core.write(|tx| {
            super::projects::lock(tx, project)?;
            let mut d = find(tx, project, id)?;
            super::check_version("draft", id, expected, d.version)?;
            require_status(&d, &[DraftStatus::Open, DraftStatus::Failed])?;
            if let Some(t) = patch.title {
                d.title = t.trim().to_string();
            }
            if let Some(c) = patch.comment {
                d.comment = c.trim().to_string();
            }
            if let Some(v) = patch.base_version {
                d.base_version = v;
            }
            if let Some(changes) = patch.changes {
                d.changes = changes;
                d.revision += 1;
            }
            check_text(&d.title, &d.changes)?;
            preview_in(
                tx,
                project,
                &d.flag,
                Some(d.base_version),
                d.changes.clone(),
            )?;
            d.status = DraftStatus::Open;
            d.outcome = None;
            save(tx, actor, &mut d, "update", "edited".to_string())
        })?;
        self.get(project, id)
    }

    /// Adds `changes` after a draft's own (the console's editing areas each add theirs to one
    /// draft). `expected` is the draft's version the editor saw, so that two tabs editing one
    /// draft do not overwrite each other's changes unseen.
    pub fn add_changes(
        &self,
        actor: &Actor,
        project: &str,
        id: &str,
        expected: Option<i64>,
        changes: Vec<FlagChange>,
    ) -> Result<DraftView> {
        let d = self.core.read(|tx| find(tx, project, id))?;
        let mut all = d.changes;
        all.extend(changes);
        let patch = DraftPatch {
            changes: Some(all),
            ..DraftPatch::default()
        };
        self.update(actor, project, id, expected.or(Some(d.version)), patch)
    }

    /// An open draft with the flag as publishing it now would make it (its changes applied to
    /// the flag as it is now), for editing it as a whole.
    pub fn working(&self, project: &str, id: &str) -> Result<(Draft, Flag)> {
        self.core.read(|tx| {
            let d = find(tx, project, id)?;
            require_status(&d, &[DraftStatus::Open, DraftStatus::Failed])?;
            let now = load(tx, project, &d.flag)?.version;
            let (_, after, _) = preview_in(tx, project, &d.flag, Some(now), d.changes.clone())?;
            Ok((d, after))
        })
    }

    /// Adds a review. The author may not review their own draft unless the policy allows it.
    pub fn review(
        &self,
        actor: &Actor,
        project: &str,
        id: &str,
        review: NewReview,
    ) -> Result<DraftView> {
        actor.require(Role::Writer)?;
        self.core.write(|tx| {
            super::projects::lock(tx, project)?;
            let mut d = find(tx, project, id)?;
            require_status(
                &d,
                &[
                    DraftStatus::Open,
                    DraftStatus::Scheduled,
                    DraftStatus::Failed,
                ],
            )?;
            let policy = policy(tx, project)?;
            if d.author == actor.name && !policy.allow_self_approval {
                return Err(Error::Blocked {
                    code: "self_review",
                    message: "the project's policy does not let the author review their own draft"
                        .into(),
                    field: None,
                    blocking: vec![d.author.clone()],
                });
            }
            d.reviews.push(Review {
                reviewer: actor.name.clone(),
                decision: review.decision,
                comment: review.comment.trim().to_string(),
                at: now_ms(),
                revision: d.revision,
            });
            let what = match review.decision {
                Decision::Approve => "approved",
                Decision::RequestChanges => "requested changes",
                Decision::Reject => "rejected",
            };
            save(tx, actor, &mut d, "review", what.to_string())
        })?;
        self.get(project, id)
    }

    /// Publishes an open draft now as one new version of its flag.
    pub fn publish(&self, actor: &Actor, project: &str, id: &str) -> Result<DraftView> {
        actor.require(Role::Writer)?;
        self.core.write(|tx| {
            super::projects::lock(tx, project)?;
            let d = find(tx, project, id)?;
            require_status(&d, &[DraftStatus::Open, DraftStatus::Failed])?;
            publish_in(tx, actor, d)
        })?;
        self.core.changed(project);
        self.get(project, id)
    }

    /// Schedules an open draft to be published at `at` (approved first where the policy
    /// requires it); the scheduler publishes it on behalf of the person who scheduled it.
    pub fn schedule(&self, actor: &Actor, project: &str, id: &str, at: i64) -> Result<DraftView> {
        actor.require(Role::Writer)?;
        self.core.write(|tx| {
            super::projects::lock(tx, project)?;
            let mut d = find(tx, project, id)?;
            require_status(
                &d,
                &[
                    DraftStatus::Open,
                    DraftStatus::Failed,
                    DraftStatus::Scheduled,
                ],
            )?;
            let policy = policy(tx, project)?;
            let flag = load(tx, project, &d.flag)?;
            let a = approvals(tx, &policy, &d, &flag)?;
            if !a.satisfied {
                return Err(Error::blocked(
                    "approval_required",
                    approval_reason(&a),
                    a.blocked_by,
                ));
            }
            d.status = DraftStatus::Scheduled;
            d.scheduled_at = Some(at);
            d.scheduled_by = Some(actor.name.clone());
            d.outcome = None;
            save(tx, actor, &mut d, "schedule", format!("to publish at {at}"))
        })?;
        self.get(project, id)
    }

    /// Closes a draft without publishing it (a scheduled one is unscheduled).
    pub fn close(&self, actor: &Actor, project: &str, id: &str) -> Result<DraftView> {
        actor.require(Role::Writer)?;
        self.core.write(|tx| {
            super::projects::lock(tx, project)?;
            let mut d = find(tx, project, id)?;
            require_status(
                &d,
                &[
                    DraftStatus::Open,
                    DraftStatus::Scheduled,
                    DraftStatus::Failed,
                ],
            )?;
            d.status = DraftStatus::Closed;
            d.scheduled_at = None;
            save(tx, actor, &mut d, "close", "closed".to_string())
        })?;
        self.get(project, id)
    }

    /// Publishes every scheduled draft due at `now` (only scheduled drafts are read: a draft's
    /// stored kind is its status), each in its own transaction under its
    /// project's lock, so that with several nodes each is published once: a node that waited
    /// for the lock finds it published. A draft refused (the flag moved on, a rule) is marked
    /// failed with the reason. Then applies the progressive rollouts' steps due. Returns what
    /// was applied and what was refused, as `(project, id)` of drafts and rollout plans.
    pub fn run_due(&self, now: i64) -> Result<DueRun> {
        let due: Vec<(String, String)> = self.core.read(|tx| {
            let mut due = Vec::new();
            for p in tx.list_projects()? {
                let scheduled = Some(DraftStatus::Scheduled.as_str());
                for row in tx.list_documents(&p.key, DRAFTS, scheduled)? {
                    let d = draft(&row)?;
                    if d.status == DraftStatus::Scheduled
                        && d.scheduled_at.is_some_and(|t| t <= now)
                    {
                        due.push((p.key.clone(), d.id));
                    }
                }
            }
            Ok(due)
        })?;
        let (mut published, mut failed) = (Vec::new(), Vec::new());
        for (project, id) in due {
            let attempt = self.core.write(|tx| {
                super::projects::lock(tx, &project)?;
                let d = find(tx, &project, &id)?;
                if d.status != DraftStatus::Scheduled || d.scheduled_at.is_none_or(|t| t > now) {
                    return Ok(false); // another node published it, or it was changed
                }
                let on_behalf = Actor {
                    name: d.scheduled_by.clone().unwrap_or_else(|| d.author.clone()),
                    role: Role::Writer,
                    comment: None,
                };
                publish_in(tx, &on_behalf, d)?;
                Ok(true)
            });
            match attempt {
                Ok(true) => {
                    self.core.changed(&project);
                    published.push((project, id));
                }
                Ok(false) => {}
                Err(e) => {
                    let reason = e.to_string();
                    self.core.write(|tx| {
                        super::projects::lock(tx, &project)?;
                        let mut d = find(tx, &project, &id)?;
                        if d.status != DraftStatus::Scheduled {
                            return Ok(());
                        }
                        let by = Actor {
                            name: d.scheduled_by.clone().unwrap_or_else(|| d.author.clone()),
                            role: Role::Writer,
                            comment: None,
                        };
                        d.status = DraftStatus::Failed;
                        d.outcome = Some(reason.clone());
                        let summary = format!("not published on {}: {reason}", d.flag);
                        save(tx, &by, &mut d, "schedule_failed", summary)?;
                        Ok(())
                    })?;
                    failed.push((project, id));
                }
            }
        }
        let (stepped, paused) = self.run_rollouts(now)?;
        published.extend(stepped);
        failed.extend(paused);
        Ok((published, failed))
    }
}

/// Publishes `d` inside a write transaction holding the project's lock: the approvals, then the
/// base version, then the changes through the one entry point of flag writes.
fn publish_in(tx: &mut dyn Tx, actor: &Actor, mut d: Draft) -> Result<Saved<Flag>> {
    let policy = policy(tx, &d.project)?;
    let flag = load(tx, &d.project, &d.flag)?;
    let a = approvals(tx, &policy, &d, &flag)?;
    if !a.satisfied {
        return Err(Error::blocked(
            "approval_required",
            approval_reason(&a),
            a.blocked_by,
        ));
    }
    if flag.version != d.base_version {
        return Err(Error::Conflict {
            code: "base_moved",
            message: moved_on(&d, flag.version),
            field: Some("base_version".into()),
        });
    }
    let why = if d.comment.is_empty() {
        format!("{} (draft {})", d.title, d.id)
    } else {
        format!("{}: {} (draft {})", d.title, d.comment, d.id)
    };
    let author = actor.clone().with_comment(Some(why));
    let saved = apply_in(
        tx,
        &author,
        &d.project,
        &d.flag,
        Some(d.base_version),
        d.changes.clone(),
    )?;
    d.status = DraftStatus::Published;
    d.published_version = Some(saved.value.version);
    d.scheduled_at = None;
    d.outcome = None;
    let summary = format!("published as version {} of {}", saved.value.version, d.flag);
    save(tx, actor, &mut d, "publish", summary)?;
    Ok(saved)
}

/// Refuses a direct change of `flag` into `after` that the project's approval policy covers
/// (by what the flag is, or what the change makes it): such changes go through a draft.
pub(crate) fn refuse_unreviewed(tx: &mut dyn Tx, flag: &Flag, after: &Flag) -> Result<()> {
    let policy = policy(tx, &flag.project)?;
    if policy.required_approvals == 0 || !covers(tx, &policy, flag, after)? {
        return Ok(());
    }
    Err(Error::Blocked {
        code: "approval_required",
        message: format!(
            "changes to {:?} need {} approval(s) under the project's policy: open a draft (POST /api/v1/projects/{}/drafts) and have it reviewed",
            flag.key, policy.required_approvals, flag.project
        ),
        field: None,
        blocking: Vec::new(),
    })
}

fn policy(tx: &mut dyn Tx, project: &str) -> Result<ApprovalPolicy> {
    match tx.get_document(project, POLICIES, APPROVALS)? {
        Some(row) => serde_json::from_str(&row.doc).map_err(|e| Error::Internal(e.into())),
        None => Ok(ApprovalPolicy::default()),
    }
}

/// Whether `policy` covers a change of `before` into `after`.
fn covers(tx: &mut dyn Tx, policy: &ApprovalPolicy, before: &Flag, after: &Flag) -> Result<bool> {
    Ok(match policy.applies_to {
        PolicyScope::AllFlags => true,
        PolicyScope::ActiveFlags => {
            before.state == FlagState::Active || after.state == FlagState::Active
        }
        PolicyScope::ServerDeployments | PolicyScope::ProtectedDeployments => {
            let covered: Vec<String> = tx
                .list_deployments(&before.project)?
                .iter()
                .map(crate::service::convert::deployment)
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .filter(|d| match policy.applies_to {
                    PolicyScope::ServerDeployments => d.kind == DeploymentType::Server,
                    _ => d.protected,
                })
                .map(|d| d.key)
                .collect();
            before
                .deployments
                .iter()
                .chain(&after.deployments)
                .any(|d| covered.contains(d))
        }
    })
}

fn approvals(
    tx: &mut dyn Tx,
    policy: &ApprovalPolicy,
    d: &Draft,
    flag: &Flag,
) -> Result<Approvals> {
    // The flag the draft would make decides too (activating a flag, adding a deployment).
    let after = preview_in(
        tx,
        &d.project,
        &d.flag,
        Some(flag.version),
        d.changes.clone(),
    )
    .map(|(_, after, _)| after)
    .unwrap_or_else(|_| flag.clone());
    let required = policy.required_approvals > 0 && covers(tx, policy, flag, &after)?;
    let mut latest: Vec<&Review> = Vec::new();
    for r in d.reviews.iter().filter(|r| r.revision == d.revision) {
        latest.retain(|x| x.reviewer != r.reviewer);
        latest.push(r);
    }
    let approved_by: Vec<String> = latest
        .iter()
        .filter(|r| r.decision == Decision::Approve)
        .filter(|r| policy.allow_self_approval || r.reviewer != d.author)
        .map(|r| r.reviewer.clone())
        .collect();
    let blocked_by: Vec<String> = latest
        .iter()
        .filter(|r| r.decision != Decision::Approve)
        .map(|r| r.reviewer.clone())
        .collect();
    let needed = if required {
        policy.required_approvals
    } else {
        0
    };
    let satisfied = blocked_by.is_empty() && approved_by.len() >= needed as usize;
    Ok(Approvals {
        required,
        needed,
        approved_by,
        blocked_by,
        satisfied,
    })
}

fn approval_reason(a: &Approvals) -> String {
    if !a.blocked_by.is_empty() {
        format!(
            "{} requested changes or rejected this revision",
            a.blocked_by.join(", ")
        )
    } else {
        format!(
            "the project's policy needs {} approval(s); it has {}",
            a.needed,
            a.approved_by.len()
        )
    }
}

fn moved_on(d: &Draft, current: i64) -> String {
    format!(
        "{} moved on to version {current} since this draft (based on version {}): review the changes against the flag now and set the draft's base_version to {current}",
        d.flag, d.base_version
    )
}

fn require_status(d: &Draft, allowed: &[DraftStatus]) -> Result<()> {
    if allowed.contains(&d.status) {
        return Ok(());
    }
    Err(Error::Blocked {
        code: "draft_not_open",
        message: format!("draft {} is {}", d.id, d.status.as_str()),
        field: None,
        blocking: Vec::new(),
    })
}

fn check_text(title: &str, changes: &[FlagChange]) -> Result<()> {
    if title.trim().is_empty() || title.chars().count() > 200 {
        return Err(Error::invalid(
            "title",
            "invalid_title",
            "a draft has a title of 1 to 200 characters",
        ));
    }
    if changes.is_empty() || changes.len() > MAX_CHANGES {
        return Err(Error::invalid(
            "changes",
            "invalid_changes",
            format!("a draft holds 1 to {MAX_CHANGES} changes"),
        ));
    }
    Ok(())
}

fn find(tx: &mut dyn Tx, project: &str, id: &str) -> Result<Draft> {
    let not_found = || Error::NotFound {
        entity: "draft",
        key: id.to_string(),
    };
    if !is_url_safe_key(id) {
        return Err(not_found());
    }
    super::projects::get(tx, project)?;
    tx.get_document(project, DRAFTS, id)?
        .as_ref()
        .map(draft)
        .transpose()?
        .ok_or_else(not_found)
}

fn draft(row: &DocumentRow) -> Result<Draft> {
    super::convert::from_doc("draft", &row.key, &row.doc)
}

fn row(d: &Draft) -> Result<DocumentRow> {
    Ok(DocumentRow {
        project: d.project.clone(),
        collection: DRAFTS.to_string(),
        key: d.id.clone(),
        // The status, so that the scheduler lists only the scheduled drafts.
        kind: d.status.as_str().to_string(),
        archived: false,
        doc: serde_json::to_string(d).map_err(|e| Error::Internal(e.into()))?,
        version: d.version,
        created_at: d.created_at,
        updated_at: d.updated_at,
    })
}

/// Writes `d` as its next version with a history entry.
fn save(
    tx: &mut dyn Tx,
    actor: &Actor,
    d: &mut Draft,
    action: &str,
    summary: String,
) -> Result<()> {
    let expected = d.version;
    d.version += 1;
    d.updated_at = now_ms().max(d.updated_at);
    tx.update_document(&row(d)?, expected)?;
    history(tx, actor, d, action, summary)
}

fn history(tx: &mut dyn Tx, actor: &Actor, d: &Draft, action: &str, summary: String) -> Result<()> {
    let doc = serde_json::to_string(d).map_err(|e| Error::Internal(e.into()))?;
    record(
        tx,
        actor,
        &d.project,
        "draft",
        &d.id,
        d.version,
        d.updated_at,
        action,
        summary,
        doc,
    )
}
