//! Conformance: every case of `shared/vectors/stats/cases.json` (published results of
//! open-source statistics engines and textbooks) goes through one `check()`, dispatched on the
//! case's `kind`, and must meet the case's absolute tolerance `tol` on every expected field.
//!
//! The shared vectors live beside the repository (`../shared/vectors`, or `VEXIL_VECTORS`). When
//! they are missing the test says so and skips, except under `CI`, where a missing contract is a
//! failure. Run with `--nocapture` to see the worst error relative to its tolerance.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a panic is a failed test with its location"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use vexil_stats::{
    adjust, bayesian, cuped_effect, effect, mde, power, risk, sample_size_means,
    sample_size_proportions, sequential_test, srm, welch_test, Alternative, Baseline, Correction,
    CupedSums, Difference, Effect, MeanSums, PowerSettings, Prior, ProportionSums, RatioSums,
    Summary, ValueKind,
};

fn shared_vectors() -> Option<PathBuf> {
    let dir = std::env::var_os("VEXIL_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"));
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "conformance vectors not found at {}",
        dir.display()
    );
    eprintln!(
        "skipped: conformance vectors not found at {} (set VEXIL_VECTORS)",
        dir.display()
    );
    None
}

/// One case being checked: compares fields, remembers failures and the worst error.
struct Checker<'a> {
    case: &'a Json,
    id: &'a str,
    tol: f64,
    checked: BTreeSet<String>,
    failures: Vec<String>,
    /// (error / tolerance, description) of the worst field that passed or failed.
    worst: (f64, String),
}

impl<'a> Checker<'a> {
    fn new(case: &'a Json) -> Self {
        Self {
            case,
            id: case["id"].as_str().unwrap_or("<no id>"),
            tol: case["tol"].as_f64().expect("tol"),
            checked: BTreeSet::new(),
            failures: Vec::new(),
            worst: (0.0, String::new()),
        }
    }

    /// Compares `got` with the expected field `name` (a number, or an array when `got` has
    /// several values).
    fn expect(&mut self, name: &str, got: &[f64]) {
        self.checked.insert(name.to_owned());
        let Some(expected) = self.case["expected"].get(name) else {
            return;
        };
        let want: Vec<f64> = match expected {
            Json::Array(items) => items.iter().map(|v| v.as_f64().unwrap()).collect(),
            v => vec![v.as_f64().unwrap()],
        };
        if want.len() != got.len() {
            self.failures.push(format!(
                "{} {name}: expected {want:?}, got {got:?}",
                self.id
            ));
            return;
        }
        for (i, (&w, &g)) in want.iter().zip(got).enumerate() {
            let field = if want.len() > 1 {
                format!("{name}[{i}]")
            } else {
                name.to_owned()
            };
            let error = (g - w).abs();
            let ratio = if self.tol > 0.0 {
                error / self.tol
            } else if error == 0.0 {
                0.0
            } else {
                f64::INFINITY
            };
            if ratio > self.worst.0 || self.worst.1.is_empty() {
                self.worst = (
                    ratio,
                    format!("{} {field}: error {error:e} (tol {:e})", self.id, self.tol),
                );
            }
            // Written so that a NaN fails too.
            if error.is_nan() || error > self.tol {
                self.failures.push(format!(
                    "{} {field}: expected {w}, got {g} (error {error:e} > tol {:e})",
                    self.id, self.tol
                ));
            }
        }
    }

    fn fail(&mut self, message: impl std::fmt::Display) {
        self.failures.push(format!("{}: {message}", self.id));
    }

    /// Every expected field must have been compared.
    fn finish(mut self) -> (Vec<String>, (f64, String)) {
        if let Some(expected) = self.case["expected"].as_object() {
            for key in expected.keys() {
                if !self.checked.contains(key) {
                    self.failures
                        .push(format!("{}: expected field {key} is not checked", self.id));
                }
            }
        }
        (self.failures, self.worst)
    }
}

fn num(v: &Json, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("missing number {key} in {v}"))
}

fn count(v: &Json, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("missing count {key} in {v}"))
}

/// A mean or proportion arm, by its fields.
fn summary(arm: &Json) -> Summary {
    if arm.get("conversions").is_some() {
        ProportionSums {
            n: count(arm, "n"),
            conversions: count(arm, "conversions"),
        }
        .summary()
    } else {
        MeanSums {
            n: count(arm, "n"),
            sum: num(arm, "sum"),
            sum_squares: num(arm, "sum_squares"),
        }
        .summary()
    }
    .unwrap()
}

fn difference(case: &Json) -> Difference {
    match case["difference"].as_str() {
        Some("absolute") => Difference::Absolute,
        Some("relative") => Difference::Relative,
        other => panic!("difference {other:?}"),
    }
}

fn alternative(case: &Json) -> Alternative {
    match (case["sides"].as_u64(), case["direction"].as_str()) {
        (Some(2), _) => Alternative::TwoSided,
        (Some(1), Some("greater")) => Alternative::Greater,
        (Some(1), Some("lesser")) => Alternative::Lesser,
        other => panic!("sides/direction {other:?}"),
    }
}

fn arms_effect(case: &Json) -> Effect {
    effect(&summary(&case["a"]), &summary(&case["b"]), difference(case)).unwrap()
}

/// Interval fields, as the case names them.
fn expect_test(c: &mut Checker, result: &vexil_stats::TestResult) {
    c.expect("effect", &[result.estimate]);
    c.expect("se", &[result.se]);
    c.expect("ci", &[result.interval.lower, result.interval.upper]);
    c.expect("ci_lower", &[result.interval.lower]);
    c.expect("ci_upper", &[result.interval.upper]);
    c.expect("p", &[result.p_value]);
}

fn cuped_arm(arm: &Json, kind: ValueKind) -> CupedSums {
    let n = count(arm, "n");
    match kind {
        ValueKind::Binary => {
            CupedSums::binary(n, num(arm, "sum"), num(arm, "pre_sum"), num(arm, "cross"))
        }
        ValueKind::Continuous => CupedSums {
            n,
            sum: num(arm, "sum"),
            sum_squares: num(arm, "sum_squares"),
            pre_sum: num(arm, "pre_sum"),
            pre_sum_squares: num(arm, "pre_sum_squares"),
            cross: num(arm, "cross"),
        },
    }
}

fn ratio_arm(arm: &Json) -> RatioSums {
    RatioSums {
        n: count(arm, "n"),
        m_sum: num(arm, "m_sum"),
        m_sum_squares: num(arm, "m_sum_squares"),
        d_sum: num(arm, "d_sum"),
        d_sum_squares: num(arm, "d_sum_squares"),
        md: num(arm, "md"),
    }
}

fn prior(case: &Json) -> Prior {
    match &case["prior"] {
        Json::String(s) if s == "flat" => Prior::Flat,
        p if p["proper"].as_bool() == Some(true) => Prior::Normal {
            mean: num(p, "mean"),
            variance: num(p, "variance"),
        },
        _ => Prior::Flat,
    }
}

/// The one check: runs the method the case's `kind` names and compares every expected field.
fn check(case: &Json) -> (Vec<String>, (f64, String)) {
    let mut c = Checker::new(case);
    let alpha = case["alpha"].as_f64().unwrap_or(0.05);
    match case["kind"].as_str().unwrap_or("") {
        "frequentist" => {
            let result = welch_test(&arms_effect(case), alternative(case), alpha).unwrap();
            expect_test(&mut c, &result);
        }
        "sequential" => {
            let tuning = num(case, "tuning");
            let result =
                sequential_test(&arms_effect(case), alternative(case), alpha, tuning).unwrap();
            expect_test(&mut c, &result);
        }
        "bayesian" => {
            let result = bayesian(&arms_effect(case), prior(case), alpha).unwrap();
            c.expect("mean", &[result.mean]);
            c.expect("sd", &[result.sd]);
            c.expect("chance_to_win", &[result.chance_to_win]);
            c.expect("ci", &[result.interval.lower, result.interval.upper]);
            c.expect("risk", &[result.risk.control, result.risk.treatment]);
        }
        "risk" => {
            let r = risk(num(case, "mean"), num(case, "sd")).unwrap();
            c.expect("risk", &[r.control, r.treatment]);
        }
        "cuped" => {
            let kind = match case["metric"].as_str() {
                Some("binomial") => ValueKind::Binary,
                _ => ValueKind::Continuous,
            };
            let adjusted = cuped_effect(
                &cuped_arm(&case["a"], kind),
                &cuped_arm(&case["b"], kind),
                kind,
                difference(case),
            )
            .unwrap();
            let result = welch_test(&adjusted.effect, alternative(case), alpha).unwrap();
            expect_test(&mut c, &result);
        }
        "ratio" => {
            let (a, b) = (
                ratio_arm(&case["a"]).summary().unwrap(),
                ratio_arm(&case["b"]).summary().unwrap(),
            );
            c.expect("ratio_a", &[a.mean]);
            c.expect("ratio_b", &[b.mean]);
            let lift = effect(&a, &b, difference(case)).unwrap();
            c.expect("effect", &[lift.estimate]);
            match case["method"].as_str() {
                Some("bayesian") => {
                    let result = bayesian(&lift, Prior::Flat, alpha).unwrap();
                    c.expect("chance_to_win", &[result.chance_to_win]);
                    c.expect("risk_b", &[result.risk.treatment]);
                }
                other => c.fail(format!("unknown ratio method {other:?}")),
            }
        }
        "srm" => {
            let observed: Vec<u64> = case["observed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            let weights: Vec<f64> = case["weights"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            c.expect("p", &[srm(&observed, &weights).unwrap().p_value]);
        }
        "correction" => {
            let method = match case["method"].as_str() {
                Some("bonferroni") => Correction::Bonferroni,
                Some("holm") => Correction::Holm,
                Some("benjamini-hochberg") => Correction::BenjaminiHochberg,
                other => panic!("correction {other:?}"),
            };
            let p: Vec<f64> = case["p"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            c.expect("adjusted", &adjust(&p, method).unwrap());
        }
        "power" => {
            assert_eq!(case["sides"].as_u64(), Some(2), "power is two-sided");
            let baseline = Baseline {
                mean: num(case, "mean"),
                variance: num(case, "variance"),
            };
            let settings = PowerSettings {
                alpha,
                arms: u32::try_from(count(case, "arms")).unwrap(),
                sequential: (case["sequential"].as_bool() == Some(true))
                    .then(|| num(case, "tuning")),
            };
            let n_total = num(case, "n_total");
            let p = power(baseline, num(case, "relative_effect"), n_total, settings).unwrap();
            c.expect("power", &[p]);
            c.expect(
                "mde_at_80",
                &[mde(baseline, 0.8, n_total, settings).unwrap()],
            );
        }
        "sample_size" => {
            let arms = u32::try_from(count(case, "arms")).unwrap();
            let (effect_size, target) = (num(case, "mde"), num(case, "power"));
            let n = match case["metric"].as_str() {
                Some("continuous") => {
                    sample_size_means(effect_size, num(case, "variance"), alpha, target, arms)
                }
                Some("binomial") => {
                    sample_size_proportions(num(case, "p"), effect_size, alpha, target, arms)
                }
                other => panic!("sample size metric {other:?}"),
            };
            c.expect("n_total", &[n.unwrap() as f64]);
        }
        other => c.fail(format!("unknown kind {other:?}")),
    }
    c.finish()
}

#[test]
fn stats_vectors() {
    let Some(dir) = shared_vectors() else { return };
    let path = dir.join("stats/cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cases: Vec<Json> = serde_json::from_str(&text).unwrap();
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    let mut worst = (0.0, String::new());
    for case in &cases {
        let (mut case_failures, case_worst) = check(case);
        failures.append(&mut case_failures);
        if case_worst.0 >= worst.0 {
            worst = case_worst;
        }
    }
    eprintln!(
        "{} stats cases, {} failures; worst: {} ({:.3} of its tolerance)",
        cases.len(),
        failures.len(),
        worst.1,
        worst.0
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
