//! The Webhooks section of a project's page: each webhook with its event types, state and
//! newest delivery, its delivery log (the last attempts with their answers), a "Send test
//! event" button, a secret rotation with a grace period and a delete button; and the form that
//! creates one. Creation and rotation answer with the signing secret, shown once. Readers see
//! the list and the logs, never a secret.
//!
//! Hooks: `section#webhooks`, `table#webhooks` rows `tr[data-webhook]` with `.last-delivery`,
//! `.previous-secret`, `form.test-webhook`, `form.rotate-webhook` (select `grace_seconds`),
//! `form.delete-webhook`; `details.delivery-log` with `tr[data-attempt]` and
//! `form.redeliver`; `form#new-webhook` with checkboxes `input[name=events]`; `#webhook-secret`.

use axum::extract::{Path, Request};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use vexil_core::service::{
    DeliveryView, NewWebhook, RotateWebhookSecret, WebhookView, WebhookWithSecret,
};
use vexil_core::webhooks::{ACTIONS, ENTITIES};
use vexil_core::{Actor, Services};

use super::layout::{self, csrf, error_box};
use super::{form, html, see_other, submit, ConsoleState, Session, St};

/// Attempts shown in each webhook's log on the page.
const LOG_ROWS: u32 = 20;

/// The grace periods the rotation form offers, in seconds, with their labels.
const GRACE_PERIODS: &[(u32, &str)] = &[
    (0, "the old secret stops now"),
    (3600, "the old one also signs for 1 hour"),
    (86_400, "the old one also signs for 1 day"),
    (604_800, "the old one also signs for 7 days"),
];

/// A webhook with its newest attempts.
pub(crate) type Listed = (WebhookView, Vec<DeliveryView>);

/// Loads a project's webhooks and their logs (on the blocking pool, with the page's other
/// service calls).
pub(crate) fn load(
    services: &Services,
    who: &Actor,
    project: &str,
) -> vexil_core::Result<Vec<Listed>> {
    let hooks = services.webhooks.list(who, project)?;
    let mut listed = Vec::with_capacity(hooks.len());
    for hook in hooks {
        let log = services
            .webhooks
            .deliveries(who, project, &hook.id, LOG_ROWS)?;
        listed.push((hook, log));
    }
    Ok(listed)
}

fn status_text(d: &DeliveryView) -> String {
    match (d.status, &d.error) {
        (Some(status), _) => status.to_string(),
        (None, Some(error)) => format!("no answer: {error}"),
        (None, None) => "no answer".to_string(),
    }
}

fn outcome(d: &DeliveryView) -> Markup {
    let class = if d.ok {
        "state-active"
    } else {
        "state-inactive"
    };
    html! { span class=(format!("badge {class}")) { (status_text(d)) } }
}

/// The section, placed on the project page under `base` (`/projects/{project}`).
pub(crate) fn section(
    console: &ConsoleState,
    session: &Session,
    base: &str,
    hooks: &[Listed],
) -> Markup {
    html! {
        section #webhooks {
            h2 { "Webhooks" }
            p.hint { "Each change to a flag, cohort, deployment, group or metric of this project is posted, signed with the webhook's secret "
                "(header " code { "Vexil-Signature" } "), to the webhooks whose event types select it; failed deliveries are retried for about a day. "
                "Loopback, private and link-local addresses are reached only when the node allows their network ("
                code { "--webhook-allow-network" } ")." }
            @if hooks.is_empty() {
                p.hint { "No webhook yet." }
            } @else {
                table #webhooks {
                    thead { tr { th { "URL" } th { "Events" } th { "Last delivery" } th {} } }
                    tbody {
                        @for (hook, log) in hooks {
                            (row(console, session, base, hook, log))
                        }
                    }
                }
            }
            h3 { "New webhook" }
            @if super::writes(session) {
                form #new-webhook method="post" action=(format!("{base}/webhooks")) {
                    (csrf(console, session))
                    label { "URL" input name="url" type="url" required placeholder="https://hooks.example.com/vexil"; }
                    label { "Description" input name="description"; }
                    fieldset.events {
                        legend { "Events" }
                        label { input type="checkbox" name="events" value="*"; " everything" }
                        @for entity in ENTITIES {
                            div {
                                @for action in ACTIONS {
                                    @let event = format!("{entity}.{action}");
                                    label { input type="checkbox" name="events" value=(event); " " code { (event) } }
                                }
                            }
                        }
                    }
                    button type="submit" { "Create webhook" }
                }
            }
        }
    }
}

fn row(
    console: &ConsoleState,
    session: &Session,
    base: &str,
    hook: &WebhookView,
    log: &[DeliveryView],
) -> Markup {
    let href = format!("{base}/webhooks/{}", form::encode(&hook.id));
    html! {
        tr data-webhook=(hook.id) {
            td {
                code { (hook.url) }
                @if !hook.active { " " span.badge.archived { "inactive" } }
                @if !hook.description.is_empty() { br; span.hint { (hook.description) } }
            }
            td { @for e in &hook.events { code { (e) } " " } }
            td.last-delivery {
                @match log.first() {
                    Some(d) => { (outcome(d)) " " span.hint { (d.event_type) ", " (layout::when(d.at)) } },
                    None => span.hint { "none yet" },
                }
                @if let Some(until) = hook.previous_secret_expires_at {
                    br; span.hint.previous-secret { "The replaced secret also signs until " (layout::when(until)) "." }
                }
            }
            td {
                @if super::writes(session) {
                    form.test-webhook method="post" action=(format!("{href}/test")) {
                        (csrf(console, session))
                        button type="submit" { "Send test event" }
                    }
                }
                @if super::writes(session) {
                    form.rotate-webhook method="post" action=(format!("{href}/rotate-secret")) {
                        (csrf(console, session))
                        input type="hidden" name="version" value=(hook.version);
                        select name="grace_seconds" aria-label="Grace period" {
                            @for (seconds, label) in GRACE_PERIODS {
                                option value=(seconds) { (label) }
                            }
                        }
                        button type="submit" { "Rotate secret" }
                    }
                }
                @if super::writes(session) {
                    form.delete-webhook method="post" action=(format!("{href}/delete")) {
                        (csrf(console, session))
                        input type="hidden" name="version" value=(hook.version);
                        button type="submit" { "Delete" }
                    }
                }
            }
        }
        tr.log {
            td colspan="4" {
                details.delivery-log {
                    summary { "Delivery log (" (log.len()) ")" }
                    table {
                        thead { tr { th { "When" } th { "Event" } th { "Attempt" } th { "Answer" } th { "Took" } th { "Response" } th {} } }
                        tbody {
                            @for d in log {
                                tr data-attempt=(d.attempt) {
                                    td { (layout::when(d.at)) }
                                    td { code { (d.event_type) } br; span.hint { (d.event_id) } }
                                    td { (d.attempt) }
                                    td { (outcome(d)) }
                                    td { (d.duration_ms) " ms" }
                                    td { code { (d.response) } }
                                    td {
                                        @if super::writes(session) {
                                            form.redeliver method="post" action=(format!("{href}/events/{}/redeliver", form::encode(&d.event_id))) {
                                                (csrf(console, session))
                                                button type="submit" title="Post this event again now" { "Redeliver" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /projects/{project}/webhooks`: creates a webhook and shows its secret, once.
pub(crate) async fn create(
    state: St,
    session: Session,
    Path(project): Path<String>,
    request: Request,
) -> Response {
    let console = state.0;
    let p = project.clone();
    let submitted = submit(&console, &session, request, move |s, who, f| {
        let req = NewWebhook {
            url: f.text("url").unwrap_or_default(),
            description: f.text("description").unwrap_or_default(),
            events: f.all("events"),
            active: true,
        };
        s.webhooks.create(who, &p, req)
    })
    .await;
    let page = SecretPage {
        done: (StatusCode::CREATED, "Webhook created"),
        refused: "Webhook not created",
        what: |created: &WebhookWithSecret| html! { p { "Events are posted to " code { (created.webhook.url) } "." } },
    };
    page.answer(&console, &session, &project, submitted)
}

/// The answer of a form that makes a signing secret (creation, rotation): the secret, shown
/// this once, after `what` says what happened; or why it was refused.
struct SecretPage {
    done: (StatusCode, &'static str),
    refused: &'static str,
    what: fn(&WebhookWithSecret) -> Markup,
}

impl SecretPage {
    fn answer(
        &self,
        console: &ConsoleState,
        session: &Session,
        project: &str,
        submitted: Result<(super::Fields, vexil_core::Result<WebhookWithSecret>), Response>,
    ) -> Response {
        let base = format!("/projects/{}", form::encode(project));
        let back = html! { p { a href=(format!("{base}#webhooks")) { "Back to the project" } } };
        let (status, body) = match submitted {
            Err(refusal) => return refusal,
            Ok((_, Ok(hook))) => (
                self.done.0,
                html! {
                    h1 { (self.done.1) }
                    ((self.what)(&hook))
                    p { "Signing secret: " code #webhook-secret { (hook.secret) } " "
                        button.copy type="button" data-copy=(hook.secret) { "Copy" } }
                    p.hint.once { "Copy it now: it is shown only this once. Receivers check "
                        code { "Vexil-Signature" } " with it (see the README)." }
                    (back)
                },
            ),
            Ok((_, Err(e))) => (
                super::status_of(&e),
                html! { h1 { (self.refused) } (error_box(&e, Some(project))) (back) },
            ),
        };
        html(status, layout::page(console, session, "Webhook", body))
    }
}

/// `POST /projects/{project}/webhooks/{id}/rotate-secret`: replaces the signing secret (the
/// old one signing beside it for the chosen grace period) and shows the new one, once.
pub(crate) async fn rotate(
    state: St,
    session: Session,
    Path((project, id)): Path<(String, String)>,
    request: Request,
) -> Response {
    let console = state.0;
    let p = project.clone();
    let submitted = submit(&console, &session, request, move |s, who, f| {
        let grace = f.get("grace_seconds").unwrap_or("0").trim();
        let grace_seconds = grace.parse().map_err(|_| {
            vexil_core::Error::invalid(
                "grace_seconds",
                "invalid_number",
                format!("grace_seconds is a number of seconds, not {grace:?}"),
            )
        })?;
        s.webhooks.rotate_secret(
            who,
            &p,
            &id,
            f.version(),
            RotateWebhookSecret { grace_seconds },
        )
    })
    .await;
    let page = SecretPage {
        done: (StatusCode::OK, "Secret rotated"),
        refused: "Secret not rotated",
        what: |rotated: &WebhookWithSecret| {
            html! {
                p { "Events posted to " code { (rotated.webhook.url) } " are signed with the new secret." }
                @match rotated.webhook.previous_secret_expires_at {
                    Some(until) => p.previous-secret { "The replaced secret also signs every delivery until "
                        (layout::when(until)) ": update the receiver before then." },
                    None => p.previous-secret { "The replaced secret no longer signs." },
                }
            }
        },
    };
    page.answer(&console, &session, &project, submitted)
}

/// `POST /projects/{project}/webhooks/{id}/test`: queues a `webhook.test` event.
pub(crate) async fn test(
    state: St,
    session: Session,
    Path((project, id)): Path<(String, String)>,
    request: Request,
) -> Response {
    let console = state.0;
    let p = project.clone();
    let submitted = submit(&console, &session, request, move |s, who, _| {
        s.webhooks.send_test(who, &p, &id)
    })
    .await;
    after(&console, &session, &project, submitted).await
}

/// `POST /projects/{project}/webhooks/{id}/events/{event_id}/redeliver`: queues the event
/// again, to be posted now.
pub(crate) async fn redeliver(
    state: St,
    session: Session,
    Path((project, id, event_id)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let console = state.0;
    let p = project.clone();
    let submitted = submit(&console, &session, request, move |s, who, _| {
        s.webhooks.redeliver(who, &p, &id, &event_id)
    })
    .await;
    after(&console, &session, &project, submitted).await
}

/// `POST /projects/{project}/webhooks/{id}/delete`.
pub(crate) async fn delete(
    state: St,
    session: Session,
    Path((project, id)): Path<(String, String)>,
    request: Request,
) -> Response {
    let console = state.0;
    let p = project.clone();
    let submitted = submit(&console, &session, request, move |s, who, f| {
        s.webhooks.delete(who, &p, &id, f.version())
    })
    .await;
    after(&console, &session, &project, submitted).await
}

/// Back to the webhooks after a change (whatever it answered), or why it was refused.
async fn after<T>(
    console: &ConsoleState,
    session: &Session,
    project: &str,
    submitted: Result<(super::Fields, vexil_core::Result<T>), Response>,
) -> Response {
    let base = format!("/projects/{}", form::encode(project));
    match submitted {
        Err(refusal) => refusal,
        Ok((_, Ok(_))) => see_other(&format!("{base}#webhooks")),
        Ok((_, Err(e))) => html(
            super::status_of(&e),
            layout::page(
                console,
                session,
                "Webhook",
                html! { h1 { "Refused" } (error_box(&e, Some(project))) p { a href=(base) { "Back to the project" } } },
            ),
        ),
    }
}
