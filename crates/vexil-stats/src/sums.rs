//! Sufficient statistics: the per-arm sums every method starts from (`analysis.md` §3).
//!
//! They are plain sums, so a day's sums add to the running total with `+` or `+=`, and a
//! cumulative chart, a sequential look or an SRM check over time is a sequence of additions,
//! never a rescan of events. Each kind reduces to a [`Summary`] (units, mean, per-unit variance),
//! which is what the tests take.

use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

use crate::error::{finite, StatsError};

/// The fewest units an arm needs for a variance (its `n − 1` divides).
pub const MIN_UNITS_FOR_VARIANCE: u64 = 2;

/// How a metric's per-unit values are distributed, which decides the variance estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    /// Any real values (counts, sums of a property): sample moments, divided by `n − 1`.
    Continuous,
    /// 0/1 values (conversions): population moments, divided by `n` (`p(1 − p)`), as the spec
    /// asks for binomial metrics throughout, CUPED included.
    Binary,
}

/// One arm reduced to what the tests need.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Units in the arm.
    pub n: u64,
    /// Mean of the per-unit value (for a ratio metric, the ratio of sums).
    pub mean: f64,
    /// Per-unit variance (for a ratio metric, the delta-method variance of the ratio).
    pub variance: f64,
}

impl Summary {
    /// A summary from its parts, checked: at least 2 units, a finite mean, a finite variance
    /// that is not negative.
    pub fn new(n: u64, mean: f64, variance: f64) -> Result<Self, StatsError> {
        at_least_two(n)?;
        finite("mean", mean)?;
        if !(variance.is_finite() && variance >= 0.0) {
            return Err(StatsError::InvalidParameter {
                name: "variance",
                value: variance,
                expected: "finite and not negative",
            });
        }
        Ok(Self { n, mean, variance })
    }
}

fn at_least_two(n: u64) -> Result<(), StatsError> {
    if n < MIN_UNITS_FOR_VARIANCE {
        return Err(StatsError::TooFewUnits {
            n,
            min: MIN_UNITS_FOR_VARIANCE,
        });
    }
    Ok(())
}

/// Second central moment from sums: `(Σx² − (Σx)²/n) / (n − 1)` for samples, `/ n` for a
/// population. Rounding can make a zero variance come out a hair below zero; it is clamped.
pub(crate) fn variance(n: u64, sum: f64, sum_squares: f64, kind: ValueKind) -> f64 {
    covariance(n, sum, sum, sum_squares, kind).max(0.0)
}

/// `(Σxy − ΣxΣy/n) / (n − 1)` for samples, `/ n` for a population.
pub(crate) fn covariance(n: u64, sum_x: f64, sum_y: f64, sum_xy: f64, kind: ValueKind) -> f64 {
    let n = n as f64;
    let centered = sum_xy - sum_x * sum_y / n;
    match kind {
        ValueKind::Continuous => centered / (n - 1.0),
        ValueKind::Binary => centered / n,
    }
}

macro_rules! additive {
    ($name:ident { $($field:ident),+ }) => {
        impl AddAssign for $name {
            fn add_assign(&mut self, other: Self) {
                $(self.$field += other.$field;)+
            }
        }

        impl Add for $name {
            type Output = Self;

            fn add(mut self, other: Self) -> Self {
                self += other;
                self
            }
        }

        impl std::iter::Sum for $name {
            fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
                iter.fold(Self::default(), Add::add)
            }
        }
    };
}

/// A mean metric (count, sum of a property): units, and the sum and sum of squares of the
/// per-unit value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MeanSums {
    /// Units.
    pub n: u64,
    /// Σ value.
    pub sum: f64,
    /// Σ value².
    pub sum_squares: f64,
}
additive!(MeanSums {
    n,
    sum,
    sum_squares
});

impl MeanSums {
    /// Mean and sample variance `(Σx² − (Σx)²/n)/(n − 1)`.
    pub fn summary(&self) -> Result<Summary, StatsError> {
        self.summary_as(ValueKind::Continuous)
    }

    /// Mean and variance with the estimator `kind` asks for.
    pub fn summary_as(&self, kind: ValueKind) -> Result<Summary, StatsError> {
        at_least_two(self.n)?;
        finite("sum", self.sum)?;
        finite("sum_squares", self.sum_squares)?;
        Summary::new(
            self.n,
            self.sum / self.n as f64,
            variance(self.n, self.sum, self.sum_squares, kind),
        )
    }
}

/// A conversion metric: units, and the units that converted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProportionSums {
    /// Units.
    pub n: u64,
    /// Units that converted (at most `n`).
    pub conversions: u64,
}
additive!(ProportionSums { n, conversions });

impl ProportionSums {
    /// Rate `p = conversions/n` and population variance `p(1 − p)`.
    pub fn summary(&self) -> Result<Summary, StatsError> {
        at_least_two(self.n)?;
        if self.conversions > self.n {
            return Err(StatsError::InvalidParameter {
                name: "conversions",
                value: self.conversions as f64,
                expected: "at most n",
            });
        }
        let p = self.conversions as f64 / self.n as f64;
        Summary::new(self.n, p, p * (1.0 - p))
    }
}

/// A metric with its pre-exposure covariate for CUPED: the metric's sums plus the same metric
/// over the pre-period (`pre_sum`, `pre_sum_squares`) and `cross`, Σ value × pre-value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CupedSums {
    /// Units.
    pub n: u64,
    /// Σ value.
    pub sum: f64,
    /// Σ value².
    pub sum_squares: f64,
    /// Σ pre-value.
    pub pre_sum: f64,
    /// Σ pre-value².
    pub pre_sum_squares: f64,
    /// Σ value × pre-value.
    pub cross: f64,
}
additive!(CupedSums {
    n,
    sum,
    sum_squares,
    pre_sum,
    pre_sum_squares,
    cross
});

impl CupedSums {
    /// The sums of a 0/1 metric with a 0/1 covariate, whose squares equal their sums.
    pub fn binary(n: u64, sum: f64, pre_sum: f64, cross: f64) -> Self {
        Self {
            n,
            sum,
            sum_squares: sum,
            pre_sum,
            pre_sum_squares: pre_sum,
            cross,
        }
    }

    /// The metric's own sums, without the covariate.
    pub fn metric(&self) -> MeanSums {
        MeanSums {
            n: self.n,
            sum: self.sum,
            sum_squares: self.sum_squares,
        }
    }

    pub(crate) fn check(&self) -> Result<(), StatsError> {
        at_least_two(self.n)?;
        finite("sum", self.sum)?;
        finite("sum_squares", self.sum_squares)?;
        finite("pre_sum", self.pre_sum)?;
        finite("pre_sum_squares", self.pre_sum_squares)?;
        finite("cross", self.cross)?;
        Ok(())
    }
}

/// A ratio metric (Σ M / Σ D over units): the numerator's and denominator's sums and squares,
/// and `md`, Σ m × d.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RatioSums {
    /// Units.
    pub n: u64,
    /// Σ m.
    pub m_sum: f64,
    /// Σ m².
    pub m_sum_squares: f64,
    /// Σ d.
    pub d_sum: f64,
    /// Σ d².
    pub d_sum_squares: f64,
    /// Σ m × d.
    pub md: f64,
}
additive!(RatioSums {
    n,
    m_sum,
    m_sum_squares,
    d_sum,
    d_sum_squares,
    md
});

impl RatioSums {
    /// The ratio `Σm/Σd` and its per-unit variance by the delta method,
    /// `v = vM/μD² + vD·μM²/μD⁴ − 2·cov(M, D)·μM/μD³` (sample moments), so that `v/n` is the
    /// variance of the ratio.
    pub fn summary(&self) -> Result<Summary, StatsError> {
        at_least_two(self.n)?;
        for (name, value) in [
            ("m_sum", self.m_sum),
            ("m_sum_squares", self.m_sum_squares),
            ("d_sum", self.d_sum),
            ("d_sum_squares", self.d_sum_squares),
            ("md", self.md),
        ] {
            finite(name, value)?;
        }
        if self.d_sum == 0.0 {
            return Err(StatsError::ZeroDenominator);
        }
        let n = self.n as f64;
        let kind = ValueKind::Continuous;
        let (mean_m, mean_d) = (self.m_sum / n, self.d_sum / n);
        // The moments go in as the sums give them, not clamped one by one: only the combined
        // variance must be non-negative. (The shared vector `ratio-bayesian` has sums no real
        // data could give, Σd² < (Σd)²/n, and pins the unclamped result.)
        let var_m = covariance(self.n, self.m_sum, self.m_sum, self.m_sum_squares, kind);
        let var_d = covariance(self.n, self.d_sum, self.d_sum, self.d_sum_squares, kind);
        let cov = covariance(self.n, self.m_sum, self.d_sum, self.md, kind);
        let v = var_m / mean_d.powi(2) + var_d * mean_m.powi(2) / mean_d.powi(4)
            - 2.0 * cov * mean_m / mean_d.powi(3);
        Summary::new(self.n, self.m_sum / self.d_sum, v.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_sums_add_up() {
        let days = [
            MeanSums {
                n: 3,
                sum: 6.0,
                sum_squares: 14.0,
            },
            MeanSums {
                n: 2,
                sum: 9.0,
                sum_squares: 41.0,
            },
        ];
        let total: MeanSums = days.iter().copied().sum();
        assert_eq!(total, days[0] + days[1]);
        // Values 1, 2, 3, 4, 5: mean 3, sample variance 2.5.
        let summary = total.summary().unwrap();
        assert_eq!((summary.n, summary.mean, summary.variance), (5, 3.0, 2.5));
        let mut p = ProportionSums {
            n: 10,
            conversions: 3,
        };
        p += ProportionSums {
            n: 10,
            conversions: 2,
        };
        assert_eq!(p.summary().unwrap().variance, 0.25 * 0.75);
    }

    #[test]
    fn degenerate_inputs_are_errors() {
        let one = MeanSums {
            n: 1,
            sum: 1.0,
            sum_squares: 1.0,
        };
        assert_eq!(one.summary(), Err(StatsError::TooFewUnits { n: 1, min: 2 }));
        let nan = MeanSums {
            n: 3,
            sum: f64::NAN,
            sum_squares: 1.0,
        };
        assert!(matches!(
            nan.summary(),
            Err(StatsError::InvalidParameter { name: "sum", .. })
        ));
        let over = ProportionSums {
            n: 3,
            conversions: 4,
        };
        assert!(over.summary().is_err());
        let zero_d = RatioSums {
            n: 4,
            ..RatioSums::default()
        };
        assert_eq!(zero_d.summary(), Err(StatsError::ZeroDenominator));
    }

    #[test]
    fn constant_values_have_zero_variance_not_negative() {
        // 0.1 three times: rounding would give a tiny negative variance.
        let sums = MeanSums {
            n: 3,
            sum: 0.1 + 0.1 + 0.1,
            sum_squares: 0.01 + 0.01 + 0.01,
        };
        assert!(sums.summary().unwrap().variance >= 0.0);
    }
}
