//! The store's error type: variants a caller can act on, driver errors kept as sources.

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row to update or delete does not exist.
    #[error("{entity} {key:?} not found")]
    NotFound { entity: &'static str, key: String },
    /// An insert hit an existing key or a unique column (`field` names it).
    #[error("{entity} {key:?} already exists ({field} is taken)")]
    Conflict {
        entity: &'static str,
        key: String,
        field: &'static str,
    },
    /// An update was based on a version that is no longer current.
    #[error("{entity} {key:?} was changed: it is at version {current}")]
    VersionMismatch {
        entity: &'static str,
        key: String,
        current: i64,
    },
    /// The transaction's closure failed; its own error is returned by [`crate::write`].
    #[error("transaction aborted")]
    Aborted,
    /// Stored data that cannot be read back (a corrupt row).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The database driver failed.
    #[error("database error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database cannot be reached now, or is too busy to answer in time (no connection
    /// within the pool's wait, a lost connection, SQLite's write lock held past the busy
    /// timeout). Nothing was written; the same call may succeed later.
    #[error("the database is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}
