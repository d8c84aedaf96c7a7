//! An experiment's results: its exposures and its metrics' events read from the store a page
//! at a time, attributed and summed per variant and day ([`crate::analysis`]), and tested
//! ([`crate::analysis::report`]). Computed on request from the stored exposures and events.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use utoipa::ToSchema;
use vexil_store::{EventFact, ExposureFact, ScanFrom, Tx};

use super::flags::{load, resolve, FlagService};
use super::now_ms;
use crate::analysis::report::{report, MetricInput, MetricRole, Report};
use crate::analysis::{
    matches, AnalysisSource, Assignments, MetricTotals, UnitValue, Window, DAY_MS, PRE_PERIOD_MS,
};
use crate::compile::{HOLDOUT, HOLDOUT_PASS};
use crate::error::{Error, Result};
use crate::model::{
    ExperimentSettings, Flag, FlagType, GroupKind, Metric, MetricKind, PropertyScope, ANY_EVENT,
    EXPOSURE_EVENT, OFF,
};

/// Rows read per page.
const PAGE: u32 = 10_000;
/// The records that expose a unit to an experiment.
const EXPOSURE_KINDS: &[&str] = &["client_exposure", "server_exposure", "remote_exposure"];
/// The records that say which side of a holdout a unit is on (holdouts are evaluated, never
/// exposed).
const ASSIGNMENT_KINDS: &[&str] = &["assignment", "remote_assignment"];

/// What is analysed: an experiment flag, or a holdout group with its program's metrics.
struct Subject<'a> {
    project: &'a str,
    key: &'a str,
    /// The bucketing unit.
    unit: &'a str,
    /// The records that place a unit in a variant.
    kinds: &'static [&'static str],
    /// The control first.
    variants: Vec<String>,
    weights: Vec<f64>,
}

/// Exposed units of one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VariantUnits {
    pub variant: String,
    pub units: u64,
    /// The share the configured split gives it (All Other Users' weights).
    pub expected_share: f64,
}

/// Exposed units by the end of one day, per variant (in `variants` order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DayUnits {
    /// The day's UTC midnight (Unix milliseconds).
    pub day: i64,
    pub units: Vec<u64>,
}

/// An experiment's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExperimentResults {
    pub flag: String,
    /// When these results were computed (Unix milliseconds): on request, from the stored
    /// exposures and events.
    #[serde(default)]
    pub computed_at: i64,
    /// The analysis window, `[start, end)` in Unix milliseconds (end: now while it runs).
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub settings: ExperimentSettings,
    /// The control first.
    pub variants: Vec<VariantUnits>,
    /// Cumulative exposed units per day.
    pub exposures: Vec<DayUnits>,
    /// Units exposed to more than one variant, left out of every metric.
    pub multiple_variants: u64,
    #[serde(flatten)]
    pub report: Report,
}

impl FlagService {
    /// The results of experiment `key` over its analysis window.
    pub fn results(&self, project: Option<&str>, key: &str) -> Result<ExperimentResults> {
        self.core.read(|tx| {
            let project = resolve(tx, project, key)?;
            let flag = load(tx, &project, key)?;
            results(tx, &flag)
        })
    }
}

impl super::GroupService {
    /// The results of holdout `key`: users it held out against everyone else, on the
    /// program's metrics, since the holdout was created (from the assignments SDKs and remote
    /// evaluation record for it).
    pub fn holdout_results(&self, project: &str, key: &str) -> Result<ExperimentResults> {
        self.core.read(|tx| {
            let group = super::groups::load(tx, project, GroupKind::Holdout, key)?;
            let held = f64::from(group.percentage.unwrap_or(0));
            let settings = ExperimentSettings {
                primary_metric: group.metrics.first().cloned(),
                secondary_metrics: group.metrics.iter().skip(1).cloned().collect(),
                control: Some(HOLDOUT.to_string()),
                ..ExperimentSettings::default()
            };
            let subject = Subject {
                project: &group.project,
                key: &group.key,
                unit: &group.bucketing_unit,
                kinds: ASSIGNMENT_KINDS,
                variants: vec![HOLDOUT.to_string(), HOLDOUT_PASS.to_string()],
                weights: vec![held, 100.0 - held],
            };
            let end = now_ms().max(group.created_at + 1);
            let mut results = analyse(
                tx,
                &subject,
                settings,
                Window {
                    start: group.created_at,
                    end,
                },
            )?;
            results.report.summary = holdout_summary(&results.report);
            Ok(results)
        })
    }
}

/// The decision of a holdout in words: what the program's experiments did to users who saw
/// them, against those held out.
fn holdout_summary(report: &Report) -> String {
    use crate::analysis::report::Verdict;
    if report.srm.is_some_and(|s| s.mismatch) {
        return report.summary.clone();
    }
    let Some(primary) = report
        .metrics
        .iter()
        .find(|m| m.role == MetricRole::Primary)
    else {
        return "No program metrics: give the holdout metrics to compare held-out users with everyone else.".to_string();
    };
    let Some(c) = primary.comparisons.first() else {
        return report.summary.clone();
    };
    let Some(e) = c.relative else {
        return format!(
            "Not enough data yet: both held-out users and everyone else need at least 100 assigned units before {} is compared.",
            primary.name
        );
    };
    let moved = format!(
        "{} {} by {:.1}%",
        if e.estimate >= 0.0 { "raise" } else { "lower" },
        primary.name,
        e.estimate.abs() * 100.0
    );
    match c.verdict {
        Verdict::Better | Verdict::Worse => format!(
            "The program's experiments together {moved} against the users held out; significant."
        ),
        _ => format!(
            "No significant difference yet between users in the program and those held out (they {moved})."
        ),
    }
}

fn results(tx: &mut dyn Tx, flag: &Flag) -> Result<ExperimentResults> {
    let settings = match (&flag.kind, &flag.experiment) {
        (FlagType::Experiment, Some(s)) => s.clone(),
        _ => {
            return Err(Error::invalid(
                "key",
                "not_an_experiment",
                format!(
                    "{:?} is not an experiment: only experiments have results",
                    flag.key
                ),
            ))
        }
    };
    let control = settings
        .control
        .clone()
        .or_else(|| flag.variants.first().map(|v| v.key.clone()))
        .unwrap_or_default();
    let mut variants: Vec<String> = vec![control.clone()];
    variants.extend(
        flag.variants
            .iter()
            .map(|v| v.key.clone())
            .filter(|k| *k != control && k != OFF),
    );
    let weights: Vec<f64> = variants
        .iter()
        .map(|v| f64::from(flag.all_other_users.weights.get(v).copied().unwrap_or(0)))
        .collect();
    let total_weight: f64 = weights.iter().sum();
    let Some(start) = settings.start else {
        // Not started: nothing to analyse yet.
        let empty = report(&variants, &[], &[], &[], &settings, Vec::new());
        return Ok(ExperimentResults {
            flag: flag.key.clone(),
            computed_at: now_ms(),
            start: None,
            end: None,
            variants: variants
                .iter()
                .zip(&weights)
                .map(|(v, w)| VariantUnits {
                    variant: v.clone(),
                    units: 0,
                    expected_share: share(*w, total_weight),
                })
                .collect(),
            exposures: Vec::new(),
            multiple_variants: 0,
            settings,
            report: Report {
                summary: "The experiment has not started: activate it to open its analysis window."
                    .to_string(),
                ..empty
            },
        });
    };
    let end = settings.end.unwrap_or_else(|| now_ms().max(start + 1));
    let subject = Subject {
        project: &flag.project,
        key: &flag.key,
        unit: &flag.bucketing_unit,
        kinds: EXPOSURE_KINDS,
        variants,
        weights,
    };
    analyse(tx, &subject, settings, Window { start, end })
}

/// A metric to analyse, its role, and for a ratio its two parts.
type Measured = (Metric, MetricRole, Option<(Metric, Metric)>);

/// Places the units, attributes each metric's events, tests them.
fn analyse(
    tx: &mut dyn Tx,
    subject: &Subject<'_>,
    settings: ExperimentSettings,
    window: Window,
) -> Result<ExperimentResults> {
    let start = window.start;
    let (variants, weights) = (&subject.variants, &subject.weights);
    let total_weight: f64 = weights.iter().sum();
    // The metrics' definitions first (a ratio with its two parts), then the rows.
    let mut metrics: Vec<Measured> = Vec::new();
    let roles = settings
        .primary_metric
        .iter()
        .map(|k| (k, MetricRole::Primary))
        .chain(
            settings
                .secondary_metrics
                .iter()
                .map(|k| (k, MetricRole::Secondary)),
        )
        .chain(
            settings
                .guardrails
                .iter()
                .map(|k| (k, MetricRole::Guardrail)),
        );
    for (key, role) in roles {
        let Some(metric) = super::metrics::find(tx, subject.project, key)? else {
            continue;
        };
        let parts = if metric.kind == MetricKind::Ratio {
            let part = |tx: &mut dyn Tx, key: &Option<String>| match key {
                Some(k) => super::metrics::find(tx, subject.project, k),
                None => Ok(None),
            };
            match (part(tx, &metric.numerator)?, part(tx, &metric.denominator)?) {
                (Some(n), Some(d)) => Some((n, d)),
                _ => continue,
            }
        } else {
            None
        };
        metrics.push((metric, role, parts));
    }
    let source: &mut dyn AnalysisSource = &mut StoreSource { tx };
    let mut assignments = Assignments::new(variants.clone(), window);
    each_record(source, subject, window, &mut |unit, variant, time| {
        assignments.expose(unit, variant, time);
    })?;
    let mut inputs = Vec::new();
    for (metric, role, parts) in metrics {
        let daily = if let Some((num, den)) = parts {
            // Both parts per unit, over the same assignments.
            let n = totals(source, subject, &num, &assignments, window, false)?;
            let d = totals(source, subject, &den, &assignments, window, false)?;
            MetricTotals::ratio_daily(&n, &d)
        } else {
            let totals = totals(
                source,
                subject,
                &metric,
                &assignments,
                window,
                settings.cuped,
            )?;
            let caps = metric
                .winsorize_percentile
                .map(|p| totals.percentile_caps(p));
            if settings.cuped {
                totals.daily_cuped(caps.as_deref())
            } else {
                totals.daily(caps.as_deref())
            }
        };
        inputs.push(MetricInput {
            key: metric.key.clone(),
            name: metric.name.clone(),
            role,
            kind: metric.kind,
            direction: metric.direction,
            daily,
        });
    }
    let midnight = start.div_euclid(DAY_MS) * DAY_MS;
    let days: Vec<i64> = (0..window.days())
        .map(|d| midnight + d as i64 * DAY_MS)
        .collect();
    let by_day = assignments.units_by_day();
    let last = by_day.last().cloned().unwrap_or_default();
    let report = report(variants, &days, &by_day, weights, &settings, inputs);
    Ok(ExperimentResults {
        flag: subject.key.to_string(),
        computed_at: now_ms(),
        start: Some(start),
        end: settings.end,
        variants: variants
            .iter()
            .zip(weights)
            .zip(&last)
            .map(|((v, w), n)| VariantUnits {
                variant: v.clone(),
                units: *n,
                expected_share: share(*w, total_weight),
            })
            .collect(),
        exposures: days
            .iter()
            .zip(by_day)
            .map(|(day, units)| DayUnits { day: *day, units })
            .collect(),
        multiple_variants: assignments.multiple_variants(),
        settings,
        report,
    })
}

fn share(weight: f64, total: f64) -> f64 {
    if total > 0.0 {
        weight / total
    } else {
        0.0
    }
}

/// Hands each record that places a unit (the subject's exposures or assignments in the window)
/// to `f` as (unit, variant, time), a page at a time.
fn each_record(
    source: &mut dyn AnalysisSource,
    subject: &Subject<'_>,
    window: Window,
    f: &mut dyn FnMut(&str, &str, i64),
) -> Result<()> {
    source.records(
        subject.project,
        subject.key,
        subject.kinds,
        (window.start, window.end),
        &mut |e| {
            let unit = unit_id(
                subject.unit,
                e.user_id.as_deref(),
                e.device_id.as_deref(),
                e.groups.as_deref(),
            );
            if let Some(unit) = unit {
                f(&unit, &e.variant, e.time);
            }
        },
    )
}

/// The store as an analysis source: its keyset-paged scans, a page at a time, in time order.
struct StoreSource<'t> {
    tx: &'t mut dyn Tx,
}

impl AnalysisSource for StoreSource<'_> {
    fn records(
        &mut self,
        project: &str,
        key: &str,
        kinds: &[&str],
        window: (i64, i64),
        f: &mut dyn FnMut(&ExposureFact),
    ) -> Result<()> {
        let mut after = ScanFrom::default();
        loop {
            let page = self
                .tx
                .scan_exposures(project, key, kinds, window, after, PAGE)?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = ScanFrom {
                time: last.time,
                id: last.id,
            };
            page.iter().for_each(&mut *f);
        }
    }

    fn events(
        &mut self,
        project: &str,
        event_type: Option<&str>,
        window: (i64, i64),
        f: &mut dyn FnMut(&EventFact),
    ) -> Result<()> {
        let mut after = ScanFrom::default();
        loop {
            let page = self
                .tx
                .scan_events(project, event_type, window, after, PAGE)?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = ScanFrom {
                time: last.time,
                id: last.id,
            };
            page.iter().for_each(&mut *f);
        }
    }
}

/// A metric's qualifying events, attributed; with `pre_period`, also those of the 14 days
/// before each unit's first exposure, CUPED's covariate.
fn totals<'a>(
    source: &mut dyn AnalysisSource,
    subject: &Subject<'_>,
    metric: &Metric,
    assignments: &'a Assignments,
    window: Window,
    pre_period: bool,
) -> Result<MetricTotals<'a>> {
    let mut totals = MetricTotals::new(assignments, metric.kind, metric.conversion_window_hours);
    let unit = subject.unit;
    let event_type = metric.event_type.as_deref().unwrap_or_default();
    if event_type == EXPOSURE_EVENT {
        each_record(source, subject, window, &mut |unit, _, time| {
            totals.event(unit, time, UnitValue::Event);
        })?;
        return Ok(totals);
    }
    let typed = (event_type != ANY_EVENT).then_some(event_type);
    let from = if pre_period {
        window.start.saturating_sub(PRE_PERIOD_MS)
    } else {
        window.start
    };
    let reads = |scope: PropertyScope| metric.filters.iter().any(|f| f.scope == scope);
    let reads_event = reads(PropertyScope::Event) || metric.kind == MetricKind::Sum;
    let reads_user = reads(PropertyScope::User);
    source.events(subject.project, typed, (from, window.end), &mut |e| {
        let Some(id) = unit_id(
            unit,
            e.user_id.as_deref(),
            e.device_id.as_deref(),
            e.groups.as_deref(),
        ) else {
            return;
        };
        // Properties are parsed only when the metric reads them.
        let parse = |wanted: bool, text: &Option<String>| {
            if !wanted {
                return None;
            }
            text.as_deref()
                .and_then(|t| serde_json::from_str::<Json>(t).ok())
        };
        let event_props = parse(reads_event, &e.event_properties);
        let user_props = parse(reads_user, &e.user_properties);
        if !matches(&metric.filters, event_props.as_ref(), user_props.as_ref()) {
            return;
        }
        let value = match (metric.kind, metric.property.as_deref()) {
            (MetricKind::Sum, Some(p)) => {
                match event_props.as_ref().and_then(|props| props.get(p)) {
                    Some(Json::Number(n)) => n.as_f64().map(UnitValue::Amount),
                    Some(Json::String(s)) => s.trim().parse().ok().map(UnitValue::Amount),
                    _ => None,
                }
            }
            _ => Some(UnitValue::Event),
        };
        if let Some(value) = value {
            if !totals.event(&id, e.time, value) && pre_period {
                totals.pre_event(&id, e.time, value);
            }
        }
    })?;
    Ok(totals)
}

/// The unit an exposure or event belongs to: its `user_id` or `device_id`, or for a group
/// unit the name of its group of that type (`groups` JSON: a name or a list of names).
fn unit_id(
    unit: &str,
    user_id: Option<&str>,
    device_id: Option<&str>,
    groups: Option<&str>,
) -> Option<String> {
    match unit {
        "user_id" => user_id.map(str::to_owned),
        "device_id" => device_id.map(str::to_owned),
        group => {
            let groups: Json = serde_json::from_str(groups?).ok()?;
            match groups.get(group)? {
                Json::String(name) if !name.is_empty() => Some(name.clone()),
                Json::Array(names) => names.first()?.as_str().map(str::to_owned),
                _ => None,
            }
        }
    }
}
