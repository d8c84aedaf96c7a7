//! A refresh adds what arrived to what was read before and gives what reading everything
//! again gives, whatever the order and timing of the rows.

use vexil_store::{EventColumns, EventFact, ExposureFact};

use super::*;
use crate::analysis::attribution::{DailySums, DAY_MS};
use crate::model::{FilterOp, PropertyFilter};

const T0: i64 = 1_765_000_000_000 - 1_765_000_000_000 % DAY_MS + 3_600_000;

/// Rows in arrival order, as the store hands them over.
#[derive(Default)]
struct Rows {
    records: Vec<ExposureFact>,
    events: Vec<EventFact>,
    next: i64,
}

impl Rows {
    fn record(&mut self, unit: &str, variant: &str, time: i64) {
        self.next += 1;
        self.records.push(ExposureFact {
            id: self.next,
            variant: variant.to_owned(),
            user_id: Some(unit.to_owned()),
            device_id: None,
            groups: None,
            time,
        });
    }

    fn event(&mut self, unit: &str, event_type: &str, time: i64, amount: u64) {
        self.next += 1;
        self.events.push(EventFact {
            id: self.next,
            event_type: event_type.to_owned(),
            user_id: Some(unit.to_owned()),
            device_id: None,
            groups: None,
            time,
            event_properties: Some(format!(r#"{{"amount":{amount},"plan":"p{}"}}"#, amount % 3)),
            user_properties: None,
        });
    }
}

impl AnalysisSource for Rows {
    fn last_ids(&mut self) -> Result<(i64, i64)> {
        let last = |ids: &mut dyn Iterator<Item = i64>| ids.max().unwrap_or(0);
        Ok((
            last(&mut self.records.iter().map(|r| r.id)),
            last(&mut self.events.iter().map(|e| e.id)),
        ))
    }

    fn records(
        &mut self,
        _: &str,
        _: &str,
        _: &[&str],
        (after, from): (i64, i64),
        f: &mut dyn FnMut(&ExposureFact),
    ) -> Result<()> {
        self.records
            .iter()
            .filter(|r| r.id > after && r.time >= from)
            .for_each(f);
        Ok(())
    }

    fn events(
        &mut self,
        _: &str,
        types: &[&str],
        (after, from): (i64, i64),
        columns: EventColumns,
        f: &mut dyn FnMut(Vec<EventFact>),
    ) -> Result<()> {
        // Only the columns asked for, as the store does.
        let keep = |wanted: bool, value: &Option<String>| value.clone().filter(|_| wanted);
        self.events
            .iter()
            .filter(|e| e.id > after && e.time >= from)
            .filter(|e| types.is_empty() || types.contains(&&*e.event_type))
            .map(|e| EventFact {
                user_id: keep(columns.user_id, &e.user_id),
                device_id: keep(columns.device_id, &e.device_id),
                groups: keep(columns.groups, &e.groups),
                event_properties: keep(columns.event_properties, &e.event_properties),
                user_properties: keep(columns.user_properties, &e.user_properties),
                ..e.clone()
            })
            .collect::<Vec<_>>()
            // Pages of three, as the store hands them over.
            .chunks(3)
            .for_each(|page| f(page.to_vec()));
        Ok(())
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn parts() -> Vec<Part> {
    let part = |kind, event_type: &str, property: Option<&str>, window, pre_period| Part {
        kind,
        event_type: event_type.to_owned(),
        property: property.map(str::to_owned),
        filters: Vec::new(),
        conversion_window_hours: window,
        pre_period,
    };
    let mut filtered = part(MetricKind::Count, "Page View", None, None, false);
    filtered.filters = vec![PropertyFilter {
        scope: PropertyScope::Event,
        property: "plan".to_owned(),
        op: FilterOp::Is,
        values: vec!["p1".to_owned()],
    }];
    vec![
        part(MetricKind::Conversion, "Purchase", None, Some(30), false),
        part(MetricKind::Sum, "Purchase", Some("amount"), None, true),
        part(MetricKind::Count, ANY_EVENT, None, None, false),
        part(MetricKind::Count, EXPOSURE_EVENT, None, None, false),
        filtered,
    ]
}

fn subject(end: Option<i64>) -> Subject {
    Subject {
        project: "p".to_owned(),
        key: "exp".to_owned(),
        unit: "user_id".to_owned(),
        kinds: vec!["client_exposure".to_owned()],
        variants: vec!["control".to_owned(), "treatment".to_owned()],
        start: T0,
        end,
    }
}

/// Every part's daily sums, with CUPED's where the part keeps a covariate.
fn sums(a: &Analysis) -> Vec<Vec<Vec<DailySums>>> {
    (0..a.parts.len())
        .map(|i| {
            let totals = a.totals(i).expect("part");
            if a.parts[i].pre_period {
                totals.daily_cuped(a.assignments(), None)
            } else {
                totals.daily(a.assignments(), None)
            }
        })
        .collect()
}

/// Random rows arrive in rounds, each followed by a refresh at a later "now"; after each,
/// the kept analysis equals a new one reading everything at that now. Rows come late, early
/// (before their unit's exposure, in the pre-period), after now (clock skew), for units never
/// exposed or exposed to both variants, and exposures that move a unit's first exposure
/// earlier.
#[test]
fn refreshes_equal_a_full_read() {
    let mut rng = Rng(11);
    for round in 0..12 {
        let end = (round % 4 == 3).then_some(T0 + 4 * DAY_MS);
        let mut rows = Rows::default();
        let mut kept = Analysis::new(subject(end), parts());
        let mut now = T0 + DAY_MS / 2;
        let mut full_reads = 0;
        for step in 0..6 {
            for _ in 0..rng.below(60) {
                let unit = format!("u{}", rng.below(50));
                let variant = ["control", "treatment", "off"][rng.below(3) as usize];
                let variant = if rng.below(10) == 0 {
                    variant
                } else {
                    ["control", "treatment"][unit.len() % 2]
                };
                let time = now - DAY_MS + rng.below(DAY_MS as u64 + 3_600_000) as i64;
                rows.record(&unit, variant, time);
            }
            for _ in 0..rng.below(200) {
                let unit = format!("u{}", rng.below(70));
                let event_type = ["Purchase", "Page View", "Signup"][rng.below(3) as usize];
                let time = now - 16 * DAY_MS + rng.below(17 * DAY_MS as u64) as i64;
                rows.event(&unit, event_type, time, rng.below(40));
            }
            let was_full = kept.full;
            kept.refresh(&mut rows, now).expect("refresh");
            full_reads += usize::from(was_full || kept.full);
            let mut fresh = Analysis::new(subject(end), parts());
            fresh.refresh(&mut rows, now).expect("full read");
            assert_eq!(
                kept.assignments().units_by_day(),
                fresh.assignments().units_by_day(),
                "round {round}, step {step}: units"
            );
            assert_eq!(
                kept.assignments().multiple_variants(),
                fresh.assignments().multiple_variants()
            );
            assert_eq!(
                sums(&kept),
                sums(&fresh),
                "round {round}, step {step}: sums"
            );
            now += DAY_MS / 2 + rng.below(DAY_MS as u64) as i64;
        }
        assert!(full_reads < 6, "round {round}: some refreshes added rows");
    }
}

/// A refresh with nothing new changes nothing and says so; one row makes it change.
#[test]
fn a_refresh_says_whether_anything_changed() {
    let mut rows = Rows::default();
    rows.record("u1", "control", T0 + 10);
    rows.event("u1", "Purchase", T0 + 20, 5);
    let mut a = Analysis::new(subject(None), parts());
    assert!(a.refresh(&mut rows, T0 + 100).expect("first"));
    assert!(!a.refresh(&mut rows, T0 + 200).expect("nothing new"));
    rows.event("u1", "Purchase", T0 + 150, 5);
    assert!(a.refresh(&mut rows, T0 + 300).expect("one event"));
    assert!(
        a.refresh(&mut rows, T0 + DAY_MS + 1).expect("a new day"),
        "the window reached a new day"
    );
}
