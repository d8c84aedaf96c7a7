//! The flags list (search by name or key; filters by project, state, type, tag, evaluation
//! mode, archived; badges) and the "Create flag" dialog.
//!
//! Hooks: `form#filters` (with `stale`; its `q` box filters the rows live, `#live-count`); `form#archive-stale`; `table#flags` with `th a.sort`
//! (by name, key, last change) and rows `tr[data-flag]` with a state `.badge`, `.badge.stale`
//! (its reason in `title`), `.targeting`, `.deployments`, `.links` (`.badge.depends`,
//! `.badge.grouped`); `p.empty` when nothing is listed;
//! `button#create-flag-open`, `dialog#create-flag` with `form#create-flag-form`.

use axum::extract::{RawQuery, Request};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use vexil_core::service::{FlagOrder, FlagQuery, NewFlag, ProjectView};
use vexil_core::{EvaluationMode, FlagState, FlagType};

use super::layout::{self, csrf, error_box, state_badge, when};
use super::{call, flag_href, html, see_other, submit, ConsoleState, Fields, Session, St};

pub(crate) fn parse_type(s: Option<&str>) -> Option<FlagType> {
    match s? {
        "release" => Some(FlagType::Release),
        "experiment" => Some(FlagType::Experiment),
        _ => None,
    }
}

pub(crate) fn parse_mode(s: Option<&str>) -> Option<EvaluationMode> {
    match s? {
        "remote" => Some(EvaluationMode::Remote),
        "local" => Some(EvaluationMode::Local),
        _ => None,
    }
}

fn parse_state(s: Option<&str>) -> Option<FlagState> {
    match s? {
        "active" => Some(FlagState::Active),
        "inactive" => Some(FlagState::Inactive),
        _ => None,
    }
}

/// `POST /projects/{project}/archive-stale`: archives the project's stale flags that nothing
/// depends on, then lists the stale ones left with the outcome.
pub(crate) async fn archive_stale(
    state: St,
    session: Session,
    axum::extract::Path(project): axum::extract::Path<String>,
    request: Request,
) -> Response {
    let console = state.0;
    let p = project.clone();
    let submitted = submit(&console, &session, request, move |s, who, _| {
        s.flags.archive_stale(who, &p)
    })
    .await;
    let back = format!(
        "/flags?project={}&stale=true",
        super::form::encode(&project)
    );
    match submitted {
        Err(refusal) => refusal,
        Ok((_, Ok(done))) => {
            let mut text = format!("Archived {} stale flag(s).", done.archived.len());
            for k in &done.kept {
                text.push_str(&format!(" Kept {}: {}.", k.flag, k.reason));
            }
            see_other(&format!("{back}&notice={}", super::form::encode(&text)))
        }
        Ok((_, Err(e))) => see_other(&format!(
            "{back}&notice={}",
            super::form::encode(&e.to_string())
        )),
    }
}

/// `GET /flags`.
pub(crate) async fn list(state: St, session: Session, RawQuery(query): RawQuery) -> Response {
    let q = Fields::parse(query.unwrap_or_default().as_bytes());
    render(&state.0, &session, &q, None).await
}

async fn render(
    console: &ConsoleState,
    session: &Session,
    q: &Fields,
    error: Option<(StatusCode, Markup, Fields)>,
) -> Response {
    let query = FlagQuery {
        project: q.text("project"),
        state: parse_state(q.get("state")),
        kind: parse_type(q.get("type")),
        evaluation_mode: parse_mode(q.get("evaluation_mode")),
        tag: q.text("tag"),
        deployment: None,
        archived: Some(q.get("archived") == Some("true")),
        stale: Some(q.get("stale") == Some("true")),
        sort: match q.get("sort") {
            Some("name") => Some(FlagOrder::Name),
            Some("updated") => Some(FlagOrder::Updated),
            _ => None,
        },
        q: q.text("q"),
        offset: q.get("offset").and_then(|o| o.parse().ok()),
        limit: Some(100),
    };
    let services = console.services.clone();
    let who = super::actor(session);
    let loaded = call(move || {
        Ok((
            services.flags.list(&query)?,
            services.projects.list_for(&who)?,
        ))
    })
    .await;
    let (page, projects) = match loaded {
        Ok(x) => x,
        Err(e) => {
            return html(
                super::status_of(&e),
                layout::page(console, session, "Flags", error_box(&e, None)),
            )
        }
    };
    let (status, error, draft) = match error {
        Some((s, m, d)) => (s, Some(m), Some(d)),
        None => (StatusCode::OK, None, None),
    };
    let selected = |name: &str, value: &str| q.get(name) == Some(value);
    // The same filters in another order.
    let sorted = |by: &str| -> String {
        let mut href = format!("/flags?sort={by}");
        for name in [
            "q",
            "project",
            "state",
            "type",
            "evaluation_mode",
            "tag",
            "archived",
            "stale",
        ] {
            if let Some(v) = q.text(name) {
                href.push_str(&format!("&{name}={}", super::form::encode(&v)));
            }
        }
        href
    };
    let body = html! {
        div.titlebar {
            h1 { "Flags and experiments" }
            @if session.actor.role >= vexil_core::Role::Writer {
                button #create-flag-open type="button" data-dialog="create-flag" { "+ Create flag" }
            }
        }
        @if let Some(e) = &error { (e) }
        (super::layout::notice(q.text("notice").as_deref()))
        form #filters method="get" action="/flags" {
            input type="search" name="q" placeholder="Search by name or key" value=(q.get("q").unwrap_or_default())
                data-live-filter="table#flags tr[data-flag]" aria-describedby="live-count";
            select name="project" {
                option value="" { "All projects" }
                @for p in &projects { option value=(p.key) selected[selected("project", &p.key)] { (p.name) } }
            }
            select name="state" {
                option value="" { "Any state" }
                option value="active" selected[selected("state", "active")] { "Active" }
                option value="inactive" selected[selected("state", "inactive")] { "Inactive" }
            }
            select name="type" {
                option value="" { "Any type" }
                option value="release" selected[selected("type", "release")] { "Release" }
                option value="experiment" selected[selected("type", "experiment")] { "Experiment" }
            }
            select name="evaluation_mode" {
                option value="" { "Any mode" }
                option value="remote" selected[selected("evaluation_mode", "remote")] { "Remote" }
                option value="local" selected[selected("evaluation_mode", "local")] { "Local" }
            }
            input name="tag" placeholder="Tag" value=(q.get("tag").unwrap_or_default());
            label.inline { input type="checkbox" name="archived" value="true" checked[selected("archived", "true")]; " Archived" }
            label.inline { input type="checkbox" name="stale" value="true" checked[selected("stale", "true")]; " Stale" }
            button type="submit" { "Filter" }
        }
        @if selected("stale", "true") {
            p.hint { "Stale: unchanged for 30 days while serving one variant to everyone or nothing to anyone. Remove them from your code, then archive them." }
            @if !super::writes(session) {
            } @else if let Some(project) = q.text("project") {
                form #archive-stale method="post" action=(format!("/projects/{}/archive-stale", super::form::encode(&project))) data-confirm="Archive every stale flag of this project that nothing depends on?" {
                    (csrf(console, session))
                    button.danger type="submit" { "Archive the stale flags nothing depends on" }
                }
            } @else { p.hint { "Choose a project to archive its stale flags at once." } }
        }
        p.hint { (page.total) " flag" @if page.total != 1 { "s" } span #live-count aria-live="polite" {} }
        @if page.items.is_empty() {
            p.empty { @if q.text("q").is_some() || q.text("project").is_some() || q.text("tag").is_some() {
                "No flag matches these filters. Clear them, or create one."
            } @else { "No flags yet: create the first with “+ Create flag”, then attach it to a deployment." } }
        }
        table #flags {
            thead { tr {
                th { a.sort href=(sorted("name")) { "Name" } }
                th { a.sort href=(sorted("key")) { "Key" } }
                th { "Project" } th { "Type" } th { "State" } th { "Targeting" } th { "Served in" } th { "Links" } th { "Tags" }
                th { a.sort href=(sorted("updated")) { "Last change" } }
            } }
            tbody {
                @for f in &page.items {
                    tr data-flag=(f.key) {
                        td { a href=(flag_href(&f.project, &f.key)) { (f.name) } }
                        td { code { (f.key) } }
                        td { (f.project) }
                        td { span class=(format!("badge type-{}", f.kind.as_str())) { (f.kind.as_str()) }
                            " " span class=(format!("badge mode-{}", f.evaluation_mode.as_str())) { (f.evaluation_mode.as_str()) } }
                        td { (state_badge(f.state, f.archived))
                            @if let Some(why) = &f.stale { " " span.badge.stale title=(why) { "stale" } } }
                        td.targeting { (super::drafts::emphasis(&f.targeting)) }
                        td.deployments { @if f.deployments.is_empty() { span.hint { "none" } } @else { (f.deployments.join(", ")) } }
                        td.links {
                            @if !f.prerequisites.is_empty() { span.badge.depends title=(format!("depends on {}", f.prerequisites.join(", "))) { "depends on " (f.prerequisites.len()) } " " }
                            @if !f.groups.is_empty() { span.badge.grouped title=(f.groups.join(", ")) { "in " (f.groups.len()) " group" @if f.groups.len() != 1 { "s" } } }
                        }
                        td { @for t in &f.tags { span.tag { (t) } " " } }
                        td { (when(f.updated_at)) @if !f.updated_by.is_empty() { " by " (f.updated_by) } }
                    }
                }
            }
        }
        @if super::writes(session) {
            (create_dialog(console, session, &projects, q.text("project"), draft.as_ref(), error.is_some()))
        }
    };
    html(status, layout::page(console, session, "Flags", body))
}

fn create_dialog(
    console: &ConsoleState,
    session: &Session,
    projects: &[ProjectView],
    project: Option<String>,
    draft: Option<&Fields>,
    open: bool,
) -> Markup {
    let value = |name: &str| {
        draft
            .and_then(|d| d.get(name))
            .unwrap_or_default()
            .to_owned()
    };
    let chosen = draft
        .and_then(|d| d.text("project"))
        .or(project)
        .unwrap_or_default();
    html! {
        dialog #create-flag open[open] {
            form #create-flag-form method="post" action="/flags" {
                (csrf(console, session))
                h2 { "Create a flag or experiment" }
                label { "Project"
                    select name="project" required {
                        @for p in projects { option value=(p.key) selected[p.key == chosen] { (p.name) } }
                    }
                }
                label { "Name" input name="name" required data-key-target="create-flag-key" value=(value("name")); }
                label { "Key" input #create-flag-key name="key" pattern="[A-Za-z0-9._\\-]+" value=(value("key"));
                    span.hint { "Used in your code; generated from the name, editable until you create the flag." } }
                label { "Description" textarea name="description" rows="2" { (value("description")) } }
                label { "Type"
                    select name="type" {
                        option value="release" { "Release (feature flag)" }
                        option value="experiment" selected[value("type") == "experiment"] { "Experiment" }
                    }
                }
                label { "Evaluation mode"
                    select name="evaluation_mode" {
                        option value="remote" { "Remote (evaluated by Vexil)" }
                        option value="local" selected[value("evaluation_mode") == "local"] { "Local (evaluated in server SDKs)" }
                    }
                }
                label { "Bucketing unit"
                    input name="bucketing_unit" list="bucketing-units" value=(if value("bucketing_unit").is_empty() { "user_id".to_owned() } else { value("bucketing_unit") });
                    span.hint { "Usually the user; a group type such as company keeps a whole company in one variant." }
                }
                datalist #bucketing-units { option value="user_id"; option value="device_id"; option value="company"; }
                div.actions {
                    button type="submit" { "Create" }
                    button type="button" data-close="create-flag" { "Cancel" }
                }
            }
        }
    }
}

/// `POST /flags`.
pub(crate) async fn create(state: St, session: Session, request: Request) -> Response {
    let console = state.0;
    let submitted = submit(&console, &session, request, |s, who, f| {
        let req = NewFlag {
            project: f.text("project").unwrap_or_default(),
            name: f.text("name").unwrap_or_default(),
            key: f.text("key"),
            description: f.text("description").unwrap_or_default(),
            kind: parse_type(f.get("type")).unwrap_or(FlagType::Release),
            experiment_key: None,
            experiment: None,
            evaluation_mode: parse_mode(f.get("evaluation_mode")).unwrap_or(EvaluationMode::Remote),
            bucketing_unit: f
                .text("bucketing_unit")
                .unwrap_or_else(|| "user_id".to_owned()),
            bucketing_salt: None,
            tags: Vec::new(),
            deployments: Vec::new(),
            variants: None,
            segments: Vec::new(),
            all_other_users: None,
            inclusions: Default::default(),
            prerequisites: Vec::new(),
            mutex_group: None,
            holdouts: Vec::new(),
        };
        s.flags.create(who, req)
    })
    .await;
    match submitted {
        Err(refusal) => refusal,
        Ok((_, Ok(saved))) => see_other(&flag_href(&saved.value.project, &saved.value.key)),
        Ok((fields, Err(e))) => {
            let project = fields.text("project");
            let refused = (
                super::status_of(&e),
                error_box(&e, project.as_deref()),
                fields,
            );
            render(&console, &session, &Fields::default(), Some(refused)).await
        }
    }
}
