//! Multiple-testing corrections (`analysis.md` §4): adjusted p-values over every
//! (treatment × primary or secondary metric) pair. Guardrails are not part of the family.

use serde::{Deserialize, Serialize};

use crate::error::StatsError;

/// How p-values are adjusted for the number of comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Correction {
    /// No adjustment.
    None,
    /// `min(1, m·p)`: controls the family-wise error rate; the default, as Amplitude's.
    #[default]
    Bonferroni,
    /// Holm's step-down: the family-wise error rate, uniformly more powerful than Bonferroni.
    Holm,
    /// Benjamini–Hochberg's step-up: the false discovery rate.
    BenjaminiHochberg,
}

/// The adjusted p-values, in the order given. Every p-value must lie in [0, 1].
///
/// With the p-values sorted ascending as `p(1) ≤ … ≤ p(m)`:
/// - Holm: `p̃(i) = max over j ≤ i of min(1, (m − j + 1)·p(j))`;
/// - Benjamini–Hochberg: `p̃(i) = min over j ≥ i of min(1, m·p(j)/j)`.
pub fn adjust(p_values: &[f64], correction: Correction) -> Result<Vec<f64>, StatsError> {
    for &p in p_values {
        if !(0.0..=1.0).contains(&p) {
            return Err(StatsError::InvalidParameter {
                name: "p-value",
                value: p,
                expected: "between 0 and 1",
            });
        }
    }
    let m = p_values.len() as f64;
    let mut order: Vec<usize> = (0..p_values.len()).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = p_values.to_vec();
    match correction {
        Correction::None => {}
        Correction::Bonferroni => adjusted.iter_mut().for_each(|p| *p = (*p * m).min(1.0)),
        Correction::Holm => {
            let mut running = 0.0_f64;
            for (rank, &i) in order.iter().enumerate() {
                running = running.max(((m - rank as f64) * p_values[i]).min(1.0));
                adjusted[i] = running;
            }
        }
        Correction::BenjaminiHochberg => {
            let mut running = 1.0_f64;
            for (rank, &i) in order.iter().enumerate().rev() {
                running = running.min(m * p_values[i] / (rank as f64 + 1.0));
                adjusted[i] = running;
            }
        }
    }
    Ok(adjusted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_cases() {
        assert_eq!(adjust(&[], Correction::Holm), Ok(vec![]));
        assert_eq!(
            adjust(&[0.03], Correction::BenjaminiHochberg),
            Ok(vec![0.03])
        );
        assert_eq!(adjust(&[0.2, 0.7], Correction::None), Ok(vec![0.2, 0.7]));
        assert!(adjust(&[f64::NAN], Correction::Bonferroni).is_err());
        assert!(adjust(&[1.5], Correction::Holm).is_err());
        // Ties keep equal adjusted values.
        let tied = adjust(&[0.01, 0.01, 0.02], Correction::Holm).unwrap();
        assert_eq!(tied[0], tied[1]);
    }
}
