//! An experiment's results page (`analysis.md` §5), from one `FlagService::results` call: the
//! SRM and multiple-variant warnings first, the decision in words, the settings the analysis
//! used, the exposed units per variant with their chart, then per metric a table of each
//! variant's figures and each treatment's effects, p-values and verdict, with the relative
//! effect over time drawn below it. An experiment that has not started or has no exposures yet
//! shows an empty state, not an error.
//!
//! Hooks: `#srm-warning`, `#multiple-variants-warning`, `#verdict`, `#results-empty`,
//! `dl#analysis-settings`, `table#exposed-units` rows `tr[data-variant]`,
//! `figure#exposures-chart svg`, `section.metric[data-metric][data-role]` holding
//! `table.metric-results` rows `tr[data-variant]` (a treatment's with `td.verdict[data-verdict]`)
//! and `figure.effect-chart svg`; `a#flag-link`.

use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use vexil_core::analysis::report::{Estimate, MetricResult, MetricRole, Verdict};
use vexil_core::service::ExperimentResults;
use vexil_core::{Correction, Direction, Flag, MetricKind, TestType};

use super::layout::{self, error_box, when};
use super::{call, charts, flag_href, form, html, Fields, Session, St};

/// `GET /flags/{key}/results?project=…`.
pub(crate) async fn show(
    state: St,
    session: Session,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let console = state.0;
    let project = Fields::parse(query.unwrap_or_default().as_bytes()).text("project");
    let services = console.services.clone();
    let (p, k) = (project.clone(), key.clone());
    let loaded = call(move || {
        let flag = services.flags.get(p.as_deref(), &k)?;
        let results = services.flags.results(Some(&flag.project), &k)?;
        Ok((flag, results))
    })
    .await;
    match loaded {
        Ok((flag, results)) => {
            let title = format!("Results · {}", flag.name);
            html(
                StatusCode::OK,
                layout::page(&console, &session, &title, page(&flag, &results)),
            )
        }
        Err(e) => html(
            super::status_of(&e),
            layout::page(
                &console,
                &session,
                "Results",
                error_box(&e, project.as_deref()),
            ),
        ),
    }
}

/// `GET /projects/{project}/holdouts/{key}/results`: the users a holdout kept out of its
/// program against everyone else, on the program's metrics.
pub(crate) async fn show_holdout(
    state: St,
    session: Session,
    Path((project, key)): Path<(String, String)>,
) -> Response {
    let console = state.0;
    let services = console.services.clone();
    let (p, k) = (project.clone(), key.clone());
    let loaded = call(move || {
        let group = services
            .groups
            .get(&p, vexil_core::GroupKind::Holdout, &k)?;
        let results = services.groups.holdout_results(&p, &k)?;
        Ok((group, results))
    })
    .await;
    match loaded {
        Ok((view, results)) => {
            let g = &view.group;
            let title = format!("Results · {}", g.name);
            let header = html! {
                p.crumbs {
                    a href=(super::group_href(&g.project, g.kind, &g.key)) #group-link { (g.key) } " / Results"
                }
                div.titlebar { h1 { "Holdout results: " (g.name) } }
                p.hint { "Users held out of the program against everyone else, since the holdout was created."
                    @if results.report.metrics.is_empty() {
                        " Give the holdout metrics (the API's " code { "metrics" } ") to compare them."
                    } }
            };
            html(
                StatusCode::OK,
                layout::page(
                    &console,
                    &session,
                    &title,
                    html! { (header) (body(&results)) },
                ),
            )
        }
        Err(e) => html(
            super::status_of(&e),
            layout::page(&console, &session, "Results", error_box(&e, Some(&project))),
        ),
    }
}

fn page(flag: &Flag, r: &ExperimentResults) -> Markup {
    html! {
        p.crumbs {
            a href=(format!("/flags?project={}", form::encode(&flag.project))) { "Flags" } " / "
            (flag.project) " / "
            a #flag-link href=(flag_href(&flag.project, &flag.key)) { (flag.key) } " / Results"
        }
        div.titlebar {
            h1 { "Results: " (flag.name) }
            (layout::state_badge(flag.state, flag.archived))
        }
        (body(r))
    }
}

/// Everything under the title: warnings, the verdict, the settings used, units and metrics.
fn body(r: &ExperimentResults) -> Markup {
    let exposed: u64 = r.variants.iter().map(|v| v.units).sum();
    let empty = r.start.is_none() || exposed == 0;
    let names: Vec<String> = r.variants.iter().map(|v| v.variant.clone()).collect();
    html! {
        @if let Some(srm) = r.report.srm.filter(|s| s.mismatch) {
            p.warning #srm-warning role="alert" {
                strong { "Sample ratio mismatch. " }
                "The exposed units do not follow the configured split (p = " (p_value(Some(srm.p_value)))
                "): check how exposures are tracked before trusting any result below."
            }
        }
        @if r.multiple_variants > 0 {
            p.warning #multiple-variants-warning role="alert" {
                strong { (r.multiple_variants) " units saw more than one variant" }
                " and are left out of every metric. Many such units point at a bucketing or tracking problem."
            }
        }
        p.verdict #verdict { (r.report.summary) }
        (settings_used(r))
        @if empty {
            div #results-empty {
                p { @if r.start.is_none() {
                    "This experiment has not started: activate it to open its analysis window. "
                    "Results appear once SDKs report exposures."
                } @else {
                    "No exposures yet: results appear once SDKs report that users saw a variant."
                } }
            }
        } @else {
            (exposed_units(r, exposed))
            figure #exposures-chart.chart {
                figcaption { "Exposed units per variant, cumulative by day (UTC)" }
                (charts::exposures(&names, &r.exposures))
            }
            @if r.report.metrics.is_empty() {
                p.hint #no-metrics { "No metric to show: choose a primary metric in the settings." }
            }
            @for m in &r.report.metrics { (metric(r, m, &names)) }
        }
    }
}

fn settings_used(r: &ExperimentResults) -> Markup {
    let s = &r.settings;
    let test = match s.test {
        TestType::Sequential => "Sequential (always valid: look any time)",
        TestType::FixedHorizon => "Fixed horizon (Welch's t-test: valid once, at the planned end)",
    };
    let correction = match s.correction {
        Correction::Bonferroni => "Bonferroni",
        Correction::Holm => "Holm",
        Correction::BenjaminiHochberg => "Benjamini–Hochberg",
        Correction::None => "None",
    };
    html! {
        dl #analysis-settings.settings {
            dt { "Test" } dd data-setting="test" { (test) }
            dt { "Confidence" } dd data-setting="confidence" { (format!("{:.1}%", s.confidence * 100.0)) }
            dt { "Correction" } dd data-setting="correction" { (correction) }
            dt { "CUPED" } dd data-setting="cuped" { @if s.cuped { "On" } @else { "Off" } }
            dt { "Control" } dd data-setting="control" { (r.variants.first().map_or("", |v| v.variant.as_str())) }
            dt { "Window" } dd data-setting="window" {
                @match r.start {
                    None => "not started",
                    Some(start) => { (when(start)) " – " @match r.end { Some(end) => (when(end)), None => "now (running)" } }
                }
            }
        }
    }
}

fn exposed_units(r: &ExperimentResults, total: u64) -> Markup {
    html! {
        table #exposed-units {
            thead { tr { th { "Variant" } th { "Exposed units" } th { "Share" } th { "Expected share" } } }
            tbody {
                @for v in &r.variants {
                    tr data-variant=(v.variant) {
                        td { (v.variant) }
                        td.units { (v.units) }
                        td { (percent(v.units as f64 / total.max(1) as f64)) }
                        td { (percent(v.expected_share)) }
                    }
                }
            }
        }
    }
}

fn metric(r: &ExperimentResults, m: &MetricResult, names: &[String]) -> Markup {
    let role = match m.role {
        MetricRole::Primary => "primary",
        MetricRole::Secondary => "secondary",
        MetricRole::Guardrail => "guardrail",
    };
    let better = match m.direction {
        Direction::Increase => "higher is better",
        Direction::Decrease => "lower is better",
    };
    let value_header = if m.kind == MetricKind::Conversion {
        "Conversion rate"
    } else {
        "Mean per unit"
    };
    let treatments: Vec<String> = m.comparisons.iter().map(|c| c.treatment.clone()).collect();
    let days: Vec<i64> = r.exposures.iter().map(|d| d.day).collect();
    let drawn = m.over_time.iter().any(|t| !t.is_empty());
    html! {
        section.metric data-metric=(m.metric) data-role=(role) {
            h2 { (m.name) " " span class=(format!("badge role-{role}")) { (role) } }
            p.hint { (m.kind.as_str()) " · " (better)
                @if m.role == MetricRole::Guardrail { " · tested one-sided for harm, not corrected" } }
            table.metric-results {
                thead { tr {
                    th { "Variant" } th { "Units" } th { (value_header) }
                    th { "Absolute effect" } th { "Relative effect" }
                    th { "p-value" } th { "Corrected p-value" } th { "Verdict" }
                } }
                tbody {
                    @for (i, arm) in m.variants.iter().enumerate() {
                        @let comparison = m.comparisons.iter().find(|c| c.treatment == arm.variant);
                        tr data-variant=(arm.variant) {
                            td { (arm.variant) @if i == 0 { " " span.hint { "(control)" } } }
                            td.units { (arm.units) }
                            td.value { (value(m.kind, arm.value))
                                @if let Some(c) = arm.conversions { " " span.hint { "(" (c) ")" } } }
                            @match comparison {
                                None => { td {} td {} td {} td {} td {} }
                                Some(c) => {
                                    td.absolute { (estimate(c.absolute.as_ref(), m.kind == MetricKind::Conversion)) }
                                    td.relative { (estimate(c.relative.as_ref(), true)) }
                                    td.p-value { (p_value(c.p_value)) }
                                    td.p-corrected { (p_value(c.p_value_corrected)) }
                                    td.verdict data-verdict=(verdict_key(c.verdict)) { (verdict(c.verdict, m.role)) }
                                }
                            }
                        }
                    }
                }
            }
            @for c in &m.comparisons {
                @if let Some(b) = c.bayesian {
                    p.bayesian data-treatment=(c.treatment) {
                        "Bayesian view (flat prior): " (c.treatment) " has a "
                        strong { (format!("{:.1}%", b.chance_to_win * 100.0)) }
                        " chance to be better; credible interval "
                        (format!("[{:+.1}%, {:+.1}%]", b.lower * 100.0, b.upper * 100.0))
                        "; expected loss of shipping it "
                        (format!("{:.2}%", b.risk_treatment * 100.0))
                        ", of keeping the control "
                        (format!("{:.2}%", b.risk_control * 100.0)) "."
                    }
                }
            }
            @if drawn {
                figure.effect-chart.chart data-metric=(m.metric) {
                    figcaption { "Relative effect on " (m.name) " with its " (format!("{:.0}%", r.settings.confidence * 100.0)) " interval, by day" }
                    (charts::effect_over_time(&treatments, &days, &m.over_time))
                }
            } @else if names.len() > 1 {
                p.hint { "The effect over time appears once each variant meets the minimum sample." }
            }
        }
    }
}

fn verdict_key(v: Verdict) -> &'static str {
    match v {
        Verdict::Better => "better",
        Verdict::Worse => "worse",
        Verdict::Inconclusive => "inconclusive",
        Verdict::NotEnoughData => "not_enough_data",
    }
}

/// The verdict in the metric's desired direction.
fn verdict(v: Verdict, role: MetricRole) -> &'static str {
    match (v, role) {
        (Verdict::Better, _) => "Better (significant)",
        (Verdict::Worse, MetricRole::Guardrail) => "Harmed (significant)",
        (Verdict::Worse, _) => "Worse (significant)",
        (Verdict::Inconclusive, MetricRole::Guardrail) => "No harm detected",
        (Verdict::Inconclusive, _) => "Inconclusive",
        (Verdict::NotEnoughData, _) => "Not enough data",
    }
}

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// A figure of a unit: a rate as a percentage, a mean with four significant digits.
fn number(x: f64, as_percent: bool) -> String {
    if as_percent {
        return format!("{:+.2}%", x * 100.0).replace("+-", "-");
    }
    let digits = if x == 0.0 {
        0
    } else {
        (3 - x.abs().log10().floor() as i32).clamp(0, 6)
    };
    format!("{x:.*}", digits as usize)
}

fn value(kind: MetricKind, v: Option<f64>) -> String {
    match v {
        None => "–".to_owned(),
        Some(x) if kind == MetricKind::Conversion => format!("{:.2}%", x * 100.0),
        Some(x) => number(x, false),
    }
}

/// An effect with its interval (an open side shown as ∞).
fn estimate(e: Option<&Estimate>, as_percent: bool) -> Markup {
    let Some(e) = e else {
        return html! { span.hint { "–" } };
    };
    let side =
        |b: Option<f64>, open: &str| b.map_or_else(|| open.to_owned(), |x| number(x, as_percent));
    html! {
        span.estimate { (number(e.estimate, as_percent)) }
        " " span.interval { "[" (side(e.lower, "−∞")) ", " (side(e.upper, "∞")) "]" }
    }
}

fn p_value(p: Option<f64>) -> String {
    match p {
        None => "–".to_owned(),
        Some(p) if p < 0.0001 => "<0.0001".to_owned(),
        Some(p) => format!("{p:.4}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_well() {
        assert_eq!(number(0.031, true), "+3.10%");
        assert_eq!(number(-0.5, true), "-50.00%");
        assert_eq!(number(12.3456, false), "12.35");
        assert_eq!(number(0.012345, false), "0.01235");
        assert_eq!(p_value(Some(0.00001)), "<0.0001");
        assert_eq!(p_value(Some(0.04)), "0.0400");
        assert_eq!(value(MetricKind::Conversion, Some(0.2)), "20.00%");
    }
}
