//! `/api/v1/keys`: management keys (admin role only). A new key's secret is returned once.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vexil_core::service::{CreatedKey, KeyInfo};
use vexil_core::Role;

use super::doc::{
    BadRequest, Common, Conflict, Forbidden, NotFound, PayloadTooLarge, RequestTimeout,
    Unprocessable, UnsupportedMediaType,
};
use crate::error::ApiResult;
use crate::extract::{Auth, Json, Path};
use crate::{blocking, AppState};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
}

/// List management keys (never their secrets).
#[utoipa::path(get, path = "/api/v1/keys", tag = "keys",
    responses((status = 200, body = Vec<KeyInfo>), Forbidden, Common), security(("bearer" = [])))]
async fn list_keys(
    State(s): State<AppState>,
    Auth(actor): Auth,
) -> ApiResult<axum::Json<Vec<KeyInfo>>> {
    blocking(move || s.services.keys.list(&actor))
        .await
        .map(axum::Json)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    /// `reader`, `writer` or `admin` (default `writer`).
    #[serde(default = "writer")]
    role: Role,
}

fn writer() -> Role {
    Role::Writer
}

/// Create a management key; the response holds its secret, shown this once.
#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = NewKey,
    responses((status = 201, body = CreatedKey),
        BadRequest, Forbidden, RequestTimeout, PayloadTooLarge, UnsupportedMediaType,
        Unprocessable, Common), security(("bearer" = [])))]
async fn create_key(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Json(req): Json<NewKey>,
) -> ApiResult<(StatusCode, axum::Json<CreatedKey>)> {
    let key = blocking(move || s.services.keys.create(&actor, &req.name, req.role)).await?;
    Ok((StatusCode::CREATED, axum::Json(key)))
}

/// Revoke a management key by id; it stops working at once. The last active admin key cannot
/// be revoked (409 `last_admin_key`): create another admin key first.
#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "keys", params(("id" = String, Path)),
    responses((status = 200, body = KeyInfo),
        BadRequest, Forbidden, NotFound, Conflict, Unprocessable, Common), security(("bearer" = [])))]
async fn revoke_key(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<KeyInfo>> {
    blocking(move || s.services.keys.revoke(&actor, &id))
        .await
        .map(axum::Json)
}
