//! The minimum-sample rule (`analysis.md` §4): a result is shown only once each arm has at least
//! [`MIN_UNITS_PER_ARM`] exposed units and, for a conversion metric, [`MIN_CONVERSIONS_PER_ARM`]
//! conversions, as Amplitude does. Before that the page says to keep the experiment running.

use serde::{Deserialize, Serialize};

/// Exposed units each arm needs before its result is shown.
pub const MIN_UNITS_PER_ARM: u64 = 100;

/// Conversions each arm needs before a conversion metric's result is shown.
pub const MIN_CONVERSIONS_PER_ARM: u64 = 25;

/// One arm's counts, as the rule reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmCounts {
    /// Exposed units.
    pub units: u64,
    /// Conversions, for a conversion metric; `None` for other metrics.
    pub conversions: Option<u64>,
}

impl ArmCounts {
    /// Whether this arm has enough data.
    pub fn meets_minimum(&self) -> bool {
        self.units >= MIN_UNITS_PER_ARM
            && self
                .conversions
                .is_none_or(|c| c >= MIN_CONVERSIONS_PER_ARM)
    }
}

/// Whether a result comparing these arms may be shown: at least two arms, each with enough data.
pub fn minimum_sample_met(arms: &[ArmCounts]) -> bool {
    arms.len() >= 2 && arms.iter().all(ArmCounts::meets_minimum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let arm = |units, conversions| ArmCounts { units, conversions };
        let cases = [
            (vec![arm(100, None), arm(100, None)], true),
            (vec![arm(99, None), arm(5000, None)], false),
            (vec![arm(100, Some(25)), arm(300, Some(40))], true),
            (vec![arm(1000, Some(24)), arm(1000, Some(80))], false),
            (vec![arm(1000, None)], false),
            (vec![], false),
        ];
        for (arms, want) in cases {
            assert_eq!(minimum_sample_met(&arms), want, "{arms:?}");
        }
    }
}
