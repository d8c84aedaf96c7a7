//! Power and duration (`analysis.md` §4): from the control's mean and variance and the traffic,
//! the power for a relative effect, the minimum detectable effect now, and the days until the
//! experiment reaches a target power, for the fixed-horizon test and the sequential one; and
//! sample sizes with G*Power's conventions.
//!
//! Power and MDE use the normal approximation on the relative effect (GrowthBook's formulas,
//! which the vectors pin), with both arms at the control's variance and the treatment's mean at
//! `μ(1 + effect)`. For the sequential test the effect's variance is inflated by
//! `(z_seq/z*)²`, where `z_seq` is the sequential half-width in standard errors at `n` units of
//! the compared pair (`n = 2·n_total/arms`).

use serde::{Deserialize, Serialize};

use crate::dist::{noncentral_t_cdf, normal_cdf, normal_inv_sf, normal_sf, t_inv_sf};
use crate::error::{computed, finite, open_unit, positive, StatsError};
use crate::sequential::{variance_inflation, DEFAULT_TUNING};

/// The days [`days_to_power`] looks ahead before it says the power is out of reach.
pub const MAX_DAYS: u32 = 3650;

/// The control's per-unit mean and variance (for a conversion metric, `p` and `p(1 − p)`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Mean of the per-unit value (not zero: effects are relative).
    pub mean: f64,
    /// Per-unit variance (positive).
    pub variance: f64,
}

/// How the experiment is analysed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerSettings {
    /// Significance level of the two-sided test.
    pub alpha: f64,
    /// Number of variants, control included; traffic is split evenly.
    pub arms: u32,
    /// `Some(N*)` for the sequential test with that tuning, `None` for the fixed horizon.
    pub sequential: Option<f64>,
}

impl Default for PowerSettings {
    /// α = 0.05, two arms, the sequential test with `N* = 5000` (Amplitude's default test).
    fn default() -> Self {
        Self {
            alpha: 0.05,
            arms: 2,
            sequential: Some(DEFAULT_TUNING),
        }
    }
}

impl PowerSettings {
    fn check(&self) -> Result<(), StatsError> {
        open_unit("alpha", self.alpha, 1.0)?;
        if self.arms < 2 {
            return Err(StatsError::InvalidParameter {
                name: "arms",
                value: f64::from(self.arms),
                expected: "at least 2",
            });
        }
        if let Some(tuning) = self.sequential {
            positive("tuning", tuning)?;
        }
        Ok(())
    }

    /// The sequential inflation of the effect's variance at `n_total` units (1 for a fixed
    /// horizon).
    fn inflation(&self, n_total: f64) -> f64 {
        match self.sequential {
            Some(tuning) => {
                variance_inflation(2.0 * n_total / f64::from(self.arms), self.alpha, tuning)
            }
            None => 1.0,
        }
    }
}

impl Baseline {
    fn check(&self) -> Result<(), StatsError> {
        finite("mean", self.mean)?;
        if self.mean == 0.0 {
            return Err(StatsError::ZeroControlMean);
        }
        positive("variance", self.variance)?;
        Ok(())
    }
}

/// The power of the two-sided test to detect `relative_effect` with `n_total` units over all
/// arms: `Φ̄(z* − Δ/SE) + Φ(−z* − Δ/SE)`, where
/// `SE² = v/(μ²·nₐ) + v·μ²(1 + Δ)²/(μ⁴·nₐ)` at `nₐ = n_total/arms` units per arm (times the
/// sequential inflation).
pub fn power(
    baseline: Baseline,
    relative_effect: f64,
    n_total: f64,
    settings: PowerSettings,
) -> Result<f64, StatsError> {
    baseline.check()?;
    settings.check()?;
    finite("relative_effect", relative_effect)?;
    positive("n_total", n_total)?;
    computed(
        "power",
        power_unchecked(baseline, relative_effect, n_total, settings),
    )
}

fn power_unchecked(baseline: Baseline, effect: f64, n_total: f64, settings: PowerSettings) -> f64 {
    let n_arm = n_total / f64::from(settings.arms);
    let (m, v) = (baseline.mean, baseline.variance);
    // v/(μ²nₐ) + v·μ²(1 + Δ)²/(μ⁴nₐ), written without μ⁴ (which underflows for small means).
    let variance =
        v * (1.0 + (1.0 + effect).powi(2)) / (m * m * n_arm) * settings.inflation(n_total);
    // No effect is never detected beyond α, even when the variance underflows to zero.
    let standardized = if effect == 0.0 {
        0.0
    } else {
        effect / variance.sqrt()
    };
    let z = normal_inv_sf(settings.alpha / 2.0);
    normal_sf(z - standardized) + normal_cdf(-z - standardized)
}

/// The minimum relative effect detectable with `target_power` at `n_total` units.
///
/// It solves `|Δ|/SE(Δ) = z_{1−α/2} + z_{power}` for Δ > 0 (one tail, as the usual MDE), which
/// with the treatment's variance at the control's is the quadratic
/// `(1 − z²σ²/μ²)·x² − 2μ·x + μ² − z²σ² = 0` in the treated mean `x`, `σ² = v·inflation/nₐ`.
/// [`StatsError::Unreachable`] when there are too few units for any effect
/// (`nₐ ≤ v·z²/μ²`).
pub fn mde(
    baseline: Baseline,
    target_power: f64,
    n_total: f64,
    settings: PowerSettings,
) -> Result<f64, StatsError> {
    baseline.check()?;
    settings.check()?;
    open_unit("power", target_power, 1.0)?;
    positive("n_total", n_total)?;
    let n_arm = n_total / f64::from(settings.arms);
    let z = normal_inv_sf(settings.alpha / 2.0) + normal_inv_sf(1.0 - target_power);
    let m = baseline.mean;
    let v = baseline.variance * settings.inflation(n_total);
    if n_arm <= v * z * z / (m * m) {
        return Err(StatsError::Unreachable);
    }
    let sigma2 = v / n_arm;
    let a = 1.0 - z * z * sigma2 / (m * m);
    let b = -2.0 * m;
    let c = m * m - z * z * sigma2;
    let root = (-b + (b * b - 4.0 * a * c).sqrt()) / (2.0 * a);
    computed("mde", (root - m) / m)
}

/// The days (from now) until the test reaches `target_power` for `relative_effect`, with
/// `units_now` units already in and `units_per_day` more each day; 0 if it already has.
/// `None` when it is not reached within [`MAX_DAYS`].
///
/// Power grows with the units for both tests (for the sequential one because the inflation
/// grows only like `ln n`), so the days are found by bisection.
pub fn days_to_power(
    baseline: Baseline,
    relative_effect: f64,
    target_power: f64,
    units_now: u64,
    units_per_day: f64,
    settings: PowerSettings,
) -> Result<Option<u32>, StatsError> {
    baseline.check()?;
    settings.check()?;
    finite("relative_effect", relative_effect)?;
    open_unit("power", target_power, 1.0)?;
    if !(units_per_day.is_finite() && units_per_day >= 0.0) {
        return Err(StatsError::InvalidParameter {
            name: "units_per_day",
            value: units_per_day,
            expected: "finite and not negative",
        });
    }
    let reached = |days: u32| {
        let n = units_now as f64 + f64::from(days) * units_per_day;
        n > 0.0 && power_unchecked(baseline, relative_effect, n, settings) >= target_power
    };
    if reached(0) {
        return Ok(Some(0));
    }
    if !reached(MAX_DAYS) {
        return Ok(None);
    }
    let (mut lo, mut hi) = (0, MAX_DAYS);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if reached(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(Some(hi))
}

/// The largest per-arm sample size the searches consider.
const MAX_PER_ARM: u64 = 1 << 50;

/// The smallest `n` in `[1, MAX_PER_ARM]` with `reaches(n)`, for a monotone `reaches`.
fn smallest(reaches: impl Fn(u64) -> bool, guess: u64) -> Result<u64, StatsError> {
    let mut hi = guess.clamp(2, MAX_PER_ARM);
    while !reaches(hi) {
        if hi >= MAX_PER_ARM {
            return Err(StatsError::Unreachable);
        }
        hi = (hi * 2).min(MAX_PER_ARM);
    }
    let mut lo = 1;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if reaches(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

fn check_design(alpha: f64, target_power: f64, arms: u32) -> Result<(), StatsError> {
    open_unit("alpha", alpha, 1.0)?;
    open_unit("power", target_power, 1.0)?;
    if arms < 2 {
        return Err(StatsError::InvalidParameter {
            name: "arms",
            value: f64::from(arms),
            expected: "at least 2",
        });
    }
    Ok(())
}

/// Total units (`arms ×` the per-arm size) for a two-sided two-sample t test of means to detect
/// an absolute `difference` with per-unit `variance`, as G*Power computes it: the smallest
/// per-arm `n` whose exact power under the noncentral t (`ν = 2n − 2`, `δ = |d|·√(n/2)`,
/// `d = difference/σ`), counting both tails, reaches `target_power`. Every treatment is
/// compared with the control at `alpha` (pass a corrected α to correct).
pub fn sample_size_means(
    difference: f64,
    variance: f64,
    alpha: f64,
    target_power: f64,
    arms: u32,
) -> Result<u64, StatsError> {
    check_design(alpha, target_power, arms)?;
    positive("variance", variance)?;
    positive("|difference|", difference.abs())?;
    let d = difference.abs() / variance.sqrt();
    let reaches = |n: u64| {
        if n < 2 {
            return false;
        }
        let df = 2.0 * n as f64 - 2.0;
        let delta = d * (n as f64 / 2.0).sqrt();
        let critical = t_inv_sf(alpha / 2.0, df);
        let power =
            1.0 - noncentral_t_cdf(critical, df, delta) + noncentral_t_cdf(-critical, df, delta);
        power >= target_power
    };
    let z = normal_inv_sf(alpha / 2.0) + normal_inv_sf(1.0 - target_power);
    let guess = (2.0 * z * z / (d * d)).ceil().min(MAX_PER_ARM as f64) as u64;
    Ok(smallest(reaches, guess)? * u64::from(arms))
}

/// Total units (`arms ×` the per-arm size) for a two-sided z test of two proportions to detect
/// an absolute `difference` from `rate`, as G*Power computes it: the pooled variance under the
/// null and the unpooled one under the alternative, both tails of the power counted.
pub fn sample_size_proportions(
    rate: f64,
    difference: f64,
    alpha: f64,
    target_power: f64,
    arms: u32,
) -> Result<u64, StatsError> {
    check_design(alpha, target_power, arms)?;
    open_unit("rate", rate, 1.0)?;
    let treated = rate + difference;
    open_unit("rate + difference", treated, 1.0)?;
    positive("|difference|", difference.abs())?;
    let pooled = (rate + treated) / 2.0;
    let null_var = 2.0 * pooled * (1.0 - pooled);
    let alt_var = rate * (1.0 - rate) + treated * (1.0 - treated);
    let z = normal_inv_sf(alpha / 2.0);
    let gap = difference.abs();
    let reaches = |n: u64| {
        let n = n as f64;
        let (se0, se1) = ((null_var / n).sqrt(), (alt_var / n).sqrt());
        normal_sf((z * se0 - gap) / se1) + normal_cdf((-z * se0 - gap) / se1) >= target_power
    };
    let zb = z + normal_inv_sf(1.0 - target_power);
    let guess = (zb * zb * alt_var / (gap * gap))
        .ceil()
        .min(MAX_PER_ARM as f64) as u64;
    Ok(smallest(reaches, guess)? * u64::from(arms))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cohen's (1988) tables and G*Power: per-group sizes of the two-sided two-sample t test at
    /// α = 0.05 for small, medium and large effects.
    #[test]
    fn t_test_sample_sizes_match_published_tables() {
        let table = [
            (0.5, 0.80, 64),
            (0.5, 0.95, 105),
            (0.8, 0.80, 26),
            (0.2, 0.80, 394),
        ];
        for (d, power, per_group) in table {
            assert_eq!(
                sample_size_means(d, 1.0, 0.05, power, 2).unwrap(),
                2 * per_group,
                "d = {d}, power = {power}"
            );
        }
    }

    #[test]
    fn more_units_never_less_power() {
        let baseline = Baseline {
            mean: 0.1,
            variance: 0.09,
        };
        for sequential in [None, Some(DEFAULT_TUNING)] {
            let settings = PowerSettings {
                sequential,
                ..PowerSettings::default()
            };
            let mut last = 0.0;
            for n in [200.0, 1e3, 1e4, 1e5, 1e6, 1e7] {
                let p = power(baseline, 0.02, n, settings).unwrap();
                assert!(p >= last, "{sequential:?} {n}: {p} < {last}");
                last = p;
            }
        }
    }

    #[test]
    fn days_to_power_agrees_with_power() {
        let baseline = Baseline {
            mean: 0.1,
            variance: 0.09,
        };
        let settings = PowerSettings::default();
        let days = days_to_power(baseline, 0.05, 0.8, 0, 5000.0, settings)
            .unwrap()
            .unwrap();
        let at = |d: u32| power(baseline, 0.05, f64::from(d) * 5000.0, settings).unwrap();
        assert!(at(days) >= 0.8 && at(days - 1) < 0.8, "{days}");
        assert_eq!(
            days_to_power(baseline, 0.05, 0.8, 10_000_000, 5000.0, settings),
            Ok(Some(0))
        );
        assert_eq!(
            days_to_power(baseline, 0.05, 0.8, 100, 0.0, settings),
            Ok(None)
        );
    }

    #[test]
    fn mde_is_where_one_tail_reaches_the_power() {
        let baseline = Baseline {
            mean: 10.0,
            variance: 400.0,
        };
        let settings = PowerSettings {
            sequential: None,
            ..PowerSettings::default()
        };
        let effect = mde(baseline, 0.8, 100_000.0, settings).unwrap();
        // The two-tailed power at the MDE is the target plus the (tiny) far tail.
        let p = power(baseline, effect, 100_000.0, settings).unwrap();
        assert!((p - 0.8).abs() < 1e-6, "{p}");
        assert_eq!(
            mde(baseline, 0.8, 10.0, settings),
            Err(StatsError::Unreachable)
        );
    }
}
