//! Runs the conformance suite on the SQLite backend, one test per case, each on a fresh
//! database file in the system's temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use vexil_store::{SqliteStore, Store};

/// A database file removed (with its WAL and shared-memory files) when the test ends, even
/// when it panics.
struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> TempDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let file = format!(
            "vexil-store-{name}-{}-{}-{nanos}.db",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        TempDb(std::env::temp_dir().join(file))
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            // Best effort: a leftover temp file is harmless.
            let _ = std::fs::remove_file(path);
        }
    }
}

fn run(name: &str, case: fn(&dyn Store)) {
    let db = TempDb::new(name);
    let store = SqliteStore::open(&db.0).unwrap();
    assert_eq!(store.backend(), "sqlite");
    case(&store);
    drop(store);
}

vexil_store::conformance_tests!(run);

#[test]
fn reopening_keeps_data_and_schema() {
    let db = TempDb::new("reopen");
    let store = SqliteStore::open(&db.0).unwrap();
    vexil_store::write(&store, |tx| {
        tx.insert_project(&vexil_store::ProjectRow {
            key: "p".into(),
            name: "P".into(),
            api_key: "project-p".into(),
            doc: "{}".into(),
            version: 1,
            created_at: 1,
            updated_at: 1,
        })
    })
    .unwrap();
    drop(store);
    let store = SqliteStore::open(&db.0).unwrap();
    let projects = vexil_store::read(&store, |tx| tx.list_projects()).unwrap();
    assert_eq!(projects.len(), 1);
}

#[test]
fn open_creates_missing_parent_directories() {
    let db = TempDb::new("nested");
    let dir = db.0.with_extension("d");
    let path = dir.join("sub").join("vexil.db");
    let store = SqliteStore::open(&path).unwrap();
    drop(store);
    assert!(path.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_all_passes() {
    let dbs = std::sync::Mutex::new(Vec::new());
    vexil_store::conformance::run_all(&|| {
        let db = TempDb::new("run-all");
        let store = SqliteStore::open(&db.0).unwrap();
        dbs.lock().unwrap().push(db);
        Box::new(store)
    });
}
