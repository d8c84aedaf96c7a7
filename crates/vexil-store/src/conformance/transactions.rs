//! Conformance cases for transactions: rollback, the helpers' error passing, read-only reads
//! and concurrent writers.

use std::sync::Barrier;
use std::time::Duration;

use super::{
    api_key, assert_mismatch, cohort, deployment, flag, history, ok, project, read_ok,
    seed_projects, write_ok, T0,
};
use crate::rows::FlagFilter;
use crate::{Store, StoreError};

/// An `Err` from the closure after several writes leaves nothing written, and `write` returns
/// that error.
pub fn write_rolls_back_on_error(store: &dyn Store) {
    seed_projects(store, &["kept"]);
    let mut calls = 0;
    let result = store.write(&mut |tx| {
        calls += 1;
        tx.insert_project(&project("p"))?;
        tx.insert_deployment(&deployment("p", "prod"))?;
        let mut f = flag("p", "f");
        f.tags = vec!["t".to_owned()];
        f.deployments = vec!["prod".to_owned()];
        tx.insert_flag(&f)?;
        tx.insert_cohort(&cohort("p", "c", 2), &["a".to_owned(), "b".to_owned()])?;
        tx.append_history(&history("p", "flag", "f", 1))?;
        tx.insert_api_key(&api_key("k", T0))?;
        let mut kept = project("kept");
        kept.name = "changed".to_owned();
        kept.version = 2;
        tx.update_project(&kept, 1)?;
        Err(StoreError::NotFound {
            entity: "sentinel",
            key: "abort".to_owned(),
        })
    });
    assert_eq!(calls, 1, "the closure runs once");
    match result {
        Err(StoreError::NotFound {
            entity: "sentinel", ..
        }) => {}
        other => panic!("write must return the closure's error, got {other:?}"),
    }
    read_ok(store, "nothing written", |tx| {
        assert_eq!(
            tx.list_projects()?,
            vec![project("kept")],
            "projects rolled back"
        );
        assert_eq!(tx.all_deployments()?, vec![]);
        assert_eq!(
            tx.list_flags(&FlagFilter {
                limit: 10,
                ..FlagFilter::default()
            })?
            .total,
            0
        );
        let by_tag = FlagFilter {
            tag: Some("t".to_owned()),
            limit: 10,
            ..FlagFilter::default()
        };
        assert_eq!(tx.list_flags(&by_tag)?.total, 0, "side tables rolled back");
        assert_eq!(tx.list_cohorts("p")?, vec![]);
        assert_eq!(tx.list_history("p", "flag", "f", None, 10)?, vec![]);
        assert_eq!(tx.list_api_keys()?, vec![]);
        Ok(())
    });

    // An error from the store itself (a conflict) that the closure passes on also rolls back.
    let result = crate::write(store, |tx| {
        tx.insert_project(&project("new"))?;
        tx.insert_project(&project("kept"))
    });
    assert!(
        matches!(result, Err(StoreError::Conflict { field: "key", .. })),
        "the conflict is returned, got {result:?}"
    );
    read_ok(store, "still nothing written", |tx| {
        assert_eq!(
            tx.get_project("new")?,
            None,
            "the insert before the conflict is undone"
        );
        Ok(())
    });

    // The store stays usable afterwards.
    write_ok(store, "a later write", |tx| {
        tx.insert_project(&project("later"))
    });
    let keys = read_ok(store, "list", |tx| tx.list_projects());
    assert_eq!(keys.len(), 2);
}

/// The error type a domain layer would use with [`crate::write`].
#[derive(Debug)]
enum DomainError {
    Invalid(&'static str),
    Store(StoreError),
}

impl From<StoreError> for DomainError {
    fn from(err: StoreError) -> Self {
        DomainError::Store(err)
    }
}

/// `crate::write` and `crate::read` return the closure's value, or its own error unchanged.
pub fn helpers_return_closure_errors(store: &dyn Store) {
    let value = crate::write(store, |tx| -> Result<u32, DomainError> {
        tx.insert_project(&project("p"))?;
        Ok(42)
    });
    assert!(
        matches!(value, Ok(42)),
        "write returns the value, got {value:?}"
    );

    let failed = crate::write(store, |tx| -> Result<u32, DomainError> {
        tx.insert_project(&project("q"))?;
        Err(DomainError::Invalid("rejected"))
    });
    assert!(
        matches!(failed, Err(DomainError::Invalid("rejected"))),
        "write returns the closure's error, got {failed:?}"
    );

    let conflict = crate::write(store, |tx| -> Result<(), DomainError> {
        tx.insert_project(&project("p"))?;
        Ok(())
    });
    assert!(
        matches!(
            conflict,
            Err(DomainError::Store(StoreError::Conflict {
                field: "key",
                ..
            }))
        ),
        "store errors convert into the caller's type, got {conflict:?}"
    );

    let read = crate::read(store, |tx| -> Result<Vec<String>, DomainError> {
        Ok(tx.list_projects()?.into_iter().map(|p| p.key).collect())
    });
    assert!(
        matches!(read.as_deref(), Ok([key]) if key == "p"),
        "read returns the value and the failed write left no q, got {read:?}"
    );

    let read_failed = crate::read(store, |_tx| -> Result<(), DomainError> {
        Err(DomainError::Invalid("nope"))
    });
    assert!(
        matches!(read_failed, Err(DomainError::Invalid("nope"))),
        "read returns the closure's error, got {read_failed:?}"
    );
}

/// A read transaction refuses to write.
pub fn read_rejects_writes(store: &dyn Store) {
    let result = crate::read(store, |tx| tx.insert_project(&project("p")));
    assert!(result.is_err(), "an insert in a read transaction must fail");
    let projects = read_ok(store, "list", |tx| tx.list_projects());
    assert_eq!(projects, vec![], "nothing was written");
}

/// Two writers update one flag from the same base version at once: exactly one commits, the
/// other gets `VersionMismatch` with the winner's version. On SQLite the loser waits for the
/// write lock instead of failing with `SQLITE_BUSY`.
pub fn concurrent_updates_one_wins(store: &dyn Store) {
    seed_projects(store, &["p"]);
    write_ok(store, "insert flag", |tx| tx.insert_flag(&flag("p", "f")));
    let base =
        read_ok(store, "base version", |tx| tx.get_flag("p", "f")).map_or(0, |row| row.version);
    assert_eq!(base, 1);

    let barrier = Barrier::new(2);
    let attempt = |name: &str| {
        let mut row = flag("p", "f");
        row.name = name.to_owned();
        row.version = base + 1;
        barrier.wait();
        crate::write(store, |tx| {
            let result = tx.update_flag(&row, base);
            // Keep the transaction open a moment so the other writer really contends.
            std::thread::sleep(Duration::from_millis(50));
            result
        })
    };
    let (first, second) = std::thread::scope(|s| {
        let first = s.spawn(|| attempt("first"));
        let second = s.spawn(|| attempt("second"));
        (first.join(), second.join())
    });
    let (first, second) = match (first, second) {
        (Ok(first), Ok(second)) => (first, second),
        _ => panic!("a writer thread panicked"),
    };
    let winner = match (&first, &second) {
        (Ok(()), Err(_)) => {
            assert_mismatch(second, base + 1, "the loser");
            "first"
        }
        (Err(_), Ok(())) => {
            assert_mismatch(first, base + 1, "the loser");
            "second"
        }
        _ => panic!("exactly one writer must win: {first:?}, {second:?}"),
    };
    let row = read_ok(store, "after the race", |tx| tx.get_flag("p", "f"));
    assert_eq!(
        row.map(|r| (r.name, r.version)),
        Some((winner.to_owned(), base + 1)),
        "the winner's row is stored"
    );
}

/// Writers that lock the project, read a flag's version and update from it never lose an
/// update: they run one after the other.
pub fn lock_project_serializes_writers(store: &dyn Store) {
    seed_projects(store, &["p"]);
    write_ok(store, "insert flag", |tx| tx.insert_flag(&flag("p", "f")));

    let writers = 3;
    let barrier = Barrier::new(writers);
    let bump = |name: String| {
        barrier.wait();
        crate::write(store, |tx| {
            let locked = tx.lock_project("p")?;
            assert!(locked.is_some(), "the project exists");
            let Some(mut row) = tx.get_flag("p", "f")? else {
                panic!("the flag exists");
            };
            std::thread::sleep(Duration::from_millis(30));
            let expected = row.version;
            row.version += 1;
            row.tags.push(name.clone());
            tx.update_flag(&row, expected)
        })
    };
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|i| {
                let bump = &bump;
                s.spawn(move || bump(format!("w{i}")))
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    for result in results {
        match result {
            Ok(result) => ok(result, "a serialized writer"),
            Err(_) => panic!("a writer thread panicked"),
        }
    }
    let row = read_ok(store, "after the writers", |tx| tx.get_flag("p", "f"));
    let Some(row) = row else {
        panic!("the flag exists");
    };
    assert_eq!(row.version, 1 + writers as i64, "every update applied");
    let mut tags = row.tags.clone();
    tags.sort();
    assert_eq!(tags, ["w0", "w1", "w2"], "no update lost");
}
