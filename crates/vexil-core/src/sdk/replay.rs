//! The replay thread: stores the spooled event batches ([`super::spool`]) once the store
//! answers again, oldest first, through the same [`Tracker`] path as posted batches, so that
//! insert ids de-duplicate them and a batch the outage cut in the middle is completed from where
//! it stopped. While the store stays unreachable it is polled with a backoff (100 ms, doubling,
//! at most 5 s); the thread also replays what an earlier run left, as soon as it starts.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::spool::{Spool, Step, Verdict};
use super::tracking::{IngestError, Partial, Tracker};
use crate::error::{Error, Result};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A record that keeps failing for another reason than an unreachable store is quarantined
/// after this many attempts, so that one bad record cannot hold up the rest for ever.
const ATTEMPTS: u32 = 5;

#[derive(Default)]
struct Control {
    stop: bool,
    /// A batch was spooled since the thread last looked.
    woken: bool,
}

/// The replay thread's handle.
pub(crate) struct Replayer {
    control: Mutex<Control>,
    cond: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Replayer {
    /// Starts replaying `spool` through `tracker`.
    pub(crate) fn start(tracker: Tracker, spool: Arc<Spool>) -> Result<Arc<Replayer>> {
        let replayer = Arc::new(Replayer {
            control: Mutex::new(Control::default()),
            cond: Condvar::new(),
            thread: Mutex::new(None),
        });
        let running = replayer.clone();
        let handle = std::thread::Builder::new()
            .name("vexil-spool-replay".into())
            .spawn(move || running.run(&tracker, &spool))
            .map_err(|e| Error::Internal(Box::new(e)))?;
        *lock(&replayer.thread) = Some(handle);
        Ok(replayer)
    }

    /// Tells the thread a batch was spooled.
    pub(crate) fn wake(&self) {
        lock(&self.control).woken = true;
        self.cond.notify_all();
    }

    /// Stops the thread (after the record it is storing, if any) and waits for it.
    pub(crate) fn stop(&self) {
        lock(&self.control).stop = true;
        self.cond.notify_all();
        let handle = lock(&self.thread).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    fn run(&self, tracker: &Tracker, spool: &Spool) {
        let mut backoff: Option<Duration> = None;
        let mut attempts = 0u32;
        let mut stored = 0u64;
        loop {
            if !self.wait(backoff, spool) {
                return;
            }
            let mut stored_one = false;
            let mut store = |record: &super::spool::Record, progress: &mut dyn FnMut(usize)| {
                match tracker.ingest_from(&record.source, &record.body, record.stored, progress) {
                    Ok(_) => {
                        stored_one = true;
                        Verdict::Stored
                    }
                    Err(Partial {
                        error: IngestError::Failed(err),
                        ..
                    }) if err.is_unavailable() => Verdict::Retry(IngestError::Failed(err)),
                    Err(Partial {
                        error: IngestError::Failed(err),
                        ..
                    }) => {
                        attempts += 1;
                        if attempts >= ATTEMPTS {
                            Verdict::Reject(IngestError::Failed(err))
                        } else {
                            Verdict::Retry(IngestError::Failed(err))
                        }
                    }
                    // The batch passed the same checks before it was spooled; should it fail
                    // them now, no retry will do better.
                    Err(partial) => Verdict::Reject(partial.error),
                }
            };
            let step = spool.replay_one(&mut store);
            if stored_one {
                stored += 1;
            }
            match step {
                Ok(Step::Empty) => {
                    backoff = None;
                    if stored > 0 {
                        tracing::info!(batches = stored, "every spooled event batch is stored");
                        stored = 0;
                    }
                }
                Ok(Step::Advanced) => {
                    if backoff.is_some() {
                        tracing::info!(
                            "the store answers again; storing the spooled event batches"
                        );
                    }
                    backoff = None;
                    attempts = 0;
                }
                Ok(Step::Waiting(err)) => {
                    let held = spool.stats().bytes;
                    if backoff.is_none() {
                        tracing::warn!(spooled_bytes = held, error = %crate::error::chain(&err), "the store cannot take the spooled event batches yet; retrying");
                    } else {
                        tracing::debug!(spooled_bytes = held, error = %crate::error::chain(&err), "the store still cannot take the spooled event batches");
                    }
                    backoff = Some(next(backoff));
                }
                Err(err) => {
                    tracing::error!(error = %crate::error::chain(&err), "reading or acknowledging the spool failed; retrying");
                    backoff = Some(next(backoff));
                }
            }
        }
    }

    /// Waits for the backoff to pass, or (without one) for something to replay; `false` once
    /// stopped.
    fn wait(&self, backoff: Option<Duration>, spool: &Spool) -> bool {
        let mut control = lock(&self.control);
        match backoff {
            Some(delay) => {
                let until = Instant::now() + delay;
                loop {
                    if control.stop {
                        return false;
                    }
                    let now = Instant::now();
                    if now >= until {
                        break;
                    }
                    control = self
                        .cond
                        .wait_timeout(control, until - now)
                        .map(|(c, _)| c)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
            }
            None => loop {
                if control.stop {
                    return false;
                }
                if control.woken || !spool.is_empty() {
                    break;
                }
                control = self
                    .cond
                    .wait(control)
                    .unwrap_or_else(PoisonError::into_inner);
            },
        }
        control.woken = false;
        true
    }
}

fn next(backoff: Option<Duration>) -> Duration {
    backoff.map_or(FIRST_BACKOFF, |d| (d * 2).min(MAX_BACKOFF))
}
