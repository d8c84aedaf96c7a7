//! The history of a flag or a group: every version with who, when and what changed; the
//! comparison of two versions field by field; restoring one (which is itself a new version).
//! Flags and groups share the pages; only the service calls and the links differ.
//!
//! Hooks: `table#versions` rows `tr[data-version]` with `.actor`, `.summary`, `form.restore`;
//! `form#compare` (`from`, `to`); `#changes li`.

use axum::extract::{Path, RawQuery, Request};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use vexil_core::diff::Change;
use vexil_core::service::{FlagChange, VersionMeta};
use vexil_core::GroupKind;

use super::layout::{self, csrf, error_box, when};
use super::{
    call, flag_href, form, group_href, html, see_other, submit, ConsoleState, Fields, Session, St,
};

/// How many versions the page lists.
const PAGE: u32 = 200;

/// What the history pages of one flag or group show around the versions.
struct Subject {
    project: String,
    name: String,
    /// The flag's or group's page.
    href: String,
    /// Its history page, without a query (compare and restore hang below it).
    base: String,
    version: i64,
}

impl Subject {
    fn history_href(&self) -> String {
        format!(
            "{}/history?project={}",
            self.base,
            form::encode(&self.project)
        )
    }
}

fn refused_page(
    console: &ConsoleState,
    session: &Session,
    title: &str,
    e: &vexil_core::Error,
    project: Option<&str>,
) -> Response {
    html(
        super::status_of(e),
        layout::page(console, session, title, error_box(e, project)),
    )
}

fn versions_page(
    console: &ConsoleState,
    session: &Session,
    s: &Subject,
    versions: &[VersionMeta],
    error: Option<String>,
) -> Markup {
    html! {
        p.crumbs { a href=(s.href) { (s.name) } " / History" }
        h1 { "History of " (s.name) }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form #compare method="get" action=(format!("{}/compare", s.base)) {
            input type="hidden" name="project" value=(s.project);
            label { "Compare version"
                select name="from" { @for v in versions { option value=(v.version) selected[v.version + 1 == s.version] { (v.version) } } }
            }
            label { "with"
                select name="to" { @for v in versions { option value=(v.version) selected[v.version == s.version] { (v.version) } } }
            }
            button type="submit" { "Compare" }
        }
        table #versions {
            thead { tr { th { "Version" } th { "Who" } th { "When" } th { "Action" } th { "What changed" } th {} } }
            tbody {
                @for v in versions {
                    tr data-version=(v.version) {
                        td { (v.version) }
                        td.actor { (v.actor) }
                        td.when { (when(v.at)) }
                        td.action { (v.action) }
                        td.summary { (v.summary) }
                        td {
                            @if v.version != s.version {
                                form.restore method="post" action=(format!("{}/history/{}/restore", s.base, v.version)) {
                                    (csrf(console, session))
                                    input type="hidden" name="project" value=(s.project);
                                    input type="hidden" name="version" value=(s.version);
                                    button type="submit" { "Restore version " (v.version) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Two versions compared: for a flag, first what changed for users in the product's words
/// (`summary`), then every field that changed.
fn compare_page(
    s: &Subject,
    from: i64,
    to: i64,
    summary: Option<&[String]>,
    changes: &[Change],
) -> Markup {
    let json = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .map_or_else(|| "(absent)".to_owned(), |v| v.to_string())
    };
    html! {
        p.crumbs { a href=(s.href) { (s.name) } " / " a href=(s.history_href()) { "History" } " / Compare" }
        h1 { "Version " (from) " → version " (to) }
        @if changes.is_empty() { p { "No difference." } }
        @if let Some(lines) = summary.filter(|_| !changes.is_empty()) {
            h2 { "What changed for users" }
            @if lines.is_empty() { p #summary-none { "Nothing users get: these versions differ only in descriptions, names or settings that do not change a variant." } }
            ul #summary { @for l in lines { li { (super::drafts::emphasis(l)) } } }
            h2 { "Field by field" }
        }
        ul #changes {
            @for c in changes {
                li data-path=(c.path) { code { (c.path) } ": " span.before { (json(&c.before)) } " → " span.after { (json(&c.after)) } }
            }
        }
    }
}

/// `?from=…&to=…`, 1 when absent or not a number.
fn compared(q: &Fields) -> (i64, i64) {
    let at = |name: &str| q.get(name).and_then(|v| v.parse::<i64>().ok()).unwrap_or(1);
    (at("from"), at("to"))
}

/// After a refused restore: back to the history page with the reason.
fn restore_refused(s_base: &str, project: &str, e: &vexil_core::Error) -> Response {
    see_other(&format!(
        "{s_base}/history?project={}&error={}",
        form::encode(project),
        form::encode(&e.to_string())
    ))
}

fn flag_subject(flag: &vexil_core::Flag) -> Subject {
    Subject {
        project: flag.project.clone(),
        name: flag.name.clone(),
        href: flag_href(&flag.project, &flag.key),
        base: format!("/flags/{}", form::encode(&flag.key)),
        version: flag.version,
    }
}

fn group_subject(g: &vexil_core::Group) -> Subject {
    let href = group_href(&g.project, g.kind, &g.key);
    Subject {
        project: g.project.clone(),
        name: g.name.clone(),
        base: href.clone(),
        href,
        version: g.version,
    }
}

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
    let p = project.clone();
    let loaded = call(move || {
        let flag = services.flags.get(p.as_deref(), &key)?;
        let versions = services
            .flags
            .versions(Some(&flag.project), &key, None, PAGE)?;
        Ok((flag, versions))
    })
    .await;
    let (flag, versions) = match loaded {
        Ok(x) => x,
        Err(e) => return refused_page(&console, &session, "History", &e, project.as_deref()),
    };
    let rows: Vec<VersionMeta> = versions.into_iter().map(|v| v.meta).collect();
    let body = versions_page(
        &console,
        &session,
        &flag_subject(&flag),
        &rows,
        q.text("error"),
    );
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
    let (from, to) = compared(&q);
    let services = console.services.clone();
    let p = project.clone();
    let result = call(move || {
        let flag = services.flags.get(p.as_deref(), &key)?;
        let p = Some(flag.project.as_str());
        let changes = services.flags.compare(p, &key, from, to)?;
        let summary = services.flags.describe_versions(p, &key, from, to)?;
        Ok((flag, summary, changes))
    })
    .await;
    match result {
        Ok((flag, summary, changes)) => {
            let body = compare_page(&flag_subject(&flag), from, to, Some(&summary), &changes);
            html(
                StatusCode::OK,
                layout::page(&console, &session, "Compare", body),
            )
        }
        Err(e) => refused_page(&console, &session, "Compare", &e, project.as_deref()),
    }
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
        s.flags.apply(
            who,
            f.text("project").as_deref(),
            &k,
            f.version(),
            vec![FlagChange::Restore { version }],
        )
    })
    .await;
    let (fields, result) = match submitted {
        Ok(x) => x,
        Err(refusal) => return refusal,
    };
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
            let base = format!("/flags/{}", form::encode(&key));
            restore_refused(&base, &fields.text("project").unwrap_or_default(), &e)
        }
    }
}

/// `GET /projects/{project}/{mutex-groups|holdouts}/{key}/history`.
pub(crate) async fn group_list(
    state: St,
    session: Session,
    Path((project, key)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    kind: GroupKind,
) -> Response {
    let console = state.0;
    let q = Fields::parse(query.unwrap_or_default().as_bytes());
    let services = console.services.clone();
    let p = project.clone();
    let loaded = call(move || {
        let view = services.groups.get(&p, kind, &key)?;
        let versions = services.groups.versions(&p, kind, &key, None, PAGE)?;
        Ok((view.group, versions))
    })
    .await;
    let (group, versions) = match loaded {
        Ok(x) => x,
        Err(e) => return refused_page(&console, &session, "History", &e, Some(&project)),
    };
    let rows: Vec<VersionMeta> = versions.into_iter().map(|v| v.meta).collect();
    let body = versions_page(
        &console,
        &session,
        &group_subject(&group),
        &rows,
        q.text("error"),
    );
    html(
        StatusCode::OK,
        layout::page(&console, &session, "History", body),
    )
}

/// `GET /projects/{project}/{mutex-groups|holdouts}/{key}/compare?from=…&to=…`.
pub(crate) async fn group_compare(
    state: St,
    session: Session,
    Path((project, key)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    kind: GroupKind,
) -> Response {
    let console = state.0;
    let q = Fields::parse(query.unwrap_or_default().as_bytes());
    let (from, to) = compared(&q);
    let services = console.services.clone();
    let p = project.clone();
    let result = call(move || {
        let view = services.groups.get(&p, kind, &key)?;
        let changes = services.groups.compare(&p, kind, &key, from, to)?;
        Ok((view.group, changes))
    })
    .await;
    match result {
        Ok((group, changes)) => {
            let body = compare_page(&group_subject(&group), from, to, None, &changes);
            html(
                StatusCode::OK,
                layout::page(&console, &session, "Compare", body),
            )
        }
        Err(e) => refused_page(&console, &session, "Compare", &e, Some(&project)),
    }
}

/// `POST /projects/{project}/{mutex-groups|holdouts}/{key}/history/{version}/restore`.
pub(crate) async fn group_restore(
    state: St,
    session: Session,
    Path((project, key, version)): Path<(String, String, i64)>,
    request: Request,
    kind: GroupKind,
) -> Response {
    let console = state.0;
    let (p, k) = (project.clone(), key.clone());
    let submitted = submit(&console, &session, request, move |s, who, f| {
        s.groups.restore(who, &p, kind, &k, f.version(), version)
    })
    .await;
    match submitted {
        Err(refusal) => refusal,
        Ok((_, Ok(s))) => see_other(&format!(
            "{}?notice={}",
            group_href(&project, kind, &key),
            form::encode(&format!(
                "Restored version {version} as version {}.",
                s.value.version
            ))
        )),
        Ok((_, Err(e))) => restore_refused(&group_href(&project, kind, &key), &project, &e),
    }
}
