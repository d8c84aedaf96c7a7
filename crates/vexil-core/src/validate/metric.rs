//! Field validation of a metric on its own; that a ratio's metrics exist is checked by the
//! service, which reads them.

use super::{check_text, text_error};
use crate::error::FieldError;
use crate::keys::is_url_safe_key;
use crate::model::{FilterOp, Flag, FlagType, Metric, MetricKind, BUILTIN_METRICS};

/// The most filters a metric has.
pub const MAX_FILTERS: usize = 20;
/// The longest conversion window: a year.
pub const MAX_WINDOW_HOURS: u32 = 366 * 24;

/// Every field error of `metric`, in document order.
pub fn validate_metric(metric: &Metric) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let e = &mut errors;
    if !is_url_safe_key(&metric.key) {
        e.push(FieldError::new(
            "key",
            "invalid_key",
            "a metric key is 1 to 128 characters of letters, digits, '.', '_' and '-'",
        ));
    } else if BUILTIN_METRICS.iter().any(|(k, _, _)| *k == metric.key) {
        e.push(FieldError::new(
            "key",
            "reserved_key",
            format!(
                "{:?} is a predefined metric; choose another key",
                metric.key
            ),
        ));
    }
    check_text(e, "name", &metric.name, 255, true);
    check_text(e, "description", &metric.description, 10_000, false);
    let needs = |field: &str, present: bool, e: &mut Vec<FieldError>| {
        if !present {
            e.push(FieldError::new(
                field,
                "required",
                format!("a {} metric needs {field}", metric.kind.as_str()),
            ));
        }
    };
    let refuses = |field: &str, present: bool, e: &mut Vec<FieldError>| {
        if present {
            e.push(FieldError::new(
                field,
                "not_for_kind",
                format!("a {} metric has no {field}", metric.kind.as_str()),
            ));
        }
    };
    match metric.kind {
        MetricKind::Ratio => {
            needs("numerator", metric.numerator.is_some(), e);
            needs("denominator", metric.denominator.is_some(), e);
            refuses("event_type", metric.event_type.is_some(), e);
            refuses("property", metric.property.is_some(), e);
            refuses("filters", !metric.filters.is_empty(), e);
            for (field, key) in [
                ("numerator", &metric.numerator),
                ("denominator", &metric.denominator),
            ] {
                if key.as_deref() == Some(metric.key.as_str()) {
                    e.push(FieldError::new(
                        field,
                        "self_reference",
                        "a ratio cannot use itself",
                    ));
                }
            }
        }
        kind => {
            needs("event_type", metric.event_type.is_some(), e);
            if let Some(event) = &metric.event_type {
                e.extend(text_error("event_type", event, 1024, true));
            }
            if kind == MetricKind::Sum {
                needs("property", metric.property.is_some(), e);
            } else {
                refuses("property", metric.property.is_some(), e);
            }
            if let Some(property) = &metric.property {
                e.extend(text_error("property", property, 1024, true));
            }
            refuses("numerator", metric.numerator.is_some(), e);
            refuses("denominator", metric.denominator.is_some(), e);
        }
    }
    if metric.filters.len() > MAX_FILTERS {
        e.push(FieldError::new(
            "filters",
            "too_many",
            format!("a metric has at most {MAX_FILTERS} filters"),
        ));
    }
    for (i, filter) in metric.filters.iter().enumerate() {
        let at = format!("filters[{i}]");
        e.extend(text_error(
            &format!("{at}.property"),
            &filter.property,
            1024,
            true,
        ));
        if filter.values.is_empty() || filter.values.len() > 1000 {
            e.push(FieldError::new(
                format!("{at}.values"),
                "out_of_range",
                "a filter compares with 1 to 1,000 values",
            ));
        }
        if filter.op.is_numeric() {
            if filter.values.len() != 1 {
                e.push(FieldError::new(
                    format!("{at}.values"),
                    "one_value",
                    "a numeric comparison takes exactly one value",
                ));
            }
            for (j, v) in filter.values.iter().enumerate() {
                if v.trim().parse::<f64>().map_or(true, |n| !n.is_finite()) {
                    e.push(FieldError::new(
                        format!("{at}.values[{j}]"),
                        "not_a_number",
                        format!(
                            "{v:?} is not a number, and {:?} compares numbers",
                            op_name(filter.op)
                        ),
                    ));
                }
            }
        }
        for (j, v) in filter.values.iter().enumerate() {
            if v.len() > 1024 {
                e.push(FieldError::new(
                    format!("{at}.values[{j}]"),
                    "too_long",
                    "a filter value is at most 1,024 bytes",
                ));
            }
        }
    }
    if let Some(hours) = metric.conversion_window_hours {
        if hours == 0 || hours > MAX_WINDOW_HOURS {
            e.push(FieldError::new(
                "conversion_window_hours",
                "out_of_range",
                format!("a conversion window is 1 to {MAX_WINDOW_HOURS} hours"),
            ));
        }
    }
    if let Some(p) = metric.winsorize_percentile {
        if !(p.is_finite() && p > 50.0 && p < 100.0) {
            e.push(FieldError::new(
                "winsorize_percentile",
                "out_of_range",
                "winsorization caps values above a percentile greater than 50 and less than 100 (e.g. 99)",
            ));
        }
        if metric.kind == MetricKind::Conversion {
            e.push(FieldError::new(
                "winsorize_percentile",
                "not_for_kind",
                "a conversion metric's values are 0 or 1 and have no outliers to cap",
            ));
        }
    }
    errors
}

fn op_name(op: FilterOp) -> &'static str {
    match op {
        FilterOp::Is => "is",
        FilterOp::IsNot => "is_not",
        FilterOp::Contains => "contains",
        FilterOp::Greater => "greater",
        FilterOp::GreaterOrEqual => "greater_or_equal",
        FilterOp::Less => "less",
        FilterOp::LessOrEqual => "less_or_equal",
    }
}

/// An experiment's settings: only on experiments, a confidence level between 80% and 99.9%, a
/// control among the variants, a window that ends after it starts, each metric named once.
pub(super) fn check_experiment(e: &mut Vec<FieldError>, flag: &Flag) {
    let Some(settings) = &flag.experiment else {
        return;
    };
    if flag.kind != FlagType::Experiment {
        e.push(FieldError::new(
            "experiment",
            "not_an_experiment",
            "only experiments have experiment settings; make the flag an experiment first",
        ));
        return;
    }
    if !(settings.confidence.is_finite() && (0.8..=0.999).contains(&settings.confidence)) {
        e.push(FieldError::new(
            "experiment.confidence",
            "out_of_range",
            "the confidence level is between 0.8 and 0.999 (0.95 is usual)",
        ));
    }
    if let Some(control) = &settings.control {
        if flag.variant(control).is_none() {
            e.push(FieldError::new(
                "experiment.control",
                "unknown_variant",
                format!("{control:?} is not a variant of this experiment"),
            ));
        }
    }
    if let (Some(start), Some(end)) = (settings.start, settings.end) {
        if end <= start {
            e.push(FieldError::new(
                "experiment.end",
                "before_start",
                "the analysis window ends after it starts",
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (field, key) in settings.metric_references() {
        if !seen.insert(key) {
            e.push(FieldError::new(
                field,
                "duplicate",
                format!("{key:?} is already one of this experiment's metrics"),
            ));
        }
    }
    let count = settings.secondary_metrics.len() + settings.guardrails.len();
    if count > 50 {
        e.push(FieldError::new(
            "experiment.secondary_metrics",
            "too_many",
            "an experiment has at most 50 secondary metrics and guardrails",
        ));
    }
}
