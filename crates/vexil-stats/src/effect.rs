//! Effects of a treatment against the control (`analysis.md` §4): absolute, and relative by the
//! delta method, each with its standard error and Welch–Satterthwaite degrees of freedom.

use serde::{Deserialize, Serialize};

use crate::error::StatsError;
use crate::sums::Summary;

/// Which difference to estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Difference {
    /// `μB − μA`.
    Absolute,
    /// `(μB − μA)/|μA|`, the one the results page shows and corrects.
    Relative,
}

/// An estimated effect of treatment B over control A: what every test takes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// The point estimate.
    pub estimate: f64,
    /// Its standard error (positive).
    pub se: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub dof: f64,
    /// Units in both arms together (`nA + nB`), the sequential test's `n`.
    pub units: u64,
}

impl Effect {
    /// An effect from its parts, checked: a finite estimate, a positive finite standard error,
    /// positive degrees of freedom and at least 2 units.
    pub fn new(estimate: f64, se: f64, dof: f64, units: u64) -> Result<Self, StatsError> {
        crate::error::finite("estimate", estimate)?;
        if se == 0.0 {
            return Err(StatsError::ZeroVariance);
        }
        crate::error::positive("se", se)?;
        crate::error::positive("dof", dof)?;
        if units < 2 {
            return Err(StatsError::TooFewUnits { n: units, min: 2 });
        }
        Ok(Self {
            estimate,
            se,
            dof,
            units,
        })
    }

    /// `estimate / se`.
    pub fn z(&self) -> f64 {
        self.estimate / self.se
    }
}

/// The effect of `treatment` over `control`:
///
/// - absolute: `Δ = μB − μA`, `Var = vB/nB + vA/nA`;
/// - relative: `Δ = (μB − μA)/|μA|`, `Var = vB/(nB·μA²) + vA·μB²/(nA·μA⁴)`.
///
/// The degrees of freedom are Welch–Satterthwaite's on the arms' variances of the mean.
pub fn effect(
    control: &Summary,
    treatment: &Summary,
    difference: Difference,
) -> Result<Effect, StatsError> {
    let (na, nb) = (control.n as f64, treatment.n as f64);
    let (ma, mb) = (control.mean, treatment.mean);
    let (va, vb) = (control.variance, treatment.variance);
    let (estimate, variance) = match difference {
        Difference::Absolute => (mb - ma, vb / nb + va / na),
        Difference::Relative => {
            if ma == 0.0 {
                return Err(StatsError::ZeroControlMean);
            }
            (
                (mb - ma) / ma.abs(),
                vb / (nb * ma * ma) + va * mb * mb / (na * ma.powi(4)),
            )
        }
    };
    let dof = welch_dof((va, control.n), (vb, treatment.n))?;
    Effect::new(estimate, variance.sqrt(), dof, control.n + treatment.n)
}

/// Welch–Satterthwaite: `(vA/nA + vB/nB)² / ((vA/nA)²/(nA − 1) + (vB/nB)²/(nB − 1))`.
pub(crate) fn welch_dof(a: (f64, u64), b: (f64, u64)) -> Result<f64, StatsError> {
    let part = |(v, n): (f64, u64)| {
        let n = n as f64;
        let w = v / n;
        (w, w * w / (n - 1.0))
    };
    let ((wa, da), (wb, db)) = (part(a), part(b));
    if wa + wb == 0.0 {
        return Err(StatsError::ZeroVariance);
    }
    Ok((wa + wb).powi(2) / (da + db))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_and_relative() {
        let a = Summary::new(100, 10.0, 4.0).unwrap();
        let b = Summary::new(100, 11.0, 4.0).unwrap();
        let abs = effect(&a, &b, Difference::Absolute).unwrap();
        assert_eq!(abs.estimate, 1.0);
        assert!((abs.se - 0.08_f64.sqrt()).abs() < 1e-15);
        // Equal variances and sizes: Welch's dof is 2n − 2.
        assert!((abs.dof - 198.0).abs() < 1e-9);
        let rel = effect(&a, &b, Difference::Relative).unwrap();
        assert!((rel.estimate - 0.1).abs() < 1e-15);
        let want = (4.0_f64 / (100.0 * 100.0) + 4.0 * 121.0 / (100.0 * 10_000.0)).sqrt();
        assert!((rel.se - want).abs() < 1e-15);
    }

    #[test]
    fn degenerate_effects_are_errors() {
        let zero = Summary::new(10, 0.0, 1.0).unwrap();
        let b = Summary::new(10, 1.0, 1.0).unwrap();
        assert_eq!(
            effect(&zero, &b, Difference::Relative),
            Err(StatsError::ZeroControlMean)
        );
        let flat_a = Summary::new(10, 1.0, 0.0).unwrap();
        let flat_b = Summary::new(10, 2.0, 0.0).unwrap();
        assert_eq!(
            effect(&flat_a, &flat_b, Difference::Absolute),
            Err(StatsError::ZeroVariance)
        );
        // One arm constant is fine: the other carries the variance (dof = nB − 1).
        let e = effect(&flat_a, &b, Difference::Absolute).unwrap();
        assert!((e.dof - 9.0).abs() < 1e-12);
    }
}
