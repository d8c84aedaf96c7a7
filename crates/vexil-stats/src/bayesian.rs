//! The Bayesian view (`analysis.md` §4): a Gaussian likelihood on the effect, `N(Δ, SE²)`, with
//! a flat prior (the default) or a proper normal prior, giving a normal posterior and from it the
//! chance to win, a credible interval and the risk (expected loss) of choosing each arm.

use serde::{Deserialize, Serialize};

use crate::dist::{normal_cdf, normal_inv_sf, normal_pdf};
use crate::effect::Effect;
use crate::error::{finite, open_unit, positive, StatsError};
use crate::frequentist::{Direction, Interval};

/// The prior on the effect.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Prior {
    /// Improper flat prior: the posterior is the likelihood.
    Flat,
    /// A proper normal prior on the effect (on the relative effect for a relative one).
    Normal {
        /// Prior mean.
        mean: f64,
        /// Prior variance (positive).
        variance: f64,
    },
}

/// The expected loss of shipping each arm: what is given up, on average, if the other arm is
/// in fact better.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Risk {
    /// Risk of keeping the control: `E[max(Δ, 0)]`.
    pub control: f64,
    /// Risk of shipping the treatment: `E[max(−Δ, 0)]`.
    pub treatment: f64,
}

/// The posterior of the effect and what the results page reads from it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BayesianResult {
    /// Posterior mean.
    pub mean: f64,
    /// Posterior standard deviation.
    pub sd: f64,
    /// `P(Δ > 0)`: the chance the treatment beats the control (for a metric that should
    /// increase; see [`BayesianResult::in_direction`]).
    pub chance_to_win: f64,
    /// The central credible interval at level `1 − α`.
    pub interval: Interval,
    /// Expected loss of each choice.
    pub risk: Risk,
}

impl BayesianResult {
    /// The result as seen by a metric whose desired direction is `direction`: for
    /// [`Direction::Decrease`] winning means `Δ < 0`, so the chance to win is `P(Δ < 0)` and
    /// the risks swap (shipping a treatment that raises the metric is the loss).
    pub fn in_direction(self, direction: Direction) -> Self {
        match direction {
            Direction::Increase => self,
            Direction::Decrease => Self {
                chance_to_win: 1.0 - self.chance_to_win,
                risk: Risk {
                    control: self.risk.treatment,
                    treatment: self.risk.control,
                },
                ..self
            },
        }
    }
}

/// The Bayesian view of `effect` under `prior`, with a `1 − alpha` credible interval.
///
/// With a normal prior `N(m, τ²)` the posterior is `N((Δ/SE² + m/τ²)/(1/SE² + 1/τ²),
/// 1/(1/SE² + 1/τ²))`; with a flat prior it is `N(Δ, SE²)`.
pub fn bayesian(effect: &Effect, prior: Prior, alpha: f64) -> Result<BayesianResult, StatsError> {
    open_unit("alpha", alpha, 1.0)?;
    let data_precision = effect.se.powi(-2);
    let (mean, variance) = match prior {
        Prior::Flat => (effect.estimate, effect.se * effect.se),
        Prior::Normal { mean, variance } => {
            finite("prior mean", mean)?;
            positive("prior variance", variance)?;
            let precision = data_precision + 1.0 / variance;
            (
                (effect.estimate * data_precision + mean / variance) / precision,
                1.0 / precision,
            )
        }
    };
    let sd = variance.sqrt();
    let z = normal_inv_sf(alpha / 2.0);
    Ok(BayesianResult {
        mean,
        sd,
        chance_to_win: normal_cdf(mean / sd),
        interval: Interval {
            lower: mean - z * sd,
            upper: mean + z * sd,
        },
        risk: risk(mean, sd)?,
    })
}

/// The risk of each arm when the effect is `N(mean, sd²)`:
///
/// ```text
/// control   = E[max(Δ, 0)]  = mean·Φ(mean/sd) + sd·φ(mean/sd)
/// treatment = E[max(−Δ, 0)] = sd·φ(mean/sd) − mean·Φ(−mean/sd)
/// ```
///
/// Each is computed on its own rather than as the other minus the mean, so the smaller one
/// keeps most of its digits when the effect is clear (13 of them at `mean/sd = 8`); both are
/// kept at or above 0 against rounding.
pub fn risk(mean: f64, sd: f64) -> Result<Risk, StatsError> {
    finite("mean", mean)?;
    if sd == 0.0 {
        return Err(StatsError::ZeroVariance);
    }
    positive("sd", sd)?;
    let z = mean / sd;
    let density = sd * normal_pdf(z);
    Ok(Risk {
        control: (mean * normal_cdf(z) + density).max(0.0),
        treatment: (density - mean * normal_cdf(-z)).max(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risks_differ_by_the_mean_and_mirror() {
        let r = risk(0.1, 0.05).unwrap();
        assert!((r.control - r.treatment - 0.1).abs() < 1e-15);
        let m = risk(-0.1, 0.05).unwrap();
        assert!((m.control - r.treatment).abs() < 1e-15);
        assert!((m.treatment - r.control).abs() < 1e-15);
        // A clear effect keeps the small risk's digits (reference values: mpmath, 40 digits).
        for (mean, sd, want) in [
            (1.0, 0.25, 1.786_314_608_101_416_7e-6),
            (2.0, 0.25, 1.887_565_602_986_624_7e-17),
        ] {
            let got = risk(mean, sd).unwrap().treatment;
            assert!((got / want - 1.0).abs() < 1e-10, "{mean}, {sd}: {got:e}");
        }
        assert_eq!(risk(0.1, 0.0), Err(StatsError::ZeroVariance));
    }

    #[test]
    fn direction_flips_chance_and_risk() {
        let effect = Effect::new(0.05, 0.03, 100.0, 200).unwrap();
        let up = bayesian(&effect, Prior::Flat, 0.05).unwrap();
        let down = up.in_direction(Direction::Decrease);
        assert!((up.chance_to_win + down.chance_to_win - 1.0).abs() < 1e-15);
        assert_eq!(down.risk.treatment, up.risk.control);
        assert_eq!(down.interval, up.interval);
    }

    #[test]
    fn prior_is_checked() {
        let effect = Effect::new(0.05, 0.03, 100.0, 200).unwrap();
        let bad = Prior::Normal {
            mean: 0.0,
            variance: 0.0,
        };
        assert!(bayesian(&effect, bad, 0.05).is_err());
    }
}
