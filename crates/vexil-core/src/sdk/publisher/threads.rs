//! The publisher's background threads: the workers that rebuild changed projects, the sync
//! thread that follows the store, and the listener that hears other nodes' announcements.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

/// A worker: takes the changed project that has waited longest (and is not being rebuilt),
/// rebuilds it, and starts over, until the publisher stops.
pub(super) fn work(inner: &Arc<Inner>) {
    let publisher = Publisher::handle(inner);
    while let Some(project) = next_project(inner) {
        let running = Running { inner, project };
        if let Err(err) = publisher.refresh(&running.project) {
            tracing::error!(project = running.project, error = %crate::error::chain(&err), "rebuilding snapshots failed");
        }
    }
}

/// A project a worker is rebuilding. Dropping it (after the rebuild, or while a panic unwinds)
/// lets the project be taken again.
struct Running<'a> {
    inner: &'a Inner,
    project: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        lock(&self.inner.queue).running.remove(&self.project);
        // A change that arrived during the rebuild kept the project queued; now that the
        // rebuild is over, any worker may take it.
        self.inner.wake.notify_all();
    }
}

/// Waits for a changed project whose debounce has passed and that no worker is rebuilding,
/// and marks it running; `None` once the publisher stops.
fn next_project(inner: &Inner) -> Option<String> {
    let mut queue = lock(&inner.queue);
    loop {
        if queue.stop {
            return None;
        }
        let now = Instant::now();
        let waiting = queue
            .dirty
            .iter()
            .filter(|(project, _)| !queue.running.contains(*project))
            .min_by_key(|(_, since)| **since)
            .map(|(project, since)| (project.clone(), *since + inner.options.debounce));
        queue = match waiting {
            Some((project, due)) if due <= now => {
                queue.dirty.remove(&project);
                queue.running.insert(project.clone());
                return Some(project);
            }
            // Let a burst of changes to the project land before rebuilding it once.
            Some((_, due)) => inner
                .wake
                .wait_timeout(queue, due - now)
                .map(|(q, _)| q)
                .unwrap_or_else(|e| e.into_inner().0),
            None => inner
                .wake
                .wait(queue)
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        };
    }
}

/// The publisher's background threads.
#[derive(Clone, Copy)]
pub(super) enum Job {
    /// Rebuilds changed projects.
    Work,
    /// Polls the stored revisions (and follows announcements at once).
    Follow,
    /// Waits for other nodes' announcements.
    Listen,
}

/// How long the listener waits for announcements before it checks whether to stop.
const LISTEN_WAIT: Duration = Duration::from_millis(250);
/// How long the listener waits before it opens a feed again after losing one.
const LISTEN_RETRY: Duration = Duration::from_secs(2);

/// Follows other nodes' announcements of changed revisions (PostgreSQL `NOTIFY`) so that their
/// changes are picked up within milliseconds: each wakes the sync thread at once. Polling goes
/// on regardless, so a lost feed (a dropped connection) only slows following down to the poll
/// interval until the feed is opened again. Backends without a feed end this thread at once.
pub(super) fn listen(inner: &Arc<Inner>) {
    let mut feed: Option<Box<dyn vexil_store::ChangeFeed>> = None;
    loop {
        if lock(&inner.queue).stop {
            return;
        }
        let Some(open) = feed.as_mut() else {
            match inner.store.change_feed() {
                Ok(Some(opened)) => feed = Some(opened),
                Ok(None) => return,
                Err(err) => {
                    tracing::warn!(error = %crate::error::chain(&Error::from(err)), "opening the change feed failed; polling meanwhile");
                    pause(inner, LISTEN_RETRY);
                }
            }
            continue;
        };
        match open.wait(LISTEN_WAIT) {
            Ok(projects) if projects.is_empty() => {}
            Ok(_) => {
                lock(&inner.queue).sync_now = true;
                inner.wake.notify_all();
            }
            Err(err) => {
                tracing::warn!(error = %crate::error::chain(&Error::from(err)), "the change feed was lost; polling meanwhile");
                feed = None;
                pause(inner, LISTEN_RETRY);
            }
        }
    }
}

/// Waits `how_long`, or less when the publisher stops.
fn pause(inner: &Inner, how_long: Duration) {
    let queue = lock(&inner.queue);
    if !queue.stop {
        let _ = inner.wake.wait_timeout(queue, how_long);
    }
}

/// The sync thread: at once when the listener hears of a change, and else every
/// `sync_interval`, queues the projects whose stored revisions moved (other nodes, `vexil
/// flags import`) or whose rebuild failed, and follows the properties other nodes store.
/// Rebuilds run on the workers, so one slow project does not hold the sync up either.
pub(super) fn follow(inner: &Arc<Inner>) {
    let publisher = Publisher::handle(inner);
    let mut last_sync = Instant::now();
    // Until the snapshots come from the store (a start while it was unreachable), each sync
    // retries loading them all instead; this counts the failures, to say the first one only.
    let mut load_failures = 0u64;
    loop {
        {
            let mut queue = lock(&inner.queue);
            loop {
                if queue.stop {
                    return;
                }
                if queue.sync_now {
                    queue.sync_now = false;
                    break;
                }
                let wait = inner
                    .options
                    .sync_interval
                    .saturating_sub(last_sync.elapsed());
                if wait.is_zero() {
                    break;
                }
                queue = inner
                    .wake
                    .wait_timeout(queue, wait)
                    .map(|(q, _)| q)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
        }
        last_sync = Instant::now();
        if publisher.source() != Some(SnapshotSource::Store) {
            match publisher.load_all() {
                Ok(()) => {
                    tracing::info!("the store answers: serving its snapshots");
                    load_failures = 0;
                }
                Err(err) => {
                    // Said once, then quietly: the node serves what it has meanwhile.
                    if load_failures == 0 {
                        tracing::warn!(error = %crate::error::chain(&err), "loading the snapshots from the store failed; retrying every sync interval");
                    } else {
                        tracing::debug!(error = %crate::error::chain(&err), "loading the snapshots from the store failed again");
                    }
                    load_failures += 1;
                }
            }
            continue;
        }
        match publisher.stale() {
            Ok(stale) => {
                // A project being rebuilt is left alone: its rebuild may be the very change
                // that moved the stored revision, and were it not, the next sync sees it.
                let running = lock(&inner.queue).running.clone();
                queue(inner, stale.into_iter().filter(|p| !running.contains(p)));
            }
            Err(err) => {
                tracing::warn!(error = %crate::error::chain(&err), "syncing snapshots with the store failed");
            }
        }
        if let Err(err) = publisher.follow_properties() {
            tracing::warn!(error = %crate::error::chain(&err), "reading other nodes' properties failed");
        }
    }
}
