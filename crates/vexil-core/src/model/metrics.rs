//! Metrics: what experiments are judged on (`analysis.md` §2). A metric is defined on ingested
//! events: an event type, optional property filters, and a kind that says what each unit's value
//! is (converted or not, a count, a sum of a numeric property, or a ratio of two metrics).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a unit's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// 1 if the unit did the event at least once, else 0 ("uniques"); a proportion.
    Conversion,
    /// The number of qualifying events ("average totals"); a mean.
    Count,
    /// The sum of a numeric event property; a mean.
    Sum,
    /// Sum of the numerator metric over sum of the denominator metric, over units.
    Ratio,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Conversion => "conversion",
            MetricKind::Count => "count",
            MetricKind::Sum => "sum",
            MetricKind::Ratio => "ratio",
        }
    }
}

/// Which way is good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Increase,
    Decrease,
}

/// Where a filtered property is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PropertyScope {
    /// `event_properties` of the event.
    Event,
    /// `user_properties` sent with the event.
    User,
}

/// How a property is compared with the filter's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FilterOp {
    /// Equals one of the values (as strings).
    Is,
    /// Equals none of the values (a missing property counts as not equal).
    IsNot,
    /// Contains one of the values, case-insensitively.
    Contains,
    /// A number greater than the one value.
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

impl FilterOp {
    /// Whether the operator compares numbers (its one value must be a number).
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            FilterOp::Greater | FilterOp::GreaterOrEqual | FilterOp::Less | FilterOp::LessOrEqual
        )
    }
}

/// A condition an event must meet to count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PropertyFilter {
    pub scope: PropertyScope,
    pub property: String,
    pub op: FilterOp,
    pub values: Vec<String>,
}

/// A metric of a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Metric {
    pub project: String,
    /// Generated from the name at creation, unique per project, immutable.
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "type")]
    pub kind: MetricKind,
    /// Conversion, count and sum: the event type counted (`$exposure` for exposures, `$any`
    /// for any event but Vexil's own experiment events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Sum: the numeric event property summed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// Conditions every counted event meets (all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<PropertyFilter>,
    /// Ratio: the numerator metric's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numerator: Option<String>,
    /// Ratio: the denominator metric's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denominator: Option<String>,
    /// Events count only in this many hours from the unit's first exposure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_window_hours: Option<u32>,
    pub direction: Direction,
    /// Caps each unit's value at this percentile of its variant (e.g. 99) before the sums are
    /// taken, so a few outliers do not decide a mean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winsorize_percentile: Option<f64>,
    /// Predefined metrics (`exposure`, `any-active-event`) exist in every project and cannot
    /// be changed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub builtin: bool,
    #[serde(default)]
    pub archived: bool,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub updated_by: String,
}

/// The event type of exposures (`[Experiment] Exposure` on the wire as `$exposure`).
pub const EXPOSURE_EVENT: &str = "$exposure";
/// The event type that stands for any event a user sends (not Vexil's experiment events).
pub const ANY_EVENT: &str = "$any";

/// The predefined metrics: key, name, event type.
pub const BUILTIN_METRICS: &[(&str, &str, &str)] = &[
    ("exposure", "Exposure", EXPOSURE_EVENT),
    ("any-active-event", "Any active event", ANY_EVENT),
];

impl Metric {
    /// The predefined metric with this key in `project`.
    pub fn builtin(project: &str, key: &str) -> Option<Metric> {
        let &(key, name, event) = BUILTIN_METRICS.iter().find(|(k, _, _)| *k == key)?;
        Some(Metric {
            project: project.to_string(),
            key: key.to_string(),
            name: name.to_string(),
            description: String::new(),
            kind: MetricKind::Conversion,
            event_type: Some(event.to_string()),
            property: None,
            filters: Vec::new(),
            numerator: None,
            denominator: None,
            conversion_window_hours: None,
            direction: Direction::Increase,
            winsorize_percentile: None,
            builtin: true,
            archived: false,
            version: 1,
            created_at: 0,
            updated_at: 0,
            created_by: String::new(),
            updated_by: String::new(),
        })
    }
}

/// How an experiment's effects are tested (`analysis.md` §4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TestType {
    /// Always-valid confidence sequences: results may be looked at any time (Amplitude's
    /// default).
    #[default]
    Sequential,
    /// A Welch t-test, valid once, at the planned end.
    FixedHorizon,
}

/// How p-values are corrected for testing several metrics and treatments at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    #[default]
    Bonferroni,
    Holm,
    BenjaminiHochberg,
    None,
}

/// What an experiment is judged on and how: its metrics, its analysis window and its test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSettings {
    /// The metric the decision rests on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_metric: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secondary_metrics: Vec<String>,
    /// Metrics that must not get worse (one-sided "no harm" tests, not corrected).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guardrails: Vec<String>,
    /// Start of the analysis window (Unix milliseconds); set when the experiment is first
    /// activated, editable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<i64>,
    /// End of the analysis window; set when the experiment is deactivated (cleared when it is
    /// activated again), editable. Open while absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<i64>,
    #[serde(default)]
    pub test: TestType,
    /// Also show the Bayesian view (chance to win, risk).
    #[serde(default)]
    pub bayesian: bool,
    /// Confidence level, e.g. 0.95.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    #[serde(default)]
    pub correction: Correction,
    /// CUPED variance reduction with a 14-day pre-exposure period.
    #[serde(default)]
    pub cuped: bool,
    /// The variant the others are compared with; the first variant when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<String>,
}

fn default_confidence() -> f64 {
    0.95
}

impl Default for ExperimentSettings {
    fn default() -> Self {
        ExperimentSettings {
            primary_metric: None,
            secondary_metrics: Vec::new(),
            guardrails: Vec::new(),
            start: None,
            end: None,
            test: TestType::default(),
            bayesian: false,
            confidence: default_confidence(),
            correction: Correction::default(),
            cuped: false,
            control: None,
        }
    }
}

impl ExperimentSettings {
    /// Every metric the settings name, with the field that names it.
    pub fn metric_references(&self) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        if let Some(m) = &self.primary_metric {
            out.push(("experiment.primary_metric".to_string(), m.as_str()));
        }
        for (list, name) in [
            (&self.secondary_metrics, "secondary_metrics"),
            (&self.guardrails, "guardrails"),
        ] {
            for (i, m) in list.iter().enumerate() {
                out.push((format!("experiment.{name}[{i}]"), m.as_str()));
            }
        }
        out
    }
}
