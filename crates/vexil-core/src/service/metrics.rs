//! Metrics (`analysis.md` §2): create, list (with the predefined ones), show, change, archive,
//! unarchive, and their history (versions, compare, restore). A ratio's metrics must exist and
//! not be ratios themselves; a metric a ratio uses cannot be archived.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vexil_store::{DocumentRow, Tx};

use super::convert::{doc, doc_value, from_doc};
use super::groups::double_option;
use super::{check_version, now_ms, record, Actor, Core, Role, Saved};
use crate::diff::{diff, Change};
use crate::error::{Error, FieldError, Result};
use crate::keys::{is_url_safe_key, key_from_name};
use crate::model::{
    Direction, Metric, MetricKind, PropertyFilter, ANY_EVENT, BUILTIN_METRICS, EXPOSURE_EVENT,
};
use crate::validate::validate_metric;

/// The store's collection of metrics, and their history entity.
const METRICS: &str = "metric";

/// A metric to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMetric {
    pub name: String,
    /// Generated from the name when absent; immutable after creation.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "type")]
    pub kind: MetricKind,
    #[serde(default)]
    pub event_type: Option<String>,
    #[serde(default)]
    pub property: Option<String>,
    #[serde(default)]
    pub filters: Vec<PropertyFilter>,
    #[serde(default)]
    pub numerator: Option<String>,
    #[serde(default)]
    pub denominator: Option<String>,
    #[serde(default)]
    pub conversion_window_hours: Option<u32>,
    /// Default `increase`.
    #[serde(default = "increase")]
    pub direction: Direction,
    #[serde(default)]
    pub winsorize_percentile: Option<f64>,
}

fn increase() -> Direction {
    Direction::Increase
}

/// Fields of a metric to change; absent fields stay as they are, `null` clears an optional one.
/// The type cannot change: a metric that measures something else is a new metric.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub event_type: Option<String>,
    pub property: Option<String>,
    pub filters: Option<Vec<PropertyFilter>>,
    pub numerator: Option<String>,
    pub denominator: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub conversion_window_hours: Option<Option<u32>>,
    pub direction: Option<Direction>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<f64>)]
    pub winsorize_percentile: Option<Option<f64>>,
}

/// One version of a metric.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MetricVersion {
    #[serde(flatten)]
    pub meta: super::VersionMeta,
    /// The metric as it was after this change (only when one version is requested).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<Metric>,
}

/// Metric use cases.
#[derive(Clone)]
pub struct MetricService {
    pub(crate) core: Core,
}

impl MetricService {
    pub fn create(&self, actor: &Actor, project: &str, req: NewMetric) -> Result<Saved<Metric>> {
        actor.require(Role::Writer)?;
        let now = now_ms();
        let m = Metric {
            project: project.to_string(),
            key: req.key.unwrap_or_else(|| key_from_name(&req.name)),
            name: req.name.trim().to_string(),
            description: req.description,
            kind: req.kind,
            event_type: req.event_type,
            property: req.property,
            filters: req.filters,
            numerator: req.numerator,
            denominator: req.denominator,
            conversion_window_hours: req.conversion_window_hours,
            direction: req.direction,
            winsorize_percentile: req.winsorize_percentile,
            builtin: false,
            archived: false,
            version: 1,
            created_at: now,
            updated_at: now,
            created_by: actor.name.clone(),
            updated_by: actor.name.clone(),
        };
        let saved = self.core.write(|tx| {
            super::projects::lock(tx, project)?;
            check(tx, None, &m)?;
            if tx.get_document(project, METRICS, &m.key)?.is_some() {
                return Err(Error::Conflict {
                    code: "metric_key_taken",
                    message: format!(
                        "project {project:?} already has a metric with the key {:?}; choose another key",
                        m.key
                    ),
                    field: Some("key".into()),
                });
            }
            let row = metric_row(&m)?;
            tx.insert_document(&row)?;
            record(tx, actor, project, METRICS, &m.key, 1, now, "create", "created".into(), row.doc)?;
            Ok(m)
        })?;
        Ok(Saved {
            value: saved,
            warnings: Vec::new(),
        })
    }

    /// The predefined metrics, then the project's own in key order (archived ones when
    /// `archived`, and then no predefined ones).
    pub fn list(&self, project: &str, archived: bool) -> Result<Vec<Metric>> {
        self.core.read(|tx| {
            super::projects::get(tx, project)?;
            let mut out: Vec<Metric> = if archived {
                Vec::new()
            } else {
                BUILTIN_METRICS
                    .iter()
                    .filter_map(|(key, _, _)| Metric::builtin(project, key))
                    .collect()
            };
            for row in tx.list_documents(project, METRICS, None)? {
                let m = metric(&row)?;
                if m.archived == archived {
                    out.push(m);
                }
            }
            Ok(out)
        })
    }

    /// The metric `key` (predefined or the project's own).
    pub fn get(&self, project: &str, key: &str) -> Result<Metric> {
        self.core.read(|tx| {
            super::projects::get(tx, project)?;
            load(tx, project, key)
        })
    }

    pub fn update(
        &self,
        actor: &Actor,
        project: &str,
        key: &str,
        expected: Option<i64>,
        patch: MetricPatch,
    ) -> Result<Saved<Metric>> {
        self.change(actor, project, key, expected, "update", |m, _| {
            macro_rules! set {
                ($($field:ident),*) => { $( if let Some(v) = patch.$field { m.$field = v; } )* };
            }
            set!(name, description, filters, direction, conversion_window_hours, winsorize_percentile);
            macro_rules! set_some {
                ($($field:ident),*) => { $( if let Some(v) = patch.$field { m.$field = Some(v); } )* };
            }
            set_some!(event_type, property, numerator, denominator);
            Ok(())
        })
    }

    pub fn archive(
        &self,
        actor: &Actor,
        project: &str,
        key: &str,
        expected: Option<i64>,
    ) -> Result<Saved<Metric>> {
        self.change(actor, project, key, expected, "archive", |m, tx| {
            let users: Vec<String> = tx
                .list_documents(project, METRICS, Some(MetricKind::Ratio.as_str()))?
                .iter()
                .map(metric)
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .filter(|r| {
                    !r.archived
                        && (r.numerator.as_deref() == Some(key)
                            || r.denominator.as_deref() == Some(key))
                })
                .map(|r| r.key)
                .collect();
            let mut users = users;
            for row in tx.project_flags(project)? {
                let f = super::convert::flag(&row)?;
                let uses = f
                    .experiment
                    .as_ref()
                    .is_some_and(|e| e.metric_references().iter().any(|(_, m)| *m == key));
                if uses && !f.archived {
                    users.push(f.key);
                }
            }
            if !users.is_empty() {
                return Err(Error::blocked(
                    "metric_in_use",
                    format!(
                        "{key:?} cannot be archived while {} use{} it; take it out of {} first",
                        users.join(", "),
                        if users.len() == 1 { "s" } else { "" },
                        if users.len() == 1 {
                            "that metric or experiment"
                        } else {
                            "those"
                        },
                    ),
                    users,
                ));
            }
            m.archived = true;
            Ok(())
        })
    }

    pub fn unarchive(
        &self,
        actor: &Actor,
        project: &str,
        key: &str,
        expected: Option<i64>,
    ) -> Result<Saved<Metric>> {
        self.change(actor, project, key, expected, "unarchive", |m, _| {
            m.archived = false;
            Ok(())
        })
    }

    /// Versions newest first, `limit` of them before `before` (exclusive) when given.
    pub fn versions(
        &self,
        project: &str,
        key: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<MetricVersion>> {
        self.core.read(|tx| {
            stored(tx, project, key)?;
            tx.list_history(project, METRICS, key, before, limit.clamp(1, 500))?
                .iter()
                .map(|r| version_info(r, false))
                .collect()
        })
    }

    /// One version with the metric as it was.
    pub fn version(&self, project: &str, key: &str, version: i64) -> Result<MetricVersion> {
        self.core.read(|tx| {
            stored(tx, project, key)?;
            match tx.get_history(project, METRICS, key, version)? {
                Some(row) => version_info(&row, true),
                None => Err(version_not_found(key, version)),
            }
        })
    }

    /// What changed from version `from` to version `to`.
    pub fn compare(&self, project: &str, key: &str, from: i64, to: i64) -> Result<Vec<Change>> {
        let a = self.version(project, key, from)?.metric;
        let b = self.version(project, key, to)?.metric;
        match (a, b) {
            (Some(a), Some(b)) => Ok(diff(&doc_value(&a)?, &doc_value(&b)?)),
            _ => Err(version_not_found(key, from)),
        }
    }

    /// Writes the definition of version `version` as a new version (the archive flag stays).
    pub fn restore(
        &self,
        actor: &Actor,
        project: &str,
        key: &str,
        expected: Option<i64>,
        version: i64,
    ) -> Result<Saved<Metric>> {
        let Some(old) = self.version(project, key, version)?.metric else {
            return Err(version_not_found(key, version));
        };
        self.change(actor, project, key, expected, "restore", move |m, _| {
            let keep = (m.archived, m.version, m.created_at, m.created_by.clone());
            *m = old;
            (m.archived, m.version, m.created_at, m.created_by) = keep;
            Ok(())
        })
    }

    fn change(
        &self,
        actor: &Actor,
        project: &str,
        key: &str,
        expected: Option<i64>,
        action: &'static str,
        mutate: impl FnOnce(&mut Metric, &mut dyn Tx) -> Result<()>,
    ) -> Result<Saved<Metric>> {
        actor.require(Role::Writer)?;
        self.core.write(|tx| {
            super::projects::lock(tx, project)?;
            let before = stored(tx, project, key)?;
            check_version("metric", key, expected, before.version)?;
            if before.archived && action != "unarchive" {
                return Err(Error::Blocked {
                    code: "metric_archived",
                    message: format!("{key:?} is archived; unarchive it before changing it"),
                    field: None,
                    blocking: Vec::new(),
                });
            }
            let mut after = before.clone();
            mutate(&mut after, &mut *tx)?;
            if after.key != before.key || after.kind != before.kind {
                return Err(Error::invalid(
                    "type",
                    "immutable",
                    "a metric's key and type cannot change; create a new metric instead",
                ));
            }
            check(tx, Some(&before), &after)?;
            after.version = before.version + 1;
            after.updated_at = now_ms().max(before.updated_at);
            after.updated_by = actor.name.clone();
            let row = metric_row(&after)?;
            tx.update_document(&row, before.version)?;
            super::record_version(
                tx,
                actor,
                super::VersionRef {
                    project,
                    entity: METRICS,
                    key,
                    version: after.version,
                    at: after.updated_at,
                    changes: String::new(),
                },
                action,
                (&doc_value(&before)?, &doc_value(&after)?),
                row.doc,
            )?;
            Ok(Saved {
                value: after,
                warnings: Vec::new(),
            })
        })
    }
}

/// The newest events of a type a definition is checked against.
const SAMPLE: u32 = 200;

/// Field validation; a ratio's metrics exist (predefined or the project's own), are not
/// archived and are not ratios; and a metric can be computed from what was received: its event
/// type has been seen, and a sum's property holds numbers. The events are checked when the
/// definition names them anew (creation, or a changed event type or property), so an old
/// metric whose events have aged out can still be renamed.
fn check(tx: &mut dyn Tx, before: Option<&Metric>, m: &Metric) -> Result<()> {
    let mut errors = validate_metric(m);
    let renamed = before.is_none_or(|b| b.event_type != m.event_type || b.property != m.property);
    if errors.is_empty() && renamed {
        errors.extend(check_events(tx, m)?);
    }
    if m.kind == MetricKind::Ratio {
        for (field, key) in [("numerator", &m.numerator), ("denominator", &m.denominator)] {
            let Some(key) = key else { continue };
            let found = if is_url_safe_key(key) {
                load(tx, &m.project, key).ok()
            } else {
                None
            };
            match found {
                None => errors.push(FieldError::new(
                    field,
                    "unknown_metric",
                    format!("project {:?} has no metric {key:?}", m.project),
                )),
                Some(other) if other.archived => errors.push(FieldError::new(
                    field,
                    "metric_archived",
                    format!("{key:?} is archived"),
                )),
                Some(other) if other.kind == MetricKind::Ratio => errors.push(FieldError::new(
                    field,
                    "ratio_of_ratio",
                    format!("{key:?} is a ratio itself; a ratio divides two event metrics"),
                )),
                Some(_) => {}
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}

/// What the received events say of `m`'s event type and summed property.
fn check_events(tx: &mut dyn Tx, m: &Metric) -> Result<Vec<FieldError>> {
    let Some(event_type) = m.event_type.as_deref() else {
        return Ok(Vec::new());
    };
    if event_type == EXPOSURE_EVENT || event_type == ANY_EVENT {
        return Ok(Vec::new());
    }
    let events = tx.latest_events(&m.project, event_type, SAMPLE)?;
    if events.is_empty() {
        return Ok(vec![FieldError::new(
            "event_type",
            "unknown_event_type",
            format!(
                "project {:?} has received no {event_type:?} event (event types are case-sensitive); send one first",
                m.project
            ),
        )]);
    }
    let Some(property) = m.property.as_deref() else {
        return Ok(Vec::new());
    };
    let mut seen = 0;
    for event in &events {
        let value = event
            .event_properties
            .as_deref()
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .and_then(|p| p.get(property).cloned());
        match value {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Number(_)) => seen += 1,
            Some(serde_json::Value::String(s)) if s.trim().parse::<f64>().is_ok() => seen += 1,
            Some(other) => {
                return Ok(vec![FieldError::new(
                    "property",
                    "not_numeric",
                    format!("{event_type:?} events carry {property:?} = {other}, which is not a number; a sum adds numbers"),
                )])
            }
        }
    }
    Ok(if seen == 0 {
        vec![FieldError::new(
            "property",
            "unknown_property",
            format!("the latest {event_type:?} events carry no {property:?} property to sum"),
        )]
    } else {
        Vec::new()
    })
}

fn metric_row(m: &Metric) -> Result<DocumentRow> {
    Ok(DocumentRow {
        project: m.project.clone(),
        collection: METRICS.to_string(),
        key: m.key.clone(),
        kind: m.kind.as_str().to_string(),
        archived: m.archived,
        doc: doc(m)?,
        version: m.version,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

fn metric(row: &DocumentRow) -> Result<Metric> {
    from_doc("metric", &row.key, &row.doc)
}

fn not_found(key: &str) -> Error {
    Error::NotFound {
        entity: "metric",
        key: key.to_string(),
    }
}

/// A metric of the project's own (predefined ones have no versions and cannot change).
fn stored(tx: &mut dyn Tx, project: &str, key: &str) -> Result<Metric> {
    if Metric::builtin(project, key).is_some() {
        return Err(Error::blocked(
            "builtin_metric",
            format!("{key:?} is a predefined metric and cannot be changed"),
            Vec::new(),
        ));
    }
    if !is_url_safe_key(project) || !is_url_safe_key(key) {
        return Err(not_found(key));
    }
    match tx.get_document(project, METRICS, key)? {
        Some(row) => metric(&row),
        None => Err(not_found(key)),
    }
}

/// The metric `key` of `project` (predefined or stored), if there is one.
pub(crate) fn find(tx: &mut dyn Tx, project: &str, key: &str) -> Result<Option<Metric>> {
    match load(tx, project, key) {
        Ok(m) => Ok(Some(m)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A predefined metric or one of the project's own.
fn load(tx: &mut dyn Tx, project: &str, key: &str) -> Result<Metric> {
    match Metric::builtin(project, key) {
        Some(m) => Ok(m),
        None => stored(tx, project, key),
    }
}

fn version_info(row: &vexil_store::HistoryRow, with_doc: bool) -> Result<MetricVersion> {
    Ok(MetricVersion {
        meta: super::VersionMeta::of(row),
        metric: super::version_document(row, "metric version", with_doc)?,
    })
}

fn version_not_found(key: &str, version: i64) -> Error {
    super::version_not_found("metric version", key, version)
}
