//! Experiment analysis without I/O (`analysis.md` §1–3): which units an experiment exposed to
//! which variant, and what each metric's events add up to per variant and day. The results are
//! the sufficient statistics `vexil-stats` tests; a caller feeds exposures and events from
//! whatever holds them (the store today).
//!
//! - [`Assignments`]: the first exposure of each unit inside the analysis window; a unit
//!   exposed to two variants is excluded from every metric and counted apart (a bug signal).
//! - [`MetricTotals`]: a metric's qualifying events attributed to units (at or after their
//!   first exposure, inside the conversion window when the metric has one), kept as per-unit
//!   increments by day, so the cumulative statistics of every day (the looks of a sequential
//!   test, the charts over time) come from additions.
//! - [`Analysis`]: both kept between requests, so a refresh reads only what arrived since.

mod attribution;
mod filters;
pub mod report;
mod run;
mod source;

pub use attribution::{
    Assignments, Attributed, DailySums, Exposed, MetricTotals, UnitValue, Window, DAY_MS,
    PRE_PERIOD_MS,
};
pub use filters::matches;
pub use run::{unit_id, Analysis, Part, Subject};
pub use source::AnalysisSource;
