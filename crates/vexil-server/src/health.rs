//! Probes for load balancers and orchestrators, and the headers every response carries.
//!
//! - `GET /healthz`: the process is alive and answering (a liveness probe); never touches the
//!   store.
//! - `GET /readyz`: the node can serve SDKs: its snapshots are loaded, from the store or (a
//!   node that started while the store was unreachable) from those it persisted on disk; the
//!   body's `snapshots.source` says which. It answers `200` even while the store is
//!   unreachable, because SDK traffic is served from the snapshots in memory then, and `503`
//!   only while no snapshot is loaded at all (the store was unreachable at start and nothing
//!   was persisted). The body also says whether the store answered within a second, and what
//!   the spool of event batches holds, for dashboards and for the operator.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;
use vexil_core::sdk::{Publisher, Tracker};
use vexil_store::Store;

/// What the probes read.
#[derive(Clone)]
pub(crate) struct Health {
    pub store: Arc<dyn Store>,
    pub publisher: Publisher,
    pub tracker: Tracker,
}

pub(crate) fn router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health)
}

fn answer(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = Response::new(body.to_string().into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn healthz() -> Response {
    answer(StatusCode::OK, &json!({"status": "ok"}))
}

/// How long readiness waits for the store before reporting it unreachable.
const STORE_WAIT: Duration = Duration::from_secs(1);

async fn readyz(State(health): State<Health>) -> Response {
    let store = health.store.clone();
    let ping = tokio::task::spawn_blocking(move || {
        vexil_store::read(&*store, |tx| tx.get_setting("server_secret").map(drop))
    });
    let reachable = matches!(tokio::time::timeout(STORE_WAIT, ping).await, Ok(Ok(Ok(()))));
    let deployments = health.publisher.snapshots().len();
    let source = health.publisher.source();
    let (status, word) = match source {
        Some(_) => (StatusCode::OK, "ready"),
        None => (StatusCode::SERVICE_UNAVAILABLE, "starting"),
    };
    let mut body = json!({
        "status": word,
        "snapshots": {
            "loaded": source.is_some(),
            "source": source.map(|s| s.as_str()),
            "deployments": deployments,
        },
        "store": if reachable { "reachable" } else { "unreachable" },
    });
    if let Some(spool) = health.tracker.spool_stats() {
        body["spool"] = json!(spool);
    }
    answer(status, &body)
}

/// The probes of a node without a store (`vexil edge`): `/healthz` as above, `/readyz` as
/// its backend reports it (`200` once a snapshot is loaded, `503` before).
pub(crate) fn backend_router(backend: Arc<dyn crate::sdk::SdkBackend>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/readyz",
            get(
                |State(backend): State<Arc<dyn crate::sdk::SdkBackend>>| async move {
                    let (ready, body) = backend.readiness();
                    let status = if ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    answer(status, &body)
                },
            ),
        )
        .with_state(backend)
}

/// Sets `X-Content-Type-Options: nosniff` on a response: no answer of Vexil's is to be
/// reinterpreted by a browser as another type (an uploaded cohort as HTML, say).
pub(crate) fn nosniff(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
