//! What the SDK-facing API serves, without HTTP: per-deployment snapshots built and published
//! after every change ([`Publisher`], [`Snapshot`]), remote evaluation with server-side
//! enrichment (written once in [`enrich`], which QA uses too), OFREP's mapping of contexts,
//! reasons and ETags ([`ofrep`]), and the exposures and assignments SDKs report
//! ([`Tracker`]). With a state directory, a node also keeps what
//! it needs to ride out an outage of the store on local disk: the event batches the store could
//! not take ([`spool`], stored later by the tracker's replay thread) and the last snapshots it published
//! ([`persist`]), from which it can start while the store is unreachable.
//!
//! The HTTP server reads only snapshots on its SDK routes; the database is read when a snapshot
//! is built and written when exposures are stored.

mod counts;
pub mod enrich;
mod flags_body;
pub mod ingest;
mod memory;
pub mod ofrep;
pub mod persist;
mod publisher;
mod replay;
mod snapshot;
pub mod spool;
mod tracking;
pub use tracking::DEFAULT_EVENT_RETENTION_DAYS;

pub use counts::{DeploymentCounts, ServedCounts};
pub use enrich::referenced_cohort_ids;
pub use flags_body::FlagsBody;
pub use memory::{CohortData, IdKind, UserProperties, USER_GROUP_TYPE};
pub use persist::{bundle, unbundle, Bundle, PersistError, Persister};
pub use publisher::{PublishStats, Publisher, PublisherOptions, SnapshotSink, SnapshotSource};
pub use snapshot::{
    group_kind, FlagInfo, Outcome, OutcomeLabels, ProjectData, RemoteAnswer, RemoteOptions,
    Snapshot, SnapshotInput, Tracked,
};
pub use spool::{Spool, SpoolError, SpoolOptions, SpoolStats};
pub use tracking::{
    remember_properties, remote_records, Accepted, AssignmentDedup, IngestError, IngestReport,
    Source, Tracker, ASSIGNMENT_DEDUP_MS, INSERT_ID_WINDOW_MS,
};

use std::sync::Arc;

use crate::error::{Error, Result};

/// Lets `Bytes` share a snapshot's text (a body, a cohort download) without copying it.
pub struct ArcStr(pub Arc<str>);

impl AsRef<[u8]> for ArcStr {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// The setting that holds the server secret.
const SECRET_SETTING: &str = "server_secret";

/// The secret this installation signs OFREP stream tokens with: created once, stored, and the
/// same for every node of a shared database. Blocking.
pub fn server_secret(store: &Arc<dyn vexil_store::Store>) -> Result<String> {
    let fresh = crate::keys::random_base62(43)?;
    vexil_store::write(&**store, |tx| {
        tx.insert_setting(SECRET_SETTING, &fresh)?;
        tx.get_setting(SECRET_SETTING)?
            .ok_or_else(|| Error::Internal("the server secret was not stored".into()))
    })
}
