//! Exposures and assignments (`sdk-protocol.md` §A10): the events Amplitude's SDKs post to
//! `/2/httpapi`, and the records remote evaluation makes itself. Both are stored durably and
//! set the users' `[Experiment] <flag_key>` properties that remote evaluation reads back.
//!
//! Posted batches are written in the request's own transaction, so a `200` means stored.
//! Records made by remote evaluation must not slow evaluation down: they go through a bounded
//! queue to a writer thread that stores them in batches. When the queue is full (the database
//! cannot keep up) a record is dropped and counted rather than blocking the request.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHasher};
use serde_json::{Map, Value as Json};
use vexil_store::{ExperimentPropertyRow, ExposureRow, Store};

use super::memory::IdKind;
use super::publisher::Publisher;
use super::snapshot::{Snapshot, Tracked};
use crate::error::{Error, Result};
use crate::service::now_ms;

/// An insert id already stored for the project this recently is a duplicate.
pub const INSERT_ID_WINDOW_MS: i64 = 7 * 24 * 3_600_000;
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
}

/// A parsed event batch.
#[derive(Debug)]
pub struct Batch {
    pub api_key: String,
    pub events: Vec<Json>,
}

/// Why a batch is refused (the answers of §A10.5).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("Invalid JSON body: {0}")]
    Invalid(String),
    #[error("Request missing required field")]
    MissingField(&'static str),
    #[error(transparent)]
    Failed(#[from] Error),
}

/// What an accepted batch amounted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestReport {
    /// Events accepted (stored, duplicate or not understood).
    pub events_ingested: usize,
    /// Exposure records stored.
    pub stored: usize,
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
    dedup: Arc<Dedup>,
    dropped: Arc<AtomicU64>,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Tracker {
    /// Starts the writer thread for records made by remote evaluation.
    pub fn start(store: Arc<dyn Store>, publisher: Publisher) -> Result<Tracker> {
        let (queue, jobs) = sync_channel(QUEUE_CAPACITY);
        let writer_store = store.clone();
        let writer_publisher = publisher.clone();
        let handle = std::thread::Builder::new()
            .name("vexil-tracker".into())
            .spawn(move || write_loop(&*writer_store, &writer_publisher, &jobs))
            .map_err(|e| Error::Internal(Box::new(e)))?;
        Ok(Tracker {
            store,
            publisher,
            queue,
            dedup: Arc::new(Dedup::default()),
            dropped: Arc::new(AtomicU64::new(0)),
            writer: Arc::new(Mutex::new(Some(handle))),
        })
    }

    /// Stores what is queued and stops the writer.
    pub fn stop(&self) {
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

    /// Parses a `/2/httpapi` body (`{"api_key", "events"}`).
    pub fn parse_batch(body: &[u8]) -> std::result::Result<Batch, IngestError> {
        let value: Json =
            serde_json::from_slice(body).map_err(|e| IngestError::Invalid(e.to_string()))?;
        let Json::Object(mut object) = value else {
            return Err(IngestError::Invalid(
                "the body must be a JSON object".into(),
            ));
        };
        let api_key = match object.remove("api_key") {
            Some(Json::String(k)) => k,
            _ => return Err(IngestError::MissingField("api_key")),
        };
        let events = match object.remove("events") {
            Some(Json::Array(events)) => events,
            _ => return Err(IngestError::MissingField("events")),
        };
        Ok(Batch { api_key, events })
    }

    /// Stores a batch's exposures and assignments in one transaction, skipping insert ids
    /// already seen in the project within [`INSERT_ID_WINDOW_MS`], then applies the property
    /// changes. Blocking.
    pub fn ingest(&self, source: &Source, events: &[Json]) -> Result<IngestReport> {
        let now = now_ms();
        let mutex = self
            .publisher
            .project(&source.project)
            .map(|p| p.mutex_flags.clone())
            .unwrap_or_default();
        let parsed: Vec<(Option<String>, Vec<ExposureRow>)> = events
            .iter()
            .map(|e| (text(e, "insert_id"), records(source, e, now)))
            .filter(|(_, rows)| !rows.is_empty())
            .collect();
        let stored = vexil_store::write(&*self.store, |tx| {
            let mut kept: Vec<ExposureRow> = Vec::new();
            for (insert_id, rows) in &parsed {
                if let Some(id) = insert_id {
                    if !tx.claim_insert_id(&source.project, id, now, now - INSERT_ID_WINDOW_MS)? {
                        continue;
                    }
                }
                kept.extend(rows.iter().cloned());
            }
            let props = property_rows(&source.project, &kept, &mutex, now);
            tx.insert_exposures(&kept)?;
            tx.put_experiment_properties(&props)?;
            Ok::<_, Error>((kept.len(), props))
        })?;
        let (count, props) = stored;
        let index = self.publisher.properties(&source.project);
        for p in props {
            if let Some(kind) = IdKind::parse(&p.id_kind) {
                index.apply(kind, &p.id, &p.flag_key, p.variant.as_deref());
            }
        }
        Ok(IngestReport {
            events_ingested: events.len(),
            stored: count,
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
        match self.queue.try_send(Some(job)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
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
            let variant = (!o.default).then(|| o.variant_key.to_string());
            let row = |kind: &str| ExposureRow {
                project: snapshot.project.key.clone(),
                deployment: snapshot.deployment.key.clone(),
                kind: kind.to_owned(),
                flag_key: info.key.clone(),
                variant: variant.clone(),
                experiment_key: o.experiment_key.as_deref().map(str::to_owned),
                flag_version: o.flag_version,
                segment_name: o.segment_name.as_deref().map(str::to_owned),
                user_id: tracked.user_id.clone(),
                device_id: tracked.device_id.clone(),
                groups: tracked.groups.clone(),
                event_time: now,
                received_at: now,
                insert_id: None,
                library: self.library.clone(),
            };
            if self.assignment && !info.mutex {
                rows.push(row("remote_assignment"));
            }
            let exposed = self.exposure && !o.default && o.deployed && o.track_exposure;
            if exposed {
                rows.push(row("remote_exposure"));
            }
            if let Some((kind, id)) = id.filter(|_| !info.mutex && (self.assignment || exposed)) {
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

/// The string member `key` of an event.
fn text(event: &Json, key: &str) -> Option<String> {
    event
        .get(key)
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The exposure records one event stands for (§A10.2); none for events Vexil does not store.
fn records(source: &Source, event: &Json, now: i64) -> Vec<ExposureRow> {
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
fn write_loop(store: &dyn Store, publisher: &Publisher, jobs: &Receiver<Option<Job>>) {
    let mut last_purge = Instant::now();
    loop {
        let first = match jobs.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(job)) => job,
            Ok(None) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                purge(store, &mut last_purge);
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
        write_batch(store, publisher, batch);
        purge(store, &mut last_purge);
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

/// Forgets insert ids past the de-duplication window, at most once an hour.
fn purge(store: &dyn Store, last: &mut Instant) {
    if last.elapsed() < Duration::from_secs(3600) {
        return;
    }
    *last = Instant::now();
    let before = now_ms() - INSERT_ID_WINDOW_MS;
    if let Err(err) = vexil_store::write(store, |tx| tx.purge_insert_ids(before)) {
        tracing::warn!(error = %crate::error::chain(&err), "purging old insert ids failed");
    }
}

/// Fingerprints of recent (user, device, results) assignments, in two generations so that
/// memory stays bounded: when the current one is full or a window old it becomes the previous
/// one and the old previous one is dropped.
#[derive(Default)]
struct Dedup {
    state: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    current: FxHashMap<u64, i64>,
    previous: FxHashMap<u64, i64>,
    started: i64,
}

impl Dedup {
    /// True the first time these results are seen for this user within the window.
    fn first_time(&self, snapshot: &Snapshot, tracked: &Tracked, now: i64) -> bool {
        let infos = snapshot.flag_infos();
        let mut pairs: Vec<(&str, &str)> = tracked
            .hits
            .iter()
            .filter_map(|&(f, o)| {
                let info = infos.get(f as usize)?;
                let o = info.outcomes.get(o as usize)?;
                Some((info.key.as_str(), &*o.variant_key))
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
mod tests {
    use super::*;
    use serde_json::json;

    fn source() -> Source {
        Source {
            project: "p".into(),
            deployment: Some("prod".into()),
        }
    }

    #[test]
    fn events_become_records() {
        let cases = [
            (
                json!({"event_type": "$exposure", "user_id": "u1", "time": 5, "insert_id": "i",
                       "event_properties": {"flag_key": "f", "variant": "on", "experiment_key": "e",
                                            "metadata": {"flagVersion": 3, "segmentName": "S"}}}),
                vec![("client_exposure", "f", Some("on"), Some(3), Some("S"))],
            ),
            (
                json!({"event_type": "$exposure", "device_id": "d", "event_properties": {"flag_key": "f"}}),
                vec![("client_exposure", "f", None, None, None)],
            ),
            (
                json!({"event_type": "[Experiment] Exposure", "user_id": "u",
                       "event_properties": {"[Experiment] Flag Key": "f", "[Experiment] Variant": "treatment",
                                            "metadata": {"flagVersion": 7}}}),
                vec![("server_exposure", "f", Some("treatment"), Some(7), None)],
            ),
            (
                json!({"event_type": "[Experiment] Exposure", "user_id": "u",
                       "event_properties": {"key": "legacy", "variant": "on"}}),
                vec![("client_exposure", "legacy", Some("on"), None, None)],
            ),
            (
                json!({"event_type": "[Experiment] Assignment", "user_id": "u",
                       "event_properties": {"a.variant": "on", "a.details": "v4 rule:Beta users",
                                            "b.variant": "off", "b.details": "v1 rule:All Other Users"}}),
                vec![
                    ("assignment", "a", Some("on"), Some(4), Some("Beta users")),
                    ("assignment", "b", None, Some(1), Some("All Other Users")),
                ],
            ),
            (json!({"event_type": "page view", "user_id": "u"}), vec![]),
            (json!({"event_type": "$exposure", "user_id": "u"}), vec![]),
        ];
        for (event, expected) in cases {
            let got: Vec<_> = records(&source(), &event, 99)
                .into_iter()
                .map(|r| {
                    (
                        r.kind,
                        r.flag_key,
                        r.variant,
                        r.flag_version,
                        r.segment_name,
                    )
                })
                .collect();
            let expected: Vec<_> = expected
                .into_iter()
                .map(|(k, f, v, n, s)| {
                    (
                        k.to_owned(),
                        f.to_owned(),
                        v.map(str::to_owned),
                        n,
                        s.map(str::to_owned),
                    )
                })
                .collect();
            assert_eq!(got, expected, "{event}");
        }
        let row = &records(
            &source(),
            &json!({"event_type": "$exposure", "user_id": "u",
            "groups": {"org": ["acme"]}, "library": "x/1", "event_properties": {"flag_key": "f"}}),
            99,
        )[0];
        assert_eq!(
            (
                row.event_time,
                row.groups.as_deref(),
                row.library.as_deref(),
                row.deployment.as_str()
            ),
            (99, Some(r#"{"org":["acme"]}"#), Some("x/1"), "prod")
        );
    }

    #[test]
    fn batches_need_a_key_and_events() {
        assert!(matches!(
            Tracker::parse_batch(br#"{"api_key": "k"}"#),
            Err(IngestError::MissingField("events"))
        ));
        assert!(matches!(
            Tracker::parse_batch(br#"{"events": []}"#),
            Err(IngestError::MissingField("api_key"))
        ));
        assert!(matches!(
            Tracker::parse_batch(b"[1"),
            Err(IngestError::Invalid(_))
        ));
        let batch = Tracker::parse_batch(br#"{"api_key": "k", "events": [{}, {}]}"#).unwrap();
        assert_eq!((batch.api_key.as_str(), batch.events.len()), ("k", 2));
    }

    #[test]
    fn properties_follow_the_last_record_and_skip_mutex_groups() {
        let row = |flag: &str, variant: Option<&str>, user: Option<&str>, device: Option<&str>| {
            ExposureRow {
                project: "p".into(),
                deployment: String::new(),
                kind: "client_exposure".into(),
                flag_key: flag.into(),
                variant: variant.map(str::to_owned),
                experiment_key: None,
                flag_version: None,
                segment_name: None,
                user_id: user.map(str::to_owned),
                device_id: device.map(str::to_owned),
                groups: None,
                event_time: 1,
                received_at: 1,
                insert_id: None,
                library: None,
            }
        };
        let mutex = std::collections::BTreeSet::from(["mutex-1".to_owned()]);
        let rows = [
            row("a", Some("on"), Some("u"), Some("d")),
            row("b", None, None, Some("d")),
            row("mutex-1", Some("slot-1"), Some("u"), None),
            row("c", Some("x"), None, None),
        ];
        let got: Vec<_> = property_rows("p", &rows, &mutex, 7)
            .into_iter()
            .map(|p| (p.id_kind, p.id, p.flag_key, p.variant))
            .collect();
        assert_eq!(
            got,
            [
                ("user".into(), "u".into(), "a".into(), Some("on".into())),
                ("device".into(), "d".into(), "b".into(), None),
            ]
        );
    }
}
