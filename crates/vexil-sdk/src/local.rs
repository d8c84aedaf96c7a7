//! [`LocalClient`]: evaluates flags in-process from the configs it downloads and follows.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{base_url, LocalConfig, LIBRARY};
use crate::events::{EventStats, TrackError, Tracker};
use crate::snapshot::Flags;
use crate::sync::{self, Shared};
use crate::variant::Detail;
use crate::{Error, Evaluation, User, Variant};

/// The local evaluation client. Cheap to clone (clones share everything); evaluation reads the
/// current snapshot and never waits for the network.
///
/// Each accessor prepares the user for the engine, which copies it; to read several flags for
/// one user, prepare it once with [`LocalClient::evaluation`].
///
/// Dropping the last clone stops the background tasks; call [`LocalClient::close`] first to
/// send the events still queued.
#[derive(Debug, Clone)]
pub struct LocalClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// What the client knows of its connection to Vexil.
#[derive(Debug, Clone)]
pub struct Status {
    /// Configs came from the server (with cohort sync: and the cohorts were fetched once).
    pub ready: bool,
    /// The stream is connected and has delivered configs.
    pub streaming: bool,
    /// Number of flag configs served (0 before any).
    pub flags: usize,
    /// The last failure of a background request, if any (kept after later successes).
    pub last_error: Option<Arc<Error>>,
}

impl LocalClient {
    /// Starts a client: compiles the bootstrap (an invalid one is an error), then, unless
    /// offline, spawns the tasks that download and follow the configs, sync cohorts and send
    /// events on the current tokio runtime. Returns at once: use
    /// [`LocalClient::wait_until_ready`] to wait for the first download.
    pub fn start(config: LocalConfig) -> Result<LocalClient, Error> {
        LocalClient::start_on(config, None)
    }

    /// [`LocalClient::start`] with its tasks on `runtime` (`None`: the current one).
    pub(crate) fn start_on(
        config: LocalConfig,
        runtime: Option<tokio::runtime::Handle>,
    ) -> Result<LocalClient, Error> {
        let base = base_url(&config.server_url)?;
        let flags = config
            .bootstrap
            .as_deref()
            .map(|text| Flags::parse(text, None))
            .transpose()
            .map_err(Error::Flags)?;
        let runtime = match runtime {
            _ if config.offline => None,
            Some(runtime) => Some(runtime),
            None => Some(tokio::runtime::Handle::try_current().map_err(Error::NoRuntime)?),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(config.request_timeout)
            .user_agent(LIBRARY)
            .build()
            .map_err(Error::Client)?;
        let mut tasks = Vec::new();
        let tracker = match (&runtime, &config.events) {
            (Some(runtime), Some(events)) => {
                let url = events
                    .url
                    .clone()
                    .unwrap_or_else(|| format!("{base}/batch"));
                let key = events.api_key.as_ref().unwrap_or(&config.deployment_key);
                let (tracker, task) =
                    Tracker::start(runtime, http.clone(), url, key.expose().to_owned(), events);
                tasks.push(task);
                Some(tracker)
            }
            _ => None,
        };
        let shared = Arc::new(Shared::new(config, base, http, flags, tracker));
        let (shutdown, _) = watch::channel(false);
        if let Some(runtime) = &runtime {
            tasks.push(runtime.spawn(sync::follow(shared.clone(), shutdown.subscribe())));
            if shared.config.cohort_sync.is_some() {
                shared.want_cohorts();
                tasks.push(runtime.spawn(sync::sync_cohorts(shared.clone(), shutdown.subscribe())));
            }
        }
        Ok(LocalClient {
            inner: Arc::new(Inner {
                shared,
                shutdown,
                tasks: Mutex::new(tasks),
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Waits until configs came from the server (and, with cohort sync, the cohorts they
    /// reference), or `timeout`. On `Err` the client keeps evaluating its bootstrap (or gives
    /// fallbacks) and keeps trying in the background.
    pub async fn wait_until_ready(&self, timeout: Duration) -> Result<(), Error> {
        let mut ready = self.shared().ready.subscribe();
        let ok = matches!(
            tokio::time::timeout(timeout, ready.wait_for(|r| *r)).await,
            Ok(Ok(_))
        );
        if ok {
            Ok(())
        } else {
            Err(Error::Timeout(timeout))
        }
    }

    /// Whether configs came from the server (see [`LocalClient::wait_until_ready`]).
    pub fn is_ready(&self) -> bool {
        *self.shared().ready.borrow()
    }

    /// The connection's state.
    pub fn status(&self) -> Status {
        let shared = self.shared();
        Status {
            ready: self.is_ready(),
            streaming: shared.streaming.load(Ordering::Relaxed),
            flags: shared.snapshot().flags.as_ref().map_or(0, |f| f.len()),
            last_error: shared
                .last_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }

    /// A receiver that changes whenever the snapshot does (new configs or cohorts).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.shared().generation.subscribe()
    }

    /// The JSON text of the configs served now (to save as a bootstrap file).
    pub fn flags_json(&self) -> Option<Arc<str>> {
        self.shared()
            .snapshot()
            .flags
            .as_ref()
            .map(|f| f.text.clone())
    }

    /// Prepares `user` for evaluating several flags against the configs current now: the
    /// fast way to read many flags for one request (see [`Evaluation`]). The accessors below
    /// make one per call.
    pub fn evaluation(&self, user: &User) -> Evaluation {
        Evaluation::new(&self.inner.shared, user)
    }

    /// Every flag's variant for `user`, as remote evaluation answers (`off` results and
    /// ancestors served with `deployed: false` included). Records an assignment event when
    /// assignment tracking is on; no exposures.
    pub fn all_variants(&self, user: &User) -> BTreeMap<String, Variant> {
        self.evaluation(user).all_variants()
    }

    /// One flag's variant for `user` (`None`: unknown flag or no configs yet), and an exposure.
    pub fn variant(&self, user: &User, flag_key: &str) -> Option<Variant> {
        self.evaluation(user).variant(flag_key)
    }

    /// One flag with its OFREP reason and error code (the OpenFeature provider's answer), and
    /// an exposure.
    pub fn detail(&self, user: &User, flag_key: &str) -> Detail {
        self.evaluation(user).detail(flag_key)
    }

    /// Whether `user` gets a variant other than the default (`off`): the usual test of a
    /// release flag.
    pub fn is_enabled(&self, user: &User, flag_key: &str) -> bool {
        self.evaluation(user).is_enabled(flag_key)
    }

    /// The flag's value as a boolean (a JSON `true`/`false` value); `fallback` for the default,
    /// another type, or an error.
    pub fn bool_variation(&self, user: &User, flag_key: &str, fallback: bool) -> bool {
        self.evaluation(user).bool_variation(flag_key, fallback)
    }

    /// The flag's value as a string; `fallback` for the default, another type, or an error.
    pub fn string_variation(&self, user: &User, flag_key: &str, fallback: &str) -> String {
        self.evaluation(user).string_variation(flag_key, fallback)
    }

    /// The flag's value as an integer; `fallback` otherwise.
    pub fn int_variation(&self, user: &User, flag_key: &str, fallback: i64) -> i64 {
        self.evaluation(user).int_variation(flag_key, fallback)
    }

    /// The flag's value as a number; `fallback` otherwise.
    pub fn float_variation(&self, user: &User, flag_key: &str, fallback: f64) -> f64 {
        self.evaluation(user).float_variation(flag_key, fallback)
    }

    /// The flag's value as any JSON; `fallback` for the default or an error.
    pub fn json_variation(
        &self,
        user: &User,
        flag_key: &str,
        fallback: serde_json::Value,
    ) -> serde_json::Value {
        self.evaluation(user).json_variation(flag_key, fallback)
    }

    /// Records a product event of `user` for experiment metrics (`purchase`, `signup`, …):
    /// `event_type` with its `properties` (a JSON object such as `{"revenue": 42.5}`, or
    /// `null`), the user's `user_id`, `device_id` and groups, and the time now. It is queued
    /// and sent with the exposures, never blocking the caller; a metric counts it or sums a
    /// property of it over an experiment's units.
    ///
    /// ```no_run
    /// # fn checkout(client: &vexil_sdk::LocalClient) {
    /// use serde_json::json;
    /// use vexil_sdk::User;
    ///
    /// let user = User::new().with_user_id("u-1");
    /// if let Err(why) = client.track(&user, "purchase", json!({"revenue": 42.5})) {
    ///     eprintln!("not tracked: {why}");
    /// }
    /// # }
    /// ```
    pub fn track(
        &self,
        user: &User,
        event_type: &str,
        properties: serde_json::Value,
    ) -> Result<(), TrackError> {
        match &self.shared().tracker {
            Some(tracker) => tracker.track(user, event_type, properties),
            None => Err(TrackError::EventsOff),
        }
    }

    /// Counters of the exposure pipeline (zero when events are off).
    pub fn event_stats(&self) -> EventStats {
        self.shared()
            .tracker
            .as_ref()
            .map(Tracker::stats)
            .unwrap_or_default()
    }

    /// Sends the queued events now and waits for the outcome.
    pub async fn flush(&self) {
        if let Some(tracker) = &self.shared().tracker {
            tracker.flush().await;
        }
    }

    /// Stops following Vexil, sends the queued events and waits for that. Evaluation keeps
    /// working from the last snapshot afterwards.
    pub async fn close(&self) {
        let _ = self.inner.shutdown.send(true);
        let tasks: Vec<JoinHandle<()>> = std::mem::take(
            &mut *self
                .inner
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if let Some(tracker) = &self.shared().tracker {
            tracker.close().await;
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}
