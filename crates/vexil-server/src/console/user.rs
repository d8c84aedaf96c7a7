//! "What does this user get?": one page that evaluates every flag of a project (or of one
//! deployment, as its SDKs would) for a user typed in, with the variant and the reason for
//! each, the engine's trace one click away.
//!
//! Hooks: `form#user-check` (`user_id`, `device_id`, `properties` as JSON, `deployment`);
//! `table#user-flags` rows `tr[data-flag]` with `.variant`, `.reason` and `details.trace`.

use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde_json::{json, Value as Json};

use super::layout::{self, error_box};
use super::{call, flag_href, form, html, Fields, Session, St};

/// `GET /projects/{project}/user?user_id=…&device_id=…&properties=…&deployment=…`.
pub(crate) async fn show(
    state: St,
    session: Session,
    Path(project): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let console = state.0;
    let q = Fields::parse(query.unwrap_or_default().as_bytes());
    let value = |name: &str| q.get(name).unwrap_or_default().to_owned();
    let (user_id, device_id) = (q.text("user_id"), q.text("device_id"));
    let deployment = q.text("deployment");
    let services = console.services.clone();
    let (p, who) = (project.clone(), session.actor.clone());
    let deployments = match call(move || services.deployments.list_for(&who, &p)).await {
        Ok(d) => d,
        Err(e) => {
            return html(
                super::status_of(&e),
                layout::page(
                    &console,
                    &session,
                    "What does this user get?",
                    error_box(&e, Some(&project)),
                ),
            )
        }
    };
    // Evaluate only once an id is given.
    let outcome = if user_id.is_some() || device_id.is_some() {
        let properties = match q.text("properties") {
            None => Ok(json!({})),
            Some(text) => serde_json::from_str::<Json>(&text)
                .ok()
                .filter(Json::is_object)
                .ok_or_else(|| {
                    vexil_core::Error::invalid(
                        "properties",
                        "invalid_properties",
                        "user properties are a JSON object such as {\"plan\": \"pro\"}",
                    )
                }),
        };
        match properties {
            Err(e) => Some(Err(e)),
            Ok(props) => {
                let mut user = json!({ "user_properties": props });
                if let Some(u) = &user_id {
                    user["user_id"] = json!(u);
                }
                if let Some(d) = &device_id {
                    user["device_id"] = json!(d);
                }
                let services = console.services.clone();
                let (p, d) = (project.clone(), deployment.clone());
                Some(call(move || services.flags.user_view(&p, d.as_deref(), user)).await)
            }
        }
    } else {
        None
    };
    let base = format!("/projects/{}/user", form::encode(&project));
    let body = html! {
        p.crumbs { a href=(format!("/projects/{}", form::encode(&project))) { (project) } " / What does this user get?" }
        h1 { "What does this user get?" }
        p.hint { "Every flag evaluated for one user as SDKs would, with the cohorts and stored experiment properties the server knows for them." }
        form #user-check method="get" action=(base) {
            label { "User id" input name="user_id" value=(value("user_id")); }
            label { "Device id" input name="device_id" value=(value("device_id")); }
            label { "User properties (JSON)" input name="properties" value=(value("properties")) placeholder="{\"plan\": \"pro\"}"; }
            label { "As the SDKs of" select name="deployment" {
                option value="" { "every flag of the project" }
                @for d in &deployments { option value=(d.key) selected[deployment.as_deref() == Some(d.key.as_str())] { (d.label) } }
            } }
            button type="submit" { "Evaluate" }
        }
        @match &outcome {
            None => p.empty { "Give a user id or a device id to see what they get." },
            Some(Err(e)) => (error_box(e, Some(&project))),
            Some(Ok(view)) => {
                @if view.flags.is_empty() { p.empty { "No flag to evaluate here: create one, or attach flags to this deployment." } }
                table #user-flags {
                    thead { tr { th { "Flag" } th { "Variant" } th { "Why" } } }
                    tbody { @for f in &view.flags {
                        tr data-flag=(f.flag) {
                            td { a href=(flag_href(&project, &f.flag)) { (f.name) } " " code { (f.flag) } }
                            td.variant { strong { (f.variant) } }
                            td.reason { (f.reason)
                                details.trace { summary { "Trace" } pre { (f.trace) } } }
                        }
                    } }
                }
            }
        }
    };
    let status = match &outcome {
        Some(Err(e)) => super::status_of(e),
        _ => StatusCode::OK,
    };
    html(
        status,
        layout::page(&console, &session, "What does this user get?", body),
    )
}
