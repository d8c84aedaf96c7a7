//! `/api/v1/projects/{project}/metrics`: the metrics experiments are judged on (`analysis.md`
//! §2), with the predefined ones, and their history.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vexil_core::service::{MetricPatch, MetricVersion, NewMetric, Saved};
use vexil_core::Metric;

use super::doc::{
    BadRequest, Common, Conflict, Forbidden, IfMatchHeader, NotFound, PayloadTooLarge,
    PreconditionRequired, RequestTimeout, Unprocessable, UnsupportedMediaType,
};
use super::{check_limit, tagged, CompareQuery, Comparison, VersionsQuery};
use crate::error::ApiResult;
use crate::extract::{Auth, IfMatch, Json, Path, Query};
use crate::{blocking, AppState};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update))
        .routes(routes!(archive))
        .routes(routes!(unarchive))
        .routes(routes!(versions))
        .routes(routes!(compare))
        .routes(routes!(version))
        .routes(routes!(restore))
}

fn saved(status: StatusCode, s: &Saved<Metric>) -> Response {
    tagged(status, s.value.version, s)
}

/// Which metrics to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `false` (default) lists the predefined metrics and the unarchived ones, `true` the
    /// archived ones.
    archived: Option<bool>,
}

/// List the project's metrics: the predefined ones (`exposure`, `any-active-event`) first.
#[utoipa::path(get, path = "/api/v1/projects/{project}/metrics", tag = "metrics",
    params(("project" = String, Path), ListQuery),
    responses((status = 200, body = Vec<Metric>), BadRequest, NotFound, Unprocessable, Common),
    security(("bearer" = [])))]
async fn list(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path(project): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Vec<Metric>>> {
    let archived = q.archived.unwrap_or(false);
    blocking(move || s.services.metrics.list(&project, archived))
        .await
        .map(axum::Json)
}

/// Create a metric: a conversion, count or sum over an event type (with optional property
/// filters and conversion window), or a ratio of two metrics.
#[utoipa::path(post, path = "/api/v1/projects/{project}/metrics", tag = "metrics",
    request_body = NewMetric, params(("project" = String, Path)),
    responses(
        (status = 201, body = Saved<Metric>, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, Common), security(("bearer" = [])))]
async fn create(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(project): Path<String>,
    Json(req): Json<NewMetric>,
) -> ApiResult<Response> {
    let m = blocking(move || s.services.metrics.create(&actor, &project, req)).await?;
    Ok(saved(StatusCode::CREATED, &m))
}

/// Show a metric.
#[utoipa::path(get, path = "/api/v1/projects/{project}/metrics/{key}", tag = "metrics",
    params(("project" = String, Path), ("key" = String, Path)),
    responses(
        (status = 200, body = Metric, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, NotFound, Unprocessable, Common), security(("bearer" = [])))]
async fn get(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path((project, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let m = blocking(move || s.services.metrics.get(&project, &key)).await?;
    Ok(tagged(StatusCode::OK, m.version, &m))
}

/// Change a metric (`If-Match` required); its key and type stay. Predefined metrics cannot
/// change.
#[utoipa::path(patch, path = "/api/v1/projects/{project}/metrics/{key}", tag = "metrics",
    request_body = MetricPatch, params(("project" = String, Path), ("key" = String, Path), IfMatchHeader),
    responses(
        (status = 200, body = Saved<Metric>, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired, Common), security(("bearer" = [])))]
async fn update(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, key)): Path<(String, String)>,
    IfMatch(v): IfMatch,
    Json(patch): Json<MetricPatch>,
) -> ApiResult<Response> {
    let m = blocking(move || s.services.metrics.update(&actor, &project, &key, v, patch)).await?;
    Ok(saved(StatusCode::OK, &m))
}

/// Archive a metric. Refused while a ratio metric uses it; the error names them.
#[utoipa::path(post, path = "/api/v1/projects/{project}/metrics/{key}/archive", tag = "metrics",
    params(("project" = String, Path), ("key" = String, Path), IfMatchHeader),
    responses(
        (status = 200, body = Saved<Metric>, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, Conflict, Unprocessable, PreconditionRequired, Common),
    security(("bearer" = [])))]
async fn archive(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, key)): Path<(String, String)>,
    IfMatch(v): IfMatch,
) -> ApiResult<Response> {
    let m = blocking(move || s.services.metrics.archive(&actor, &project, &key, v)).await?;
    Ok(saved(StatusCode::OK, &m))
}

/// Bring a metric back from the archive.
#[utoipa::path(post, path = "/api/v1/projects/{project}/metrics/{key}/unarchive", tag = "metrics",
    params(("project" = String, Path), ("key" = String, Path), IfMatchHeader),
    responses(
        (status = 200, body = Saved<Metric>, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, Conflict, Unprocessable, PreconditionRequired, Common),
    security(("bearer" = [])))]
async fn unarchive(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, key)): Path<(String, String)>,
    IfMatch(v): IfMatch,
) -> ApiResult<Response> {
    let m = blocking(move || s.services.metrics.unarchive(&actor, &project, &key, v)).await?;
    Ok(saved(StatusCode::OK, &m))
}

/// A metric's versions, newest first: who, when, what changed.
#[utoipa::path(get, path = "/api/v1/projects/{project}/metrics/{key}/versions", tag = "history",
    params(("project" = String, Path), ("key" = String, Path), VersionsQuery),
    responses((status = 200, body = Vec<MetricVersion>), BadRequest, NotFound, Unprocessable, Common),
    security(("bearer" = [])))]
async fn versions(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path((project, key)): Path<(String, String)>,
    Query(q): Query<VersionsQuery>,
) -> ApiResult<axum::Json<Vec<MetricVersion>>> {
    let limit = q.limit.unwrap_or(50);
    check_limit(limit)?;
    blocking(move || s.services.metrics.versions(&project, &key, q.before, limit))
        .await
        .map(axum::Json)
}

/// Compare two versions of a metric field by field.
#[utoipa::path(get, path = "/api/v1/projects/{project}/metrics/{key}/versions/compare", tag = "history",
    params(("project" = String, Path), ("key" = String, Path), CompareQuery),
    responses((status = 200, body = Comparison), BadRequest, NotFound, Unprocessable, Common),
    security(("bearer" = [])))]
async fn compare(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path((project, key)): Path<(String, String)>,
    Query(q): Query<CompareQuery>,
) -> ApiResult<axum::Json<Comparison>> {
    let (from, to) = (q.from, q.to);
    let changes = blocking(move || s.services.metrics.compare(&project, &key, from, to)).await?;
    Ok(axum::Json(Comparison { from, to, changes }))
}

/// One version of a metric, with the metric as it was.
#[utoipa::path(get, path = "/api/v1/projects/{project}/metrics/{key}/versions/{version}", tag = "history",
    params(("project" = String, Path), ("key" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = MetricVersion), BadRequest, NotFound, Unprocessable, Common),
    security(("bearer" = [])))]
async fn version(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path((project, key, version)): Path<(String, String, i64)>,
) -> ApiResult<axum::Json<MetricVersion>> {
    blocking(move || s.services.metrics.version(&project, &key, version))
        .await
        .map(axum::Json)
}

/// Restore the definition of an old version of a metric as a new version (`If-Match` names
/// the current one).
#[utoipa::path(post, path = "/api/v1/projects/{project}/metrics/{key}/versions/{version}/restore", tag = "history",
    params(("project" = String, Path), ("key" = String, Path), ("version" = i64, Path), IfMatchHeader),
    responses(
        (status = 200, body = Saved<Metric>, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, Conflict, Unprocessable, PreconditionRequired, Common),
    security(("bearer" = [])))]
async fn restore(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((project, key, version)): Path<(String, String, i64)>,
    IfMatch(v): IfMatch,
) -> ApiResult<Response> {
    let m = blocking(move || {
        s.services
            .metrics
            .restore(&actor, &project, &key, v, version)
    })
    .await?;
    Ok(saved(StatusCode::OK, &m))
}
