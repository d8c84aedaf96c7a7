//! `/api/v1/projects` and their deployments. Every answer is the service's view for the caller,
//! so readers never see a project's keys or a deployment's SDK key, and a project's secret key
//! appears only in the answer that made it (creation, rotation). Rotations answer once this
//! node's SDK endpoints no longer accept what the rotation ended.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vexil_core::service::{
    DeploymentPatch, DeploymentView, NewDeployment, NewProject, ProjectPatch, ProjectView,
    RotateDeploymentKey, RotateProjectKeys,
};

use super::doc::{
    BadRequest, Common, Conflict, Forbidden, IfMatchHeader, NotFound, PayloadTooLarge,
    PreconditionRequired, RequestTimeout, Unprocessable, UnsupportedMediaType,
};
use super::tagged;
use crate::error::ApiResult;
use crate::extract::{Auth, IfMatch, Json, Path};
use crate::{blocking, AppState};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_projects, create_project))
        .routes(routes!(get_project, update_project))
        .routes(routes!(list_deployments, create_deployment))
        .routes(routes!(get_deployment, update_deployment))
        .routes(routes!(rotate_project_keys))
        .routes(routes!(rotate_deployment_key))
}

/// List projects (their keys only for writers and admins).
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects",
    responses((status = 200, body = Vec<ProjectView>), Common), security(("bearer" = [])))]
async fn list_projects(
    State(s): State<AppState>,
    Auth(actor): Auth,
) -> ApiResult<axum::Json<Vec<ProjectView>>> {
    blocking(move || s.services.projects.list_for(&actor))
        .await
        .map(axum::Json)
}

/// Create a project; its key is generated from the name unless given. The answer holds the
/// project's secret key, shown this once (only its hash is stored).
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = NewProject,
    responses(
        (status = 201, body = ProjectView, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, RequestTimeout, Conflict, PayloadTooLarge, UnsupportedMediaType,
        Unprocessable, Common), security(("bearer" = [])))]
async fn create_project(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Json(req): Json<NewProject>,
) -> ApiResult<Response> {
    let p = blocking(move || s.services.projects.create(&actor, req)).await?;
    Ok(tagged(StatusCode::CREATED, p.version, &p))
}

/// Replace the project's API key, secret key or both (`If-Match` required). The replaced keys
/// keep working for `grace_seconds` (0, the default, stops them at once; at most 7 days), and
/// the answer shows until when (`previous_key_expires_at`). The answer holds a new secret key,
/// shown this once, and comes only once this server refuses what no longer works; other nodes
/// follow within their sync interval.
#[utoipa::path(post, path = "/api/v1/projects/{project}/rotate-keys", tag = "projects", request_body = RotateProjectKeys,
    params(("project" = String, Path, description = "project key"), IfMatchHeader),
    responses(
        (status = 200, body = ProjectView, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired, Common), security(("bearer" = [])))]
async fn rotate_project_keys(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(project): Path<String>,
    IfMatch(version): IfMatch,
    Json(req): Json<RotateProjectKeys>,
) -> ApiResult<Response> {
    let p = blocking(move || {
        s.services
            .projects
            .rotate_keys(&actor, &project, version, req)
    })
    .await?;
    Ok(tagged(StatusCode::OK, p.version, &p))
}

/// Show a project, with its API and secret keys for writers and admins.
#[utoipa::path(get, path = "/api/v1/projects/{project}", tag = "projects",
    params(("project" = String, Path, description = "project key")),
    responses(
        (status = 200, body = ProjectView, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, NotFound, Common), security(("bearer" = [])))]
async fn get_project(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(project): Path<String>,
) -> ApiResult<Response> {
    let p = blocking(move || s.services.projects.get_for(&actor, &project)).await?;
    Ok(tagged(StatusCode::OK, p.version, &p))
}

/// Rename or describe a project (`If-Match` required).
#[utoipa::path(patch, path = "/api/v1/projects/{project}", tag = "projects", request_body = ProjectPatch,
    params(("project" = String, Path, description = "project key"), IfMatchHeader),
    responses(
        (status = 200, body = ProjectView, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired, Common), security(("bearer" = [])))]
async fn update_project(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(project): Path<String>,
    IfMatch(version): IfMatch,
    Json(patch): Json<ProjectPatch>,
) -> ApiResult<Response> {
    let p = blocking(move || s.services.projects.update(&actor, &project, version, patch)).await?;
    Ok(tagged(StatusCode::OK, p.version, &ProjectView::from(p)))
}

/// List a project's deployments, with their SDK keys for writers and admins.
#[utoipa::path(get, path = "/api/v1/projects/{project}/deployments", tag = "deployments",
    params(("project" = String, Path, description = "project key")),
    responses((status = 200, body = Vec<DeploymentView>), BadRequest, NotFound, Common), security(("bearer" = [])))]
async fn list_deployments(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(project): Path<String>,
) -> ApiResult<axum::Json<Vec<DeploymentView>>> {
    blocking(move || s.services.deployments.list_for(&actor, &project))
        .await
        .map(axum::Json)
}

/// Create a deployment (`client` or `server`) with a generated SDK key.
#[utoipa::path(post, path = "/api/v1/projects/{project}/deployments", tag = "deployments", request_body = NewDeployment,
    params(("project" = String, Path, description = "project key")),
    responses(
        (status = 201, body = DeploymentView, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, Common), security(("bearer" = [])))]
async fn create_deployment(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(project): Path<String>,
    Json(req): Json<NewDeployment>,
) -> ApiResult<Response> {
    let d = blocking(move || s.services.deployments.create(&actor, &project, req)).await?;
    Ok(tagged(
        StatusCode::CREATED,
        d.version,
        &DeploymentView::from(d),
    ))
}

/// Show a deployment, with its SDK key for writers and admins.
#[utoipa::path(get, path = "/api/v1/projects/{project}/deployments/{deployment}", tag = "deployments",
    params(("project" = String, Path, description = "project key"), ("deployment" = String, Path, description = "deployment key")),
    responses(
        (status = 200, body = DeploymentView, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, NotFound, Common), security(("bearer" = [])))]
async fn get_deployment(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let d = blocking(move || s.services.deployments.get_for(&actor, &project, &key)).await?;
    Ok(tagged(StatusCode::OK, d.version, &d))
}

/// Relabel, archive or unarchive a deployment, or rotate its SDK key (`If-Match` required).
#[utoipa::path(patch, path = "/api/v1/projects/{project}/deployments/{deployment}", tag = "deployments", request_body = DeploymentPatch,
    params(("project" = String, Path, description = "project key"), ("deployment" = String, Path, description = "deployment key"),
           IfMatchHeader),
    responses(
        (status = 200, body = DeploymentView, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired, Common), security(("bearer" = [])))]
async fn update_deployment(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, key)): Path<(String, String)>,
    IfMatch(version): IfMatch,
    Json(patch): Json<DeploymentPatch>,
) -> ApiResult<Response> {
    let d = blocking(move || {
        s.services
            .deployments
            .update(&actor, &project, &key, version, patch)
    })
    .await?;
    Ok(tagged(StatusCode::OK, d.version, &DeploymentView::from(d)))
}

/// Replace a deployment's SDK key (`If-Match` required). The replaced key keeps working for
/// `grace_seconds` (0, the default, stops it at once; at most 7 days), and the answer shows
/// until when (`previous_key_expires_at`). The answer comes only once this server refuses what
/// no longer works; other nodes follow within their sync interval.
#[utoipa::path(post, path = "/api/v1/projects/{project}/deployments/{deployment}/rotate-key", tag = "deployments", request_body = RotateDeploymentKey,
    params(("project" = String, Path, description = "project key"), ("deployment" = String, Path, description = "deployment key"),
           IfMatchHeader),
    responses(
        (status = 200, body = DeploymentView, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired, Common), security(("bearer" = [])))]
async fn rotate_deployment_key(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, key)): Path<(String, String)>,
    IfMatch(version): IfMatch,
    Json(req): Json<RotateDeploymentKey>,
) -> ApiResult<Response> {
    let d = blocking(move || {
        s.services
            .deployments
            .rotate_key(&actor, &project, &key, version, req)
    })
    .await?;
    Ok(tagged(StatusCode::OK, d.version, &DeploymentView::from(d)))
}
