//! An application that serves only the SDK API, from snapshots handed to it, with no store:
//! what `vexil edge` runs. The routes, the registry and the connection layer are the ones a
//! `vexil serve` node uses; only the [`SdkBackend`] differs (the edge's forwards event batches
//! and tracking upstream), so an edge cannot answer differently from a node. Its `/metrics` is
//! the node's exporter over the same routes, plus what the backend reports, on a listener of
//! its own.

use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use vexil_core::sdk::SnapshotSink;
use vexil_core::service::ServerSecrets;

use crate::sdk::{self, SdkBackend};
use crate::{health, metrics, ServerConfig};

/// The SDK API over snapshots published into [`SdkApp::sink`].
pub struct SdkApp {
    sdk: Arc<sdk::Sdk>,
}

impl SdkApp {
    /// `secrets` key the OFREP stream tokens this app hands out; `backend` takes what the
    /// routes do besides reading snapshots.
    pub fn new(
        config: ServerConfig,
        secrets: &ServerSecrets,
        backend: Arc<dyn SdkBackend>,
    ) -> SdkApp {
        let registry = Arc::new(sdk::registry::Registry::new(secrets));
        let streams = Arc::new(AtomicUsize::new(0));
        let metrics = Arc::new(metrics::Metrics::new(metrics::Live {
            registry: registry.clone(),
            node: None,
            backend: Some(backend.clone()),
            streams: streams.clone(),
        }));
        let limiter = config.rate_limit.map(sdk::Limiter::new);
        let ingest_buffer = Arc::new(tokio::sync::Semaphore::new(
            sdk::ingest_buffer_kib(&config) as usize
        ));
        SdkApp {
            sdk: Arc::new(sdk::Sdk {
                registry,
                backend,
                config,
                limiter,
                streams,
                metrics,
                ingest_buffer,
            }),
        }
    }

    /// Where snapshots are published: each `publish` replaces a project's deployments and
    /// wakes their streams, as the publisher does on a node.
    pub fn sink(&self) -> Arc<dyn SnapshotSink> {
        self.sdk.registry.clone()
    }

    /// The SDK routes, `/healthz` and `/readyz` (from [`SdkBackend::readiness`]).
    pub fn router(&self) -> Router {
        let router =
            sdk::router(self.sdk.clone()).merge(health::backend_router(self.sdk.backend.clone()));
        crate::outer_layers(router, &self.sdk.metrics)
    }

    /// Serves `/metrics` on `listener`, without a key (meant for an internal network), until
    /// `shutdown` resolves: the SDK routes' metrics, as a node reports them, and the
    /// backend's ([`SdkBackend::metrics`]).
    pub fn serve_metrics(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
        metrics::serve_open(self.sdk.metrics.clone(), listener, shutdown)
    }

    /// Serves until `shutdown` resolves; open streams end then.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        crate::serve_until(&self.sdk, listener, self.router(), shutdown).await
    }
}
