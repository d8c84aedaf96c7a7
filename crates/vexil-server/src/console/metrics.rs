//! A project's metrics: the list (the predefined ones first) and a form that defines a
//! conversion, count, sum or ratio metric, with up to three property filters and winsorization,
//! in one `MetricService::create` call. A refused form is shown again as typed, with the reason.
//!
//! Hooks: `table#metrics` rows `tr[data-metric]`, `form#new-metric` (fields `name`, `type`,
//! `event_type`, `property`, `numerator`, `denominator`, `filter_scope`, `filter_property`,
//! `filter_op`, `filter_value` (once per filter row, in `.filter-row`), `direction`,
//! `conversion_window_hours`, `winsorize_percentile`).

use axum::extract::{Path, Request};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use vexil_core::service::NewMetric;
use vexil_core::{
    Direction, Error, FieldError, FilterOp, Metric, MetricKind, PropertyFilter, PropertyScope,
};

use super::layout::{self, csrf, error_box, notice};

/// Filter rows the metric form offers.
const FILTER_ROWS: usize = 3;
use super::{call, form, html, see_other, submit, ConsoleState, Fields, Session, St};

/// `GET /projects/{project}/metrics`.
pub(crate) async fn list(
    state: St,
    session: Session,
    Path(project): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let q = Fields::parse(query.unwrap_or_default().as_bytes());
    render(&state.0, &session, &project, q.text("notice"), None).await
}

/// `POST /projects/{project}/metrics`.
pub(crate) async fn create(
    state: St,
    session: Session,
    Path(project): Path<String>,
    request: Request,
) -> Response {
    let console = state.0;
    let p = project.clone();
    let submitted = submit(&console, &session, request, move |s, who, f| {
        s.metrics.create(who, &p, new_metric(f)?)
    })
    .await;
    match submitted {
        Err(refusal) => refusal,
        Ok((_, Ok(saved))) => see_other(&format!(
            "/projects/{}/metrics?notice={}",
            form::encode(&project),
            form::encode(&format!("Metric {} created.", saved.value.key))
        )),
        Ok((fields, Err(e))) => {
            let refusal = (super::status_of(&e), error_box(&e, Some(&project)), fields);
            render(&console, &session, &project, None, Some(refusal)).await
        }
    }
}

/// The metric a form describes.
fn new_metric(f: &Fields) -> vexil_core::Result<NewMetric> {
    let invalid = |field: &str, code: &'static str, message: &str| {
        Error::Invalid(vec![FieldError::new(field, code, message)])
    };
    let kind = match f.get("type").unwrap_or_default() {
        "conversion" => MetricKind::Conversion,
        "count" => MetricKind::Count,
        "sum" => MetricKind::Sum,
        "ratio" => MetricKind::Ratio,
        _ => {
            return Err(invalid(
                "type",
                "invalid",
                "choose conversion, count, sum or ratio",
            ))
        }
    };
    let ratio = kind == MetricKind::Ratio;
    let winsorize_percentile = match f.text("winsorize_percentile") {
        None => None,
        Some(text) => Some(text.parse::<f64>().map_err(|_| {
            invalid(
                "winsorize_percentile",
                "invalid_number",
                "the winsorization percentile is a number such as 99",
            )
        })?),
    };
    // Filter rows: the four fields repeat, one set per row; a row without a property is empty.
    let (scopes, properties) = (f.all("filter_scope"), f.all("filter_property"));
    let (ops, values) = (f.all("filter_op"), f.all("filter_value"));
    let filters = if ratio {
        Vec::new()
    } else {
        properties
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.trim().is_empty())
            .map(|(i, property)| {
                let op = match ops.get(i).map_or("is", String::as_str) {
                    "is_not" => FilterOp::IsNot,
                    "contains" => FilterOp::Contains,
                    "greater" => FilterOp::Greater,
                    "greater_or_equal" => FilterOp::GreaterOrEqual,
                    "less" => FilterOp::Less,
                    "less_or_equal" => FilterOp::LessOrEqual,
                    _ => FilterOp::Is,
                };
                let scope = match scopes.get(i).map(String::as_str) {
                    Some("user") => PropertyScope::User,
                    _ => PropertyScope::Event,
                };
                let values = values
                    .get(i)
                    .map(|v| {
                        v.split(',')
                            .map(|x| x.trim().to_owned())
                            .filter(|x| !x.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                PropertyFilter {
                    scope,
                    property: property.trim().to_owned(),
                    op,
                    values,
                }
            })
            .collect()
    };
    let window = match f.text("conversion_window_hours") {
        None => None,
        Some(text) => Some(text.parse::<u32>().map_err(|_| {
            invalid(
                "conversion_window_hours",
                "invalid_number",
                "the conversion window is a whole number of hours",
            )
        })?),
    };
    Ok(NewMetric {
        name: f.text("name").unwrap_or_default(),
        key: f.text("key"),
        description: f.text("description").unwrap_or_default(),
        kind,
        event_type: f.text("event_type").filter(|_| !ratio),
        property: f.text("property").filter(|_| kind == MetricKind::Sum),
        filters,
        numerator: f.text("numerator").filter(|_| ratio),
        denominator: f.text("denominator").filter(|_| ratio),
        conversion_window_hours: window,
        direction: match f.get("direction") {
            Some("decrease") => Direction::Decrease,
            _ => Direction::Increase,
        },
        winsorize_percentile,
    })
}

async fn render(
    console: &ConsoleState,
    session: &Session,
    project: &str,
    notice_text: Option<String>,
    refusal: Option<(StatusCode, Markup, Fields)>,
) -> Response {
    let services = console.services.clone();
    let p = project.to_owned();
    let metrics = call(move || services.metrics.list(&p, false)).await;
    let body = match &metrics {
        Err(e) => error_box(e, None),
        Ok(list) => page(
            console,
            session,
            project,
            list,
            notice_text,
            refusal.as_ref(),
        ),
    };
    let status = match (&metrics, &refusal) {
        (Err(e), _) => super::status_of(e),
        (Ok(_), Some((status, _, _))) => *status,
        (Ok(_), None) => StatusCode::OK,
    };
    html(status, layout::page(console, session, "Metrics", body))
}

fn page(
    console: &ConsoleState,
    session: &Session,
    project: &str,
    list: &[Metric],
    notice_text: Option<String>,
    refusal: Option<&(StatusCode, Markup, Fields)>,
) -> Markup {
    let draft = refusal.map(|(_, _, f)| f);
    let value = |name: &str| {
        draft
            .and_then(|d| d.get(name))
            .unwrap_or_default()
            .to_owned()
    };
    let kind = draft.and_then(|d| d.get("type")).unwrap_or("conversion");
    let direction = draft.and_then(|d| d.get("direction")).unwrap_or("increase");
    let base = format!("/projects/{}", form::encode(project));
    html! {
        p.crumbs { a href="/projects" { "Projects" } " / " a href=(base) { (project) } " / Metrics" }
        h1 { "Metrics" }
        p.hint { "What experiments are judged on: each metric counts events your applications send ("
            code { "/2/httpapi" } ", " code { "/batch" } "). An event type must have been received before a metric can use it." }
        (notice(notice_text.as_deref()))
        table #metrics {
            thead { tr { th { "Name" } th { "Key" } th { "Type" } th { "Event" } th { "Direction" } th { "Window" } } }
            tbody {
                @for m in list {
                    tr data-metric=(m.key) {
                        td { (m.name) @if m.builtin { " " span.badge { "predefined" } } }
                        td { code { (m.key) } }
                        td { (m.kind.as_str()) }
                        td {
                            @if let (Some(n), Some(d)) = (&m.numerator, &m.denominator) {
                                code { (n) } " / " code { (d) }
                            } @else {
                                code { (m.event_type.as_deref().unwrap_or("")) }
                            }
                            @if let Some(p) = &m.property { " · sum of " code { (p) } }
                            @for f in &m.filters { " · where " code { (f.property) } " " (format!("{:?}", f.op).to_lowercase()) " " (f.values.join(", ")) }
                            @if let Some(w) = m.winsorize_percentile { " · winsorized at p" (w) }
                        }
                        td { @match m.direction { Direction::Increase => "increase", Direction::Decrease => "decrease" } }
                        td { @match m.conversion_window_hours { Some(h) => { (h) " h" }, None => "–" } }
                    }
                }
            }
        }
        h2 { "New metric" }
        @if let Some((_, e, _)) = refusal { (e) }
        @if super::writes(session) {
            form #new-metric method="post" action=(format!("{base}/metrics")) {
                (csrf(console, session))
                label { "Name" input name="name" value=(value("name")) required; }
                label { "Type"
                    select name="type" {
                        option value="conversion" selected[kind == "conversion"] { "Conversion (did the event at least once)" }
                        option value="count" selected[kind == "count"] { "Count (events per unit)" }
                        option value="sum" selected[kind == "sum"] { "Sum of a numeric property" }
                        option value="ratio" selected[kind == "ratio"] { "Ratio of two metrics" }
                    }
                }
                label { "Event type" input name="event_type" value=(value("event_type")) placeholder="Purchase";
                    span.hint { "Not for ratios." } }
                label { "Property (sums)" input name="property" value=(value("property")) placeholder="amount"; }
                fieldset #ratio-parts {
                    legend { "Ratio: numerator over denominator" }
                    @for (field, label) in [("numerator", "Numerator"), ("denominator", "Denominator")] {
                        label { (label)
                            select name=(field) {
                                option value="" { "(choose)" }
                                @for m in list.iter().filter(|m| m.kind != MetricKind::Ratio) {
                                    option value=(m.key) selected[value(field) == m.key] { (m.name) }
                                }
                            }
                        }
                    }
                }
                fieldset #metric-filter {
                    legend { "Only events where (optional; every row must hold)" }
                    @for row in 0..FILTER_ROWS {
                        @let cell = |name: &str| draft.and_then(|d| d.all(name).get(row).cloned()).unwrap_or_default();
                        div.filter-row {
                            select name="filter_scope" aria-label="Property of" {
                                option value="event" selected[cell("filter_scope") != "user"] { "event property" }
                                option value="user" selected[cell("filter_scope") == "user"] { "user property" }
                            }
                            input name="filter_property" value=(cell("filter_property")) placeholder=[(row == 0).then_some("plan")] aria-label="Property";
                            select name="filter_op" aria-label="Operator" {
                                @for (op, text) in [("is", "is"), ("is_not", "is not"), ("contains", "contains"),
                                                    ("greater", ">"), ("greater_or_equal", "≥"), ("less", "<"), ("less_or_equal", "≤")] {
                                    option value=(op) selected[cell("filter_op") == op] { (text) }
                                }
                            }
                            input name="filter_value" value=(cell("filter_value")) placeholder=[(row == 0).then_some("pro, team")] aria-label="Values (comma-separated)";
                        }
                    }
                }
                label { "Desired direction"
                    select name="direction" {
                        option value="increase" selected[direction == "increase"] { "Increase" }
                        option value="decrease" selected[direction == "decrease"] { "Decrease" }
                    }
                }
                label { "Conversion window (hours)" input name="conversion_window_hours" value=(value("conversion_window_hours")) inputmode="numeric" placeholder="none";
                    span.hint { "Events count only this long after a unit's first exposure." } }
                label { "Winsorize at percentile" input name="winsorize_percentile" value=(value("winsorize_percentile")) inputmode="decimal" placeholder="none";
                    span.hint { "Caps each unit's value at this percentile of its variant (e.g. 99), for counts and sums." } }
                button type="submit" { "Create metric" }
            }
        }
    }
}
