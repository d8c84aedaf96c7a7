//! The PostgreSQL backend, for several Vexil nodes sharing one database.
//!
//! Write transactions run at READ COMMITTED; the domain layer starts every write on a project
//! with [`Tx::lock_project`] (`SELECT … FOR UPDATE`), which queues the writers of one project
//! behind each other while other projects proceed. Versioned updates (`… AND version = $n`)
//! catch whatever slips past that. Read transactions are REPEATABLE READ, READ ONLY, so a
//! closure that runs several queries sees one snapshot.
//!
//! A unique violation aborts a PostgreSQL transaction, unlike SQLite where only the statement
//! fails. Inserts avoid it (`ON CONFLICT DO NOTHING`, then a probe names the taken column); the
//! updates that can change a unique column run under a savepoint. Either way both backends
//! report a `Conflict` and leave the transaction usable.
//!
//! Each pooled connection keeps its prepared statements: with the statement named once, a query
//! is one round trip instead of two (parse, then bind and execute).
//!
//! The `postgres` crate is synchronous (it drives its own runtime internally): call the store
//! from plain threads or `spawn_blocking`, never from inside an async task.

use std::collections::HashMap;
use std::time::Duration;

use ::postgres::error::SqlState;
use ::postgres::types::{ToSql, Type};
use ::postgres::{Client, Config, IsolationLevel, NoTls, Row, Statement};

use crate::migrations::{self, MIGRATIONS};
use crate::sql::{conflict_field, Conn, Dialect, SqlTx, Val};
use crate::{ChangeFeed, Result, Store, StoreError, Tx};

/// Connections in the pool of one node.
const POOL_SIZE: u32 = 16;

/// How long opening a connection may take when the URL does not say.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call waits for a pooled connection. Short, so that during an outage callers get
/// `Unavailable` (a `503` with `Retry-After`) within a second instead of hanging.
const POOL_WAIT: Duration = Duration::from_secs(1);

/// Advisory-lock class for schema migrations (any constant; the second key is the schema).
const MIGRATION_LOCK_CLASS: i32 = 0x5645_584c; // "VEXL"

/// A [`Store`] in a PostgreSQL database (optionally one schema of it).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: r2d2::Pool<Manager>,
    /// How to open a connection of its own (the change feed's, outside the pool).
    config: Config,
    search_path: Option<String>,
}

/// A driver error as a store error: no pooled connection in time, or a connection lost or
/// refused (an error the server did not answer with), is `Unavailable`; anything else is
/// `Backend`.
fn backend<E: std::error::Error + Send + Sync + 'static>(err: E) -> StoreError {
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
    let lost = boxed
        .downcast_ref::<::postgres::Error>()
        .is_some_and(|e| e.as_db_error().is_none() && (e.is_closed() || has_io_source(e)));
    if lost || boxed.is::<r2d2::Error>() {
        StoreError::Unavailable(boxed)
    } else {
        StoreError::Backend(boxed)
    }
}

fn has_io_source(err: &::postgres::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A pooled connection with the statements it has prepared: a query prepared once per
/// connection then costs one round trip instead of two.
struct PgClient {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// Opens the pool's connections, pointed at the store's schema.
#[derive(Debug)]
struct Manager {
    config: Config,
    /// `SET search_path …` for a store in its own schema.
    search_path: Option<String>,
}

impl r2d2::ManageConnection for Manager {
    type Connection = PgClient;
    type Error = ::postgres::Error;

    fn connect(&self) -> Result<PgClient, ::postgres::Error> {
        let mut client = self.config.connect(NoTls)?;
        if let Some(set) = &self.search_path {
            client.batch_execute(set)?;
        }
        Ok(PgClient {
            client,
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut PgClient) -> Result<(), ::postgres::Error> {
        conn.client.simple_query("").map(drop)
    }

    fn has_broken(&self, conn: &mut PgClient) -> bool {
        conn.client.is_closed()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`, without TLS) and
    /// brings the schema up to date. With `schema`, the store's tables live in that schema,
    /// which is created when missing; otherwise in the connection's default (`public`).
    pub fn connect(url: &str, schema: Option<&str>) -> Result<PostgresStore> {
        let mut config: Config = url.parse().map_err(backend)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // One plain connection first: it fails fast when the server is unreachable (a pool
        // would retry until its own timeout) and runs the migrations.
        let mut client = config.connect(NoTls).map_err(backend)?;
        migrate(&mut client, schema)?;
        drop(client);

        let search_path = schema.map(|s| format!("SET search_path TO {}", quote_ident(s)));
        let manager = Manager {
            config: config.clone(),
            search_path: search_path.clone(),
        };
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(POOL_WAIT)
            .build(manager)
            .map_err(backend)?;
        Ok(PostgresStore {
            pool,
            config,
            search_path,
        })
    }

    fn run(&self, writing: bool, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        let mut pooled = self.pool.get().map_err(backend)?;
        let PgClient { client, statements } = &mut *pooled;
        let isolation = if writing {
            IsolationLevel::ReadCommitted
        } else {
            IsolationLevel::RepeatableRead
        };
        let mut tx = client
            .build_transaction()
            .isolation_level(isolation)
            .read_only(!writing)
            .start()
            .map_err(backend)?;
        let mut conn = PgConn {
            tx: &mut tx,
            statements,
        };
        let result = f(&mut SqlTx::new(&mut conn, writing));
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

impl Store for PostgresStore {
    fn write(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        self.run(true, f)
    }

    fn read(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        self.run(false, f)
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    /// A connection of its own that `LISTEN`s to the revision channel and keeps what concerns
    /// this store's schema.
    fn change_feed(&self) -> Result<Option<Box<dyn ChangeFeed>>> {
        let mut client = self.config.connect(NoTls).map_err(backend)?;
        if let Some(set) = &self.search_path {
            client.batch_execute(set).map_err(backend)?;
        }
        let schema: String = client
            .query_one("SELECT current_schema()", &[])
            .map_err(backend)?
            .get(0);
        client
            .batch_execute(&format!("LISTEN {}", quote_ident(crate::CHANGE_CHANNEL)))
            .map_err(backend)?;
        Ok(Some(Box::new(Feed {
            client,
            prefix: format!("{schema}/"),
        })))
    }
}

/// The change feed of a PostgreSQL store.
struct Feed {
    client: Client,
    /// `schema/`: the payloads of this store's schema start with it.
    prefix: String,
}

impl ChangeFeed for Feed {
    fn wait(&mut self, timeout: Duration) -> Result<Vec<String>> {
        use ::postgres::fallible_iterator::FallibleIterator;

        let mut payloads = Vec::new();
        {
            let mut notifications = self.client.notifications();
            if let Some(first) = notifications
                .timeout_iter(timeout)
                .next()
                .map_err(backend)?
            {
                payloads.push(first.payload().to_owned());
            }
            // Whatever else has arrived, without waiting again.
            let mut pending = notifications.iter();
            while let Some(n) = pending.next().map_err(backend)? {
                payloads.push(n.payload().to_owned());
            }
        }
        if self.client.is_closed() {
            return Err(StoreError::Unavailable(
                "the change feed's connection closed".into(),
            ));
        }
        let mut projects: Vec<String> = payloads
            .iter()
            .filter_map(|p| p.strip_prefix(&self.prefix).map(str::to_owned))
            .collect();
        projects.sort();
        projects.dedup();
        Ok(projects)
    }
}

/// Creates the schema and applies the missing migrations in one transaction, holding an
/// advisory lock on the schema's name so that nodes starting together migrate one at a time.
fn migrate(client: &mut Client, schema: Option<&str>) -> Result<()> {
    migrate_to(client, schema, migrations::latest())
}

/// Applies the missing migrations up to version `target` (tests start from older schemas).
fn migrate_to(client: &mut Client, schema: Option<&str>, target: i64) -> Result<()> {
    let mut tx = client.transaction().map_err(backend)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(COALESCE($2, current_schema())))",
        &[&MIGRATION_LOCK_CLASS, &schema],
    )
    .map_err(backend)?;
    if let Some(schema) = schema {
        let schema = quote_ident(schema);
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; SET LOCAL search_path TO {schema}"
        ))
        .map_err(backend)?;
    }
    tx.batch_execute(migrations::CREATE_VERSIONS_TABLE)
        .map_err(backend)?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM vexil_schema_migrations",
            &[],
        )
        .and_then(|row| row.try_get(0))
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
        tx.batch_execute(migration.postgres).map_err(backend)?;
        if let Some(data) = migration.data {
            let mut statements = HashMap::new();
            data(&mut PgConn {
                tx: &mut tx,
                statements: &mut statements,
            })?;
        }
        tx.execute(
            "INSERT INTO vexil_schema_migrations (version, applied_at) \
             VALUES ($1, (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT)",
            &[&migration.version],
        )
        .map_err(backend)?;
    }
    tx.commit().map_err(backend)
}

/// The store binds NULL only to `BIGINT` columns (`revoked_at`), so one typed NULL serves.
static NULL_BIGINT: Option<i64> = None;

fn params(params: &[Val]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|val| -> &(dyn ToSql + Sync) {
            match val {
                Val::Null => &NULL_BIGINT,
                Val::Int(i) => i,
                Val::Bool(b) => b,
                Val::Text(s) => s,
                Val::Bytes(b) => b,
            }
        })
        .collect()
}

fn cells(row: &Row) -> Result<Vec<Val>> {
    let mut out = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let cell = match *column.type_() {
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => row
                .try_get::<_, Option<String>>(i)
                .map(|v| v.map_or(Val::Null, Val::Text)),
            Type::INT8 => row
                .try_get::<_, Option<i64>>(i)
                .map(|v| v.map_or(Val::Null, Val::Int)),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(i)
                .map(|v| v.map_or(Val::Null, |v| Val::Int(i64::from(v)))),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(i)
                .map(|v| v.map_or(Val::Null, Val::Bool)),
            Type::BYTEA => row
                .try_get::<_, Option<Vec<u8>>>(i)
                .map(|v| v.map_or(Val::Null, Val::Bytes)),
            ref other => {
                return Err(StoreError::Corrupt(format!(
                    "column {} has the unexpected type {other}",
                    column.name()
                )));
            }
        };
        out.push(cell.map_err(backend)?);
    }
    Ok(out)
}

/// Prepared statements kept per connection. `list_flags` builds its SQL from the filter, so
/// the set is bounded but can grow to a few hundred; past this the cache starts over.
const STATEMENT_CACHE: usize = 256;

/// A connection inside a transaction.
struct PgConn<'a, 'c> {
    tx: &'a mut ::postgres::Transaction<'c>,
    statements: &'a mut HashMap<String, Statement>,
}

impl PgConn<'_, '_> {
    /// The prepared statement for `sql`, preparing it on first use. (Protocol-level prepared
    /// statements belong to the session, so they outlive a rolled-back transaction.)
    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.tx.prepare(sql).map_err(backend)?;
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

impl Conn for PgConn<'_, '_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, values: &[Val]) -> Result<u64> {
        let statement = self.statement(sql)?;
        self.tx
            .execute(&statement, &params(values))
            .map_err(backend)
    }

    fn query(&mut self, sql: &str, values: &[Val]) -> Result<Vec<Vec<Val>>> {
        let statement = self.statement(sql)?;
        let rows = self
            .tx
            .query(&statement, &params(values))
            .map_err(backend)?;
        rows.iter().map(cells).collect()
    }

    fn execute_unique(
        &mut self,
        sql: &str,
        values: &[Val],
        entity: &'static str,
        key: &str,
    ) -> Result<u64> {
        self.tx
            .batch_execute("SAVEPOINT vexil_unique")
            .map_err(backend)?;
        let statement = self.statement(sql)?;
        match self.tx.execute(&statement, &params(values)) {
            Ok(changed) => {
                self.tx
                    .batch_execute("RELEASE SAVEPOINT vexil_unique")
                    .map_err(backend)?;
                Ok(changed)
            }
            Err(err) => {
                self.tx
                    .batch_execute("ROLLBACK TO SAVEPOINT vexil_unique")
                    .map_err(backend)?;
                let constraint = err
                    .as_db_error()
                    .filter(|db| *db.code() == SqlState::UNIQUE_VIOLATION)
                    .and_then(|db| db.constraint());
                match constraint {
                    Some(constraint) => Err(StoreError::Conflict {
                        entity,
                        key: key.to_owned(),
                        field: conflict_field(constraint),
                    }),
                    None => Err(backend(err)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    /// The PostgreSQL side of the SQLite test of the same name: version 3 leaves only hashes
    /// of project secrets. Skipped (with a message) when the test server is unreachable,
    /// unless `CI=true`.
    #[test]
    fn version_3_hashes_project_secrets() {
        let url = std::env::var("VEXIL_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let mut client = match Client::connect(&url, NoTls) {
            Ok(client) => client,
            Err(err) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("PostgreSQL not reachable at {url}: {err}")
            }
            Err(err) => {
                eprintln!("skipped: PostgreSQL not reachable at {url}: {err}");
                return;
            }
        };
        let schema = format!("vexil_migrate_v3_{}", std::process::id());
        let quoted = quote_ident(&schema);
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {quoted} CASCADE"))
            .unwrap();
        migrate_to(&mut client, Some(&schema), 2).unwrap();
        let doc = r#"{"key":"p","api_key":"a","secret_key":"s3cr3t","version":1}"#;
        client
            .batch_execute(&format!(
                "SET search_path TO {quoted};
                 INSERT INTO projects VALUES ('p', 'P', 'a', 1, 0, 0, '{doc}');
                 INSERT INTO history VALUES ('p', 'project', 'p', 1, 'admin', 0, 'create', 'c', '{doc}');"
            ))
            .unwrap();
        migrate_to(&mut client, Some(&schema), migrations::latest()).unwrap();
        let docs: Vec<String> = client
            .query(
                "SELECT doc FROM projects UNION ALL SELECT doc FROM history",
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        client
            .batch_execute(&format!("DROP SCHEMA {quoted} CASCADE"))
            .unwrap();
        assert_eq!(docs.len(), 2);
        for doc in docs {
            assert!(!doc.contains("s3cr3t"), "{doc}");
            let value: serde_json::Value = serde_json::from_str(&doc).unwrap();
            assert_eq!(value["secret_key_hash"].as_str().map(str::len), Some(64));
        }
    }
}
