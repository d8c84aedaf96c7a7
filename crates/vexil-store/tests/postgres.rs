//! Runs the conformance suite on the PostgreSQL backend, one test per case, each in a fresh
//! schema dropped at the end.
//!
//! The server is `VEXIL_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
//! When it cannot be reached the tests are skipped with a message, unless `CI=true`, where a
//! missing database is a failure rather than a silently green run.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use postgres::{Client, NoTls};
use vexil_store::{PostgresStore, Store};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn url() -> String {
    std::env::var("VEXIL_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A client to the test server, or `None` (after saying so) when it is unreachable outside CI.
fn admin_client(url: &str) -> Option<Client> {
    match Client::connect(url, NoTls) {
        Ok(client) => Some(client),
        Err(err) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL not reachable at {url}: {err}")
        }
        Err(err) => {
            eprintln!("skipped: PostgreSQL not reachable at {url}: {err}");
            None
        }
    }
}

/// A schema name unique to this process, test and moment.
fn schema_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "vexil_test_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Drops the schema when the test ends, even when it panics.
struct TempSchema {
    url: String,
    name: String,
}

impl Drop for TempSchema {
    fn drop(&mut self) {
        // Best effort: a leftover schema only costs space in a test database.
        if let Ok(mut client) = Client::connect(&self.url, NoTls) {
            let _ =
                client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
        }
    }
}

fn run(_name: &str, case: fn(&dyn Store)) {
    let url = url();
    if admin_client(&url).is_none() {
        return;
    }
    let schema = TempSchema {
        url: url.clone(),
        name: schema_name(),
    };
    let store = PostgresStore::connect(&url, Some(&schema.name)).unwrap();
    assert_eq!(store.backend(), "postgres");
    case(&store);
    // Close the pool's connections before the schema is dropped.
    drop(store);
}

vexil_store::conformance_tests!(run);

#[test]
fn tables_live_in_the_schema_and_migrations_run_once() {
    let url = url();
    let Some(mut client) = admin_client(&url) else {
        return;
    };
    let schema = TempSchema {
        url: url.clone(),
        name: schema_name(),
    };
    // Two nodes starting together both migrate the same schema.
    std::thread::scope(|s| {
        let a = s.spawn(|| PostgresStore::connect(&url, Some(&schema.name)));
        let b = s.spawn(|| PostgresStore::connect(&url, Some(&schema.name)));
        a.join().unwrap().unwrap();
        b.join().unwrap().unwrap();
    });
    let versions: i64 = client
        .query_one(
            &format!(
                "SELECT COUNT(*) FROM \"{}\".vexil_schema_migrations",
                schema.name
            ),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(versions, 8, "each migration recorded once");
    let tables: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1",
            &[&schema.name],
        )
        .unwrap()
        .get(0);
    assert!(
        tables >= 15,
        "the schema holds the store's tables, found {tables}"
    );
}

#[test]
fn connect_reports_a_bad_url() {
    assert!(PostgresStore::connect("not a url", None).is_err());
}
