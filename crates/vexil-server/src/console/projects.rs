//! Projects and their deployments: list and create projects; a project's credentials, its
//! deployments with their SDK keys (and a copy button), create and archive deployments. Readers
//! see neither credentials nor SDK keys (the services' views leave them out). A project's
//! secret key is stored only as a hash, so the page shows it once: in the answer to the form
//! that created the project.
//!
//! Hooks: `table#projects`, `form#new-project`; `#project-api-key`, `#project-secret-key`,
//! `table#deployments` rows `tr[data-deployment]` with `.deployment-key`, `button.copy`,
//! `form.archive-deployment`; `form#new-deployment`; `a#cohorts-link`, `a#groups-link`, `a#metrics-link`, `a#audit-link`, `a#user-link`; the Webhooks section
//! (`webhooks.rs`).

use axum::extract::{Path, Request};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use vexil_core::service::{DeploymentPatch, NewDeployment, NewProject, ProjectView};
use vexil_core::DeploymentType;

use super::layout::{self, csrf, error_box};
use super::{call, form, html, see_other, submit, ConsoleState, Session, St};

/// `GET /projects`.
pub(crate) async fn list(state: St, session: Session) -> Response {
    render_list(&state.0, &session, None).await
}

async fn render_list(console: &ConsoleState, session: &Session, error: Option<Markup>) -> Response {
    let services = console.services.clone();
    let who = super::actor(session);
    let projects = call(move || services.projects.list_for(&who)).await;
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
        @if super::writes(session) {
            form #new-project method="post" action="/projects" {
                (csrf(console, session))
                label { "Name" input name="name" required; }
                label { "Description" input name="description"; }
                button type="submit" { "Create project" }
            }
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
        // The project's page at once, not a redirect: its secret key is in this answer only.
        Ok((_, Ok(p))) => render(&console, &session, &p.key.clone(), Some(p), None).await,
        Ok((_, Err(e))) => render_list(&console, &session, Some(error_box(&e, None))).await,
    }
}

/// `GET /projects/{project}`.
pub(crate) async fn show(state: St, session: Session, Path(project): Path<String>) -> Response {
    render(&state.0, &session, &project, None, None).await
}

/// The project's page; `created` is the answer of its creation, whose secret key it shows.
async fn render(
    console: &ConsoleState,
    session: &Session,
    key: &str,
    created: Option<ProjectView>,
    error: Option<(StatusCode, Markup)>,
) -> Response {
    let services = console.services.clone();
    let k = key.to_owned();
    let who = super::actor(session);
    let loaded = call(move || {
        let project = services.projects.get_for(&who, &k)?;
        let deployments = services.deployments.list_for(&who, &k)?;
        let webhooks = super::webhooks::load(&services, &who, &k)?;
        let policy = services.drafts.policy(&k)?;
        Ok((project, deployments, webhooks, policy))
    })
    .await;
    let (mut project, deployments, webhooks, policy) = match loaded {
        Ok(x) => x,
        Err(e) => {
            return html(
                super::status_of(&e),
                layout::page(console, session, "Project", error_box(&e, None)),
            )
        }
    };
    project.secret_key = created.and_then(|c| c.secret_key);
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
            a #groups-link href=(format!("{base}/groups")) { "Groups (mutual exclusion, holdouts)" } " · "
            a #metrics-link href=(format!("{base}/metrics")) { "Metrics" } " · "
            a #audit-link href=(format!("{base}/audit")) { "Audit log" } " · "
            a #user-link href=(format!("{base}/user")) { "What does this user get?" } " · "
            a href=(format!("/flags?project={}", form::encode(&project.key))) { "Flags of this project" } }
        h2 { "Deployments" }
        p.hint { "SDKs authenticate with a deployment's key and see only the flags attached to it. "
            "Server keys are for backends (remote and local evaluation); client keys for browsers and apps." }
        table #deployments {
            thead { tr { th { "Label" } th { "Type" } th { "SDK key" } th {} } }
            tbody {
                @for d in &deployments {
                    tr data-deployment=(d.key) {
                        td { (d.label) " " @if d.archived { span.badge.archived { "archived" } }
                            @if d.protected { " " span.badge.protected title="An approval policy scoped to protected deployments covers its flags" { "protected" } } }
                        td { span.badge { (d.kind.as_str()) } }
                        td {
                            @match &d.api_key {
                                Some(key) => {
                                    code.deployment-key { (key) }
                                    " " button.copy type="button" data-copy=(key) { "Copy" }
                                }
                                None => span.hint.deployment-key { "writers and admins see it" },
                            }
                        }
                        td {
                            @if super::writes(session) {
                                form.archive-deployment method="post" action=(format!("{base}/deployments/{}/archive", form::encode(&d.key))) {
                                    (csrf(console, session))
                                    input type="hidden" name="version" value=(d.version);
                                    input type="hidden" name="archived" value=(if d.archived { "false" } else { "true" });
                                    button type="submit" { @if d.archived { "Unarchive" } @else { "Archive" } }
                                }
                            }
                            @if session.actor.role >= vexil_core::Role::Admin {
                                form.protect-deployment method="post" action=(format!("{base}/deployments/{}", form::encode(&d.key)))
                                    data-confirm=(if d.protected { format!("Unprotect {}? Policies scoped to protected deployments stop covering its flags.", d.label) } else { format!("Protect {}? Policies scoped to protected deployments then cover its flags.", d.label) }) {
                                    (csrf(console, session))
                                    input type="hidden" name="version" value=(d.version);
                                    input type="hidden" name="protected" value=(if d.protected { "false" } else { "true" });
                                    button type="submit" { @if d.protected { "Unprotect" } @else { "Protect" } }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "New deployment" }
        @if super::writes(session) {
            form #new-deployment method="post" action=(format!("{base}/deployments")) {
                (csrf(console, session))
                label { "Label" input name="label" required placeholder="Production"; }
                label { "Type"
                    select name="type" {
                        option value="server" { "server (backends)" }
                        option value="client" { "client (browsers, apps)" }
                    }
                }
                @if session.actor.role >= vexil_core::Role::Admin {
                    label.inline { input type="checkbox" name="protected" value="true"; " Protected (production-critical: approval policies scoped to protected deployments cover its flags)" }
                }
                button type="submit" { "Create deployment" }
            }
        }
        (approval_policy(console, session, &base, &policy))
        (super::webhooks::section(console, session, &base, &webhooks))
    };
    html(status, layout::page(console, session, &project.name, body))
}

/// Which changes need approved drafts: the policy in words, and for admins the form that sets it.
fn approval_policy(
    console: &ConsoleState,
    session: &Session,
    base: &str,
    p: &vexil_core::service::ApprovalPolicy,
) -> Markup {
    use vexil_core::service::PolicyScope;
    let scopes = [
        (PolicyScope::AllFlags, "all_flags", "every flag"),
        (
            PolicyScope::ActiveFlags,
            "active_flags",
            "active flags (and changes that activate one)",
        ),
        (
            PolicyScope::ServerDeployments,
            "server_deployments",
            "flags in server deployments",
        ),
        (
            PolicyScope::ProtectedDeployments,
            "protected_deployments",
            "flags in protected deployments",
        ),
    ];
    let scope = scopes
        .iter()
        .find(|(s, _, _)| *s == p.applies_to)
        .map_or("", |(_, _, w)| *w);
    html! {
        section #approval-policy {
            h2 { "Approvals" }
            p #policy-summary {
                @if p.required_approvals == 0 { "Changes go live without review." }
                @else { "Changes to " (scope) " need " strong { (p.required_approvals) } " approval(s) before they are published"
                    @if p.allow_self_approval { " (the author's own counts)" } @else { " from someone other than the author" } "." }
            }
            @if session.actor.role >= vexil_core::Role::Admin {
                form #policy-form method="post" action=(format!("{base}/approval-policy")) {
                    (csrf(console, session))
                    label { "Approvals needed" input type="number" name="required_approvals" min="0" max="10" value=(p.required_approvals); }
                    label { "Applies to" select name="applies_to" {
                        @for (s, value, words) in scopes { option value=(value) selected[s == p.applies_to] { (words) } }
                    } }
                    label.inline { input type="checkbox" name="allow_self_approval" value="true" checked[p.allow_self_approval]; " The author may approve their own change" }
                    button type="submit" { "Save policy" }
                }
            }
        }
    }
}

/// `POST /projects/{project}/approval-policy` (admins).
pub(crate) async fn set_policy(
    state: St,
    session: Session,
    Path(project): Path<String>,
    request: Request,
) -> Response {
    let console = state.0;
    let p = project.clone();
    let submitted = submit(&console, &session, request, move |s, who, f| {
        let number = f.get("required_approvals").unwrap_or("0").trim();
        let required_approvals = number.parse().map_err(|_| {
            vexil_core::Error::invalid(
                "required_approvals",
                "invalid_number",
                format!("required_approvals must be a whole number from 0 to 10, not {number:?}"),
            )
        })?;
        let applies_to = f.choice(
            "applies_to",
            "all_flags",
            "invalid_scope",
            "all_flags, active_flags, server_deployments or protected_deployments",
        )?;
        let policy = vexil_core::service::ApprovalPolicy {
            required_approvals,
            allow_self_approval: f.get("allow_self_approval") == Some("true"),
            applies_to,
        };
        s.drafts.set_policy(who, &p, policy)
    })
    .await;
    match submitted {
        Err(refusal) => refusal,
        Ok((_, Ok(_))) => see_other(&format!("/projects/{}", form::encode(&project))),
        Ok((_, Err(e))) => {
            let refused = Some((super::status_of(&e), error_box(&e, Some(&project))));
            render(&console, &session, &project, None, refused).await
        }
    }
}

/// The project's API key and, in the answer that created it, its secret key: cohort sync and
/// exposure events use them.
fn credentials(project: &ProjectView) -> Markup {
    let Some(api_key) = &project.api_key else {
        return html! {
            p.hint.credentials { "The project's credentials (cohort sync, exposure events) are shown to writers and admins." }
        };
    };
    let rotate = format!("POST /api/v1/projects/{}/rotate-keys", project.key);
    html! {
        details.credentials open[project.secret_key.is_some()] {
            summary { "Project credentials (cohort sync, exposure events)" }
            dl {
                dt { "API key" }
                dd { code #project-api-key { (api_key) } " " button.copy type="button" data-copy=(api_key) { "Copy" } }
                dt { "Secret key" }
                @match &project.secret_key {
                    Some(secret_key) => dd {
                        code #project-secret-key { (secret_key) } " " button.copy type="button" data-copy=(secret_key) { "Copy" }
                        p.hint.once { "Copy it now: it is shown only this once (Vexil keeps only its hash)." }
                    },
                    None => dd.hint { "Shown only when it is made. To get a new one, rotate it: " code { (rotate) } }
                }
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
            render(console, session, project, None, refused).await
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
            protected: f.get("protected") == Some("true"),
        };
        s.deployments.create(who, &p, req)
    })
    .await;
    after(&console, &session, &project, submitted).await
}

/// `POST /projects/{project}/deployments/{deployment}` (and `…/archive`): archives or
/// unarchives, protects or unprotects (admins).
pub(crate) async fn update_deployment(
    state: St,
    session: Session,
    Path((project, deployment)): Path<(String, String)>,
    request: Request,
) -> Response {
    let console = state.0;
    let p = project.clone();
    let submitted = submit(&console, &session, request, move |s, who, f| {
        // The archive form sends `archived`, the protect form `protected`.
        let patch = DeploymentPatch {
            archived: f.get("archived").map(|a| a != "false"),
            protected: f.get("protected").map(|p| p == "true"),
            ..DeploymentPatch::default()
        };
        s.deployments
            .update(who, &p, &deployment, f.version(), patch)
    })
    .await;
    after(&console, &session, &project, submitted).await
}
