//! The fixed-horizon Welch t test (`analysis.md` §4) and the types every frequentist test
//! answers with: [`Alternative`], [`Interval`], [`TestResult`].

use serde::{Deserialize, Serialize};

use crate::dist::{t_inv_sf, t_sf};
use crate::effect::Effect;
use crate::error::{open_unit, StatsError};

/// The alternative hypothesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Alternative {
    /// The effect differs from zero.
    TwoSided,
    /// The treatment is greater than the control (a one-sided test).
    Greater,
    /// The treatment is lesser than the control (a one-sided test; a guardrail's "no harm"
    /// test for a metric that should not drop is `Greater`'s mirror).
    Lesser,
}

/// The direction a metric should move in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Higher is better.
    Increase,
    /// Lower is better.
    Decrease,
}

/// A confidence interval. A one-sided test's interval is open on one side: that bound is
/// `f64::INFINITY` or `f64::NEG_INFINITY` (never NaN).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

impl Interval {
    /// `estimate ± half_width` on the sides the alternative tests.
    pub(crate) fn around(estimate: f64, half_width: f64, alternative: Alternative) -> Self {
        match alternative {
            Alternative::TwoSided => Self {
                lower: estimate - half_width,
                upper: estimate + half_width,
            },
            Alternative::Greater => Self {
                lower: estimate - half_width,
                upper: f64::INFINITY,
            },
            Alternative::Lesser => Self {
                lower: f64::NEG_INFINITY,
                upper: estimate + half_width,
            },
        }
    }
}

/// What a frequentist test (fixed-horizon or sequential) concludes about one effect.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// The effect's point estimate.
    pub estimate: f64,
    /// Its standard error.
    pub se: f64,
    /// The confidence interval at the test's level.
    pub interval: Interval,
    /// The p-value (for a sequential test, at this look; keep the running minimum across
    /// looks with [`running_minimum`](crate::running_minimum)).
    pub p_value: f64,
}

/// Whether a result is significant, and which way, for a metric's desired direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The interval excludes zero on the desired side.
    Better,
    /// The interval excludes zero on the wrong side.
    Worse,
    /// The interval contains zero.
    Inconclusive,
}

impl TestResult {
    /// Significance in the metric's desired direction, read from the interval (which excludes
    /// zero exactly when the p-value is below the test's α).
    pub fn outcome(&self, direction: Direction) -> Outcome {
        let up = self.interval.lower > 0.0;
        let down = self.interval.upper < 0.0;
        match (direction, up, down) {
            (Direction::Increase, true, _) | (Direction::Decrease, _, true) => Outcome::Better,
            (Direction::Increase, _, true) | (Direction::Decrease, true, _) => Outcome::Worse,
            _ => Outcome::Inconclusive,
        }
    }
}

/// Welch's t test of `effect` at level `alpha` (in (0, 1)).
///
/// With `t = Δ/SE` and the effect's Welch–Satterthwaite degrees of freedom: two-sided
/// `p = 2·(1 − T(|t|))` and `CI = Δ ± T⁻¹(1 − α/2)·SE`; "greater" `p = 1 − T(t)` and
/// `CI = [Δ − T⁻¹(1 − α)·SE, ∞)`; "lesser" `p = T(t)` and `CI = (−∞, Δ + T⁻¹(1 − α)·SE]`.
pub fn welch_test(
    effect: &Effect,
    alternative: Alternative,
    alpha: f64,
) -> Result<TestResult, StatsError> {
    open_unit("alpha", alpha, 1.0)?;
    let t = effect.z();
    let (p_value, tail) = match alternative {
        Alternative::TwoSided => ((2.0 * t_sf(t.abs(), effect.dof)).min(1.0), alpha / 2.0),
        Alternative::Greater => (t_sf(t, effect.dof), alpha),
        Alternative::Lesser => (t_sf(-t, effect.dof), alpha),
    };
    let half_width = t_inv_sf(tail, effect.dof) * effect.se;
    Ok(TestResult {
        estimate: effect.estimate,
        se: effect.se,
        interval: Interval::around(effect.estimate, half_width, alternative),
        p_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(lower: f64, upper: f64) -> TestResult {
        TestResult {
            estimate: 0.0,
            se: 1.0,
            interval: Interval { lower, upper },
            p_value: 0.5,
        }
    }

    #[test]
    fn outcome_follows_the_desired_direction() {
        let table = [
            (0.1, 0.3, Direction::Increase, Outcome::Better),
            (0.1, 0.3, Direction::Decrease, Outcome::Worse),
            (-0.3, -0.1, Direction::Decrease, Outcome::Better),
            (-0.3, -0.1, Direction::Increase, Outcome::Worse),
            (-0.1, 0.1, Direction::Increase, Outcome::Inconclusive),
            (0.1, f64::INFINITY, Direction::Increase, Outcome::Better),
            (
                f64::NEG_INFINITY,
                0.2,
                Direction::Decrease,
                Outcome::Inconclusive,
            ),
        ];
        for (lower, upper, direction, want) in table {
            assert_eq!(
                result(lower, upper).outcome(direction),
                want,
                "[{lower}, {upper}] {direction:?}"
            );
        }
    }

    #[test]
    fn alpha_is_checked() {
        let effect = Effect::new(1.0, 1.0, 10.0, 12).unwrap();
        for alpha in [0.0, 1.0, f64::NAN, -0.1] {
            assert!(welch_test(&effect, Alternative::TwoSided, alpha).is_err());
        }
    }
}
