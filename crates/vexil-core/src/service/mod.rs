//! The use cases: every change a person can make, each one authorized, validated, checked
//! against the prerequisite rules, written with its history entry in one transaction, and
//! announced to the [`ChangeListener`]s (which rebuild SDK snapshots).
//!
//! Services are synchronous: the store drivers are, and the HTTP layer runs service calls on
//! a blocking thread pool. The console and the JSON API call the same methods.

mod audit;
mod cohorts;
pub(crate) mod convert;
mod deployments;
mod drafts;
mod flags;
pub(crate) mod groups;
mod import;
mod keys;
mod metrics;
mod projects;
mod results;
mod secrets;
mod sessions;
mod webhooks;

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use utoipa::ToSchema;
use vexil_store::{HistoryRow, Store, Tx};

pub use audit::{AuditEntry, AuditFilter, AuditPage, AuditService, AUDIT_PAGE_LIMIT};
pub use cohorts::{clean_members, parse_members, CohortService, CohortUpload, MemberFormat};
pub use deployments::{
    DeploymentPatch, DeploymentService, DeploymentView, NewDeployment, RotateDeploymentKey,
};
pub use drafts::{
    serves, ApprovalPolicy, Approvals, Decision, Draft, DraftPatch, DraftService, DraftStatus,
    DraftView, Moved, NewDraft, NewReview, NewRollout, PolicyScope, Review, RolloutPlan,
    RolloutStatus,
};
pub use flags::{
    op_words, stale_reason, Dependencies, DependencyInfo, EligibleGroups, EligibleMutex,
    Evaluation, ExposureBucket, ExposureKind, ExposureParams, ExposureStats, FlagChange, FlagOrder,
    FlagPatch, FlagQuery, FlagService, FlagSummary, GroupInfo, Interval, NewFlag, SlotInfo,
    StaleArchive, UserFlag, UserView, VariantCount, VersionInfo, OPERATORS, STALE_AFTER_DAYS,
};
pub use groups::{
    GroupMember, GroupPatch, GroupService, GroupVersion, GroupView, HoldoutPatch, MutexGroupPatch,
    NewHoldout, NewMutexGroup, SlotSpec,
};
pub use import::{ImportReport, ImportService};
pub use keys::{CreatedKey, KeyInfo, KeyService};
pub use metrics::{MetricPatch, MetricService, MetricVersion, NewMetric};
pub use projects::{NewProject, ProjectPatch, ProjectService, ProjectView, RotateProjectKeys};
pub use results::{DayUnits, ExperimentResults, VariantUnits};
pub use secrets::{SecretRotation, ServerSecrets, MAX_GRACE_SECONDS};
pub use sessions::NewSession;
pub use webhooks::{
    Attempt, DeliveryView, DueEvent, NewWebhook, Outcome, QueuedEvent, RotateWebhookSecret,
    WebhookPatch, WebhookService, WebhookView, WebhookWithSecret, LOG_SIZE,
};

use crate::error::{Error, Result};

/// Who is making a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The management key's name, recorded in history.
    pub name: String,
    pub role: Role,
    /// Why the request changes what it changes, in the author's words: recorded with every
    /// history entry it writes (the audit log's "why").
    pub comment: Option<String>,
}

impl Actor {
    /// The actor for changes made on the command line with direct access to the database.
    pub fn cli() -> Actor {
        Actor {
            name: "cli".to_string(),
            role: Role::Admin,
            comment: None,
        }
    }

    /// The same actor, giving `comment` as the reason for its changes.
    pub fn with_comment(mut self, comment: Option<String>) -> Actor {
        self.comment = comment.filter(|c| !c.trim().is_empty());
        self
    }

    fn require(&self, role: Role) -> Result<()> {
        if self.role >= role {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "the key {:?} has the {} role; this needs {}",
                self.name,
                self.role.as_str(),
                role.as_str()
            )))
        }
    }
}

/// What a management key may do. Ordered: each role includes the ones below it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read everything.
    Reader,
    /// Read and change projects, deployments, flags and cohorts.
    Writer,
    /// Everything, including management keys.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "reader" => Some(Role::Reader),
            "writer" => Some(Role::Writer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Told after every committed change, with the project it touched.
pub trait ChangeListener: Send + Sync {
    fn changed(&self, project: &str);

    /// Told instead of [`ChangeListener::changed`] after a change that must be in effect on
    /// this node when the service call returns (a rotated key must stop working before the
    /// rotation answers): the listener applies it before returning. By default the same as
    /// `changed`.
    fn changed_now(&self, project: &str) -> Result<()> {
        self.changed(project);
        Ok(())
    }
}

/// The result of a write, with warnings the caller should show (e.g. a changed salt).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Saved<T> {
    #[serde(flatten)]
    pub value: T,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Shared by every service: the store and the listeners.
#[derive(Clone)]
pub(crate) struct Core {
    store: Arc<dyn Store>,
    listeners: Arc<RwLock<Vec<Arc<dyn ChangeListener>>>>,
    /// Experiment and holdout analyses kept between requests.
    analyses: Arc<results::Analyses>,
}

impl Core {
    fn write<R>(&self, f: impl FnOnce(&mut dyn Tx) -> Result<R>) -> Result<R> {
        vexil_store::write(&*self.store, f)
    }

    fn read<R>(&self, f: impl FnOnce(&mut dyn Tx) -> Result<R>) -> Result<R> {
        vexil_store::read(&*self.store, f)
    }

    fn changed(&self, project: &str) {
        let listeners = match self.listeners.read() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        for listener in listeners {
            listener.changed(project);
        }
    }

    /// Like [`Core::changed`], waiting for each listener to apply the change. The change is
    /// committed whatever happens here, so a listener's failure is logged, not returned (the
    /// publisher retries a failed rebuild at its next sync).
    fn changed_now(&self, project: &str) {
        let listeners = match self.listeners.read() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        for listener in listeners {
            if let Err(err) = listener.changed_now(project) {
                tracing::warn!(
                    project,
                    error = %crate::error::chain(&err),
                    "applying a change at once failed; it follows at the next sync"
                );
            }
        }
    }
}

/// Every service over one store.
#[derive(Clone)]
pub struct Services {
    core: Core,
    pub audit: AuditService,
    pub drafts: DraftService,
    pub projects: ProjectService,
    pub deployments: DeploymentService,
    pub flags: FlagService,
    pub groups: GroupService,
    pub metrics: MetricService,
    pub cohorts: CohortService,
    pub keys: KeyService,
    pub import: ImportService,
    pub webhooks: WebhookService,
}

impl Services {
    pub fn new(store: Arc<dyn Store>) -> Services {
        let core = Core {
            store,
            listeners: Arc::new(RwLock::new(Vec::new())),
            analyses: Arc::default(),
        };
        Services {
            audit: AuditService { core: core.clone() },
            drafts: DraftService { core: core.clone() },
            projects: ProjectService { core: core.clone() },
            deployments: DeploymentService { core: core.clone() },
            flags: FlagService { core: core.clone() },
            groups: GroupService { core: core.clone() },
            metrics: MetricService { core: core.clone() },
            cohorts: CohortService { core: core.clone() },
            keys: KeyService {
                core: core.clone(),
                cache: Arc::default(),
            },
            import: ImportService { core: core.clone() },
            webhooks: WebhookService { core: core.clone() },
            core,
        }
    }

    /// Registers a listener told after every committed change.
    pub fn subscribe(&self, listener: Arc<dyn ChangeListener>) {
        match self.core.listeners.write() {
            Ok(mut l) => l.push(listener),
            Err(poisoned) => poisoned.into_inner().push(listener),
        }
    }

    /// The store, for components that read it directly (snapshot builders).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.core.store
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Checks the version a write was based on against the stored one.
pub(crate) fn check_version(
    entity: &'static str,
    key: &str,
    expected: Option<i64>,
    current: i64,
) -> Result<()> {
    match expected {
        None => Err(Error::VersionRequired),
        Some(v) if v != current => Err(Error::VersionMismatch {
            entity,
            key: key.to_string(),
            expected: v,
            current,
        }),
        Some(_) => Ok(()),
    }
}

/// One entry of a versioned document's history, without the document: who changed it, when, and
/// how.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VersionMeta {
    pub version: i64,
    /// The management key that made the change.
    pub actor: String,
    /// Its role then (absent for entries older than the audit log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    pub at: i64,
    /// `create`, `update`, `activate`, `deactivate`, `archive`, `unarchive`, `restore`, `import`
    /// (each document has the ones that apply to it).
    pub action: String,
    /// What changed, e.g. `changed segments, variants`.
    pub summary: String,
    /// Why, in the author's words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The typed changes that made this version (flags).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<FlagChange>>)]
    pub changes: Option<serde_json::Value>,
}

impl VersionMeta {
    pub(crate) fn of(row: &HistoryRow) -> VersionMeta {
        VersionMeta {
            version: row.version,
            actor: row.actor.clone(),
            role: Role::parse(&row.role),
            at: row.at,
            action: row.action.clone(),
            summary: row.summary.clone(),
            comment: (!row.comment.is_empty()).then(|| row.comment.clone()),
            changes: serde_json::from_str(&row.changes).ok(),
        }
    }
}

/// The document a history entry holds, when asked for (`with_doc`); `entity` names it in the
/// error of a document that no longer reads.
pub(crate) fn version_document<T: serde::de::DeserializeOwned>(
    row: &HistoryRow,
    entity: &'static str,
    with_doc: bool,
) -> Result<Option<T>> {
    with_doc
        .then(|| convert::from_doc(entity, &row.key, &row.doc))
        .transpose()
}

/// The refusal for a version a document does not have.
pub(crate) fn version_not_found(entity: &'static str, key: &str, version: i64) -> Error {
    Error::NotFound {
        entity,
        key: format!("{key}@{version}"),
    }
}

/// Which version of which document a change writes.
pub(crate) struct VersionRef<'a> {
    pub project: &'a str,
    /// The history entity: `flag`, `mutex_group`, `holdout`, `metric`, ...
    pub entity: &'a str,
    pub key: &'a str,
    pub version: i64,
    pub at: i64,
    /// The typed changes that made the version, as JSON ('' when it was not made of any).
    pub changes: String,
}

/// Records a document's new version: its history entry, summarizing what changed between the
/// `(before, after)` documents (`restored: …` for a restore, the action's name for the rest),
/// and its webhook events, through [`record`].
pub(crate) fn record_version(
    tx: &mut dyn Tx,
    actor: &Actor,
    at: VersionRef<'_>,
    action: &str,
    (before, after): (&serde_json::Value, &serde_json::Value),
    doc: String,
) -> Result<()> {
    let diff = crate::diff::diff(before, after);
    let text = match action {
        "update" => crate::diff::summary(&diff),
        "restore" => format!("restored: {}", crate::diff::summary(&diff)),
        other => other.to_string(),
    };
    append(
        tx,
        actor,
        HistoryRow {
            project: at.project.to_string(),
            entity: at.entity.to_string(),
            key: at.key.to_string(),
            version: at.version,
            actor: actor.name.clone(),
            at: at.at,
            action: action.to_string(),
            summary: text,
            doc,
            comment: String::new(),
            role: String::new(),
            changes: at.changes,
        },
    )
}

/// Appends a history entry for an entity's new version, and queues its webhook events in the
/// same transaction (every change goes through here, so none escapes the outbox).
#[allow(
    clippy::too_many_arguments,
    reason = "one flat record; a struct would only rename the fields"
)]
pub(crate) fn record(
    tx: &mut dyn Tx,
    actor: &Actor,
    project: &str,
    entity: &str,
    key: &str,
    version: i64,
    at: i64,
    action: &str,
    summary: String,
    doc: String,
) -> Result<()> {
    let row = HistoryRow {
        project: project.to_string(),
        entity: entity.to_string(),
        key: key.to_string(),
        version,
        actor: actor.name.clone(),
        at,
        action: action.to_string(),
        summary,
        doc,
        comment: String::new(),
        role: String::new(),
        changes: String::new(),
    };
    append(tx, actor, row)
}

/// Appends `row` with the actor's role and comment, and queues its webhook events.
fn append(tx: &mut dyn Tx, actor: &Actor, mut row: HistoryRow) -> Result<()> {
    row.role = actor.role.as_str().to_string();
    row.comment = actor.comment.clone().unwrap_or_default();
    tx.append_history(&row)?;
    webhooks::enqueue(
        tx,
        &webhooks::Change {
            actor,
            project: &row.project,
            entity: &row.entity,
            key: &row.key,
            version: row.version,
            at: row.at,
            action: &row.action,
            doc: &row.doc,
        },
    )
}
