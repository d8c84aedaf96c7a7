//! Management keys, for admins: every key with its role, prefix and state; creating one (its
//! secret is shown once, in the answer that created it); revoking one, confirmed first. Anyone
//! else gets the service's refusal.
//!
//! Hooks: `table#keys` rows `tr[data-key]` with `.role`, `.state`, `form.revoke-key`;
//! `form#new-key`; `#key-secret`.

use axum::extract::{Path, Request};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use vexil_core::service::{CreatedKey, KeyInfo};
use vexil_core::Role;

use super::layout::{self, csrf, error_box, when};
use super::{call, form, html, see_other, submit, ConsoleState, Session, St};

/// `GET /keys`.
pub(crate) async fn list(state: St, session: Session) -> Response {
    render(&state.0, &session, None, None).await
}

/// The page, with the key just created (its secret shown once) or the reason a form was
/// refused.
async fn render(
    console: &ConsoleState,
    session: &Session,
    created: Option<CreatedKey>,
    refused: Option<(StatusCode, Markup)>,
) -> Response {
    let services = console.services.clone();
    let who = super::actor(session);
    let keys = match call(move || services.keys.list(&who)).await {
        Ok(keys) => keys,
        Err(e) => {
            return html(
                super::status_of(&e),
                layout::page(console, session, "Keys", error_box(&e, None)),
            )
        }
    };
    let status = refused.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    let body = html! {
        h1 { "Management keys" }
        p.hint { "Keys sign in to this console and call the management API. Readers see everything, "
            "writers change projects, flags and cohorts, admins also manage keys and approval policies. "
            "SDKs use deployment keys instead (on each project's page)." }
        @if let Some((_, e)) = &refused { (e) }
        @if let Some(c) = &created {
            div.notice #key-secret role="status" {
                p { "Key " strong { (c.key.name) } " (" (c.key.role.as_str()) ") created. Its secret is shown this once: store it now." }
                p { code.secret { (c.secret) } " " button.copy type="button" data-copy=(c.secret) { "Copy" } }
            }
        }
        table #keys {
            thead { tr { th { "Name" } th { "Role" } th { "Prefix" } th { "Created" } th { "State" } th {} } }
            tbody { @for k in &keys { (row(console, session, k)) } }
        }
        h2 { "New key" }
        form #new-key method="post" action="/keys" {
            (csrf(console, session))
            label { "Name" input name="name" required maxlength="100" placeholder="ci-deploys"; }
            label { "Role" select name="role" {
                option value="reader" { "reader" }
                option value="writer" selected { "writer" }
                option value="admin" { "admin" }
            } }
            button type="submit" { "Create key" }
        }
    };
    html(status, layout::page(console, session, "Keys", body))
}

fn row(console: &ConsoleState, session: &Session, k: &KeyInfo) -> Markup {
    html! {
        tr data-key=(k.id) {
            td { (k.name) }
            td.role { (k.role.as_str()) }
            td { code { (k.prefix) "…" } }
            td { (when(k.created_at)) }
            td.state { @match k.revoked_at { Some(at) => { "revoked " (when(at)) }, None => "active" } }
            td {
                @if k.revoked_at.is_none() {
                    form.revoke-key method="post" action=(format!("/keys/{}/revoke", form::encode(&k.id)))
                        data-confirm=(format!("Revoke {}? Anything signed in or calling the API with it stops working at once.", k.name)) {
                        (csrf(console, session))
                        button.danger type="submit" { "Revoke" }
                    }
                }
            }
        }
    }
}

/// `POST /keys`: a new key; the page shows its secret once.
pub(crate) async fn create(state: St, session: Session, request: Request) -> Response {
    let console = state.0;
    let submitted = submit(&console, &session, request, |s, who, f| {
        let role: Role = f.choice("role", "reader", "invalid_role", "reader, writer or admin")?;
        s.keys
            .create(who, f.get("name").unwrap_or_default().trim(), role)
    })
    .await;
    match submitted {
        Err(refusal) => refusal,
        Ok((_, Ok(created))) => render(&console, &session, Some(created), None).await,
        Ok((_, Err(e))) => {
            let refused = (super::status_of(&e), error_box(&e, None));
            render(&console, &session, None, Some(refused)).await
        }
    }
}

/// `POST /keys/{id}/revoke`.
pub(crate) async fn revoke(
    state: St,
    session: Session,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let console = state.0;
    let submitted = submit(&console, &session, request, move |s, who, _| {
        s.keys.revoke(who, &id)
    })
    .await;
    match submitted {
        Err(refusal) => refusal,
        Ok((_, Ok(_))) => see_other("/keys"),
        Ok((_, Err(e))) => {
            let refused = (super::status_of(&e), error_box(&e, None));
            render(&console, &session, None, Some(refused)).await
        }
    }
}
