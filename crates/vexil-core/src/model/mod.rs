//! The management model: what a team configures. These types are the JSON documents the store
//! keeps and the bodies the management API returns; every field is validated by
//! [`crate::validate`] before it is stored, so code that reads a stored document may rely on it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

mod groups;
mod metrics;

pub use groups::{Group, GroupKind, Member, Slot, SlotRef};
pub use metrics::{
    Correction, Direction, ExperimentSettings, FilterOp, Metric, MetricKind, PropertyFilter,
    PropertyScope, TestType, ANY_EVENT, BUILTIN_METRICS, EXPOSURE_EVENT,
};

/// A project: holds deployments, flags and cohorts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Project {
    /// URL-safe identifier generated from the name, unique, immutable.
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Authenticates event ingestion, and cohort downloads together with the secret key. It
    /// is public (SDKs send it, as Amplitude's project API key), so it is stored in clear.
    pub api_key: String,
    /// Hex SHA-256 of the secret key, which is only ever verified: the key itself is shown
    /// once, in the answer of the creation or rotation that made it.
    pub secret_key_hash: String,
    /// The API key a rotation replaced, accepted until `previous_key_expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_api_key: Option<String>,
    /// The hash of the secret key a rotation replaced, accepted until
    /// `previous_key_expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_key_hash: Option<String>,
    /// The end of the last rotation's grace period (Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_key_expires_at: Option<i64>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Which SDKs a deployment serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentType {
    /// Browsers and mobile apps: remote evaluation only, sees no flag configs.
    Client,
    /// Backends: remote and local evaluation.
    Server,
}

impl DeploymentType {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentType::Client => "client",
            DeploymentType::Server => "server",
        }
    }
}

/// A deployment: SDKs authenticate with its key and see only the flags attached to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Deployment {
    pub project: String,
    /// URL-safe identifier generated from the label, unique per project, immutable.
    pub key: String,
    /// Human label, unique per project.
    pub label: String,
    #[serde(rename = "type")]
    pub kind: DeploymentType,
    /// The SDK key: `client-` or `server-` and 32 random base62 characters.
    pub api_key: String,
    /// The SDK key a rotation replaced, accepted until `previous_key_expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_api_key: Option<String>,
    /// The end of the last rotation's grace period (Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_key_expires_at: Option<i64>,
    pub archived: bool,
    /// Production-critical: an approval policy scoped to protected deployments covers every
    /// flag attached to it. Only admins set it.
    #[serde(default)]
    pub protected: bool,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Deployment {
    /// Whether `key` authenticates SDKs for this deployment at `now_ms`: its SDK key, or the
    /// key a rotation replaced while its grace period lasts.
    pub fn accepts_key(&self, key: &str, now_ms: i64) -> bool {
        self.api_key == key
            || (self.previous_api_key.as_deref() == Some(key)
                && self.previous_key_expires_at.is_some_and(|end| now_ms < end))
    }
}

/// Release flags roll features out; experiments measure variants against each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlagType {
    Release,
    Experiment,
}

impl FlagType {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagType::Release => "release",
            FlagType::Experiment => "experiment",
        }
    }
}

/// Where a flag is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvaluationMode {
    /// On the Vexil server (`/sdk/v2/vardata`).
    Remote,
    /// In server SDKs, from downloaded configs.
    Local,
}

impl EvaluationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            EvaluationMode::Remote => "remote",
            EvaluationMode::Local => "local",
        }
    }
}

/// Whether a flag serves its targeting (`active`) or `off` to everyone (`inactive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlagState {
    Inactive,
    Active,
}

impl FlagState {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagState::Inactive => "inactive",
            FlagState::Active => "active",
        }
    }
}

/// A flag or an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Flag {
    pub project: String,
    /// Generated from the name at creation (lowercase, words joined by `-`), immutable after.
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "type")]
    pub kind: FlagType,
    /// For experiments: the key analyses use (`experimentKey` in served metadata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_key: Option<String>,
    /// For experiments: the metrics, analysis window and test of the results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentSettings>,
    pub evaluation_mode: EvaluationMode,
    /// `user_id`, `device_id`, another built-in user field, or a group type such as `company`.
    pub bucketing_unit: String,
    /// 8 random characters at creation; changing it moves users between variants.
    pub bucketing_salt: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Keys of the deployments that serve this flag.
    #[serde(default)]
    pub deployments: Vec<String>,
    pub state: FlagState,
    #[serde(default)]
    pub archived: bool,
    /// Kept on purpose (a kill switch, an operational flag): never reported stale.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub permanent: bool,
    /// The variants in order; `off` is implicit and reserved.
    pub variants: Vec<Variant>,
    /// Rule-based segments, tried in order.
    #[serde(default)]
    pub segments: Vec<Segment>,
    /// Everyone not matched by a segment.
    pub all_other_users: Rollout,
    /// Users pinned to a variant, by variant key.
    #[serde(default)]
    pub inclusions: BTreeMap<String, Inclusion>,
    /// Flags evaluated first; the user must get one of the allowed variants of each.
    #[serde(default)]
    pub prerequisites: Vec<Prerequisite>,
    /// The mutual-exclusion group slot the flag runs in: users outside the slot get `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutex_group: Option<SlotRef>,
    /// Keys of the holdout groups the flag belongs to: users they hold out get `off`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holdouts: Vec<String>,
    /// For flags imported from Amplitude: the engine config, served as given. Such a flag's
    /// variants, segments, inclusions and prerequisites mirror the config for display only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub imported_config: Option<ImportedConfig>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub updated_by: String,
}

/// An engine config kept as the exact JSON text it was imported with, so that it is served
/// (and its metadata ordered) exactly as given.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImportedConfig(pub Box<RawValue>);

impl ImportedConfig {
    /// The JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for ImportedConfig {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

/// A variant of a flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Variant {
    /// Generated from the name, editable; unique per flag regardless of case; never `off`.
    pub key: String,
    #[serde(default)]
    pub name: String,
    /// The string SDKs return; the key when left empty.
    #[serde(default)]
    pub value: String,
    /// Any JSON, delivered with the variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    #[serde(default)]
    pub description: String,
}

/// A rule-based segment: users matching every condition get the segment's rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Segment {
    pub name: String,
    /// All must hold (AND). An empty list matches everyone.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// 0–100: the share of matching users who get a variant; the rest get `off`.
    pub percentage: u8,
    /// Relative weights by variant key (1 and 4 give 20% / 80%); a missing variant weighs 0.
    /// Absent when creating a flag: every variant weighs 1.
    #[serde(default)]
    pub weights: BTreeMap<String, u32>,
}

impl Segment {
    /// The segment's percentage and weights.
    pub fn rollout(&self) -> Rollout {
        Rollout {
            percentage: self.percentage,
            weights: self.weights.clone(),
        }
    }
}

/// A rollout percentage and relative variant weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rollout {
    /// 0–100: the share of matching users who get a variant; the rest get `off`.
    pub percentage: u8,
    /// Relative weights by variant key (1 and 4 give 20% / 80%); a missing variant weighs 0.
    #[serde(default)]
    pub weights: BTreeMap<String, u32>,
}

/// A targeting condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Condition {
    /// What the condition reads.
    #[serde(flatten)]
    pub target: Target,
    /// An engine operator: `is`, `is not`, `contains`, `less`, `version greater`,
    /// `regex match`, `set contains any`, ...
    pub op: String,
    pub values: Vec<String>,
}

/// What a condition reads from the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Target {
    /// A built-in user field: `user_id`, `device_id`, `country`, `platform`, `version`, ...
    UserField { field: String },
    /// A custom user property, e.g. `premium` or `[Experiment] flag-a`.
    UserProperty { property: String },
    /// Membership of user cohorts (`set contains any` / `set does not contain any`).
    Cohort,
    /// The name of the user's group of a type.
    GroupName { group_type: String },
    /// A property of the user's group of a type.
    GroupProperty {
        group_type: String,
        property: String,
    },
    /// Membership of group cohorts of a type.
    GroupCohort { group_type: String },
}

/// Users pinned to one variant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Inclusion {
    /// Matched against both `user_id` and `device_id`.
    #[serde(default)]
    pub ids: Vec<String>,
    /// Cohort ids whose members are included.
    #[serde(default)]
    pub cohorts: Vec<String>,
}

impl Inclusion {
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.cohorts.is_empty()
    }
}

/// A dependency on another flag of the same project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Prerequisite {
    /// The prerequisite flag's key.
    pub flag: String,
    /// The prerequisite's variants that let a user through; `off` means "users the
    /// prerequisite does not serve".
    pub variants: Vec<String>,
}

/// A static set of member ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Cohort {
    pub project: String,
    /// What conditions and inclusions reference.
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `User` (members are user ids) or a group type (members are group names).
    pub group_type: String,
    pub size: i64,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The built-in user fields conditions and bucketing may read (`evaluation.md` §10.6).
pub const USER_FIELDS: &[&str] = &[
    "user_id",
    "device_id",
    "country",
    "region",
    "city",
    "dma",
    "language",
    "platform",
    "version",
    "os",
    "device_manufacturer",
    "device_brand",
    "device_model",
    "carrier",
    "library",
    "amplitude_id",
];

/// The variant key every flag serves to users outside its rollout.
pub const OFF: &str = "off";

/// Segment names the compiler emits itself.
pub const RESERVED_SEGMENT_NAMES: &[&str] = &[
    "individual-inclusions",
    "flag-dependencies",
    "All Other Users",
    "default",
    "sticky-bucketing",
];

impl Flag {
    /// The variant with this key.
    pub fn variant(&self, key: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.key == key)
    }

    /// Whether `key` is a variant of this flag or `off`.
    pub fn allows_variant(&self, key: &str) -> bool {
        key == OFF || self.variant(key).is_some()
    }

    /// Keys of the prerequisites, in order.
    pub fn prerequisite_keys(&self) -> impl Iterator<Item = &str> {
        self.prerequisites.iter().map(|p| p.flag.as_str())
    }

    /// Everything the flag depends on, in the order of `dependencies` (`evaluation.md` §10.2):
    /// prerequisites, then holdout groups, then the mutual-exclusion group.
    pub fn dependency_keys(&self) -> impl Iterator<Item = &str> {
        self.prerequisite_keys()
            .chain(self.holdouts.iter().map(String::as_str))
            .chain(self.mutex_group.iter().map(|m| m.group.as_str()))
    }

    /// The groups the flag belongs to: its holdouts, then its mutual-exclusion group.
    pub fn group_keys(&self) -> impl Iterator<Item = &str> {
        self.holdouts
            .iter()
            .map(String::as_str)
            .chain(self.mutex_group.iter().map(|m| m.group.as_str()))
    }
}
