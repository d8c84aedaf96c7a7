//! Sample ratio mismatch (`analysis.md` §4): are units reaching the variants in the proportions
//! the configured weights say? A mismatch means assignment or exposure logging is broken and
//! the results cannot be trusted, so the page warns above them.
//!
//! Two checks: Pearson's χ² goodness of fit on the totals (flagged below
//! [`SRM_THRESHOLD`]), and a sequential one that stays valid when it is looked at every day.

use serde::{Deserialize, Serialize};

use crate::dist::chi2_sf;
use crate::error::{positive, StatsError};
use statrs::function::gamma::ln_gamma;

/// The p-value below which a sample ratio mismatch is flagged.
pub const SRM_THRESHOLD: f64 = 0.001;

/// The default concentration of the sequential check's Dirichlet prior (centred on the
/// configured weights): large, so it looks for small imbalances, as GrowthBook's default.
pub const DEFAULT_SRM_CONCENTRATION: f64 = 10_000.0;

/// Pearson's χ² test of the observed units per variant against the weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Srm {
    /// `Σ (observed − expected)²/expected`.
    pub statistic: f64,
    /// `K − 1`.
    pub dof: u32,
    /// `χ²_sf(statistic, K − 1)`.
    pub p_value: f64,
    /// `p_value < SRM_THRESHOLD`.
    pub mismatch: bool,
}

/// Checks the arguments and returns the weights normalized to sum to 1.
fn null_probabilities(observed: &[u64], weights: &[f64]) -> Result<Vec<f64>, StatsError> {
    if observed.len() != weights.len() {
        return Err(StatsError::Length {
            what: "weights",
            expected: observed.len(),
            got: weights.len(),
        });
    }
    if observed.len() < 2 {
        return Err(StatsError::Length {
            what: "variants",
            expected: 2,
            got: observed.len(),
        });
    }
    for &w in weights {
        positive("weight", w)?;
    }
    let total: f64 = weights.iter().sum();
    Ok(weights.iter().map(|w| w / total).collect())
}

/// Pearson's χ² goodness of fit of `observed` units per variant against `weights` (positive,
/// normalized here). With no units at all there is no evidence of a mismatch: `p = 1`.
pub fn srm(observed: &[u64], weights: &[f64]) -> Result<Srm, StatsError> {
    let probabilities = null_probabilities(observed, weights)?;
    let total: f64 = observed.iter().map(|&o| o as f64).sum();
    let dof = (observed.len() - 1) as u32;
    if total == 0.0 {
        return Ok(Srm {
            statistic: 0.0,
            dof,
            p_value: 1.0,
            mismatch: false,
        });
    }
    let statistic: f64 = observed
        .iter()
        .zip(&probabilities)
        .map(|(&o, &p)| {
            let expected = total * p;
            (o as f64 - expected).powi(2) / expected
        })
        .sum();
    let p_value = chi2_sf(statistic, f64::from(dof));
    Ok(Srm {
        statistic,
        dof,
        p_value,
        mismatch: p_value < SRM_THRESHOLD,
    })
}

/// The always-valid SRM p-value at one look, from the cumulative units per variant so far.
///
/// The Bayes factor of a Dirichlet-multinomial alternative (prior mean the weights,
/// `concentration` its strength) against the multinomial with the configured weights
/// (Lindon and Malek, "Anytime-valid inference for multinomial count data", 2022):
///
/// ```text
/// ln BF = ln B(α + x) − ln B(α) − Σ xᵢ ln pᵢ,   α = concentration · p,   B(v) = ΠΓ(vᵢ)/Γ(Σvᵢ)
/// ```
///
/// It depends only on the totals, and is a martingale under the null, so `min(1, 1/BF)` kept
/// as a [`running_minimum`](crate::running_minimum) over daily looks is a p-value that
/// continuous monitoring does not invalidate.
pub fn srm_sequential(
    observed: &[u64],
    weights: &[f64],
    concentration: f64,
) -> Result<f64, StatsError> {
    let probabilities = null_probabilities(observed, weights)?;
    positive("concentration", concentration)?;
    let prior = probabilities.iter().map(|p| concentration * p);
    let posterior = observed
        .iter()
        .zip(&probabilities)
        .map(|(&x, p)| concentration * p + x as f64);
    let null: f64 = observed
        .iter()
        .zip(&probabilities)
        .map(|(&x, p)| x as f64 * p.ln())
        .sum();
    let ln_bf = ln_beta(posterior) - ln_beta(prior) - null;
    Ok((-ln_bf).exp().min(1.0))
}

/// `ln B(v) = Σ ln Γ(vᵢ) − ln Γ(Σ vᵢ)`.
fn ln_beta(v: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut ln) = (0.0, 0.0);
    for x in v {
        sum += x;
        ln += ln_gamma(x);
    }
    ln - ln_gamma(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_traffic_is_no_mismatch() {
        let even = srm(&[5000, 5000], &[1.0, 1.0]).unwrap();
        assert_eq!(
            (even.statistic, even.p_value, even.mismatch),
            (0.0, 1.0, false)
        );
        // Weights are normalized: 1:3 is 0.25/0.75.
        let quarter = srm(&[250, 750], &[1.0, 3.0]).unwrap();
        assert_eq!(quarter.statistic, 0.0);
        let none = srm(&[0, 0, 0], &[1.0, 1.0, 1.0]).unwrap();
        assert_eq!(none.p_value, 1.0);
        assert_eq!(
            srm_sequential(&[5000, 5000], &[0.5, 0.5], 1e4).unwrap(),
            1.0
        );
    }

    #[test]
    fn skewed_traffic_is_flagged_by_both_checks() {
        let skew = srm(&[1000, 1200], &[0.5, 0.5]).unwrap();
        assert!(skew.mismatch);
        assert_eq!(skew.dof, 1);
        let sequential = srm_sequential(&[10_000, 11_000], &[0.5, 0.5], 1e4).unwrap();
        assert!(sequential < SRM_THRESHOLD, "p = {sequential}");
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(srm(&[1, 2], &[0.5]).is_err());
        assert!(srm(&[1], &[1.0]).is_err());
        assert!(srm(&[1, 2], &[0.5, 0.0]).is_err());
        assert!(srm_sequential(&[1, 2], &[0.5, 0.5], 0.0).is_err());
    }
}
