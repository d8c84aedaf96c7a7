//! Server-side enrichment of an SDK user (`sdk-protocol.md` §A7), written once: the cohorts the
//! user and their groups are in, and their stored `[Experiment] <flag>` properties.
//!
//! [`enrich`] is the one function that does it. Remote evaluation and OFREP call it with a
//! snapshot's in-memory data (the cohorts its configs reference, the project's
//! [`UserProperties`]); QA ([`crate::service::FlagService::evaluate`]) calls it with the same
//! things read from the store for the configs it evaluates, so that "test a user" evaluates
//! exactly the user that `/sdk/v2/vardata` would.

use std::collections::BTreeSet;
use std::sync::Arc;

use vexil_eval::{FlagConfig, Object, Value};

use super::memory::{CohortData, IdKind, UserProperties, USER_GROUP_TYPE};

/// The cohorts users are looked up in: user cohorts ascending by id, and group cohorts by
/// group type (each type's ascending by id).
#[derive(Debug, Default)]
pub struct Cohorts {
    users: Vec<Arc<CohortData>>,
    groups: Vec<(String, Vec<Arc<CohortData>>)>,
}

impl Cohorts {
    /// Sorts `cohorts` into user and group cohorts.
    pub fn new(cohorts: impl IntoIterator<Item = Arc<CohortData>>) -> Cohorts {
        let mut all: Vec<Arc<CohortData>> = cohorts.into_iter().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all.dedup_by(|a, b| a.id == b.id);
        let mut out = Cohorts::default();
        for cohort in all {
            if cohort.group_type == USER_GROUP_TYPE {
                out.users.push(cohort);
            } else {
                match out.groups.iter_mut().find(|(t, _)| *t == cohort.group_type) {
                    Some((_, list)) => list.push(cohort),
                    None => out.groups.push((cohort.group_type.clone(), vec![cohort])),
                }
            }
        }
        out
    }
}

/// Stored `[Experiment] <flag>` properties of users, by user id or device id.
pub trait StoredProperties {
    /// Nothing is stored: enrichment skips the lookups.
    fn is_empty(&self) -> bool;
    /// Calls `f` with each (flag key, variant key) stored for the id.
    fn for_each(&self, kind: IdKind, id: &str, f: impl FnMut(&str, &str));
}

impl StoredProperties for UserProperties {
    fn is_empty(&self) -> bool {
        UserProperties::is_empty(self)
    }

    fn for_each(&self, kind: IdKind, id: &str, f: impl FnMut(&str, &str)) {
        UserProperties::for_each(self, kind, id, f);
    }
}

/// A few users' properties read from the store (QA): (kind, id, flag, variant).
#[derive(Debug, Default)]
pub struct PropertyList(pub Vec<(IdKind, String, String, String)>);

impl StoredProperties for PropertyList {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn for_each(&self, kind: IdKind, id: &str, mut f: impl FnMut(&str, &str)) {
        for (k, i, flag, variant) in &self.0 {
            if *k == kind && i == id {
                f(flag, variant);
            }
        }
    }
}

/// Adds what the server knows of the user (`sdk-protocol.md` §A7): the user cohorts that hold
/// their `user_id` (replacing the client's `cohort_ids`), the group cohorts that hold the first
/// name of each of their groups, and their stored `[Experiment] <flag>` properties (values the
/// client sent win; of the stored ones, the user id's win over the device id's).
pub fn enrich(user: &mut Object, cohorts: &Cohorts, properties: &impl StoredProperties) {
    if let Some(user_id) = non_empty_str(user, "user_id") {
        let ids: Vec<Value> = cohorts
            .users
            .iter()
            .filter(|c| c.contains(user_id))
            .map(|c| Value::from(c.id.as_str()))
            .collect();
        user.insert("cohort_ids", Value::Array(ids));
    }
    if !cohorts.groups.is_empty() {
        enrich_groups(user, &cohorts.groups);
    }
    if !properties.is_empty() {
        let mut found: Vec<(String, String)> = Vec::new();
        let mut collect = |flag: &str, variant: &str| {
            let name = format!("[Experiment] {flag}");
            match found.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = variant.to_owned(),
                None => found.push((name, variant.to_owned())),
            }
        };
        // Device properties first: what was recorded for the signed-in user wins.
        if let Some(device_id) = non_empty_str(user, "device_id") {
            properties.for_each(IdKind::Device, device_id, &mut collect);
        }
        if let Some(user_id) = non_empty_str(user, "user_id") {
            properties.for_each(IdKind::User, user_id, &mut collect);
        }
        if !found.is_empty() {
            add_properties(user, found);
        }
    }
}

fn enrich_groups(user: &mut Object, cohorts: &[(String, Vec<Arc<CohortData>>)]) {
    let Some(Value::Object(groups)) = user.get("groups") else {
        return;
    };
    let mut found: Vec<(String, String, Vec<Value>)> = Vec::new();
    for (group_type, names) in groups.iter() {
        let Some(name) = first_name(names) else {
            continue;
        };
        let Some((_, cohorts)) = cohorts.iter().find(|(t, _)| t == group_type) else {
            continue;
        };
        let ids: Vec<Value> = cohorts
            .iter()
            .filter(|c| c.contains(name))
            .map(|c| Value::from(c.id.as_str()))
            .collect();
        if !ids.is_empty() {
            found.push((group_type.to_owned(), name.to_owned(), ids));
        }
    }
    if found.is_empty() {
        return;
    }
    if !matches!(user.get("group_cohort_ids"), Some(Value::Object(_))) {
        user.insert("group_cohort_ids", Value::Object(Object::new()));
    }
    if let Some(Value::Object(all)) = user.get_mut("group_cohort_ids") {
        for (group_type, name, ids) in found {
            if !matches!(all.get(&group_type), Some(Value::Object(_))) {
                all.insert(group_type.as_str(), Value::Object(Object::new()));
            }
            if let Some(Value::Object(by_name)) = all.get_mut(&group_type) {
                by_name.insert(name, Value::Array(ids));
            }
        }
    }
}

/// The ids of the cohorts that conditions on `cohort_ids` selectors name: the cohorts SDKs
/// download (`sdk-protocol.md` §A9) and enrichment looks users up in.
pub fn referenced_cohort_ids(configs: &[FlagConfig]) -> BTreeSet<&str> {
    let mut ids: BTreeSet<&str> = BTreeSet::new();
    for config in configs {
        for segment in &config.segments {
            for condition in segment.conditions.iter().flatten().flatten() {
                if condition.selector.last().is_some_and(|s| s == "cohort_ids") {
                    ids.extend(condition.values.iter().map(String::as_str));
                }
            }
        }
    }
    ids
}

/// The flags whose `[Experiment] <flag>` property some condition of `configs` reads: the
/// properties enrichment needs.
pub fn targeted_properties(configs: &[FlagConfig]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for config in configs {
        for segment in &config.segments {
            for condition in segment.conditions.iter().flatten().flatten() {
                if let [context, user, props, name] = condition.selector.as_slice() {
                    if context == "context" && user == "user" && props == "user_properties" {
                        if let Some(flag) = name.strip_prefix("[Experiment] ") {
                            out.insert(flag.to_owned());
                        }
                    }
                }
            }
        }
    }
    out
}

fn non_empty_str<'a>(user: &'a Object, field: &str) -> Option<&'a str> {
    user.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn first_name(names: &Value) -> Option<&str> {
    match names {
        Value::Array(list) => list.first()?.as_str().filter(|n| !n.is_empty()),
        _ => None,
    }
}

/// Adds `[Experiment] <flag>` entries to `user_properties` where the client sent none.
fn add_properties(user: &mut Object, found: Vec<(String, String)>) {
    if !matches!(user.get("user_properties"), Some(Value::Object(_))) {
        user.insert("user_properties", Value::Object(Object::new()));
    }
    if let Some(Value::Object(props)) = user.get_mut("user_properties") {
        for (name, variant) in found {
            if props.get(&name).is_none() {
                props.insert(name, Value::from(variant));
            }
        }
    }
}
