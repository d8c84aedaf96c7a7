//! Exposure attribution and the per-variant, per-day sums of a metric (`analysis.md` §1–3).

use std::collections::HashMap;

use vexil_stats::{CupedSums, MeanSums, ProportionSums, RatioSums};

use crate::model::MetricKind;

/// A UTC day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;
/// CUPED's pre-exposure period (`analysis.md` §3): 14 days before each unit's first exposure.
pub const PRE_PERIOD_MS: i64 = 14 * DAY_MS;

/// The analysis window, half-open `[start, end)` in Unix milliseconds. Days are UTC days from
/// the one holding `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    fn contains(&self, time: i64) -> bool {
        self.start <= time && time < self.end
    }

    /// The first UTC midnight at or before `start`.
    fn first_midnight(&self) -> i64 {
        self.start.div_euclid(DAY_MS) * DAY_MS
    }

    /// The number of UTC days the window touches (at least one).
    pub fn days(&self) -> usize {
        let last = (self.end - 1).max(self.start);
        usize::try_from((last.div_euclid(DAY_MS) - self.start.div_euclid(DAY_MS)) + 1).unwrap_or(1)
    }

    /// The day (from 0) of a time inside the window.
    fn day(&self, time: i64) -> usize {
        usize::try_from((time - self.first_midnight()).div_euclid(DAY_MS)).unwrap_or(0)
    }
}

/// Where a unit stands: exposed first at `first` to variant `variant`, or exposed to several.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Assigned {
    One { variant: usize, first: i64 },
    Several,
}

/// The first exposure of every unit an experiment exposed inside its window.
#[derive(Debug, Clone)]
pub struct Assignments {
    variants: Vec<String>,
    window: Window,
    units: HashMap<String, Assigned>,
}

impl Assignments {
    /// `variants` in the order results list them (the control first); exposures to other
    /// variants (`off`, a variant since deleted) are not part of the experiment.
    pub fn new(variants: Vec<String>, window: Window) -> Assignments {
        Assignments {
            variants,
            window,
            units: HashMap::new(),
        }
    }

    pub fn variants(&self) -> &[String] {
        &self.variants
    }

    pub fn window(&self) -> Window {
        self.window
    }

    /// Records one exposure of `unit` to `variant` at `time`, in any order.
    pub fn expose(&mut self, unit: &str, variant: &str, time: i64) {
        if unit.is_empty() || !self.window.contains(time) {
            return;
        }
        let Some(index) = self.variants.iter().position(|v| v == variant) else {
            return;
        };
        match self.units.get_mut(unit) {
            None => {
                self.units.insert(
                    unit.to_owned(),
                    Assigned::One {
                        variant: index,
                        first: time,
                    },
                );
            }
            Some(Assigned::One { variant, first }) if *variant == index => {
                *first = (*first).min(time);
            }
            Some(slot @ Assigned::One { .. }) => *slot = Assigned::Several,
            Some(Assigned::Several) => {}
        }
    }

    /// The variant (index) and first exposure of a unit in one variant only.
    fn assigned(&self, unit: &str) -> Option<(usize, i64)> {
        match self.units.get(unit)? {
            Assigned::One { variant, first } => Some((*variant, *first)),
            Assigned::Several => None,
        }
    }

    /// Units exposed to more than one variant: left out of every metric.
    pub fn multiple_variants(&self) -> u64 {
        self.units
            .values()
            .filter(|a| matches!(a, Assigned::Several))
            .count() as u64
    }

    /// Units first exposed on each day, by variant: `[day][variant]`.
    pub fn new_units_by_day(&self) -> Vec<Vec<u64>> {
        let mut out = vec![vec![0u64; self.variants.len()]; self.window.days()];
        for a in self.units.values() {
            if let Assigned::One { variant, first } = a {
                out[self.window.day(*first)][*variant] += 1;
            }
        }
        out
    }

    /// Units exposed by the end of each day, by variant (cumulative): `[day][variant]`.
    pub fn units_by_day(&self) -> Vec<Vec<u64>> {
        let mut out = self.new_units_by_day();
        for day in 1..out.len() {
            let (before, rest) = out.split_at_mut(day);
            for (count, previous) in rest[0].iter_mut().zip(&before[day - 1]) {
                *count += previous;
            }
        }
        out
    }
}

/// A unit's value for a metric, as the metric kind takes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnitValue {
    /// One qualifying event (conversion, count).
    Event,
    /// A summed property's value.
    Amount(f64),
}

/// The cumulative sufficient statistics of one variant at the end of one day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DailySums {
    Proportion(ProportionSums),
    Mean(MeanSums),
    Ratio(RatioSums),
    /// A mean or conversion metric with its pre-exposure covariate; `binary` for conversions.
    Cuped {
        sums: CupedSums,
        binary: bool,
    },
}

/// A metric's events attributed to the exposed units, as per-unit increments by day.
#[derive(Debug, Clone)]
pub struct MetricTotals<'a> {
    assignments: &'a Assignments,
    kind: MetricKind,
    window_ms: Option<i64>,
    /// Per unit: (day, increment), in the order events came.
    increments: HashMap<&'a str, Vec<(usize, f64)>>,
    /// Per unit: the metric over the pre-exposure period (CUPED's covariate).
    pre: HashMap<&'a str, f64>,
}

impl<'a> MetricTotals<'a> {
    /// `conversion_window_hours` as the metric defines it (none: until the window's end).
    /// Ratio metrics are two metrics' totals combined; pass `Count` or `Sum` for each part.
    pub fn new(
        assignments: &'a Assignments,
        kind: MetricKind,
        conversion_window_hours: Option<u32>,
    ) -> MetricTotals<'a> {
        MetricTotals {
            assignments,
            kind,
            window_ms: conversion_window_hours.map(|h| i64::from(h) * 3_600_000),
            increments: HashMap::new(),
            pre: HashMap::new(),
        }
    }

    /// Counts one qualifying event of `unit` in its pre-exposure period (the 14 days before
    /// its first exposure), CUPED's covariate. Returns whether it counted.
    pub fn pre_event(&mut self, unit: &str, time: i64, value: UnitValue) -> bool {
        let Some((_, first)) = self.assignments.assigned(unit) else {
            return false;
        };
        if time >= first || time < first - PRE_PERIOD_MS {
            return false;
        }
        let amount = match value {
            UnitValue::Event => 1.0,
            UnitValue::Amount(x) if x.is_finite() => x,
            UnitValue::Amount(_) => return false,
        };
        let Some((key, _)) = self.assignments.units.get_key_value(unit) else {
            return false;
        };
        *self.pre.entry(key.as_str()).or_default() += amount;
        true
    }

    /// Like [`MetricTotals::daily`], with each unit's pre-period value as CUPED's covariate:
    /// `[day][variant]` of [`DailySums::Cuped`].
    pub fn daily_cuped(&self, cap: Option<&[f64]>) -> Vec<Vec<DailySums>> {
        let binary = self.kind == MetricKind::Conversion;
        let days = self.assignments.window.days();
        let variants = self.assignments.variants.len();
        let units = self.assignments.units_by_day();
        let mut sums = vec![vec![CupedSums::default(); variants]; days];
        let values = self.unit_days();
        let limit = |v: usize, x: f64| cap.and_then(|c| c.get(v)).map_or(x, |l| x.min(*l));
        let covariate = |x: f64| if binary { x.min(1.0) } else { x };
        // Units with events after exposure (and maybe before).
        for (unit, (variant, ys)) in &values {
            let x = covariate(self.pre.get(unit).copied().unwrap_or(0.0));
            let first_day = self
                .assignments
                .assigned(unit)
                .map_or(0, |(_, first)| self.assignments.window.day(first));
            for day in first_day..days {
                let y = limit(*variant, ys[day]);
                let s = &mut sums[day][*variant];
                s.sum += y;
                s.sum_squares += y * y;
                s.pre_sum += x;
                s.pre_sum_squares += x * x;
                s.cross += x * y;
            }
        }
        // Units with only a pre-period value.
        for (unit, x) in &self.pre {
            if values.contains_key(unit) {
                continue;
            }
            let Some((variant, first)) = self.assignments.assigned(unit) else {
                continue;
            };
            let x = covariate(*x);
            for row in sums.iter_mut().skip(self.assignments.window.day(first)) {
                row[variant].pre_sum += x;
                row[variant].pre_sum_squares += x * x;
            }
        }
        sums.into_iter()
            .enumerate()
            .map(|(day, row)| {
                row.into_iter()
                    .enumerate()
                    .map(|(v, mut s)| {
                        s.n = units[day][v];
                        DailySums::Cuped { sums: s, binary }
                    })
                    .collect()
            })
            .collect()
    }

    /// Counts one qualifying event of `unit` at `time`, if the unit is in exactly one variant
    /// and the event is at or after its first exposure, inside the conversion window and the
    /// analysis window. Returns whether it counted.
    pub fn event(&mut self, unit: &str, time: i64, value: UnitValue) -> bool {
        let Some((_, first)) = self.assignments.assigned(unit) else {
            return false;
        };
        let window = self.assignments.window;
        if time < first || !window.contains(time) {
            return false;
        }
        if self
            .window_ms
            .is_some_and(|w| time >= first.saturating_add(w))
        {
            return false;
        }
        let amount = match value {
            UnitValue::Event => 1.0,
            UnitValue::Amount(x) if x.is_finite() => x,
            UnitValue::Amount(_) => return false,
        };
        // The key borrows the assignments' copy of the unit, so units are stored once.
        let Some((key, _)) = self.assignments.units.get_key_value(unit) else {
            return false;
        };
        self.increments
            .entry(key.as_str())
            .or_default()
            .push((window.day(time), amount));
        true
    }

    /// The cumulative sums of each variant at the end of each day: `[day][variant]`. Every
    /// exposed unit counts from the day of its first exposure (with 0 until it has events); a
    /// conversion is 1 from the day of the unit's first qualifying event. `cap`, per variant,
    /// winsorizes each unit's value at that amount.
    pub fn daily(&self, cap: Option<&[f64]>) -> Vec<Vec<DailySums>> {
        let days = self.assignments.window.days();
        let variants = self.assignments.variants.len();
        let units = self.assignments.units_by_day();
        let mut sum = vec![vec![0.0f64; variants]; days];
        let mut squares = vec![vec![0.0f64; variants]; days];
        for (unit, increments) in &self.increments {
            let Some((variant, _)) = self.assignments.assigned(unit) else {
                continue;
            };
            let mut by_day = vec![0.0f64; days];
            for &(day, amount) in increments {
                by_day[day] += amount;
            }
            let mut value = 0.0;
            for day in 0..days {
                value += by_day[day];
                let mut v = match self.kind {
                    MetricKind::Conversion => value.min(1.0),
                    _ => value,
                };
                if let Some(limit) = cap.and_then(|c| c.get(variant)) {
                    v = v.min(*limit);
                }
                sum[day][variant] += v;
                squares[day][variant] += v * v;
            }
        }
        (0..days)
            .map(|day| {
                (0..variants)
                    .map(|v| match self.kind {
                        MetricKind::Conversion => DailySums::Proportion(ProportionSums {
                            n: units[day][v],
                            conversions: sum[day][v].round() as u64,
                        }),
                        _ => DailySums::Mean(MeanSums {
                            n: units[day][v],
                            sum: sum[day][v],
                            sum_squares: squares[day][v],
                        }),
                    })
                    .collect()
            })
            .collect()
    }

    /// Each attributed unit's cumulative value at the end of each day (before any cap), with
    /// its variant.
    fn unit_days(&self) -> HashMap<&'a str, (usize, Vec<f64>)> {
        let days = self.assignments.window.days();
        self.increments
            .iter()
            .filter_map(|(unit, increments)| {
                let (variant, _) = self.assignments.assigned(unit)?;
                let mut values = vec![0.0f64; days];
                for &(day, amount) in increments {
                    values[day] += amount;
                }
                for day in 1..days {
                    values[day] += values[day - 1];
                }
                if self.kind == MetricKind::Conversion {
                    values.iter_mut().for_each(|v| *v = v.min(1.0));
                }
                Some((*unit, (variant, values)))
            })
            .collect()
    }

    /// A ratio metric's daily sums (`analysis.md` §3): per unit the numerator's value `m` and
    /// the denominator's `d` (both totals over the same assignments), summed with their squares
    /// and products per variant and day: `[day][variant]`.
    pub fn ratio_daily(
        numerator: &MetricTotals<'a>,
        denominator: &MetricTotals<'a>,
    ) -> Vec<Vec<DailySums>> {
        let assignments = numerator.assignments;
        let days = assignments.window.days();
        let variants = assignments.variants.len();
        let units = assignments.units_by_day();
        let mut sums = vec![vec![RatioSums::default(); variants]; days];
        let (m, d) = (numerator.unit_days(), denominator.unit_days());
        let zeros = vec![0.0f64; days];
        for unit in m.keys().chain(d.keys().filter(|u| !m.contains_key(*u))) {
            let (variant, mv) = m.get(unit).map_or((None, &zeros), |(v, x)| (Some(*v), x));
            let (other, dv) = d.get(unit).map_or((None, &zeros), |(v, x)| (Some(*v), x));
            let Some(variant) = variant.or(other) else {
                continue;
            };
            for day in 0..days {
                let s = &mut sums[day][variant];
                let (x, y) = (mv[day], dv[day]);
                s.m_sum += x;
                s.m_sum_squares += x * x;
                s.d_sum += y;
                s.d_sum_squares += y * y;
                s.md += x * y;
            }
        }
        sums.into_iter()
            .enumerate()
            .map(|(day, row)| {
                row.into_iter()
                    .enumerate()
                    .map(|(v, mut s)| {
                        s.n = units[day][v];
                        DailySums::Ratio(s)
                    })
                    .collect()
            })
            .collect()
    }

    /// Per variant, the value at `percentile` (e.g. 99) of the units' final values, zeros
    /// included: the caps winsorization applies.
    pub fn percentile_caps(&self, percentile: f64) -> Vec<f64> {
        let variants = self.assignments.variants.len();
        let mut values: Vec<Vec<f64>> = vec![Vec::new(); variants];
        for (unit, increments) in &self.increments {
            if let Some((variant, _)) = self.assignments.assigned(unit) {
                values[variant].push(increments.iter().map(|&(_, a)| a).sum());
            }
        }
        let totals = self.assignments.units_by_day();
        let last = totals.last().cloned().unwrap_or_default();
        values
            .into_iter()
            .enumerate()
            .map(|(v, mut vals)| {
                let n = usize::try_from(last.get(v).copied().unwrap_or(0)).unwrap_or(0);
                // Units without events have the value 0.
                vals.resize(n.max(vals.len()), 0.0);
                vals.sort_by(f64::total_cmp);
                if vals.is_empty() {
                    return f64::INFINITY;
                }
                let rank = ((percentile / 100.0) * (vals.len() as f64)).ceil() as usize;
                vals[rank.clamp(1, vals.len()) - 1]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
