//! QA: evaluate one flag and its prerequisites for a user, as the server would serve it, with
//! the engine's explanation of every segment examined.
//!
//! The user is enriched by the same function as remote evaluation ([`enrich`]), with the same
//! data read from the store instead of a snapshot: the cohorts the evaluated configs reference
//! and the user's stored `[Experiment]` properties of the flags their conditions read. So a
//! user tested here gets what `/sdk/v2/vardata` would give them once the flag is served.
//!
//! The results keep the groups' own (QA is for people), and under a flag that its
//! `flag-dependencies` gate turned `off` the explanation names each dependency that did it:
//! the holdout that held the user out, the other slot of a mutual-exclusion group, the
//! prerequisite's result. What a dependency is comes from its served `flagType`, so imported
//! groups read the same as Vexil's own.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value as Json;
use utoipa::ToSchema;
use vexil_eval::{explain, Context, FlagConfig, FlagExplanation, FlagSet, Object, Results, Value};

use super::{load, resolve, FlagService};
use crate::compile::flags_with_prerequisites;
use crate::error::{Error, Result};
use crate::model::{Flag, FlagState, GroupKind};
use crate::sdk::enrich::{enrich, targeted_properties, Cohorts, PropertyList};
use crate::sdk::{group_kind, referenced_cohort_ids, CohortData, IdKind};
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
    /// segment examined (matched or why not, the bucketing numbers, the outcome), and under a
    /// `flag-dependencies` gate that served `off`, why: "held out by `holdout-x` (the holdout
    /// gave holdout)", "slot-2 of `mutex-y`: not this experiment's slot (slot-1)",
    /// "prerequisite `p` gave off, not on".
    pub explanation: String,
    /// Why the flag gave this variant, in one sentence.
    pub reason: String,
    /// Each segment of the flag examined, in order, as a sentence: why it was skipped, or how
    /// it served the user ("Segment *Pro plan* skipped: property *plan* is \"free\"; the
    /// condition asks that it is one of pro, enterprise"). Names in `*…*`.
    pub steps: Vec<String>,
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
    /// prerequisites and groups are evaluated as they are served now.
    pub fn evaluate(&self, project: Option<&str>, key: &str, user: Json) -> Result<Evaluation> {
        let Value::Object(mut user) = Value::from(user) else {
            return Err(Error::invalid(
                "user",
                "invalid_user",
                "the user is a JSON object such as {\"user_id\": \"u1\"}",
            ));
        };
        let (configs, active, cohorts, properties) = self.core.read(|tx| {
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
            let cohorts = stored_cohorts(tx, &project, &configs)?;
            let properties = stored_properties(tx, &project, &configs, &user)?;
            Ok((configs, active, cohorts, properties))
        })?;
        enrich(&mut user, &cohorts, &properties);
        let set = FlagSet::compile(configs).map_err(|e| Error::Internal(Box::new(e)))?;
        let user = Value::Object(user);
        let context = Context::from_sdk_user(user.clone());
        let (results, explanations) = explain(&set, &context, &[key])
            .map_err(|e| Error::blocked("dependency_cycle", e.to_string(), Vec::new()))?;
        let variant = results.get(key).map_or("off", |r| r.key()).to_string();
        let explanation = lines(&set, &results, &explanations);
        let mine = explanations.iter().find(|e| e.flag_key == key);
        let reason = mine.map_or_else(
            || "not evaluated".to_owned(),
            |e| reason_of(&set, &results, e),
        );
        let steps = mine.map_or_else(Vec::new, |e| steps(&set, &results, e));
        let results = serde_json::to_value(&results).map_err(|e| Error::Internal(Box::new(e)))?;
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
            reason,
            steps,
            user: Json::from(user),
            active,
        })
    }
}

/// The cohorts `configs` reference, with their members, as serving holds them.
pub(crate) fn stored_cohorts(
    tx: &mut dyn vexil_store::Tx,
    project: &str,
    configs: &[FlagConfig],
) -> Result<Cohorts> {
    let mut cohorts = Vec::new();
    for id in referenced_cohort_ids(configs) {
        let Some(row) = tx.get_cohort(project, id)? else {
            continue;
        };
        let members = tx.cohort_members(project, id)?;
        cohorts.push(Arc::new(CohortData::new(
            row.id,
            row.group_type,
            row.version,
            row.updated_at,
            members,
        )));
    }
    Ok(Cohorts::new(cohorts))
}

/// The user's stored `[Experiment]` properties of the flags whose property some condition of
/// `configs` reads (those serving keeps in memory), by user id and device id.
fn stored_properties(
    tx: &mut dyn vexil_store::Tx,
    project: &str,
    configs: &[FlagConfig],
    user: &Object,
) -> Result<PropertyList> {
    let id = |field: &str| {
        user.get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (user_id, device_id) = (id("user_id"), id("device_id"));
    let mut out = PropertyList::default();
    if user_id.is_none() && device_id.is_none() {
        return Ok(out);
    }
    let targeted = targeted_properties(configs);
    if targeted.is_empty() {
        return Ok(out);
    }
    for (kind, id) in [(IdKind::User, user_id), (IdKind::Device, device_id)] {
        let Some(id) = id else { continue };
        for row in tx.user_experiment_properties(project, kind.as_str(), &id)? {
            if let (Some(variant), true) = (row.variant, targeted.contains(&row.flag_key)) {
                out.0.push((kind, row.id, row.flag_key, variant));
            }
        }
    }
    Ok(out)
}

/// The explanations as lines a person reads, each flag's followed by why its
/// `flag-dependencies` gate served `off` when it did.
fn lines(set: &FlagSet, results: &Results<'_>, explanations: &[FlagExplanation]) -> String {
    let mut out = String::new();
    for e in explanations {
        out.push_str(&e.to_string());
        for line in gate_reasons(set, results, e) {
            out.push_str("    ");
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// The flag's segments as sentences, a dependency gate that served `off` with each reason.
fn steps(set: &FlagSet, results: &Results<'_>, e: &FlagExplanation) -> Vec<String> {
    let mut out = super::words::steps(e);
    if let (Some(last), Some(i)) = (out.last_mut(), e.segment_index) {
        let gate = config(set, &e.flag_key)
            .and_then(|c| c.segments.get(i))
            .and_then(|s| {
                s.metadata
                    .as_ref()?
                    .get("segmentName")?
                    .as_str()
                    .map(str::to_owned)
            });
        let why = gate_reasons(set, results, e);
        if gate.as_deref() == Some("flag-dependencies") && !why.is_empty() {
            *last = format!("Dependencies turn this flag off: {}", why.join("; "));
        }
    }
    out
}

fn config<'a>(set: &'a FlagSet, key: &str) -> Option<&'a FlagConfig> {
    set.configs().nth(set.index_of(key)?)
}

/// When the flag was served by its `flag-dependencies` gate: one line per dependency whose
/// result is not one the flag allows, named by what the dependency is (its `flagType`, so
/// imported groups read the same as Vexil's own).
fn gate_reasons(set: &FlagSet, results: &Results<'_>, e: &FlagExplanation) -> Vec<String> {
    let Some(segment) = e
        .segment_index
        .and_then(|i| config(set, &e.flag_key)?.segments.get(i))
    else {
        return Vec::new();
    };
    let name = segment.metadata.as_ref().and_then(|m| m.get("segmentName"));
    if name.and_then(Value::as_str) != Some("flag-dependencies") {
        return Vec::new();
    }
    let mut out = Vec::new();
    for condition in segment.conditions.iter().flatten().flatten() {
        let [kind, dependency, field] = condition.selector.as_slice() else {
            continue;
        };
        if kind != "result" || field != "key" || condition.op != "is not" {
            continue;
        }
        let got = results.get(dependency).map(|r| r.key());
        if got.is_some_and(|g| condition.values.iter().any(|v| v == g)) {
            continue;
        }
        let got = got.unwrap_or("no result");
        let allowed = condition.values.join(", ");
        out.push(match config(set, dependency).and_then(group_kind) {
            Some(GroupKind::Holdout) => {
                format!("held out by `{dependency}` (the holdout gave {got})")
            }
            Some(GroupKind::MutualExclusion) => {
                format!("{got} of `{dependency}`: not this experiment's slot ({allowed})")
            }
            None => format!("prerequisite `{dependency}` gave {got}, not {allowed}"),
        });
    }
    out
}

/// What one flag gives a user, in a sentence, with the trace one click away.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserFlag {
    pub flag: String,
    pub name: String,
    /// The variant served (`off` when none).
    pub variant: String,
    /// Why, in words: the segment that served it and how, or why nothing did.
    pub reason: String,
    /// The engine's explanation as lines a person reads.
    pub trace: String,
}

/// Every flag a user gets.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    /// The deployment evaluated as its SDKs would (absent: every flag of the project).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// The user as evaluated, with the cohorts the server found them in.
    #[schema(value_type = Object)]
    pub user: Json,
    /// By flag key.
    pub flags: Vec<UserFlag>,
}

impl FlagService {
    /// Evaluates every flag of `project` for `user` as SDKs would: with `deployment`, the flags
    /// served to that deployment (inactive ones give `off`); without, every unarchived flag.
    /// The user is enriched like remote evaluation does (cohorts, stored `[Experiment]`
    /// properties).
    pub fn user_view(
        &self,
        project: &str,
        deployment: Option<&str>,
        user: Json,
    ) -> Result<UserView> {
        let Value::Object(mut user) = Value::from(user) else {
            return Err(Error::invalid(
                "user",
                "invalid_user",
                "the user is a JSON object such as {\"user_id\": \"u1\"}",
            ));
        };
        let (configs, roots, names, cohorts, properties) = self.core.read(|tx| {
            crate::service::projects::get(tx, project)?;
            if let Some(d) = deployment {
                if !tx.list_deployments(project)?.iter().any(|x| x.key == d) {
                    return Err(Error::NotFound {
                        entity: "deployment",
                        key: d.to_string(),
                    });
                }
            }
            let all: Vec<Flag> = tx
                .project_flags(project)?
                .iter()
                .map(flag)
                .collect::<Result<_>>()?;
            let groups = crate::service::groups::project_groups(tx, project)?;
            let mut roots: Vec<(String, String)> = all
                .iter()
                .filter(|f| !f.archived)
                .filter(|f| deployment.is_none_or(|d| f.deployments.iter().any(|x| x == d)))
                .map(|f| (f.key.clone(), f.name.clone()))
                .collect();
            roots.sort();
            let keys: Vec<&str> = roots.iter().map(|(k, _)| k.as_str()).collect();
            let configs = match deployment {
                Some(d) => crate::compile::deployment_flags(d, &all, &groups),
                None => flags_with_prerequisites(&keys, &all, &groups),
            };
            let cohorts = stored_cohorts(tx, project, &configs)?;
            let properties = stored_properties(tx, project, &configs, &user)?;
            let names = roots.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>();
            let roots = roots.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
            Ok((configs, roots, names, cohorts, properties))
        })?;
        enrich(&mut user, &cohorts, &properties);
        let set = FlagSet::compile(configs).map_err(|e| Error::Internal(Box::new(e)))?;
        let user = Value::Object(user);
        let context = Context::from_sdk_user(user.clone());
        let (results, explanations) = explain(&set, &context, &roots)
            .map_err(|e| Error::blocked("dependency_cycle", e.to_string(), Vec::new()))?;
        let flags = roots
            .iter()
            .zip(names)
            .map(|(key, name)| {
                let variant = results.get(key).map_or("off", |r| r.key()).to_string();
                let explanation = explanations.iter().find(|e| &e.flag_key == key);
                let reason = explanation.map_or_else(
                    || "not served: off".to_string(),
                    |e| reason_of(&set, &results, e),
                );
                let trace = explanation.map_or_else(String::new, |e| {
                    lines(&set, &results, std::slice::from_ref(e))
                });
                UserFlag {
                    flag: key.clone(),
                    name,
                    variant,
                    reason,
                    trace,
                }
            })
            .collect();
        Ok(UserView {
            deployment: deployment.map(str::to_owned),
            user: Json::from(user),
            flags,
        })
    }
}

/// Why a flag gave what it gave, in one sentence.
fn reason_of(set: &FlagSet, results: &Results<'_>, e: &FlagExplanation) -> String {
    use vexil_eval::SegmentOutcome;
    let served = e
        .segment_index
        .and_then(|i| e.segments.iter().find(|s| s.index == i));
    let Some(segment) = served else {
        return "no segment served this user: off".to_string();
    };
    let name = segment.name.as_deref().unwrap_or("(unnamed)");
    if name == "flag-dependencies" {
        let why = gate_reasons(set, results, e);
        return if why.is_empty() {
            "off because of a dependency".to_string()
        } else {
            format!("off: {}", why.join("; "))
        };
    }
    match &segment.outcome {
        SegmentOutcome::Served { bucketed: true, .. } => {
            format!("segment {name:?}: in its rollout, bucketed into this variant")
        }
        SegmentOutcome::Served { reason, .. } if reason == "not allocated" => {
            format!("segment {name:?}: matched, outside its rollout percentage")
        }
        SegmentOutcome::Served { .. } => format!("segment {name:?} serves this variant"),
        SegmentOutcome::FellThrough { reason } => format!("segment {name:?}: {reason}"),
        SegmentOutcome::NotMatched => format!("segment {name:?}"),
    }
}
