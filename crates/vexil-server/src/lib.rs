//! Vexil's HTTP adapter (axum): the management JSON API under `/api/v1`, with its OpenAPI 3.1
//! document at `/api/v1/openapi.json`. Handlers are thin: they extract, make one service call
//! on the blocking pool (the store drivers are synchronous), and map the result or the error.
//!
//! [`run`] serves a router on a listener the caller bound, until `shutdown` resolves, so tests
//! start the real server on port 0.

mod api;
pub mod error;
mod extract;

use std::future::Future;

use axum::Router;
use tokio::net::TcpListener;
use vexil_core::Services;

pub use api::openapi;
use error::{ApiError, ApiResult};

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
}

/// The application: every route with its state.
pub fn router(services: Services) -> Router {
    api::router(AppState { services })
}

/// Serves until `shutdown` resolves, then finishes the requests in flight.
pub async fn run(
    services: Services,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(services))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Runs a service call on the blocking pool.
pub(crate) async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> vexil_core::Result<R> + Send + 'static,
) -> ApiResult<R> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(join) => Err(ApiError::from(vexil_core::Error::Internal(Box::new(join)))),
    }
}
