//! Import from Amplitude Experiment: the flag configs its SDKs download (`/sdk/v2/flags`, the
//! engine format) and its cohorts (`{cohortId, groupType, memberIds, ...}`). Each config
//! becomes one flag attached to a deployment and served exactly as given; re-importing the same
//! files changes nothing. The whole import is one transaction.
//!
//! Every config is held to the model's limits ([`crate::limits`]) before anything is stored:
//! the number of configs and each config's size as soon as the file is split into configs,
//! each config's counts and regex patterns after it is parsed and before it is compiled, and
//! the project's flag count at the start of the transaction. A refused import stores nothing.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;
use vexil_eval::{FlagConfig, FlagSet};
use vexil_store::Tx;

use super::convert::{cohort, flag_row};
use super::flags::{load, write_version};
use super::{now_ms, record, Actor, Core, Role};
use crate::error::{Error, FieldError, Result};
use crate::keys::{is_url_safe_key, salt};
use crate::limits::{check_config, Violations, CONFIG_BYTES, FLAGS_PER_PROJECT};
use crate::model::{
    Cohort, EvaluationMode, Flag, FlagState, FlagType, ImportedConfig, Prerequisite, Rollout,
    Variant, OFF, USER_FIELDS,
};

/// What an import did, by flag key and cohort id.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ImportReport {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    pub cohorts_created: Vec<String>,
    pub cohorts_updated: Vec<String>,
    pub cohorts_unchanged: Vec<String>,
}

/// One cohort as Amplitude's cohort download returns it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmplitudeCohort {
    pub cohort_id: String,
    #[serde(default = "user")]
    pub group_type: String,
    pub member_ids: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
}

fn user() -> String {
    "User".to_string()
}

/// Import use cases.
#[derive(Clone)]
pub struct ImportService {
    pub(crate) core: Core,
}

impl ImportService {
    /// Imports `flags` (a JSON array of engine configs) and optionally `cohorts` (a JSON array
    /// of Amplitude cohorts, or one cohort) into `project`, attaching every flag to the
    /// deployment named by key or label.
    pub fn import(
        &self,
        actor: &Actor,
        project: &str,
        deployment: &str,
        flags: &str,
        cohorts: Option<&str>,
    ) -> Result<ImportReport> {
        actor.require(Role::Writer)?;
        let configs = parse_configs(flags)?;
        let cohorts = match cohorts {
            Some(text) => parse_cohorts(text)?,
            None => Vec::new(),
        };
        let report = self.core.write(|tx| {
            super::projects::lock(tx, project)?;
            let deployment = super::deployments::find(tx, project, deployment)?.key;
            check_flag_count(tx, project, &configs)?;
            let mut report = ImportReport::default();
            import_cohorts(tx, actor, project, &cohorts, &mut report)?;
            for (key, raw, config) in &configs {
                import_flag(
                    tx,
                    actor,
                    project,
                    &deployment,
                    key,
                    raw,
                    config,
                    &mut report,
                )?;
            }
            Ok(report)
        })?;
        self.core.changed(project);
        Ok(report)
    }
}

/// Parses and validates the configs, in dependency order (prerequisites first).
fn parse_configs(text: &str) -> Result<Vec<(String, Box<RawValue>, FlagConfig)>> {
    // Borrowed, the configs are slices of `text`: their sizes are known before any is copied
    // or parsed.
    let raws: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| {
        Error::invalid(
            "flags",
            "invalid_json",
            format!(
                "the flags file is a JSON array of flag configs, as /sdk/v2/flags returns: {e}"
            ),
        )
    })?;
    let mut errors = Vec::new();
    if !Violations::new(&mut errors, "flags", "the flags file").count(
        &FLAGS_PER_PROJECT,
        "",
        raws.len(),
    ) {
        return Err(Error::Invalid(errors));
    }
    let mut parsed = Vec::with_capacity(raws.len());
    let mut seen = HashMap::new();
    for (i, raw) in raws.into_iter().enumerate() {
        let Some(config) = checked_config(raw.get(), &format!("flags[{i}]"), &mut errors) else {
            continue;
        };
        if !is_url_safe_key(&config.key) {
            errors.push(FieldError::new(
                format!("flags[{i}].key"),
                "invalid_key",
                format!("{:?} is not a valid flag key", config.key),
            ));
        }
        if seen.insert(config.key.clone(), i).is_some() {
            errors.push(FieldError::new(
                format!("flags[{i}].key"),
                "duplicate",
                format!("{:?} appears twice", config.key),
            ));
        }
        parsed.push((config.key.clone(), raw.to_owned(), config));
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    // Each config was compiled alone above; compiling the set again would find nothing new
    // (duplicate keys are checked here).
    order_by_dependencies(parsed)
}

/// Parses one config found at `at` (`flags[3]`, `imported_config`) and holds it to the
/// model's limits, each before the work it protects: the size before parsing, the counts and
/// patterns before compiling. Faults go to `errors`, each naming `at`, the flag's key and the
/// path inside the config.
fn checked_config(text: &str, at: &str, errors: &mut Vec<FieldError>) -> Option<FlagConfig> {
    if text.len() > CONFIG_BYTES.max {
        let label = label(at, key_of(text).as_deref());
        Violations::new(errors, at, label).count(&CONFIG_BYTES, "", text.len());
        return None;
    }
    let config: FlagConfig = match serde_json::from_str(text) {
        Ok(config) => config,
        Err(e) => {
            errors.push(FieldError::new(at, "invalid_flag_config", e.to_string()));
            return None;
        }
    };
    let before = errors.len();
    check_config(
        &config,
        &mut Violations::new(errors, at, label(at, Some(&config.key))),
    );
    if errors.len() > before {
        return None;
    }
    if let Err(e) = FlagSet::compile(vec![config.clone()]) {
        errors.push(FieldError::new(at, "invalid_flag_config", e.to_string()));
        return None;
    }
    Some(config)
}

/// How a limit violation names an imported flag: `flags[3] (checkout-v2)`.
fn label(at: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!("{at} ({key})"),
        None => at.to_owned(),
    }
}

/// The `key` of a config too large to parse, read without building anything else.
fn key_of(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Key {
        key: Option<String>,
    }
    serde_json::from_str::<Key>(text).ok()?.key
}

/// Refuses an import that would take the project past [`crate::limits::FLAGS_PER_PROJECT`],
/// before it writes anything.
fn check_flag_count(
    tx: &mut dyn Tx,
    project: &str,
    configs: &[(String, Box<RawValue>, FlagConfig)],
) -> Result<()> {
    let mut added = 0;
    for (key, _, _) in configs {
        if tx.get_flag(project, key)?.is_none() {
            added += 1;
        }
    }
    crate::limits::check_flag_count(tx, project, added)
}

fn order_by_dependencies(
    parsed: Vec<(String, Box<RawValue>, FlagConfig)>,
) -> Result<Vec<(String, Box<RawValue>, FlagConfig)>> {
    let mut pending: BTreeMap<String, (Box<RawValue>, FlagConfig)> =
        parsed.into_iter().map(|(k, r, c)| (k, (r, c))).collect();
    let mut out = Vec::new();
    while !pending.is_empty() {
        let ready: Vec<String> = pending
            .iter()
            .filter(|(_, (_, c))| {
                c.dependencies
                    .iter()
                    .flatten()
                    .all(|d| !pending.contains_key(d))
            })
            .map(|(k, _)| k.clone())
            .collect();
        if ready.is_empty() {
            let stuck: Vec<String> = pending.keys().cloned().collect();
            return Err(Error::blocked(
                "dependency_cycle",
                format!(
                    "the imported flags depend on each other in a cycle: {}",
                    stuck.join(", ")
                ),
                stuck,
            ));
        }
        for key in ready {
            if let Some((raw, config)) = pending.remove(&key) {
                out.push((key, raw, config));
            }
        }
    }
    Ok(out)
}

fn parse_cohorts(text: &str) -> Result<Vec<AmplitudeCohort>> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Body {
        Many(Vec<AmplitudeCohort>),
        One(AmplitudeCohort),
    }
    match serde_json::from_str::<Body>(text) {
        Ok(Body::Many(c)) => Ok(c),
        Ok(Body::One(c)) => Ok(vec![c]),
        Err(e) => Err(Error::invalid(
            "cohorts",
            "invalid_json",
            format!("cohorts are a JSON array of {{cohortId, groupType, memberIds}} objects: {e}"),
        )),
    }
}

fn import_cohorts(
    tx: &mut dyn Tx,
    actor: &Actor,
    project: &str,
    cohorts: &[AmplitudeCohort],
    report: &mut ImportReport,
) -> Result<()> {
    for c in cohorts {
        if !is_url_safe_key(&c.cohort_id) {
            return Err(Error::invalid(
                "cohorts",
                "invalid_key",
                format!("{:?} is not a valid cohort id", c.cohort_id),
            ));
        }
        let members = super::cohorts::clean_members(c.member_ids.clone())?;
        match tx.get_cohort(project, &c.cohort_id)? {
            Some(row) => {
                let mut existing = cohort(&row)?;
                if existing.group_type == c.group_type
                    && tx.cohort_members(project, &c.cohort_id)? == members
                {
                    report.cohorts_unchanged.push(c.cohort_id.clone());
                    continue;
                }
                existing.group_type = c.group_type.clone();
                super::cohorts::replace(tx, actor, existing, &members, "import")?;
                report.cohorts_updated.push(c.cohort_id.clone());
            }
            None => {
                let new = Cohort {
                    project: project.to_string(),
                    id: c.cohort_id.clone(),
                    name: c.name.clone().unwrap_or_else(|| c.cohort_id.clone()),
                    description: String::new(),
                    group_type: c.group_type.clone(),
                    size: 0,
                    version: 0,
                    created_at: 0,
                    updated_at: 0,
                };
                super::cohorts::insert(tx, actor, new, &members, "import")?;
                report.cohorts_created.push(c.cohort_id.clone());
            }
        }
    }
    Ok(())
}

#[allow(
    clippy::too_many_arguments,
    reason = "the import's context, passed down one level"
)]
fn import_flag(
    tx: &mut dyn Tx,
    actor: &Actor,
    project: &str,
    deployment: &str,
    key: &str,
    raw: &RawValue,
    config: &FlagConfig,
    report: &mut ImportReport,
) -> Result<()> {
    let imported = ImportedConfig(raw.to_owned());
    match tx.get_flag(project, key)? {
        None => {
            super::groups::check_key_free(tx, project, key)?;
            let now = now_ms();
            let mut f = Flag {
                project: project.to_string(),
                key: key.to_string(),
                name: key.to_string(),
                description: String::new(),
                kind: FlagType::Release,
                experiment_key: None,
                experiment: None,
                evaluation_mode: EvaluationMode::Local,
                bucketing_unit: "user_id".to_string(),
                bucketing_salt: salt()?,
                tags: vec!["imported".to_string()],
                deployments: vec![deployment.to_string()],
                state: FlagState::Active,
                archived: false,
                permanent: false,
                variants: Vec::new(),
                segments: Vec::new(),
                all_other_users: Rollout {
                    percentage: 0,
                    weights: BTreeMap::new(),
                },
                inclusions: BTreeMap::new(),
                prerequisites: Vec::new(),
                mutex_group: None,
                holdouts: Vec::new(),
                imported_config: None,
                version: 1,
                created_at: now,
                updated_at: now,
                created_by: actor.name.clone(),
                updated_by: actor.name.clone(),
            };
            mirror(&mut f, imported, config);
            let errors = crate::validate::validate_flag(&mut f);
            if !errors.is_empty() {
                return Err(Error::Invalid(errors));
            }
            let project_key = project.to_string();
            crate::rules::check_save(
                &mut super::flags::TxSource {
                    tx: &mut *tx,
                    project: &project_key,
                },
                None,
                &f,
            )?;
            let row = flag_row(&f)?;
            tx.insert_flag(&row)?;
            record(
                tx,
                actor,
                project,
                "flag",
                key,
                1,
                now,
                "import",
                "imported".into(),
                row.doc,
            )?;
            report.created.push(key.to_string());
        }
        Some(_) => {
            let before = load(tx, project, key)?;
            if before.imported_config.is_none() {
                return Err(Error::Conflict {
                    code: "flag_key_taken",
                    message: format!("project {project:?} already has a flag {key:?} that was not imported; rename one of them"),
                    field: Some("key".into()),
                });
            }
            let attached = before.deployments.iter().any(|d| d == deployment);
            if before.imported_config.as_ref() == Some(&imported) && attached {
                report.unchanged.push(key.to_string());
                return Ok(());
            }
            let mut after = before.clone();
            mirror(&mut after, imported, config);
            if !attached {
                after.deployments.push(deployment.to_string());
            }
            write_version(
                tx,
                actor,
                &before,
                after,
                "import",
                Vec::new(),
                String::new(),
            )?;
            report.updated.push(key.to_string());
        }
    }
    Ok(())
}

/// Sets an imported flag's config and the fields that mirror it for display and for the
/// prerequisite rules: type, mode, bucketing, variants, prerequisites.
fn mirror(f: &mut Flag, imported: ImportedConfig, config: &FlagConfig) {
    let meta = |k: &str| {
        config
            .metadata
            .as_ref()
            .and_then(|m| m.get(k))
            .and_then(|v| match v {
                vexil_eval::Value::String(s) => Some(s.to_string()),
                _ => None,
            })
    };
    if meta("flagType").as_deref() == Some("experiment") {
        f.kind = FlagType::Experiment;
        f.experiment_key = meta("experimentKey");
    }
    f.evaluation_mode = match meta("evaluationMode").as_deref() {
        Some("remote") => EvaluationMode::Remote,
        _ => EvaluationMode::Local,
    };
    if let Some(bucket) = config.segments.iter().find_map(|s| s.bucket.as_ref()) {
        f.bucketing_salt = bucket.salt.clone();
        f.bucketing_unit = match bucket
            .selector
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["context", "user", field] if USER_FIELDS.contains(field) => (*field).to_string(),
            ["context", "groups", group, "group_name"] => (*group).to_string(),
            _ => f.bucketing_unit.clone(),
        };
    }
    f.variants = config
        .variants
        .iter()
        .filter(|(k, v)| *k != OFF && !is_default(v))
        .map(|(k, v)| Variant {
            key: v.key.clone().unwrap_or_else(|| k.to_string()),
            name: k.to_string(),
            value: match &v.value {
                Some(vexil_eval::Value::String(s)) => s.to_string(),
                Some(other) => serde_json::to_string(other).unwrap_or_default(),
                None => String::new(),
            },
            payload: v.payload.clone().map(serde_json::Value::from),
            description: String::new(),
        })
        .collect();
    f.prerequisites = config
        .dependencies
        .iter()
        .flatten()
        .map(|d| Prerequisite {
            flag: d.clone(),
            variants: gate_variants(config, d),
        })
        .collect();
    f.imported_config = Some(imported);
}

fn is_default(v: &vexil_eval::VariantConfig) -> bool {
    v.metadata.as_ref().and_then(|m| m.get("default")) == Some(&vexil_eval::Value::Bool(true))
}

/// The variants of `dependency` a `flag-dependencies` gate lets through, if the config has one.
fn gate_variants(config: &FlagConfig, dependency: &str) -> Vec<String> {
    config
        .segments
        .iter()
        .flat_map(|s| s.conditions.iter().flatten().flatten())
        .find(|c| {
            c.op == "is not"
                && c.selector.len() == 3
                && c.selector[0] == "result"
                && c.selector[1] == dependency
        })
        .map(|c| c.values.clone())
        .unwrap_or_default()
}

/// Replaces an imported flag's config (a PATCH of `imported_config`), validated like an import.
pub(crate) fn apply_config(f: &mut Flag, config: ImportedConfig) -> Result<()> {
    let mut errors = Vec::new();
    let Some(parsed) = checked_config(config.json(), "imported_config", &mut errors) else {
        return Err(Error::Invalid(errors));
    };
    if parsed.key != f.key {
        return Err(Error::invalid(
            "imported_config.key",
            "immutable",
            format!("the config's key must stay {:?}", f.key),
        ));
    }
    mirror(f, config, &parsed);
    Ok(())
}
