//! Conformance cases for versioned project documents (groups, metrics).

use super::{
    assert_conflict, assert_mismatch, assert_not_found, read_ok, seed_projects, write_ok, T0,
};
use crate::rows::DocumentRow;
use crate::Store;

fn document(project: &str, collection: &str, key: &str, kind: &str) -> DocumentRow {
    DocumentRow {
        project: project.to_owned(),
        collection: collection.to_owned(),
        key: key.to_owned(),
        kind: kind.to_owned(),
        archived: false,
        doc: format!(r#"{{"key":"{key}"}}"#),
        version: 1,
        created_at: T0,
        updated_at: T0,
    }
}

/// Documents: insert/get/list (by kind, in key order) per project and collection; update with
/// version checks; conflicts on (project, collection, key) only.
pub fn documents_round_trip(store: &dyn Store) {
    seed_projects(store, &["p1", "p2"]);
    let m = document("p1", "group", "mutex-b", "mutual_exclusion");
    let h = document("p1", "group", "holdout-a", "holdout");
    let metric = document("p1", "metric", "mutex-b", "conversion");
    let other = document("p2", "group", "mutex-b", "mutual_exclusion");
    write_ok(store, "insert documents", |tx| {
        tx.insert_document(&m)?;
        tx.insert_document(&h)?;
        tx.insert_document(&metric)?;
        tx.insert_document(&other)
    });
    write_ok(store, "conflicting document", |tx| {
        assert_conflict(
            tx.insert_document(&document("p1", "group", "mutex-b", "holdout")),
            "group",
            "key",
            "duplicate key",
        );
        Ok(())
    });
    read_ok(store, "read documents", |tx| {
        assert_eq!(tx.get_document("p1", "group", "mutex-b")?, Some(m.clone()));
        assert_eq!(
            tx.get_document("p1", "metric", "mutex-b")?,
            Some(metric.clone()),
            "collections keep their own keys"
        );
        assert_eq!(tx.get_document("p1", "group", "mutex-x")?, None);
        assert_eq!(
            tx.list_documents("p1", "group", None)?,
            vec![h.clone(), m.clone()],
            "key order"
        );
        assert_eq!(
            tx.list_documents("p1", "group", Some("holdout"))?,
            vec![h.clone()],
            "by kind"
        );
        assert_eq!(tx.list_documents("p2", "group", None)?, vec![other.clone()]);
        assert_eq!(tx.list_documents("p3", "group", None)?, vec![]);
        Ok(())
    });
    let mut changed = m.clone();
    changed.archived = true;
    changed.doc = r#"{"key":"mutex-b","v":2}"#.to_owned();
    changed.version = 2;
    changed.updated_at = T0 + 5;
    write_ok(store, "update document", |tx| {
        tx.update_document(&changed, 1)
    });
    write_ok(store, "stale update", |tx| {
        assert_mismatch(tx.update_document(&changed, 1), 2, "stale version");
        assert_not_found(
            tx.update_document(&document("p1", "group", "mutex-gone", "holdout"), 1),
            "missing document",
        );
        Ok(())
    });
    read_ok(store, "read updated document", |tx| {
        assert_eq!(
            tx.get_document("p1", "group", "mutex-b")?,
            Some(changed.clone())
        );
        assert_eq!(
            tx.get_document("p1", "metric", "mutex-b")?,
            Some(metric.clone())
        );
        assert_eq!(
            tx.get_document("p2", "group", "mutex-b")?,
            Some(other.clone())
        );
        Ok(())
    });
}
