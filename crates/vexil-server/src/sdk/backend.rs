//! What the SDK routes need beyond the published snapshots, as a trait: taking event batches,
//! recording what remote evaluation served, and saying whether snapshots are loaded. A
//! `vexil serve` node implements it over its store ([`NodeBackend`]: the publisher and the
//! tracker); `vexil edge` implements it without one, by forwarding upstream. The handlers are
//! the same for both, so an edge serves exactly what a node serves.

use std::sync::Arc;

use vexil_core::sdk::{Accepted, IngestError, Publisher, Snapshot, Source, Tracked, Tracker};

/// The side effects and state behind the SDK routes. Methods may block (call them from the
/// blocking pool) except [`SdkBackend::record_remote`], which must not.
pub trait SdkBackend: Send + Sync + 'static {
    /// Takes an event batch that passed the checks of `ingest::head`, sent by `source`: stored,
    /// or kept durably on local disk to be stored or forwarded later. Blocking.
    fn accept(&self, source: &Source, body: &[u8]) -> Result<Accepted, IngestError>;

    /// Records the assignments and exposures of one remote evaluation. Never blocks.
    fn record_remote(
        &self,
        snapshot: &Arc<Snapshot>,
        tracked: Tracked,
        assignment: bool,
        exposure: bool,
        library: Option<&str>,
    );

    /// Whether any snapshot has been loaded: before that no key is known, and event batches
    /// are told to come back instead of being refused for an unknown key.
    fn loaded(&self) -> bool;

    /// Brings the snapshots up to date now, when a client named a revision newer than the one
    /// served (OFREP's `flagConfigEtag`). Blocking; the caller bounds the wait.
    fn refresh(&self);

    /// `/readyz`: whether the node can serve SDKs, and the body that says why.
    fn readiness(&self) -> (bool, serde_json::Value);

    /// What the backend reports on `/metrics` beside the SDK routes' own metrics, read when
    /// scraped. Must not block for long.
    fn metrics(&self) -> Vec<BackendMetric> {
        Vec::new()
    }
}

/// Whether a [`BackendMetric`] is a gauge or a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    /// Encoded with the `_total` suffix and whole values.
    Counter,
}

/// One metric family a backend reports, in Prometheus terms: the server encodes it with its
/// own, so there is one exporter.
#[derive(Debug, Clone)]
pub struct BackendMetric {
    /// `vexil_...`, without `_total` for a counter.
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricKind,
    /// Each sample's labels and value; a family without labels has one sample.
    pub samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl BackendMetric {
    /// A family of one unlabelled sample.
    pub fn single(
        name: &'static str,
        help: &'static str,
        kind: MetricKind,
        value: f64,
    ) -> BackendMetric {
        BackendMetric {
            name,
            help,
            kind,
            samples: vec![(Vec::new(), value)],
        }
    }
}

/// A `vexil serve` node's backend: its store through the tracker, its publisher.
pub struct NodeBackend {
    pub publisher: Publisher,
    pub tracker: Tracker,
}

impl SdkBackend for NodeBackend {
    fn accept(&self, source: &Source, body: &[u8]) -> Result<Accepted, IngestError> {
        self.tracker.accept(source, body)
    }

    fn record_remote(
        &self,
        snapshot: &Arc<Snapshot>,
        tracked: Tracked,
        assignment: bool,
        exposure: bool,
        library: Option<&str>,
    ) {
        self.tracker
            .record_remote(snapshot, tracked, assignment, exposure, library);
    }

    fn loaded(&self) -> bool {
        self.publisher.source().is_some()
    }

    fn refresh(&self) {
        if let Err(err) = self.publisher.sync() {
            tracing::debug!(error = %vexil_core::error::chain(&err), "refreshing the snapshots failed");
        }
    }

    fn readiness(&self) -> (bool, serde_json::Value) {
        let source = self.publisher.source();
        let body = serde_json::json!({
            "status": if source.is_some() { "ready" } else { "starting" },
            "snapshots": {
                "loaded": source.is_some(),
                "source": source.map(|s| s.as_str()),
                "deployments": self.publisher.snapshots().len(),
            },
        });
        (source.is_some(), body)
    }
}
