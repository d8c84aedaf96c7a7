//! The sequential test (`analysis.md` §4): the normal-mixture confidence sequence, equivalently
//! mSPRT with a normal mixing distribution. Its interval and p-value stay valid however often the
//! results are looked at, so the results page can be read every day.
//!
//! With `n = nA + nB`, `s² = SE²·n`, tuning `N*` and `ρ = √((−2 ln α + ln(−2 ln α + 1))/N*)`:
//!
//! - two-sided half-width `s·√(2(nρ² + 1)·ln(√(nρ² + 1)/α)/(nρ)²)`;
//! - evidence `e = exp(ρ²·n·z²/(2(nρ² + 1)))/√(nρ² + 1)` with `z = Δ/SE`, and the always-valid
//!   p-value `min(1, 1/e)`, kept as a running minimum across looks ([`running_minimum`]);
//! - one-sided: ρ at `2α` and the half-width `s·√(2(nρ² + 1)/(nρ)²·ln(1 + √(nρ² + 1)/(2α)))`;
//!   the p-value is the smallest α whose one-sided interval excludes 0.

use crate::dist::normal_inv_sf;
use crate::effect::Effect;
use crate::error::{open_unit, positive, StatsError};
use crate::frequentist::{Alternative, Interval, TestResult};

/// The default tuning `N*`: the sample size at which the interval is narrowest relative to the
/// fixed-horizon one.
pub const DEFAULT_TUNING: f64 = 5000.0;

/// The p-value a one-sided sequential test answers when no α excludes 0 (the search stops just
/// short of 0.5, where ρ at 2α vanishes).
pub const ONE_SIDED_MAX_P: f64 = 0.4999;

/// The smallest α the one-sided p-value search considers.
const ONE_SIDED_MIN_P: f64 = 1e-300;

/// `ρ = √((−2 ln α + ln(−2 ln α + 1))/N*)`.
fn rho(alpha: f64, tuning: f64) -> f64 {
    let l = -2.0 * alpha.ln();
    ((l + (l + 1.0).ln()) / tuning).sqrt()
}

/// The two-sided half-width in units of `s` (`s = SE·√n`).
fn two_sided_width(n: f64, alpha: f64, tuning: f64) -> f64 {
    let r = rho(alpha, tuning);
    let a = n * r * r + 1.0;
    (2.0 * a * (a.sqrt() / alpha).ln() / (n * r).powi(2)).sqrt()
}

/// The one-sided half-width in units of `s`, ρ taken at `2α`.
fn one_sided_width(n: f64, alpha: f64, tuning: f64) -> f64 {
    let r = rho(2.0 * alpha, tuning);
    let a = n * r * r + 1.0;
    (2.0 * a / (n * r).powi(2) * (a.sqrt() / (2.0 * alpha)).ln_1p()).sqrt()
}

/// The sequential test of `effect` at level `alpha` with tuning `N*` ([`DEFAULT_TUNING`] by
/// default). `alpha` must lie in (0, 1), and in (0, 0.5) for a one-sided test.
pub fn sequential_test(
    effect: &Effect,
    alternative: Alternative,
    alpha: f64,
    tuning: f64,
) -> Result<TestResult, StatsError> {
    positive("tuning", tuning)?;
    let n = effect.units as f64;
    let s = effect.se * n.sqrt();
    let (half_width, p_value) = match alternative {
        Alternative::TwoSided => {
            open_unit("alpha", alpha, 1.0)?;
            let p = two_sided_p(effect.z(), n, alpha, tuning);
            (s * two_sided_width(n, alpha, tuning), p)
        }
        Alternative::Greater | Alternative::Lesser => {
            open_unit("alpha", alpha, 0.5)?;
            let toward = match alternative {
                Alternative::Lesser => -effect.estimate,
                _ => effect.estimate,
            };
            (
                s * one_sided_width(n, alpha, tuning),
                one_sided_p(toward / s, n, tuning),
            )
        }
    };
    Ok(TestResult {
        estimate: effect.estimate,
        se: effect.se,
        interval: Interval::around(effect.estimate, half_width, alternative),
        p_value,
    })
}

/// `min(1, 1/e)`, computed through `ln e` so that strong evidence gives 0, not an overflow.
/// ρ is the one of the test's α: the mixing distribution is fixed before the data.
fn two_sided_p(z: f64, n: f64, alpha: f64, tuning: f64) -> f64 {
    let r2 = rho(alpha, tuning).powi(2);
    let a = n * r2 + 1.0;
    let ln_e = r2 * n * z * z / (2.0 * a) - 0.5 * a.ln();
    (-ln_e).exp().min(1.0)
}

/// The smallest α whose one-sided interval excludes 0, for an effect of `toward` (in units of
/// `s`, positive when it points the tested way).
///
/// The half-width is not monotone in α: it narrows as α grows, then widens again as α nears
/// 0.5 (ρ at 2α goes to 0). So first find where it is narrowest (golden-section search on
/// ln α), then bisect only on the narrowing side; if even the narrowest interval contains 0 the
/// answer is [`ONE_SIDED_MAX_P`]. A bisection over the whole range could land on the widening
/// side and answer 0.4999 for a strong effect.
fn one_sided_p(toward: f64, n: f64, tuning: f64) -> f64 {
    if toward <= 0.0 {
        return ONE_SIDED_MAX_P;
    }
    let width = |ln_alpha: f64| one_sided_width(n, ln_alpha.exp(), tuning);
    let (lo, hi) = (ONE_SIDED_MIN_P.ln(), ONE_SIDED_MAX_P.ln());
    let narrowest = golden_section_min(width, lo, hi);
    if width(narrowest) >= toward {
        return ONE_SIDED_MAX_P;
    }
    if width(lo) < toward {
        return ONE_SIDED_MIN_P;
    }
    // width(a) ≥ toward > width(b), and width decreases on [a, b].
    let (mut a, mut b) = (lo, narrowest);
    for _ in 0..200 {
        let mid = 0.5 * (a + b);
        if width(mid) < toward {
            b = mid;
        } else {
            a = mid;
        }
        if b - a < 1e-13 {
            break;
        }
    }
    b.exp()
}

/// The minimum of a unimodal `f` on `[lo, hi]`.
fn golden_section_min(f: impl Fn(f64) -> f64, mut lo: f64, mut hi: f64) -> f64 {
    let ratio = (5.0_f64.sqrt() - 1.0) / 2.0;
    let mut c = hi - ratio * (hi - lo);
    let mut d = lo + ratio * (hi - lo);
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..200 {
        if hi - lo < 1e-12 {
            break;
        }
        if fc < fd {
            hi = d;
            d = c;
            fd = fc;
            c = hi - ratio * (hi - lo);
            fc = f(c);
        } else {
            lo = c;
            c = d;
            fc = fd;
            d = lo + ratio * (hi - lo);
            fd = f(d);
        }
    }
    0.5 * (lo + hi)
}

/// The running minimum of a sequence of p-values, one per daily cumulative look: the
/// sequential p-value shown on each day.
pub fn running_minimum(p_values: &[f64]) -> Vec<f64> {
    p_values
        .iter()
        .scan(1.0_f64, |min, &p| {
            *min = min.min(p);
            Some(*min)
        })
        .collect()
}

/// How much the sequential test widens the fixed-horizon two-sided interval at `n` units of the
/// compared pair, squared: `(z_seq/z*)²` with `z_seq = √n · two-sided half-width` and
/// `z* = Φ⁻¹(1 − α/2)`. Multiplying an effect's variance by it gives the variance that power
/// calculations use for the sequential test.
pub(crate) fn variance_inflation(n: f64, alpha: f64, tuning: f64) -> f64 {
    let z_seq = n.sqrt() * two_sided_width(n, alpha, tuning);
    (z_seq / normal_inv_sf(alpha / 2.0)).powi(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_minimum_never_rises() {
        assert_eq!(
            running_minimum(&[0.8, 0.3, 0.5, 0.04, 0.2]),
            vec![0.8, 0.3, 0.3, 0.04, 0.04]
        );
        assert!(running_minimum(&[]).is_empty());
    }

    #[test]
    fn one_sided_p_value_for_a_strong_effect_is_small() {
        // A plain bisection over [1e-5, 0.4999] can land where the interval widens again and
        // answer 0.4999; the search must find the small α instead.
        let effect = Effect::new(0.5, 0.05, 5000.0, 6000).unwrap();
        let greater = sequential_test(&effect, Alternative::Greater, 0.05, DEFAULT_TUNING).unwrap();
        assert!(greater.p_value < 1e-6, "p = {}", greater.p_value);
        let lesser = sequential_test(&effect, Alternative::Lesser, 0.05, DEFAULT_TUNING).unwrap();
        assert_eq!(lesser.p_value, ONE_SIDED_MAX_P);
    }

    #[test]
    fn one_sided_p_value_is_the_alpha_whose_bound_touches_zero() {
        let effect = Effect::new(0.3, 0.1, 5000.0, 6000).unwrap();
        let p = sequential_test(&effect, Alternative::Greater, 0.05, DEFAULT_TUNING)
            .unwrap()
            .p_value;
        assert!(p > 1e-6 && p < 0.4999, "p = {p}");
        let at = |alpha: f64| {
            sequential_test(&effect, Alternative::Greater, alpha, DEFAULT_TUNING)
                .unwrap()
                .interval
                .lower
        };
        assert!(at(p * 1.001) > 0.0 && at(p * 0.999) < 0.0);
    }

    #[test]
    fn strong_evidence_gives_zero_not_nan() {
        let effect = Effect::new(1.0, 1e-3, 1e6, 2_000_000).unwrap();
        let r = sequential_test(&effect, Alternative::TwoSided, 0.05, DEFAULT_TUNING).unwrap();
        assert_eq!(r.p_value, 0.0);
    }
}
