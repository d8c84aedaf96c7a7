//! `StatsError`: why a statistic cannot be computed from the inputs given.
//!
//! Every function of the crate returns one of these instead of panicking or handing back a NaN,
//! so a caller can show "not enough data yet" or "the control mean is zero" rather than a
//! meaningless number.

/// A statistic that cannot be computed from its inputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// An arm has too few units for a variance (at least 2 are needed).
    #[error("an arm has {n} units; at least {min} are needed")]
    TooFewUnits {
        /// The units the arm has.
        n: u64,
        /// The fewest it may have.
        min: u64,
    },
    /// The standard error of the effect is zero: every unit has the same value, so there is
    /// nothing to test.
    #[error("the variance is zero: every unit has the same value")]
    ZeroVariance,
    /// A relative effect was asked for but the control's mean is zero.
    #[error("the control mean is zero: a relative effect is undefined")]
    ZeroControlMean,
    /// A ratio metric's denominator sums to zero in an arm.
    #[error("the ratio metric's denominator sums to zero")]
    ZeroDenominator,
    /// A parameter is outside its domain (a probability outside (0, 1), a negative variance,
    /// a non-finite sum, and so on).
    #[error("{name} must be {expected}, got {value}")]
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// The value given.
        value: f64,
        /// What it must be, in words.
        expected: &'static str,
    },
    /// Two lists that go together (observed counts and weights) differ in length, or a list is
    /// too short.
    #[error("{what}: expected {expected} values, got {got}")]
    Length {
        /// The list.
        what: &'static str,
        /// How many values it needs.
        expected: usize,
        /// How many it has.
        got: usize,
    },
    /// No effect (or no sample size) reaches the requested power with these inputs.
    #[error("the requested power cannot be reached with these inputs")]
    Unreachable,
    /// The inputs are finite but so extreme (a mean of 1e300, say) that the result overflows
    /// or underflows into something undefined.
    #[error("{what} cannot be computed: the inputs are too extreme")]
    Overflow {
        /// The quantity that could not be computed.
        what: &'static str,
    },
}

/// Passes a computed value through if it is a number, or says which quantity overflowed.
pub(crate) fn computed(what: &'static str, value: f64) -> Result<f64, StatsError> {
    if value.is_nan() {
        Err(StatsError::Overflow { what })
    } else {
        Ok(value)
    }
}

/// Checks that `value` is finite, naming it in the error.
pub(crate) fn finite(name: &'static str, value: f64) -> Result<f64, StatsError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(StatsError::InvalidParameter {
            name,
            value,
            expected: "finite",
        })
    }
}

/// Checks that `value` lies strictly between 0 and `upper`.
pub(crate) fn open_unit(name: &'static str, value: f64, upper: f64) -> Result<f64, StatsError> {
    if value > 0.0 && value < upper {
        Ok(value)
    } else {
        Err(StatsError::InvalidParameter {
            name,
            value,
            expected: if upper == 1.0 {
                "between 0 and 1 (exclusive)"
            } else {
                "between 0 and 0.5 (exclusive)"
            },
        })
    }
}

/// Checks that `value` is finite and strictly positive.
pub(crate) fn positive(name: &'static str, value: f64) -> Result<f64, StatsError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(StatsError::InvalidParameter {
            name,
            value,
            expected: "finite and positive",
        })
    }
}
