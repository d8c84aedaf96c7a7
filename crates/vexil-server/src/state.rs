//! Starting with a state directory ([`ServerConfig::state_dir`]), so that an outage of the
//! store costs neither events nor the ability to start:
//!
//! - the publisher persists every project it publishes to `snapshots/`; when the store is
//!   unreachable at start, the node serves those snapshots and its sync thread loads the
//!   store's once it answers (and when nothing was persisted, the node starts anyway and is
//!   not ready until then);
//! - event batches the store cannot take are spooled to `spool/` and stored later.
//!
//! Without a state directory a node needs the store to start, as it always did.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use vexil_core::sdk::{persist, Persister, Publisher, Spool, SpoolOptions};
use vexil_core::service::ServerSecrets;
use vexil_core::{Error, Result, Services};

use crate::ServerConfig;

const SNAPSHOTS: &str = "snapshots";
const SPOOL: &str = "spool";

/// Whether a start may go on without the store: it may when the node keeps a state directory
/// and the store is merely unreachable.
fn tolerated(config: &ServerConfig, err: &Error) -> bool {
    config.state_dir.is_some() && err.is_unavailable()
}

/// Loads the management keys and the server secrets. With a state directory and an
/// unreachable store, the keys load on first use instead (management calls answer `503` until
/// then), and a secret of this process stands in for the stored one until the credentials
/// follower reads it: OFREP stream tokens handed out meanwhile stop resolving then, and
/// providers ask for new ones.
pub(crate) fn credentials(services: &Services, config: &ServerConfig) -> Result<ServerSecrets> {
    match services.keys.refresh() {
        Ok(()) => {}
        Err(err) if tolerated(config, &err) => {
            tracing::warn!(error = %crate::error::chain(&err), "the store is unreachable; the management keys are loaded when it answers");
        }
        Err(err) => return Err(err),
    }
    match services.keys.server_secrets() {
        Ok(secrets) => Ok(secrets),
        Err(err) if tolerated(config, &err) => {
            let interim = vexil_core::keys::random_base62(43)?;
            Ok(ServerSecrets::new(interim, None))
        }
        Err(err) => Err(err),
    }
}

/// Subscribes the persister (with a state directory) and loads every snapshot from the store;
/// when the store is unreachable, publishes the persisted ones instead.
pub(crate) fn load_snapshots(publisher: &Publisher, config: &ServerConfig) -> Result<()> {
    let Some(dir) = &config.state_dir else {
        return publisher.load_all();
    };
    let dir = dir.join(SNAPSHOTS);
    let persister = Arc::new(Persister::open(&dir).map_err(|e| Error::Internal(Box::new(e)))?);
    publisher.subscribe(persister.clone());
    match publisher.load_all() {
        Ok(()) => {
            let published: BTreeSet<String> = publisher.projects().into_iter().collect();
            if let Err(err) = persister.retain(&published) {
                tracing::warn!(error = %crate::error::chain(&err), "removing the persisted snapshots of projects the store does not have failed");
            }
            Ok(())
        }
        Err(err) if err.is_unavailable() => {
            restore(publisher, &dir, &err);
            Ok(())
        }
        Err(err) => Err(err),
    }
}

fn restore(publisher: &Publisher, dir: &Path, cause: &Error) {
    let cause = crate::error::chain(cause);
    match persist::restore(publisher, dir) {
        Ok(0) => {
            tracing::error!(error = %cause, dir = %dir.display(), "the store is unreachable and no snapshot was persisted; not ready until the store answers");
        }
        Ok(deployments) => {
            tracing::warn!(error = %cause, deployments, dir = %dir.display(), "the store is unreachable; serving the snapshots persisted before until it answers");
        }
        Err(err) => {
            tracing::error!(error = %crate::error::chain(&err), dir = %dir.display(), "the store is unreachable and the persisted snapshots cannot be read; not ready until the store answers");
        }
    }
}

/// The spool of event batches, with a state directory.
pub(crate) fn spool(config: &ServerConfig) -> Result<Option<Spool>> {
    let Some(dir) = &config.state_dir else {
        return Ok(None);
    };
    let options = SpoolOptions {
        dir: dir.join(SPOOL),
        max_bytes: config.spool_max_bytes,
    };
    Spool::open(options)
        .map(Some)
        .map_err(|e| Error::Internal(Box::new(e)))
}
