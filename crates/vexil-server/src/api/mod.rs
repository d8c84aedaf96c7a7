//! The management API under `/api/v1`: routes, the OpenAPI document built from the handlers'
//! annotations, body limits, and JSON answers for unknown routes and methods.

mod audit;
mod cohorts;
mod doc;
mod drafts;
mod flags;
mod groups;
mod keys;
mod metrics;
mod projects;
mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// JSON bodies of the management API (flags, projects): 1 MiB.
const JSON_LIMIT: usize = 1 << 20;
/// Cohort uploads and imports: 256 MiB (a million ids is about 20 MB).
pub(crate) const UPLOAD_LIMIT: usize = 256 << 20;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vexil management API",
        description = "Projects, deployments, flags and experiments, cohorts, prerequisites and history. \
Every request needs `Authorization: Bearer <management key>`. Writes to an existing resource send \
`If-Match` with the version they are based on (the `ETag` of the resource); a stale version gets 409 \
`version_conflict` with the current version."
    ),
    modifiers(&Security),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(audit::routes())
        .merge(drafts::routes())
        .merge(projects::routes())
        .merge(flags::routes())
        .merge(groups::routes())
        .merge(metrics::routes())
        .merge(keys::routes())
        .merge(webhooks::routes())
        .layer(DefaultBodyLimit::max(JSON_LIMIT))
        .merge(cohorts::routes())
}

/// The OpenAPI 3.1 document of the management API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

pub(crate) fn router(state: AppState) -> Router {
    let (api, doc) = api().split_for_parts();
    let doc = serde_json::to_string(&doc).unwrap_or_else(|_| "{}".to_string());
    api.route(
        "/api/v1/openapi.json",
        get(move || async move { ([(header::CONTENT_TYPE, "application/json")], doc) }),
    )
    .fallback(not_found)
    .method_not_allowed_fallback(method_not_allowed)
    .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; the API is described at /api/v1/openapi.json",
        None,
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
        None,
    )
}

/// A JSON answer carrying the resource's version as its `ETag`.
pub(crate) fn tagged<T: Serialize>(status: StatusCode, version: i64, body: &T) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// Which versions of a project document (group, metric) to list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct VersionsQuery {
    /// Versions older than this one.
    pub before: Option<i64>,
    /// At most this many, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// The two versions to compare.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CompareQuery {
    pub from: i64,
    pub to: i64,
}

/// What changed between two versions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Comparison {
    pub from: i64,
    pub to: i64,
    pub changes: Vec<vexil_core::diff::Change>,
}

/// A versions page size the document declares: 1 to 500 (the services would clamp silently).
pub(crate) fn check_limit(limit: u32) -> Result<(), ApiError> {
    if (1..=500).contains(&limit) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "out_of_range",
            "limit is 1 to 500",
            Some("limit".to_string()),
        ))
    }
}

/// A page of results.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PageBody<T> {
    pub items: Vec<T>,
    /// How many match in all.
    pub total: u64,
    pub offset: u64,
    pub limit: u32,
}
