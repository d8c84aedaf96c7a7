//! Projects and their deployments: list and create projects; a project's credentials, its
//! deployments with their SDK keys (and a copy button), create and archive deployments.
//!
//! Hooks: `table#projects`, `form#new-project`; `#project-api-key`, `#project-secret-key`,
//! `table#deployments` rows `tr[data-deployment]` with `.deployment-key`, `button.copy`,
//! `form.archive-deployment`; `form#new-deployment`; `a#cohorts-link`.

use axum::extract::{Path, Request};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use vexil_core::service::{DeploymentPatch, NewDeployment, NewProject};
use vexil_core::{DeploymentType, Project};

use super::layout::{self, csrf, error_box};
use super::{call, form, html, see_other, submit, ConsoleState, Session, St};

/// `GET /projects`.
pub(crate) async fn list(state: St, session: Session) -> Response {
    render_list(&state.0, &session, None).await
}

async fn render_list(console: &ConsoleState, session: &Session, error: Option<Markup>) -> Response {
    let services = console.services.clone();
    let projects = call(move || services.projects.list()).await;
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let body = html! {
        h1 { "Projects" }
        @if let Some(e) = error { (e) }
        @match &projects {
            Err(e) => (error_box(e, None)),
            Ok(list) => {
                table #projects {
                    thead { tr { th { "Name" } th { "Key" } th { "Description" } } }
                    tbody {
                        @for p in list {
                            tr data-project=(p.key) {
                                td { a href=(format!("/projects/{}", form::encode(&p.key))) { (p.name) } }
                                td { code { (p.key) } }
                                td { (p.description) }
                            }
                        }
                    }
                }
                @if list.is_empty() { p.hint { "No project yet: create one to hold your deployments and flags." } }
            }
        }
        h2 { "New project" }
        form #new-project method="post" action="/projects" {
            (csrf(console, session))
            label { "Name" input name="name" required; }
            label { "Description" input name="description"; }
            button type="submit" { "Create project" }
        }
    };
    html(status, layout::page(console, session, "Projects", body))
}

/// `POST /projects`.
pub(crate) async fn create(state: St, session: Session, request: Request) -> Response {
    let console = state.0;
    let submitted = submit(&console, &session, request, |s, who, f| {
        let req = NewProject {
            name: f.text("name").unwrap_or_default(),
            key: f.text("key"),
            description: f.text("description").unwrap_or_default(),
        };
        s.projects.create(who, req)
    })
    .await;
    match submitted {
        Err(refusal) => refusal,
        Ok((_, Ok(p))) => see_other(&format!("/projects/{}", form::encode(&p.key))),
        Ok((_, Err(e))) => render_list(&console, &session, Some(error_box(&e, None))).await,
    }
}

/// `GET /projects/{project}`.
pub(crate) async fn show(state: St, session: Session, Path(project): Path<String>) -> Response {
    render(&state.0, &session, &project, None).await
}

async fn render(
    console: &ConsoleState,
    session: &Session,
    key: &str,
    error: Option<(StatusCode, Markup)>,
) -> Response {
    let services = console.services.clone();
    let k = key.to_owned();
    let loaded = call(move || {
        let project = services.projects.get(&k)?;
        let deployments = services.deployments.list(&k)?;
        Ok((project, deployments))
    })
    .await;
    let (project, deployments) = match loaded {
        Ok(x) => x,
        Err(e) => {
            return html(
                super::status_of(&e),
                layout::page(console, session, "Project", error_box(&e, None)),
            )
        }
    };
    let (status, error) = match error {
        Some((s, m)) => (s, Some(m)),
        None => (StatusCode::OK, None),
    };
    let base = format!("/projects/{}", form::encode(&project.key));
    let body = html! {
        p.crumbs { a href="/projects" { "Projects" } " / " (project.name) }
        h1 { (project.name) }
        @if let Some(e) = error { (e) }
        (credentials(&project))
        p { a #cohorts-link href=(format!("{base}/cohorts")) { "Cohorts" } " · "
            a href=(format!("/flags?project={}", form::encode(&project.key))) { "Flags of this project" } }
        h2 { "Deployments" }
        p.hint { "SDKs authenticate with a deployment's key and see only the flags attached to it. "
            "Server keys are for backends (remote and local evaluation); client keys for browsers and apps." }
        table #deployments {
            thead { tr { th { "Label" } th { "Type" } th { "SDK key" } th {} } }
            tbody {
                @for d in &deployments {
                    tr data-deployment=(d.key) {
                        td { (d.label) " " @if d.archived { span.badge.archived { "archived" } } }
                        td { span.badge { (d.kind.as_str()) } }
                        td {
                            code.deployment-key { (d.api_key) }
                            " " button.copy type="button" data-copy=(d.api_key) { "Copy" }
                        }
                        td {
                            form.archive-deployment method="post" action=(format!("{base}/deployments/{}/archive", form::encode(&d.key))) {
                                (csrf(console, session))
                                input type="hidden" name="version" value=(d.version);
                                input type="hidden" name="archived" value=(if d.archived { "false" } else { "true" });
                                button type="submit" { @if d.archived { "Unarchive" } @else { "Archive" } }
                            }
                        }
                    }
                }
            }
        }
        h2 { "New deployment" }
        form #new-deployment method="post" action=(format!("{base}/deployments")) {
            (csrf(console, session))
            label { "Label" input name="label" required placeholder="Production"; }
            label { "Type"
                select name="type" {
                    option value="server" { "server (backends)" }
                    option value="client" { "client (browsers, apps)" }
                }
            }
            button type="submit" { "Create deployment" }
        }
    };
    html(status, layout::page(console, session, &project.name, body))
}

/// The project's API and secret keys: cohort sync and exposure events use them.
fn credentials(project: &Project) -> Markup {
    html! {
        details.credentials {
            summary { "Project credentials (cohort sync, exposure events)" }
            dl {
                dt { "API key" }
                dd { code #project-api-key { (project.api_key) } " " button.copy type="button" data-copy=(project.api_key) { "Copy" } }
                dt { "Secret key" }
                dd { code #project-secret-key { (project.secret_key) } " " button.copy type="button" data-copy=(project.secret_key) { "Copy" } }
            }
        }
    }
}

/// After a deployment change: the project page, or the page again with the reason.
async fn after(
    console: &ConsoleState,
    session: &Session,
    project: &str,
    submitted: Result<(super::Fields, vexil_core::Result<vexil_core::Deployment>), Response>,
) -> Response {
    match submitted {
        Err(refusal) => refusal,
        Ok((_, Ok(_))) => see_other(&format!("/projects/{}", form::encode(project))),
        Ok((_, Err(e))) => {
            let refused = Some((super::status_of(&e), error_box(&e, Some(project))));
            render(console, session, project, refused).await
        }
    }
}

/// `POST /projects/{project}/deployments`.
pub(crate) async fn create_deployment(
    state: St,
    session: Session,
    Path(project): Path<String>,
    request: Request,
) -> Response {
    let console = state.0;
    let p = project.clone();
    let submitted = submit(&console, &session, request, move |s, who, f| {
        let kind = match f.get("type") {
            Some("client") => DeploymentType::Client,
            _ => DeploymentType::Server,
        };
        let req = NewDeployment {
            label: f.text("label").unwrap_or_default(),
            key: f.text("key"),
            kind,
        };
        s.deployments.create(who, &p, req)
    })
    .await;
    after(&console, &session, &project, submitted).await
}

/// `POST /projects/{project}/deployments/{deployment}/archive`: archives or unarchives.
pub(crate) async fn archive_deployment(
    state: St,
    session: Session,
    Path((project, deployment)): Path<(String, String)>,
    request: Request,
) -> Response {
    let console = state.0;
    let p = project.clone();
    let submitted = submit(&console, &session, request, move |s, who, f| {
        let patch = DeploymentPatch {
            archived: Some(f.get("archived") != Some("false")),
            ..DeploymentPatch::default()
        };
        s.deployments
            .update(who, &p, &deployment, f.version(), patch)
    })
    .await;
    after(&console, &session, &project, submitted).await
}
