//! Attribution against a direct recomputation on random experiments, and the rules one by one.

use super::*;

const T0: i64 = 1_765_000_000_000 - 1_765_000_000_000 % DAY_MS + 3_600_000; // 01:00 UTC

fn variants() -> Vec<String> {
    vec!["control".into(), "treatment".into()]
}

fn window(days: i64) -> Window {
    Window {
        start: T0,
        end: T0 + days * DAY_MS,
    }
}

#[test]
fn first_exposures_multiple_variants_and_what_is_not_the_experiment() {
    let mut a = Assignments::new(variants(), window(3));
    a.expose("u1", "treatment", T0 + 5 * 3_600_000);
    a.expose("u1", "treatment", T0 + 1_000); // earlier, same variant: the first exposure
    a.expose("u2", "control", T0 + DAY_MS);
    a.expose("u3", "control", T0);
    a.expose("u3", "treatment", T0 + 10); // two variants: out, counted apart
    a.expose("u4", "off", T0); // not a variant of the experiment
    a.expose("u5", "control", T0 - 1); // before the window
    a.expose("u6", "control", T0 + 3 * DAY_MS); // at its end (half-open)
    a.expose("", "control", T0);
    assert_eq!(a.multiple_variants(), 1);
    assert_eq!(a.assigned("u1"), Some((1, T0 + 1_000)));
    assert_eq!(a.assigned("u3"), None);
    assert_eq!(
        a.new_units_by_day(),
        vec![vec![0, 1], vec![1, 0], vec![0, 0], vec![0, 0]],
        "three 24-hour days from 01:00 touch four UTC days"
    );
    assert_eq!(
        a.units_by_day(),
        vec![vec![0, 1], vec![1, 1], vec![1, 1], vec![1, 1]]
    );
}

#[test]
fn events_count_from_the_first_exposure_inside_the_conversion_window() {
    let mut a = Assignments::new(variants(), window(3));
    a.expose("u1", "treatment", T0 + 3_600_000);
    a.expose("u2", "control", T0);
    a.expose("u3", "control", T0);
    a.expose("u3", "treatment", T0);
    let mut m = MetricTotals::new(MetricKind::Count, Some(24), false);
    assert_ne!(
        m.event(&a, "u1", T0, UnitValue::Event),
        Attributed::Counted,
        "before the first exposure"
    );
    assert_eq!(
        m.event(&a, "u1", T0 + 3_600_000, UnitValue::Event),
        Attributed::Counted,
        "at it"
    );
    assert_eq!(
        m.event(&a, "u1", T0 + 25 * 3_600_000 - 1, UnitValue::Event),
        Attributed::Counted
    );
    assert_ne!(
        m.event(&a, "u1", T0 + 25 * 3_600_000, UnitValue::Event),
        Attributed::Counted,
        "past the 24 h window"
    );
    assert_ne!(
        m.event(&a, "u3", T0 + 1, UnitValue::Event),
        Attributed::Counted,
        "a unit in two variants"
    );
    assert_ne!(
        m.event(&a, "nobody", T0 + 1, UnitValue::Event),
        Attributed::Counted,
        "never exposed"
    );
    assert_ne!(
        m.event(&a, "u2", T0 + 2 * DAY_MS, UnitValue::Event),
        Attributed::Counted,
        "past u2's window"
    );
    let days = m.daily(&a, None);
    assert_eq!(
        days[0][1],
        DailySums::Mean(MeanSums {
            n: 1,
            sum: 1.0,
            sum_squares: 1.0
        })
    );
    assert_eq!(
        days[1][1],
        DailySums::Mean(MeanSums {
            n: 1,
            sum: 2.0,
            sum_squares: 4.0
        }),
        "cumulative: u1 has 2 events by the end of day 1"
    );
    assert_eq!(
        days[2][0],
        DailySums::Mean(MeanSums {
            n: 1,
            sum: 0.0,
            sum_squares: 0.0
        }),
        "u2 counts with 0"
    );
}

#[test]
fn conversions_count_once_from_their_day() {
    let mut a = Assignments::new(variants(), window(2));
    a.expose("u1", "control", T0);
    a.expose("u2", "control", T0);
    let mut m = MetricTotals::new(MetricKind::Conversion, None, false);
    m.event(&a, "u1", T0 + 1, UnitValue::Event);
    m.event(&a, "u1", T0 + 2, UnitValue::Event);
    m.event(&a, "u2", T0 + DAY_MS, UnitValue::Event);
    let days = m.daily(&a, None);
    assert_eq!(
        days[0][0],
        DailySums::Proportion(ProportionSums {
            n: 2,
            conversions: 1
        })
    );
    assert_eq!(
        days[1][0],
        DailySums::Proportion(ProportionSums {
            n: 2,
            conversions: 2
        })
    );
    assert_eq!(
        days[1][1],
        DailySums::Proportion(ProportionSums {
            n: 0,
            conversions: 0
        })
    );
}

#[test]
fn winsorization_caps_each_variants_values_at_its_percentile() {
    let mut a = Assignments::new(variants(), window(1));
    for i in 0..100 {
        a.expose(&format!("u{i}"), "control", T0);
    }
    let mut m = MetricTotals::new(MetricKind::Sum, None, false);
    for i in 0..100 {
        m.event(
            &a,
            &format!("u{i}"),
            T0 + 1,
            UnitValue::Amount(f64::from(i + 1)),
        );
    }
    m.event(&a, "u99", T0 + 2, UnitValue::Amount(10_000.0));
    assert_ne!(
        m.event(&a, "u1", T0 + 3, UnitValue::Amount(f64::NAN)),
        Attributed::Counted,
        "not a number"
    );
    let caps = m.percentile_caps(&a, 99.0);
    assert_eq!(caps[0], 99.0);
    assert_eq!(
        caps[1],
        f64::INFINITY,
        "a variant without units caps nothing"
    );
    let DailySums::Mean(capped) = m.daily(&a, Some(&caps))[0][0] else {
        panic!("a sum is a mean metric");
    };
    assert_eq!(capped.sum, (1..=99).sum::<i32>() as f64 + 99.0);
}

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random experiments: the daily sums equal a recomputation from the raw exposures and events
/// for each day's end, whatever the order of arrival.
#[test]
#[allow(
    clippy::needless_range_loop,
    reason = "day and variant index both sides"
)]
fn daily_sums_equal_a_recomputation_from_the_raw_data() {
    let mut rng = Rng(7);
    for round in 0..20 {
        let days = 1 + rng.below(6) as i64;
        let w = window(days);
        let span = days * DAY_MS;
        let exposures: Vec<(String, usize, i64)> = (0..300)
            .map(|_| {
                (
                    format!("u{}", rng.below(120)),
                    rng.below(2) as usize,
                    T0 - DAY_MS + rng.below((span + 2 * DAY_MS) as u64) as i64,
                )
            })
            .collect();
        let events: Vec<(String, i64, f64)> = (0..600)
            .map(|_| {
                (
                    format!("u{}", rng.below(140)),
                    T0 - DAY_MS + rng.below((span + 2 * DAY_MS) as u64) as i64,
                    rng.below(50) as f64,
                )
            })
            .collect();
        let conversion_window = [None, Some(30u32)][round % 2];
        let kind = [MetricKind::Sum, MetricKind::Conversion, MetricKind::Count][round % 3];

        let mut a = Assignments::new(variants(), w);
        for (u, v, t) in &exposures {
            a.expose(u, &variants()[*v], *t);
        }
        let mut m = MetricTotals::new(kind, conversion_window, false);
        for (u, t, x) in &events {
            let value = match kind {
                MetricKind::Sum => UnitValue::Amount(*x),
                _ => UnitValue::Event,
            };
            m.event(&a, u, *t, value);
        }
        let got = m.daily(&a, None);

        // The recomputation: per day end, per variant, from scratch.
        for day in 0..w.days() {
            let day_end = (w.first_midnight() + (day as i64 + 1) * DAY_MS).min(w.end);
            for v in 0..2 {
                let mut n = 0u64;
                let (mut sum, mut squares) = (0.0, 0.0);
                let units: std::collections::BTreeSet<&String> =
                    exposures.iter().map(|(u, _, _)| u).collect();
                for u in units {
                    let mine: Vec<&(String, usize, i64)> = exposures
                        .iter()
                        .filter(|(x, _, t)| x == u && w.contains(*t))
                        .collect();
                    let distinct: std::collections::BTreeSet<usize> =
                        mine.iter().map(|(_, var, _)| *var).collect();
                    if distinct.len() != 1 || !distinct.contains(&v) {
                        continue;
                    }
                    let first = mine.iter().map(|(_, _, t)| *t).min().unwrap();
                    if first >= day_end {
                        continue;
                    }
                    n += 1;
                    let limit =
                        conversion_window.map_or(i64::MAX, |h| first + i64::from(h) * 3_600_000);
                    let qualifying: Vec<f64> = events
                        .iter()
                        .filter(|(x, t, _)| {
                            x == u && *t >= first && *t < limit && *t < day_end && w.contains(*t)
                        })
                        .map(|(_, _, x)| *x)
                        .collect();
                    let value = match kind {
                        MetricKind::Sum => qualifying.iter().sum::<f64>(),
                        MetricKind::Count => qualifying.len() as f64,
                        _ => f64::from(u8::from(!qualifying.is_empty())),
                    };
                    sum += value;
                    squares += value * value;
                }
                let expected = match kind {
                    MetricKind::Conversion => DailySums::Proportion(ProportionSums {
                        n,
                        conversions: sum as u64,
                    }),
                    _ => DailySums::Mean(MeanSums {
                        n,
                        sum,
                        sum_squares: squares,
                    }),
                };
                assert_eq!(
                    got[day][v], expected,
                    "round {round}, day {day}, variant {v}"
                );
            }
        }
    }
}

#[test]
fn ratio_sums_pair_each_units_numerator_and_denominator_by_day() {
    let mut a = Assignments::new(variants(), window(2));
    a.expose("u1", "control", T0);
    a.expose("u2", "control", T0);
    a.expose("u3", "treatment", T0 + DAY_MS);
    let mut revenue = MetricTotals::new(MetricKind::Sum, None, false);
    let mut orders = MetricTotals::new(MetricKind::Count, None, false);
    for (unit, time, amount) in [
        ("u1", T0 + 1, 10.0),
        ("u1", T0 + DAY_MS, 30.0),
        ("u3", T0 + DAY_MS + 1, 5.0),
    ] {
        revenue.event(&a, unit, time, UnitValue::Amount(amount));
        orders.event(&a, unit, time, UnitValue::Event);
    }
    orders.event(&a, "u2", T0 + 2, UnitValue::Event); // an order without revenue
    let days = MetricTotals::ratio_daily(&a, &revenue, &orders);
    let ratio = |day: usize, v: usize| match days[day][v] {
        DailySums::Ratio(r) => r,
        other => panic!("{other:?}"),
    };
    // Day 0: u1 (m 10, d 1), u2 (m 0, d 1).
    assert_eq!(
        ratio(0, 0),
        RatioSums {
            n: 2,
            m_sum: 10.0,
            m_sum_squares: 100.0,
            d_sum: 2.0,
            d_sum_squares: 2.0,
            md: 10.0
        }
    );
    // Day 1: u1 cumulative (m 40, d 2), u2 (0, 1); u3 in treatment (5, 1).
    assert_eq!(
        ratio(1, 0),
        RatioSums {
            n: 2,
            m_sum: 40.0,
            m_sum_squares: 1600.0,
            d_sum: 3.0,
            d_sum_squares: 5.0,
            md: 80.0
        }
    );
    assert_eq!(
        ratio(1, 1),
        RatioSums {
            n: 1,
            m_sum: 5.0,
            m_sum_squares: 25.0,
            d_sum: 1.0,
            d_sum_squares: 1.0,
            md: 5.0
        }
    );
    assert_eq!(ratio(0, 1), RatioSums::default(), "u3 is exposed on day 1");
}

#[test]
fn cuped_sums_carry_each_units_pre_period_value() {
    let mut a = Assignments::new(variants(), window(2));
    a.expose("u1", "control", T0 + DAY_MS);
    a.expose("u2", "control", T0);
    let mut m = MetricTotals::new(MetricKind::Count, None, true);
    // u1: two events in its 14 days before exposure, one after; u2: only a pre-period event.
    assert_eq!(
        m.event(&a, "u1", T0 + DAY_MS - 1, UnitValue::Event),
        Attributed::PrePeriod
    );
    assert_eq!(
        m.event(&a, "u1", T0 + DAY_MS - PRE_PERIOD_MS, UnitValue::Event),
        Attributed::PrePeriod
    );
    assert_ne!(
        m.event(&a, "u1", T0 + DAY_MS - PRE_PERIOD_MS - 1, UnitValue::Event),
        Attributed::PrePeriod,
        "too early"
    );
    assert_eq!(
        m.event(&a, "u1", T0 + DAY_MS, UnitValue::Event),
        Attributed::Counted,
        "after exposure: the metric, not its covariate"
    );
    assert_eq!(
        m.event(&a, "u2", T0 - 10, UnitValue::Event),
        Attributed::PrePeriod
    );
    assert_eq!(
        m.event(&a, "u1", T0 + DAY_MS + 5, UnitValue::Event),
        Attributed::Counted
    );
    let days = m.daily_cuped(&a, None);
    let cuped = |day: usize| match days[day][0] {
        DailySums::Cuped { sums, binary } => {
            assert!(!binary);
            sums
        }
        other => panic!("{other:?}"),
    };
    // Day 0: only u2 is exposed (y 0, x 1).
    assert_eq!(
        cuped(0),
        CupedSums {
            n: 1,
            sum: 0.0,
            sum_squares: 0.0,
            pre_sum: 1.0,
            pre_sum_squares: 1.0,
            cross: 0.0
        }
    );
    // Day 1: u1 too (y 2, x 2).
    assert_eq!(
        cuped(1),
        CupedSums {
            n: 2,
            sum: 2.0,
            sum_squares: 4.0,
            pre_sum: 3.0,
            pre_sum_squares: 5.0,
            cross: 4.0
        }
    );
}
