//! The Experiment card of an experiment's page: a link to its results and the form of its
//! settings (primary metric picked from the project's metrics, secondary metrics, guardrails,
//! the analysis window, test, confidence, correction, CUPED, control), saved with one
//! `FlagService::update` like the page's other forms. A refused form is shown again as typed.
//!
//! Hooks: `section#experiment`, `a#results-link`, `form#experiment-settings` (fields
//! `primary_metric`, `secondary_metrics`, `guardrails`, `test`, `confidence` in percent,
//! `correction`, `cuped`, `control`, `start` and `end` as UTC `YYYY-MM-DDTHH:MM`).

use axum::extract::{Path, Request};
use axum::response::Response;
use maud::{html, Markup};
use vexil_core::service::FlagPatch;
use vexil_core::{
    Correction, Error, ExperimentSettings, FieldError, Flag, FlagType, Metric, TestType,
};

use super::layout::when;
use super::{flag_edit, form, Fields, Session, St};

/// The form's id, which a refusal's draft carries back.
const FORM: &str = "experiment-settings";

/// The card, on experiments only. `draft` is a refused form, shown as typed.
pub(crate) fn card(
    flag: &Flag,
    metrics: &[Metric],
    base: &str,
    hidden: &Markup,
    draft: Option<&Fields>,
) -> Markup {
    if flag.kind != FlagType::Experiment {
        return html! {};
    }
    let s = flag.experiment.clone().unwrap_or_default();
    let draft = Fields::of_form(draft, FORM);
    // What each control shows: the draft's values after a refusal, else the saved settings.
    let one = |name: &str, saved: Option<String>| match draft {
        Some(d) => d.text(name),
        None => saved,
    };
    let many = |name: &str, saved: &[String]| match draft {
        Some(d) => d.all(name),
        None => saved.to_vec(),
    };
    let primary = one("primary_metric", s.primary_metric.clone()).unwrap_or_default();
    let secondary = many("secondary_metrics", &s.secondary_metrics);
    let guardrails = many("guardrails", &s.guardrails);
    let test = one("test", Some(test_key(s.test).to_owned())).unwrap_or_default();
    let confidence = one(
        "confidence",
        Some(format!("{}", round(s.confidence * 100.0))),
    )
    .unwrap_or_default();
    let correction =
        one("correction", Some(correction_key(s.correction).to_owned())).unwrap_or_default();
    let cuped = match draft {
        Some(d) => d.get("cuped").is_some(),
        None => s.cuped,
    };
    let bayesian = match draft {
        Some(d) => d.get("bayesian").is_some(),
        None => s.bayesian,
    };
    let control = one("control", s.control.clone()).unwrap_or_default();
    let start = one("start", s.start.map(datetime)).unwrap_or_default();
    let end = one("end", s.end.map(datetime)).unwrap_or_default();
    let results = format!("{base}/results?project={}", form::encode(&flag.project));
    let usable: Vec<&Metric> = metrics.iter().filter(|m| !m.archived).collect();
    html! {
        section #experiment {
            h2 { "Experiment" }
            p { a #results-link href=(results) { "See the results" }
                " · the project's " a href=(format!("/projects/{}/metrics", form::encode(&flag.project))) { "metrics" } }
            form #experiment-settings method="post" action=(format!("{base}/experiment")) {
                (hidden)
                input type="hidden" name="_form" value=(FORM);
                input type="hidden" name="version" value=(flag.version);
                input type="hidden" name="start_was" value=(s.start.map(|v| v.to_string()).unwrap_or_default());
                input type="hidden" name="end_was" value=(s.end.map(|v| v.to_string()).unwrap_or_default());
                label { "Primary metric"
                    select name="primary_metric" {
                        option value="" selected[primary.is_empty()] { "(none)" }
                        @for m in &usable {
                            option value=(m.key) selected[m.key == primary] { (m.name) " (" (m.kind.as_str()) ")" }
                        }
                    }
                    span.hint { "The metric the decision rests on." }
                }
                fieldset #secondary-metrics {
                    legend { "Secondary metrics" }
                    @for m in &usable {
                        label.inline { input type="checkbox" name="secondary_metrics" value=(m.key) checked[secondary.contains(&m.key)]; " " (m.name) }
                    }
                }
                fieldset #guardrails {
                    legend { "Guardrails" span.hint { " metrics that must not get worse" } }
                    @for m in &usable {
                        label.inline { input type="checkbox" name="guardrails" value=(m.key) checked[guardrails.contains(&m.key)]; " " (m.name) }
                    }
                }
                label { "Test"
                    select name="test" {
                        option value="sequential" selected[test == "sequential"] { "Sequential (look any time)" }
                        option value="fixed_horizon" selected[test == "fixed_horizon"] { "Fixed horizon (t-test at the planned end)" }
                    }
                }
                label { "Confidence (%)" input name="confidence" value=(confidence) inputmode="decimal"; }
                label { "Correction"
                    select name="correction" {
                        @for (key, label) in [("bonferroni", "Bonferroni"), ("holm", "Holm"), ("benjamini_hochberg", "Benjamini–Hochberg"), ("none", "None")] {
                            option value=(key) selected[correction == key] { (label) }
                        }
                    }
                }
                label.inline { input type="checkbox" name="cuped" value="on" checked[cuped]; " CUPED (variance reduction from the 14 days before exposure)" }
                label.inline { input type="checkbox" name="bayesian" value="on" checked[bayesian]; " Also show the Bayesian view (chance to win, risk)" }
                label { "Control"
                    select name="control" {
                        option value="" selected[control.is_empty()] { "(the first variant)" }
                        @for v in &flag.variants {
                            option value=(v.key) selected[v.key == control] { (v.key) }
                        }
                    }
                }
                label { "Analysis start (UTC)" input type="datetime-local" name="start" value=(start);
                    span.hint { "Set when the experiment is activated." } }
                label { "Analysis end (UTC)" input type="datetime-local" name="end" value=(end);
                    span.hint { "Set when it is deactivated; empty while it runs." } }
                button type="submit" { "Save experiment settings" }
            }
        }
    }
}

fn test_key(t: TestType) -> &'static str {
    match t {
        TestType::Sequential => "sequential",
        TestType::FixedHorizon => "fixed_horizon",
    }
}

fn correction_key(c: Correction) -> &'static str {
    match c {
        Correction::Bonferroni => "bonferroni",
        Correction::Holm => "holm",
        Correction::BenjaminiHochberg => "benjamini_hochberg",
        Correction::None => "none",
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> Error {
    Error::Invalid(vec![FieldError::new(field, code, message)])
}

/// `2026-12-07T08:30` (UTC) from Unix milliseconds: what a `datetime-local` input holds.
fn datetime(ms: i64) -> String {
    let w = when(ms);
    format!("{}T{}", &w[..10], &w[11..16])
}

/// Unix milliseconds from `YYYY-MM-DDTHH:MM[:SS]` (UTC). `was` is the saved value: a field left
/// as shown keeps it to the millisecond.
fn parse_datetime(field: &str, text: &str, was: Option<i64>) -> vexil_core::Result<i64> {
    if let Some(was) = was.filter(|w| datetime(*w) == text) {
        return Ok(was);
    }
    let bad = || {
        invalid(
            &format!("experiment.{field}"),
            "invalid_time",
            format!("the analysis {field} is a date and time like 2026-12-07T08:30 (UTC)"),
        )
    };
    let text = text.replace(' ', "T");
    let (date, time) = text.split_once('T').ok_or_else(bad)?;
    let num = |s: Option<&str>| s.and_then(|s| s.parse::<i64>().ok()).ok_or_else(bad);
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next())?, num(d.next())?, num(d.next())?);
    let mut t = time.split(':');
    let (h, min) = (num(t.next())?, num(t.next())?);
    let sec = t.next().map_or(Ok(0), |s| num(Some(s)))?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || sec > 59 {
        return Err(bad());
    }
    // Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 24 + h) * 60 + min) * 60_000 + sec * 1000)
}

/// The settings a form describes.
fn settings(f: &Fields) -> vexil_core::Result<ExperimentSettings> {
    let test = match f.get("test").unwrap_or("sequential") {
        "fixed_horizon" => TestType::FixedHorizon,
        _ => TestType::Sequential,
    };
    let correction = match f.get("correction").unwrap_or("bonferroni") {
        "holm" => Correction::Holm,
        "benjamini_hochberg" => Correction::BenjaminiHochberg,
        "none" => Correction::None,
        _ => Correction::Bonferroni,
    };
    let confidence = match f.text("confidence") {
        None => 0.95,
        Some(text) => {
            let percent: f64 = text.trim_end_matches('%').trim().parse().map_err(|_| {
                invalid(
                    "experiment.confidence",
                    "invalid_number",
                    "the confidence level is a percentage such as 95",
                )
            })?;
            percent / 100.0
        }
    };
    let was = |name: &str| f.text(name).and_then(|v| v.parse::<i64>().ok());
    let when_of = |name: &str| -> vexil_core::Result<Option<i64>> {
        f.text(name)
            .map(|t| parse_datetime(name, &t, was(&format!("{name}_was"))))
            .transpose()
    };
    Ok(ExperimentSettings {
        primary_metric: f.text("primary_metric"),
        secondary_metrics: f.all("secondary_metrics"),
        guardrails: f.all("guardrails"),
        start: when_of("start")?,
        end: when_of("end")?,
        test,
        bayesian: f.get("bayesian").is_some(),
        confidence,
        correction,
        cuped: f.get("cuped").is_some(),
        control: f.text("control"),
    })
}

/// `POST /flags/{key}/experiment`.
pub(crate) async fn save(
    state: St,
    session: Session,
    Path(key): Path<String>,
    request: Request,
) -> Response {
    flag_edit::change(
        state.0,
        session,
        key,
        request,
        "Experiment settings saved.",
        |s, who, project, key, f| {
            let patch = FlagPatch {
                experiment: Some(settings(f)?),
                ..FlagPatch::default()
            };
            flag_edit::apply_update(s, who, project, key, f, patch)
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_in_utc() {
        let ms = 1_796_187_246_985;
        assert_eq!(datetime(ms), "2026-12-02T04:54");
        assert_eq!(
            parse_datetime("start", "2026-12-02T04:54", None).unwrap(),
            1_796_187_240_000
        );
        assert_eq!(
            parse_datetime("start", "2026-12-02T04:54", Some(ms)).unwrap(),
            ms
        );
        assert_eq!(
            parse_datetime("end", "2000-02-29 00:00:30", None).unwrap(),
            951_782_430_000
        );
        assert!(parse_datetime("end", "yesterday", None).is_err());
    }
}
