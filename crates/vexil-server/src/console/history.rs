//! A flag's history: every version with who, when and what changed; the comparison of two
//! versions field by field; restoring one (which is itself a new version).
//!
//! Hooks: `table#versions` rows `tr[data-version]` with `.actor`, `.summary`, `form.restore`;
//! `form#compare` (`from`, `to`); `#changes li`.

use axum::extract::{Path, RawQuery, Request};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::layout::{self, csrf, error_box, when};
use super::{call, flag_href, form, html, see_other, submit, Fields, Session, St};

/// How many versions the page lists.
const PAGE: u32 = 200;

/// `GET /flags/{key}/history?project=…`.
pub(crate) async fn list(
    state: St,
    session: Session,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let console = state.0;
    let q = Fields::parse(query.unwrap_or_default().as_bytes());
    let project = q.text("project");
    let services = console.services.clone();
    let (p, k) = (project.clone(), key.clone());
    let loaded = call(move || {
        let flag = services.flags.get(p.as_deref(), &k)?;
        let versions = services
            .flags
            .versions(Some(&flag.project), &k, None, PAGE)?;
        Ok((flag, versions))
    })
    .await;
    let (flag, versions) = match loaded {
        Ok(x) => x,
        Err(e) => {
            return html(
                super::status_of(&e),
                layout::page(
                    &console,
                    &session,
                    "History",
                    error_box(&e, project.as_deref()),
                ),
            )
        }
    };
    let base = format!("/flags/{}", form::encode(&flag.key));
    let body = html! {
        p.crumbs { a href=(flag_href(&flag.project, &flag.key)) { (flag.name) } " / History" }
        h1 { "History of " (flag.name) }
        @if let Some(e) = q.text("error") { p.error role="alert" { (e) } }
        form #compare method="get" action=(format!("{base}/compare")) {
            input type="hidden" name="project" value=(flag.project);
            label { "Compare version"
                select name="from" { @for v in &versions { option value=(v.version) selected[v.version + 1 == flag.version] { (v.version) } } }
            }
            label { "with"
                select name="to" { @for v in &versions { option value=(v.version) selected[v.version == flag.version] { (v.version) } } }
            }
            button type="submit" { "Compare" }
        }
        table #versions {
            thead { tr { th { "Version" } th { "Who" } th { "When" } th { "Action" } th { "What changed" } th {} } }
            tbody {
                @for v in &versions {
                    tr data-version=(v.version) {
                        td { (v.version) }
                        td.actor { (v.actor) }
                        td.when { (when(v.at)) }
                        td.action { (v.action) }
                        td.summary { (v.summary) }
                        td {
                            @if v.version != flag.version {
                                form.restore method="post" action=(format!("{base}/history/{}/restore", v.version)) {
                                    (csrf(&console, &session))
                                    input type="hidden" name="project" value=(flag.project);
                                    input type="hidden" name="version" value=(flag.version);
                                    button type="submit" { "Restore" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    html(
        StatusCode::OK,
        layout::page(&console, &session, "History", body),
    )
}

/// `GET /flags/{key}/compare?project=…&from=…&to=…`.
pub(crate) async fn compare(
    state: St,
    session: Session,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let console = state.0;
    let q = Fields::parse(query.unwrap_or_default().as_bytes());
    let project = q.text("project");
    let from = q
        .get("from")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(1);
    let to = q.get("to").and_then(|v| v.parse::<i64>().ok()).unwrap_or(1);
    let services = console.services.clone();
    let (p, k) = (project.clone(), key.clone());
    let result = call(move || {
        let flag = services.flags.get(p.as_deref(), &k)?;
        let changes = services.flags.compare(Some(&flag.project), &k, from, to)?;
        Ok((flag, changes))
    })
    .await;
    let (flag, changes) = match result {
        Ok(x) => x,
        Err(e) => {
            return html(
                super::status_of(&e),
                layout::page(
                    &console,
                    &session,
                    "Compare",
                    error_box(&e, project.as_deref()),
                ),
            )
        }
    };
    let json = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .map_or_else(|| "(absent)".to_owned(), |v| v.to_string())
    };
    let body = html! {
        p.crumbs { a href=(flag_href(&flag.project, &flag.key)) { (flag.name) } " / "
            a href=(format!("/flags/{}/history?project={}", form::encode(&flag.key), form::encode(&flag.project))) { "History" } " / Compare" }
        h1 { "Version " (from) " → version " (to) }
        @if changes.is_empty() { p { "No difference." } }
        ul #changes {
            @for c in &changes {
                li data-path=(c.path) { code { (c.path) } ": " span.before { (json(&c.before)) } " → " span.after { (json(&c.after)) } }
            }
        }
    };
    html(
        StatusCode::OK,
        layout::page(&console, &session, "Compare", body),
    )
}

/// `POST /flags/{key}/history/{version}/restore`.
pub(crate) async fn restore(
    state: St,
    session: Session,
    Path((key, version)): Path<(String, i64)>,
    request: Request,
) -> Response {
    let console = state.0;
    let k = key.clone();
    let submitted = submit(&console, &session, request, move |s, who, f| {
        s.flags
            .restore(who, f.text("project").as_deref(), &k, f.version(), version)
    })
    .await;
    let (fields, result) = match submitted {
        Ok(x) => x,
        Err(refusal) => return refusal,
    };
    let project = fields.text("project");
    match result {
        Ok(s) => see_other(&format!(
            "{}&notice={}",
            flag_href(&s.value.project, &s.value.key),
            form::encode(&format!(
                "Restored version {version} as version {}.",
                s.value.version
            ))
        )),
        Err(e) => {
            let to = format!(
                "/flags/{}/history?project={}&error={}",
                form::encode(&key),
                form::encode(project.as_deref().unwrap_or_default()),
                form::encode(&e.to_string())
            );
            see_other(&to)
        }
    }
}
