//! Blocking clients, for code without an async runtime (feature `blocking`, on by default):
//! [`LocalClient`] and [`RemoteClient`] with the async clients' operations as plain calls.
//!
//! Each client owns a small tokio runtime: a current-thread runtime on a thread of its own
//! (named `vexil-sdk`), where the async client's background tasks run (the stream, polling,
//! cohort sync, the event sender). Evaluation does not touch that thread: the accessors and
//! [`crate::Evaluation`] are already synchronous and cost what they cost on the async client.
//! The calls that wait (`wait_until_ready`, `flush`, `shutdown`, `fetch`) hand their work to
//! the runtime's thread and wait for the answer on a standard channel, each with a bound, so
//! none of them waits forever.
//!
//! **Inside a tokio runtime.** No call uses `block_on` on the caller's thread, so nothing
//! panics when a blocking client is made, used or dropped inside a runtime (`block_on` there
//! would). The waiting calls do block the calling thread, which holds up the other tasks of
//! that runtime's worker for as long as the call lasts: in async code use the async clients,
//! or make these calls in `tokio::task::spawn_blocking`.
//!
//! **Shutting down.** [`LocalClient::shutdown`] stops following Vexil and sends the queued
//! exposures, waiting at most the time given; dropping the client does the same with
//! [`SHUTDOWN_ON_DROP`]. Events that could not be sent in that time are dropped.
//!
//! ```
//! use vexil_sdk::blocking::LocalClient;
//! use vexil_sdk::{LocalConfig, User};
//!
//! # let flags = r#"[{"key": "new-checkout", "variants": {"on": {"key": "on", "value": "on"}},
//! #     "segments": [{"variant": "on"}]}]"#;
//! // A plain `fn main`: no async runtime anywhere.
//! let client = LocalClient::start(LocalConfig::offline(flags))?;
//! let user = User::new().with_user_id("u-1");
//! assert_eq!(client.string_variation(&user, "new-checkout", "old"), "on");
//! client.shutdown(std::time::Duration::from_secs(2))?;
//! # Ok::<(), vexil_sdk::Error>(())
//! ```
//!
//! Against a server:
//!
//! ```no_run
//! use std::time::Duration;
//! use vexil_sdk::blocking::{LocalClient, RemoteClient};
//! use vexil_sdk::{LocalConfig, RemoteConfig, User};
//!
//! let client = LocalClient::start(LocalConfig::new("https://vexil.example.com", "server-..."))?;
//! if client.wait_until_ready(Duration::from_secs(2)).is_err() {
//!     // Keep going: fallbacks (or the bootstrap) until Vexil answers.
//! }
//! let user = User::new().with_user_id("u-1");
//! let flags = client.evaluation(&user); // the user prepared once for several flags
//! let layout = flags.string_variation("checkout-layout", "classic");
//! let dark = flags.bool_variation("dark-mode", false);
//! # let _ = (layout, dark);
//!
//! let remote = RemoteClient::new(RemoteConfig::new("https://vexil.example.com", "server-..."))?;
//! let variants = remote.fetch(&user)?; // the remote client's timeout and retries
//! # let _ = variants;
//! client.shutdown(Duration::from_secs(5))?; // sends the exposures still queued
//! # Ok::<(), vexil_sdk::Error>(())
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::events::{EventStats, TrackError};
use crate::local::Status;
use crate::{Detail, Error, Evaluation, LocalConfig, RemoteConfig, User, Variant};

/// How long dropping a [`LocalClient`] that was not shut down waits for its queued exposures
/// to be sent.
pub const SHUTDOWN_ON_DROP: Duration = Duration::from_secs(5);

/// What a waiting call allows beyond the bound of the work it waits for (which enforces that
/// bound itself), so that it gives up only when the runtime's thread cannot answer at all.
const GRACE: Duration = Duration::from_secs(1);

/// How long tasks still running at shutdown (a request past its caller's timeout, a DNS
/// lookup on the blocking pool) get before the runtime's thread ends without them.
const RUNTIME_SHUTDOWN: Duration = Duration::from_millis(100);

/// A current-thread tokio runtime on a thread of its own. It runs until [`Runtime::stop`] or
/// until it is dropped.
#[derive(Debug)]
struct Runtime {
    handle: tokio::runtime::Handle,
    /// Sending (or dropping) it ends the thread.
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl Runtime {
    fn start() -> Result<Runtime, Error> {
        // `enable_all`: the timers, and the I/O driver that reqwest's connections need.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("vexil-sdk".to_owned())
            .spawn(move || {
                // A thread of its own, outside any other runtime: `block_on` is allowed here.
                runtime.block_on(async move {
                    let _ = stopped.await;
                });
                runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
            })
            .map_err(Error::Runtime)?;
        Ok(Runtime {
            handle,
            stop: Mutex::new(Some(stop)),
        })
    }

    /// Runs `future` on the runtime's thread and waits for its output on this one, at most
    /// `limit` (after which the future is cancelled). Never enters a runtime on this thread.
    fn run<F>(&self, future: F, limit: Duration) -> Result<F::Output, Error>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // Once stopped, refused here: the runtime's thread may still be winding down and would
        // run the task.
        let stopped = self
            .stop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none();
        if stopped {
            return Err(Error::ShutDown);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        // On a runtime that stopped meanwhile, the task is dropped at once and `tx` with it.
        let task = self.handle.spawn(async move {
            let _ = tx.send(future.await);
        });
        match rx.recv_timeout(limit) {
            Ok(output) => Ok(output),
            Err(RecvTimeoutError::Timeout) => {
                task.abort();
                Err(Error::Timeout(limit))
            }
            Err(RecvTimeoutError::Disconnected) => Err(Error::ShutDown),
        }
    }

    /// Ends the runtime's thread: the tasks still running are dropped.
    fn stop(&self) {
        let stop = self
            .stop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
    }
}

/// The local evaluation client, blocking (see the [module](self) documentation).
///
/// `Send` and `Sync`: share one in an `Arc` rather than starting one per thread. Dropping it
/// shuts it down (see [`LocalClient::shutdown`]).
#[derive(Debug)]
pub struct LocalClient {
    client: crate::LocalClient,
    runtime: Runtime,
    shut_down: AtomicBool,
}

impl LocalClient {
    /// Starts a client on a runtime of its own: compiles the bootstrap (an invalid one is an
    /// error), then, unless offline, starts the tasks that download and follow the configs,
    /// sync cohorts and send events. Returns at once: use [`LocalClient::wait_until_ready`]
    /// to wait for the first download.
    pub fn start(config: LocalConfig) -> Result<LocalClient, Error> {
        let runtime = Runtime::start()?;
        let client = crate::LocalClient::start_on(config, Some(runtime.handle.clone()))?;
        Ok(LocalClient {
            client,
            runtime,
            shut_down: AtomicBool::new(false),
        })
    }

    /// Waits until configs came from the server (and, with cohort sync, the cohorts they
    /// reference), or `timeout`. On `Err` the client keeps evaluating its bootstrap (or gives
    /// fallbacks) and keeps trying in the background.
    pub fn wait_until_ready(&self, timeout: Duration) -> Result<(), Error> {
        if self.client.is_ready() {
            return Ok(());
        }
        let client = self.client.clone();
        let wait = async move { client.wait_until_ready(timeout).await };
        self.runtime.run(wait, timeout.saturating_add(GRACE))?
    }

    /// Whether configs came from the server.
    pub fn is_ready(&self) -> bool {
        self.client.is_ready()
    }

    /// The connection's state.
    pub fn status(&self) -> Status {
        self.client.status()
    }

    /// The JSON text of the configs served now (to save as a bootstrap file).
    pub fn flags_json(&self) -> Option<Arc<str>> {
        self.client.flags_json()
    }

    /// Counters of the exposure pipeline (zero when events are off).
    pub fn event_stats(&self) -> EventStats {
        self.client.event_stats()
    }

    /// The async client underneath (for `changes`, or to hand to async code). Its tasks run on
    /// this client's runtime, which ends when this client is shut down.
    pub fn as_async(&self) -> &crate::LocalClient {
        &self.client
    }

    /// Prepares `user` for evaluating several flags against the configs current now (see
    /// [`Evaluation`]).
    pub fn evaluation(&self, user: &User) -> Evaluation {
        self.client.evaluation(user)
    }

    /// Every flag's variant for `user`, as remote evaluation answers; no exposures.
    pub fn all_variants(&self, user: &User) -> BTreeMap<String, Variant> {
        self.client.all_variants(user)
    }

    /// One flag's variant for `user` (`None`: unknown flag or no configs yet), and an exposure.
    pub fn variant(&self, user: &User, flag_key: &str) -> Option<Variant> {
        self.client.variant(user, flag_key)
    }

    /// One flag with its OFREP reason and error code, and an exposure.
    pub fn detail(&self, user: &User, flag_key: &str) -> Detail {
        self.client.detail(user, flag_key)
    }

    /// Whether `user` gets a variant other than the default (`off`).
    pub fn is_enabled(&self, user: &User, flag_key: &str) -> bool {
        self.client.is_enabled(user, flag_key)
    }

    /// The flag's value as a boolean; `fallback` for the default, another type, or an error.
    pub fn bool_variation(&self, user: &User, flag_key: &str, fallback: bool) -> bool {
        self.client.bool_variation(user, flag_key, fallback)
    }

    /// The flag's value as a string; `fallback` for the default, another type, or an error.
    pub fn string_variation(&self, user: &User, flag_key: &str, fallback: &str) -> String {
        self.client.string_variation(user, flag_key, fallback)
    }

    /// The flag's value as an integer; `fallback` otherwise.
    pub fn int_variation(&self, user: &User, flag_key: &str, fallback: i64) -> i64 {
        self.client.int_variation(user, flag_key, fallback)
    }

    /// The flag's value as a number; `fallback` otherwise.
    pub fn float_variation(&self, user: &User, flag_key: &str, fallback: f64) -> f64 {
        self.client.float_variation(user, flag_key, fallback)
    }

    /// The flag's value as any JSON; `fallback` for the default or an error.
    pub fn json_variation(
        &self,
        user: &User,
        flag_key: &str,
        fallback: serde_json::Value,
    ) -> serde_json::Value {
        self.client.json_variation(user, flag_key, fallback)
    }

    /// Records a product event of `user` for experiment metrics (see
    /// [`crate::LocalClient::track`]); never blocks.
    pub fn track(
        &self,
        user: &User,
        event_type: &str,
        properties: serde_json::Value,
    ) -> Result<(), TrackError> {
        self.client.track(user, event_type, properties)
    }

    /// Sends the queued events now and waits for the outcome, at most `timeout`
    /// ([`Error::Timeout`] after it; the events stay queued).
    pub fn flush(&self, timeout: Duration) -> Result<(), Error> {
        let client = self.client.clone();
        self.runtime
            .run(async move { client.flush().await }, timeout)
    }

    /// Stops following Vexil and sends the queued events, waiting at most `timeout`; then
    /// stops the runtime. [`Error::Timeout`]: the events not sent by then are dropped.
    ///
    /// Evaluation keeps working from the last snapshot afterwards; the calls that need the
    /// runtime answer [`Error::ShutDown`]. A second call does nothing.
    pub fn shutdown(&self, timeout: Duration) -> Result<(), Error> {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let client = self.client.clone();
        let result = self
            .runtime
            .run(async move { client.close().await }, timeout);
        self.runtime.stop();
        result
    }
}

impl Drop for LocalClient {
    fn drop(&mut self) {
        let _ = self.shutdown(SHUTDOWN_ON_DROP);
    }
}

/// The remote evaluation client, blocking (see the [module](self) documentation): each call
/// makes the async client's request, with its timeout per attempt and its retries.
#[derive(Debug)]
pub struct RemoteClient {
    client: Arc<crate::RemoteClient>,
    runtime: Runtime,
}

impl RemoteClient {
    /// A client for `config`, with its runtime (no request is made yet).
    pub fn new(config: RemoteConfig) -> Result<RemoteClient, Error> {
        Ok(RemoteClient {
            client: Arc::new(crate::RemoteClient::new(config)?),
            runtime: Runtime::start()?,
        })
    }

    /// Every flag's variant for `user` (`off` results included).
    pub fn fetch(&self, user: &User) -> Result<BTreeMap<String, Variant>, Error> {
        self.fetch_flags(user, &[])
    }

    /// The variants of `flag_keys` and their ancestors for `user` (all flags when empty).
    pub fn fetch_flags(
        &self,
        user: &User,
        flag_keys: &[&str],
    ) -> Result<BTreeMap<String, Variant>, Error> {
        let client = self.client.clone();
        let user = user.clone();
        let keys: Vec<String> = flag_keys.iter().map(|&k| k.to_owned()).collect();
        let limit = client.longest_fetch().saturating_add(GRACE);
        let fetch = async move {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            client.fetch_flags(&user, &keys).await
        };
        self.runtime.run(fetch, limit)?
    }
}

#[cfg(test)]
mod tests;
