//! `/api/v1/projects/{project}/cohorts` (upload as JSON or CSV, list, show, members, delete)
//! and `/api/v1/projects/{project}/import` (Amplitude flag configs and cohorts). These take
//! large bodies, so they have their own limit.

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vexil_core::service::{clean_members, parse_members, CohortUpload, ImportReport, MemberFormat};
use vexil_core::Cohort;

use super::doc::{
    BadRequest, Common, Conflict, Forbidden, IfMatchHeader, IfMatchWhenReplacing, NotFound,
    PayloadTooLarge, PreconditionRequired, RequestTimeout, Unprocessable, UnsupportedMediaType,
};
use super::{tagged, UPLOAD_LIMIT};
use crate::error::{ApiError, ApiResult};
use crate::extract::{body, parse_json, Auth, IfMatch, Json, Path, Query};
use crate::{blocking, AppState};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_cohorts, create_cohort))
        .routes(routes!(get_cohort, replace_cohort, delete_cohort))
        .routes(routes!(cohort_members))
        .routes(routes!(import))
        .layer(DefaultBodyLimit::max(UPLOAD_LIMIT))
}

/// List a project's cohorts with their sizes.
#[utoipa::path(get, path = "/api/v1/projects/{project}/cohorts", tag = "cohorts", params(("project" = String, Path)),
    responses((status = 200, body = Vec<Cohort>), BadRequest, NotFound, Common), security(("bearer" = [])))]
async fn list_cohorts(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path(project): Path<String>,
) -> ApiResult<axum::Json<Vec<Cohort>>> {
    blocking(move || s.services.cohorts.list(&project))
        .await
        .map(axum::Json)
}

/// A cohort with its members, as JSON.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewCohort {
    #[serde(flatten)]
    cohort: CohortUpload,
    members: Vec<String>,
}

/// Create a cohort from a JSON body (or replace it, with `If-Match`).
#[utoipa::path(post, path = "/api/v1/projects/{project}/cohorts", tag = "cohorts", request_body = NewCohort,
    params(("project" = String, Path), IfMatchWhenReplacing),
    responses(
        (status = 201, description = "The cohort as created or replaced", body = Cohort, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired, Common), security(("bearer" = [])))]
async fn create_cohort(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(project): Path<String>,
    IfMatch(v): IfMatch,
    Json(req): Json<NewCohort>,
) -> ApiResult<Response> {
    let members = clean_members(req.members)?;
    let c = blocking(move || {
        s.services
            .cohorts
            .upload(&actor, &project, req.cohort, members, v)
    })
    .await?;
    Ok(tagged(StatusCode::CREATED, c.version, &c))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UploadQuery {
    /// The cohort's name (default: its id).
    name: Option<String>,
    /// `User` (default) or a group type.
    #[param(min_length = 1, max_length = 128)]
    group_type: Option<String>,
    description: Option<String>,
}

/// Upload a cohort's members as CSV (`text/csv`, first column, optional header) or JSON
/// (`application/json`: an array of ids or `{"memberIds": [...]}`). Creates the cohort or
/// replaces its members atomically (then `If-Match` is required).
#[utoipa::path(put, path = "/api/v1/projects/{project}/cohorts/{cohort}", tag = "cohorts",
    request_body(description = "The members: CSV, one id per line (first column, optional header), or a JSON array of ids",
        content((String = "text/csv"), (Vec<String> = "application/json"))),
    params(("project" = String, Path), ("cohort" = String, Path), UploadQuery, IfMatchWhenReplacing),
    responses(
        (status = 200, description = "The cohort as created or replaced", body = Cohort, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired, Common), security(("bearer" = [])))]
async fn replace_cohort(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, id)): Path<(String, String)>,
    Query(q): Query<UploadQuery>,
    IfMatch(v): IfMatch,
    req: Request,
) -> ApiResult<Response> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let format = if content_type.starts_with("application/json") {
        MemberFormat::Json
    } else if content_type.starts_with("text/csv") || content_type.starts_with("text/plain") {
        MemberFormat::Csv
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "upload members as text/csv or application/json",
            Some("Content-Type".into()),
        ));
    };
    let bytes = body(req, &()).await?;
    let upload = CohortUpload {
        name: q.name.unwrap_or_else(|| id.clone()),
        id: Some(id),
        description: q.description.unwrap_or_default(),
        group_type: q.group_type.unwrap_or_else(|| "User".into()),
    };
    let c = blocking(move || {
        let members = parse_members(&bytes, format)?;
        s.services
            .cohorts
            .upload(&actor, &project, upload, members, v)
    })
    .await?;
    Ok(tagged(StatusCode::OK, c.version, &c))
}

/// Show a cohort.
#[utoipa::path(get, path = "/api/v1/projects/{project}/cohorts/{cohort}", tag = "cohorts",
    params(("project" = String, Path), ("cohort" = String, Path)),
    responses(
        (status = 200, body = Cohort, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, NotFound, Common), security(("bearer" = [])))]
async fn get_cohort(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let c = blocking(move || s.services.cohorts.get(&project, &id)).await?;
    Ok(tagged(StatusCode::OK, c.version, &c))
}

/// Delete a cohort; refused while a flag uses it (the error names the flags).
#[utoipa::path(delete, path = "/api/v1/projects/{project}/cohorts/{cohort}", tag = "cohorts",
    params(("project" = String, Path), ("cohort" = String, Path), IfMatchHeader),
    responses((status = 204, description = "Deleted"),
        BadRequest, Forbidden, NotFound, Conflict, PreconditionRequired, Common), security(("bearer" = [])))]
async fn delete_cohort(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, id)): Path<(String, String)>,
    IfMatch(v): IfMatch,
) -> ApiResult<StatusCode> {
    blocking(move || s.services.cohorts.delete(&actor, &project, &id, v)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A cohort's member ids.
#[utoipa::path(get, path = "/api/v1/projects/{project}/cohorts/{cohort}/members", tag = "cohorts",
    params(("project" = String, Path), ("cohort" = String, Path)),
    responses((status = 200, body = Vec<String>), BadRequest, NotFound, Common), security(("bearer" = [])))]
async fn cohort_members(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Vec<String>>> {
    blocking(move || s.services.cohorts.members(&project, &id))
        .await
        .map(axum::Json)
}

/// An import from Amplitude Experiment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ImportRequest {
    /// The deployment (key or label) to attach every imported flag to.
    deployment: String,
    /// The flag configs, as Amplitude's `/sdk/v2/flags` returns them.
    #[schema(value_type = Vec<Object>)]
    flags: Box<serde_json::value::RawValue>,
    /// Cohorts as Amplitude's cohort download returns them: `{cohortId, groupType, memberIds}`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    cohorts: Option<Box<serde_json::value::RawValue>>,
}

/// Import flags (served exactly as given) and cohorts from Amplitude. Idempotent by flag key
/// and cohort id: importing the same files again changes nothing.
#[utoipa::path(post, path = "/api/v1/projects/{project}/import", tag = "import", request_body = ImportRequest,
    params(("project" = String, Path)),
    responses((status = 200, body = ImportReport),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge, Unprocessable,
        Common), security(("bearer" = [])))]
async fn import(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(project): Path<String>,
    req: Request,
) -> ApiResult<axum::Json<ImportReport>> {
    let bytes = body(req, &()).await?;
    let req: ImportRequest = parse_json(&bytes)?;
    blocking(move || {
        s.services.import.import(
            &actor,
            &project,
            &req.deployment,
            req.flags.get(),
            req.cohorts.as_ref().map(|c| c.get()),
        )
    })
    .await
    .map(axum::Json)
}
