//! CUPED variance reduction (`analysis.md` §4): the metric adjusted by its own pre-exposure
//! value, `Y − θX`, with `θ = Cov(Y, X)/Var(X)` estimated once on both arms' units taken as one
//! sample.
//!
//! θ comes from the combined sums (not an n-weighted mix of per-arm moments), so one θ serves
//! every arm and the adjustment cannot favour one of them. When the covariate does not vary
//! (`Var(X) = 0`, for example a new product with no pre-period) the analysis falls back to the
//! plain one, which is `θ = 0`.

use serde::{Deserialize, Serialize};

use crate::effect::{welch_dof, Difference, Effect};
use crate::error::StatsError;
use crate::sums::{covariance, variance, CupedSums, ValueKind};

/// A CUPED-adjusted effect and the θ used (0 when the analysis fell back to the plain one).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CupedEffect {
    /// The adjusted effect; test it like any other.
    pub effect: Effect,
    /// `Cov(Y, X)/Var(X)` on the combined sums; 0 when `Var(X) = 0`.
    pub theta: f64,
}

/// One arm's moments for CUPED.
struct Arm {
    n: f64,
    mean_y: f64,
    mean_x: f64,
    var_y: f64,
    var_x: f64,
    cov: f64,
}

impl Arm {
    fn new(s: &CupedSums, kind: ValueKind) -> Self {
        Self {
            n: s.n as f64,
            mean_y: s.sum / s.n as f64,
            mean_x: s.pre_sum / s.n as f64,
            var_y: variance(s.n, s.sum, s.sum_squares, kind),
            var_x: variance(s.n, s.pre_sum, s.pre_sum_squares, kind),
            cov: covariance(s.n, s.sum, s.pre_sum, s.cross, kind),
        }
    }

    fn adjusted_mean(&self, theta: f64) -> f64 {
        self.mean_y - theta * self.mean_x
    }

    /// `Var(Y − θX) = vY + θ²vX − 2θ·cov`, never below zero.
    fn adjusted_variance(&self, theta: f64) -> f64 {
        (self.var_y + theta * theta * self.var_x - 2.0 * theta * self.cov).max(0.0)
    }
}

/// θ on the two arms' combined sums, or 0 when the covariate has no variance.
pub fn cuped_theta(control: &CupedSums, treatment: &CupedSums, kind: ValueKind) -> f64 {
    let all = *control + *treatment;
    let var_x = variance(all.n, all.pre_sum, all.pre_sum_squares, kind);
    if var_x > 0.0 && var_x.is_finite() {
        covariance(all.n, all.sum, all.pre_sum, all.cross, kind) / var_x
    } else {
        0.0
    }
}

/// The CUPED-adjusted effect of `treatment` over `control`.
///
/// Adjusted means `Ȳ − θX̄` and variances `vY + θ²vX − 2θ·cov` per arm. For a relative effect
/// the baseline `|ȲA|` stays unadjusted and the control's term of the delta-method variance is
/// `(vYA·ȲB²/ȲA² − 2θ·covA·ȲB/ȲA + θ²·vXA)/(nA·ȲA²)`. The degrees of freedom are Welch's on
/// the adjusted variances. `kind` picks sample or population moments (binary metrics use
/// population moments throughout, θ included).
pub fn cuped_effect(
    control: &CupedSums,
    treatment: &CupedSums,
    kind: ValueKind,
    difference: Difference,
) -> Result<CupedEffect, StatsError> {
    control.check()?;
    treatment.check()?;
    let theta = cuped_theta(control, treatment, kind);
    let (a, b) = (Arm::new(control, kind), Arm::new(treatment, kind));
    let (va, vb) = (a.adjusted_variance(theta), b.adjusted_variance(theta));
    let diff = b.adjusted_mean(theta) - a.adjusted_mean(theta);
    let (estimate, var) = match difference {
        Difference::Absolute => (diff, vb / b.n + va / a.n),
        Difference::Relative => {
            let (ya, yb) = (a.mean_y, b.mean_y);
            if ya == 0.0 {
                return Err(StatsError::ZeroControlMean);
            }
            let control_term = (a.var_y * yb * yb / (ya * ya) - 2.0 * theta * a.cov * yb / ya
                + theta * theta * a.var_x)
                .max(0.0);
            (
                diff / ya.abs(),
                vb / (b.n * ya * ya) + control_term / (a.n * ya * ya),
            )
        }
    };
    let dof = welch_dof((va, control.n), (vb, treatment.n))?;
    let effect = Effect::new(estimate, var.sqrt(), dof, control.n + treatment.n)?;
    Ok(CupedEffect { effect, theta })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effect::effect;

    fn arm(values: &[(f64, f64)]) -> CupedSums {
        values
            .iter()
            .map(|&(y, x)| CupedSums {
                n: 1,
                sum: y,
                sum_squares: y * y,
                pre_sum: x,
                pre_sum_squares: x * x,
                cross: x * y,
            })
            .sum()
    }

    #[test]
    fn constant_covariate_falls_back_to_the_plain_analysis() {
        let a = arm(&[(1.0, 5.0), (2.0, 5.0), (4.0, 5.0)]);
        let b = arm(&[(2.0, 5.0), (3.0, 5.0), (6.0, 5.0)]);
        for difference in [Difference::Absolute, Difference::Relative] {
            let adjusted = cuped_effect(&a, &b, ValueKind::Continuous, difference).unwrap();
            assert_eq!(adjusted.theta, 0.0);
            let plain = effect(
                &a.metric().summary().unwrap(),
                &b.metric().summary().unwrap(),
                difference,
            )
            .unwrap();
            assert!((adjusted.effect.estimate - plain.estimate).abs() < 1e-15);
            assert!((adjusted.effect.se - plain.se).abs() < 1e-15);
        }
    }

    #[test]
    fn a_perfect_covariate_removes_the_noise() {
        // Y ≈ X + 1 in control, X + 2 in treatment: θ ≈ 1 and little noise is left.
        let a = arm(&[(2.0, 1.0), (4.2, 3.0), (8.0, 7.0), (2.9, 2.0)]);
        let b = arm(&[(3.0, 1.0), (5.1, 3.0), (8.9, 7.0), (4.0, 2.0)]);
        let theta = cuped_theta(&a, &b, ValueKind::Continuous);
        assert!(theta > 0.9 && theta < 1.1, "θ = {theta}");
        let plain = effect(
            &a.metric().summary().unwrap(),
            &b.metric().summary().unwrap(),
            Difference::Absolute,
        )
        .unwrap();
        let adjusted = cuped_effect(&a, &b, ValueKind::Continuous, Difference::Absolute).unwrap();
        assert!(adjusted.effect.se < plain.se / 2.0);
    }
}
