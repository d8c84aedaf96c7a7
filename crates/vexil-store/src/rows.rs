//! The rows the store keeps. `doc` fields are JSON documents owned by `vexil-core`; the other
//! fields are the columns the store indexes, filters or checks.

/// A project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRow {
    /// URL-safe identifier, unique.
    pub key: String,
    pub name: String,
    /// Project API key (cohort downloads, event ingestion), unique.
    pub api_key: String,
    pub doc: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A deployment of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRow {
    pub project: String,
    /// URL-safe identifier, unique per project.
    pub key: String,
    /// Human label, unique per project.
    pub label: String,
    /// `client` or `server`.
    pub kind: String,
    /// The SDK key (`client-…` / `server-…`), unique across all projects.
    pub api_key: String,
    pub archived: bool,
    pub doc: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A flag or experiment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagRow {
    pub project: String,
    /// Unique per project.
    pub key: String,
    pub name: String,
    /// `release` or `experiment`.
    pub kind: String,
    /// `active` or `inactive`.
    pub state: String,
    /// `remote` or `local`.
    pub mode: String,
    pub archived: bool,
    pub tags: Vec<String>,
    /// Keys of the deployments the flag is attached to.
    pub deployments: Vec<String>,
    /// Keys of the flags this one depends on (same project).
    pub prerequisites: Vec<String>,
    pub doc: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A versioned document of a project kept in a collection of its own: mutual-exclusion and
/// holdout groups (`group`), metrics (`metric`). The store indexes the collection, the key,
/// the kind and the archive flag; the rest is the document, owned by `vexil-core`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRow {
    pub project: String,
    /// `group` or `metric`.
    pub collection: String,
    /// Unique per project and collection (`vexil-core` also keeps group keys apart from flag
    /// keys, under the project lock).
    pub key: String,
    /// What kind of document within the collection (`mutual_exclusion`, `holdout`,
    /// `conversion`, …).
    pub kind: String,
    pub archived: bool,
    pub doc: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Which flags [`crate::Tx::list_flags`] returns. `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagFilter {
    pub project: Option<String>,
    /// Exact key.
    pub key: Option<String>,
    pub state: Option<String>,
    pub kind: Option<String>,
    pub mode: Option<String>,
    pub archived: Option<bool>,
    /// Flags having this tag.
    pub tag: Option<String>,
    /// Flags attached to this deployment key.
    pub deployment: Option<String>,
    /// Case-insensitive substring of the name or the key.
    pub text: Option<String>,
    pub sort: FlagSort,
    pub offset: u64,
    pub limit: u32,
}

/// The order of a flag listing (ties by project and key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FlagSort {
    /// By project, then key.
    #[default]
    Key,
    /// By name, case-insensitively.
    Name,
    /// The most recently changed first.
    Updated,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// How many rows match the filter in all.
    pub total: u64,
}

/// A cohort: a static set of member ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CohortRow {
    pub project: String,
    /// Unique per project; what conditions reference.
    pub id: String,
    pub name: String,
    /// `User` or a group type.
    pub group_type: String,
    pub size: i64,
    pub doc: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One immutable entry in an entity's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub project: String,
    /// `flag`, `deployment`, `cohort` or `project`.
    pub entity: String,
    pub key: String,
    /// The entity's version after the change.
    pub version: i64,
    /// Who made the change (a management key's name).
    pub actor: String,
    pub at: i64,
    /// Short machine name of the change: `create`, `update`, `activate`, `restore`, ...
    pub action: String,
    /// Human summary of what changed.
    pub summary: String,
    /// The entity's full document after the change.
    pub doc: String,
    /// Why, in the author's words ('' when none was given).
    pub comment: String,
    /// The author's role (`reader`, `writer`, `admin`; '' for entries older than the audit log).
    pub role: String,
    /// The typed changes applied, as JSON (flags; '' otherwise).
    pub changes: String,
}

/// Which history entries the audit log lists: every filter given must hold. Newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub project: Option<String>,
    pub actor: Option<String>,
    pub entity: Option<String>,
    pub key: Option<String>,
    /// `at` in `[from, to)`.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Entries after this one in the listing's order (the last entry of the previous page).
    pub after: Option<AuditCursor>,
    pub limit: u32,
}

/// Where a page of the audit log resumes: the `(at, project, entity, key, version)` of the last
/// entry read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCursor {
    pub at: i64,
    pub project: String,
    pub entity: String,
    pub key: String,
    pub version: i64,
}

/// A management API key; only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    /// Hex SHA-256 of the secret, unique.
    pub hash: String,
    /// The first characters of the secret, to recognise it in listings.
    pub prefix: String,
    /// `admin` (everything) or `writer`, `reader`.
    pub role: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A console session: a random token in the browser's cookie, stored only as its hash, so that
/// whoever reads the database cannot present a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Hex SHA-256 of the session token, unique.
    pub hash: String,
    /// The id of the management key that signed in.
    pub key_id: String,
    pub created_at: i64,
    /// The session is refused from this time on and purged after it.
    pub expires_at: i64,
}

/// The revision of what one deployment serves to SDKs. Every node that publishes snapshots
/// compares the hash of what it would serve with the stored one and bumps `revision` when they
/// differ, so all nodes agree on one counter per deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdkRevisionRow {
    pub project: String,
    pub deployment: String,
    pub revision: i64,
    /// Hex digest of the served content the revision stands for.
    pub hash: String,
    /// When the revision last changed.
    pub changed_at: i64,
}

/// One stored exposure or assignment: which variant of which flag a user was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExposureRow {
    pub project: String,
    /// The deployment whose key sent it; empty when it came with the project API key.
    pub deployment: String,
    /// `client_exposure`, `server_exposure`, `assignment`, `remote_assignment` or
    /// `remote_exposure`.
    pub kind: String,
    pub flag_key: String,
    /// The variant key; `None` when the user got no real variant (a fallback or `off`).
    pub variant: Option<String>,
    pub experiment_key: Option<String>,
    pub flag_version: Option<i64>,
    pub segment_name: Option<String>,
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    /// The event's `groups` as JSON text.
    pub groups: Option<String>,
    pub event_time: i64,
    pub received_at: i64,
    pub insert_id: Option<String>,
    pub library: Option<String>,
}

/// An event an application sent that is not one of Vexil's experiment events: what metrics
/// count (`analysis.md` §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub project: String,
    pub event_type: String,
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    /// The event's `groups` as JSON text.
    pub groups: Option<String>,
    pub event_time: i64,
    pub received_at: i64,
    pub insert_id: Option<String>,
    /// `event_properties` as JSON text.
    pub event_properties: Option<String>,
    /// `user_properties` as JSON text.
    pub user_properties: Option<String>,
}

/// An exposure to a real variant, as analysis reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExposureFact {
    pub id: i64,
    pub variant: String,
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    /// The event's `groups` as JSON text.
    pub groups: Option<String>,
    pub time: i64,
}

/// The optional columns an events scan reads; the others come back absent. Analysis reads
/// the column of its unit and the properties its metrics filter or sum on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventColumns {
    pub user_id: bool,
    pub device_id: bool,
    pub groups: bool,
    pub event_properties: bool,
    pub user_properties: bool,
}

impl EventColumns {
    pub const ALL: EventColumns = EventColumns {
        user_id: true,
        device_id: true,
        groups: true,
        event_properties: true,
        user_properties: true,
    };
}

/// A product event, as analysis reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFact {
    pub id: i64,
    pub event_type: String,
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    pub groups: Option<String>,
    pub time: i64,
    pub event_properties: Option<String>,
    pub user_properties: Option<String>,
}

/// Which exposures [`crate::Tx::exposure_counts`] counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExposureQuery {
    pub project: String,
    pub flag_key: String,
    /// Kinds to count (every kind when empty).
    pub kinds: Vec<String>,
    /// `event_time` in `[from, to)`.
    pub from: i64,
    pub to: i64,
    /// Width of a time bucket in milliseconds; buckets start at multiples of it.
    pub bucket: i64,
}

/// The exposures of one variant (`None`: no real variant) in one time bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExposureCount {
    /// Start of the bucket (Unix milliseconds).
    pub bucket: i64,
    pub variant: Option<String>,
    pub count: i64,
    /// Distinct users (by `user_id`, else `device_id`).
    pub users: i64,
}

/// A user's `[Experiment] <flag_key>` property: the variant they were last exposed to or
/// assigned, or `None` after it was unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentPropertyRow {
    pub project: String,
    /// `user` (`id` is a `user_id`) or `device` (`id` is a `device_id`).
    pub id_kind: String,
    pub id: String,
    pub flag_key: String,
    pub variant: Option<String>,
    pub updated_at: i64,
}

/// A webhook subscription: where a project's changes are posted and how they are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    pub project: String,
    /// Unique per project.
    pub id: String,
    pub url: String,
    pub description: String,
    /// The event types delivered (`flag.created`, `cohort.*`, …), as the domain spells them.
    pub events: Vec<String>,
    /// The signing secret, in clear: the server signs every delivery with it.
    pub secret: String,
    /// The secret a rotation replaced, which still signs every delivery beside `secret` until
    /// `previous_secret_expires_at` (Unix milliseconds), so receivers can switch without
    /// refusing a delivery. Both are set or neither.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
    pub active: bool,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One event waiting for (or done with) its delivery to one webhook. Rows are written in the
/// transaction of the change they report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// The event id, unique.
    pub id: String,
    pub project: String,
    pub webhook: String,
    pub event_type: String,
    /// The JSON body delivered, byte for byte.
    pub payload: String,
    /// Attempts made so far.
    pub attempts: i64,
    /// When the next attempt is due; while a worker holds the row, when its claim lapses.
    pub next_attempt_at: i64,
    pub created_at: i64,
    /// Set once a receiver answered 2xx.
    pub delivered_at: Option<i64>,
    /// Set once the retries ran out.
    pub failed_at: Option<i64>,
}

/// One delivery attempt, kept in a webhook's delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub project: String,
    pub webhook: String,
    pub event_id: String,
    pub event_type: String,
    /// 1 for the first attempt at this event.
    pub attempt: i64,
    pub at: i64,
    /// The receiver's HTTP status; `None` when no answer came.
    pub status: Option<i64>,
    /// The start of the receiver's answer (at most 1 KiB).
    pub response: String,
    /// Why the attempt failed without an answer (connection, timeout); empty otherwise.
    pub error: String,
    pub duration_ms: i64,
}
