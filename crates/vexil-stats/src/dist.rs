//! The distribution functions the tests need: the standard normal, Student's t, χ² and the
//! noncentral t, built on `statrs`' special functions (the regularized incomplete gamma and beta
//! functions, `erfc_inv`, `ln_gamma`).
//!
//! `statrs` 0.18's `erfc` is off by up to 10⁻¹⁰ relative (0.479500122236 for 0.479500122187 at
//! 0.5), so the normal tail goes through its incomplete gamma instead, `erfc(u) = Q(½, u²)`,
//! which is good to about 10⁻¹⁴.
//!
//! `statrs` has no noncentral t, and its Student's t quantile loses accuracy past a few hundred
//! thousand degrees of freedom (its `inverse_cdf` gives 1.8266 instead of 1.9600 at 10⁷), as does
//! its incomplete beta, whose continued fraction stops after 140 terms. So this module computes
//! the t tail itself (the incomplete beta up to 10⁶ degrees of freedom, a normal approximation
//! above), inverts it by safeguarded Newton steps, and sums the noncentral t's Poisson mixture.
//!
//! Preconditions (finite `x`, positive degrees of freedom, probabilities in (0, 1)) are the
//! callers': the public functions of the crate check their inputs before they get here.

use std::f64::consts::{PI, SQRT_2};

use statrs::function::beta::checked_beta_reg;
use statrs::function::erf::erfc_inv;
use statrs::function::gamma::{checked_gamma_lr, checked_gamma_ur, ln_gamma};

/// Above this many degrees of freedom the t tail uses the normal approximation
/// `Φ̄(x(1 − 1/(4ν))/√(1 + x²/(2ν)))` (as R's `pt` does above 4·10⁵): its relative error is below
/// 10⁻⁹ there, where `statrs`' incomplete beta, cut off at 140 terms, drifts past 10⁻⁹.
const T_NORMAL_DF: f64 = 1e6;

/// Standard normal density.
pub fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * PI).sqrt()
}

/// Standard normal distribution function Φ(x).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / SQRT_2)
}

/// Standard normal upper tail 1 − Φ(x), accurate far into the tail.
pub fn normal_sf(x: f64) -> f64 {
    0.5 * erfc(x / SQRT_2)
}

/// The complementary error function: `Q(½, u²)` for `u ≥ 0`, `1 + P(½, u²)` below.
fn erfc(u: f64) -> f64 {
    if u.abs() < 1e-100 {
        // erfc(u) = 1 − 2u/√π + O(u³); u² would underflow the incomplete gamma's argument.
        1.0 - 2.0 * u / PI.sqrt()
    } else if u > 40.0 {
        0.0
    } else if u < -40.0 {
        2.0
    } else if u > 0.0 {
        checked_gamma_ur(0.5, u * u).unwrap_or(f64::NAN)
    } else {
        1.0 + checked_gamma_lr(0.5, u * u).unwrap_or(f64::NAN)
    }
}

/// The `z` with `1 − Φ(z) = q`, for `q` in (0, 1): `statrs`' `erfc_inv`, polished by two Newton
/// steps on the accurate tail.
pub fn normal_inv_sf(q: f64) -> f64 {
    if q > 0.5 {
        return -normal_inv_sf(1.0 - q);
    }
    let mut z = SQRT_2 * erfc_inv(2.0 * q);
    for _ in 0..2 {
        let density = normal_pdf(z);
        if density > 0.0 {
            z += (normal_sf(z) - q) / density;
        }
    }
    z
}

/// Student's t upper tail `P(T > x)` with `df` degrees of freedom.
pub fn t_sf(x: f64, df: f64) -> f64 {
    if df > T_NORMAL_DF {
        return normal_sf(large_df_z(x, df, 0.0));
    }
    let h = df / (df + x * x);
    // I_h(ν/2, 1/2) is the two-sided tail P(|T| > |x|).
    let two_tail = checked_beta_reg(df / 2.0, 0.5, h).unwrap_or(f64::NAN);
    if x > 0.0 {
        0.5 * two_tail
    } else {
        1.0 - 0.5 * two_tail
    }
}

/// For large ν, `P(T ≤ x) ≈ Φ((x(1 − 1/(4ν)) − δ)/√(1 + x²/(2ν)))`: with `T = (Z + δ)/S` and
/// `S = √(χ²ν/ν) ≈ N(1 − 1/(4ν), 1/(2ν))`, `Z + δ − xS` is nearly normal (Abramowitz and Stegun
/// 26.7.10; δ = 0 gives the central t). Past |x| = 10¹⁰⁰, where x² would overflow, the argument
/// is its limit `±(1 − 1/(4ν))·√(2ν)`.
fn large_df_z(x: f64, df: f64, delta: f64) -> f64 {
    let v = 1.0 / (4.0 * df);
    if x.abs() > 1e100 {
        x.signum() * (1.0 - v) / (2.0 * v).sqrt()
    } else {
        (x * (1.0 - v) - delta) / (1.0 + x * x * 2.0 * v).sqrt()
    }
}

/// Student's t density.
fn t_pdf(x: f64, df: f64) -> f64 {
    if df > T_NORMAL_DF {
        return normal_pdf(x);
    }
    (ln_gamma((df + 1.0) / 2.0)
        - ln_gamma(df / 2.0)
        - 0.5 * (df * PI).ln()
        - (df + 1.0) / 2.0 * (x * x / df).ln_1p())
    .exp()
}

/// The `x` with `P(T > x) = q` (Student's t with `df` degrees of freedom), for `q` in (0, 1).
///
/// Newton's method on the tail from the Cornish–Fisher start
/// `z + (z³ + z)/(4ν) + (5z⁵ + 16z³ + 3z)/(96ν²)` (Abramowitz and Stegun 26.7.5), kept inside a
/// bracket that bisection shrinks whenever a step would leave it, so it converges for one degree
/// of freedom as well as for ten million.
pub fn t_inv_sf(q: f64, df: f64) -> f64 {
    if q > 0.5 {
        return -t_inv_sf(1.0 - q, df);
    }
    if q == 0.5 {
        return 0.0;
    }
    let z = normal_inv_sf(q);
    let (z3, z5) = (z.powi(3), z.powi(5));
    let start = z + (z3 + z) / (4.0 * df) + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * df * df);
    // The answer is positive (q < 1/2); find an upper end whose tail is below q.
    let (mut lo, mut hi) = (0.0_f64, start.max(1.0));
    for _ in 0..2000 {
        if t_sf(hi, df) < q {
            break;
        }
        lo = hi;
        hi *= 2.0;
    }
    let mut x = start.clamp(lo, hi);
    for _ in 0..200 {
        let tail = t_sf(x, df);
        if tail > q {
            lo = x;
        } else {
            hi = x;
        }
        let newton = x + (tail - q) / t_pdf(x, df);
        let next = if newton > lo && newton < hi && newton.is_finite() {
            newton
        } else {
            0.5 * (lo + hi)
        };
        if (next - x).abs() <= 1e-15 * x.abs().max(1.0) || hi - lo <= 1e-15 * hi {
            return next;
        }
        x = next;
    }
    x
}

/// χ² upper tail `P(X > x)` with `k` degrees of freedom.
pub fn chi2_sf(x: f64, k: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x == f64::INFINITY {
        return 0.0;
    }
    checked_gamma_ur(k / 2.0, x / 2.0).unwrap_or(f64::NAN)
}

/// Noncentral t distribution function `P(T ≤ x)` with `df` degrees of freedom and
/// noncentrality `delta`.
///
/// The series of Lenth (1989, Algorithm AS 243), for `x ≥ 0`:
///
/// ```text
/// F(x; ν, δ) = Φ(−δ) + ½ Σⱼ [ pⱼ · I_y(j + ½, ν/2) + qⱼ · I_y(j + 1, ν/2) ],   y = x²/(x² + ν)
/// pⱼ = e^{−δ²/2} (δ²/2)^j / j!,   qⱼ = δ/√2 · e^{−δ²/2} (δ²/2)^j / Γ(j + 3/2)
/// ```
///
/// and `F(x; ν, δ) = 1 − F(−x; ν, −δ)` for `x < 0`; above 10⁶ degrees of freedom, the normal
/// approximation the t tail uses, shifted by δ. The Poisson weights are computed in logs and
/// summed outward from the largest (j = ⌊δ²/2⌋), as Benton and Krishnamoorthy (2003) do, so
/// large noncentralities neither underflow nor lose the terms that matter: a term is dropped
/// once its weight (backward) or its weight times the incomplete beta (forward, where both
/// shrink) is below 10⁻¹⁷.
pub fn noncentral_t_cdf(x: f64, df: f64, delta: f64) -> f64 {
    if df > T_NORMAL_DF {
        return normal_cdf(large_df_z(x, df, delta));
    }
    if x < 0.0 {
        return 1.0 - noncentral_t_cdf(-x, df, -delta);
    }
    let base = normal_cdf(-delta);
    if x == 0.0 {
        return base;
    }
    let y = x * x / (x * x + df);
    let half_df = df / 2.0;
    let lambda = delta * delta / 2.0;
    let term = |j: f64| -> (f64, f64) {
        let (ln_p, ln_q) = if lambda > 0.0 {
            let common = -lambda + j * lambda.ln();
            (
                common - ln_gamma(j + 1.0),
                common - ln_gamma(j + 1.5) + (delta.abs() / SQRT_2).ln(),
            )
        } else if j == 0.0 {
            (0.0, f64::NEG_INFINITY)
        } else {
            (f64::NEG_INFINITY, f64::NEG_INFINITY)
        };
        let (p, q) = (ln_p.exp(), ln_q.exp() * delta.signum());
        let ib = |a: f64| checked_beta_reg(a, half_df, y).unwrap_or(f64::NAN);
        let value = if p == 0.0 && q == 0.0 {
            0.0
        } else {
            p * ib(j + 0.5) + q * ib(j + 1.0)
        };
        (value, p + q.abs())
    };
    const EPS: f64 = 1e-17;
    const MAX_TERMS: u32 = 1_000_000;
    let mode = lambda.floor();
    let mut sum = 0.0;
    // Forward from the mode: weights and incomplete betas both decrease past it.
    let mut j = mode;
    for _ in 0..MAX_TERMS {
        let (value, _) = term(j);
        sum += value;
        if value.abs() < EPS && j > lambda {
            break;
        }
        j += 1.0;
    }
    // Backward from below the mode: the weights decrease, the incomplete betas are at most 1.
    let mut j = mode - 1.0;
    while j >= 0.0 {
        let (value, weight) = term(j);
        sum += value;
        if weight < EPS {
            break;
        }
        j -= 1.0;
    }
    (base + 0.5 * sum).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, tol: f64, what: &str) {
        assert!(
            (got - want).abs() <= tol,
            "{what}: got {got:e}, want {want:e}"
        );
    }

    /// Normal tails against mpmath (25 digits), relative error below 10⁻¹³.
    #[test]
    fn normal_tails() {
        let table = [
            (1.0, 0.158_655_253_931_457_05),
            (5.0, 2.866_515_718_791_939e-7),
            (-2.0, 0.977_249_868_051_820_8),
            (0.3, 0.382_088_577_811_047_4),
            (12.0, 1.776_482_112_077_679e-33),
        ];
        for (x, want) in table {
            let got = normal_sf(x);
            assert!((got / want - 1.0).abs() < 1e-13, "Φ̄({x}) = {got:e}");
            assert!((normal_cdf(-x) / want - 1.0).abs() < 1e-13, "Φ(−{x})");
        }
    }

    #[test]
    fn normal_quantiles() {
        close(normal_inv_sf(0.025), 1.959_963_984_540_054, 1e-14, "z.975");
        close(normal_inv_sf(0.2), 0.841_621_233_572_914_2, 1e-14, "z.8");
        close(
            normal_inv_sf(1e-10),
            6.361_340_902_404_056,
            1e-12,
            "z 1e-10",
        );
        close(normal_inv_sf(0.5), 0.0, 1e-15, "median");
    }

    /// Student's t quantiles and tails: the classic table values (two-sided 5%) and, for large
    /// degrees of freedom, SciPy 1.17's `t.ppf` / `t.sf` (Boost.Math).
    #[test]
    fn t_quantiles_and_tails() {
        let table = [
            (0.025, 1.0, 12.706_204_736_174_705),
            (0.025, 2.0, 4.302_652_729_749_464),
            (0.025, 10.0, 2.228_138_851_986_275_3),
            (0.025, 30.0, 2.042_272_456_301_238),
            (0.05, 6000.0, 1.645_107_627_930_702_4),
            (0.025, 60_000.0, 1.960_003_523_177_931_4),
            (0.025, 400_000.0, 1.959_969_915_235_770_6),
            (0.025, 4.0e6, 1.959_964_577_608_038_3),
            (0.025, 1.0e7, 1.959_964_221_767_205_5),
            (0.999, 5.0, -5.893_429_531_356_009),
        ];
        for (q, df, want) in table {
            // Up to 10⁶ degrees of freedom the incomplete beta's relative error reaches 5·10⁻¹⁰.
            close(t_inv_sf(q, df), want, 1e-9 * want.abs(), "t quantile");
            close(t_sf(want, df), q, 1e-9 * q, "t tail");
        }
        close(
            t_sf(2.0, 4.0e6),
            2.275_016_569_253_729_8e-2,
            2e-12,
            "t tail 4e6",
        );
        close(t_sf(2.0, 6000.0), 2.277_262_996_410_21e-2, 1e-13, "t cdf");
    }

    #[test]
    fn chi2_tails() {
        close(
            chi2_sf(40.0, 1.0),
            2.539_628_589_470_863_4e-10,
            1e-22,
            "χ²₁(40)",
        );
        close(chi2_sf(3.841_458_820_694_128_5, 1.0), 0.05, 1e-15, "χ²₁ 5%");
        close(chi2_sf(5.991_464_547_107_983, 2.0), 0.05, 1e-15, "χ²₂ 5%");
        assert_eq!(chi2_sf(0.0, 3.0), 1.0);
    }

    /// Noncentral t against SciPy 1.17's `nct.cdf` (Boost.Math's `non_central_t`, itself checked
    /// against Mathematica), covering negative x, negative δ, large δ and large ν.
    #[test]
    fn noncentral_t() {
        let table = [
            (1.0, 10.0, 1.0, 0.490_240_051_395_450_5),
            (2.0, 5.0, 1.0, 0.778_074_662_616_214_8),
            (-1.0, 10.0, 1.0, 0.026_801_856_769_479_687),
            (3.0, 20.0, 3.0, 0.485_719_677_481_463_66),
            (0.5, 3.0, -1.0, 0.924_273_881_288_619_1),
            (10.0, 30.0, 8.0, 0.881_213_492_377_883_2),
            (1.9714, 208.0, 3.6228, 0.049_872_262_391_097_46),
            (50.0, 100.0, 45.0, 0.909_306_182_281_753_9),
            (-2.0, 4.0, 2.0, 0.000_444_404_648_410_921_1),
            (0.0, 1.0, 0.5, 0.308_537_538_725_986_9),
            // Large ν, where the incomplete beta's continued fraction is longest.
            (1.96, 39_904.0, 2.9, 0.173_611_433_182_552_18),
            (1.96, 1e5, 3.0, 0.149_171_132_272_160_25),
            (2.5, 4e5, 2.0, 0.691_461_223_547_155_6),
            (-1.9, 1e6, 0.5, 0.008_197_595_068_618_923),
            (1.96, 2e6, 3.0, 0.149_170_009_429_14),
        ];
        for (x, df, delta, want) in table {
            close(
                noncentral_t_cdf(x, df, delta),
                want,
                1e-10,
                &format!("nct({x}, {df}, {delta})"),
            );
        }
        // With δ = 0 it is the central t.
        close(
            noncentral_t_cdf(2.0, 7.0, 0.0),
            1.0 - t_sf(2.0, 7.0),
            1e-15,
            "δ = 0",
        );
    }
}
