//! A PostgreSQL store that connects in the background, for `vexil serve` started with a state
//! directory while the database is unreachable: the server then starts on the snapshots it
//! persisted and spools events, every store call answers `Unavailable` at once (a `503` with
//! `Retry-After`), and the first successful connection (which also brings the schema up to
//! date) turns the store on for good. From then on the pool reconnects by itself.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use vexil_store::{ChangeFeed, PostgresStore, Result, Store, StoreError, Tx};

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(10);

/// See the module documentation.
pub struct Deferred {
    store: Arc<OnceLock<PostgresStore>>,
}

impl Deferred {
    /// Starts connecting to `url` in a background thread, retrying with a backoff until it
    /// succeeds.
    pub fn connect_later(url: String) -> std::io::Result<Deferred> {
        let store = Arc::new(OnceLock::new());
        let target = store.clone();
        std::thread::Builder::new()
            .name("vexil-db-connect".into())
            .spawn(move || {
                let mut retry = FIRST_RETRY;
                loop {
                    match PostgresStore::connect(&url, None) {
                        Ok(connected) => {
                            let _ = target.set(connected);
                            tracing::info!("connected to PostgreSQL");
                            return;
                        }
                        Err(err) => {
                            tracing::debug!(error = %vexil_server::error::chain(&err), "PostgreSQL is still unreachable");
                            // A retry pace, not a synchronisation: nothing waits on this thread.
                            std::thread::sleep(retry);
                            retry = (retry * 2).min(MAX_RETRY);
                        }
                    }
                }
            })?;
        Ok(Deferred { store })
    }

    fn connected(&self) -> Result<&PostgresStore> {
        self.store.get().ok_or_else(|| {
            let err = std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "not connected to PostgreSQL yet",
            );
            StoreError::Unavailable(Box::new(err))
        })
    }
}

impl Store for Deferred {
    fn write(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        self.connected()?.write(f)
    }

    fn read(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        self.connected()?.read(f)
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn change_feed(&self) -> Result<Option<Box<dyn ChangeFeed>>> {
        self.connected()?.change_feed()
    }
}
