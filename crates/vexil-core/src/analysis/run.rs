//! One experiment's (or holdout's) analysis state, kept between requests so that a refresh
//! reads only the rows that arrived since the last one.
//!
//! The first [`Analysis::refresh`] reads every record and event of the window (time-ordered
//! scans, up to the tables' highest ids at that moment); each later one reads the rows above
//! those ids (arrival-order scans) and adds them to the per-unit state: new units, events held
//! for units not exposed yet, the window's end moving to now. The per-variant, per-day sums
//! are then summed from the per-unit state, which does not depend on the order rows came in,
//! so a refresh gives what a full read of the same rows gives. A row that would change what
//! was already attributed (a unit's first exposure moving earlier) or more held events than a
//! metric keeps make the next refresh a full read.

use std::borrow::Cow;

use rustc_hash::FxHashSet;
use serde_json::Value as Json;
use vexil_store::{EventColumns, EventFact, ExposureFact};

use super::attribution::{Assignments, Exposed, MetricTotals, UnitValue, Window, PRE_PERIOD_MS};
use super::filters::matches;
use super::source::AnalysisSource;
use crate::error::Result;
use crate::model::{MetricKind, PropertyFilter, PropertyScope, ANY_EVENT, EXPOSURE_EVENT};

/// How far below its highest id a refresh reads a table again: rows committed out of id order
/// (concurrent writers on PostgreSQL) within this many ids are still read, once.
const ID_LAG: i64 = 10_000;

/// What is analysed: whose records place units in variants, over which window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub project: String,
    /// The flag or holdout.
    pub key: String,
    /// The bucketing unit (`user_id`, `device_id` or a group type).
    pub unit: String,
    /// The record kinds that place a unit.
    pub kinds: Vec<String>,
    /// The control first.
    pub variants: Vec<String>,
    pub start: i64,
    /// The window's end once fixed (an experiment stopped); while open, each refresh's now.
    pub end: Option<i64>,
}

/// What a metric's attribution reads of an event: the event type, filters and value. Two
/// metrics alike here share their state (names and directions do not matter to it).
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub kind: MetricKind,
    pub event_type: String,
    pub property: Option<String>,
    pub filters: Vec<PropertyFilter>,
    pub conversion_window_hours: Option<u32>,
    /// Also the 14 days before each unit's exposure (CUPED's covariate).
    pub pre_period: bool,
}

impl Part {
    fn reads(&self, scope: PropertyScope) -> bool {
        self.filters.iter().any(|f| f.scope == scope)
            || (scope == PropertyScope::Event && self.kind == MetricKind::Sum)
    }

    fn counts(&self, event_type: &str) -> bool {
        self.event_type == event_type || self.event_type == ANY_EVENT
    }
}

/// The ids a table has been read up to, and those read just below, so that nothing is read
/// twice when a refresh reads [`ID_LAG`] ids again.
#[derive(Debug, Clone, Default)]
struct Mark {
    through: i64,
    recent: FxHashSet<i64>,
}

impl Mark {
    fn from(&self) -> i64 {
        (self.through - ID_LAG).max(0)
    }

    /// Whether the row is new to the analysis (and now seen).
    fn fresh(&mut self, id: i64) -> bool {
        if id <= self.from() || !self.recent.insert(id) {
            return false;
        }
        self.through = self.through.max(id);
        true
    }

    fn settle(&mut self) {
        let from = self.from();
        self.recent.retain(|id| *id > from);
    }
}

/// One analysis's state: the assignments and each part's per-unit totals.
#[derive(Debug, Clone)]
pub struct Analysis {
    subject: Subject,
    parts: Vec<Part>,
    assignments: Assignments,
    totals: Vec<MetricTotals>,
    records: Mark,
    events: Mark,
    /// The next refresh reads everything.
    full: bool,
}

impl Analysis {
    pub fn new(subject: Subject, parts: Vec<Part>) -> Analysis {
        let window = Window {
            start: subject.start,
            end: subject.start + 1,
        };
        Analysis {
            assignments: Assignments::new(subject.variants.clone(), window),
            totals: Vec::new(),
            subject,
            parts,
            records: Mark::default(),
            events: Mark::default(),
            full: true,
        }
    }

    /// Whether this state answers for `subject` and `parts` (else start a new one).
    pub fn is_for(&self, subject: &Subject, parts: &[Part]) -> bool {
        self.subject == *subject && self.parts == parts
    }

    pub fn assignments(&self) -> &Assignments {
        &self.assignments
    }

    /// The totals of `parts[index]`.
    pub fn totals(&self, index: usize) -> Option<&MetricTotals> {
        self.totals.get(index)
    }

    /// Brings the state up to `now`: everything the first time, what arrived since after.
    /// Returns whether anything changed.
    pub fn refresh(&mut self, source: &mut dyn AnalysisSource, now: i64) -> Result<bool> {
        if !self.full {
            match self.add_since(source, now)? {
                Some(changed) => return Ok(changed),
                None => self.full = true,
            }
        }
        self.read_all(source, now)?;
        Ok(true)
    }

    fn end(&self, now: i64) -> i64 {
        self.subject.end.unwrap_or(now).max(self.subject.start + 1)
    }

    fn read_all(&mut self, source: &mut dyn AnalysisSource, now: i64) -> Result<()> {
        let (records_through, events_through) = source.last_ids()?;
        let window = Window {
            start: self.subject.start,
            end: self.end(now),
        };
        self.assignments = Assignments::new(self.subject.variants.clone(), window);
        self.totals = self
            .parts
            .iter()
            .map(|p| MetricTotals::new(p.kind, p.conversion_window_hours, p.pre_period))
            .collect();
        self.records = Mark {
            through: records_through,
            recent: FxHashSet::default(),
        };
        self.events = Mark {
            through: events_through,
            recent: FxHashSet::default(),
        };
        let subject = self.subject.clone();
        let kinds: Vec<&str> = subject.kinds.iter().map(String::as_str).collect();
        // Exposure metrics count records once every unit's first exposure is known.
        let counts_exposures = self.parts.iter().any(|p| p.event_type == EXPOSURE_EVENT);
        let mut exposures: Vec<(String, i64)> = Vec::new();
        source.records(
            &subject.project,
            &subject.key,
            &kinds,
            (0, subject.start),
            &mut |e| {
                if e.id > records_through {
                    return; // read by the next refresh
                }
                if e.id > records_through - ID_LAG {
                    self.records.recent.insert(e.id);
                }
                // Nothing is attributed yet: whatever the outcome, the state holds.
                if let Some((unit, outcome)) = self.place(e) {
                    self.placed(&unit, outcome);
                    if counts_exposures {
                        exposures.push((unit.into_owned(), e.time));
                    }
                }
            },
        )?;
        for (unit, time) in exposures {
            self.count_exposure(&unit, time);
        }
        let scans = self.scans();
        let after = (0, self.earliest());
        let Analysis {
            subject,
            parts,
            assignments,
            totals,
            events: mark,
            ..
        } = self;
        // Two threads: this one reads pages from the source, the other attributes them.
        std::thread::scope(|scope| {
            let (send, pages) = std::sync::mpsc::sync_channel::<Vec<EventFact>>(4);
            let (unit, parts, assignments) = (subject.unit.as_str(), &*parts, &*assignments);
            let worker = scope.spawn(move || {
                for page in pages {
                    for e in &page {
                        attribute(unit, parts, totals, assignments, e);
                    }
                }
            });
            let mut read = || -> Result<()> {
                for (types, columns) in &scans {
                    let types: Vec<&str> = types.iter().map(String::as_str).collect();
                    source.events(
                        &subject.project,
                        &types,
                        after,
                        *columns,
                        &mut |mut page| {
                            page.retain(|e| e.id <= events_through); // the rest: next refresh
                            for e in &page {
                                if e.id > events_through - ID_LAG {
                                    mark.recent.insert(e.id);
                                }
                            }
                            // A send fails only when the worker is gone, which join reports.
                            let _ = send.send(page);
                        },
                    )?;
                }
                Ok(())
            };
            let read = read();
            drop(send);
            match worker.join() {
                Ok(()) => read,
                Err(_) => Err(crate::error::Error::Internal(
                    "the analysis's attribution thread panicked".into(),
                )),
            }
        })?;
        self.forget_held(now);
        self.full = self.totals.iter().any(MetricTotals::overflowed);
        Ok(())
    }

    fn earliest(&self) -> i64 {
        if self.parts.iter().any(|p| p.pre_period) {
            self.subject.start.saturating_sub(PRE_PERIOD_MS)
        } else {
            self.subject.start
        }
    }

    /// The event scans the parts need: the types read with the same columns together (one
    /// scan of every type when a part counts any event), none when they count only exposures.
    fn scans(&self) -> Vec<(Vec<String>, EventColumns)> {
        let unit = self.subject.unit.as_str();
        let columns = |parts: &mut dyn Iterator<Item = &Part>| {
            let (event, user) = parts.fold((false, false), |(e, u), p| {
                (
                    e || p.reads(PropertyScope::Event),
                    u || p.reads(PropertyScope::User),
                )
            });
            EventColumns {
                user_id: unit == "user_id",
                device_id: unit == "device_id",
                groups: unit != "user_id" && unit != "device_id",
                event_properties: event,
                user_properties: user,
            }
        };
        let counted = || self.parts.iter().filter(|p| p.event_type != EXPOSURE_EVENT);
        if self.parts.iter().any(|p| p.event_type == ANY_EVENT) {
            return vec![(Vec::new(), columns(&mut counted()))];
        }
        let mut scans: Vec<(Vec<String>, EventColumns)> = Vec::new();
        for t in counted().map(|p| &p.event_type) {
            let wanted = columns(&mut self.parts.iter().filter(|p| p.event_type == *t));
            match scans.iter_mut().find(|(_, c)| *c == wanted) {
                Some((types, _)) if !types.contains(t) => types.push(t.clone()),
                Some(_) => {}
                None => scans.push((vec![t.clone()], wanted)),
            }
        }
        scans
    }

    /// Adds what arrived since the last refresh; `None` when it cannot be added (read all).
    fn add_since(&mut self, source: &mut dyn AnalysisSource, now: i64) -> Result<Option<bool>> {
        let days = self.assignments.window().days();
        let mut changed = false;
        for (unit, outcome) in self.assignments.extend(self.end(now)) {
            changed = true;
            if !self.placed(&unit, outcome) {
                return Ok(None);
            }
        }
        for totals in &mut self.totals {
            totals.release_all(&self.assignments);
        }
        let subject = self.subject.clone();
        let kinds: Vec<&str> = subject.kinds.iter().map(String::as_str).collect();
        let mut failed = false;
        source.records(
            &subject.project,
            &subject.key,
            &kinds,
            (self.records.from(), subject.start),
            &mut |e| {
                if !failed && self.records.fresh(e.id) {
                    changed = true;
                    if let Some((unit, outcome)) = self.place(e) {
                        if self.placed(&unit, outcome) {
                            self.count_exposure(&unit, e.time);
                        } else {
                            failed = true;
                        }
                    }
                }
            },
        )?;
        if failed {
            return Ok(None);
        }
        let after = (self.events.from(), self.earliest());
        for (types, columns) in self.scans() {
            let types: Vec<&str> = types.iter().map(String::as_str).collect();
            source.events(&subject.project, &types, after, columns, &mut |page| {
                for e in &page {
                    if self.events.fresh(e.id) {
                        changed = true;
                        attribute(
                            &subject.unit,
                            &self.parts,
                            &mut self.totals,
                            &self.assignments,
                            e,
                        );
                    }
                }
            })?;
        }
        self.records.settle();
        self.events.settle();
        self.forget_held(now);
        if self.totals.iter().any(MetricTotals::overflowed) {
            self.full = true;
        }
        Ok(Some(changed || self.assignments.window().days() != days))
    }

    fn forget_held(&mut self, now: i64) {
        let before = now.min(self.end(now)).saturating_sub(PRE_PERIOD_MS);
        for totals in &mut self.totals {
            totals.forget_held_before(before);
        }
    }

    /// Places one record: its unit and what it did to the unit's assignment.
    fn place<'e>(&mut self, e: &'e ExposureFact) -> Option<(Cow<'e, str>, Exposed)> {
        let unit = unit_id(
            &self.subject.unit,
            e.user_id.as_deref(),
            e.device_id.as_deref(),
            e.groups.as_deref(),
        )?;
        let outcome = self.assignments.expose(&unit, &e.variant, e.time);
        Some((unit, outcome))
    }

    /// Counts one record in the exposure metrics.
    fn count_exposure(&mut self, unit: &str, time: i64) {
        for (part, totals) in self.parts.iter().zip(&mut self.totals) {
            if part.event_type == EXPOSURE_EVENT {
                totals.event(&self.assignments, unit, time, UnitValue::Event);
            }
        }
    }

    /// Follows up an exposure's outcome on every part; false when the state must be rebuilt.
    fn placed(&mut self, unit: &str, outcome: Exposed) -> bool {
        match outcome {
            Exposed::New(_) => {
                for totals in &mut self.totals {
                    totals.release(&self.assignments, unit);
                }
                true
            }
            Exposed::Several(id) => {
                for totals in &mut self.totals {
                    totals.forget(id);
                }
                true
            }
            Exposed::Earlier(_) => false,
            Exposed::Ignored | Exposed::Held | Exposed::Unchanged => true,
        }
    }
}

/// Hands one product event to the parts that count its type.
fn attribute(
    unit_kind: &str,
    parts: &[Part],
    totals: &mut [MetricTotals],
    assignments: &Assignments,
    e: &EventFact,
) {
    let Some(unit) = unit_id(
        unit_kind,
        e.user_id.as_deref(),
        e.device_id.as_deref(),
        e.groups.as_deref(),
    ) else {
        return;
    };
    let id = assignments.unit(&unit);
    // Properties are parsed once, and only when a part reads them.
    let parse = |text: &Option<String>| {
        text.as_deref()
            .and_then(|t| serde_json::from_str::<Json>(t).ok())
    };
    let (mut event_props, mut user_props): (Option<Option<Json>>, Option<Option<Json>>) =
        (None, None);
    for (part, totals) in parts.iter().zip(totals.iter_mut()) {
        if part.event_type == EXPOSURE_EVENT || !part.counts(&e.event_type) {
            continue;
        }
        let ev = if part.reads(PropertyScope::Event) {
            event_props
                .get_or_insert_with(|| parse(&e.event_properties))
                .as_ref()
        } else {
            None
        };
        let up = if part.reads(PropertyScope::User) {
            user_props
                .get_or_insert_with(|| parse(&e.user_properties))
                .as_ref()
        } else {
            None
        };
        if !matches(&part.filters, ev, up) {
            continue;
        }
        let value = match (part.kind, part.property.as_deref()) {
            (MetricKind::Sum, Some(p)) => match ev.and_then(|props| props.get(p)) {
                Some(Json::Number(n)) => n.as_f64().map(UnitValue::Amount),
                Some(Json::String(s)) => s.trim().parse().ok().map(UnitValue::Amount),
                _ => None,
            },
            _ => Some(UnitValue::Event),
        };
        if let Some(value) = value {
            totals.event_of(assignments, id, &unit, e.time, value);
        }
    }
}

/// The unit an exposure or event belongs to: its `user_id` or `device_id`, or for a group
/// unit the name of its group of that type (`groups` JSON: a name or a list of names).
pub fn unit_id<'a>(
    unit: &str,
    user_id: Option<&'a str>,
    device_id: Option<&'a str>,
    groups: Option<&str>,
) -> Option<Cow<'a, str>> {
    match unit {
        "user_id" => user_id.map(Cow::Borrowed),
        "device_id" => device_id.map(Cow::Borrowed),
        group => {
            let groups: Json = serde_json::from_str(groups?).ok()?;
            match groups.get(group)? {
                Json::String(name) if !name.is_empty() => Some(Cow::Owned(name.clone())),
                Json::Array(names) => names.first()?.as_str().map(|s| Cow::Owned(s.to_owned())),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests;
