//! `/api/v1/projects/{project}/mutex-groups` and `/api/v1/projects/{project}/holdouts`:
//! mutual-exclusion and holdout groups, their members and their history. Flags join groups
//! through `PATCH /api/v1/flags/{key}` (`mutex_group`, `holdouts`). The two families share
//! their handlers: a macro instantiates them per kind, with each kind's paths and bodies.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vexil_core::service::{
    ExperimentResults, GroupPatch, GroupVersion, GroupView, HoldoutPatch, MutexGroupPatch,
    NewHoldout, NewMutexGroup, Saved,
};
use vexil_core::{Group, GroupKind};

use super::doc::{
    BadRequest, Common, Conflict, Forbidden, IfMatchHeader, NotFound, PayloadTooLarge,
    PreconditionRequired, RequestTimeout, Unprocessable, UnsupportedMediaType,
};
use super::{check_limit, tagged, CompareQuery, Comparison, VersionsQuery};
use crate::error::ApiResult;
use crate::extract::{Auth, IfMatch, Json, Path, Query};
use crate::{blocking, AppState};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    mutex::routes()
        .merge(holdout::routes())
        .routes(routes!(holdout_results))
}

/// A holdout's results: the users it held out against everyone else on the program's
/// metrics, since it was created, with the same statistics as an experiment's results.
#[utoipa::path(get, path = "/api/v1/projects/{project}/holdouts/{key}/results", tag = "holdout groups",
    params(("project" = String, Path), ("key" = String, Path)),
    responses((status = 200, body = ExperimentResults), BadRequest, NotFound, Unprocessable, Common),
    security(("bearer" = [])))]
async fn holdout_results(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path((project, key)): Path<(String, String)>,
) -> ApiResult<axum::Json<ExperimentResults>> {
    blocking(move || s.services.groups.holdout_results(&project, &key))
        .await
        .map(axum::Json)
}

fn saved(status: StatusCode, s: &Saved<Group>) -> Response {
    tagged(status, s.value.version, s)
}

/// Which groups to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `false` (default) lists unarchived groups, `true` archived ones.
    archived: Option<bool>,
}

/// The handlers of one kind of group: `$path` is the collection's path, `$new` and `$patch`
/// the request bodies, `$create` the service's create method and `$wrap` the `GroupPatch` arm.
macro_rules! group_api {
    ($module:ident, $kind:expr, $tag:literal, $path:literal, $label:literal,
     $new:ty, $create:ident, $patch:ty, $wrap:path) => {
        pub(super) mod $module {
            use super::*;

            pub(in crate::api) fn routes() -> OpenApiRouter<AppState> {
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

            #[doc = concat!("List the project's ", $label, "s with their members (unarchived by default).")]
            #[utoipa::path(get, path = $path, tag = $tag, params(("project" = String, Path), ListQuery),
                responses((status = 200, body = Vec<GroupView>), BadRequest, NotFound, Unprocessable, Common),
                security(("bearer" = [])))]
            async fn list(
                State(s): State<AppState>,
                Auth(_): Auth,
                Path(project): Path<String>,
                Query(q): Query<ListQuery>,
            ) -> ApiResult<axum::Json<Vec<GroupView>>> {
                let archived = q.archived.unwrap_or(false);
                blocking(move || s.services.groups.list(&project, $kind, archived))
                    .await
                    .map(axum::Json)
            }

            #[doc = concat!("Create a ", $label, ". The key is generated from the name unless given.")]
            #[utoipa::path(post, path = $path, tag = $tag, request_body = $new,
                params(("project" = String, Path)),
                responses(
                    (status = 201, body = Saved<Group>, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
                    BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
                    UnsupportedMediaType, Unprocessable, Common), security(("bearer" = [])))]
            async fn create(
                State(s): State<AppState>,
                Auth(actor): Auth,
                Path(project): Path<String>,
                Json(req): Json<$new>,
            ) -> ApiResult<Response> {
                let g = blocking(move || s.services.groups.$create(&actor, &project, req)).await?;
                Ok(saved(StatusCode::CREATED, &g))
            }

            #[doc = concat!("Show a ", $label, " with its members.")]
            #[utoipa::path(get, path = concat!($path, "/{key}"), tag = $tag,
                params(("project" = String, Path), ("key" = String, Path)),
                responses(
                    (status = 200, body = GroupView, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
                    BadRequest, NotFound, Unprocessable, Common), security(("bearer" = [])))]
            async fn get(
                State(s): State<AppState>,
                Auth(_): Auth,
                Path((project, key)): Path<(String, String)>,
            ) -> ApiResult<Response> {
                let g = blocking(move || s.services.groups.get(&project, $kind, &key)).await?;
                Ok(tagged(StatusCode::OK, g.group.version, &g))
            }

            #[doc = concat!("Change a ", $label, " (`If-Match` required). What decides who is in which slot \
                or held out (slots, percentage, unit, salt) cannot change while a member is active.")]
            #[utoipa::path(patch, path = concat!($path, "/{key}"), tag = $tag, request_body = $patch,
                params(("project" = String, Path), ("key" = String, Path), IfMatchHeader),
                responses(
                    (status = 200, body = Saved<Group>, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
                    BadRequest, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge,
                    UnsupportedMediaType, Unprocessable, PreconditionRequired, Common), security(("bearer" = [])))]
            async fn update(
                State(s): State<AppState>,
                Auth(actor): Auth,
                Path((project, key)): Path<(String, String)>,
                IfMatch(v): IfMatch,
                Json(patch): Json<$patch>,
            ) -> ApiResult<Response> {
                let g = blocking(move || {
                    s.services.groups.update(&actor, &project, &key, v, $wrap(patch))
                })
                .await?;
                Ok(saved(StatusCode::OK, &g))
            }

            #[doc = concat!("Archive a ", $label, ". Refused while a member is active; the error names them.")]
            #[utoipa::path(post, path = concat!($path, "/{key}/archive"), tag = $tag,
                params(("project" = String, Path), ("key" = String, Path), IfMatchHeader),
                responses(
                    (status = 200, body = Saved<Group>, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
                    BadRequest, Forbidden, NotFound, Conflict, Unprocessable, PreconditionRequired, Common),
                security(("bearer" = [])))]
            async fn archive(
                State(s): State<AppState>,
                Auth(actor): Auth,
                Path((project, key)): Path<(String, String)>,
                IfMatch(v): IfMatch,
            ) -> ApiResult<Response> {
                let g = blocking(move || s.services.groups.archive(&actor, &project, $kind, &key, v)).await?;
                Ok(saved(StatusCode::OK, &g))
            }

            #[doc = concat!("Bring a ", $label, " back from the archive.")]
            #[utoipa::path(post, path = concat!($path, "/{key}/unarchive"), tag = $tag,
                params(("project" = String, Path), ("key" = String, Path), IfMatchHeader),
                responses(
                    (status = 200, body = Saved<Group>, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
                    BadRequest, Forbidden, NotFound, Conflict, Unprocessable, PreconditionRequired, Common),
                security(("bearer" = [])))]
            async fn unarchive(
                State(s): State<AppState>,
                Auth(actor): Auth,
                Path((project, key)): Path<(String, String)>,
                IfMatch(v): IfMatch,
            ) -> ApiResult<Response> {
                let g = blocking(move || s.services.groups.unarchive(&actor, &project, $kind, &key, v)).await?;
                Ok(saved(StatusCode::OK, &g))
            }

            #[doc = concat!("A ", $label, "'s versions, newest first: who, when, what changed.")]
            #[utoipa::path(get, path = concat!($path, "/{key}/versions"), tag = "history",
                params(("project" = String, Path), ("key" = String, Path), VersionsQuery),
                responses((status = 200, body = Vec<GroupVersion>), BadRequest, NotFound, Unprocessable, Common),
                security(("bearer" = [])))]
            async fn versions(
                State(s): State<AppState>,
                Auth(_): Auth,
                Path((project, key)): Path<(String, String)>,
                Query(q): Query<VersionsQuery>,
            ) -> ApiResult<axum::Json<Vec<GroupVersion>>> {
                let limit = q.limit.unwrap_or(50);
                check_limit(limit)?;
                blocking(move || s.services.groups.versions(&project, $kind, &key, q.before, limit))
                    .await
                    .map(axum::Json)
            }

            #[doc = concat!("Compare two versions of a ", $label, " field by field.")]
            #[utoipa::path(get, path = concat!($path, "/{key}/versions/compare"), tag = "history",
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
                let changes =
                    blocking(move || s.services.groups.compare(&project, $kind, &key, from, to)).await?;
                Ok(axum::Json(Comparison { from, to, changes }))
            }

            #[doc = concat!("One version of a ", $label, ", with the group as it was.")]
            #[utoipa::path(get, path = concat!($path, "/{key}/versions/{version}"), tag = "history",
                params(("project" = String, Path), ("key" = String, Path), ("version" = i64, Path)),
                responses((status = 200, body = GroupVersion), BadRequest, NotFound, Unprocessable, Common),
                security(("bearer" = [])))]
            async fn version(
                State(s): State<AppState>,
                Auth(_): Auth,
                Path((project, key, version)): Path<(String, String, i64)>,
            ) -> ApiResult<axum::Json<GroupVersion>> {
                blocking(move || s.services.groups.version(&project, $kind, &key, version))
                    .await
                    .map(axum::Json)
            }

            #[doc = concat!("Restore the configuration of an old version of a ", $label, " as a new version \
                (`If-Match` names the current one); the group rules apply as to any change.")]
            #[utoipa::path(post, path = concat!($path, "/{key}/versions/{version}/restore"), tag = "history",
                params(("project" = String, Path), ("key" = String, Path), ("version" = i64, Path), IfMatchHeader),
                responses(
                    (status = 200, body = Saved<Group>, headers(("ETag" = String, description = "The version; send it as If-Match to change this"))),
                    BadRequest, Forbidden, NotFound, Conflict, Unprocessable, PreconditionRequired, Common),
                security(("bearer" = [])))]
            async fn restore(
                State(s): State<AppState>,
                Auth(actor): Auth,
                Path((project, key, version)): Path<(String, String, i64)>,
                IfMatch(v): IfMatch,
            ) -> ApiResult<Response> {
                let g = blocking(move || {
                    s.services.groups.restore(&actor, &project, $kind, &key, v, version)
                })
                .await?;
                Ok(saved(StatusCode::OK, &g))
            }
        }
    };
}

group_api!(
    mutex,
    GroupKind::MutualExclusion,
    "mutual-exclusion groups",
    "/api/v1/projects/{project}/mutex-groups",
    "mutual-exclusion group",
    NewMutexGroup,
    create_mutex,
    MutexGroupPatch,
    GroupPatch::MutualExclusion
);

group_api!(
    holdout,
    GroupKind::Holdout,
    "holdout groups",
    "/api/v1/projects/{project}/holdouts",
    "holdout group",
    NewHoldout,
    create_holdout,
    HoldoutPatch,
    GroupPatch::Holdout
);
