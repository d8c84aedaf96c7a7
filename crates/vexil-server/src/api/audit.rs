//! `/api/v1/audit`: the audit log, every change to every entity, newest first.

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vexil_core::service::{AuditFilter, AuditPage};

use super::doc::{BadRequest, Common, Unprocessable};
use crate::error::ApiResult;
use crate::extract::{Auth, Query};
use crate::{blocking, AppState};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// Which changes to list; every filter given must hold.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    project: Option<String>,
    /// The management key's name that made the change.
    actor: Option<String>,
    /// `flag`, `mutex_group`, `holdout`, `metric`, `cohort`, `deployment`, `project`, ...
    entity: Option<String>,
    key: Option<String>,
    /// From this time (Unix milliseconds, inclusive).
    from: Option<i64>,
    /// Before this time (Unix milliseconds, exclusive).
    to: Option<i64>,
    /// The `next` of the previous page.
    after: Option<String>,
    /// Entries per page, 1 to 500 (50 by default).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// The audit log: who changed what, when and why, across every entity, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "history", params(AuditQuery),
    responses((status = 200, body = AuditPage), BadRequest, Unprocessable, Common),
    security(("bearer" = [])))]
async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Query(q): Query<AuditQuery>,
) -> ApiResult<axum::Json<AuditPage>> {
    let filter = AuditFilter {
        project: q.project,
        actor: q.actor,
        entity: q.entity,
        key: q.key,
        from: q.from,
        to: q.to,
        after: q.after,
        limit: q.limit,
    };
    blocking(move || s.services.audit.list(&actor, filter))
        .await
        .map(axum::Json)
}
