//! What an edge does besides serving snapshots ([`EdgeBackend`], the edge's
//! `vexil_server::SdkBackend`): event batches are appended to the local [`Spool`] (flushed
//! before the `200`, as on a node) and forwarded upstream to `/batch` by the [`Forwarder`]
//! thread, oldest first, each removed only after the upstream took it; remote evaluation's
//! assignments and exposures become `[Experiment] Assignment` and `[Experiment] Exposure`
//! events, batched once a second into the same spool. Upstream they are stored as the events
//! an SDK would have sent (`assignment`, `server_exposure`), with insert ids that make a
//! replay, and an assignment repeated within the day, count once.
//!
//! The `[Experiment]` properties that remote evaluation reads are kept in memory, per project,
//! from what this edge saw (batches from trusted keys and its own evaluations), like a node's
//! after a restart: the relay document does not carry them (they change with every exposure
//! and are unbounded), so a user exposed only through another node is not known here.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value as Json};
use vexil_core::sdk::spool::{Record, Step, Verdict};
use vexil_core::sdk::{
    remember_properties, remote_records, Accepted, AssignmentDedup, IngestError, Snapshot, Source,
    Spool, SpoolError, Tracked,
};
use vexil_sdk::backoff::Backoff;
use vexil_server::{BackendMetric, MetricKind};
use vexil_store::ExposureRow;

use super::Edge;

/// Events of remote evaluation held in memory before they are spooled; past it they are
/// dropped and counted, never waited for.
const PENDING_CAP: usize = 50_000;
/// How long a forward to the upstream may take.
const POST_TIMEOUT: Duration = Duration::from_secs(30);
/// How often remote evaluation's events are spooled.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Remote evaluation's events waiting to be spooled, by the key they are sent with.
#[derive(Default)]
struct Pending {
    by_key: BTreeMap<String, (Source, Vec<Json>)>,
    len: usize,
}

/// The edge's `SdkBackend`.
pub(super) struct EdgeBackend {
    edge: Arc<OnceLock<Arc<Edge>>>,
    spool: Arc<Spool>,
    pending: Mutex<Pending>,
    dropped: AtomicU64,
    /// Spooled batches the upstream took.
    forwarded: AtomicU64,
    /// Forwards that failed and are retried (the upstream unreachable, or answering 5xx or
    /// 429), and batches the upstream refused for good (kept in quarantine).
    retried: AtomicU64,
    rejected: AtomicU64,
    dedup: AssignmentDedup,
    /// Wakes the forwarder: something was spooled, or it should stop.
    wake: (Mutex<bool>, Condvar),
    stop: AtomicBool,
}

impl EdgeBackend {
    pub(super) fn new(edge: Arc<OnceLock<Arc<Edge>>>, spool: Arc<Spool>) -> EdgeBackend {
        EdgeBackend {
            edge,
            spool,
            pending: Mutex::default(),
            dropped: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            dedup: AssignmentDedup::default(),
            wake: (Mutex::new(false), Condvar::new()),
            stop: AtomicBool::new(false),
        }
    }

    fn wake(&self) {
        *lock(&self.wake.0) = true;
        self.wake.1.notify_all();
    }

    /// Waits until woken or `timeout` passes.
    fn wait(&self, timeout: Duration) {
        let guard = lock(&self.wake.0);
        let (mut woken, _) = self
            .wake
            .1
            .wait_timeout_while(guard, timeout, |w| !*w)
            .unwrap_or_else(PoisonError::into_inner);
        *woken = false;
    }

    /// Counts what the upstream said to one forwarded batch.
    fn count(&self, verdict: &Verdict) {
        let counter = match verdict {
            Verdict::Stored => &self.forwarded,
            Verdict::Retry(_) => &self.retried,
            Verdict::Reject(_) => &self.rejected,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Spools remote evaluation's pending events, one batch per key.
    fn flush_pending(&self) {
        let pending = std::mem::take(&mut *lock(&self.pending));
        for (key, (source, events)) in pending.by_key {
            let body = json!({ "api_key": key, "events": events }).to_string();
            if let Err(err) = self.spool.append(&source, 0, body.as_bytes()) {
                tracing::warn!(events = events.len(), error = %vexil_core::error::chain(&err), "remote evaluation's events could not be spooled; dropped");
            }
        }
    }
}

fn spool_error(err: SpoolError) -> IngestError {
    match err {
        SpoolError::Io { .. } => IngestError::Failed(vexil_core::Error::Internal(Box::new(err))),
        full => IngestError::Full(full),
    }
}

impl vexil_server::SdkBackend for EdgeBackend {
    fn accept(&self, source: &Source, body: &[u8]) -> Result<Accepted, IngestError> {
        if let Some(project) = self.edge.get().and_then(|e| e.project(&source.project)) {
            remember_properties(&project, source, body)?;
        }
        self.spool.append(source, 0, body).map_err(spool_error)?;
        self.wake();
        Ok(Accepted::Spooled)
    }

    fn record_remote(
        &self,
        snapshot: &Arc<Snapshot>,
        tracked: Tracked,
        assignment: bool,
        exposure: bool,
        library: Option<&str>,
    ) {
        if tracked.user_id.is_none() && tracked.device_id.is_none() {
            return;
        }
        let now = vexil_core::service::now_ms();
        let assignment = assignment && self.dedup.first_time(snapshot, &tracked, now);
        if !assignment && !exposure {
            return;
        }
        let events: Vec<Json> = remote_records(snapshot, tracked, assignment, exposure, library)
            .iter()
            .map(event)
            .collect();
        let mut pending = lock(&self.pending);
        if pending.len + events.len() > PENDING_CAP {
            let n = self
                .dropped
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n,
                    "remote evaluation's events are dropped: the queue is full"
                );
            }
            return;
        }
        pending.len += events.len();
        let d = &snapshot.deployment;
        let source = Source {
            project: snapshot.project.key.clone(),
            deployment: Some(d.key.clone()),
            trusted: true,
        };
        pending
            .by_key
            .entry(d.api_key.clone())
            .or_insert_with(|| (source, Vec::new()))
            .1
            .extend(events);
    }

    fn loaded(&self) -> bool {
        self.edge.get().is_some_and(|e| e.readiness().0)
    }

    fn refresh(&self) {
        if let Some(edge) = self.edge.get() {
            edge.refresh(Duration::from_secs(2));
        }
    }

    fn readiness(&self) -> (bool, Json) {
        let Some(edge) = self.edge.get() else {
            return (false, json!({"status": "starting"}));
        };
        let (ready, mut body) = edge.readiness();
        body["spool"] = json!(self.spool.stats());
        body["tracking_dropped"] = json!(self.dropped.load(Ordering::Relaxed));
        (ready, body)
    }

    fn metrics(&self) -> Vec<BackendMetric> {
        let mut metrics = self.edge.get().map(|e| e.metrics()).unwrap_or_default();
        let stats = self.spool.stats();
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        let failures = |kind: &str, c: &AtomicU64| (vec![("kind", kind.to_owned())], count(c));
        metrics.extend([
            BackendMetric::single(
                "vexil_spool_batches",
                "Event batches spooled on disk, waiting to be forwarded upstream",
                MetricKind::Gauge,
                stats.batches as f64,
            ),
            BackendMetric::single(
                "vexil_spool_bytes",
                "Bytes of event batches spooled on disk, waiting to be forwarded upstream",
                MetricKind::Gauge,
                stats.bytes as f64,
            ),
            BackendMetric::single(
                "vexil_spool_segments",
                "Segment files of the spool on disk (a segment goes once all its batches are forwarded)",
                MetricKind::Gauge,
                stats.segments as f64,
            ),
            BackendMetric::single(
                "vexil_spool_quarantined_bytes",
                "Bytes of spooled records that could not be read back or that the upstream refused, kept in quarantine",
                MetricKind::Gauge,
                stats.quarantined_bytes as f64,
            ),
            BackendMetric::single(
                "vexil_edge_forwarded_batches",
                "Spooled event batches the upstream took",
                MetricKind::Counter,
                count(&self.forwarded),
            ),
            BackendMetric {
                name: "vexil_edge_forward_failures",
                help: "Forwards of a spooled batch that failed: retried (upstream unreachable, 5xx, 429) or rejected (400 or 413: quarantined)",
                kind: MetricKind::Counter,
                samples: vec![failures("retried", &self.retried), failures("rejected", &self.rejected)],
            },
            BackendMetric::single(
                "vexil_edge_tracking_dropped",
                "Remote evaluations' events not spooled because the queue was full",
                MetricKind::Counter,
                count(&self.dropped),
            ),
        ]);
        metrics
    }
}

/// A stable insert id: the same record replayed, or an assignment repeated within the day,
/// is stored once upstream.
fn insert_id(row: &ExposureRow, salt: i64) -> String {
    let mut h = std::hash::DefaultHasher::new();
    (&row.deployment, &row.kind, &row.flag_key, &row.variant).hash(&mut h);
    (&row.user_id, &row.device_id, salt).hash(&mut h);
    format!("edge-{:016x}", h.finish())
}

/// The Amplitude event an SDK would have sent for one record of remote evaluation.
fn event(row: &ExposureRow) -> Json {
    let mut event = if row.kind == "remote_assignment" {
        let details = format!(
            "v{} rule:{}",
            row.flag_version.unwrap_or_default(),
            row.segment_name.as_deref().unwrap_or_default()
        );
        json!({
            "event_type": "[Experiment] Assignment",
            "insert_id": insert_id(row, row.event_time / 86_400_000),
            "event_properties": {
                format!("{}.variant", row.flag_key): row.variant.as_deref().unwrap_or("off"),
                format!("{}.details", row.flag_key): details,
            },
        })
    } else {
        json!({
            "event_type": "[Experiment] Exposure",
            "insert_id": insert_id(row, row.event_time),
            "event_properties": {
                "[Experiment] Flag Key": row.flag_key,
                "[Experiment] Variant": row.variant,
                "[Experiment] Experiment Key": row.experiment_key,
                "metadata": {"flagVersion": row.flag_version, "segmentName": row.segment_name},
            },
        })
    };
    event["time"] = json!(row.event_time);
    for (field, value) in [
        ("user_id", &row.user_id),
        ("device_id", &row.device_id),
        ("library", &row.library),
    ] {
        if let Some(v) = value {
            event[field] = json!(v);
        }
    }
    if let Some(groups) = row
        .groups
        .as_deref()
        .and_then(|g| serde_json::from_str::<Json>(g).ok())
    {
        event["groups"] = groups;
    }
    event
}

/// The thread that forwards the spool upstream.
pub(super) struct Forwarder {
    backend: Arc<EdgeBackend>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Forwarder {
    pub(super) fn start(
        http: reqwest::Client,
        upstream: String,
        spool: Arc<Spool>,
        backend: Arc<EdgeBackend>,
        runtime: tokio::runtime::Handle,
    ) -> anyhow::Result<Arc<Forwarder>> {
        let running = backend.clone();
        let handle = std::thread::Builder::new()
            .name("vexil-edge-forward".into())
            .spawn(move || forward_loop(&http, &upstream, &spool, &running, &runtime))?;
        Ok(Arc::new(Forwarder {
            backend,
            thread: Mutex::new(Some(handle)),
        }))
    }

    /// Spools what is pending, then stops the thread after the batch it is forwarding.
    /// Blocking.
    pub(super) fn stop(&self) {
        self.backend.flush_pending();
        self.backend.stop.store(true, Ordering::Release);
        self.backend.wake();
        if let Some(handle) = lock(&self.thread).take() {
            let _ = handle.join();
        }
    }
}

/// What the upstream said, as the spool's replay reports it.
fn upstream(message: String) -> IngestError {
    IngestError::Failed(vexil_core::Error::Internal(message.into()))
}

/// The upstream's verdict on one forwarded batch.
fn post(
    http: &reqwest::Client,
    url: &str,
    record: &Record,
    runtime: &tokio::runtime::Handle,
) -> Verdict {
    let sent = runtime.block_on(async {
        let response = http
            .post(url)
            .header("Content-Type", "application/json")
            .timeout(POST_TIMEOUT)
            .body(record.body.clone())
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        Ok::<_, reqwest::Error>((status, text))
    });
    match sent {
        Ok((status, _)) if status.is_success() => Verdict::Stored,
        // The upstream will never take it (an unknown key, a malformed or oversized batch):
        // kept in quarantine rather than retried for ever.
        Ok((status, text))
            if status == reqwest::StatusCode::BAD_REQUEST
                || status == reqwest::StatusCode::PAYLOAD_TOO_LARGE =>
        {
            Verdict::Reject(upstream(format!(
                "the upstream refused the batch ({status}): {}",
                text.chars().take(200).collect::<String>()
            )))
        }
        Ok((status, _)) => Verdict::Retry(upstream(format!("the upstream answered {status}"))),
        Err(e) => Verdict::Retry(IngestError::Failed(vexil_core::Error::Internal(Box::new(
            e,
        )))),
    }
}

fn forward_loop(
    http: &reqwest::Client,
    upstream: &str,
    spool: &Spool,
    backend: &EdgeBackend,
    runtime: &tokio::runtime::Handle,
) {
    let url = format!("{upstream}/batch");
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut waiting = false;
    loop {
        backend.flush_pending();
        let step = spool.replay_one(&mut |record, _progress| {
            let verdict = post(http, &url, record, runtime);
            backend.count(&verdict);
            verdict
        });
        let pause = match step {
            Ok(Step::Empty) => {
                if waiting {
                    tracing::info!("every spooled event batch is forwarded");
                }
                waiting = false;
                backoff.reset();
                Some(FLUSH_EVERY)
            }
            Ok(Step::Advanced) => {
                backoff.reset();
                None
            }
            Ok(Step::Waiting(err)) => {
                if !waiting {
                    tracing::warn!(spooled_bytes = spool.stats().bytes, error = %vexil_core::error::chain(&err), "the upstream cannot take event batches yet; retrying");
                }
                waiting = true;
                Some(backoff.next_delay())
            }
            Err(err) => {
                tracing::error!(error = %vexil_core::error::chain(&err), "reading the spool failed; retrying");
                Some(backoff.next_delay())
            }
        };
        if backend.stop.load(Ordering::Acquire) {
            return;
        }
        if let Some(pause) = pause {
            backend.wait(pause);
        }
        if backend.stop.load(Ordering::Acquire) {
            return;
        }
    }
}
