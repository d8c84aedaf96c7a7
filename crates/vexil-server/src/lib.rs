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
mod credentials;
pub mod error;
mod extract;
mod health;
mod listen;
mod metrics;
pub mod otlp;
mod proxy;
mod scheduler;
mod sdk;
mod sdk_app;
mod state;
mod throttle;
mod trace;
mod webhooks;

use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use vexil_core::sdk::{Publisher, Tracker};
use vexil_core::Services;

pub use api::openapi;
pub use config::ServerConfig;
use error::{ApiError, ApiResult};
pub use listen::ConnectionLimits;
pub use proxy::{InvalidNet, IpNet};
pub use sdk::{BackendMetric, MetricKind, NodeBackend, SdkBackend};
pub use sdk_app::SdkApp;
pub use webhooks::WebhookOptions;

/// What management handlers share.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub publisher: Publisher,
    /// Failed management-key attempts per client, shared with the console's sign-in.
    pub(crate) throttle: Arc<throttle::Throttle>,
    pub(crate) metrics: Arc<metrics::Metrics>,
}

/// A started application: snapshots published, the tracker's writer running.
pub struct App {
    state: AppState,
    tracker: Tracker,
    sdk: Arc<sdk::Sdk>,
    console: Arc<console::Console>,
    /// Reloads the management keys and the server secret every sync interval.
    credentials: credentials::Follower,
    /// Delivers the webhook outbox.
    webhooks: webhooks::Worker,
    /// Publishes the drafts scheduled for now.
    scheduler: scheduler::Scheduler,
}

impl App {
    /// Loads and publishes every deployment's snapshot and starts the background threads.
    /// Runs the blocking part on tokio's blocking pool. Fails when the store is unreachable,
    /// unless the config names a state directory: then the node starts with the snapshots it
    /// persisted there (or none: not ready until the store answers).
    pub async fn start(services: Services, config: ServerConfig) -> vexil_core::Result<App> {
        let started = tokio::task::spawn_blocking(move || App::start_blocking(services, config))
            .await
            .map_err(|e| vexil_core::Error::Internal(Box::new(e)))?;
        started
    }

    fn start_blocking(services: Services, config: ServerConfig) -> vexil_core::Result<App> {
        let store = services.store().clone();
        // Requests authenticate from the key cache: load it before serving any (or, when the
        // store is unreachable and the node keeps a state directory, when it answers).
        let secrets = state::credentials(&services, &config)?;
        let registry = Arc::new(sdk::registry::Registry::new(&secrets));
        let throttle = Arc::new(
            throttle::Throttle::new(
                config.auth_failures_per_minute,
                config.auth_throttle_clients,
            )
            .trusting(config.trusted_proxies.clone()),
        );
        let console = Arc::new(console::Console {
            services: services.clone(),
            secrets: std::sync::RwLock::new(Arc::new(secrets.clone())),
            throttle: throttle.clone(),
            secure_cookies: config.public_url.as_deref().is_some_and(console::is_https),
        });
        let publisher = Publisher::new(store.clone(), config.publisher.clone());
        services.subscribe(publisher.listener());
        publisher.subscribe(registry.clone());
        state::load_snapshots(&publisher, &config)?;
        publisher.spawn()?;
        let tracker = Tracker::start_with_spool(store, publisher.clone(), state::spool(&config)?)?;
        tracker.set_event_retention_days(config.event_retention_days);
        let streams = Arc::new(AtomicUsize::new(0));
        let metrics = Arc::new(metrics::Metrics::new(metrics::Live {
            registry: registry.clone(),
            node: Some((publisher.clone(), tracker.clone())),
            backend: None,
            streams: streams.clone(),
        }));
        let limiter = config.rate_limit.map(sdk::Limiter::new);
        let ingest_buffer = Arc::new(tokio::sync::Semaphore::new(
            sdk::ingest_buffer_kib(&config) as usize
        ));
        let webhooks =
            webhooks::Worker::start(services.clone(), config.webhooks.clone(), metrics.clone())?;
        let credentials = credentials::Follower::start(
            services.clone(),
            console.clone(),
            registry.clone(),
            secrets,
            config.publisher.sync_interval,
        );
        let scheduler =
            scheduler::Scheduler::start(services.clone(), config.publisher.sync_interval);
        Ok(App {
            tracker: tracker.clone(),
            console,
            credentials,
            webhooks,
            scheduler,
            state: AppState {
                services,
                publisher: publisher.clone(),
                throttle,
                metrics: metrics.clone(),
            },
            sdk: Arc::new(sdk::Sdk {
                registry,
                backend: Arc::new(sdk::NodeBackend { publisher, tracker }),
                config,
                limiter,
                streams,
                metrics,
                ingest_buffer,
            }),
        })
    }

    /// Every route: the management API, the SDK API, the console and the probes.
    pub fn router(&self) -> Router {
        let health = health::Health {
            store: self.state.services.store().clone(),
            publisher: self.state.publisher.clone(),
            tracker: self.tracker.clone(),
        };
        let router = api::router(self.state.clone())
            .merge(sdk::router(self.sdk.clone()))
            .merge(console::router(self.console.clone()))
            .merge(health::router(health))
            .merge(metrics::router(self.state.clone()));
        outer_layers(router, &self.state.metrics)
    }

    /// Serves `/metrics` without a management key on `listener` (meant for an internal
    /// network) until `shutdown` resolves.
    pub fn serve_metrics(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
        metrics::serve_open(self.state.metrics.clone(), listener, shutdown)
    }

    /// Serves until `shutdown` resolves; open streams end then, and the requests in flight
    /// finish.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        serve_until(&self.sdk, listener, self.router(), shutdown).await
    }

    /// Stores the queued tracking records and stops the background threads.
    pub async fn stop(&self) {
        self.credentials.stop();
        self.scheduler.stop();
        self.webhooks.stop().await;
        let publisher = self.state.publisher.clone();
        let tracker = self.tracker.clone();
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

/// What every router of a server (a node's, an edge's) is wrapped in: the trace context, the
/// request metrics, and `nosniff` on every answer.
fn outer_layers(router: Router, metrics: &Arc<metrics::Metrics>) -> Router {
    router
        .layer(tower::util::MapResponseLayer::new(health::nosniff))
        .layer(axum::middleware::from_fn_with_state(
            metrics.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn(trace::context))
}

/// Serves `router` on `listener` with the connection limits of `sdk` until `shutdown`
/// resolves; open streams end then, and the requests in flight finish.
async fn serve_until(
    sdk: &sdk::SdkState,
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let registry = sdk.registry.clone();
    let limits = sdk.config.connections.clone();
    listen::serve(listener, router, limits, async move {
        shutdown.await;
        registry.close();
    })
    .await
}
