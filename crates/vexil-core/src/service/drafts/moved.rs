//! The users a change moves: a sample of the project's recently active users (from the product
//! events they sent, with their user properties, completed with generated ids when there are
//! too few), each enriched as serving enriches users (cohorts) and evaluated with the flag
//! before and after the change.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use utoipa::ToSchema;
use vexil_eval::{evaluate, Context, FlagSet, Object, Value};
use vexil_store::Tx;

use crate::compile::flags_with_prerequisites;
use crate::error::{Error, Result};
use crate::model::Flag;
use crate::sdk::enrich::{enrich, PropertyList};
use crate::service::convert::flag;

/// Users evaluated.
const SAMPLE: usize = 10_000;
/// Recent events read to find distinct active users.
const EVENTS_READ: u32 = 50_000;

/// How many of a sample of users a change moves, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Moved {
    /// Users evaluated.
    pub sample: u32,
    /// Of those, users seen in the project's recent events (with their user properties); the
    /// rest are generated ids, which only bucketing and id conditions see.
    pub active_users: u32,
    /// Users whose variant changes.
    pub moved: u32,
    /// Each move: from which variant to which (`off` for none), and how many users.
    pub transitions: Vec<Transition>,
}

/// Users moved from one variant to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub users: u32,
}

/// Evaluates the sample with `before` and with `after` (the same flag).
pub(super) fn moved(tx: &mut dyn Tx, project: &str, before: &Flag, after: &Flag) -> Result<Moved> {
    let users = sample(tx, project)?;
    let active = users.len();
    let mut users = users;
    let mut i = 0;
    while users.len() < SAMPLE {
        let mut u = Object::new();
        u.insert("user_id", Value::from(format!("sample-user-{i}")));
        u.insert("device_id", Value::from(format!("sample-device-{i}")));
        users.push(u);
        i += 1;
    }
    let all: Vec<Flag> = tx
        .project_flags(project)?
        .iter()
        .map(flag)
        .collect::<Result<_>>()?;
    let groups = crate::service::groups::project_groups(tx, project)?;
    let set = |f: &Flag| -> Result<FlagSet> {
        let flags: Vec<Flag> = all
            .iter()
            .map(|x| if x.key == f.key { f.clone() } else { x.clone() })
            .collect();
        FlagSet::compile(flags_with_prerequisites(&[f.key.as_str()], &flags, &groups))
            .map_err(|e| Error::Internal(Box::new(e)))
    };
    let (old, new) = (set(before)?, set(after)?);
    let mut configs = old.configs().cloned().collect::<Vec<_>>();
    configs.extend(new.configs().cloned());
    let cohorts = crate::service::flags::stored_cohorts(tx, project, &configs)?;
    let key = [before.key.as_str()];
    let mut transitions: BTreeMap<(String, String), u32> = BTreeMap::new();
    for mut user in users {
        enrich(&mut user, &cohorts, &PropertyList::default());
        let context = Context::from_sdk_user(Value::Object(user));
        let variant = |set: &FlagSet| -> Result<String> {
            let results = evaluate(set, &context, &key)
                .map_err(|e| Error::blocked("dependency_cycle", e.to_string(), Vec::new()))?;
            Ok(results.get(key[0]).map_or("off", |r| r.key()).to_string())
        };
        let (from, to) = (variant(&old)?, variant(&new)?);
        if from != to {
            *transitions.entry((from, to)).or_default() += 1;
        }
    }
    let mut transitions: Vec<Transition> = transitions
        .into_iter()
        .map(|((from, to), users)| Transition { from, to, users })
        .collect();
    transitions.sort_by(|a, b| b.users.cmp(&a.users).then(a.from.cmp(&b.from)));
    Ok(Moved {
        sample: u32::try_from(SAMPLE).unwrap_or(u32::MAX),
        active_users: u32::try_from(active).unwrap_or(u32::MAX),
        moved: transitions.iter().map(|t| t.users).sum(),
        transitions,
    })
}

/// Distinct recently active users of the project, as SDK user objects.
fn sample(tx: &mut dyn Tx, project: &str) -> Result<Vec<Object>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for e in tx.recent_events(project, EVENTS_READ)? {
        if out.len() >= SAMPLE {
            break;
        }
        let id = (e.user_id.clone(), e.device_id.clone());
        if id == (None, None) || !seen.insert(id) {
            continue;
        }
        let mut u = Object::new();
        if let Some(v) = e.user_id {
            u.insert("user_id", Value::from(v));
        }
        if let Some(v) = e.device_id {
            u.insert("device_id", Value::from(v));
        }
        if let Some(props) = e
            .user_properties
            .as_deref()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        {
            u.insert("user_properties", Value::from(props));
        }
        out.push(u);
    }
    Ok(out)
}
