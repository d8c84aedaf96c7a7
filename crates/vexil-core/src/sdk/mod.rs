//! What the SDK-facing API serves, without HTTP: per-deployment snapshots built and published
//! after every change ([`Publisher`], [`Snapshot`]), remote evaluation with server-side
//! enrichment, OFREP's mapping of contexts, reasons and ETags ([`ofrep`]), and the exposures
//! and assignments SDKs report ([`Tracker`]).
//!
//! The HTTP server reads only snapshots on its SDK routes; the database is read when a snapshot
//! is built and written when exposures are stored.

mod memory;
pub mod ofrep;
mod publisher;
mod snapshot;
mod tracking;

pub use memory::{CohortData, IdKind, UserProperties, USER_GROUP_TYPE};
pub use publisher::{Publisher, PublisherOptions, SnapshotSink};
pub use snapshot::{
    referenced_cohort_ids, FlagInfo, Outcome, ProjectData, RemoteAnswer, RemoteOptions, Snapshot,
    SnapshotInput, Tracked,
};
pub use tracking::{
    Batch, IngestError, IngestReport, Source, Tracker, ASSIGNMENT_DEDUP_MS, INSERT_ID_WINDOW_MS,
};

use std::sync::Arc;

use crate::error::{Error, Result};

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
