//! Exposure attribution and the per-variant, per-day sums of a metric (`analysis.md` §1–3).
//!
//! Both sides take rows in any order and any number of times over (a first full read, then
//! what arrived since): a row that cannot be placed yet (an event of a unit not exposed so far,
//! a row timed after the window's current end) is held and placed when it can be.

use rustc_hash::FxHashMap;
use vexil_stats::{CupedSums, MeanSums, ProportionSums, RatioSums};

use crate::model::MetricKind;

/// A UTC day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;
/// CUPED's pre-exposure period (`analysis.md` §3): 14 days before each unit's first exposure.
pub const PRE_PERIOD_MS: i64 = 14 * DAY_MS;
/// Events a metric holds for units not exposed yet, at most; past it the metric says it
/// [overflowed](MetricTotals::overflowed) and its caller reads everything again next time.
const HELD_LIMIT: usize = 4_000_000;

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
    One { variant: u32, first: i64 },
    Several,
}

/// What an exposure did to its unit's assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposed {
    /// Not part of the experiment (another variant, no unit) or outside the window.
    Ignored,
    /// Held: timed after the window's current end.
    Held,
    /// The unit's first exposure (its index).
    New(u32),
    /// The unit stands as it stood.
    Unchanged,
    /// The unit's first exposure moved earlier: what was attributed to it from the old one
    /// no longer holds.
    Earlier(u32),
    /// The unit is now in several variants: left out from now on.
    Several(u32),
}

/// The first exposure of every unit an experiment exposed inside its window.
#[derive(Debug, Clone)]
pub struct Assignments {
    variants: Vec<String>,
    window: Window,
    index: FxHashMap<Box<str>, u32>,
    units: Vec<Assigned>,
    /// Exposures timed after the window's current end, placed when it reaches them.
    held: Vec<(Box<str>, u32, i64)>,
}

impl Assignments {
    /// `variants` in the order results list them (the control first); exposures to other
    /// variants (`off`, a variant since deleted) are not part of the experiment.
    pub fn new(variants: Vec<String>, window: Window) -> Assignments {
        Assignments {
            variants,
            window,
            index: FxHashMap::default(),
            units: Vec::new(),
            held: Vec::new(),
        }
    }

    pub fn variants(&self) -> &[String] {
        &self.variants
    }

    pub fn window(&self) -> Window {
        self.window
    }

    /// Records one exposure of `unit` to `variant` at `time`, in any order.
    pub fn expose(&mut self, unit: &str, variant: &str, time: i64) -> Exposed {
        let Some(index) = self.variants.iter().position(|v| v == variant) else {
            return Exposed::Ignored;
        };
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        if unit.is_empty() || time < self.window.start {
            return Exposed::Ignored;
        }
        if time >= self.window.end {
            self.held.push((unit.into(), index, time));
            return Exposed::Held;
        }
        self.place(unit, index, time)
    }

    fn place(&mut self, unit: &str, index: u32, time: i64) -> Exposed {
        let Some(&id) = self.index.get(unit) else {
            let id = u32::try_from(self.units.len()).unwrap_or(u32::MAX);
            self.index.insert(unit.into(), id);
            self.units.push(Assigned::One {
                variant: index,
                first: time,
            });
            return Exposed::New(id);
        };
        match &mut self.units[id as usize] {
            Assigned::One { variant, first } if *variant == index => {
                if time < *first {
                    *first = time;
                    Exposed::Earlier(id)
                } else {
                    Exposed::Unchanged
                }
            }
            slot @ Assigned::One { .. } => {
                *slot = Assigned::Several;
                Exposed::Several(id)
            }
            Assigned::Several => Exposed::Unchanged,
        }
    }

    /// Moves the window's end to `end` (later), placing the held exposures it now covers;
    /// returns what each did, with its unit.
    pub fn extend(&mut self, end: i64) -> Vec<(Box<str>, Exposed)> {
        if end <= self.window.end {
            return Vec::new();
        }
        self.window.end = end;
        let held = std::mem::take(&mut self.held);
        let mut placed = Vec::new();
        for (unit, index, time) in held {
            if time >= end {
                self.held.push((unit, index, time));
            } else {
                let outcome = self.place(&unit, index, time);
                placed.push((unit, outcome));
            }
        }
        placed
    }

    /// A unit's index, once exposed.
    pub fn unit(&self, unit: &str) -> Option<u32> {
        self.index.get(unit).copied()
    }

    /// The variant (index) and first exposure of a unit in one variant only.
    pub fn assigned(&self, unit: &str) -> Option<(usize, i64)> {
        self.assigned_at(self.unit(unit)?)
    }

    fn assigned_at(&self, id: u32) -> Option<(usize, i64)> {
        match self.units.get(id as usize)? {
            Assigned::One { variant, first } => Some((*variant as usize, *first)),
            Assigned::Several => None,
        }
    }

    /// Units exposed to more than one variant: left out of every metric.
    pub fn multiple_variants(&self) -> u64 {
        self.units
            .iter()
            .filter(|a| matches!(a, Assigned::Several))
            .count() as u64
    }

    /// Units first exposed on each day, by variant: `[day][variant]`.
    pub fn new_units_by_day(&self) -> Vec<Vec<u64>> {
        let mut out = vec![vec![0u64; self.variants.len()]; self.window.days()];
        for a in &self.units {
            if let Assigned::One { variant, first } = a {
                out[self.window.day(*first)][*variant as usize] += 1;
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

/// What became of an event handed to [`MetricTotals::event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attributed {
    /// Counted in its unit's value.
    Counted,
    /// Counted in its unit's pre-exposure value (CUPED's covariate).
    PrePeriod,
    /// Held until its unit is exposed or the window reaches it.
    Held,
    /// Not the metric's: before the unit's exposure, past its conversion window or the
    /// window's end, a unit in several variants, not a number.
    Out,
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
pub struct MetricTotals {
    kind: MetricKind,
    window_ms: Option<i64>,
    /// Whether events of the 14 days before a unit's exposure count as its covariate.
    pre_period: bool,
    /// Per unit (by index): (day, increment), one entry per day with events.
    increments: Vec<Vec<(u32, f64)>>,
    /// Per unit (by index): the metric over the pre-exposure period (CUPED's covariate).
    pre: Vec<f64>,
    /// Events of units not exposed yet, or timed after the window's end: (time, amount).
    held: FxHashMap<Box<str>, Vec<(i64, f64)>>,
    held_count: usize,
    overflowed: bool,
}

impl MetricTotals {
    /// `conversion_window_hours` as the metric defines it (none: until the window's end);
    /// `pre_period`: also sum each unit's events of the 14 days before its first exposure.
    /// Ratio metrics are two metrics' totals combined; pass `Count` or `Sum` for each part.
    pub fn new(
        kind: MetricKind,
        conversion_window_hours: Option<u32>,
        pre_period: bool,
    ) -> MetricTotals {
        MetricTotals {
            kind,
            window_ms: conversion_window_hours.map(|h| i64::from(h) * 3_600_000),
            pre_period,
            increments: Vec::new(),
            pre: Vec::new(),
            held: FxHashMap::default(),
            held_count: 0,
            overflowed: false,
        }
    }

    /// Whether events had to be dropped rather than held (more than a metric holds): what
    /// arrives later may then miss them, so the caller should read everything again.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Counts one qualifying event of `unit` at `time`: in the unit's value if the unit is in
    /// exactly one variant and the event is at or after its first exposure, inside the
    /// conversion window and the analysis window; in its covariate when it falls in the
    /// pre-exposure period and the metric keeps one; held for later when the unit is not
    /// exposed yet or the window has not reached the event.
    pub fn event(
        &mut self,
        a: &Assignments,
        unit: &str,
        time: i64,
        value: UnitValue,
    ) -> Attributed {
        self.event_of(a, a.unit(unit), unit, time, value)
    }

    /// [`MetricTotals::event`] for a unit already looked up (`id`: its index, once exposed).
    pub fn event_of(
        &mut self,
        a: &Assignments,
        id: Option<u32>,
        unit: &str,
        time: i64,
        value: UnitValue,
    ) -> Attributed {
        let amount = match value {
            UnitValue::Event => 1.0,
            UnitValue::Amount(x) if x.is_finite() => x,
            UnitValue::Amount(_) => return Attributed::Out,
        };
        match id {
            Some(id) if time < a.window.end => self.attribute(a, id, time, amount),
            _ if unit.is_empty() || time < self.earliest(a.window) => Attributed::Out,
            _ => self.hold(unit, time, amount),
        }
    }

    fn earliest(&self, window: Window) -> i64 {
        if self.pre_period {
            window.start.saturating_sub(PRE_PERIOD_MS)
        } else {
            window.start
        }
    }

    fn hold(&mut self, unit: &str, time: i64, amount: f64) -> Attributed {
        if self.held_count >= HELD_LIMIT {
            self.overflowed = true;
            return Attributed::Out;
        }
        self.held_count += 1;
        match self.held.get_mut(unit) {
            Some(events) => events.push((time, amount)),
            None => {
                self.held.insert(unit.into(), vec![(time, amount)]);
            }
        }
        Attributed::Held
    }

    fn attribute(&mut self, a: &Assignments, id: u32, time: i64, amount: f64) -> Attributed {
        let Some((_, first)) = a.assigned_at(id) else {
            return Attributed::Out;
        };
        let slot = id as usize;
        if time < first {
            if self.pre_period && time >= first - PRE_PERIOD_MS {
                if self.pre.len() <= slot {
                    self.pre.resize(slot + 1, 0.0);
                }
                self.pre[slot] += amount;
                return Attributed::PrePeriod;
            }
            return Attributed::Out;
        }
        if !a.window.contains(time)
            || self
                .window_ms
                .is_some_and(|w| time >= first.saturating_add(w))
        {
            return Attributed::Out;
        }
        if self.increments.len() <= slot {
            self.increments.resize_with(slot + 1, Vec::new);
        }
        let day = u32::try_from(a.window.day(time)).unwrap_or(u32::MAX);
        let unit = &mut self.increments[slot];
        match unit.iter_mut().rev().find(|(d, _)| *d == day) {
            Some((_, total)) => *total += amount,
            None => unit.push((day, amount)),
        }
        Attributed::Counted
    }

    /// Places the held events of `unit` now that it is exposed or the window has grown.
    pub fn release(&mut self, a: &Assignments, unit: &str) {
        let Some(id) = a.unit(unit) else { return };
        let Some(events) = self.held.remove(unit) else {
            return;
        };
        self.held_count -= events.len();
        for (time, amount) in events {
            if time < a.window.end {
                self.attribute(a, id, time, amount);
            } else {
                self.hold(unit, time, amount);
            }
        }
    }

    /// Places every held event the window now reaches (after [`Assignments::extend`]).
    pub fn release_all(&mut self, a: &Assignments) {
        let ready: Vec<Box<str>> = self
            .held
            .iter()
            .filter(|(unit, events)| {
                a.unit(unit).is_some() && events.iter().any(|(t, _)| *t < a.window.end)
            })
            .map(|(unit, _)| unit.clone())
            .collect();
        for unit in ready {
            self.release(a, &unit);
        }
    }

    /// Forgets held events timed before `before`: a unit exposed later than that would not
    /// count them (nor, 14 days on, as its covariate).
    pub fn forget_held_before(&mut self, before: i64) {
        let mut count = 0;
        self.held.retain(|_, events| {
            events.retain(|(t, _)| *t >= before);
            count += events.len();
            !events.is_empty()
        });
        self.held_count = count;
    }

    /// Forgets what was attributed to a unit now in several variants (it no longer counts).
    pub fn forget(&mut self, id: u32) {
        if let Some(unit) = self.increments.get_mut(id as usize) {
            *unit = Vec::new();
        }
        if let Some(x) = self.pre.get_mut(id as usize) {
            *x = 0.0;
        }
    }

    /// Each attributed unit in one variant, with its variant, its first day and its
    /// cumulative value at the end of each day (before any cap) in `buffer`.
    fn each_unit(&self, a: &Assignments, mut f: impl FnMut(usize, usize, u32, &[f64])) {
        let days = a.window.days();
        let mut values = vec![0.0f64; days];
        for (slot, increments) in self.increments.iter().enumerate() {
            if increments.is_empty() {
                continue;
            }
            let id = u32::try_from(slot).unwrap_or(u32::MAX);
            let Some((variant, first)) = a.assigned_at(id) else {
                continue;
            };
            self.cumulative(increments, &mut values);
            f(variant, a.window.day(first), id, &values);
        }
    }

    /// A unit's cumulative value at the end of each day into `values`.
    fn cumulative(&self, increments: &[(u32, f64)], values: &mut [f64]) {
        values.iter_mut().for_each(|v| *v = 0.0);
        for &(day, amount) in increments {
            if let Some(v) = values.get_mut(day as usize) {
                *v += amount;
            }
        }
        for day in 1..values.len() {
            values[day] += values[day - 1];
        }
        if self.kind == MetricKind::Conversion {
            values.iter_mut().for_each(|v| *v = v.min(1.0));
        }
    }

    /// The cumulative sums of each variant at the end of each day: `[day][variant]`. Every
    /// exposed unit counts from the day of its first exposure (with 0 until it has events); a
    /// conversion is 1 from the day of the unit's first qualifying event. `cap`, per variant,
    /// winsorizes each unit's value at that amount.
    pub fn daily(&self, a: &Assignments, cap: Option<&[f64]>) -> Vec<Vec<DailySums>> {
        let days = a.window.days();
        let variants = a.variants.len();
        let units = a.units_by_day();
        let mut sum = vec![vec![0.0f64; variants]; days];
        let mut squares = vec![vec![0.0f64; variants]; days];
        self.each_unit(a, |variant, first_day, _, values| {
            let limit = cap.and_then(|c| c.get(variant)).copied();
            for day in first_day..days {
                let v = limit.map_or(values[day], |l| values[day].min(l));
                sum[day][variant] += v;
                squares[day][variant] += v * v;
            }
        });
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

    /// Like [`MetricTotals::daily`], with each unit's pre-period value as CUPED's covariate:
    /// `[day][variant]` of [`DailySums::Cuped`].
    pub fn daily_cuped(&self, a: &Assignments, cap: Option<&[f64]>) -> Vec<Vec<DailySums>> {
        let binary = self.kind == MetricKind::Conversion;
        let days = a.window.days();
        let variants = a.variants.len();
        let units = a.units_by_day();
        let mut sums = vec![vec![CupedSums::default(); variants]; days];
        let covariate = |x: f64| if binary { x.min(1.0) } else { x };
        let pre = |slot: usize| covariate(self.pre.get(slot).copied().unwrap_or(0.0));
        // Units with events after exposure (and maybe before).
        self.each_unit(a, |variant, first_day, id, values| {
            let x = pre(id as usize);
            let limit = cap.and_then(|c| c.get(variant)).copied();
            for day in first_day..days {
                let y = limit.map_or(values[day], |l| values[day].min(l));
                let s = &mut sums[day][variant];
                s.sum += y;
                s.sum_squares += y * y;
                s.pre_sum += x;
                s.pre_sum_squares += x * x;
                s.cross += x * y;
            }
        });
        // Units with only a pre-period value.
        for (slot, x) in self.pre.iter().enumerate() {
            if *x == 0.0 || self.increments.get(slot).is_some_and(|i| !i.is_empty()) {
                continue;
            }
            let Some((variant, first)) = a.assigned_at(u32::try_from(slot).unwrap_or(u32::MAX))
            else {
                continue;
            };
            let x = covariate(*x);
            for row in sums.iter_mut().skip(a.window.day(first)) {
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

    /// A ratio metric's daily sums (`analysis.md` §3): per unit the numerator's value `m` and
    /// the denominator's `d` (both totals over the same assignments), summed with their squares
    /// and products per variant and day: `[day][variant]`.
    pub fn ratio_daily(
        a: &Assignments,
        numerator: &MetricTotals,
        denominator: &MetricTotals,
    ) -> Vec<Vec<DailySums>> {
        let days = a.window.days();
        let variants = a.variants.len();
        let units = a.units_by_day();
        let mut sums = vec![vec![RatioSums::default(); variants]; days];
        let (mut m, mut d) = (vec![0.0f64; days], vec![0.0f64; days]);
        let count = numerator.increments.len().max(denominator.increments.len());
        let none: &[(u32, f64)] = &[];
        for slot in 0..count {
            let mi = numerator.increments.get(slot).map_or(none, Vec::as_slice);
            let di = denominator.increments.get(slot).map_or(none, Vec::as_slice);
            if mi.is_empty() && di.is_empty() {
                continue;
            }
            let Some((variant, first)) = a.assigned_at(u32::try_from(slot).unwrap_or(u32::MAX))
            else {
                continue;
            };
            numerator.cumulative(mi, &mut m);
            denominator.cumulative(di, &mut d);
            for day in a.window.day(first)..days {
                let s = &mut sums[day][variant];
                let (x, y) = (m[day], d[day]);
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
    pub fn percentile_caps(&self, a: &Assignments, percentile: f64) -> Vec<f64> {
        let variants = a.variants.len();
        let mut values: Vec<Vec<f64>> = vec![Vec::new(); variants];
        self.each_unit(a, |variant, _, _, days| {
            values[variant].push(days.last().copied().unwrap_or(0.0));
        });
        let last = a.units_by_day().pop().unwrap_or_default();
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
