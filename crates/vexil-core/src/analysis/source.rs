//! Where analysis reads its rows, behind a trait, so that the statistics never depend on the
//! engine that holds the events: the store's keyset-paged scans today (SQLite for one node,
//! PostgreSQL for several), a columnar engine for billions of events later.

use vexil_store::{EventFact, ExposureFact};

use crate::error::Result;

/// The rows one analysis reads, each handed over once, in time order.
pub trait AnalysisSource {
    /// The records of `key` of the given `kinds` (an experiment's exposures, a holdout's
    /// assignments) to a real variant, with a time in `window` (`[from, to)`).
    fn records(
        &mut self,
        project: &str,
        key: &str,
        kinds: &[&str],
        window: (i64, i64),
        f: &mut dyn FnMut(&ExposureFact),
    ) -> Result<()>;

    /// The product events of `project` (of one type when given) with a time in `window`.
    fn events(
        &mut self,
        project: &str,
        event_type: Option<&str>,
        window: (i64, i64),
        f: &mut dyn FnMut(&EventFact),
    ) -> Result<()>;
}
