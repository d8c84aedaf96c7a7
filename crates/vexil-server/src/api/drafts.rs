//! `/api/v1/projects/{project}/drafts`: change requests on flags (typed changes against a base
//! version, previewed, reviewed, published now or at a scheduled time), and
//! `/api/v1/projects/{project}/approval-policy`, which says which changes need approvals.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vexil_core::service::{
    ApprovalPolicy, Draft, DraftPatch, DraftStatus, DraftView, NewDraft, NewReview, NewRollout,
    RolloutPlan, RolloutStatus,
};

use super::doc::{
    BadRequest, Common, Conflict, Forbidden, IfMatchHeader, NotFound, PayloadTooLarge,
    PreconditionRequired, RequestTimeout, Unprocessable, UnsupportedMediaType,
};
use super::tagged;
use crate::error::ApiResult;
use crate::extract::{Auth, IfMatch, Json, Path, Query};
use crate::{blocking, AppState};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_policy, set_policy))
        .routes(routes!(list, create))
        .routes(routes!(get, update))
        .routes(routes!(review))
        .routes(routes!(publish))
        .routes(routes!(schedule))
        .routes(routes!(close))
        .routes(routes!(list_rollouts, create_rollout))
        .routes(routes!(get_rollout))
        .routes(routes!(steer_rollout))
}

fn view(status: StatusCode, d: &DraftView) -> Response {
    tagged(status, d.draft.version, d)
}

/// The project's approval policy (none required by default).
#[utoipa::path(get, path = "/api/v1/projects/{project}/approval-policy", tag = "drafts",
    params(("project" = String, Path)),
    responses((status = 200, body = ApprovalPolicy), BadRequest, NotFound, Unprocessable, Common),
    security(("bearer" = [])))]
async fn get_policy(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path(project): Path<String>,
) -> ApiResult<axum::Json<ApprovalPolicy>> {
    blocking(move || s.services.drafts.policy(&project))
        .await
        .map(axum::Json)
}

/// Replace the project's approval policy (admins). While it requires approvals, the flags it
/// covers change only through reviewed drafts.
#[utoipa::path(put, path = "/api/v1/projects/{project}/approval-policy", tag = "drafts",
    request_body = ApprovalPolicy, params(("project" = String, Path)),
    responses((status = 200, body = ApprovalPolicy), BadRequest, Forbidden, NotFound,
        RequestTimeout, PayloadTooLarge, UnsupportedMediaType, Unprocessable, Common),
    security(("bearer" = [])))]
async fn set_policy(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(project): Path<String>,
    Json(policy): Json<ApprovalPolicy>,
) -> ApiResult<axum::Json<ApprovalPolicy>> {
    blocking(move || s.services.drafts.set_policy(&actor, &project, policy))
        .await
        .map(axum::Json)
}

/// Which drafts to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only the drafts of this flag.
    flag: Option<String>,
    status: Option<DraftStatus>,
}

/// A project's drafts, newest first.
#[utoipa::path(get, path = "/api/v1/projects/{project}/drafts", tag = "drafts",
    params(("project" = String, Path), ListQuery),
    responses((status = 200, body = Vec<Draft>), BadRequest, NotFound, Unprocessable, Common),
    security(("bearer" = [])))]
async fn list(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path(project): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Vec<Draft>>> {
    blocking(move || {
        s.services
            .drafts
            .list(&project, q.flag.as_deref(), q.status)
    })
    .await
    .map(axum::Json)
}

/// Open a draft: typed changes to one flag with a title and a comment. The changes must apply
/// to the flag as it is (they are checked like a publication, without writing).
#[utoipa::path(post, path = "/api/v1/projects/{project}/drafts", tag = "drafts",
    request_body = NewDraft, params(("project" = String, Path)),
    responses(
        (status = 201, body = DraftView, headers(("ETag" = String, description = "The draft's version"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, Common), security(("bearer" = [])))]
async fn create(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(project): Path<String>,
    Json(req): Json<NewDraft>,
) -> ApiResult<Response> {
    let d = blocking(move || s.services.drafts.create(&actor, Some(&project), req)).await?;
    Ok(view(StatusCode::CREATED, &d))
}

/// A draft with its preview: the changes in the product's words against the flag now, the
/// users they move on a sample, the approvals, and what blocks publishing.
#[utoipa::path(get, path = "/api/v1/projects/{project}/drafts/{id}", tag = "drafts",
    params(("project" = String, Path), ("id" = String, Path)),
    responses(
        (status = 200, body = DraftView, headers(("ETag" = String, description = "The draft's version; send it as If-Match to edit it"))),
        BadRequest, NotFound, Unprocessable, Common), security(("bearer" = [])))]
async fn get(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let d = blocking(move || s.services.drafts.get(&project, &id)).await?;
    Ok(view(StatusCode::OK, &d))
}

/// Edit an open draft (`If-Match` required); new changes ask for new reviews.
#[utoipa::path(patch, path = "/api/v1/projects/{project}/drafts/{id}", tag = "drafts",
    request_body = DraftPatch, params(("project" = String, Path), ("id" = String, Path), IfMatchHeader),
    responses(
        (status = 200, body = DraftView, headers(("ETag" = String, description = "The draft's version"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired, Common), security(("bearer" = [])))]
async fn update(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, id)): Path<(String, String)>,
    IfMatch(v): IfMatch,
    Json(patch): Json<DraftPatch>,
) -> ApiResult<Response> {
    let d = blocking(move || s.services.drafts.update(&actor, &project, &id, v, patch)).await?;
    Ok(view(StatusCode::OK, &d))
}

/// Review a draft: approve, request changes or reject, with a comment.
#[utoipa::path(post, path = "/api/v1/projects/{project}/drafts/{id}/reviews", tag = "drafts",
    request_body = NewReview, params(("project" = String, Path), ("id" = String, Path)),
    responses(
        (status = 200, body = DraftView, headers(("ETag" = String, description = "The draft's version"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, Common), security(("bearer" = [])))]
async fn review(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, id)): Path<(String, String)>,
    Json(req): Json<NewReview>,
) -> ApiResult<Response> {
    let d = blocking(move || s.services.drafts.review(&actor, &project, &id, req)).await?;
    Ok(view(StatusCode::OK, &d))
}

/// Publish a draft now, as one new version of its flag. Refused with the reason when the flag
/// moved on since the draft's base, a rule blocks the changes, or approvals are missing.
#[utoipa::path(post, path = "/api/v1/projects/{project}/drafts/{id}/publish", tag = "drafts",
    params(("project" = String, Path), ("id" = String, Path)),
    responses(
        (status = 200, body = DraftView, headers(("ETag" = String, description = "The draft's version"))),
        BadRequest, Forbidden, NotFound, Conflict, Unprocessable, Common), security(("bearer" = [])))]
async fn publish(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let d = blocking(move || s.services.drafts.publish(&actor, &project, &id)).await?;
    Ok(view(StatusCode::OK, &d))
}

/// When to publish a draft.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ScheduleRequest {
    /// Unix milliseconds.
    at: i64,
}

/// Schedule a draft (approved first where the policy requires it): the scheduler publishes it
/// at `at` on behalf of the person who scheduled it, or marks it failed with the reason.
#[utoipa::path(post, path = "/api/v1/projects/{project}/drafts/{id}/schedule", tag = "drafts",
    request_body = ScheduleRequest, params(("project" = String, Path), ("id" = String, Path)),
    responses(
        (status = 200, body = DraftView, headers(("ETag" = String, description = "The draft's version"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, Common), security(("bearer" = [])))]
async fn schedule(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, id)): Path<(String, String)>,
    Json(req): Json<ScheduleRequest>,
) -> ApiResult<Response> {
    let d = blocking(move || s.services.drafts.schedule(&actor, &project, &id, req.at)).await?;
    Ok(view(StatusCode::OK, &d))
}

/// Close a draft without publishing it (a scheduled one is unscheduled).
#[utoipa::path(post, path = "/api/v1/projects/{project}/drafts/{id}/close", tag = "drafts",
    params(("project" = String, Path), ("id" = String, Path)),
    responses(
        (status = 200, body = DraftView, headers(("ETag" = String, description = "The draft's version"))),
        BadRequest, Forbidden, NotFound, Conflict, Unprocessable, Common), security(("bearer" = [])))]
async fn close(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let d = blocking(move || s.services.drafts.close(&actor, &project, &id)).await?;
    Ok(view(StatusCode::OK, &d))
}

/// Which rollouts to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RolloutQuery {
    /// Only the plans of this flag.
    flag: Option<String>,
}

/// A project's progressive rollouts, newest first.
#[utoipa::path(get, path = "/api/v1/projects/{project}/rollouts", tag = "drafts",
    params(("project" = String, Path), RolloutQuery),
    responses((status = 200, body = Vec<RolloutPlan>), BadRequest, NotFound, Unprocessable, Common),
    security(("bearer" = [])))]
async fn list_rollouts(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path(project): Path<String>,
    Query(q): Query<RolloutQuery>,
) -> ApiResult<axum::Json<Vec<RolloutPlan>>> {
    blocking(move || s.services.drafts.rollouts(&project, q.flag.as_deref()))
        .await
        .map(axum::Json)
}

/// Plan a progressive rollout: percentages applied one after another to a segment (or All
/// Other Users) every interval, by the scheduler, on behalf of whoever planned it.
#[utoipa::path(post, path = "/api/v1/projects/{project}/rollouts", tag = "drafts",
    request_body = NewRollout, params(("project" = String, Path)),
    responses((status = 201, body = RolloutPlan), BadRequest, Forbidden, NotFound,
        RequestTimeout, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable, Common),
    security(("bearer" = [])))]
async fn create_rollout(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(project): Path<String>,
    Json(req): Json<NewRollout>,
) -> ApiResult<(StatusCode, axum::Json<RolloutPlan>)> {
    blocking(move || s.services.drafts.create_rollout(&actor, &project, req))
        .await
        .map(|p| (StatusCode::CREATED, axum::Json(p)))
}

/// A progressive rollout: its steps, the next one and when, and why it paused if it did.
#[utoipa::path(get, path = "/api/v1/projects/{project}/rollouts/{id}", tag = "drafts",
    params(("project" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = RolloutPlan), BadRequest, NotFound, Unprocessable, Common),
    security(("bearer" = [])))]
async fn get_rollout(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<RolloutPlan>> {
    blocking(move || s.services.drafts.rollout(&project, &id))
        .await
        .map(axum::Json)
}

/// Pause, resume (from the flag as it is now) or cancel a progressive rollout.
#[utoipa::path(post, path = "/api/v1/projects/{project}/rollouts/{id}/{action}", tag = "drafts",
    params(("project" = String, Path), ("id" = String, Path),
        ("action" = String, Path, description = "`pause`, `resume` or `cancel`")),
    responses((status = 200, body = RolloutPlan), BadRequest, Forbidden, NotFound, Conflict,
        Unprocessable, Common),
    security(("bearer" = [])))]
async fn steer_rollout(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, id, action)): Path<(String, String, String)>,
) -> ApiResult<axum::Json<RolloutPlan>> {
    let to = match action.as_str() {
        "pause" => RolloutStatus::Paused,
        "resume" => RolloutStatus::Running,
        "cancel" => RolloutStatus::Cancelled,
        _ => {
            return Err(crate::error::ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "the actions are pause, resume and cancel",
                Some("action".to_string()),
            ))
        }
    };
    blocking(move || s.services.drafts.steer_rollout(&actor, &project, &id, to))
        .await
        .map(axum::Json)
}
