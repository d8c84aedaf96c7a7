//! An experiment's results: its exposures and its metrics' events read from the store a page
//! at a time, attributed and summed per variant and day ([`crate::analysis`]), and tested
//! ([`crate::analysis::report`]). The analysis is kept between requests ([`Analyses`]), so a
//! request reads only what was stored since the last one.

use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vexil_store::{EventColumns, EventFact, ExposureFact, Tx};

use super::flags::{load, resolve, FlagService};
use super::now_ms;
use crate::analysis::report::{report, MetricInput, MetricRole, Report};
use crate::analysis::{Analysis, AnalysisSource, MetricTotals, Part, Subject, DAY_MS};
use crate::compile::{HOLDOUT, HOLDOUT_PASS};
use crate::error::{Error, Result};
use crate::model::{ExperimentSettings, Flag, FlagType, GroupKind, Metric, MetricKind, OFF};

/// Rows read per page.
const PAGE: u32 = 10_000;
/// The records that expose a unit to an experiment.
const EXPOSURE_KINDS: &[&str] = &["client_exposure", "server_exposure", "remote_exposure"];
/// The records that say which side of a holdout a unit is on (holdouts are evaluated, never
/// exposed).
const ASSIGNMENT_KINDS: &[&str] = &["assignment", "remote_assignment"];

/// Analyses kept between requests (most recently used first), so that a refresh reads only
/// what arrived since the last one. Each is locked while it refreshes: two requests for the
/// same results wait for one read.
#[derive(Default)]
pub(crate) struct Analyses {
    kept: Mutex<Vec<Entry>>,
}

/// A kept analysis with what it analyses, readable without its lock.
type Entry = (Subject, Vec<Part>, Arc<Mutex<Kept>>);

/// One analysis and the last results drawn from it, with what they were drawn for.
struct Kept {
    analysis: Analysis,
    last: Option<(String, ExperimentResults)>,
}

/// Analyses kept at most; the least recently used goes first. Each holds a unit's variant
/// and first exposure, and each metric's per-day values of the units with events.
const ANALYSES_KEPT: usize = 16;

impl Analyses {
    /// The analysis of `subject` with these `parts`, kept or new. Looked up without taking
    /// any analysis's lock, so one long first read does not hold up the others.
    fn entry(&self, subject: &Subject, parts: &[Part]) -> Arc<Mutex<Kept>> {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let found = kept
            .iter()
            .position(|(s, p, _)| s == subject && p.as_slice() == parts);
        let entry = match found {
            Some(i) => kept.remove(i),
            None => {
                // A changed definition replaces what was kept for the same flag or holdout.
                kept.retain(|(s, _, _)| s.project != subject.project || s.key != subject.key);
                let analysis = Analysis::new(subject.clone(), parts.to_vec());
                let entry = Arc::new(Mutex::new(Kept {
                    analysis,
                    last: None,
                }));
                (subject.clone(), parts.to_vec(), entry)
            }
        };
        let analysis = entry.2.clone();
        kept.insert(0, entry);
        kept.truncate(ANALYSES_KEPT);
        analysis
    }
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
            results(tx, &self.core.analyses, &flag)
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
                project: group.project.clone(),
                key: group.key.clone(),
                unit: group.bucketing_unit.clone(),
                kinds: kinds(ASSIGNMENT_KINDS),
                variants: vec![HOLDOUT.to_string(), HOLDOUT_PASS.to_string()],
                start: group.created_at,
                end: None,
            };
            let weights = [held, 100.0 - held];
            let mut results = analyse(tx, &self.core.analyses, &subject, &weights, settings)?;
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

fn kinds(kinds: &[&str]) -> Vec<String> {
    kinds.iter().map(|k| (*k).to_owned()).collect()
}

fn results(tx: &mut dyn Tx, analyses: &Analyses, flag: &Flag) -> Result<ExperimentResults> {
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
    let subject = Subject {
        project: flag.project.clone(),
        key: flag.key.clone(),
        unit: flag.bucketing_unit.clone(),
        kinds: kinds(EXPOSURE_KINDS),
        variants,
        start,
        end: settings.end,
    };
    analyse(tx, analyses, &subject, &weights, settings)
}

/// A metric to analyse: its definition, its role, and its parts' indices in the analysis
/// (two for a ratio: numerator and denominator).
struct Measured {
    metric: Metric,
    role: MetricRole,
    parts: (usize, Option<usize>),
}

/// What attribution reads of `metric` (its state is shared with any alike).
fn part(metric: &Metric, pre_period: bool) -> Part {
    Part {
        kind: metric.kind,
        event_type: metric.event_type.clone().unwrap_or_default(),
        property: metric.property.clone(),
        filters: metric.filters.clone(),
        conversion_window_hours: metric.conversion_window_hours,
        pre_period,
    }
}

/// The index of `p` in `parts`, added when new.
fn part_index(parts: &mut Vec<Part>, p: Part) -> usize {
    parts.iter().position(|x| *x == p).unwrap_or_else(|| {
        parts.push(p);
        parts.len() - 1
    })
}

/// Places the units, attributes each metric's events, tests them. The per-unit state is kept
/// between requests ([`Analyses`]), so this reads only what arrived since the last time.
fn analyse(
    tx: &mut dyn Tx,
    analyses: &Analyses,
    subject: &Subject,
    weights: &[f64],
    settings: ExperimentSettings,
) -> Result<ExperimentResults> {
    let start = subject.start;
    let variants = &subject.variants;
    let total_weight: f64 = weights.iter().sum();
    // The metrics' definitions first (a ratio with its two parts), then the rows.
    let mut metrics: Vec<Measured> = Vec::new();
    let mut parts: Vec<Part> = Vec::new();
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
        let Some(metric) = super::metrics::find(tx, &subject.project, key)? else {
            continue;
        };
        let indices = if metric.kind == MetricKind::Ratio {
            let part_of = |tx: &mut dyn Tx, key: &Option<String>| match key {
                Some(k) => super::metrics::find(tx, &subject.project, k),
                None => Ok(None),
            };
            match (
                part_of(tx, &metric.numerator)?,
                part_of(tx, &metric.denominator)?,
            ) {
                (Some(n), Some(d)) => (
                    part_index(&mut parts, part(&n, false)),
                    Some(part_index(&mut parts, part(&d, false))),
                ),
                _ => continue,
            }
        } else {
            (part_index(&mut parts, part(&metric, settings.cuped)), None)
        };
        metrics.push(Measured {
            metric,
            role,
            parts: indices,
        });
    }
    let entry = analyses.entry(subject, &parts);
    let mut kept = entry.lock().unwrap_or_else(PoisonError::into_inner);
    let now = now_ms();
    let changed = kept.analysis.refresh(&mut StoreSource { tx }, now)?;
    // The tests' inputs besides the rows: when neither changed, the last results stand.
    let drawn_for = serde_json::to_string(&(
        &settings,
        weights,
        metrics
            .iter()
            .map(|m| (&m.metric, m.role))
            .collect::<Vec<_>>(),
    ))
    .unwrap_or_default();
    if let Some((for_, last)) = &kept.last {
        if !changed && *for_ == drawn_for {
            return Ok(ExperimentResults {
                computed_at: now,
                ..last.clone()
            });
        }
    }
    let state = &kept.analysis;
    let a = state.assignments();
    let mut inputs = Vec::new();
    for m in metrics {
        let totals = |i: usize| state.totals(i).ok_or_else(|| missing_part(&m.metric));
        let daily = match m.parts {
            (n, Some(d)) => MetricTotals::ratio_daily(a, totals(n)?, totals(d)?),
            (i, None) => {
                let totals = totals(i)?;
                let caps = m
                    .metric
                    .winsorize_percentile
                    .map(|p| totals.percentile_caps(a, p));
                if settings.cuped {
                    totals.daily_cuped(a, caps.as_deref())
                } else {
                    totals.daily(a, caps.as_deref())
                }
            }
        };
        inputs.push(MetricInput {
            key: m.metric.key.clone(),
            name: m.metric.name.clone(),
            role: m.role,
            kind: m.metric.kind,
            direction: m.metric.direction,
            daily,
        });
    }
    let midnight = start.div_euclid(DAY_MS) * DAY_MS;
    let days: Vec<i64> = (0..a.window().days())
        .map(|d| midnight + d as i64 * DAY_MS)
        .collect();
    let by_day = a.units_by_day();
    let last = by_day.last().cloned().unwrap_or_default();
    let report = report(variants, &days, &by_day, weights, &settings, inputs);
    let results = ExperimentResults {
        flag: subject.key.clone(),
        computed_at: now,
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
        multiple_variants: a.multiple_variants(),
        settings,
        report,
    };
    kept.last = Some((drawn_for, results.clone()));
    Ok(results)
}

fn missing_part(metric: &Metric) -> Error {
    Error::Internal(
        format!(
            "the analysis of metric {:?} lost one of its parts",
            metric.key
        )
        .into(),
    )
}

fn share(weight: f64, total: f64) -> f64 {
    if total > 0.0 {
        weight / total
    } else {
        0.0
    }
}

/// The store as an analysis source: its id-ordered scans, a page at a time.
struct StoreSource<'t> {
    tx: &'t mut dyn Tx,
}

impl AnalysisSource for StoreSource<'_> {
    fn last_ids(&mut self) -> Result<(i64, i64)> {
        Ok(self.tx.last_ids()?)
    }

    fn records(
        &mut self,
        project: &str,
        key: &str,
        kinds: &[&str],
        (mut after, from): (i64, i64),
        f: &mut dyn FnMut(&ExposureFact),
    ) -> Result<()> {
        loop {
            let page = self
                .tx
                .exposures_since(project, key, kinds, (after, from), PAGE)?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = last.id;
            page.iter().for_each(&mut *f);
        }
    }

    fn events(
        &mut self,
        project: &str,
        event_types: &[&str],
        (mut after, from): (i64, i64),
        columns: EventColumns,
        f: &mut dyn FnMut(Vec<EventFact>),
    ) -> Result<()> {
        loop {
            let page = self
                .tx
                .events_since(project, event_types, (after, from), columns, PAGE)?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = last.id;
            f(page);
        }
    }
}
