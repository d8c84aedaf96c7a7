//! Conformance cases for mutual-exclusion and holdout groups.

use super::{
    assert_conflict, assert_mismatch, assert_not_found, read_ok, seed_projects, write_ok, T0,
};
use crate::rows::GroupRow;
use crate::Store;

fn group(project: &str, key: &str, kind: &str) -> GroupRow {
    GroupRow {
        project: project.to_owned(),
        key: key.to_owned(),
        kind: kind.to_owned(),
        archived: false,
        doc: format!(r#"{{"key":"{key}"}}"#),
        version: 1,
        created_at: T0,
        updated_at: T0,
    }
}

/// Groups: insert/get/list by kind in key order, per project; update with version checks;
/// conflicts on (project, key) only.
pub fn groups_round_trip(store: &dyn Store) {
    seed_projects(store, &["p1", "p2"]);
    let m = group("p1", "mutex-b", "mutual_exclusion");
    let h = group("p1", "holdout-a", "holdout");
    let other = group("p2", "mutex-b", "mutual_exclusion");
    write_ok(store, "insert groups", |tx| {
        tx.insert_group(&m)?;
        tx.insert_group(&h)?;
        tx.insert_group(&other)
    });
    write_ok(store, "conflicting group", |tx| {
        assert_conflict(
            tx.insert_group(&group("p1", "mutex-b", "holdout")),
            "group",
            "key",
            "duplicate key",
        );
        Ok(())
    });
    read_ok(store, "read groups", |tx| {
        assert_eq!(tx.get_group("p1", "mutex-b")?, Some(m.clone()));
        assert_eq!(tx.get_group("p1", "mutex-x")?, None);
        assert_eq!(
            tx.list_groups("p1", None)?,
            vec![h.clone(), m.clone()],
            "key order"
        );
        assert_eq!(
            tx.list_groups("p1", Some("holdout"))?,
            vec![h.clone()],
            "by kind"
        );
        assert_eq!(tx.list_groups("p2", None)?, vec![other.clone()]);
        assert_eq!(tx.list_groups("p3", None)?, vec![]);
        Ok(())
    });
    let mut changed = m.clone();
    changed.archived = true;
    changed.doc = r#"{"key":"mutex-b","v":2}"#.to_owned();
    changed.version = 2;
    changed.updated_at = T0 + 5;
    write_ok(store, "update group", |tx| tx.update_group(&changed, 1));
    write_ok(store, "stale update", |tx| {
        assert_mismatch(tx.update_group(&changed, 1), 2, "stale version");
        assert_not_found(
            tx.update_group(&group("p1", "mutex-gone", "holdout"), 1),
            "missing group",
        );
        Ok(())
    });
    read_ok(store, "read updated group", |tx| {
        assert_eq!(tx.get_group("p1", "mutex-b")?, Some(changed.clone()));
        assert_eq!(tx.get_group("p2", "mutex-b")?, Some(other.clone()));
        Ok(())
    });
}
