//! Prometheus metrics (OpenMetrics text) at `GET /metrics`.
//!
//! On the main listener `/metrics` asks for a management key (any role) like the rest of the
//! management API, because flag and variant names are not for the internet; a separate
//! listener (`vexil serve --metrics-listen`), meant for an internal network, serves it without
//! one. What is measured:
//!
//! - requests and their latency per endpoint family and status (a middleware around every
//!   route), and the store's failures by kind (a marker the error mapping leaves on a
//!   response);
//! - webhook delivery attempts by outcome, and those the destinations guard refused (counted
//!   by the delivery worker);
//! - results served per project, deployment, flag and variant (remote evaluation and OFREP,
//!   counted with one relaxed atomic add per result by the snapshot itself);
//! - each deployment's snapshot revision and the age of its content, streams open, event
//!   ingestion (events accepted, batches refused, told to retry or failed), and the tracker's
//!   queue depth and drops, read when scraped;
//! - whatever the [`SdkBackend`] reports ([`BackendMetric`]s): `vexil edge`'s link to its
//!   upstream, spool and forwarding. An edge has no management keys, so it serves `/metrics`
//!   only on its metrics listener (`SdkApp::serve_metrics`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use vexil_core::sdk::{Publisher, Tracker};
use vexil_core::service::Outcome;

use crate::error::ApiResult;
use crate::extract::Auth;
use crate::sdk::registry::{Registry as SdkRegistry, Served};
use crate::sdk::{BackendMetric, MetricKind, SdkBackend};
use crate::AppState;

/// Request labels: the endpoint family and the status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    family: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FamilyLabels {
    family: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// What a batch of events came to, for `vexil_ingest_batches_total`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Ingested {
    /// Stored; with its number of events.
    Accepted(usize),
    /// Malformed, or an unknown key (4xx other than 429).
    Rejected,
    /// Told to come back later: the buffer was full or the key over its rate (429).
    Throttled,
    /// The store could not take it (503) or failed (500).
    Failed,
}

/// The metrics the server updates as it goes; the rest is read when scraped.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<FamilyLabels, Histogram>,
    store_errors: Family<KindLabels, Counter>,
    ingest_batches: Family<KindLabels, Counter>,
    ingest_events: Counter,
    webhook_attempts: Family<KindLabels, Counter>,
    webhook_refused: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~13 s: SDK answers take tens of microseconds, imports seconds.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

impl Metrics {
    /// The registry with every metric, the live ones read from `live` when scraped.
    pub(crate) fn new(live: Live) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<FamilyLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let store_errors = Family::<KindLabels, Counter>::default();
        let ingest_batches = Family::<KindLabels, Counter>::default();
        let ingest_events = Counter::default();
        let webhook_attempts = Family::<KindLabels, Counter>::default();
        let webhook_refused = Counter::default();
        registry.register(
            "vexil_http_requests",
            "HTTP requests answered, by endpoint family and status",
            requests.clone(),
        );
        registry.register(
            "vexil_http_request_duration_seconds",
            "Time to answer a request (to the response head), by endpoint family",
            latency.clone(),
        );
        registry.register(
            "vexil_store_errors",
            "Requests that failed in the store: unavailable (503) or other (500)",
            store_errors.clone(),
        );
        registry.register(
            "vexil_ingest_batches",
            "Event batches by outcome: accepted, rejected (4xx), throttled (429), failed (5xx)",
            ingest_batches.clone(),
        );
        registry.register(
            "vexil_ingest_events",
            "Events accepted by /2/httpapi and /batch",
            ingest_events.clone(),
        );
        registry.register(
            "vexil_webhook_attempts",
            "Webhook delivery attempts by outcome: delivered (2xx), retried (tried again after \
             a delay), given_up (no retry left)",
            webhook_attempts.clone(),
        );
        registry.register(
            "vexil_webhook_refused",
            "Webhook delivery attempts refused because their destination is not allowed \
             (loopback, private, link-local; see --webhook-allow-network)",
            webhook_refused.clone(),
        );
        registry.register_collector(Box::new(live));
        Metrics {
            registry,
            requests,
            latency,
            store_errors,
            ingest_batches,
            ingest_events,
            webhook_attempts,
            webhook_refused,
        }
    }

    /// Counts a recorded webhook delivery attempt by what became of its event; `refused` when
    /// the destinations guard stopped it. An event deleted meanwhile is not counted.
    pub(crate) fn webhook_attempt(&self, outcome: Outcome, refused: bool) {
        let kind = match outcome {
            Outcome::Delivered => "delivered",
            Outcome::Retry(_) => "retried",
            Outcome::Failed => "given_up",
            Outcome::Gone => return,
        };
        self.webhook_attempts
            .get_or_create(&KindLabels { kind })
            .inc();
        if refused {
            self.webhook_refused.inc();
        }
    }

    /// Counts a batch of events.
    pub(crate) fn ingested(&self, outcome: Ingested) {
        let kind = match outcome {
            Ingested::Accepted(events) => {
                self.ingest_events.inc_by(events as u64);
                "accepted"
            }
            Ingested::Rejected => "rejected",
            Ingested::Throttled => "throttled",
            Ingested::Failed => "failed",
        };
        self.ingest_batches
            .get_or_create(&KindLabels { kind })
            .inc();
    }

    fn render(&self) -> Response {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        let mut response = Response::new(Body::from(text));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
        response
    }
}

/// A response's store failure, left by the error mapping for the middleware to count.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StoreFailure(pub &'static str);

/// The family of an endpoint, from its path.
pub(crate) fn family(path: &str) -> &'static str {
    const FAMILIES: &[(&str, &str)] = &[
        ("/api/", "api"),
        ("/sdk/v2/flags", "sdk_flags"),
        ("/sdk/v2/vardata", "sdk_vardata"),
        ("/sdk/vardata", "sdk_vardata"),
        ("/v1/vardata", "sdk_vardata"),
        ("/sdk/stream/", "sdk_stream"),
        ("/sdk/v1/cohort/", "sdk_cohort"),
        ("/sdk/relay/", "sdk_relay"),
        ("/sdk/ofrep/", "ofrep"),
        ("/ofrep/", "ofrep"),
        ("/2/httpapi", "events"),
        ("/batch", "events"),
        ("/healthz", "probes"),
        ("/readyz", "probes"),
        ("/metrics", "metrics"),
    ];
    FAMILIES
        .iter()
        .find(|(prefix, _)| path.starts_with(prefix))
        .map_or("console", |(_, family)| family)
}

/// Whether a family is one of the SDK API's (the hot path).
pub(crate) fn is_sdk(family: &str) -> bool {
    family.starts_with("sdk_") || family == "ofrep" || family == "events"
}

/// Middleware: counts and times every request.
pub(crate) async fn track(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let family = family(request.uri().path());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .latency
        .get_or_create(&FamilyLabels { family })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            family,
            status: response.status().as_u16(),
        })
        .inc();
    if let Some(StoreFailure(kind)) = response.extensions().get::<StoreFailure>() {
        metrics
            .store_errors
            .get_or_create(&KindLabels { kind })
            .inc();
    }
    response
}

/// `GET /metrics` on the main listener, for a management key.
async fn scrape(_auth: Auth, State(state): State<AppState>) -> ApiResult<Response> {
    Ok(state.metrics.render())
}

/// `GET /metrics` on the metrics listener, without a key.
async fn scrape_open(State(metrics): State<Arc<Metrics>>) -> Response {
    metrics.render()
}

/// `/metrics` for the main router (behind a management key).
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(state)
}

/// The router of the separate metrics listener.
pub(crate) fn open_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(scrape_open))
        .with_state(metrics)
}

/// Serves [`open_router`] on `listener` until `shutdown` resolves.
pub(crate) fn serve_open(
    metrics: Arc<Metrics>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> impl std::future::Future<Output = std::io::Result<()>> + Send + 'static {
    let router = open_router(metrics);
    async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// Where the metrics read when scraped come from.
pub(crate) struct Live {
    pub registry: Arc<SdkRegistry>,
    /// A node's publisher and tracker; an edge has neither.
    pub node: Option<(Publisher, Tracker)>,
    /// An edge's backend, for what it reports; a node's metrics come from `node`.
    pub backend: Option<Arc<dyn SdkBackend>>,
    pub streams: Arc<AtomicUsize>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A gauge with a value per served deployment.
fn per_deployment(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    served: &[Arc<Served>],
    value: impl Fn(&Served) -> f64,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for s in served {
        let labels = [
            ("project", s.snapshot.project.key.as_str()),
            ("deployment", s.snapshot.deployment.key.as_str()),
        ];
        ConstGauge::new(value(s)).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A backend's metric family, as the server's own are encoded.
fn encode_backend(
    encoder: &mut DescriptorEncoder,
    metric: &BackendMetric,
) -> Result<(), std::fmt::Error> {
    let kind = match metric.kind {
        MetricKind::Gauge => MetricType::Gauge,
        MetricKind::Counter => MetricType::Counter,
    };
    let mut family = encoder.encode_descriptor(metric.name, metric.help, None, kind)?;
    for (labels, value) in &metric.samples {
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let sample = family.encode_family(&labels)?;
        match metric.kind {
            MetricKind::Gauge => ConstGauge::new(*value).encode(sample)?,
            // Counters count whole things.
            MetricKind::Counter => ConstCounter::new(value.max(0.0) as u64).encode(sample)?,
        }
    }
    Ok(())
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live")
    }
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sdk = self;
        let mut served = sdk.registry.all();
        served.sort_by_key(|s| s.id());
        let now = now_ms();
        per_deployment(
            &mut encoder,
            "vexil_snapshot_revision",
            "The revision each deployment serves",
            &served,
            |s| s.snapshot.revision as f64,
        )?;
        per_deployment(
            &mut encoder,
            "vexil_snapshot_age_seconds",
            "Seconds since the content each deployment serves last changed",
            &served,
            |s| (now - s.snapshot.changed_at).max(0) as f64 / 1000.0,
        )?;
        let mut evaluations = encoder.encode_descriptor(
            "vexil_evaluations",
            "Results served by remote evaluation and OFREP, by flag and variant",
            None,
            MetricType::Counter,
        )?;
        for ((project, deployment, flag, variant), n) in sdk.registry.evaluation_counts() {
            let labels = [
                ("project", project.as_str()),
                ("deployment", deployment.as_str()),
                ("flag", flag.as_str()),
                ("variant", variant.as_str()),
            ];
            ConstCounter::new(n).encode(evaluations.encode_family(&labels)?)?;
        }
        let streams = sdk.streams.load(Ordering::Relaxed) as i64;
        ConstGauge::new(streams).encode(encoder.encode_descriptor(
            "vexil_sse_streams_open",
            "Event streams open (flag streams and OFREP notifications)",
            None,
            MetricType::Gauge,
        )?)?;
        if let Some(backend) = &sdk.backend {
            for metric in backend.metrics() {
                encode_backend(&mut encoder, &metric)?;
            }
        }
        let Some((publisher, tracker)) = &sdk.node else {
            return Ok(());
        };
        ConstGauge::new(tracker.queue_depth() as i64).encode(encoder.encode_descriptor(
            "vexil_tracker_queue_depth",
            "Remote evaluations waiting to be recorded",
            None,
            MetricType::Gauge,
        )?)?;
        ConstCounter::new(tracker.dropped()).encode(encoder.encode_descriptor(
            "vexil_tracker_dropped",
            "Remote evaluations not recorded because the queue was full",
            None,
            MetricType::Counter,
        )?)?;
        let (rebuilds, failed, seconds) = publisher.stats().read();
        ConstCounter::new(rebuilds).encode(encoder.encode_descriptor(
            "vexil_publish_rebuilds",
            "Project rebuilds (compile, settle revisions, publish)",
            None,
            MetricType::Counter,
        )?)?;
        ConstCounter::new(failed).encode(encoder.encode_descriptor(
            "vexil_publish_rebuilds_failed",
            "Project rebuilds that failed (retried at the next sync)",
            None,
            MetricType::Counter,
        )?)?;
        ConstCounter::new(seconds).encode(encoder.encode_descriptor(
            "vexil_publish_duration_seconds",
            "Time spent rebuilding projects; divide by vexil_publish_rebuilds_total for the mean",
            None,
            MetricType::Counter,
        )?)?;
        if let Some(spool) = tracker.spool_stats() {
            ConstGauge::new(i64::try_from(spool.batches).unwrap_or(i64::MAX)).encode(
                encoder.encode_descriptor(
                    "vexil_spool_batches",
                    "Event batches spooled on disk, waiting for the store",
                    None,
                    MetricType::Gauge,
                )?,
            )?;
            ConstGauge::new(i64::try_from(spool.bytes).unwrap_or(i64::MAX)).encode(
                encoder.encode_descriptor(
                    "vexil_spool_bytes",
                    "Bytes of event batches spooled on disk, waiting for the store",
                    None,
                    MetricType::Gauge,
                )?,
            )?;
            ConstGauge::new(i64::try_from(spool.quarantined_bytes).unwrap_or(i64::MAX)).encode(
                encoder.encode_descriptor(
                    "vexil_spool_quarantined_bytes",
                    "Bytes of spooled records that could not be read back, kept in quarantine",
                    None,
                    MetricType::Gauge,
                )?,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{family, is_sdk};

    #[test]
    fn paths_fall_into_their_families() {
        for (path, expected) in [
            ("/api/v1/flags", "api"),
            ("/sdk/v2/flags", "sdk_flags"),
            ("/sdk/v2/vardata", "sdk_vardata"),
            ("/v1/vardata", "sdk_vardata"),
            ("/sdk/stream/v1/flags", "sdk_stream"),
            ("/sdk/v1/cohort/abc", "sdk_cohort"),
            ("/sdk/relay/v1/stream", "sdk_relay"),
            ("/ofrep/v1/evaluate/flags", "ofrep"),
            ("/sdk/ofrep/v1/events", "ofrep"),
            ("/batch", "events"),
            ("/2/httpapi", "events"),
            ("/readyz", "probes"),
            ("/metrics", "metrics"),
            ("/flags/x", "console"),
            ("/", "console"),
        ] {
            assert_eq!(family(path), expected, "{path}");
            let sdk = !matches!(expected, "api" | "probes" | "metrics" | "console");
            assert_eq!(is_sdk(family(path)), sdk, "{path}");
        }
    }
}
