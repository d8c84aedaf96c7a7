//! Mutual-exclusion groups and holdout groups.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{EvaluationMode, Inclusion};

/// Mutual-exclusion groups keep users in at most one of their experiments; holdout groups keep
/// a share of users out of all of theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    MutualExclusion,
    Holdout,
}

impl GroupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupKind::MutualExclusion => "mutual_exclusion",
            GroupKind::Holdout => "holdout",
        }
    }

    /// `metadata.flagType` of the compiled group (`evaluation.md` §7).
    pub fn flag_type(self) -> &'static str {
        match self {
            GroupKind::MutualExclusion => "mutual-exclusion-group",
            GroupKind::Holdout => "holdout-group",
        }
    }

    /// The prefix of every key of this kind (`evaluation.md` §7).
    pub fn key_prefix(self) -> &'static str {
        match self {
            GroupKind::MutualExclusion => "mutex-",
            GroupKind::Holdout => "holdout-",
        }
    }

    /// The entity name in history and webhook events.
    pub fn entity(self) -> &'static str {
        match self {
            GroupKind::MutualExclusion => "mutex_group",
            GroupKind::Holdout => "holdout",
        }
    }

    /// How messages name a group of this kind.
    pub fn label(self) -> &'static str {
        match self {
            GroupKind::MutualExclusion => "mutual-exclusion group",
            GroupKind::Holdout => "holdout group",
        }
    }
}

/// A mutual-exclusion group or a holdout group. The fields after `bucketing_salt` depend on
/// the kind: `slots` for mutual-exclusion groups; `percentage`, `inclusions`, `exclusions` and
/// `mutex_group` for holdouts. Validation refuses the others' fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Group {
    pub project: String,
    /// `mutex-` or `holdout-` and a key generated from the name; unique across the project's
    /// flags and groups; immutable.
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "type")]
    pub kind: GroupKind,
    /// A local group can hold local and remote flags; a remote group only remote flags.
    pub evaluation_mode: EvaluationMode,
    /// `user_id`, `device_id`, another built-in user field, or a group type.
    pub bucketing_unit: String,
    /// 8 random characters at creation; changing it moves users between slots.
    pub bucketing_salt: String,
    /// Mutual-exclusion groups: the slots, `slot-1` … `slot-n` (at most 20). Their percentages
    /// total at most 100; the rest of the users are `unallocated`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<Slot>,
    /// Holdout groups: the share of users held out, 1–99.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<u8>,
    /// Holdout groups: users always held out.
    #[serde(default, skip_serializing_if = "Inclusion::is_empty")]
    pub inclusions: Inclusion,
    /// Holdout groups: users never held out.
    #[serde(default, skip_serializing_if = "Inclusion::is_empty")]
    pub exclusions: Inclusion,
    /// Holdout groups: the mutual-exclusion slot the holdout runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutex_group: Option<SlotRef>,
    /// Holdout groups: the program's metrics, on which held-out users are compared with
    /// everyone else (the first is the primary).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<String>,
    #[serde(default)]
    pub archived: bool,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub updated_by: String,
}

impl Group {
    /// The slot with this 1-based index.
    pub fn slot(&self, index: u8) -> Option<&Slot> {
        self.slots.iter().find(|s| s.index == index)
    }

    /// The share of users the slots leave `unallocated`.
    pub fn unallocated(&self) -> u8 {
        let used: u32 = self.slots.iter().map(|s| u32::from(s.percentage)).sum();
        u8::try_from(100u32.saturating_sub(used)).unwrap_or(0)
    }
}

/// One slot of a mutual-exclusion group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Slot {
    /// 1-based position.
    pub index: u8,
    /// `slot-<index>`, the variant the group's config serves.
    pub key: String,
    /// 1–100: the share of users in this slot.
    pub percentage: u8,
}

impl Slot {
    /// The variant key of slot `index`.
    pub fn key_of(index: u8) -> String {
        format!("slot-{index}")
    }
}

/// A place in a mutual-exclusion group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SlotRef {
    /// The group's key.
    pub group: String,
    /// The slot's index (1-based).
    pub slot: u8,
    /// Share the slot with other members. By default a slot holds one experiment, and joining
    /// a slot another member holds is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}
