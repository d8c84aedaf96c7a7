//! The local client's background work: following the flag configs (the stream, with polling
//! while it is down) and syncing the cohorts they reference. Both build a new [`Snapshot`] off
//! the lock and swap it in; evaluation only ever clones the current `Arc`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION, CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use serde::Deserialize;
use tokio::sync::{watch, Notify};

use crate::backoff::{self, Backoff};
use crate::config::{CohortSyncConfig, LocalConfig, LIBRARY};
use crate::events::Tracker;
use crate::snapshot::{Cohort, Cohorts, Flags, Snapshot};
use crate::sse::SseParser;
use crate::Error;

/// The largest stream event accepted (a flag array of a large deployment).
const MAX_EVENT_BYTES: usize = 64 << 20;

/// What the client handles and the background tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: LocalConfig,
    /// The server URL without a trailing `/`.
    pub base: String,
    pub http: reqwest::Client,
    state: RwLock<Arc<Snapshot>>,
    /// Bumped on every swap of the snapshot.
    pub generation: watch::Sender<u64>,
    /// True once configs came from the server (and, with cohort sync, cohorts were fetched once).
    pub ready: watch::Sender<bool>,
    from_server: AtomicBool,
    pub streaming: AtomicBool,
    cohorts_wanted: Notify,
    pub last_error: Mutex<Option<Arc<Error>>>,
    pub tracker: Option<Tracker>,
}

/// How a stream connection ended.
enum StreamEnd {
    /// The server does not stream (501): poll from now on.
    Unsupported,
    /// It failed or was closed; `events` tells whether any configs arrived on it.
    Ended { events: bool },
    /// It reached its maximum age and is renewed at once.
    Renew,
}

impl Shared {
    pub fn new(
        config: LocalConfig,
        base: String,
        http: reqwest::Client,
        flags: Option<Flags>,
        tracker: Option<Tracker>,
    ) -> Shared {
        let offline_ready = config.offline && flags.is_some();
        let snapshot = Snapshot {
            flags: flags.map(Arc::new),
            cohorts: Arc::default(),
            cohort_sync: config.cohort_sync.is_some(),
        };
        Shared {
            config,
            base,
            http,
            state: RwLock::new(Arc::new(snapshot)),
            generation: watch::Sender::new(0),
            ready: watch::Sender::new(offline_ready),
            from_server: AtomicBool::new(false),
            streaming: AtomicBool::new(false),
            cohorts_wanted: Notify::new(),
            last_error: Mutex::new(None),
            tracker,
        }
    }

    /// The current snapshot (a clone of the `Arc`; the lock is held for that only).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn swap(&self, change: impl FnOnce(&Snapshot) -> Snapshot) {
        {
            let mut state = self
                .state
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let next = change(&state);
            *state = Arc::new(next);
        }
        self.generation.send_modify(|g| *g += 1);
    }

    fn fail(&self, error: Error) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(error));
    }

    fn auth(&self) -> String {
        format!("Api-Key {}", self.config.deployment_key.expose())
    }

    /// Configs arrived from the server (or were confirmed unchanged).
    fn server_answered(&self) {
        self.from_server.store(true, Ordering::Relaxed);
        if self.config.cohort_sync.is_none() {
            self.ready.send_replace(true);
        } else if !*self.ready.borrow() {
            // Ready once the cohorts of these configs were fetched too.
            self.cohorts_wanted.notify_one();
        }
    }

    /// Compiles `text` and swaps it in, unless it is what is served already.
    fn apply(&self, text: &str, etag: Option<String>) -> Result<(), Error> {
        let current = self.snapshot();
        let unchanged = current.flags.as_ref().is_some_and(|f| *f.text == *text);
        if !unchanged {
            let flags = Arc::new(Flags::parse(text, etag).map_err(Error::Flags)?);
            self.swap(|s| Snapshot {
                flags: Some(flags),
                cohorts: s.cohorts.clone(),
                cohort_sync: s.cohort_sync,
            });
            self.cohorts_wanted.notify_one();
        }
        self.server_answered();
        Ok(())
    }

    /// Asks the cohort task for a pass (at start, for bootstrapped configs).
    pub fn want_cohorts(&self) {
        self.cohorts_wanted.notify_one();
    }

    /// `GET /sdk/v2/flags` with the last `ETag`.
    async fn poll_once(&self) {
        let etag = self.snapshot().flags.as_ref().and_then(|f| f.etag.clone());
        let mut request = self
            .http
            .get(format!("{}/sdk/v2/flags", self.base))
            .header(AUTHORIZATION, self.auth())
            .header("X-Amp-Exp-Library", LIBRARY)
            .timeout(self.config.request_timeout);
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return self.fail(Error::Http(e)),
        };
        match response.status().as_u16() {
            304 => self.server_answered(),
            200 => {
                let etag = response
                    .headers()
                    .get(ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let result = match response.text().await {
                    Ok(text) => self.apply(&text, etag),
                    Err(e) => Err(Error::Http(e)),
                };
                if let Err(e) = result {
                    self.fail(e);
                }
            }
            status => self.fail(status_error(status, &response)),
        }
    }

    /// One stream connection, applying each event, until it ends.
    async fn stream_once(&self) -> StreamEnd {
        let request = self
            .http
            .get(format!("{}/sdk/stream/v1/flags", self.base))
            .header(AUTHORIZATION, self.auth())
            .header(ACCEPT, "text/event-stream")
            .header(CACHE_CONTROL, "no-cache")
            .header("X-Amp-Exp-Library", LIBRARY);
        let timeout = self.config.request_timeout;
        let mut response = match tokio::time::timeout(timeout, request.send()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                self.fail(Error::Http(e));
                return StreamEnd::Ended { events: false };
            }
            Err(_) => {
                self.fail(Error::Timeout(timeout));
                return StreamEnd::Ended { events: false };
            }
        };
        match response.status().as_u16() {
            200 => {}
            501 => return StreamEnd::Unsupported,
            status => {
                self.fail(status_error(status, &response));
                return StreamEnd::Ended { events: false };
            }
        }
        let mut parser = SseParser::new(MAX_EVENT_BYTES);
        let mut events = false;
        let started = Instant::now();
        // Renewed at 90–100% of the maximum age, so a fleet does not reconnect at once.
        let max_age = self
            .config
            .stream_max_age
            .mul_f64(0.9 + (backoff::random() % 1000) as f64 / 10_000.0);
        let end = loop {
            let chunk =
                match tokio::time::timeout(self.config.stream_idle_timeout, response.chunk()).await
                {
                    Ok(Ok(Some(chunk))) => chunk,
                    Ok(Ok(None)) => break StreamEnd::Ended { events },
                    Ok(Err(e)) => {
                        self.fail(Error::Http(e));
                        break StreamEnd::Ended { events };
                    }
                    Err(_) => {
                        self.fail(Error::Timeout(self.config.stream_idle_timeout));
                        break StreamEnd::Ended { events };
                    }
                };
            let Ok(batch) = parser.push(&chunk) else {
                break StreamEnd::Ended { events };
            };
            for event in batch {
                // A data of only whitespace is the keep-alive.
                if event.data.trim().is_empty() {
                    continue;
                }
                match self.apply(&event.data, None) {
                    Ok(()) => {
                        events = true;
                        self.streaming.store(true, Ordering::Relaxed);
                    }
                    Err(e) => self.fail(e),
                }
            }
            if started.elapsed() >= max_age {
                break StreamEnd::Renew;
            }
        };
        self.streaming.store(false, Ordering::Relaxed);
        end
    }

    /// `GET /sdk/v1/cohort/{id}`: `Some` when it changed since `last_modified`, `None` on 204.
    async fn download_cohort(
        &self,
        id: &str,
        last_modified: Option<i64>,
        sync: &CohortSyncConfig,
    ) -> Result<Option<Cohort>, Error> {
        let mut url = reqwest::Url::parse(&self.base).map_err(|e| Error::InvalidUrl {
            url: self.base.clone(),
            source: Box::new(e),
        })?;
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["sdk", "v1", "cohort", id]);
        }
        {
            let mut query = url.query_pairs_mut();
            if let Some(max) = sync.max_cohort_size {
                query.append_pair("maxCohortSize", &max.to_string());
            }
            if let Some(t) = last_modified {
                query.append_pair("lastModified", &t.to_string());
            }
        }
        let response = self
            .http
            .get(url)
            .basic_auth(&sync.api_key, Some(sync.secret_key.expose()))
            .header("X-Amp-Exp-Library", LIBRARY)
            .timeout(self.config.request_timeout)
            .send()
            .await
            .map_err(Error::Http)?;
        match response.status().as_u16() {
            204 => Ok(None),
            200 => {
                let bytes = response.bytes().await.map_err(Error::Http)?;
                let body: CohortBody = serde_json::from_slice(&bytes).map_err(Error::Json)?;
                Ok(Some(Cohort {
                    id: body.cohort_id,
                    group_type: body.group_type,
                    last_modified: body.last_modified,
                    members: body.member_ids.into_iter().collect(),
                }))
            }
            status => Err(status_error(status, &response)),
        }
    }

    /// One pass over the referenced cohorts; returns when done (or on shutdown).
    async fn sync_cohorts_once(&self, sync: &CohortSyncConfig) {
        let snapshot = self.snapshot();
        let Some(flags) = snapshot.flags.clone() else {
            return;
        };
        let mut next = Cohorts::new();
        let mut changed = false;
        for id in &flags.cohort_ids {
            let previous = snapshot.cohorts.get(id).cloned();
            let since = previous.as_ref().map(|c| c.last_modified);
            match self.download_cohort(id, since, sync).await {
                Ok(Some(cohort)) => {
                    changed = true;
                    next.insert(id.clone(), Arc::new(cohort));
                }
                Ok(None) => {
                    if let Some(p) = previous {
                        next.insert(id.clone(), p);
                    }
                }
                Err(e) => {
                    self.fail(e);
                    if let Some(p) = previous {
                        next.insert(id.clone(), p);
                    }
                }
            }
        }
        if changed || next.len() != snapshot.cohorts.len() {
            let next = Arc::new(next);
            self.swap(|s| Snapshot {
                flags: s.flags.clone(),
                cohorts: next,
                cohort_sync: s.cohort_sync,
            });
        }
        if self.from_server.load(Ordering::Relaxed) {
            self.ready.send_replace(true);
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CohortBody {
    cohort_id: String,
    group_type: String,
    last_modified: i64,
    member_ids: Vec<String>,
}

fn status_error(status: u16, response: &reqwest::Response) -> Error {
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Error::Status {
        status,
        retry_after,
    }
}

/// Waits `duration`; `true` when the client shut down meanwhile.
async fn stopped_during(shutdown: &mut watch::Receiver<bool>, duration: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(duration) => false,
        _ = shutdown.changed() => true,
    }
}

/// Follows the flag configs until shutdown: the stream while it works; while it does not, a
/// poll at once and every poll interval until the back-off delay has passed, then the stream
/// again. Without streaming (or when the server answers 501), polling only.
pub(crate) async fn follow(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let config = &shared.config;
    let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
    let mut streaming = config.stream;
    loop {
        if !streaming {
            tokio::select! {
                _ = shared.poll_once() => {}
                _ = shutdown.changed() => return,
            }
            if stopped_during(&mut shutdown, config.poll_interval).await {
                return;
            }
            continue;
        }
        let end = tokio::select! {
            end = shared.stream_once() => end,
            _ = shutdown.changed() => return,
        };
        match end {
            StreamEnd::Unsupported => {
                streaming = false;
                continue;
            }
            StreamEnd::Renew => {
                backoff.reset();
                continue;
            }
            StreamEnd::Ended { events } if events => backoff.reset(),
            StreamEnd::Ended { .. } => {}
        }
        let until = Instant::now() + backoff.next_delay();
        loop {
            tokio::select! {
                _ = shared.poll_once() => {}
                _ = shutdown.changed() => return,
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if stopped_during(&mut shutdown, left.min(config.poll_interval)).await {
                return;
            }
            if Instant::now() >= until {
                break;
            }
        }
    }
}

/// Syncs cohorts when the configs change and every poll interval, until shutdown.
pub(crate) async fn sync_cohorts(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let Some(sync) = shared.config.cohort_sync.clone() else {
        return;
    };
    loop {
        tokio::select! {
            _ = shared.cohorts_wanted.notified() => {}
            _ = tokio::time::sleep(sync.poll_interval) => {}
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            _ = shared.sync_cohorts_once(&sync) => {}
            _ = shutdown.changed() => return,
        }
    }
}
