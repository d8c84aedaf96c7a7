//! Vexil's experiment statistics (`analysis.md` §3–4): per-arm sufficient statistics in;
//! effects, tests, intervals, CUPED, the Bayesian view, multiple-testing corrections, sample
//! ratio mismatch, power and sample sizes out.
//!
//! The crate is pure, like `vexil-eval`: no I/O, clock, randomness, logging or async runtime.
//! Every function is deterministic, and every input it cannot use (fewer than 2 units, zero
//! variance, a zero control mean for a relative effect, a probability outside (0, 1)) is a
//! [`StatsError`], never a panic or a NaN passed along.
//!
//! The pipeline: sums ([`MeanSums`], [`ProportionSums`], [`CupedSums`], [`RatioSums`]; they add
//! with `+`, so daily sums accumulate) → a [`Summary`] per arm → an [`Effect`] (absolute or
//! relative, [`effect`] or [`cuped_effect`]) → a test ([`welch_test`], [`sequential_test`],
//! [`bayesian`]) → corrections over the family ([`adjust`]).
//!
//! ```
//! use vexil_stats::{
//!     effect, minimum_sample_met, sequential_test, welch_test, Alternative, ArmCounts,
//!     Difference, Direction, Outcome, ProportionSums, DEFAULT_TUNING,
//! };
//!
//! // Two days of a conversion metric, added up.
//! let day1 = ProportionSums { n: 1500, conversions: 700 };
//! let day2 = ProportionSums { n: 1500, conversions: 696 };
//! let control = day1 + day2;
//! let treatment = ProportionSums { n: 3461, conversions: 2422 };
//! let arms = [control, treatment]
//!     .map(|s| ArmCounts { units: s.n, conversions: Some(s.conversions) });
//! assert!(minimum_sample_met(&arms));
//!
//! let lift = effect(&control.summary()?, &treatment.summary()?, Difference::Relative)?;
//! let sequential = sequential_test(&lift, Alternative::TwoSided, 0.05, DEFAULT_TUNING)?;
//! assert!((sequential.interval.lower - 0.40098).abs() < 1e-5);
//! assert_eq!(sequential.outcome(Direction::Increase), Outcome::Better);
//!
//! let fixed = welch_test(&lift, Alternative::TwoSided, 0.05)?;
//! assert!(fixed.interval.lower > sequential.interval.lower); // peeking costs width
//! # Ok::<(), vexil_stats::StatsError>(())
//! ```

mod bayesian;
mod correction;
mod cuped;
mod dist;
mod effect;
mod error;
mod frequentist;
mod minimum;
mod power;
mod sequential;
mod srm;
mod sums;

pub use bayesian::{bayesian, risk, BayesianResult, Prior, Risk};
pub use correction::{adjust, Correction};
pub use cuped::{cuped_effect, cuped_theta, CupedEffect};
pub use effect::{effect, Difference, Effect};
pub use error::StatsError;
pub use frequentist::{welch_test, Alternative, Direction, Interval, Outcome, TestResult};
pub use minimum::{minimum_sample_met, ArmCounts, MIN_CONVERSIONS_PER_ARM, MIN_UNITS_PER_ARM};
pub use power::{
    days_to_power, mde, power, sample_size_means, sample_size_proportions, Baseline, PowerSettings,
    MAX_DAYS,
};
pub use sequential::{running_minimum, sequential_test, DEFAULT_TUNING, ONE_SIDED_MAX_P};
pub use srm::{srm, srm_sequential, Srm, DEFAULT_SRM_CONCENTRATION, SRM_THRESHOLD};
pub use sums::{
    CupedSums, MeanSums, ProportionSums, RatioSums, Summary, ValueKind, MIN_UNITS_FOR_VARIANCE,
};
