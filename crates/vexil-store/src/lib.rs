//! Vexil's storage: the [`Store`] trait and its two backends, SQLite (embedded, the default) and
//! PostgreSQL (for several Vexil nodes sharing one database).
//!
//! The store knows rows, not the domain: each entity is a JSON document (`doc`, owned and
//! validated by `vexil-core`) plus the columns the store must index, filter or check (keys,
//! state, tags, versions). Every write happens inside [`Store::write`], one transaction that
//! commits only when the closure returns `Ok`; a crash or an error mid-write leaves the previous
//! state intact. Optimistic concurrency is enforced here: every update names the version it was
//! based on and a stale one fails with [`StoreError::VersionMismatch`].
//!
//! The drivers are synchronous (rusqlite, postgres); async callers run store work on a blocking
//! thread pool. SQL lives only in this crate.
//!
//! [`SqliteStore::open`] and [`PostgresStore::connect`] open the backends and migrate their
//! schema. Both run the same queries (`sql`), so they behave alike; [`conformance`] is the suite
//! of contract checks every backend must pass, run by this crate's integration tests.

pub mod conformance;
mod error;
mod migrations;
mod postgres;
mod rows;
mod sql;
mod sqlite;

pub use self::postgres::PostgresStore;
pub use self::sqlite::SqliteStore;
pub use error::StoreError;
pub use rows::{
    ApiKeyRow, AuditCursor, AuditQuery, CohortRow, DeliveryRow, DeploymentRow, DocumentRow,
    EventColumns, EventFact, EventRow, ExperimentPropertyRow, ExposureCount, ExposureFact,
    ExposureQuery, ExposureRow, FlagFilter, FlagRow, FlagSort, HistoryRow, OutboxRow, Page,
    ProjectRow, SdkRevisionRow, SessionRow, WebhookRow,
};

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A storage backend. Implementations are cheap to share (`Arc<dyn Store>`).
pub trait Store: Send + Sync {
    /// Runs `f` in one read-write transaction: commits when `f` returns `Ok`, rolls back
    /// otherwise and returns `f`'s error. Write transactions are serialized per project by
    /// [`Tx::lock_project`] (and globally on SQLite, which has a single writer).
    fn write(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()>;

    /// Runs `f` in a read-only transaction that sees one consistent state.
    fn read(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()>;

    /// A short name for logs: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// A feed of the projects whose SDK revisions other processes change, so that a node
    /// follows them at once instead of at its next poll. `None` when the backend has no such
    /// channel (SQLite: a node polls). A feed may be lost (a dropped connection); callers then
    /// poll and ask for a new one.
    fn change_feed(&self) -> Result<Option<Box<dyn ChangeFeed>>> {
        Ok(None)
    }
}

/// The notification channel of SDK revision changes (PostgreSQL `LISTEN`/`NOTIFY`).
pub const CHANGE_CHANNEL: &str = "vexil_revisions";

/// Announcements of changed SDK revisions ([`Store::change_feed`]).
pub trait ChangeFeed: Send {
    /// Waits up to `timeout` for announcements and returns the projects announced (empty when
    /// none came). An error means the feed is lost.
    fn wait(&mut self, timeout: std::time::Duration) -> Result<Vec<String>>;
}

/// Runs `f` in a write transaction and returns its value; `f` may fail with any error that a
/// [`StoreError`] converts into, and that error is returned unchanged after the rollback.
pub fn write<R, E: From<StoreError>>(
    store: &dyn Store,
    f: impl FnOnce(&mut dyn Tx) -> Result<R, E>,
) -> Result<R, E> {
    run(store, true, f)
}

/// Runs `f` in a read transaction and returns its value (see [`write`]).
pub fn read<R, E: From<StoreError>>(
    store: &dyn Store,
    f: impl FnOnce(&mut dyn Tx) -> Result<R, E>,
) -> Result<R, E> {
    run(store, false, f)
}

fn run<R, E: From<StoreError>>(
    store: &dyn Store,
    writing: bool,
    f: impl FnOnce(&mut dyn Tx) -> Result<R, E>,
) -> Result<R, E> {
    let mut f = Some(f);
    let mut out: Option<Result<R, E>> = None;
    let mut body = |tx: &mut dyn Tx| -> Result<()> {
        let Some(f) = f.take() else {
            return Err(StoreError::Aborted);
        };
        let result = f(tx);
        let failed = result.is_err();
        out = Some(result);
        if failed {
            Err(StoreError::Aborted)
        } else {
            Ok(())
        }
    };
    let status = if writing {
        store.write(&mut body)
    } else {
        store.read(&mut body)
    };
    match (status, out) {
        (Ok(()), Some(result)) => result,
        (Err(StoreError::Aborted), Some(Err(err))) => Err(err),
        (Err(err), _) => Err(err.into()),
        (Ok(()), None) => Err(StoreError::Aborted.into()),
    }
}

/// The operations available inside a transaction. Times are Unix milliseconds; versions start
/// at 1. `insert_*` fails with [`StoreError::Conflict`] when the key exists; `update_*` writes
/// `row` (whose `version` is the new one) only if the stored version equals
/// `expected_version`, and fails with [`StoreError::NotFound`] or
/// [`StoreError::VersionMismatch`] otherwise.
pub trait Tx {
    // -- projects ---------------------------------------------------------------------------
    /// Serializes write transactions on one project (PostgreSQL: `SELECT … FOR UPDATE`) and
    /// returns the project, or `None` when it does not exist.
    fn lock_project(&mut self, project: &str) -> Result<Option<ProjectRow>>;
    fn get_project(&mut self, project: &str) -> Result<Option<ProjectRow>>;
    /// The project whose `api_key` is `api_key`.
    fn project_by_api_key(&mut self, api_key: &str) -> Result<Option<ProjectRow>>;
    fn list_projects(&mut self) -> Result<Vec<ProjectRow>>;
    fn insert_project(&mut self, row: &ProjectRow) -> Result<()>;
    fn update_project(&mut self, row: &ProjectRow, expected_version: i64) -> Result<()>;

    // -- deployments ------------------------------------------------------------------------
    fn get_deployment(&mut self, project: &str, key: &str) -> Result<Option<DeploymentRow>>;
    /// The deployment whose SDK key is `api_key`, in any project.
    fn deployment_by_api_key(&mut self, api_key: &str) -> Result<Option<DeploymentRow>>;
    /// Deployments of a project in key order (archived ones included).
    fn list_deployments(&mut self, project: &str) -> Result<Vec<DeploymentRow>>;
    /// Every deployment of every project, for building SDK snapshots at start-up.
    fn all_deployments(&mut self) -> Result<Vec<DeploymentRow>>;
    fn insert_deployment(&mut self, row: &DeploymentRow) -> Result<()>;
    fn update_deployment(&mut self, row: &DeploymentRow, expected_version: i64) -> Result<()>;

    // -- flags ------------------------------------------------------------------------------
    fn get_flag(&mut self, project: &str, key: &str) -> Result<Option<FlagRow>>;
    /// One page of flags matching `filter`, ordered by project then key, with the total count
    /// of matching flags.
    fn list_flags(&mut self, filter: &FlagFilter) -> Result<Page<FlagRow>>;
    /// Every flag of a project (archived ones included), in key order.
    fn project_flags(&mut self, project: &str) -> Result<Vec<FlagRow>>;
    /// The flags of `project` whose `prerequisites` contain `key` (archived ones included), in
    /// key order.
    fn dependents(&mut self, project: &str, key: &str) -> Result<Vec<FlagRow>>;
    fn insert_flag(&mut self, row: &FlagRow) -> Result<()>;
    fn update_flag(&mut self, row: &FlagRow, expected_version: i64) -> Result<()>;

    // -- documents (groups, metrics) ---------------------------------------------------------
    fn get_document(
        &mut self,
        project: &str,
        collection: &str,
        key: &str,
    ) -> Result<Option<DocumentRow>>;
    /// The documents of a project's collection in key order (archived ones included), of one
    /// kind when given.
    fn list_documents(
        &mut self,
        project: &str,
        collection: &str,
        kind: Option<&str>,
    ) -> Result<Vec<DocumentRow>>;
    fn insert_document(&mut self, row: &DocumentRow) -> Result<()>;
    fn update_document(&mut self, row: &DocumentRow, expected_version: i64) -> Result<()>;

    // -- cohorts ----------------------------------------------------------------------------
    fn get_cohort(&mut self, project: &str, id: &str) -> Result<Option<CohortRow>>;
    fn list_cohorts(&mut self, project: &str) -> Result<Vec<CohortRow>>;
    /// Inserts a cohort with its members.
    fn insert_cohort(&mut self, row: &CohortRow, members: &[String]) -> Result<()>;
    /// Updates a cohort's row; when `members` is `Some`, replaces the whole member list.
    fn update_cohort(
        &mut self,
        row: &CohortRow,
        members: Option<&[String]>,
        expected_version: i64,
    ) -> Result<()>;
    /// Deletes a cohort and its members; `NotFound` when absent.
    fn delete_cohort(&mut self, project: &str, id: &str) -> Result<()>;
    /// The members of a cohort, in the order they were stored; `NotFound` when the cohort does
    /// not exist.
    fn cohort_members(&mut self, project: &str, id: &str) -> Result<Vec<String>>;

    // -- history ----------------------------------------------------------------------------
    /// Appends an immutable history entry; `Conflict` if (project, entity, key, version) exists.
    fn append_history(&mut self, row: &HistoryRow) -> Result<()>;
    /// The history of one entity, newest first, at most `limit` entries before `before_version`
    /// (exclusive) when given.
    fn list_history(
        &mut self,
        project: &str,
        entity: &str,
        key: &str,
        before_version: Option<i64>,
        limit: u32,
    ) -> Result<Vec<HistoryRow>>;
    /// The audit log: history entries of every entity matching `q`, newest first.
    fn audit(&mut self, q: &AuditQuery) -> Result<Vec<HistoryRow>>;
    /// One history entry.
    fn get_history(
        &mut self,
        project: &str,
        entity: &str,
        key: &str,
        version: i64,
    ) -> Result<Option<HistoryRow>>;

    // -- management API keys ----------------------------------------------------------------
    fn insert_api_key(&mut self, row: &ApiKeyRow) -> Result<()>;
    /// Every key, revoked ones included, oldest first.
    fn list_api_keys(&mut self) -> Result<Vec<ApiKeyRow>>;
    fn api_key_by_hash(&mut self, hash: &str) -> Result<Option<ApiKeyRow>>;
    /// Sets `revoked_at` on a key; `NotFound` when no key has this id.
    fn revoke_api_key(&mut self, id: &str, at: i64) -> Result<()>;

    // -- console sessions -------------------------------------------------------------------
    /// Stores a new session; `Conflict` (field `hash`) when one has this hash.
    fn insert_session(&mut self, row: &SessionRow) -> Result<()>;
    /// The session with this token hash, expired or not.
    fn session_by_hash(&mut self, hash: &str) -> Result<Option<SessionRow>>;
    /// Deletes one session; returns whether it existed.
    fn delete_session(&mut self, hash: &str) -> Result<bool>;
    /// Deletes every session of a management key; returns how many.
    fn delete_key_sessions(&mut self, key_id: &str) -> Result<u64>;
    /// Deletes the sessions that expire at or before `now`; returns how many.
    fn purge_sessions(&mut self, now: i64) -> Result<u64>;

    // -- webhooks ---------------------------------------------------------------------------
    /// Stores a new subscription; `Conflict` (field `id`) when the project has one with its id.
    fn insert_webhook(&mut self, row: &WebhookRow) -> Result<()>;
    fn get_webhook(&mut self, project: &str, id: &str) -> Result<Option<WebhookRow>>;
    /// A project's subscriptions, in id order.
    fn list_webhooks(&mut self, project: &str) -> Result<Vec<WebhookRow>>;
    fn update_webhook(&mut self, row: &WebhookRow, expected_version: i64) -> Result<()>;
    /// Deletes a subscription with its outbox rows and delivery log; `NotFound` when absent.
    fn delete_webhook(&mut self, project: &str, id: &str) -> Result<()>;
    /// Queues an event for one webhook; `Conflict` (field `id`) when the id exists.
    fn insert_outbox(&mut self, row: &OutboxRow) -> Result<()>;
    /// Claims at most `limit` undelivered, unfailed rows due at `now` (oldest due first) by
    /// moving their `next_attempt_at` to `lease_until`, and returns them as claimed. A row
    /// another transaction claimed meanwhile is skipped, so that two workers (or nodes) never
    /// hold the same row; a worker that dies loses its claim when the lease lapses.
    fn claim_outbox(&mut self, now: i64, lease_until: i64, limit: u32) -> Result<Vec<OutboxRow>>;
    /// Writes a row's `attempts`, `next_attempt_at`, `delivered_at` and `failed_at`;
    /// `NotFound` when it is gone (its webhook was deleted).
    fn update_outbox(&mut self, row: &OutboxRow) -> Result<()>;
    fn get_outbox(&mut self, id: &str) -> Result<Option<OutboxRow>>;
    /// Deletes delivered and failed rows created before `before`; returns how many.
    fn purge_outbox(&mut self, before: i64) -> Result<u64>;
    /// Appends an attempt to a webhook's log and keeps only its newest `keep` entries.
    fn insert_delivery(&mut self, row: &DeliveryRow, keep: u32) -> Result<()>;
    /// A webhook's newest `limit` attempts, newest first.
    fn list_deliveries(
        &mut self,
        project: &str,
        webhook: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>>;

    // -- server settings --------------------------------------------------------------------
    fn get_setting(&mut self, key: &str) -> Result<Option<String>>;
    /// Stores a setting unless one with this key exists; returns whether it stored it.
    fn insert_setting(&mut self, key: &str, value: &str) -> Result<bool>;
    /// Stores a setting, replacing the value of one with this key.
    fn put_setting(&mut self, key: &str, value: &str) -> Result<()>;
    /// Deletes a setting; returns whether it existed.
    fn delete_setting(&mut self, key: &str) -> Result<bool>;

    // -- SDK snapshot revisions -------------------------------------------------------------
    /// The revisions of the deployments of `project` (of every project when `None`), ordered
    /// by project then deployment.
    fn sdk_revisions(&mut self, project: Option<&str>) -> Result<Vec<SdkRevisionRow>>;
    /// Inserts or replaces the revision of one deployment.
    fn put_sdk_revision(&mut self, row: &SdkRevisionRow) -> Result<()>;

    // -- exposures and assignments ----------------------------------------------------------
    /// Records that an event with `insert_id` arrived at `at`, unless one with the same id
    /// arrived in the project at or after `window_start`. Returns true when the event is new
    /// (and should be stored), false for a duplicate.
    fn claim_insert_id(
        &mut self,
        project: &str,
        insert_id: &str,
        at: i64,
        window_start: i64,
    ) -> Result<bool>;
    /// Forgets insert ids that arrived before `before`; returns how many.
    fn purge_insert_ids(&mut self, before: i64) -> Result<u64>;
    fn insert_exposures(&mut self, rows: &[ExposureRow]) -> Result<()>;
    /// Stores product events (the events metrics count).
    fn insert_events(&mut self, rows: &[EventRow]) -> Result<()>;
    /// Deletes the events whose time is before `before`; returns how many.
    fn purge_events(&mut self, before: i64) -> Result<u64>;
    /// The highest row ids of exposures and of events so far (0 when none): what a read of
    /// everything reads up to, and where a later `*_since` read resumes.
    fn last_ids(&mut self) -> Result<(i64, i64)>;
    /// The newest `limit` product events of a project, newest first, without their event
    /// properties (who has been active lately, with their user properties).
    fn recent_events(&mut self, project: &str, limit: u32) -> Result<Vec<EventFact>>;
    /// Up to `limit` records of `flag_key` of the given `kinds` (`client_exposure`,
    /// `assignment`, …) with a real variant, an id above `after.0` and a time at or after
    /// `after.1`, in id (arrival) order: analysis reads millions a page at a time.
    fn exposures_since(
        &mut self,
        project: &str,
        flag_key: &str,
        kinds: &[&str],
        after: (i64, i64),
        limit: u32,
    ) -> Result<Vec<ExposureFact>>;
    /// Up to `limit` product events of a project of the given types (every type when empty)
    /// with an id above `after.0` and a time at or after `after.1`, in id (arrival) order,
    /// with the optional `columns` asked for.
    fn events_since(
        &mut self,
        project: &str,
        event_types: &[&str],
        after: (i64, i64),
        columns: EventColumns,
        limit: u32,
    ) -> Result<Vec<EventFact>>;
    /// The newest `limit` events of a type in a project, newest first.
    fn latest_events(
        &mut self,
        project: &str,
        event_type: &str,
        limit: u32,
    ) -> Result<Vec<EventRow>>;
    /// Counts per time bucket and variant, ordered by bucket then variant (`None` first).
    fn exposure_counts(&mut self, query: &ExposureQuery) -> Result<Vec<ExposureCount>>;

    // -- `[Experiment]` user properties -----------------------------------------------------
    /// Inserts or replaces each user's property for each flag.
    fn put_experiment_properties(&mut self, rows: &[ExperimentPropertyRow]) -> Result<()>;
    /// Properties written at or after `since`, of every project, ordered by `updated_at`.
    /// Unset properties are included (with `variant: None`) so that readers can forget them.
    fn experiment_properties(&mut self, since: i64) -> Result<Vec<ExperimentPropertyRow>>;
    /// The set (not unset) properties of one flag in one project.
    fn flag_experiment_properties(
        &mut self,
        project: &str,
        flag_key: &str,
    ) -> Result<Vec<ExperimentPropertyRow>>;
    /// The set properties of one user (`id_kind` `user`) or device (`device`), every flag, by
    /// flag key: a key lookup, for evaluating one user as serving would.
    fn user_experiment_properties(
        &mut self,
        project: &str,
        id_kind: &str,
        id: &str,
    ) -> Result<Vec<ExperimentPropertyRow>>;
}
