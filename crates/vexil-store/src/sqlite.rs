//! The SQLite backend: one database file, the default for a single Vexil node.
//!
//! Connections come from an r2d2 pool; each one is set up with `synchronous=NORMAL`,
//! `foreign_keys=ON` and a busy timeout. The file is in WAL mode, so readers never block the
//! writer nor each other. Write transactions start with `BEGIN IMMEDIATE`: they take the
//! database's single write lock up front, so concurrent writers queue on the busy timeout
//! instead of failing with `SQLITE_BUSY` when a read transaction tries to become a write one.

use std::path::Path;
use std::time::Duration;

use r2d2_sqlite::rusqlite::types::{ToSqlOutput, ValueRef};
use r2d2_sqlite::rusqlite::{self, ffi, Connection, OpenFlags, ToSql, TransactionBehavior};
use r2d2_sqlite::SqliteConnectionManager;

use crate::migrations::{self, MIGRATIONS};
use crate::sql::{conflict_field, Conn, Dialect, SqlTx, Val};
use crate::{Result, Store, StoreError, Tx};

/// How long a statement waits for another connection's lock before failing. Write transactions
/// are short, so five seconds only runs out when something is badly wrong.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in the pool: readers run in parallel under WAL, writers queue.
const POOL_SIZE: u32 = 8;

/// A [`Store`] in one SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: r2d2::Pool<SqliteConnectionManager>,
}

/// A driver error as a store error: the write lock held past the busy timeout, or no pooled
/// connection in time, is `Unavailable` (worth a retry); anything else is `Backend`.
fn backend<E: std::error::Error + Send + Sync + 'static>(err: E) -> StoreError {
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
    let busy = boxed
        .downcast_ref::<rusqlite::Error>()
        .and_then(rusqlite::Error::sqlite_error_code)
        .is_some_and(|c| {
            matches!(
                c,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            )
        });
    if busy || boxed.is::<r2d2::Error>() {
        StoreError::Unavailable(boxed)
    } else {
        StoreError::Backend(boxed)
    }
}

/// The per-connection settings (journal mode is a property of the file, set once in `open`).
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    // `list_flags` builds its SQL from the filter; keep the few shapes it uses prepared.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

impl SqliteStore {
    /// Opens the database at `path`, creating the file (and its parent directory) when missing,
    /// and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(backend)?;
        }
        let mut conn = Connection::open(path).map_err(backend)?;
        configure(&conn).map_err(backend)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(backend)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "{} cannot use WAL journal mode (got {mode})",
                path.display()
            )));
        }
        migrate(&mut conn)?;
        drop(conn);

        // The pool never creates the file: `open` did. A connection opened after the file was
        // removed fails instead of starting an empty database (r2d2 opens connections on a
        // background thread, possibly after the store is dropped).
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let manager = SqliteConnectionManager::file(path)
            .with_flags(flags)
            .with_init(|conn| configure(conn));
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .connection_timeout(BUSY_TIMEOUT)
            .min_idle(Some(1))
            .build(manager)
            .map_err(backend)?;
        Ok(SqliteStore { pool })
    }

    fn run(&self, writing: bool, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        let mut conn = self.pool.get().map_err(backend)?;
        let behavior = if writing {
            TransactionBehavior::Immediate
        } else {
            TransactionBehavior::Deferred
        };
        let tx = conn.transaction_with_behavior(behavior).map_err(backend)?;
        let result = f(&mut SqlTx::new(&mut SqliteConn { conn: &tx }, writing));
        match result {
            Ok(()) => tx.commit().map_err(backend),
            // Dropping the transaction rolls it back; the closure's error is the one to report.
            Err(err) => {
                drop(tx);
                Err(err)
            }
        }
    }
}

impl Store for SqliteStore {
    fn write(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        self.run(true, f)
    }

    fn read(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        self.run(false, f)
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

/// Applies the missing migrations in one immediate transaction, so two processes opening the
/// same new file do not both create the schema.
fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_to(conn, migrations::latest())
}

/// Applies the missing migrations up to version `target` (tests start from older schemas).
fn migrate_to(conn: &mut Connection, target: i64) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    tx.execute_batch(migrations::CREATE_VERSIONS_TABLE)
        .map_err(backend)?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM vexil_schema_migrations",
            [],
            |row| row.get(0),
        )
        .map_err(backend)?;
    if current > migrations::latest() {
        return Err(StoreError::Corrupt(format!(
            "the database schema is at version {current}, newer than this build ({})",
            migrations::latest()
        )));
    }
    let missing = MIGRATIONS
        .iter()
        .filter(|m| m.version > current && m.version <= target);
    for migration in missing {
        tx.execute_batch(migration.sqlite).map_err(backend)?;
        if let Some(data) = migration.data {
            data(&mut SqliteConn { conn: &tx })?;
        }
        tx.execute(
            "INSERT INTO vexil_schema_migrations (version, applied_at) \
             VALUES (?1, CAST(strftime('%s', 'now') AS INTEGER) * 1000)",
            [migration.version],
        )
        .map_err(backend)?;
    }
    tx.commit().map_err(backend)
}

impl ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Val::Null => ValueRef::Null,
            Val::Int(i) => ValueRef::Integer(*i),
            Val::Bool(b) => ValueRef::Integer(i64::from(*b)),
            Val::Text(s) => ValueRef::Text(s.as_bytes()),
            Val::Bytes(b) => ValueRef::Blob(b),
        }))
    }
}

fn val(cell: ValueRef<'_>) -> Result<Val> {
    Ok(match cell {
        ValueRef::Null => Val::Null,
        ValueRef::Integer(i) => Val::Int(i),
        ValueRef::Text(t) => Val::Text(
            std::str::from_utf8(t)
                .map_err(|_| StoreError::Corrupt("a text column is not UTF-8".to_owned()))?
                .to_owned(),
        ),
        ValueRef::Blob(b) => Val::Bytes(b.to_vec()),
        ValueRef::Real(r) => {
            return Err(StoreError::Corrupt(format!("unexpected real value {r}")));
        }
    })
}

/// A connection inside a transaction (the rusqlite transaction derefs to it).
struct SqliteConn<'a> {
    conn: &'a Connection,
}

impl SqliteConn<'_> {
    /// Prepares `sql` with SQLite's numbered placeholders (`?n`, the same meaning as `$n`;
    /// SQLite would take `$n` as a *named* parameter numbered by first appearance).
    fn prepare(&self, sql: &str) -> Result<rusqlite::CachedStatement<'_>> {
        self.conn
            .prepare_cached(&sql.replace('$', "?"))
            .map_err(backend)
    }
}

impl Conn for SqliteConn<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Val]) -> Result<u64> {
        let mut stmt = self.prepare(sql)?;
        let changed = stmt
            .execute(rusqlite::params_from_iter(params))
            .map_err(backend)?;
        Ok(changed as u64)
    }

    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Vec<Val>>> {
        let mut stmt = self.prepare(sql)?;
        let width = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params))
            .map_err(backend)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(backend)? {
            // Sized up front: analysis reads millions of rows through here.
            let mut cells = Vec::with_capacity(width);
            for i in 0..width {
                cells.push(val(row.get_ref(i).map_err(backend)?)?);
            }
            out.push(cells);
        }
        Ok(out)
    }

    fn execute_unique(
        &mut self,
        sql: &str,
        params: &[Val],
        entity: &'static str,
        key: &str,
    ) -> Result<u64> {
        let mut stmt = self.prepare(sql)?;
        match stmt.execute(rusqlite::params_from_iter(params)) {
            Ok(changed) => Ok(changed as u64),
            // A failed statement is undone on its own; the transaction goes on.
            Err(rusqlite::Error::SqliteFailure(err, Some(message)))
                if err.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                    || err.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                // "UNIQUE constraint failed: deployments.project, deployments.label"
                Err(StoreError::Conflict {
                    entity,
                    key: key.to_owned(),
                    field: conflict_field(&message),
                })
            }
            Err(err) => Err(backend(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    /// A database made by version 2 holds clear project secrets, in the project and in its
    /// history; opening it with this build leaves only their hashes, and drops the ended
    /// sessions of the signed cookies.
    #[test]
    fn version_3_hashes_project_secrets() {
        let path = std::env::temp_dir().join(format!(
            "vexil-store-migrate-v3-{}-{:?}.db",
            std::process::id(),
            std::thread::current().id()
        ));
        let mut conn = Connection::open(&path).unwrap();
        migrate_to(&mut conn, 2).unwrap();
        let doc = r#"{"key":"p","name":"P","api_key":"a","secret_key":"s3cr3t","version":1}"#;
        conn.execute_batch(&format!(
            "INSERT INTO projects VALUES ('p', 'P', 'a', 1, 0, 0, '{doc}');
             INSERT INTO history VALUES ('p', 'project', 'p', 1, 'admin', 0, 'create', 'created', '{doc}');
             INSERT INTO settings VALUES ('ended_session:x', '1'), ('server_secret', 'k');"
        ))
        .unwrap();
        drop(conn);

        let store = SqliteStore::open(&path).unwrap();
        let (project, history, ended, secret) = crate::read(&store, |tx| {
            Ok::<_, StoreError>((
                tx.get_project("p")?.unwrap().doc,
                tx.get_history("p", "project", "p", 1)?.unwrap().doc,
                tx.get_setting("ended_session:x")?,
                tx.get_setting("server_secret")?,
            ))
        })
        .unwrap();
        for doc in [project, history] {
            assert!(
                !doc.contains("s3cr3t") && !doc.contains("\"secret_key\""),
                "{doc}"
            );
            let value: serde_json::Value = serde_json::from_str(&doc).unwrap();
            assert_eq!(value["secret_key_hash"], sha256_hex("s3cr3t"));
            assert_eq!(value["api_key"], "a");
        }
        assert_eq!(ended, None);
        assert_eq!(secret.as_deref(), Some("k"));
        drop(store);
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }

    fn sha256_hex(secret: &str) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(secret.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}
