#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
//! The tracker with a spool, over SQLite behind a switch that makes it unreachable: a batch the
//! store takes part of before it goes away is answered as accepted and spooled with what was
//! stored; batches that come while older ones wait follow them into the spool; and once the
//! store answers, the replay thread completes them, every event stored exactly once (those
//! without an insert id included). The only wait polls the spool with a deadline.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vexil_core::sdk::{Accepted, Publisher, Source, Spool, SpoolOptions, Tracker};
use vexil_store::{ExposureQuery, SqliteStore, Store, StoreError, Tx};

/// A test's directory, removed when the test ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// SQLite that becomes unreachable after a number of writes, until told otherwise.
struct Flaky {
    inner: SqliteStore,
    /// Writes that succeed before the store goes down (negative: no limit).
    writes_left: AtomicI64,
    down: AtomicBool,
}

impl Flaky {
    fn check(&self) -> vexil_store::Result<()> {
        if self.writes_left.fetch_sub(1, Ordering::SeqCst) == 0 {
            self.down.store(true, Ordering::SeqCst);
        }
        if self.down.load(Ordering::SeqCst) {
            let cut = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "down");
            return Err(StoreError::Unavailable(Box::new(cut)));
        }
        Ok(())
    }
}

impl Store for Flaky {
    fn write(
        &self,
        f: &mut dyn FnMut(&mut dyn Tx) -> vexil_store::Result<()>,
    ) -> vexil_store::Result<()> {
        self.check()?;
        self.inner.write(f)
    }

    fn read(
        &self,
        f: &mut dyn FnMut(&mut dyn Tx) -> vexil_store::Result<()>,
    ) -> vexil_store::Result<()> {
        self.inner.read(f)
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

fn exposures(store: &dyn Store) -> i64 {
    let query = ExposureQuery {
        project: "p".into(),
        flag_key: "f".into(),
        kinds: Vec::new(),
        from: 0,
        to: i64::MAX / 2,
        bucket: i64::MAX / 4,
    };
    let counts = vexil_store::read(store, |tx| tx.exposure_counts(&query)).unwrap();
    counts.iter().map(|c| c.count).sum()
}

/// A batch of `n` exposures of flag `f` by distinct users, without insert ids.
fn batch(prefix: &str, n: usize) -> Vec<u8> {
    let events: Vec<_> = (0..n)
        .map(|i| {
            json!({"event_type": "$exposure", "user_id": format!("{prefix}{i}"), "time": 1_000,
                   "event_properties": {"flag_key": "f", "variant": "on"}})
        })
        .collect();
    json!({"api_key": "k", "events": events})
        .to_string()
        .into_bytes()
}

#[test]
fn a_batch_cut_by_an_outage_is_completed_once_the_store_answers() {
    let dir = std::env::temp_dir().join(format!("vexil-core-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let scratch = Scratch(dir);
    let store = Arc::new(Flaky {
        inner: SqliteStore::open(&scratch.0.join("vexil.db")).unwrap(),
        writes_left: AtomicI64::new(-1),
        down: AtomicBool::new(false),
    });
    let publisher = Publisher::new(store.clone(), Default::default());
    let spool = Spool::open(SpoolOptions::new(scratch.0.join("spool"))).unwrap();
    let tracker = Tracker::start_with_spool(store.clone(), publisher, Some(spool)).unwrap();
    let source = Source {
        project: "p".into(),
        deployment: Some("prod".into()),
        trusted: true,
    };

    // Stored directly while the store is up.
    let up = tracker.accept(&source, &batch("a", 10)).unwrap();
    assert!(
        matches!(up, Accepted::Stored(ref r) if r.stored == 10),
        "{up:?}"
    );
    // The store takes the first chunk of 1,000 events, then goes away.
    store.writes_left.store(1, Ordering::SeqCst);
    let cut = tracker.accept(&source, &batch("b", 2_500)).unwrap();
    assert_eq!(cut, Accepted::Spooled);
    assert_eq!(exposures(&store.inner), 10 + 1_000);
    // Older batches wait in the spool: this one goes behind them.
    assert_eq!(
        tracker.accept(&source, &batch("c", 3)).unwrap(),
        Accepted::Spooled
    );
    assert!(tracker.spool_stats().unwrap().bytes > 0);

    store.down.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(30);
    while tracker.spool_stats().unwrap().segments > 0 {
        assert!(Instant::now() < deadline, "the spool did not drain");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(exposures(&store.inner), 10 + 2_500 + 3);
    tracker.stop();
}
