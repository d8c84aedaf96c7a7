//! The conformance suite every [`Store`] backend must pass.
//!
//! Each case is a plain function taking an **empty** store (fresh database or schema) and
//! panicking with a message on the first violation of the [`Store`]/[`Tx`](crate::Tx) contract.
//! [`CASES`] lists them all; [`run_all`] runs them in sequence on fresh stores, and
//! [`conformance_tests!`](crate::conformance_tests) generates one `#[test]` per case so a
//! backend's integration tests run them in parallel:
//!
//! ```no_run
//! use vexil_store::{SqliteStore, Store};
//!
//! fn run(name: &str, case: fn(&dyn Store)) {
//!     let path = std::env::temp_dir().join(format!("conformance-{name}.db"));
//!     let store = SqliteStore::open(&path).unwrap();
//!     case(&store);
//! }
//!
//! vexil_store::conformance_tests!(run);
//! # fn main() {}
//! ```
//!
//! | case | what it holds the backend to |
//! |------|------------------------------|
//! | `projects_round_trip` | insert/get/by api key/list/update/lock of projects |
//! | `project_conflicts` | `Conflict` on key and api_key, transaction usable afterwards |
//! | `deployments_round_trip` | insert/get/by api key/list/all/update of deployments |
//! | `deployment_conflicts` | `Conflict` on key, label (per project) and api_key (global) |
//! | `flags_round_trip` | insert/get/update/project_flags of flags, list columns kept |
//! | `flag_conflicts` | `Conflict` on (project, key) only |
//! | `version_checks` | `VersionMismatch { current }` and `NotFound` on every update |
//! | `write_rolls_back_on_error` | an `Err` after several writes leaves nothing written |
//! | `helpers_return_closure_errors` | [`crate::write`]/[`crate::read`] return the closure's error |
//! | `read_rejects_writes` | a read transaction refuses writes |
//! | `list_flags_filters` | every filter alone and combined |
//! | `list_flags_tags_match_exactly` | the tag filter matches whole tags only |
//! | `list_flags_sorts` | listings by key, name and last change, paged in that order |
//! | `list_flags_text_search` | case-insensitive on name and key, `%`/`_` literal |
//! | `list_flags_pagination` | offset/limit/total, `limit` 0, order by project then key |
//! | `dependents_follow_prerequisites` | dependents by prerequisite, per project, after updates |
//! | `flag_links_follow_updates` | tag/deployment filters see a flag's updated lists |
//! | `cohorts_round_trip` | 1,000 members in order, update with/without members, delete |
//! | `cohort_member_replace_is_atomic` | a failed transaction keeps the old members |
//! | `audit_lists_every_entity_newest_first` | the audit log: filters, time range and pages over every entity's history |
//! | `history_pages_newest_first` | append/list (before_version, limit)/get, duplicate version |
//! | `api_keys_round_trip` | insert/list/lookup by hash/revoke, conflicts on id and hash |
//! | `concurrent_updates_one_wins` | two writers on one base version: one wins, one mismatches |
//! | `lock_project_serializes_writers` | read-then-update under `lock_project` loses no update |
//! | `settings_insert_once` | a setting keeps its first value |
//! | `settings_put_and_delete` | a setting replaced and deleted |
//! | `sessions_round_trip` | insert/lookup by hash, conflict on hash, delete one, per key, expired |
//! | `sdk_revisions_round_trip` | revisions upserted per deployment, listed per project or all |
//! | `insert_ids_deduplicate_within_window` | an insert id counts once per project per window |
//! | `exposure_counts_by_bucket_and_variant` | counts and distinct users per bucket and variant |
//! | `experiment_properties_round_trip` | upsert, unset, last write wins, `since` |
//! | `webhooks_round_trip` | insert/get/list/update/delete, conflict on id, cascade to outbox and log |
//! | `outbox_claims_and_outcomes` | due rows oldest first, bounded, leased; outcomes; purge |
//! | `delivery_log_keeps_the_newest` | newest first, only the last `keep` per webhook |
//! | `events_round_trip` | product events in bulk, newest first per project and type, purged by time |
//! | `analysis_scans_resume_after_an_id` | the arrival-order scans and watermarks of an analysis refresh |
//! | `documents_round_trip` | insert/get/list (by kind)/update of documents per collection, conflicts, version checks |

mod documents;
mod entities;
mod events;
mod listing;
mod sdk;
mod sessions;
mod transactions;
mod webhooks;

pub use documents::documents_round_trip;
pub use entities::{
    api_keys_round_trip, audit_lists_every_entity_newest_first, cohort_member_replace_is_atomic,
    cohorts_round_trip, deployment_conflicts, deployments_round_trip, flag_conflicts,
    flags_round_trip, history_pages_newest_first, project_conflicts, projects_round_trip,
    version_checks,
};
pub use events::{analysis_scans_resume_after_an_id, events_round_trip};
pub use listing::{
    dependents_follow_prerequisites, flag_links_follow_updates, list_flags_filters,
    list_flags_pagination, list_flags_sorts, list_flags_tags_match_exactly, list_flags_text_search,
};
pub use sdk::{
    experiment_properties_round_trip, exposure_counts_by_bucket_and_variant,
    insert_ids_deduplicate_within_window, sdk_revisions_round_trip, settings_insert_once,
};
pub use sessions::{sessions_round_trip, settings_put_and_delete};
pub use transactions::{
    concurrent_updates_one_wins, helpers_return_closure_errors, lock_project_serializes_writers,
    read_rejects_writes, write_rolls_back_on_error,
};
pub use webhooks::{
    delivery_log_keeps_the_newest, outbox_claims_and_outcomes, webhooks_round_trip,
};

use crate::rows::{ApiKeyRow, CohortRow, DeploymentRow, FlagRow, HistoryRow, ProjectRow};
use crate::{Result, Store, StoreError, Tx};

/// One conformance case: its name and the function that runs it on an empty store.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub name: &'static str,
    pub run: fn(&dyn Store),
}

macro_rules! table {
    ($($case:ident),* $(,)?) => {
        &[$(Case { name: stringify!($case), run: $case }),*]
    };
}

/// Every case, in the order of the table above.
pub const CASES: &[Case] = table![
    projects_round_trip,
    project_conflicts,
    deployments_round_trip,
    deployment_conflicts,
    flags_round_trip,
    flag_conflicts,
    version_checks,
    write_rolls_back_on_error,
    helpers_return_closure_errors,
    read_rejects_writes,
    list_flags_filters,
    list_flags_tags_match_exactly,
    list_flags_sorts,
    list_flags_text_search,
    list_flags_pagination,
    dependents_follow_prerequisites,
    flag_links_follow_updates,
    cohorts_round_trip,
    cohort_member_replace_is_atomic,
    audit_lists_every_entity_newest_first,
    history_pages_newest_first,
    api_keys_round_trip,
    concurrent_updates_one_wins,
    lock_project_serializes_writers,
    settings_insert_once,
    settings_put_and_delete,
    sessions_round_trip,
    sdk_revisions_round_trip,
    insert_ids_deduplicate_within_window,
    exposure_counts_by_bucket_and_variant,
    experiment_properties_round_trip,
    webhooks_round_trip,
    outbox_claims_and_outcomes,
    delivery_log_keeps_the_newest,
    documents_round_trip,
    events_round_trip,
    analysis_scans_resume_after_an_id,
];

/// Runs every case, each on a fresh store from `make`; panics on the first failure.
pub fn run_all(make: &dyn Fn() -> Box<dyn Store>) {
    for case in CASES {
        let store = make();
        (case.run)(store.as_ref());
    }
}

/// Generates one `#[test]` per conformance case, each calling `$run(name, case)`, where `$run`
/// is a `fn(&str, fn(&dyn Store))` that opens a fresh store, runs the case on it and cleans up.
/// A last generated test checks that the list below matches [`CASES`].
#[macro_export]
macro_rules! conformance_tests {
    ($run:path) => {
        $crate::conformance_tests!(@cases $run;
            projects_round_trip,
            project_conflicts,
            deployments_round_trip,
            deployment_conflicts,
            flags_round_trip,
            flag_conflicts,
            version_checks,
            write_rolls_back_on_error,
            helpers_return_closure_errors,
            read_rejects_writes,
            list_flags_filters,
            list_flags_tags_match_exactly,
            list_flags_sorts,
            list_flags_text_search,
            list_flags_pagination,
            dependents_follow_prerequisites,
            flag_links_follow_updates,
            cohorts_round_trip,
            cohort_member_replace_is_atomic,
            audit_lists_every_entity_newest_first,
    history_pages_newest_first,
            api_keys_round_trip,
            concurrent_updates_one_wins,
            lock_project_serializes_writers,
            settings_insert_once,
            settings_put_and_delete,
            sessions_round_trip,
            sdk_revisions_round_trip,
            insert_ids_deduplicate_within_window,
            exposure_counts_by_bucket_and_variant,
            experiment_properties_round_trip,
            webhooks_round_trip,
            outbox_claims_and_outcomes,
            delivery_log_keeps_the_newest,
            documents_round_trip,
            events_round_trip,
                    analysis_scans_resume_after_an_id,
        );
    };
    (@cases $run:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $run(stringify!($case), $crate::conformance::$case);
            }
        )*

        #[test]
        fn conformance_tests_cover_every_case() {
            let generated: &[&str] = &[$(stringify!($case)),*];
            let cases: Vec<&str> = $crate::conformance::CASES.iter().map(|c| c.name).collect();
            assert_eq!(generated, cases.as_slice());
        }
    };
}

// -- helpers shared by the cases ---------------------------------------------------------------

/// The value of `result`, or a panic naming the step that failed.
fn ok<T>(result: Result<T>, step: &str) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{step}: unexpected error {err:?}"),
    }
}

/// Runs `f` in a write transaction that must commit.
fn write_ok<R>(store: &dyn Store, step: &str, f: impl FnOnce(&mut dyn Tx) -> Result<R>) -> R {
    ok(crate::write(store, f), step)
}

/// Runs `f` in a read transaction that must succeed.
fn read_ok<R>(store: &dyn Store, step: &str, f: impl FnOnce(&mut dyn Tx) -> Result<R>) -> R {
    ok(crate::read(store, f), step)
}

/// Panics unless `result` is a `Conflict` on `entity` and `field`.
fn assert_conflict<T: std::fmt::Debug>(result: Result<T>, entity: &str, field: &str, step: &str) {
    match result {
        Err(StoreError::Conflict {
            entity: e,
            field: f,
            ..
        }) if e == entity && f == field => {}
        other => panic!("{step}: expected a conflict on {entity}.{field}, got {other:?}"),
    }
}

/// Panics unless `result` is a `VersionMismatch` reporting `current`.
fn assert_mismatch<T: std::fmt::Debug>(result: Result<T>, current: i64, step: &str) {
    match result {
        Err(StoreError::VersionMismatch { current: c, .. }) if c == current => {}
        other => panic!("{step}: expected a version mismatch at {current}, got {other:?}"),
    }
}

/// Panics unless `result` is `NotFound`.
fn assert_not_found<T: std::fmt::Debug>(result: Result<T>, step: &str) {
    match result {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("{step}: expected not found, got {other:?}"),
    }
}

const T0: i64 = 1_700_000_000_000;

fn project(key: &str) -> ProjectRow {
    ProjectRow {
        key: key.to_owned(),
        name: format!("Project {key}"),
        api_key: format!("project-{key}"),
        doc: format!(r#"{{"key":"{key}"}}"#),
        version: 1,
        created_at: T0,
        updated_at: T0,
    }
}

fn deployment(project: &str, key: &str) -> DeploymentRow {
    DeploymentRow {
        project: project.to_owned(),
        key: key.to_owned(),
        label: format!("{key} label"),
        kind: "server".to_owned(),
        api_key: format!("server-{project}-{key}"),
        archived: false,
        doc: format!(r#"{{"key":"{key}"}}"#),
        version: 1,
        created_at: T0,
        updated_at: T0,
    }
}

fn flag(project: &str, key: &str) -> FlagRow {
    FlagRow {
        project: project.to_owned(),
        key: key.to_owned(),
        name: format!("Flag {key}"),
        kind: "release".to_owned(),
        state: "inactive".to_owned(),
        mode: "remote".to_owned(),
        archived: false,
        tags: Vec::new(),
        deployments: Vec::new(),
        prerequisites: Vec::new(),
        doc: format!(r#"{{"key":"{key}","variants":[]}}"#),
        version: 1,
        created_at: T0,
        updated_at: T0,
    }
}

fn cohort(project: &str, id: &str, size: i64) -> CohortRow {
    CohortRow {
        project: project.to_owned(),
        id: id.to_owned(),
        name: format!("Cohort {id}"),
        group_type: "User".to_owned(),
        size,
        doc: format!(r#"{{"id":"{id}"}}"#),
        version: 1,
        created_at: T0,
        updated_at: T0,
    }
}

fn history(project: &str, entity: &str, key: &str, version: i64) -> HistoryRow {
    HistoryRow {
        project: project.to_owned(),
        entity: entity.to_owned(),
        key: key.to_owned(),
        version,
        actor: "admin".to_owned(),
        at: T0 + version,
        action: if version == 1 { "create" } else { "update" }.to_owned(),
        summary: format!("{entity} {key} at version {version}"),
        doc: format!(r#"{{"key":"{key}","version":{version}}}"#),
        comment: format!("why {version}"),
        role: "admin".to_owned(),
        changes: String::new(),
    }
}

fn api_key(id: &str, created_at: i64) -> ApiKeyRow {
    ApiKeyRow {
        id: id.to_owned(),
        name: format!("key {id}"),
        hash: format!("{id:0>64}"),
        prefix: format!("vx_{id}"),
        role: "admin".to_owned(),
        created_at,
        revoked_at: None,
    }
}

/// Inserts projects with these keys.
fn seed_projects(store: &dyn Store, keys: &[&str]) {
    write_ok(store, "seed projects", |tx| {
        keys.iter()
            .try_for_each(|key| tx.insert_project(&project(key)))
    });
}

/// The keys of `rows`, for compact assertions.
fn keys(rows: &[FlagRow]) -> Vec<String> {
    rows.iter()
        .map(|r| format!("{}/{}", r.project, r.key))
        .collect()
}
