//! QA: evaluate one flag and its prerequisites for a user, as the server would serve it, with
//! the engine's explanation of every segment examined.

use serde::Serialize;
use serde_json::{Map, Value as Json};
use utoipa::ToSchema;
use vexil_eval::{explain, Context, FlagSet};

use super::{load, resolve, FlagService};
use crate::compile::flags_with_prerequisites;
use crate::error::{Error, Result};
use crate::model::{Flag, FlagState};
use crate::service::convert::flag;

/// The outcome of a QA evaluation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Evaluation {
    /// The flag evaluated.
    pub flag: String,
    /// The variant this flag gives the user (`off` when not served).
    pub variant: String,
    /// The result SDKs would receive for this flag and each prerequisite, by flag key.
    #[schema(value_type = Object)]
    pub results: Json,
    /// Per flag evaluated (prerequisites first): segments examined, why each matched or not,
    /// and the bucketing numbers.
    #[schema(value_type = Vec<Object>)]
    pub explanations: Vec<Json>,
    /// The same explanations as lines a person reads: per flag the verdict, then one line per
    /// segment examined (matched or why not, the bucketing numbers, the outcome).
    pub explanation: String,
    /// The user as evaluated, with the cohorts the server found them in.
    #[schema(value_type = Object)]
    pub user: Json,
    /// Whether the flag is active. QA shows an inactive flag's targeting as it will serve once
    /// activated; until then SDKs get `off`.
    pub active: bool,
}

impl FlagService {
    /// Evaluates flag `key` for `user`, an Amplitude user object (`user_id`, `device_id`,
    /// `user_properties`, `groups`, ...). The flag's targeting is evaluated even while it is
    /// inactive, so a flag can be checked before it is activated (the seed's QA step); its
    /// prerequisites are evaluated as they are served now.
    pub fn evaluate(&self, project: Option<&str>, key: &str, user: Json) -> Result<Evaluation> {
        let Json::Object(mut user) = user else {
            return Err(Error::invalid(
                "user",
                "invalid_user",
                "the user is a JSON object such as {\"user_id\": \"u1\"}",
            ));
        };
        let (configs, active) = self.core.read(|tx| {
            let project = resolve(tx, project, key)?;
            let active = load(tx, &project, key)?.state == FlagState::Active;
            let mut all: Vec<Flag> = tx
                .project_flags(&project)?
                .iter()
                .map(flag)
                .collect::<Result<_>>()?;
            for f in all.iter_mut().filter(|f| f.key == key) {
                f.state = FlagState::Active;
            }
            let groups = crate::service::groups::project_groups(tx, &project)?;
            let configs = flags_with_prerequisites(&[key], &all, &groups);
            add_cohorts(tx, &project, &configs, &mut user)?;
            Ok((configs, active))
        })?;
        let set = FlagSet::compile(configs).map_err(|e| Error::Internal(Box::new(e)))?;
        let user = Json::Object(user);
        let context = Context::from_sdk_user(vexil_eval::Value::from(user.clone()));
        let (results, explanations) = explain(&set, &context, &[key])
            .map_err(|e| Error::blocked("dependency_cycle", e.to_string(), Vec::new()))?;
        let variant = results.get(key).map_or("off", |r| r.key()).to_string();
        let results = serde_json::to_value(&results).map_err(|e| Error::Internal(Box::new(e)))?;
        let explanation: String = explanations.iter().map(ToString::to_string).collect();
        let explanations = explanations
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()
            .map_err(|e| Error::Internal(Box::new(e)))?;
        Ok(Evaluation {
            flag: key.to_string(),
            variant,
            results,
            explanations,
            explanation,
            user,
            active,
        })
    }
}

/// Adds to the user the cohorts (among those the configs reference) that contain them:
/// user cohorts by `user_id` into `cohort_ids`, group cohorts by the first group name of each
/// type into `group_cohort_ids` — what remote evaluation does.
fn add_cohorts(
    tx: &mut dyn vexil_store::Tx,
    project: &str,
    configs: &[vexil_eval::FlagConfig],
    user: &mut Map<String, Json>,
) -> Result<()> {
    let mut referenced: Vec<String> = Vec::new();
    for config in configs {
        for segment in &config.segments {
            for condition in segment.conditions.iter().flatten().flatten() {
                if condition.selector.last().is_some_and(|s| s == "cohort_ids") {
                    referenced.extend(condition.values.iter().cloned());
                }
            }
        }
    }
    referenced.sort();
    referenced.dedup();
    let user_id = user
        .get("user_id")
        .and_then(Json::as_str)
        .map(str::to_string);
    let groups: Vec<(String, String)> = user
        .get("groups")
        .and_then(Json::as_object)
        .map(|g| {
            g.iter()
                .filter_map(|(t, names)| {
                    let first = names.as_array().and_then(|a| a.first()).or(Some(names))?;
                    Some((t.clone(), first.as_str()?.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    for id in referenced {
        let Some(row) = tx.get_cohort(project, &id)? else {
            continue;
        };
        let members = tx.cohort_members(project, &id)?;
        if row.group_type == "User" {
            if let Some(uid) = user_id.as_deref().filter(|u| !u.is_empty()) {
                if members.iter().any(|m| m == uid) {
                    push(
                        user.entry("cohort_ids")
                            .or_insert_with(|| Json::Array(Vec::new())),
                        &id,
                    );
                }
            }
        } else if let Some((t, name)) = groups.iter().find(|(t, _)| *t == row.group_type) {
            if members.iter().any(|m| m == name) {
                let all = user
                    .entry("group_cohort_ids")
                    .or_insert_with(|| Json::Object(Map::new()));
                if let Json::Object(all) = all {
                    let by_name = all
                        .entry(t.clone())
                        .or_insert_with(|| Json::Object(Map::new()));
                    if let Json::Object(by_name) = by_name {
                        push(
                            by_name
                                .entry(name.clone())
                                .or_insert_with(|| Json::Array(Vec::new())),
                            &id,
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

fn push(list: &mut Json, id: &str) {
    if let Json::Array(items) = list {
        if !items.iter().any(|v| v.as_str() == Some(id)) {
            items.push(Json::String(id.to_string()));
        }
    }
}
