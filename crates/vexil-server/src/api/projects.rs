//! `/api/v1/projects` and their deployments.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vexil_core::service::{DeploymentPatch, NewDeployment, NewProject, ProjectPatch};
use vexil_core::{Deployment, Project};

use super::tagged;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Auth, IfMatch, Json, Path};
use crate::{blocking, AppState};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_projects, create_project))
        .routes(routes!(get_project, update_project))
        .routes(routes!(list_deployments, create_deployment))
        .routes(routes!(get_deployment, update_deployment))
}

/// List projects.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects",
    responses((status = 200, body = Vec<Project>), (status = "4XX", body = ErrorBody)), security(("bearer" = [])))]
async fn list_projects(
    State(s): State<AppState>,
    Auth(_): Auth,
) -> ApiResult<axum::Json<Vec<Project>>> {
    blocking(move || s.services.projects.list())
        .await
        .map(axum::Json)
}

/// Create a project; its key is generated from the name unless given.
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = NewProject,
    responses((status = 201, body = Project), (status = "4XX", body = ErrorBody)), security(("bearer" = [])))]
async fn create_project(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Json(req): Json<NewProject>,
) -> ApiResult<Response> {
    let p = blocking(move || s.services.projects.create(&actor, req)).await?;
    Ok(tagged(StatusCode::CREATED, p.version, &p))
}

/// Show a project, with its API and secret keys.
#[utoipa::path(get, path = "/api/v1/projects/{project}", tag = "projects",
    params(("project" = String, Path, description = "project key")),
    responses((status = 200, body = Project), (status = "4XX", body = ErrorBody)), security(("bearer" = [])))]
async fn get_project(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path(project): Path<String>,
) -> ApiResult<Response> {
    let p = blocking(move || s.services.projects.get(&project)).await?;
    Ok(tagged(StatusCode::OK, p.version, &p))
}

/// Rename or describe a project (`If-Match` required).
#[utoipa::path(patch, path = "/api/v1/projects/{project}", tag = "projects", request_body = ProjectPatch,
    params(("project" = String, Path, description = "project key"), ("If-Match" = String, Header, description = "the version read")),
    responses((status = 200, body = Project), (status = "4XX", body = ErrorBody)), security(("bearer" = [])))]
async fn update_project(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(project): Path<String>,
    IfMatch(version): IfMatch,
    Json(patch): Json<ProjectPatch>,
) -> ApiResult<Response> {
    let p = blocking(move || s.services.projects.update(&actor, &project, version, patch)).await?;
    Ok(tagged(StatusCode::OK, p.version, &p))
}

/// List a project's deployments, with their SDK keys.
#[utoipa::path(get, path = "/api/v1/projects/{project}/deployments", tag = "deployments",
    params(("project" = String, Path, description = "project key")),
    responses((status = 200, body = Vec<Deployment>), (status = "4XX", body = ErrorBody)), security(("bearer" = [])))]
async fn list_deployments(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path(project): Path<String>,
) -> ApiResult<axum::Json<Vec<Deployment>>> {
    blocking(move || s.services.deployments.list(&project))
        .await
        .map(axum::Json)
}

/// Create a deployment (`client` or `server`) with a generated SDK key.
#[utoipa::path(post, path = "/api/v1/projects/{project}/deployments", tag = "deployments", request_body = NewDeployment,
    params(("project" = String, Path, description = "project key")),
    responses((status = 201, body = Deployment), (status = "4XX", body = ErrorBody)), security(("bearer" = [])))]
async fn create_deployment(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(project): Path<String>,
    Json(req): Json<NewDeployment>,
) -> ApiResult<Response> {
    let d = blocking(move || s.services.deployments.create(&actor, &project, req)).await?;
    Ok(tagged(StatusCode::CREATED, d.version, &d))
}

/// Show a deployment.
#[utoipa::path(get, path = "/api/v1/projects/{project}/deployments/{deployment}", tag = "deployments",
    params(("project" = String, Path, description = "project key"), ("deployment" = String, Path, description = "deployment key")),
    responses((status = 200, body = Deployment), (status = "4XX", body = ErrorBody)), security(("bearer" = [])))]
async fn get_deployment(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path((project, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let d = blocking(move || s.services.deployments.get(&project, &key)).await?;
    Ok(tagged(StatusCode::OK, d.version, &d))
}

/// Relabel, archive or unarchive a deployment, or rotate its SDK key (`If-Match` required).
#[utoipa::path(patch, path = "/api/v1/projects/{project}/deployments/{deployment}", tag = "deployments", request_body = DeploymentPatch,
    params(("project" = String, Path, description = "project key"), ("deployment" = String, Path, description = "deployment key"),
           ("If-Match" = String, Header, description = "the version read")),
    responses((status = 200, body = Deployment), (status = "4XX", body = ErrorBody)), security(("bearer" = [])))]
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
    Ok(tagged(StatusCode::OK, d.version, &d))
}
