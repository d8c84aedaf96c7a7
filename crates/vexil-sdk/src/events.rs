//! Exposure and assignment events (`sdk-protocol.md` §A10), and the product events a service
//! tracks for experiment metrics ([`crate::LocalClient::track`]), sent to `POST /batch` by a
//! background task.
//!
//! Recording never blocks the caller: events go into a bounded queue, and when it is full they
//! are dropped and counted. The sender batches them, retries a failed batch with back-off
//! (network errors, 429, 5xx; a 413 splits the batch), and flushes what is left on
//! [`crate::LocalClient::flush`] and [`crate::LocalClient::close`]. Like Amplitude's SDKs, an
//! exposure of the same user, flag and variant is sent once per de-duplication window, and
//! its `insert_id` names the window so that the server drops a retried duplicate too.
//!
//! The de-duplication check runs on every evaluation, so it is kept cheap: the cache holds a
//! 64-bit keyed hash of user, flag and variant (the user's part hashed once per
//! [`crate::Evaluation`]), not their text; strings are built only for an event that is sent.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};
use vexil_eval::{Context, VariantResult};

use crate::backoff::Backoff;
use crate::config::{EventsConfig, LIBRARY};
use crate::{User, Variant};

/// Counters of the event pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventStats {
    /// Events the server accepted.
    pub sent: u64,
    /// Events dropped because the queue was full.
    pub dropped: u64,
    /// Events given up on after their batch failed for good.
    pub failed: u64,
    /// Events left out as duplicates within the window.
    pub deduplicated: u64,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    deduplicated: AtomicU64,
}

/// A `Hasher` for keys that are hashes already: the map uses them as they are.
#[derive(Debug, Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed with it; this keeps any other use correct, if slower.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Remembers what was sent within a window, by the key's hash. Pure: the caller passes the
/// time. Two keys with the same 64-bit hash count as one; with a keyed hash and a bounded
/// cache that is about as likely as not happening at all, and costs one missing duplicate
/// exposure at worst.
#[derive(Debug)]
pub(crate) struct Dedup {
    window_ms: u64,
    capacity: usize,
    seen: HashMap<u64, u64, BuildHasherDefault<PreHashed>>,
}

impl Dedup {
    pub fn new(window: Duration, capacity: usize) -> Dedup {
        Dedup {
            window_ms: window.as_millis().min(u128::from(u64::MAX)) as u64,
            capacity: capacity.max(1),
            seen: HashMap::default(),
        }
    }

    /// Whether `key` (a hash) is new at `now_ms` (and remembers it if so).
    pub fn first(&mut self, key: u64, now_ms: u64) -> bool {
        if let Some(&at) = self.seen.get(&key) {
            if now_ms.saturating_sub(at) < self.window_ms {
                return false;
            }
        }
        if self.seen.len() >= self.capacity && !self.seen.contains_key(&key) {
            self.evict(now_ms);
        }
        self.seen.insert(key, now_ms);
        true
    }

    /// Forgets expired entries; when that is not enough, the older half.
    fn evict(&mut self, now_ms: u64) {
        let window = self.window_ms;
        self.seen
            .retain(|_, at| now_ms.saturating_sub(*at) < window);
        if self.seen.len() >= self.capacity {
            let mut times: Vec<u64> = self.seen.values().copied().collect();
            times.sort_unstable();
            let cut = times[(times.len() - 1) / 2];
            self.seen.retain(|_, at| *at > cut);
        }
    }
}

enum Message {
    Event(Value),
    Flush(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

/// The recording side, shared by every clone of a client.
#[derive(Debug)]
pub(crate) struct Tracker {
    tx: mpsc::Sender<Message>,
    counters: Arc<Counters>,
    dedup: Mutex<Dedup>,
    /// The keys of the de-duplication hash, random per tracker: nobody can choose ids that
    /// collide with another user's.
    keys: RandomState,
    window_ms: u64,
    assignments: bool,
    /// Numbers the tracked events, whose `insert_id` is a keyed hash of it.
    tracked: AtomicU64,
}

/// Why [`crate::LocalClient::track`] recorded nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackError {
    /// The client sends no events (offline, or events turned off).
    EventsOff,
    /// The user has neither a `user_id` nor a `device_id`: no metric could count the event.
    NoUnit,
    /// The event type is empty, or one of Vexil's own (`[Experiment] …`), which the SDK
    /// records itself.
    InvalidEventType,
    /// The properties are neither a JSON object nor `null`.
    InvalidProperties,
    /// The queue is full; the event was dropped and counted ([`EventStats::dropped`]).
    QueueFull,
}

impl std::fmt::Display for TrackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrackError::EventsOff => "this client sends no events",
            TrackError::NoUnit => "the user has neither a user_id nor a device_id",
            TrackError::InvalidEventType => {
                "the event type is empty or one of Vexil's own ([Experiment] ...)"
            }
            TrackError::InvalidProperties => "the properties are not a JSON object",
            TrackError::QueueFull => "the event queue is full; the event was dropped",
        })
    }
}

impl std::error::Error for TrackError {}

/// Who events are about, as far as it is not in the evaluation's context: the user's groups
/// as events carry them, and the hash of the user's ids that de-duplication keys start from.
/// Made once per [`crate::Evaluation`] without copying the ids, which an event that is sent
/// reads from the context.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    groups: Option<vexil_eval::Value>,
    hash: u64,
}

/// The `user_id` and `device_id` of an SDK user's fields, when they are strings.
fn ids(fields: Option<&vexil_eval::Object>) -> (Option<&str>, Option<&str>) {
    let id = |field: &str| fields?.get(field)?.as_str();
    (id("user_id"), id("device_id"))
}

/// The ids of the user in `context` (its `user` holds the user's own fields).
fn context_ids(context: &Context) -> (Option<&str>, Option<&str>) {
    ids(context
        .as_value()
        .get("user")
        .and_then(vexil_eval::Value::as_object))
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Message")
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Whether evaluating `result` is an exposure: not a default, not an ancestor served with
/// `deployed: false`, not opted out with `trackExposure: false`.
pub(crate) fn records_exposure(result: &VariantResult<'_>) -> bool {
    let no = |k: &str| result.metadata_value(k) == Some(&vexil_eval::Value::Bool(false));
    !(result.is_default() || no("deployed") || no("trackExposure"))
}

/// A byte no UTF-8 text contains: separates the strings of a hashed key, so that `("ab", "c")`
/// and `("a", "bc")` differ.
const SEPARATOR: u8 = 0xff;

impl Tracker {
    /// Starts the sender task on `runtime`.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        http: reqwest::Client,
        url: String,
        api_key: String,
        config: &EventsConfig,
    ) -> (Tracker, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let sender = Sender {
            http,
            url,
            api_key,
            config: config.clone(),
            counters: counters.clone(),
        };
        let task = runtime.spawn(sender.run(rx));
        let tracker = Tracker {
            tx,
            counters,
            dedup: Mutex::new(Dedup::new(config.dedup_window, config.dedup_capacity)),
            keys: RandomState::new(),
            window_ms: config
                .dedup_window
                .as_millis()
                .clamp(1, u128::from(u64::MAX)) as u64,
            assignments: config.assignments,
            tracked: AtomicU64::new(0),
        };
        (tracker, task)
    }

    pub fn stats(&self) -> EventStats {
        let c = &self.counters;
        EventStats {
            sent: c.sent.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            deduplicated: c.deduplicated.load(Ordering::Relaxed),
        }
    }

    fn enqueue(&self, event: Value) -> bool {
        let queued = self.tx.try_send(Message::Event(event)).is_ok();
        if !queued {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queued
    }

    /// Records a product event of `user` now: `event_type` with its `properties` (a JSON
    /// object, or `null` for none), the user's ids and groups. Its `insert_id` is unique, so
    /// that a batch the sender retries is stored once. Never de-duplicated otherwise: each
    /// call is one occurrence.
    pub fn track(
        &self,
        user: &User,
        event_type: &str,
        properties: serde_json::Value,
    ) -> Result<(), TrackError> {
        let event_type = event_type.trim();
        if event_type.is_empty() || event_type.starts_with("[Experiment]") {
            return Err(TrackError::InvalidEventType);
        }
        let properties = match properties {
            Value::Object(p) => p,
            Value::Null => Map::new(),
            _ => return Err(TrackError::InvalidProperties),
        };
        let Some(unit) = self.unit(user) else {
            return Err(TrackError::NoUnit);
        };
        let now = now_ms();
        let n = self.tracked.fetch_add(1, Ordering::Relaxed);
        let insert_id = format!("track {now} {:016x}", self.keys.hash_one((n, now)));
        let ids = ids(Some(&user.fields));
        let mut event = base_event(event_type, ids, unit.groups.as_ref(), now, insert_id);
        if !properties.is_empty() {
            event.insert("event_properties".into(), Value::Object(properties));
        }
        match self.enqueue(Value::Object(event)) {
            true => Ok(()),
            false => Err(TrackError::QueueFull),
        }
    }

    fn first(&self, key: u64, now: u64) -> bool {
        let first = self
            .dedup
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .first(key, now);
        if !first {
            self.counters.deduplicated.fetch_add(1, Ordering::Relaxed);
        }
        first
    }

    /// The unit events of `user` are about; `None` when it has neither a `user_id` nor a
    /// `device_id` (non-empty), which no event can be recorded for.
    pub fn unit(&self, user: &User) -> Option<Unit> {
        let (user_id, device_id) = ids(Some(&user.fields));
        let (user_id, device_id) = (user_id.unwrap_or(""), device_id.unwrap_or(""));
        if user_id.is_empty() && device_id.is_empty() {
            return None;
        }
        let mut hasher = self.keys.build_hasher();
        hasher.write(user_id.as_bytes());
        hasher.write_u8(SEPARATOR);
        hasher.write(device_id.as_bytes());
        Some(Unit {
            groups: user.fields.get("groups").cloned(),
            hash: hasher.finish(),
        })
    }

    /// Records that `unit` (with `context`, its user's evaluation context) was exposed to the
    /// variant of `result`, a result that [`records_exposure`] (the caller knows it from the
    /// configs), unless it is a duplicate within the window. Only a first exposure builds
    /// strings and metadata.
    pub fn exposure(&self, unit: &Unit, context: &Context, result: &VariantResult<'_>) {
        let (flag_key, variant_key) = (result.flag_key(), result.key());
        let mut hasher = self.keys.build_hasher();
        hasher.write_u64(unit.hash);
        hasher.write(flag_key.as_bytes());
        hasher.write_u8(SEPARATOR);
        hasher.write(variant_key.as_bytes());
        let now = now_ms();
        if !self.first(hasher.finish(), now) {
            return;
        }
        let mut properties = Map::new();
        properties.insert("[Experiment] Flag Key".into(), json!(flag_key));
        properties.insert("[Experiment] Variant".into(), json!(variant_key));
        if let Some(experiment) = result.metadata_value("experimentKey") {
            properties.insert(
                "[Experiment] Experiment Key".into(),
                experiment.clone().into(),
            );
        }
        if let Some(metadata) = result.metadata() {
            properties.insert(
                "metadata".into(),
                vexil_eval::Value::Object(metadata).into(),
            );
        }
        let (user_id, device_id) = context_ids(context);
        let insert_id = format!(
            "{} {} {flag_key} {variant_key} {}",
            user_id.unwrap_or(""),
            device_id.unwrap_or(""),
            now / self.window_ms
        );
        let mut event = base_event(
            "[Experiment] Exposure",
            context_ids(context),
            unit.groups.as_ref(),
            now,
            insert_id,
        );
        event.insert("event_properties".into(), Value::Object(properties));
        event.insert(
            "user_properties".into(),
            json!({"$set": {format!("[Experiment] {flag_key}"): variant_key}}),
        );
        self.enqueue(Value::Object(event));
    }

    /// Records an `[Experiment] Assignment` of every result, once per window for the same
    /// unit and results (when assignment tracking is on).
    pub fn assignment(
        &self,
        unit: &Unit,
        context: &Context,
        results: &std::collections::BTreeMap<String, Variant>,
    ) {
        if !self.assignments || results.is_empty() {
            return;
        }
        let (user_id, device_id) = context_ids(context);
        let (user_id, device_id) = (user_id.unwrap_or(""), device_id.unwrap_or(""));
        // The text names the assignment across restarts (its `insert_id`); it is built for
        // every call, but assignments are off by default and made once per `all_variants`.
        let mut key = format!("assignment\u{0}{user_id}\u{0}{device_id}");
        for (flag, v) in results {
            key.push('\u{0}');
            key.push_str(flag);
            key.push('=');
            key.push_str(&v.key);
        }
        let now = now_ms();
        if !self.first(self.keys.hash_one(&key), now) {
            return;
        }
        let mut properties = Map::new();
        for (flag, v) in results {
            let version = v
                .meta("flagVersion")
                .map(Value::to_string)
                .unwrap_or_default();
            let segment = v.meta("segmentName").and_then(Value::as_str).unwrap_or("");
            properties.insert(format!("{flag}.variant"), json!(v.key));
            properties.insert(
                format!("{flag}.details"),
                json!(format!("v{version} rule:{segment}")),
            );
        }
        let insert_id = format!(
            "{user_id} {device_id} {:x} {}",
            fnv(&key),
            now / self.window_ms
        );
        let mut event = base_event(
            "[Experiment] Assignment",
            context_ids(context),
            unit.groups.as_ref(),
            now,
            insert_id,
        );
        event.insert("event_properties".into(), Value::Object(properties));
        self.enqueue(Value::Object(event));
    }

    /// Sends everything queued so far and waits for it (or for its failure).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Flushes and stops the sender.
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// An event's common fields: its type, the unit's `(user_id, device_id)` and groups, the
/// time, the `insert_id` and the library.
fn base_event(
    event_type: &str,
    (user_id, device_id): (Option<&str>, Option<&str>),
    groups: Option<&vexil_eval::Value>,
    now: u64,
    insert_id: String,
) -> Map<String, Value> {
    let mut event = Map::new();
    event.insert("event_type".into(), json!(event_type));
    for (field, id) in [("user_id", user_id), ("device_id", device_id)] {
        if let Some(id) = id {
            event.insert(field.into(), json!(id));
        }
    }
    if let Some(groups) = groups {
        event.insert("groups".into(), groups.clone().into());
    }
    event.insert("time".into(), json!(now));
    event.insert("insert_id".into(), json!(insert_id));
    event.insert("library".into(), json!(LIBRARY));
    event
}

/// The background task that posts batches.
struct Sender {
    http: reqwest::Client,
    url: String,
    api_key: String,
    config: EventsConfig,
    counters: Arc<Counters>,
}

/// What became of one attempt at a batch.
enum Outcome {
    Sent,
    /// Retry the same batch later.
    Retry,
    /// 413: split it.
    TooLarge,
    /// A 4xx other than 413 and 429: sending it again cannot help.
    Rejected,
}

impl Sender {
    async fn run(self, mut rx: mpsc::Receiver<Message>) {
        let mut batch: Vec<Value> = Vec::new();
        let mut tick =
            tokio::time::interval(self.config.flush_interval.max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = rx.recv() => match message {
                    Some(Message::Event(event)) => {
                        batch.push(event);
                        if batch.len() >= self.config.flush_at.max(1) {
                            self.send_all(std::mem::take(&mut batch)).await;
                        }
                    }
                    Some(Message::Flush(done)) => {
                        self.send_all(std::mem::take(&mut batch)).await;
                        let _ = done.send(());
                    }
                    Some(Message::Close(done)) => {
                        rx.close();
                        while let Ok(Message::Event(event)) = rx.try_recv() {
                            batch.push(event);
                        }
                        self.send_all(std::mem::take(&mut batch)).await;
                        let _ = done.send(());
                        return;
                    }
                    // Every client handle is gone: send what is left.
                    None => {
                        self.send_all(std::mem::take(&mut batch)).await;
                        return;
                    }
                },
                _ = tick.tick() => {
                    if !batch.is_empty() {
                        self.send_all(std::mem::take(&mut batch)).await;
                    }
                }
            }
        }
    }

    /// Sends `events` in batches of at most `flush_at`, splitting on 413.
    async fn send_all(&self, events: Vec<Value>) {
        let mut pending: Vec<Vec<Value>> = events
            .chunks(self.config.flush_at.max(1))
            .map(<[Value]>::to_vec)
            .collect();
        pending.reverse();
        while let Some(batch) = pending.pop() {
            if batch.is_empty() {
                continue;
            }
            let n = batch.len() as u64;
            match self.send_with_retries(&batch).await {
                Outcome::Sent => {
                    self.counters.sent.fetch_add(n, Ordering::Relaxed);
                }
                Outcome::TooLarge if batch.len() > 1 => {
                    let (a, b) = batch.split_at(batch.len() / 2);
                    pending.push(b.to_vec());
                    pending.push(a.to_vec());
                }
                Outcome::TooLarge | Outcome::Rejected | Outcome::Retry => {
                    self.counters.failed.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
    }

    async fn send_with_retries(&self, batch: &[Value]) -> Outcome {
        let mut backoff = Backoff::new(self.config.retry_min, self.config.retry_max);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let outcome = self.send_once(batch).await;
            if !matches!(outcome, Outcome::Retry) || attempts >= self.config.max_attempts.max(1) {
                return outcome;
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    async fn send_once(&self, batch: &[Value]) -> Outcome {
        let body =
            json!({"api_key": self.api_key, "events": batch, "client_upload_time": now_ms()});
        let response = self
            .http
            .post(&self.url)
            .timeout(Duration::from_secs(30))
            .json(&body)
            .send()
            .await;
        match response.map(|r| r.status().as_u16()) {
            Ok(200..=299) => Outcome::Sent,
            Ok(413) => Outcome::TooLarge,
            Ok(429) | Ok(500..=599) | Err(_) => Outcome::Retry,
            Ok(_) => Outcome::Rejected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps of (key, time in ms, expected "first?") through one `Dedup`, the keys hashed as
    /// the tracker hashes them.
    fn check(window_ms: u64, capacity: usize, steps: &[(&str, u64, bool)]) {
        let mut dedup = Dedup::new(Duration::from_millis(window_ms), capacity);
        let keys = RandomState::new();
        for (i, (key, at, expected)) in steps.iter().enumerate() {
            let hash = keys.hash_one(key);
            assert_eq!(dedup.first(hash, *at), *expected, "step {i}: {key} at {at}");
            assert!(
                dedup.seen.len() <= capacity.max(1),
                "step {i}: over capacity"
            );
        }
    }

    #[test]
    fn dedup_within_a_window() {
        type Steps<'a> = &'a [(&'a str, u64, bool)];
        let cases: &[(u64, usize, Steps)] = &[
            // Same key inside the window: once; after it: again.
            (
                1_000,
                10,
                &[
                    ("a", 0, true),
                    ("a", 999, false),
                    ("a", 1_000, true),
                    ("a", 1_500, false),
                ],
            ),
            // Different keys are independent.
            (
                1_000,
                10,
                &[
                    ("a", 0, true),
                    ("b", 1, true),
                    ("a", 2, false),
                    ("b", 3, false),
                ],
            ),
            // A full cache forgets expired entries first...
            (
                100,
                2,
                &[
                    ("a", 0, true),
                    ("b", 50, true),
                    ("c", 120, true),
                    ("b", 130, false),
                    ("a", 140, true),
                ],
            ),
            // ... and then the older half, never growing past its capacity.
            (
                10_000,
                2,
                &[
                    ("a", 0, true),
                    ("b", 1, true),
                    ("c", 2, true),
                    ("a", 3, true),
                ],
            ),
            // A clock going backwards does not panic and counts as inside the window.
            (1_000, 10, &[("a", 5_000, true), ("a", 10, false)]),
            // Zero window: nothing is a duplicate.
            (0, 10, &[("a", 0, true), ("a", 0, true)]),
        ];
        for (window, capacity, steps) in cases {
            check(*window, *capacity, steps);
        }
    }

    /// Flags whose results the tracker tests expose: keys and variants that run together when
    /// concatenated, one opted out of exposures, one not deployed.
    fn flags() -> vexil_eval::FlagSet {
        let flag = |key: &str, variant: &str, metadata: serde_json::Value| {
            json!({"key": key, "metadata": metadata,
                "variants": {variant: {"key": variant, "value": variant},
                             "off": {"key": "off", "metadata": {"default": true}}},
                "segments": [{"variant": variant}]})
        };
        let text = json!([
            flag("f", "on", json!({})),
            flag("a", "bc", json!({})),
            flag("ab", "c", json!({})),
            flag("quiet", "on", json!({"trackExposure": false})),
            flag("ancestor", "on", json!({"deployed": false})),
        ]);
        vexil_eval::FlagSet::from_json(&text.to_string()).unwrap()
    }

    fn context(user: &User) -> Context {
        Context::from_sdk_user(vexil_eval::Value::Object(user.fields.clone()))
    }

    fn tracker(config: &EventsConfig) -> Tracker {
        Tracker::start(
            &tokio::runtime::Handle::current(),
            reqwest::Client::new(),
            // Refuses connections: every batch fails, and `failed` counts what was queued.
            "http://127.0.0.1:9/batch".into(),
            "k".into(),
            config,
        )
        .0
    }

    #[tokio::test]
    async fn exposures_are_deduplicated_by_user_flag_and_variant() {
        let config = EventsConfig {
            flush_interval: Duration::from_secs(3600),
            flush_at: 1_000,
            max_attempts: 1,
            ..EventsConfig::default()
        };
        let tracker = tracker(&config);
        let set = flags();
        // (flag index, variant index): variant 0 is the flag's own, 1 is `off`.
        let result = |flag: usize, variant: usize| set.result_at(flag, 0, variant).unwrap();
        let unit = |user: User| Some((tracker.unit(&user)?, context(&user)));
        assert!(unit(User::new()).is_none());
        assert!(unit(User::new().with_user_id("").with_device_id("")).is_none());
        let u1 = unit(User::new().with_user_id("u1")).unwrap();
        // The default is no exposure, nor are opted-out and undeployed results.
        for (flag, variant, expected) in [(0, 0, true), (0, 1, false), (3, 0, false), (4, 0, false)]
        {
            let r = result(flag, variant);
            assert_eq!(
                records_exposure(&r),
                expected,
                "{}/{}",
                r.flag_key(),
                r.key()
            );
        }
        // (unit, flag, variant, queued?)
        let steps = [
            (&u1, 0, 0, true),
            (&u1, 0, 0, false),
            // `a`/`bc` and `ab`/`c` are different exposures.
            (&u1, 1, 0, true),
            (&u1, 2, 0, true),
            (&u1, 2, 0, false),
        ];
        // The test's runtime has one thread and the sender runs only when the test awaits, so
        // the queue's free room says whether a step queued an event.
        let mut queued = 0;
        for (step, (unit, flag, variant, expected)) in steps.into_iter().enumerate() {
            let room = tracker.tx.capacity();
            tracker.exposure(&unit.0, &unit.1, &result(flag, variant));
            assert_eq!(tracker.tx.capacity() < room, expected, "step {step}");
            queued += u64::from(expected);
        }
        // Ids that run together are different users too; the same ids are the same user.
        for (user_id, device_id) in [("ab", "c"), ("a", "bc"), ("u1", "d")] {
            let user = User::new().with_user_id(user_id).with_device_id(device_id);
            let room = tracker.tx.capacity();
            let (unit, context) = unit(user).unwrap();
            tracker.exposure(&unit, &context, &result(0, 0));
            assert!(tracker.tx.capacity() < room, "{user_id}/{device_id}");
            queued += 1;
        }
        let (again, context) = unit(User::new().with_user_id("u1")).unwrap();
        let room = tracker.tx.capacity();
        tracker.exposure(&again, &context, &result(0, 0));
        assert_eq!(tracker.tx.capacity(), room, "the same user again");
        let stats = tracker.stats();
        assert_eq!((stats.deduplicated, stats.dropped), (3, 0), "{stats:?}");
        tracker.close().await;
        assert_eq!(tracker.stats().failed, queued, "{:?}", tracker.stats());
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let config = EventsConfig {
            queue_capacity: 2,
            // The sender's first tick is immediate; after it nothing is sent for an hour.
            flush_interval: Duration::from_secs(3600),
            flush_at: 1_000,
            max_attempts: 1,
            ..EventsConfig::default()
        };
        let tracker = tracker(&config);
        let set = flags();
        let on = set.result_at(0, 0, 0).unwrap();
        // Past the queue's capacity (the sender may hold one event already): dropped, counted.
        for i in 0..5 {
            let user = User::new().with_user_id(format!("x{i}"));
            let unit = tracker.unit(&user).unwrap();
            tracker.exposure(&unit, &context(&user), &on);
        }
        assert!(tracker.stats().dropped >= 2, "{:?}", tracker.stats());
        tracker.close().await;
        let stats = tracker.stats();
        assert_eq!(stats.sent, 0);
        assert!(stats.failed >= 1, "{stats:?}");
        assert_eq!(stats.failed + stats.dropped, 5, "{stats:?}");
    }
}
