//! Statistical properties, on seeded simulations (the randomness lives here, never in the crate):
//!
//! - A/A: with no effect, the fixed-horizon test rejects at its nominal rate (within 1 point
//!   over 10,000 experiments), and the sequential test rejects at most at its nominal rate even
//!   when it is looked at every day, while a fixed-horizon test looked at every day does not;
//! - the sequential SRM check keeps its level under daily looks;
//! - CUPED never widens the interval when the pre-period is correlated with the metric;
//! - no input, however degenerate, makes a function panic or return a NaN.
//!
//! Experiments are drawn as sufficient statistics (a normal sample's mean and its χ² sum of
//! squares), not unit by unit, so 10,000 experiments of 30 days take a moment even in debug.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is a failed test with its location"
)]

use vexil_stats::{
    adjust, bayesian, cuped_effect, effect, mde, power, running_minimum, sample_size_means,
    sample_size_proportions, sequential_test, srm, srm_sequential, welch_test, Alternative,
    Baseline, Correction, CupedSums, Difference, MeanSums, PowerSettings, Prior, ProportionSums,
    RatioSums, ValueKind, DEFAULT_TUNING,
};

/// splitmix64: small, fast, and good enough for simulations.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    /// Gamma(shape, 1) for shape ≥ 1 (Marsaglia and Tsang, 2000).
    fn gamma(&mut self, shape: f64) -> f64 {
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v > 0.0 && self.uniform().ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    /// The sums of `n` draws from N(mean, sd²), drawn directly: the sample mean is
    /// N(mean, sd²/n) and, independently, Σ(x − x̄)² is sd²·χ²(n − 1).
    fn normal_sums(&mut self, n: u64, mean: f64, sd: f64) -> MeanSums {
        let nf = n as f64;
        let sample_mean = mean + sd / nf.sqrt() * self.normal();
        let centered = sd * sd * 2.0 * self.gamma((nf - 1.0) / 2.0);
        MeanSums {
            n,
            sum: nf * sample_mean,
            sum_squares: centered + nf * sample_mean * sample_mean,
        }
    }
}

const ALPHA: f64 = 0.05;

#[test]
fn aa_fixed_horizon_rejects_at_the_nominal_rate() {
    let mut rng = Rng(1);
    let experiments = 10_000;
    let mut rejected = 0;
    for _ in 0..experiments {
        let a = rng.normal_sums(500, 10.0, 5.0).summary().unwrap();
        let b = rng.normal_sums(500, 10.0, 5.0).summary().unwrap();
        let lift = effect(&a, &b, Difference::Relative).unwrap();
        if welch_test(&lift, Alternative::TwoSided, ALPHA)
            .unwrap()
            .p_value
            < ALPHA
        {
            rejected += 1;
        }
    }
    let rate = f64::from(rejected) / f64::from(experiments);
    eprintln!("A/A fixed horizon: {rate} rejected");
    assert!((rate - ALPHA).abs() <= 0.01, "rejection rate {rate}");
}

/// One A/A experiment of `days` daily looks: the running-minimum p-value after each look.
fn daily_looks(rng: &mut Rng, days: usize, test: impl Fn(&vexil_stats::Effect) -> f64) -> f64 {
    let (mut a, mut b) = (MeanSums::default(), MeanSums::default());
    let mut p_values = Vec::with_capacity(days);
    for _ in 0..days {
        a += rng.normal_sums(200, 10.0, 5.0);
        b += rng.normal_sums(200, 10.0, 5.0);
        let lift = effect(
            &a.summary().unwrap(),
            &b.summary().unwrap(),
            Difference::Relative,
        )
        .unwrap();
        p_values.push(test(&lift));
    }
    *running_minimum(&p_values).last().unwrap()
}

#[test]
fn aa_sequential_with_daily_peeking_rejects_at_most_at_the_nominal_rate() {
    let mut rng = Rng(2);
    let (experiments, days) = (10_000, 30);
    let rejected = (0..experiments)
        .filter(|_| {
            daily_looks(&mut rng, days, |lift| {
                sequential_test(lift, Alternative::TwoSided, ALPHA, DEFAULT_TUNING)
                    .unwrap()
                    .p_value
            }) < ALPHA
        })
        .count();
    let rate = rejected as f64 / f64::from(experiments);
    eprintln!("A/A sequential, {days} daily looks: {rate} rejected");
    assert!(rate <= ALPHA, "rejection rate under peeking {rate}");

    // One-sided: the p-value is the search for the α whose bound touches 0.
    let rejected = (0..experiments)
        .filter(|_| {
            daily_looks(&mut rng, days, |lift| {
                sequential_test(lift, Alternative::Greater, ALPHA, DEFAULT_TUNING)
                    .unwrap()
                    .p_value
            }) < ALPHA
        })
        .count();
    let rate = rejected as f64 / f64::from(experiments);
    eprintln!("A/A sequential one-sided, {days} daily looks: {rate} rejected");
    assert!(
        rate <= ALPHA,
        "one-sided rejection rate under peeking {rate}"
    );
}

/// The contrast that makes the sequential property meaningful: the fixed-horizon test, looked
/// at every day, rejects far more often than its nominal rate.
#[test]
fn aa_fixed_horizon_with_daily_peeking_is_not_valid() {
    let mut rng = Rng(3);
    let experiments = 1_000;
    let rejected = (0..experiments)
        .filter(|_| {
            daily_looks(&mut rng, 30, |lift| {
                welch_test(lift, Alternative::TwoSided, ALPHA)
                    .unwrap()
                    .p_value
            }) < ALPHA
        })
        .count();
    let rate = rejected as f64 / f64::from(experiments);
    eprintln!("A/A fixed horizon, 30 daily looks: {rate} rejected");
    assert!(rate > 2.0 * ALPHA, "peeking rejection rate {rate}");
}

/// The sequential SRM check, looked at daily on a correct 30/70 split, flags at most α of the
/// experiments, while the χ² test looked at daily flags more.
#[test]
fn sequential_srm_with_daily_peeking_keeps_its_level() {
    let mut rng = Rng(6);
    let (experiments, days, weights) = (2_000, 30, [0.3, 0.7]);
    let (mut sequential, mut chi2) = (0, 0);
    for _ in 0..experiments {
        let mut totals = [0u64; 2];
        let (mut p_sequential, mut p_chi2) = (Vec::new(), Vec::new());
        for _ in 0..days {
            // Binomial(1000, 0.3) by its normal approximation, which is plenty here.
            let treated = (300.0 + 210.0_f64.sqrt() * rng.normal())
                .round()
                .clamp(0.0, 1000.0);
            totals[0] += treated as u64;
            totals[1] += 1000 - treated as u64;
            p_sequential.push(srm_sequential(&totals, &weights, 10_000.0).unwrap());
            p_chi2.push(srm(&totals, &weights).unwrap().p_value);
        }
        sequential += usize::from(*running_minimum(&p_sequential).last().unwrap() < ALPHA);
        chi2 += usize::from(*running_minimum(&p_chi2).last().unwrap() < ALPHA);
    }
    let (sequential, chi2) = (
        sequential as f64 / f64::from(experiments),
        chi2 as f64 / f64::from(experiments),
    );
    eprintln!("SRM, 30 daily looks: sequential {sequential}, χ² {chi2} flagged at 5%");
    assert!(
        sequential <= ALPHA,
        "sequential SRM false alarms {sequential}"
    );
    assert!(chi2 > ALPHA, "χ² peeked at daily: {chi2}");
}

#[test]
fn cuped_never_widens_the_interval_with_a_correlated_pre_period() {
    let mut rng = Rng(4);
    for experiment in 0..500 {
        let correlation = 0.3 + 0.6 * rng.uniform();
        let lift = if experiment % 2 == 0 { 0.0 } else { 0.5 };
        let mut arm = |shift: f64| -> CupedSums {
            (0..400)
                .map(|_| {
                    let x = 10.0 + 3.0 * rng.normal();
                    let noise = rng.normal();
                    let y = shift
                        + 10.0
                        + 3.0
                            * (correlation * (x - 10.0) / 3.0
                                + (1.0 - correlation * correlation).sqrt() * noise);
                    CupedSums {
                        n: 1,
                        sum: y,
                        sum_squares: y * y,
                        pre_sum: x,
                        pre_sum_squares: x * x,
                        cross: x * y,
                    }
                })
                .sum()
        };
        let (a, b) = (arm(0.0), arm(lift));
        for difference in [Difference::Absolute, Difference::Relative] {
            let plain = effect(
                &a.metric().summary().unwrap(),
                &b.metric().summary().unwrap(),
                difference,
            )
            .unwrap();
            let adjusted = cuped_effect(&a, &b, ValueKind::Continuous, difference).unwrap();
            let width = |e: &vexil_stats::Effect| {
                let ci = welch_test(e, Alternative::TwoSided, ALPHA)
                    .unwrap()
                    .interval;
                ci.upper - ci.lower
            };
            assert!(
                width(&adjusted.effect) <= width(&plain),
                "experiment {experiment} ({difference:?}, ρ = {correlation:.2}): CUPED {} > plain {}",
                width(&adjusted.effect),
                width(&plain)
            );
        }
    }
}

/// Degenerate and extreme inputs: every function answers `Ok` with finite numbers (interval
/// bounds may be infinite on a one-sided test's open side) or a typed error; none panics.
macro_rules! finite {
    ($x:expr, $($context:tt)*) => {{
        let x: f64 = $x;
        assert!(x.is_finite(), "{} = {x} for {:?}", stringify!($x), ($($context)*));
    }};
}

#[test]
fn no_input_panics_or_yields_nan() {
    let mut rng = Rng(5);
    let pick =
        |rng: &mut Rng, values: &[f64]| values[(rng.next_u64() % values.len() as u64) as usize];
    let specials = [
        0.0,
        1.0,
        -1.0,
        1e-300,
        1e300,
        0.5,
        1e9,
        -1e9,
        f64::NAN,
        f64::INFINITY,
        3.0,
        1e-9,
    ];
    let counts = [0.0, 1.0, 2.0, 3.0, 100.0, 1e6, 1e12];
    for _ in 0..20_000 {
        let n = pick(&mut rng, &counts) as u64;
        let mean_sums = MeanSums {
            n,
            sum: pick(&mut rng, &specials),
            sum_squares: pick(&mut rng, &specials),
        };
        let other = MeanSums {
            n: pick(&mut rng, &counts) as u64,
            sum: pick(&mut rng, &specials),
            sum_squares: pick(&mut rng, &specials),
        };
        let alpha = pick(&mut rng, &[0.05, 0.0, 1.0, 0.4999, f64::NAN, 0.3]);
        if let (Ok(a), Ok(b)) = (mean_sums.summary(), other.summary()) {
            for difference in [Difference::Absolute, Difference::Relative] {
                let Ok(lift) = effect(&a, &b, difference) else {
                    continue;
                };
                for alternative in [
                    Alternative::TwoSided,
                    Alternative::Greater,
                    Alternative::Lesser,
                ] {
                    for result in [
                        welch_test(&lift, alternative, alpha),
                        sequential_test(&lift, alternative, alpha, DEFAULT_TUNING),
                    ]
                    .into_iter()
                    .flatten()
                    {
                        finite!(result.p_value, a, b, difference, alternative, alpha);
                        assert!(!result.interval.lower.is_nan() && !result.interval.upper.is_nan());
                    }
                }
                if let Ok(r) = bayesian(&lift, Prior::Flat, alpha) {
                    for x in [
                        r.mean,
                        r.sd,
                        r.chance_to_win,
                        r.risk.control,
                        r.risk.treatment,
                    ] {
                        finite!(x, a, b, difference, alpha);
                    }
                }
            }
        }
        let cuped = |rng: &mut Rng| CupedSums {
            n: pick(rng, &counts) as u64,
            sum: pick(rng, &specials),
            sum_squares: pick(rng, &specials),
            pre_sum: pick(rng, &specials),
            pre_sum_squares: pick(rng, &specials),
            cross: pick(rng, &specials),
        };
        let (ca, cb) = (cuped(&mut rng), cuped(&mut rng));
        if let Ok(c) = cuped_effect(&ca, &cb, ValueKind::Continuous, Difference::Relative) {
            finite!(c.effect.estimate, ca, cb);
            finite!(c.theta, ca, cb);
        }
        let ratio = RatioSums {
            n,
            m_sum: pick(&mut rng, &specials),
            m_sum_squares: pick(&mut rng, &specials),
            d_sum: pick(&mut rng, &specials),
            d_sum_squares: pick(&mut rng, &specials),
            md: pick(&mut rng, &specials),
        };
        if let Ok(s) = ratio.summary() {
            finite!(s.mean, ratio);
            finite!(s.variance, ratio);
        }
        let conversions = pick(&mut rng, &counts) as u64;
        if let Ok(s) = (ProportionSums { n, conversions }).summary() {
            finite!(s.variance, n, conversions);
        }
        let baseline = Baseline {
            mean: pick(&mut rng, &specials),
            variance: pick(&mut rng, &specials),
        };
        let settings = PowerSettings {
            alpha,
            arms: pick(&mut rng, &[0.0, 1.0, 2.0, 5.0]) as u32,
            sequential: [None, Some(DEFAULT_TUNING), Some(0.0)][(rng.next_u64() % 3) as usize],
        };
        let n_total = pick(&mut rng, &counts);
        if let Ok(p) = power(baseline, pick(&mut rng, &specials), n_total, settings) {
            finite!(p, baseline, settings, n_total);
        }
        if let Ok(m) = mde(baseline, 0.8, n_total, settings) {
            finite!(m, baseline, settings, n_total);
        }
        let p_values = [pick(&mut rng, &specials), 0.01, 0.2];
        if let Ok(adjusted) = adjust(&p_values, Correction::BenjaminiHochberg) {
            adjusted.into_iter().for_each(|p| finite!(p, p_values));
        }
        let observed = [
            pick(&mut rng, &counts) as u64,
            pick(&mut rng, &counts) as u64,
        ];
        let weights = [pick(&mut rng, &specials), 0.5];
        if let Ok(s) = srm(&observed, &weights) {
            finite!(s.p_value, observed, weights);
        }
        if let Ok(p) = srm_sequential(&observed, &weights, 10_000.0) {
            finite!(p, observed, weights);
        }
    }
    // Sample sizes: a few extreme designs (each is a search, so not in the loop above).
    for (difference, variance) in [(1e-300, 1.0), (0.0, 1.0), (1.0, 0.0), (f64::NAN, 1.0)] {
        if let Ok(n) = sample_size_means(difference, variance, 0.05, 0.8, 2) {
            assert!(n >= 4);
        }
    }
    for (rate, difference) in [(0.5, 0.6), (0.0, 0.1), (0.3, 1e-12), (0.3, 0.0)] {
        let _ = sample_size_proportions(rate, difference, 0.05, 0.8, 2);
    }
}
