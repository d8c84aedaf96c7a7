//! `/api/v1/projects/{project}/webhooks`: subscriptions to a project's changes, their secret's
//! rotation, their delivery log and test events. Anyone may read them (never the secret, which
//! appears only in the answer that made it); writers and admins change them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vexil_core::service::{
    DeliveryView, NewWebhook, QueuedEvent, RotateWebhookSecret, WebhookPatch, WebhookView,
    WebhookWithSecret, LOG_SIZE,
};

use super::doc::{
    BadRequest, Common, Conflict, Forbidden, IfMatchHeader, NotFound, PayloadTooLarge,
    PreconditionRequired, RequestTimeout, Unprocessable, UnsupportedMediaType,
};
use super::tagged;
use crate::error::ApiResult;
use crate::extract::{Auth, IfMatch, Json, OptionalJson, Path, Query};
use crate::{blocking, AppState};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_webhook_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(test_webhook))
        .routes(routes!(redeliver_event))
}

/// List a project's webhooks with their newest delivery attempt.
#[utoipa::path(get, path = "/api/v1/projects/{project}/webhooks", tag = "webhooks",
    params(("project" = String, Path, description = "project key")),
    responses((status = 200, body = Vec<WebhookView>), BadRequest, NotFound, Common),
    security(("bearer" = [])))]
async fn list_webhooks(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(project): Path<String>,
) -> ApiResult<axum::Json<Vec<WebhookView>>> {
    blocking(move || s.services.webhooks.list(&actor, &project))
        .await
        .map(axum::Json)
}

/// Create a webhook: an `https://` or `http://` URL and the event types it receives. The
/// answer holds its signing secret, shown this once.
#[utoipa::path(post, path = "/api/v1/projects/{project}/webhooks", tag = "webhooks", request_body = NewWebhook,
    params(("project" = String, Path, description = "project key")),
    responses(
        (status = 201, body = WebhookWithSecret, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, PayloadTooLarge, UnsupportedMediaType,
        Unprocessable, Common), security(("bearer" = [])))]
async fn create_webhook(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(project): Path<String>,
    Json(req): Json<NewWebhook>,
) -> ApiResult<Response> {
    let w = blocking(move || s.services.webhooks.create(&actor, &project, req)).await?;
    Ok(tagged(StatusCode::CREATED, w.webhook.version, &w))
}

/// Show a webhook (without its secret).
#[utoipa::path(get, path = "/api/v1/projects/{project}/webhooks/{id}", tag = "webhooks",
    params(("project" = String, Path, description = "project key"), ("id" = String, Path, description = "webhook id")),
    responses(
        (status = 200, body = WebhookView, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, NotFound, Common), security(("bearer" = [])))]
async fn get_webhook(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let w = blocking(move || s.services.webhooks.get(&actor, &project, &id)).await?;
    Ok(tagged(StatusCode::OK, w.version, &w))
}

/// Change a webhook's URL, description, event types or state (`If-Match` required).
#[utoipa::path(patch, path = "/api/v1/projects/{project}/webhooks/{id}", tag = "webhooks", request_body = WebhookPatch,
    params(("project" = String, Path, description = "project key"), ("id" = String, Path, description = "webhook id"), IfMatchHeader),
    responses(
        (status = 200, body = WebhookView, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired, Common), security(("bearer" = [])))]
async fn update_webhook(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, id)): Path<(String, String)>,
    IfMatch(version): IfMatch,
    Json(patch): Json<WebhookPatch>,
) -> ApiResult<Response> {
    let w = blocking(move || {
        s.services
            .webhooks
            .update(&actor, &project, &id, version, patch)
    })
    .await?;
    Ok(tagged(StatusCode::OK, w.version, &w))
}

/// Delete a webhook with its queued events and delivery log (`If-Match` required).
#[utoipa::path(delete, path = "/api/v1/projects/{project}/webhooks/{id}", tag = "webhooks",
    params(("project" = String, Path, description = "project key"), ("id" = String, Path, description = "webhook id"), IfMatchHeader),
    responses((status = 204, description = "Deleted"),
        BadRequest, Forbidden, NotFound, Conflict, PreconditionRequired, Common), security(("bearer" = [])))]
async fn delete_webhook(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, id)): Path<(String, String)>,
    IfMatch(version): IfMatch,
) -> ApiResult<StatusCode> {
    blocking(move || s.services.webhooks.delete(&actor, &project, &id, version)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace a webhook's signing secret (`If-Match` required). The body may be left out: the old
/// secret then stops signing at once. With `grace_seconds` (at most 7 days) every delivery is
/// signed with both until then (two `v1=` in `Vexil-Signature`, the new one first), and the
/// webhook shows until when (`previous_secret_expires_at`). The answer holds the new secret,
/// shown this once.
#[utoipa::path(post, path = "/api/v1/projects/{project}/webhooks/{id}/rotate-secret", tag = "webhooks",
    request_body(content = Option<RotateWebhookSecret>, description = "optional; no body is `{\"grace_seconds\": 0}`"),
    params(("project" = String, Path, description = "project key"), ("id" = String, Path, description = "webhook id"), IfMatchHeader),
    responses(
        (status = 200, body = WebhookWithSecret, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge, UnsupportedMediaType,
        Unprocessable, PreconditionRequired, Common), security(("bearer" = [])))]
async fn rotate_webhook_secret(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, id)): Path<(String, String)>,
    IfMatch(version): IfMatch,
    OptionalJson(req): OptionalJson<RotateWebhookSecret>,
) -> ApiResult<Response> {
    let w = blocking(move || {
        s.services
            .webhooks
            .rotate_secret(&actor, &project, &id, version, req)
    })
    .await?;
    Ok(tagged(StatusCode::OK, w.webhook.version, &w))
}

/// How many log entries to show.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LogQuery {
    /// At most this many attempts, newest first (1 to 50, default 50).
    #[param(minimum = 1, maximum = 50)]
    limit: Option<u32>,
}

/// A webhook's delivery log: its last attempts, newest first, with the receiver's status and
/// the start of its answer.
#[utoipa::path(get, path = "/api/v1/projects/{project}/webhooks/{id}/deliveries", tag = "webhooks",
    params(("project" = String, Path, description = "project key"), ("id" = String, Path, description = "webhook id"), LogQuery),
    responses((status = 200, body = Vec<DeliveryView>), BadRequest, NotFound, Unprocessable, Common),
    security(("bearer" = [])))]
async fn list_deliveries(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, id)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> ApiResult<axum::Json<Vec<DeliveryView>>> {
    let limit = q.limit.unwrap_or(LOG_SIZE);
    blocking(move || s.services.webhooks.deliveries(&actor, &project, &id, limit))
        .await
        .map(axum::Json)
}

/// Queue a `webhook.test` event for this webhook (whatever its event types and state); it is
/// delivered like any other event and shows in the delivery log.
#[utoipa::path(post, path = "/api/v1/projects/{project}/webhooks/{id}/test", tag = "webhooks",
    params(("project" = String, Path, description = "project key"), ("id" = String, Path, description = "webhook id")),
    responses((status = 202, body = QueuedEvent), BadRequest, Forbidden, NotFound, Common),
    security(("bearer" = [])))]
async fn test_webhook(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, axum::Json<QueuedEvent>)> {
    let queued = blocking(move || s.services.webhooks.send_test(&actor, &project, &id)).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(queued)))
}

/// Post one of a webhook's events again, now: a failed one once the receiver is fixed, or a
/// delivered one the receiver lost. It keeps its id and body (receivers that de-duplicate by
/// `Vexil-Webhook-Id` see the same event) and is signed with the current secrets; the event
/// ids are in the delivery log. Events are kept 7 days after they were queued.
#[utoipa::path(post, path = "/api/v1/projects/{project}/webhooks/{id}/events/{event_id}/redeliver", tag = "webhooks",
    params(("project" = String, Path, description = "project key"), ("id" = String, Path, description = "webhook id"),
           ("event_id" = String, Path, description = "the event's id (`evt_…`), as the delivery log shows it")),
    responses((status = 202, body = QueuedEvent), BadRequest, Forbidden, NotFound, Common),
    security(("bearer" = [])))]
async fn redeliver_event(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, id, event_id)): Path<(String, String, String)>,
) -> ApiResult<(StatusCode, axum::Json<QueuedEvent>)> {
    let queued = blocking(move || {
        s.services
            .webhooks
            .redeliver(&actor, &project, &id, &event_id)
    })
    .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(queued)))
}
