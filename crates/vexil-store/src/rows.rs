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
    pub offset: u64,
    pub limit: u32,
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
