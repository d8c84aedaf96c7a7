//! Where analysis reads its rows, behind a trait, so that the statistics never depend on the
//! engine that holds the events: the store's scans today (SQLite for one node, PostgreSQL for
//! several), a columnar engine for billions of events later.

use vexil_store::{EventColumns, EventFact, ExposureFact};

use crate::error::Result;

/// The rows one analysis reads, each handed over in arrival (id) order, a page at a time: all
/// of them up to the highest ids for the first refresh, then what arrived after those.
pub trait AnalysisSource {
    /// The highest ids of records and of events so far.
    fn last_ids(&mut self) -> Result<(i64, i64)>;

    /// The records of `key` of the given `kinds` (an experiment's exposures, a holdout's
    /// assignments) to a real variant with an id above `after.0` and a time at or after
    /// `after.1`.
    fn records(
        &mut self,
        project: &str,
        key: &str,
        kinds: &[&str],
        after: (i64, i64),
        f: &mut dyn FnMut(&ExposureFact),
    ) -> Result<()>;

    /// The product events of `project` of the given types (every type when empty) with an id
    /// above `after.0` and a time at or after `after.1`, with the optional `columns` asked for,
    /// a page at a time (pages are handed over whole, so that reading the next one and
    /// attributing this one can run side by side).
    fn events(
        &mut self,
        project: &str,
        event_types: &[&str],
        after: (i64, i64),
        columns: EventColumns,
        f: &mut dyn FnMut(Vec<EventFact>),
    ) -> Result<()>;
}
