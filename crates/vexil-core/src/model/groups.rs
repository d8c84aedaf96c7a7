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

    /// The group's unarchived members among `flags` and `groups`: the flags in its slots (a
    /// mutual-exclusion group) or that it holds out (a holdout), then the holdouts placed in
    /// its slots. The one reading of membership: the group's page, the flag page's eligible
    /// groups and the rules that check a save all list members with it.
    pub fn members<'a>(
        &'a self,
        flags: &'a [super::Flag],
        groups: &'a [Group],
    ) -> impl Iterator<Item = Member<'a>> + 'a {
        let in_slot = |place: &'a Option<SlotRef>| place.as_ref().filter(|m| m.group == self.key);
        let member_flags = flags.iter().filter(|f| !f.archived).filter_map(move |f| {
            let slot = in_slot(&f.mutex_group);
            (slot.is_some() || f.holdouts.contains(&self.key))
                .then_some(Member::Flag { flag: f, slot })
        });
        let member_holdouts = groups.iter().filter(|h| !h.archived).filter_map(move |h| {
            in_slot(&h.mutex_group).map(|slot| Member::Holdout { holdout: h, slot })
        });
        member_flags.chain(member_holdouts)
    }
}

/// One member of a group ([`Group::members`]).
#[derive(Debug, Clone, Copy)]
pub enum Member<'a> {
    /// A flag, with its place when the group is a mutual-exclusion group.
    Flag {
        flag: &'a super::Flag,
        slot: Option<&'a SlotRef>,
    },
    /// A holdout placed in a slot of the (mutual-exclusion) group.
    Holdout {
        holdout: &'a Group,
        slot: &'a SlotRef,
    },
}

impl<'a> Member<'a> {
    pub fn key(&self) -> &'a str {
        match self {
            Member::Flag { flag, .. } => &flag.key,
            Member::Holdout { holdout, .. } => &holdout.key,
        }
    }

    /// Its place in a mutual-exclusion group.
    pub fn slot(&self) -> Option<&'a SlotRef> {
        match self {
            Member::Flag { slot, .. } => *slot,
            Member::Holdout { slot, .. } => Some(slot),
        }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;
    use crate::model::Flag;

    fn flag(key: &str, extra: serde_json::Value) -> Flag {
        let mut doc = json!({"project": "p", "key": key, "name": key, "type": "release",
            "evaluation_mode": "remote", "bucketing_unit": "user_id", "bucketing_salt": "s",
            "state": "active", "variants": [], "all_other_users": {"percentage": 0},
            "version": 1, "created_at": 0, "updated_at": 0});
        doc.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(doc).unwrap()
    }

    fn group(key: &str, extra: serde_json::Value) -> Group {
        let kind = if key.starts_with("mutex-") {
            "mutual_exclusion"
        } else {
            "holdout"
        };
        let mut doc = json!({"project": "p", "key": key, "name": key, "type": kind,
            "evaluation_mode": "remote", "bucketing_unit": "user_id", "bucketing_salt": "s",
            "version": 1, "created_at": 0, "updated_at": 0});
        doc.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(doc).unwrap()
    }

    /// Members of a mutual-exclusion group: unarchived flags in its slots, then holdouts placed
    /// in them; of a holdout: the flags it holds out. Other groups' members are not.
    #[test]
    fn members_are_the_unarchived_flags_and_holdouts_placed_in_the_group() {
        let slot = |group: &str, n: u8| json!({"mutex_group": {"group": group, "slot": n}});
        let flags = [
            flag("a", slot("mutex-m", 1)),
            flag("b", slot("mutex-m", 2)),
            flag(
                "gone",
                json!({"archived": true, "mutex_group": {"group": "mutex-m", "slot": 1}}),
            ),
            flag("other", slot("mutex-n", 1)),
            flag("held", json!({"holdouts": ["holdout-h"]})),
        ];
        let groups = [
            group("mutex-m", json!({})),
            group("holdout-h", slot("mutex-m", 2)),
            group(
                "holdout-old",
                json!({"archived": true, "mutex_group": {"group": "mutex-m", "slot": 1}}),
            ),
        ];
        let of = |g: &Group| -> Vec<(String, Option<u8>)> {
            g.members(&flags, &groups)
                .map(|m| (m.key().to_owned(), m.slot().map(|s| s.slot)))
                .collect()
        };
        let owned = |rows: &[(&str, Option<u8>)]| -> Vec<(String, Option<u8>)> {
            rows.iter().map(|(k, s)| ((*k).to_owned(), *s)).collect()
        };
        assert_eq!(
            of(&groups[0]),
            owned(&[("a", Some(1)), ("b", Some(2)), ("holdout-h", Some(2))])
        );
        assert_eq!(of(&groups[1]), owned(&[("held", None)]));
    }
}
