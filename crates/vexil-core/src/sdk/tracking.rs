//! Exposures and assignments (`sdk-protocol.md` §A10): the events Amplitude's SDKs post to
//! `/2/httpapi`, and the records remote evaluation makes itself. Both are stored durably and
//! set the users' `[Experiment] <flag_key>` properties that remote evaluation reads back.
//!
//! Posted batches are written in the request's own transaction, so a `200` means stored. With a
//! [`Spool`], a batch the store cannot take because it is unreachable is appended to the spool
//! instead (flushed to disk before the answer, so a `200` still means durable) and stored by
//! the replay thread once the store answers ([`super::replay`]).
//! Records made by remote evaluation must not slow evaluation down: they go through a bounded
//! queue to a writer thread that stores them in batches. When the queue is full (the database
//! cannot keep up) a record is dropped and counted rather than blocking the request.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHasher};
use serde_json::{Map, Value as Json};
use vexil_store::{EventRow, ExperimentPropertyRow, ExposureRow, Store};

use super::memory::IdKind;
use super::publisher::Publisher;
use super::replay::Replayer;
use super::snapshot::{Snapshot, Tracked};
use super::spool::{Spool, SpoolStats};
use crate::error::{Error, Result};
use crate::model::GroupKind;
use crate::service::now_ms;

/// An insert id already stored for the project this recently is a duplicate.
pub const INSERT_ID_WINDOW_MS: i64 = 7 * 24 * 3_600_000;
/// How long product events are kept by default (`vexil serve --event-retention-days`).
pub const DEFAULT_EVENT_RETENTION_DAYS: u32 = 90;
/// Remote assignments of the same user and results are recorded once per this window.
pub const ASSIGNMENT_DEDUP_MS: i64 = 24 * 3_600_000;
/// Evaluations waiting for the writer before new ones are dropped (a job is the shared
/// snapshot, the ids and a few bytes per flag).
const QUEUE_CAPACITY: usize = 8_192;
/// Most exposure rows the writer stores in one transaction.
const WRITE_BATCH: usize = 5_000;
/// Most remembered assignment fingerprints per generation (two generations are kept).
const DEDUP_CAPACITY: usize = 250_000;

/// Who sent a batch: the project, and the deployment when a deployment key was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub project: String,
    pub deployment: Option<String>,
    /// Whether the key is a secret one (a server deployment key or the project API key). Only
    /// trusted batches set `[Experiment]` user properties: targeting reads them, and a client
    /// key is public, so anyone could otherwise move any user into any variant of a flag that
    /// targets on them. Exposures sent with a client key are still stored and counted.
    pub trusted: bool,
}

/// Why a batch is refused (the answers of §A10.5).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("Invalid JSON body: {0}")]
    Invalid(String),
    #[error("Request missing required field")]
    MissingField(&'static str),
    /// Some events lack a required field (`event_type`) or carry one of the wrong type
    /// (`time`), by field: the indexes of those events, as Amplitude's API answers. Nothing of
    /// the batch is stored; clients drop those events and send the rest again.
    #[error("Some events are missing required fields or have invalid ones")]
    BadEvents {
        missing: std::collections::BTreeMap<&'static str, Vec<usize>>,
        invalid: std::collections::BTreeMap<&'static str, Vec<usize>>,
    },
    #[error(transparent)]
    Failed(#[from] Error),
    /// A node that forwards its batches (`vexil edge`) has no room left to keep them.
    #[error("no room for the batch until the upstream takes the spooled ones")]
    Full(#[source] super::spool::SpoolError),
}

/// What an accepted batch amounted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestReport {
    /// Events accepted (stored, duplicate or not understood).
    pub events_ingested: usize,
    /// Exposure records stored.
    pub stored: usize,
}

/// What became of an accepted batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Stored in the store.
    Stored(IngestReport),
    /// The store was unreachable (or older batches still wait in the spool): appended to the
    /// spool, durably, for the replay thread to store.
    Spooled,
}

/// A batch that failed after its first `committed` events were stored.
pub(crate) struct Partial {
    pub error: IngestError,
    pub committed: usize,
}

/// One property change: set (`Some`) or unset (`None`).
#[derive(Debug, Clone)]
struct PropChange {
    kind: IdKind,
    id: String,
    flag: String,
    variant: Option<String>,
}

/// One remote evaluation to record.
struct Job {
    snapshot: Arc<Snapshot>,
    tracked: Tracked,
    assignment: bool,
    exposure: bool,
    library: Option<String>,
    at: i64,
}

/// Records exposures and assignments; cheap to clone.
#[derive(Clone)]
pub struct Tracker {
    store: Arc<dyn Store>,
    publisher: Publisher,
    queue: SyncSender<Option<Job>>,
    dedup: Arc<AssignmentDedup>,
    dropped: Arc<AtomicU64>,
    /// Evaluations queued for the writer now.
    queued: Arc<AtomicUsize>,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
    /// Held while a posted batch is stored: batches queue here rather than on the database.
    ingesting: Arc<Mutex<()>>,
    /// Where batches go while the store is unreachable, and the thread that stores them later.
    spool: Option<(Arc<Spool>, Arc<Replayer>)>,
    /// Days product events are kept; the writer thread deletes older ones every hour.
    retention_days: Arc<AtomicU64>,
}

impl Tracker {
    /// Starts the writer thread for records made by remote evaluation.
    pub fn start(store: Arc<dyn Store>, publisher: Publisher) -> Result<Tracker> {
        Tracker::start_with_spool(store, publisher, None)
    }

    /// Like [`Tracker::start`]; with a spool, batches the store cannot take go there, and a
    /// replay thread stores them (and whatever an earlier run left) once the store answers.
    pub fn start_with_spool(
        store: Arc<dyn Store>,
        publisher: Publisher,
        spool: Option<Spool>,
    ) -> Result<Tracker> {
        let mut tracker = Tracker::start_writer(store, publisher)?;
        if let Some(spool) = spool {
            let spool = Arc::new(spool);
            let replayer = Replayer::start(tracker.clone(), spool.clone())?;
            tracker.spool = Some((spool, replayer));
        }
        Ok(tracker)
    }

    fn start_writer(store: Arc<dyn Store>, publisher: Publisher) -> Result<Tracker> {
        let (queue, jobs) = sync_channel(QUEUE_CAPACITY);
        let writer_store = store.clone();
        let writer_publisher = publisher.clone();
        let queued = Arc::new(AtomicUsize::new(0));
        let writer_queued = queued.clone();
        let retention_days = Arc::new(AtomicU64::new(DEFAULT_EVENT_RETENTION_DAYS.into()));
        let writer_retention = retention_days.clone();
        let handle = std::thread::Builder::new()
            .name("vexil-tracker".into())
            .spawn(move || {
                write_loop(
                    &*writer_store,
                    &writer_publisher,
                    &jobs,
                    &writer_queued,
                    &writer_retention,
                )
            })
            .map_err(|e| Error::Internal(Box::new(e)))?;
        Ok(Tracker {
            store,
            publisher,
            queue,
            dedup: Arc::new(AssignmentDedup::default()),
            dropped: Arc::new(AtomicU64::new(0)),
            queued,
            writer: Arc::new(Mutex::new(Some(handle))),
            ingesting: Arc::new(Mutex::new(())),
            spool: None,
            retention_days,
        })
    }

    /// Keeps product events `days` days (at least one) from their time.
    pub fn set_event_retention_days(&self, days: u32) {
        self.retention_days
            .store(u64::from(days.max(1)), Ordering::Relaxed);
    }

    /// Stores what is queued and stops the writer and the replay thread. Spooled batches stay
    /// on disk for the next start.
    pub fn stop(&self) {
        if let Some((_, replayer)) = &self.spool {
            replayer.stop();
        }
        let _ = self.queue.send(None);
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    /// Records dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Evaluations waiting for the writer now.
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// What the spool holds, when there is one.
    pub fn spool_stats(&self) -> Option<SpoolStats> {
        self.spool.as_ref().map(|(spool, _)| spool.stats())
    }

    /// Stores the events of a batch body that [`super::ingest::head`] accepted, in
    /// transactions of [`super::ingest::CHUNK`] events, skipping insert ids already seen in the
    /// project within [`INSERT_ID_WINDOW_MS`], then applies the property changes of each chunk.
    /// One batch is stored at a time per node. Blocking.
    pub fn ingest(
        &self,
        source: &Source,
        body: &[u8],
    ) -> std::result::Result<IngestReport, IngestError> {
        self.ingest_from(source, body, 0, &mut |_| {})
            .map_err(|p| p.error)
    }

    /// Stores a batch, or spools it when the store is unreachable and there is a spool. While
    /// older batches wait in the spool, new ones queue behind them, so that events are stored
    /// in the order they were accepted (the latest `[Experiment]` property wins) and no batch
    /// waits for an unreachable store. Blocking.
    pub fn accept(
        &self,
        source: &Source,
        body: &[u8],
    ) -> std::result::Result<Accepted, IngestError> {
        let Some((spool, replayer)) = &self.spool else {
            return self.ingest(source, body).map(Accepted::Stored);
        };
        let spooled = |stored: usize| {
            spool.append(source, stored, body).map(|()| {
                replayer.wake();
                Accepted::Spooled
            })
        };
        if !spool.is_empty() {
            match spooled(0) {
                Ok(accepted) => return Ok(accepted),
                // A full spool (or a failing disk) should not refuse a batch the store might
                // take: try the store.
                Err(err) => {
                    tracing::warn!(error = %crate::error::chain(&err), "spooling a batch failed; storing it directly");
                }
            }
        }
        let guard = self.one_at_a_time();
        // Batches that waited here while another found the store unreachable follow it into
        // the spool instead of waiting for the store in turn.
        if !spool.is_empty() {
            drop(guard);
            if let Ok(accepted) = spooled(0) {
                return Ok(accepted);
            }
            return self.ingest(source, body).map(Accepted::Stored);
        }
        match self.ingest_locked(source, body, 0, &mut |_| {}) {
            Ok(report) => Ok(Accepted::Stored(report)),
            Err(Partial {
                error: IngestError::Failed(err),
                committed,
            }) if err.is_unavailable() => {
                drop(guard);
                spooled(committed).map_err(|spool_err| {
                    tracing::warn!(error = %crate::error::chain(&spool_err), "the store is unreachable and the spool cannot take the batch");
                    IngestError::Failed(err)
                })
            }
            Err(partial) => Err(partial.error),
        }
    }

    fn one_at_a_time(&self) -> std::sync::MutexGuard<'_, ()> {
        self.ingesting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// [`Tracker::ingest`] of the events after the first `skip`, telling `progress` how many
    /// events of the batch are stored after each chunk; on failure, says how many were.
    pub(crate) fn ingest_from(
        &self,
        source: &Source,
        body: &[u8],
        skip: usize,
        progress: &mut dyn FnMut(usize),
    ) -> std::result::Result<IngestReport, Partial> {
        let _one_at_a_time = self.one_at_a_time();
        self.ingest_locked(source, body, skip, progress)
    }

    fn ingest_locked(
        &self,
        source: &Source,
        body: &[u8],
        skip: usize,
        progress: &mut dyn FnMut(usize),
    ) -> std::result::Result<IngestReport, Partial> {
        let now = now_ms();
        let mutex = self
            .publisher
            .project(&source.project)
            .map(|p| p.mutex_flags.clone())
            .unwrap_or_default();
        let index = self.publisher.properties(&source.project);
        let mut stored = 0;
        let mut committed = skip;
        let read = super::ingest::each_chunk(body, source, now, skip, &mut |chunk, seen| {
            let (count, props) = vexil_store::write(&*self.store, |tx| {
                let mut kept: Vec<ExposureRow> = Vec::new();
                let mut events: Vec<EventRow> = Vec::new();
                for records in chunk {
                    if let Some(id) = &records.insert_id {
                        if !tx.claim_insert_id(
                            &source.project,
                            id,
                            now,
                            now - INSERT_ID_WINDOW_MS,
                        )? {
                            continue;
                        }
                    }
                    kept.extend(records.exposures.iter().cloned());
                    events.extend(records.event.iter().cloned());
                }
                tx.insert_events(&events)?;
                let props = if source.trusted {
                    property_rows(&source.project, &kept, &mutex, now)
                } else {
                    Vec::new()
                };
                tx.insert_exposures(&kept)?;
                tx.put_experiment_properties(&props)?;
                Ok::<_, Error>((kept.len(), props))
            })?;
            stored += count;
            committed = seen;
            progress(seen);
            for p in props {
                if let Some(kind) = IdKind::parse(&p.id_kind) {
                    index.apply(kind, &p.id, &p.flag_key, p.variant.as_deref());
                }
            }
            Ok(())
        });
        let events = read.map_err(|error| Partial { error, committed })?;
        Ok(IngestReport {
            events_ingested: events,
            stored,
        })
    }

    /// Queues the records of one remote evaluation: a `remote_assignment` per evaluated flag
    /// (once per user and results within [`ASSIGNMENT_DEDUP_MS`]) when `assignment`, a
    /// `remote_exposure` per served variant when `exposure`. Never blocks: the job is small
    /// (the snapshot is shared, results are indexes) and the writer turns it into rows.
    pub fn record_remote(
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
        let now = now_ms();
        let assignment = assignment && self.dedup.first_time(snapshot, &tracked, now);
        if !assignment && !exposure {
            return;
        }
        let job = Job {
            snapshot: snapshot.clone(),
            tracked,
            assignment,
            exposure,
            library: library.map(str::to_owned),
            at: now,
        };
        // Counted before it is sent, so that the writer never takes the count below zero.
        self.queued.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send(Some(job)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                let n = self.dropped.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() {
                    tracing::warn!(
                        dropped = n + 1,
                        "the tracking queue is full; records dropped"
                    );
                }
            }
        }
    }
}

impl Job {
    /// The rows and property changes of this evaluation.
    fn rows(&self) -> (Vec<ExposureRow>, Vec<PropChange>) {
        let (snapshot, tracked, now) = (&self.snapshot, &self.tracked, self.at);
        let mut rows = Vec::new();
        let mut props = Vec::new();
        let id = tracked
            .user_id
            .as_ref()
            .map(|u| (IdKind::User, u))
            .or(tracked.device_id.as_ref().map(|d| (IdKind::Device, d)));
        let infos = snapshot.flag_infos();
        for &(flag, outcome) in &tracked.hits {
            let Some(info) = infos.get(flag as usize) else {
                continue;
            };
            let Some(o) = info.outcomes.get(outcome as usize) else {
                continue;
            };
            let Some(labels) = snapshot.labels(flag as usize, o) else {
                continue;
            };
            let variant = (!o.default).then(|| labels.variant_key.to_owned());
            let row = |kind: &str| ExposureRow {
                project: snapshot.project.key.clone(),
                deployment: snapshot.deployment.key.clone(),
                kind: kind.to_owned(),
                flag_key: info.key.clone(),
                variant: variant.clone(),
                experiment_key: labels.experiment_key.map(str::to_owned),
                flag_version: labels.flag_version,
                segment_name: labels.segment_name.map(str::to_owned),
                user_id: tracked.user_id.clone(),
                device_id: tracked.device_id.clone(),
                groups: tracked.groups.clone(),
                event_time: now,
                received_at: now,
                insert_id: None,
                library: self.library.clone(),
            };
            let mutex = info.group == Some(GroupKind::MutualExclusion);
            if self.assignment && !mutex {
                rows.push(row("remote_assignment"));
            }
            let exposed = self.exposure && !o.default && o.deployed && o.track_exposure;
            if exposed {
                rows.push(row("remote_exposure"));
            }
            if let Some((kind, id)) = id.filter(|_| !mutex && (self.assignment || exposed)) {
                props.push(PropChange {
                    kind,
                    id: id.clone(),
                    flag: info.key.clone(),
                    variant: variant.clone(),
                });
            }
        }
        (rows, props)
    }
}

/// What one remote evaluation records, for a node without a store (`vexil edge`): the rows
/// the writer would store, with the evaluation's `[Experiment]` property changes applied to
/// the snapshot's in-memory index at once, as the writer applies them after storing.
pub fn remote_records(
    snapshot: &Arc<Snapshot>,
    tracked: Tracked,
    assignment: bool,
    exposure: bool,
    library: Option<&str>,
) -> Vec<ExposureRow> {
    let job = Job {
        snapshot: snapshot.clone(),
        tracked,
        assignment,
        exposure,
        library: library.map(str::to_owned),
        at: now_ms(),
    };
    let (rows, props) = job.rows();
    let index = &snapshot.project.properties;
    for p in props {
        index.apply(p.kind, &p.id, &p.flag, p.variant.as_deref());
    }
    rows
}

/// Applies the `[Experiment]` properties a batch from `source` sets to `project`'s in-memory
/// index, storing nothing: a node without a store (`vexil edge`) forwards the batch and keeps
/// its own index as a node does after a restart. Only trusted sources set properties.
pub fn remember_properties(
    project: &super::snapshot::ProjectData,
    source: &Source,
    body: &[u8],
) -> std::result::Result<usize, IngestError> {
    let now = now_ms();
    super::ingest::each_chunk(body, source, now, 0, &mut |chunk, _| {
        if source.trusted {
            let rows: Vec<ExposureRow> = chunk
                .iter()
                .flat_map(|r| r.exposures.iter().cloned())
                .collect();
            for p in property_rows(&source.project, &rows, &project.mutex_flags, now) {
                if let Some(kind) = IdKind::parse(&p.id_kind) {
                    project
                        .properties
                        .apply(kind, &p.id, &p.flag_key, p.variant.as_deref());
                }
            }
        }
        Ok(())
    })
}

/// The string member `key` of an event.
pub(super) fn text(event: &Json, key: &str) -> Option<String> {
    event
        .get(key)
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The exposure records one event stands for (§A10.2); none for events Vexil does not store.
pub(super) fn records(source: &Source, event: &Json, now: i64) -> Vec<ExposureRow> {
    let props = event
        .get("event_properties")
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_default();
    let prop = |k: &str| props.get(k).and_then(Json::as_str).map(str::to_owned);
    let metadata = props.get("metadata").and_then(Json::as_object);
    let meta_int = |k: &str| metadata.and_then(|m| m.get(k)).and_then(Json::as_i64);
    let meta_text = |k: &str| {
        metadata
            .and_then(|m| m.get(k))
            .and_then(Json::as_str)
            .map(str::to_owned)
    };
    let base = ExposureRow {
        project: source.project.clone(),
        deployment: source.deployment.clone().unwrap_or_default(),
        kind: String::new(),
        flag_key: String::new(),
        variant: None,
        experiment_key: None,
        flag_version: meta_int("flagVersion"),
        segment_name: meta_text("segmentName"),
        user_id: text(event, "user_id"),
        device_id: text(event, "device_id"),
        groups: event
            .get("groups")
            .filter(|g| !g.is_null())
            .map(Json::to_string),
        event_time: event.get("time").and_then(Json::as_i64).unwrap_or(now),
        received_at: now,
        insert_id: text(event, "insert_id"),
        library: text(event, "library"),
    };
    let one = |kind: &str, flag: Option<String>, variant: Option<String>, exp: Option<String>| {
        flag.map(|flag_key| {
            vec![ExposureRow {
                kind: kind.to_owned(),
                flag_key,
                variant,
                experiment_key: exp,
                ..base.clone()
            }]
        })
        .unwrap_or_default()
    };
    match event.get("event_type").and_then(Json::as_str) {
        Some("$exposure") => one(
            "client_exposure",
            prop("flag_key"),
            prop("variant"),
            prop("experiment_key"),
        ),
        Some("[Experiment] Exposure") if props.contains_key("[Experiment] Flag Key") => one(
            "server_exposure",
            prop("[Experiment] Flag Key"),
            prop("[Experiment] Variant"),
            prop("[Experiment] Experiment Key"),
        ),
        Some("[Experiment] Exposure") => one("client_exposure", prop("key"), prop("variant"), None),
        Some("[Experiment] Assignment") => assignment_records(&base, &props),
        _ => Vec::new(),
    }
}

/// The event types that are Vexil's own experiment events, stored as exposures.
const EXPERIMENT_EVENTS: &[&str] = &[
    "$exposure",
    "[Experiment] Exposure",
    "[Experiment] Assignment",
];

/// The product event an event is, for the metrics of analysis: every event but Vexil's own
/// experiment events, with its unit ids, time and properties.
pub(super) fn product_event(source: &Source, event: &Json, now: i64) -> Option<EventRow> {
    let event_type = text(event, "event_type")?;
    if EXPERIMENT_EVENTS.contains(&event_type.as_str()) {
        return None;
    }
    let object = |key: &str| {
        event
            .get(key)
            .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
            .map(Json::to_string)
    };
    Some(EventRow {
        project: source.project.clone(),
        event_type,
        user_id: text(event, "user_id"),
        device_id: text(event, "device_id"),
        groups: object("groups"),
        event_time: event.get("time").and_then(Json::as_i64).unwrap_or(now),
        received_at: now,
        insert_id: text(event, "insert_id"),
        event_properties: object("event_properties"),
        user_properties: object("user_properties"),
    })
}

/// `<flag>.variant` and `<flag>.details` (`v<version> rule:<segment>`) per flag; `off` is
/// stored without a variant.
fn assignment_records(base: &ExposureRow, props: &Map<String, Json>) -> Vec<ExposureRow> {
    let mut out = Vec::new();
    for (name, value) in props {
        let Some(flag) = name.strip_suffix(".variant") else {
            continue;
        };
        let variant = value.as_str().filter(|v| *v != "off" && !v.is_empty());
        let details = props
            .get(&format!("{flag}.details"))
            .and_then(Json::as_str)
            .unwrap_or_default();
        let mut version = None;
        let mut segment = None;
        if let Some(rest) = details.strip_prefix('v') {
            let (v, rule) = rest.split_once(' ').unwrap_or((rest, ""));
            version = v.parse().ok();
            segment = rule.strip_prefix("rule:").map(str::to_owned);
        }
        out.push(ExposureRow {
            kind: "assignment".to_owned(),
            flag_key: flag.to_owned(),
            variant: variant.map(str::to_owned),
            flag_version: version.or(base.flag_version),
            segment_name: segment.or(base.segment_name.clone()),
            ..base.clone()
        });
    }
    out
}

/// The `[Experiment] <flag>` changes stored rows make: the latest record of each (user, flag)
/// sets its variant or unsets it; mutual-exclusion groups set nothing.
fn property_rows(
    project: &str,
    rows: &[ExposureRow],
    mutex: &std::collections::BTreeSet<String>,
    now: i64,
) -> Vec<ExperimentPropertyRow> {
    let mut out: Vec<ExperimentPropertyRow> = Vec::new();
    for row in rows {
        if mutex.contains(&row.flag_key) {
            continue;
        }
        let (kind, id) = match (&row.user_id, &row.device_id) {
            (Some(u), _) => (IdKind::User, u),
            (None, Some(d)) => (IdKind::Device, d),
            (None, None) => continue,
        };
        out.push(ExperimentPropertyRow {
            project: project.to_owned(),
            id_kind: kind.as_str().to_owned(),
            id: id.clone(),
            flag_key: row.flag_key.clone(),
            variant: row.variant.clone(),
            updated_at: now,
        });
    }
    out
}

/// The writer: stores queued records in batches, then applies their property changes.
fn write_loop(
    store: &dyn Store,
    publisher: &Publisher,
    jobs: &Receiver<Option<Job>>,
    queued: &AtomicUsize,
    retention_days: &AtomicU64,
) {
    let mut last_purge = Instant::now();
    loop {
        let first = match jobs.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(job)) => job,
            Ok(None) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                purge(store, retention_days, &mut last_purge);
                continue;
            }
        };
        let mut rows = first.tracked.hits.len();
        let mut batch = vec![first];
        let mut stop = false;
        while rows < WRITE_BATCH {
            match jobs.try_recv() {
                Ok(Some(job)) => {
                    rows += job.tracked.hits.len();
                    batch.push(job);
                }
                Ok(None) => {
                    stop = true;
                    break;
                }
                Err(_) => break,
            }
        }
        queued.fetch_sub(batch.len(), Ordering::Relaxed);
        write_batch(store, publisher, batch);
        purge(store, retention_days, &mut last_purge);
        if stop {
            return;
        }
    }
}

fn write_batch(store: &dyn Store, publisher: &Publisher, batch: Vec<Job>) {
    let now = now_ms();
    let built: Vec<(String, Vec<ExposureRow>, Vec<PropChange>)> = batch
        .iter()
        .map(|job| {
            let (rows, props) = job.rows();
            (job.snapshot.project.key.clone(), rows, props)
        })
        .collect();
    let result = vexil_store::write(store, |tx| {
        for (project, rows, props) in &built {
            tx.insert_exposures(rows)?;
            let props: Vec<ExperimentPropertyRow> = props
                .iter()
                .map(|p| ExperimentPropertyRow {
                    project: project.clone(),
                    id_kind: p.kind.as_str().to_owned(),
                    id: p.id.clone(),
                    flag_key: p.flag.clone(),
                    variant: p.variant.clone(),
                    updated_at: now,
                })
                .collect();
            tx.put_experiment_properties(&props)?;
        }
        Ok::<_, Error>(())
    });
    match result {
        Ok(()) => {
            for (project, _, props) in built {
                let index = publisher.properties(&project);
                for p in props {
                    index.apply(p.kind, &p.id, &p.flag, p.variant.as_deref());
                }
            }
        }
        Err(err) => {
            let records: usize = built.iter().map(|(_, rows, _)| rows.len()).sum();
            tracing::error!(records, error = %crate::error::chain(&err), "storing remote assignments failed");
        }
    }
}

/// Forgets insert ids past the de-duplication window and product events past their retention,
/// at most once an hour.
fn purge(store: &dyn Store, retention_days: &AtomicU64, last: &mut Instant) {
    if last.elapsed() < Duration::from_secs(3600) {
        return;
    }
    *last = Instant::now();
    let now = now_ms();
    let before = now - INSERT_ID_WINDOW_MS;
    if let Err(err) = vexil_store::write(store, |tx| tx.purge_insert_ids(before)) {
        tracing::warn!(error = %crate::error::chain(&err), "purging old insert ids failed");
    }
    let days = i64::try_from(retention_days.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
    let before = now.saturating_sub(days.saturating_mul(24 * 3_600_000));
    match vexil_store::write(store, |tx| tx.purge_events(before)) {
        Ok(0) => {}
        Ok(n) => tracing::info!(events = n, "deleted events past their retention"),
        Err(err) => {
            tracing::warn!(error = %crate::error::chain(&err), "purging old events failed");
        }
    }
}

/// Fingerprints of recent (user, device, results) assignments, in two generations so that
/// memory stays bounded: when the current one is full or a window old it becomes the previous
/// one and the old previous one is dropped.
/// Remote assignments seen per user and results within [`ASSIGNMENT_DEDUP_MS`] (two
/// generations of fingerprints, each at most [`DEDUP_CAPACITY`]).
#[derive(Default)]
pub struct AssignmentDedup {
    state: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    current: FxHashMap<u64, i64>,
    previous: FxHashMap<u64, i64>,
    started: i64,
}

impl AssignmentDedup {
    /// True the first time these results are seen for this user within the window.
    pub fn first_time(&self, snapshot: &Snapshot, tracked: &Tracked, now: i64) -> bool {
        let infos = snapshot.flag_infos();
        let mut pairs: Vec<(&str, &str)> = tracked
            .hits
            .iter()
            .filter_map(|&(f, o)| {
                let info = infos.get(f as usize)?;
                let o = info.outcomes.get(o as usize)?;
                Some((info.key.as_str(), snapshot.variant_key(f as usize, o)?))
            })
            .collect();
        pairs.sort_unstable();
        let mut h = FxHasher::default();
        snapshot.project.key.hash(&mut h);
        tracked.user_id.hash(&mut h);
        tracked.device_id.hash(&mut h);
        pairs.hash(&mut h);
        let fingerprint = h.finish();
        let mut g = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let seen = g
            .current
            .get(&fingerprint)
            .or_else(|| g.previous.get(&fingerprint))
            .is_some_and(|&at| now - at < ASSIGNMENT_DEDUP_MS);
        if seen {
            return false;
        }
        if g.current.len() >= DEDUP_CAPACITY || now - g.started >= ASSIGNMENT_DEDUP_MS {
            g.previous = std::mem::take(&mut g.current);
            g.started = now;
        }
        g.current.insert(fingerprint, now);
        true
    }
}

#[cfg(test)]
mod tests;
