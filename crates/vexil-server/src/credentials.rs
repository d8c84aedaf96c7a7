//! Following the credentials other processes change: every sync interval the management keys
//! (`KeyService::refresh`, which requests authenticate from) and the server secrets are read
//! again, so keys created or revoked on another node or with `vexil keys` count here within
//! that interval, and a rotated server secret reaches the console's tokens and the OFREP
//! stream tokens. A failed read keeps the last known credentials in force and is retried at
//! the next tick.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use vexil_core::service::ServerSecrets;
use vexil_core::Services;

use crate::console::Console;
use crate::sdk::registry::Registry;

/// The background task; it ends when stopped or dropped.
pub(crate) struct Follower(tokio::task::JoinHandle<()>);

impl Follower {
    /// Starts following on the current runtime, from the secrets already in force.
    pub fn start(
        services: Services,
        console: Arc<Console>,
        registry: Arc<Registry>,
        secrets: ServerSecrets,
        interval: Duration,
    ) -> Follower {
        let task = async move {
            let mut known = secrets;
            loop {
                tokio::time::sleep(interval).await;
                let s = services.clone();
                let loaded = tokio::task::spawn_blocking(move || {
                    s.keys.refresh()?;
                    s.keys.server_secrets()
                })
                .await;
                let secrets = match loaded {
                    Ok(Ok(secrets)) => secrets,
                    Ok(Err(err)) => {
                        tracing::warn!(error = %crate::error::chain(&err), "reloading the management keys and the server secret failed; the last known ones stay in force");
                        continue;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "reloading the credentials panicked");
                        continue;
                    }
                };
                if secrets != known {
                    *console
                        .secrets
                        .write()
                        .unwrap_or_else(PoisonError::into_inner) = Arc::new(secrets.clone());
                    registry.rekey(&secrets);
                    known = secrets;
                }
            }
        };
        Follower(tokio::spawn(task))
    }

    pub fn stop(&self) {
        self.0.abort();
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.abort();
    }
}
