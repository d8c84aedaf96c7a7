//! `/api/v1/flags`: flags and experiments, their variants, state, dependencies, history and
//! QA evaluation. A flag is named by its key; `?project=` is needed only when several projects
//! have a flag with that key.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vexil_core::service::{
    Dependencies, EligibleGroups, Evaluation, ExperimentResults, ExposureParams, ExposureStats,
    FlagChange, FlagPatch, FlagQuery, FlagSummary, NewFlag, Saved, StaleArchive, UserView,
    VersionInfo,
};
use vexil_core::{Flag, Variant};

use super::doc::{
    BadRequest, Common, Conflict, Forbidden, IfMatchHeader, NotFound, PayloadTooLarge,
    PreconditionRequired, RequestTimeout, Unprocessable, UnsupportedMediaType,
};
use super::{check_limit, tagged, Comparison, PageBody};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, IfMatch, Json, Path, Query};
use crate::{blocking, AppState};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_flags, create_flag))
        .routes(routes!(get_flag, update_flag))
        .routes(routes!(add_variant))
        .routes(routes!(update_variant, delete_variant))
        .routes(routes!(activate))
        .routes(routes!(deactivate))
        .routes(routes!(archive))
        .routes(routes!(unarchive))
        .routes(routes!(apply_changes))
        .routes(routes!(dependencies))
        .routes(routes!(eligible_prerequisites))
        .routes(routes!(eligible_groups))
        .routes(routes!(list_versions))
        .routes(routes!(compare_versions))
        .routes(routes!(get_version))
        .routes(routes!(restore_version))
        .routes(routes!(evaluate))
        .routes(routes!(user_view))
        .routes(routes!(archive_stale))
        .routes(routes!(exposures))
        .routes(routes!(results))
}

/// Which project a flag key belongs to, when ambiguous.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct InProject {
    /// The project key; needed only when several projects have a flag with this key.
    project: Option<String>,
}

fn saved(status: StatusCode, s: &Saved<Flag>) -> Response {
    tagged(status, s.value.version, s)
}

/// List flags and experiments, filtered and paginated (unarchived by default).
#[utoipa::path(get, path = "/api/v1/flags", tag = "flags", params(FlagQuery),
    responses((status = 200, body = PageBody<FlagSummary>), BadRequest, Unprocessable, Common), security(("bearer" = [])))]
async fn list_flags(
    State(s): State<AppState>,
    Auth(_): Auth,
    Query(q): Query<FlagQuery>,
) -> ApiResult<axum::Json<PageBody<FlagSummary>>> {
    let (offset, limit) = (q.offset.unwrap_or(0), q.limit.unwrap_or(50));
    // SQL's OFFSET is a signed 64-bit number; the document declares this bound, so a larger
    // offset is refused here rather than answered with a page no database could count to.
    if i64::try_from(offset).is_err() {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("query parameter offset: at most {}", i64::MAX),
            Some("offset".to_string()),
        ));
    }
    let page = blocking(move || s.services.flags.list(&q)).await?;
    Ok(axum::Json(PageBody {
        items: page.items,
        total: page.total,
        offset,
        limit,
    }))
}

/// Create a flag or experiment (inactive). The key is generated from the name unless given.
#[utoipa::path(post, path = "/api/v1/flags", tag = "flags", request_body = NewFlag,
    responses(
        (status = 201, body = Saved<Flag>, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, Common), security(("bearer" = [])))]
async fn create_flag(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Json(req): Json<NewFlag>,
) -> ApiResult<Response> {
    let f = blocking(move || s.services.flags.create(&actor, req)).await?;
    Ok(saved(StatusCode::CREATED, &f))
}

/// Show a flag with its variants, segments, inclusions and prerequisites.
#[utoipa::path(get, path = "/api/v1/flags/{key}", tag = "flags", params(("key" = String, Path), InProject),
    responses(
        (status = 200, body = Flag, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, NotFound, Unprocessable, Common), security(("bearer" = [])))]
async fn get_flag(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path(key): Path<String>,
    Query(p): Query<InProject>,
) -> ApiResult<Response> {
    let f = blocking(move || s.services.flags.get(p.project.as_deref(), &key)).await?;
    Ok(tagged(StatusCode::OK, f.version, &f))
}

/// Change a flag: any of its fields but the key (`If-Match` required). Lists replace the
/// stored ones. A new bucketing salt or unit is accepted with a warning that users move.
#[utoipa::path(patch, path = "/api/v1/flags/{key}", tag = "flags", request_body = FlagPatch,
    params(("key" = String, Path), InProject, IfMatchHeader),
    responses(
        (status = 200, body = Saved<Flag>, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired, Common), security(("bearer" = [])))]
async fn update_flag(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(key): Path<String>,
    Query(p): Query<InProject>,
    IfMatch(v): IfMatch,
    Json(patch): Json<FlagPatch>,
) -> ApiResult<Response> {
    let f = blocking(move || {
        let changes = vec![FlagChange::Update {
            patch: Box::new(patch),
        }];
        s.services
            .flags
            .apply(&actor, p.project.as_deref(), &key, v, changes)
    })
    .await?;
    Ok(saved(StatusCode::OK, &f))
}

/// Add a variant (weight 0 in every segment, so nobody moves).
#[utoipa::path(post, path = "/api/v1/flags/{key}/variants", tag = "flags", request_body = Variant,
    params(("key" = String, Path), InProject, IfMatchHeader),
    responses(
        (status = 201, body = Saved<Flag>, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired, Common), security(("bearer" = [])))]
async fn add_variant(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(key): Path<String>,
    Query(p): Query<InProject>,
    IfMatch(v): IfMatch,
    Json(variant): Json<Variant>,
) -> ApiResult<Response> {
    let f = blocking(move || {
        let changes = vec![FlagChange::AddVariant { variant }];
        s.services
            .flags
            .apply(&actor, p.project.as_deref(), &key, v, changes)
    })
    .await?;
    Ok(saved(StatusCode::CREATED, &f))
}

/// Replace a variant; a new key renames it in weights and inclusions (refused while a
/// dependent flag uses the old key).
#[utoipa::path(put, path = "/api/v1/flags/{key}/variants/{variant}", tag = "flags", request_body = Variant,
    params(("key" = String, Path), ("variant" = String, Path), InProject, IfMatchHeader),
    responses(
        (status = 200, body = Saved<Flag>, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired, Common), security(("bearer" = [])))]
async fn update_variant(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((key, variant_key)): Path<(String, String)>,
    Query(p): Query<InProject>,
    IfMatch(v): IfMatch,
    Json(variant): Json<Variant>,
) -> ApiResult<Response> {
    let f = blocking(move || {
        let changes = vec![FlagChange::UpdateVariant {
            key: variant_key,
            variant,
        }];
        s.services
            .flags
            .apply(&actor, p.project.as_deref(), &key, v, changes)
    })
    .await?;
    Ok(saved(StatusCode::OK, &f))
}

/// Delete a variant (refused while a dependent flag uses it).
#[utoipa::path(delete, path = "/api/v1/flags/{key}/variants/{variant}", tag = "flags",
    params(("key" = String, Path), ("variant" = String, Path), InProject, IfMatchHeader),
    responses(
        (status = 200, body = Saved<Flag>, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, Conflict, Unprocessable, PreconditionRequired, Common), security(("bearer" = [])))]
async fn delete_variant(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((key, variant_key)): Path<(String, String)>,
    Query(p): Query<InProject>,
    IfMatch(v): IfMatch,
) -> ApiResult<Response> {
    let f = blocking(move || {
        let changes = vec![FlagChange::DeleteVariant { key: variant_key }];
        s.services
            .flags
            .apply(&actor, p.project.as_deref(), &key, v, changes)
    })
    .await?;
    Ok(saved(StatusCode::OK, &f))
}

/// Typed changes applied together as one version.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ChangeRequest {
    /// Applied in order; all of them or none.
    changes: Vec<FlagChange>,
    /// Why, recorded in the history entry and the audit log (the `Vexil-Comment` header says
    /// the same for any other change).
    #[serde(default)]
    comment: Option<String>,
}

/// Apply typed changes (settings, variants, allocation, prerequisites, state, restore) as one
/// new version, with a comment. Every other write to a flag is one of these changes.
#[utoipa::path(post, path = "/api/v1/flags/{key}/changes", tag = "flags", request_body = ChangeRequest,
    params(("key" = String, Path), InProject, IfMatchHeader),
    responses(
        (status = 200, body = Saved<Flag>, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired, Common), security(("bearer" = [])))]
async fn apply_changes(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(key): Path<String>,
    Query(p): Query<InProject>,
    IfMatch(v): IfMatch,
    Json(req): Json<ChangeRequest>,
) -> ApiResult<Response> {
    let comment = crate::extract::comment(req.comment)?;
    let actor = match comment {
        Some(c) => actor.with_comment(Some(c)),
        None => actor,
    };
    let f = blocking(move || {
        s.services
            .flags
            .apply(&actor, p.project.as_deref(), &key, v, req.changes)
    })
    .await?;
    Ok(saved(StatusCode::OK, &f))
}

macro_rules! state_change {
    ($name:ident, $change:expr, $path:literal, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "flags",
            params(("key" = String, Path), InProject, IfMatchHeader),
            responses(
                (status = 200, body = Saved<Flag>, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
                BadRequest, Forbidden, NotFound, Conflict, Unprocessable, PreconditionRequired,
                Common), security(("bearer" = [])))]
        async fn $name(
            State(s): State<AppState>,
            Auth(actor): Auth,
            Path(key): Path<String>,
            Query(p): Query<InProject>,
            IfMatch(v): IfMatch,
        ) -> ApiResult<Response> {
            let f = blocking(move || s.services.flags.apply(&actor, p.project.as_deref(), &key, v, vec![$change])).await?;
            Ok(saved(StatusCode::OK, &f))
        }
    };
}

state_change!(
    activate,
    FlagChange::Activate,
    "/api/v1/flags/{key}/activate",
    "Activate: serve the targeting. Refused while a prerequisite is inactive; the error names it."
);
state_change!(
    deactivate,
    FlagChange::Deactivate,
    "/api/v1/flags/{key}/deactivate",
    "Deactivate: serve `off` to everyone. Warns when active flags depend on it."
);
state_change!(
    archive,
    FlagChange::Archive,
    "/api/v1/flags/{key}/archive",
    "Archive: stop serving the flag. Refused while other flags depend on it; the error names them."
);
state_change!(
    unarchive,
    FlagChange::Unarchive,
    "/api/v1/flags/{key}/unarchive",
    "Bring a flag back from the archive."
);

/// The dependencies card: prerequisites, mutual-exclusion group and slot, holdouts, the flags
/// that depend on this one, and the largest share of users the groups let it reach.
#[utoipa::path(get, path = "/api/v1/flags/{key}/dependencies", tag = "flags", params(("key" = String, Path), InProject),
    responses((status = 200, body = Dependencies), BadRequest, NotFound, Unprocessable, Common), security(("bearer" = [])))]
async fn dependencies(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path(key): Path<String>,
    Query(p): Query<InProject>,
) -> ApiResult<axum::Json<Dependencies>> {
    blocking(move || s.services.flags.dependencies(p.project.as_deref(), &key))
        .await
        .map(axum::Json)
}

/// The flags this one may add as a prerequisite: same project, compatible evaluation mode, no cycle.
#[utoipa::path(get, path = "/api/v1/flags/{key}/eligible-prerequisites", tag = "flags", params(("key" = String, Path), InProject),
    responses((status = 200, body = Vec<FlagSummary>), BadRequest, NotFound, Unprocessable, Common), security(("bearer" = [])))]
async fn eligible_prerequisites(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path(key): Path<String>,
    Query(p): Query<InProject>,
) -> ApiResult<axum::Json<Vec<FlagSummary>>> {
    blocking(move || {
        s.services
            .flags
            .eligible_prerequisites(p.project.as_deref(), &key)
    })
    .await
    .map(axum::Json)
}

/// The groups this flag may join: unarchived, compatible evaluation mode; slots list who holds
/// them (joining a held slot needs `shared: true`).
#[utoipa::path(get, path = "/api/v1/flags/{key}/eligible-groups", tag = "flags", params(("key" = String, Path), InProject),
    responses((status = 200, body = EligibleGroups), BadRequest, NotFound, Unprocessable, Common), security(("bearer" = [])))]
async fn eligible_groups(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path(key): Path<String>,
    Query(p): Query<InProject>,
) -> ApiResult<axum::Json<EligibleGroups>> {
    blocking(move || s.services.flags.eligible_groups(p.project.as_deref(), &key))
        .await
        .map(axum::Json)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct VersionsQuery {
    project: Option<String>,
    /// Versions older than this one.
    before: Option<i64>,
    /// At most this many, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// A flag's versions, newest first: who, when, what changed.
#[utoipa::path(get, path = "/api/v1/flags/{key}/versions", tag = "history", params(("key" = String, Path), VersionsQuery),
    responses((status = 200, body = Vec<VersionInfo>), BadRequest, NotFound, Unprocessable, Common), security(("bearer" = [])))]
async fn list_versions(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path(key): Path<String>,
    Query(q): Query<VersionsQuery>,
) -> ApiResult<axum::Json<Vec<VersionInfo>>> {
    let limit = q.limit.unwrap_or(50);
    // The service would clamp the limit silently; the API refuses what its document declares
    // out of range, as the flag list does, so a client learns its page is not what it asked for.
    check_limit(limit)?;
    blocking(move || {
        s.services
            .flags
            .versions(q.project.as_deref(), &key, q.before, limit)
    })
    .await
    .map(axum::Json)
}

/// One version, with the flag as it was.
#[utoipa::path(get, path = "/api/v1/flags/{key}/versions/{version}", tag = "history",
    params(("key" = String, Path), ("version" = i64, Path), InProject),
    responses((status = 200, body = VersionInfo), BadRequest, NotFound, Unprocessable, Common), security(("bearer" = [])))]
async fn get_version(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path((key, version)): Path<(String, i64)>,
    Query(p): Query<InProject>,
) -> ApiResult<axum::Json<VersionInfo>> {
    blocking(move || {
        s.services
            .flags
            .version(p.project.as_deref(), &key, version)
    })
    .await
    .map(axum::Json)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CompareQuery {
    project: Option<String>,
    from: i64,
    to: i64,
}

/// Compare two versions of a flag field by field.
#[utoipa::path(get, path = "/api/v1/flags/{key}/versions/compare", tag = "history", params(("key" = String, Path), CompareQuery),
    responses((status = 200, body = Comparison), BadRequest, NotFound, Unprocessable, Common), security(("bearer" = [])))]
async fn compare_versions(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path(key): Path<String>,
    Query(q): Query<CompareQuery>,
) -> ApiResult<axum::Json<Comparison>> {
    let (from, to) = (q.from, q.to);
    let changes = blocking(move || {
        s.services
            .flags
            .compare(q.project.as_deref(), &key, from, to)
    })
    .await?;
    Ok(axum::Json(Comparison { from, to, changes }))
}

/// Restore the configuration of an old version as a new version (`If-Match` names the current
/// one). State and archive status stay as they are.
#[utoipa::path(post, path = "/api/v1/flags/{key}/versions/{version}/restore", tag = "history",
    params(("key" = String, Path), ("version" = i64, Path), InProject, IfMatchHeader),
    responses(
        (status = 200, body = Saved<Flag>, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
        BadRequest, Forbidden, NotFound, Conflict, Unprocessable, PreconditionRequired, Common), security(("bearer" = [])))]
async fn restore_version(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((key, version)): Path<(String, i64)>,
    Query(p): Query<InProject>,
    IfMatch(v): IfMatch,
) -> ApiResult<Response> {
    let f = blocking(move || {
        let changes = vec![FlagChange::Restore { version }];
        s.services
            .flags
            .apply(&actor, p.project.as_deref(), &key, v, changes)
    })
    .await?;
    Ok(saved(StatusCode::OK, &f))
}

/// A QA request: the user to evaluate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EvaluateRequest {
    /// An Amplitude user: `user_id`, `device_id`, `country`, `user_properties`, `groups`, ...
    #[schema(value_type = Object)]
    user: serde_json::Value,
}

/// QA: evaluate this flag and its prerequisites for a user, with the engine's explanation.
#[utoipa::path(post, path = "/api/v1/flags/{key}/evaluate", tag = "flags", request_body = EvaluateRequest,
    params(("key" = String, Path), InProject),
    responses((status = 200, body = Evaluation),
        BadRequest, NotFound, RequestTimeout, PayloadTooLarge, UnsupportedMediaType, Unprocessable,
        Common), security(("bearer" = [])))]
async fn evaluate(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path(key): Path<String>,
    Query(p): Query<InProject>,
    Json(req): Json<EvaluateRequest>,
) -> ApiResult<axum::Json<Evaluation>> {
    blocking(move || {
        s.services
            .flags
            .evaluate(p.project.as_deref(), &key, req.user)
    })
    .await
    .map(axum::Json)
}

/// Archive the project's stale flags that nothing depends on (each an `archive` change with its
/// rules); the ones kept are listed with the reason.
#[utoipa::path(post, path = "/api/v1/projects/{project}/archive-stale", tag = "flags",
    params(("project" = String, Path)),
    responses((status = 200, body = StaleArchive), BadRequest, Forbidden, NotFound, Unprocessable,
        Common), security(("bearer" = [])))]
async fn archive_stale(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(project): Path<String>,
) -> ApiResult<axum::Json<StaleArchive>> {
    blocking(move || s.services.flags.archive_stale(&actor, &project))
        .await
        .map(axum::Json)
}

/// A user to evaluate every flag of a project for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UserRequest {
    /// An Amplitude user: `user_id`, `device_id`, `country`, `user_properties`, `groups`, ...
    #[schema(value_type = Object)]
    user: serde_json::Value,
    /// Evaluate as this deployment's SDKs would (only its flags); absent: every flag.
    #[serde(default)]
    deployment: Option<String>,
}

/// What does this user get? Every flag of the project (or of one deployment) evaluated for a
/// user as SDKs would, with the variant, the reason in words and the engine's trace.
#[utoipa::path(post, path = "/api/v1/projects/{project}/evaluate", tag = "flags", request_body = UserRequest,
    params(("project" = String, Path)),
    responses((status = 200, body = UserView),
        BadRequest, NotFound, RequestTimeout, PayloadTooLarge, UnsupportedMediaType, Unprocessable,
        Common), security(("bearer" = [])))]
async fn user_view(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path(project): Path<String>,
    Json(req): Json<UserRequest>,
) -> ApiResult<axum::Json<UserView>> {
    blocking(move || {
        s.services
            .flags
            .user_view(&project, req.deployment.as_deref(), req.user)
    })
    .await
    .map(axum::Json)
}

/// Exposures (or assignments) of this flag per variant over the last days, by hour or day.
#[utoipa::path(get, path = "/api/v1/flags/{key}/exposures", tag = "flags",
    params(("key" = String, Path), ExposureParams),
    responses((status = 200, body = ExposureStats), BadRequest, NotFound, Unprocessable, Common), security(("bearer" = [])))]
async fn exposures(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path(key): Path<String>,
    Query(q): Query<ExposureParams>,
) -> ApiResult<axum::Json<ExposureStats>> {
    blocking(move || s.services.flags.exposures(&key, &q))
        .await
        .map(axum::Json)
}

/// An experiment's results over its analysis window: exposed units per variant and day, each
/// metric's effect per treatment with its interval and (corrected) p-value, the effect over
/// time, the sample ratio check, and the decision in words.
#[utoipa::path(get, path = "/api/v1/flags/{key}/results", tag = "flags",
    params(("key" = String, Path), InProject),
    responses((status = 200, body = ExperimentResults), BadRequest, NotFound, Unprocessable, Common), security(("bearer" = [])))]
async fn results(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path(key): Path<String>,
    Query(p): Query<InProject>,
) -> ApiResult<axum::Json<ExperimentResults>> {
    blocking(move || s.services.flags.results(p.project.as_deref(), &key))
        .await
        .map(axum::Json)
}
