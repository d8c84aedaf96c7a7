//! Exposure and assignment events (`sdk-protocol.md` §A10), sent to `POST /batch` by a
//! background task.
//!
//! Recording never blocks the caller: events go into a bounded queue, and when it is full they
//! are dropped and counted. The sender batches them, retries a failed batch with back-off
//! (network errors, 429, 5xx; a 413 splits the batch), and flushes what is left on
//! [`crate::LocalClient::flush`] and [`crate::LocalClient::close`]. Like Amplitude's SDKs, an
//! exposure of the same user, flag and variant is sent once per de-duplication window, and
//! its `insert_id` names the window so that the server drops a retried duplicate too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};

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

/// Remembers what was sent within a window. Pure: the caller passes the time.
#[derive(Debug)]
pub(crate) struct Dedup {
    window_ms: u64,
    capacity: usize,
    seen: HashMap<String, u64>,
}

impl Dedup {
    pub fn new(window: Duration, capacity: usize) -> Dedup {
        Dedup {
            window_ms: window.as_millis().min(u128::from(u64::MAX)) as u64,
            capacity: capacity.max(1),
            seen: HashMap::new(),
        }
    }

    /// Whether `key` is new at `now_ms` (and remembers it if so).
    pub fn first(&mut self, key: &str, now_ms: u64) -> bool {
        if let Some(&at) = self.seen.get(key) {
            if now_ms.saturating_sub(at) < self.window_ms {
                return false;
            }
        }
        if self.seen.len() >= self.capacity && !self.seen.contains_key(key) {
            self.evict(now_ms);
        }
        self.seen.insert(key.to_owned(), now_ms);
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
    window_ms: u64,
    assignments: bool,
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
            window_ms: config
                .dedup_window
                .as_millis()
                .clamp(1, u128::from(u64::MAX)) as u64,
            assignments: config.assignments,
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

    fn enqueue(&self, event: Value) {
        if self.tx.try_send(Message::Event(event)).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn first(&self, key: &str, now: u64) -> bool {
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

    /// Records that `user` was exposed to `variant` of `flag_key`, unless it is a default, not
    /// deployed, opted out of exposure tracking, or a duplicate within the window.
    pub fn exposure(&self, user: &User, flag_key: &str, variant: &Variant) {
        let no = |k: &str| variant.meta(k) == Some(&Value::Bool(false));
        if variant.is_default() || no("deployed") || no("trackExposure") {
            return;
        }
        let (user_id, device_id) = (user.user_id().unwrap_or(""), user.device_id().unwrap_or(""));
        if user_id.is_empty() && device_id.is_empty() {
            return;
        }
        let now = now_ms();
        let key = format!(
            "{user_id}\u{0}{device_id}\u{0}{flag_key}\u{0}{}",
            variant.key
        );
        if !self.first(&key, now) {
            return;
        }
        let mut properties = Map::new();
        properties.insert("[Experiment] Flag Key".into(), json!(flag_key));
        properties.insert("[Experiment] Variant".into(), json!(variant.key));
        if let Some(experiment) = variant.meta("experimentKey") {
            properties.insert("[Experiment] Experiment Key".into(), experiment.clone());
        }
        if let Some(metadata) = &variant.metadata {
            properties.insert("metadata".into(), Value::Object(metadata.clone()));
        }
        let insert_id = format!(
            "{user_id} {device_id} {flag_key} {} {}",
            variant.key,
            now / self.window_ms
        );
        let mut event = base_event("[Experiment] Exposure", user, now, insert_id);
        event.insert("event_properties".into(), Value::Object(properties));
        event.insert(
            "user_properties".into(),
            json!({"$set": {format!("[Experiment] {flag_key}"): variant.key}}),
        );
        self.enqueue(Value::Object(event));
    }

    /// Records an `[Experiment] Assignment` of every result, once per window for the same
    /// user and results (when assignment tracking is on).
    pub fn assignment(&self, user: &User, results: &std::collections::BTreeMap<String, Variant>) {
        if !self.assignments || results.is_empty() {
            return;
        }
        let (user_id, device_id) = (user.user_id().unwrap_or(""), user.device_id().unwrap_or(""));
        if user_id.is_empty() && device_id.is_empty() {
            return;
        }
        let mut key = format!("assignment\u{0}{user_id}\u{0}{device_id}");
        for (flag, v) in results {
            key.push('\u{0}');
            key.push_str(flag);
            key.push('=');
            key.push_str(&v.key);
        }
        let now = now_ms();
        if !self.first(&key, now) {
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
        let mut event = base_event("[Experiment] Assignment", user, now, insert_id);
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

fn base_event(event_type: &str, user: &User, now: u64, insert_id: String) -> Map<String, Value> {
    let mut event = Map::new();
    event.insert("event_type".into(), json!(event_type));
    for field in ["user_id", "device_id"] {
        if let Some(id) = user.fields.get(field).and_then(vexil_eval::Value::as_str) {
            event.insert(field.into(), json!(id));
        }
    }
    if let Some(groups) = user.fields.get("groups") {
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

    /// Steps of (key, time in ms, expected "first?") through one `Dedup`.
    fn check(window_ms: u64, capacity: usize, steps: &[(&str, u64, bool)]) {
        let mut dedup = Dedup::new(Duration::from_millis(window_ms), capacity);
        for (i, (key, at, expected)) in steps.iter().enumerate() {
            assert_eq!(dedup.first(key, *at), *expected, "step {i}: {key} at {at}");
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

    #[tokio::test]
    async fn exposures_are_deduplicated_and_the_queue_drops_when_full() {
        let config = EventsConfig {
            queue_capacity: 2,
            // The sender's first tick is immediate; after it nothing is sent for an hour, and
            // the URL refuses connections anyway.
            flush_interval: Duration::from_secs(3600),
            flush_at: 1_000,
            max_attempts: 1,
            ..EventsConfig::default()
        };
        let (tracker, _task) = Tracker::start(
            &tokio::runtime::Handle::current(),
            reqwest::Client::new(),
            "http://127.0.0.1:9/batch".into(),
            "k".into(),
            &config,
        );
        let on = Variant {
            key: "on".into(),
            value: Some(json!("on")),
            payload: None,
            metadata: None,
        };
        let off = Variant {
            key: "off".into(),
            value: None,
            payload: None,
            metadata: serde_json::from_value(json!({"default": true})).ok(),
        };
        let u1 = User::new().with_user_id("u1");
        tracker.exposure(&u1, "f", &on);
        tracker.exposure(&u1, "f", &on);
        tracker.exposure(&u1, "f", &off);
        tracker.exposure(&User::new(), "f", &on);
        let stats = tracker.stats();
        assert_eq!((stats.deduplicated, stats.dropped), (1, 0), "{stats:?}");
        // Past the queue's capacity (the sender may hold one event already): dropped, counted.
        for i in 0..5 {
            tracker.exposure(&User::new().with_user_id(format!("x{i}")), "f", &on);
        }
        assert!(tracker.stats().dropped >= 2, "{:?}", tracker.stats());
        tracker.close().await;
        let stats = tracker.stats();
        assert_eq!(stats.sent, 0);
        assert!(stats.failed >= 1, "{stats:?}");
    }
}
