//! A project's cohorts: size and last update, upload of a CSV (from a file or pasted), and
//! deletion, refused while a flag uses the cohort.
//!
//! Hooks: `table#cohorts` rows `tr[data-cohort]` with `.size` and `.updated`;
//! `form#upload-cohort` (`id`, `name`, `group_type`, `members`, `file`, `replace`);
//! `form.delete-cohort`.

use axum::extract::{Path, Request};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use vexil_core::service::{parse_members, CohortUpload, MemberFormat};

use super::layout::{self, csrf, error_box, when};
use super::{call, form, html, see_other, submit, submit_upload, ConsoleState, Session, St};

/// `GET /projects/{project}/cohorts`.
pub(crate) async fn list(state: St, session: Session, Path(project): Path<String>) -> Response {
    render(&state.0, &session, &project, None).await
}

async fn render(
    console: &ConsoleState,
    session: &Session,
    project: &str,
    error: Option<(StatusCode, Markup)>,
) -> Response {
    let services = console.services.clone();
    let p = project.to_owned();
    let who = super::actor(session);
    let loaded = call(move || {
        Ok((
            services.projects.get_for(&who, &p)?,
            services.cohorts.list(&p)?,
        ))
    })
    .await;
    let (project_doc, cohorts) = match loaded {
        Ok(x) => x,
        Err(e) => {
            return html(
                super::status_of(&e),
                layout::page(console, session, "Cohorts", error_box(&e, Some(project))),
            )
        }
    };
    let (status, error) = match error {
        Some((s, m)) => (s, Some(m)),
        None => (StatusCode::OK, None),
    };
    let base = format!("/projects/{}/cohorts", form::encode(project));
    let body = html! {
        p.crumbs { a href="/projects" { "Projects" } " / "
            a href=(format!("/projects/{}", form::encode(project))) { (project_doc.name) } " / Cohorts" }
        h1 { "Cohorts" }
        @if let Some(e) = error { (e) }
        p.hint { "Static sets of users (or of groups, for a group type). Target them in a segment with "
            em { "user in cohort" } ", or include their members in a variant." }
        table #cohorts {
            thead { tr { th { "Cohort" } th { "Group type" } th { "Size" } th { "Last update" } th {} } }
            tbody {
                @for c in &cohorts {
                    tr data-cohort=(c.id) {
                        td { (c.name) " " code { (c.id) } }
                        td { (c.group_type) }
                        td.size { (c.size) }
                        td.updated { (when(c.updated_at)) }
                        td {
                            @if super::writes(session) {
                                form.delete-cohort method="post" action=(format!("{base}/{}/delete", form::encode(&c.id))) {
                                    (csrf(console, session))
                                    input type="hidden" name="version" value=(c.version);
                                    button type="submit" { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if cohorts.is_empty() { p.hint { "No cohort yet." } }
        h2 { "Upload a cohort" }
        @if super::writes(session) {
            form #upload-cohort method="post" action=(base) {
                (csrf(console, session))
                label { "Id" input name="id" required placeholder="beta-users"; }
                label { "Name" input name="name" placeholder="Beta users"; }
                label { "Group type" input name="group_type" value="User"; }
                label { "CSV file (one id per line; a header line is skipped)" input type="file" name="file" accept=".csv,text/csv,text/plain"; }
                label { "Members" textarea name="members" rows="6" placeholder="user-1\nuser-2" {} }
                label.inline { input type="checkbox" name="replace" value="1"; " Replace the members of an existing cohort with this id" }
                button type="submit" { "Upload" }
            }
        }
    };
    html(status, layout::page(console, session, "Cohorts", body))
}

/// After a cohort change: the cohorts page, or the page again with the reason.
async fn after<R>(
    console: &ConsoleState,
    session: &Session,
    project: &str,
    submitted: Result<(super::Fields, vexil_core::Result<R>), Response>,
) -> Response {
    match submitted {
        Err(refusal) => refusal,
        Ok((_, Ok(_))) => see_other(&format!("/projects/{}/cohorts", form::encode(project))),
        Ok((_, Err(e))) => {
            let refused = Some((super::status_of(&e), error_box(&e, Some(project))));
            render(console, session, project, refused).await
        }
    }
}

/// `POST /projects/{project}/cohorts`: creates a cohort, or replaces one with `replace`.
pub(crate) async fn upload(
    state: St,
    session: Session,
    Path(project): Path<String>,
    request: Request,
) -> Response {
    let console = state.0;
    let p = project.clone();
    let submitted = submit_upload(&console, &session, request, move |s, who, f| {
        let id = f.text("id");
        let upload = CohortUpload {
            name: f.text("name").or_else(|| id.clone()).unwrap_or_default(),
            id,
            description: String::new(),
            group_type: f.text("group_type").unwrap_or_else(|| "User".to_owned()),
        };
        let members = parse_members(
            f.get("members").unwrap_or_default().as_bytes(),
            MemberFormat::Csv,
        )?;
        // Replacing names the version just read: the user asked to replace what is there.
        let expected = match (&upload.id, f.get("replace") == Some("1")) {
            (Some(id), true) => s.cohorts.get(&p, id).ok().map(|c| c.version),
            _ => None,
        };
        s.cohorts.upload(who, &p, upload, members, expected)
    })
    .await;
    after(&console, &session, &project, submitted).await
}

/// `POST /projects/{project}/cohorts/{cohort}/delete`.
pub(crate) async fn delete(
    state: St,
    session: Session,
    Path((project, cohort)): Path<(String, String)>,
    request: Request,
) -> Response {
    let console = state.0;
    let p = project.clone();
    let submitted = submit(&console, &session, request, move |s, who, f| {
        s.cohorts.delete(who, &p, &cohort, f.version())
    })
    .await;
    after(&console, &session, &project, submitted).await
}
