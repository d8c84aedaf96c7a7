//! Scheduled changes: every sync interval the drafts due are published and the progressive
//! rollouts' steps due applied (`DraftService::run_due`). Each is published under its project's lock and checked again
//! there, so with several nodes on one PostgreSQL each draft is published once, and a node that
//! restarts picks up what came due meanwhile (the schedule is stored, not held in memory).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vexil_core::Services;

/// The background task; it ends when stopped or dropped.
pub(crate) struct Scheduler(tokio::task::JoinHandle<()>);

impl Scheduler {
    pub fn start(services: Services, interval: Duration) -> Scheduler {
        let task = async move {
            loop {
                tokio::time::sleep(interval).await;
                let s = services.clone();
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                match tokio::task::spawn_blocking(move || s.drafts.run_due(now)).await {
                    Ok(Ok((published, failed))) => {
                        for (project, id) in published {
                            tracing::info!(
                                project,
                                id,
                                "applied a scheduled change (a draft or a rollout step)"
                            );
                        }
                        for (project, id) in failed {
                            tracing::warn!(project, id, "a scheduled change was refused: the draft is marked failed, the rollout paused, with the reason");
                        }
                    }
                    Ok(Err(err)) => {
                        tracing::warn!(error = %crate::error::chain(&err), "publishing the scheduled drafts failed; retried at the next tick");
                    }
                    Err(err) => tracing::warn!(error = %err, "the scheduler panicked"),
                }
            }
        };
        Scheduler(tokio::spawn(task))
    }

    pub fn stop(&self) {
        self.0.abort();
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.0.abort();
    }
}
