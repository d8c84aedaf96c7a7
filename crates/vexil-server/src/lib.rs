//! Vexil's HTTP adapter (axum): the management JSON API under `/api/v1`, with its OpenAPI 3.1
//! document at `/api/v1/openapi.json`, and the SDK-facing API (Amplitude-compatible endpoints
//! and OFREP, `sdk/`). Management handlers are thin: they extract, make one service call on the
//! blocking pool (the store drivers are synchronous), and map the result or the error. SDK
//! handlers read the published snapshots only.
//!
//! [`run`] serves on a listener the caller bound, until `shutdown` resolves, so tests start the
//! real server on port 0.

mod api;
mod config;
mod console;
pub mod error;
mod extract;
mod sdk;

use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use vexil_core::sdk::{server_secret, Publisher, Tracker};
use vexil_core::Services;

pub use api::openapi;
pub use config::ServerConfig;
use error::{ApiError, ApiResult};

/// What management handlers share.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub publisher: Publisher,
}

/// A started application: snapshots published, the tracker's writer running.
pub struct App {
    state: AppState,
    sdk: Arc<sdk::Sdk>,
    console: Arc<console::Console>,
}

impl App {
    /// Loads and publishes every deployment's snapshot and starts the background threads.
    /// Runs the blocking part on tokio's blocking pool.
    pub async fn start(services: Services, config: ServerConfig) -> vexil_core::Result<App> {
        let started = tokio::task::spawn_blocking(move || App::start_blocking(services, config))
            .await
            .map_err(|e| vexil_core::Error::Internal(Box::new(e)))?;
        started
    }

    fn start_blocking(services: Services, config: ServerConfig) -> vexil_core::Result<App> {
        let store = services.store().clone();
        let secret = server_secret(&store)?;
        let registry = Arc::new(sdk::registry::Registry::new(&secret));
        let console = Arc::new(console::Console {
            services: services.clone(),
            secret: secret.into_bytes(),
        });
        let publisher = Publisher::new(store.clone(), config.publisher.clone());
        services.subscribe(publisher.listener());
        publisher.subscribe(registry.clone());
        publisher.load_all()?;
        publisher.spawn()?;
        let tracker = Tracker::start(store, publisher.clone())?;
        let limiter = config.rate_limit.map(sdk::Limiter::new);
        Ok(App {
            console,
            state: AppState {
                services,
                publisher: publisher.clone(),
            },
            sdk: Arc::new(sdk::Sdk {
                registry,
                publisher,
                tracker,
                config,
                limiter,
                streams: AtomicUsize::new(0),
            }),
        })
    }

    /// Every route: the management API, the SDK API and the console.
    pub fn router(&self) -> Router {
        api::router(self.state.clone())
            .merge(sdk::router(self.sdk.clone()))
            .merge(console::router(self.console.clone()))
    }

    /// Serves until `shutdown` resolves; open streams end then, and the requests in flight
    /// finish.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let registry = self.sdk.registry.clone();
        let app = tower::ServiceExt::map_request(self.router(), sdk::normalize_path);
        axum::serve(listener, axum::ServiceExt::into_make_service(app))
            .with_graceful_shutdown(async move {
                shutdown.await;
                registry.close();
            })
            .await
    }

    /// Stores the queued tracking records and stops the background threads.
    pub async fn stop(&self) {
        let publisher = self.sdk.publisher.clone();
        let tracker = self.sdk.tracker.clone();
        let _ = tokio::task::spawn_blocking(move || {
            publisher.stop();
            tracker.stop();
        })
        .await;
    }
}

/// Starts the application, serves until `shutdown` resolves, then stops it.
pub async fn run(
    services: Services,
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = App::start(services, config)
        .await
        .map_err(|e| std::io::Error::other(error::chain(&e)))?;
    let served = app.serve(listener, shutdown).await;
    app.stop().await;
    served
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
