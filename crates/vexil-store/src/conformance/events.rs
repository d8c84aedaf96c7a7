//! Conformance cases for product events.

use super::{read_ok, seed_projects, write_ok, T0};
use crate::rows::EventRow;
use crate::Store;

fn event(project: &str, event_type: &str, time: i64) -> EventRow {
    EventRow {
        project: project.to_owned(),
        event_type: event_type.to_owned(),
        user_id: Some(format!("u-{time}")),
        device_id: None,
        groups: None,
        event_time: time,
        received_at: T0 + 100,
        insert_id: Some(format!("i-{time}")),
        event_properties: Some(r#"{"amount":12.5}"#.to_owned()),
        user_properties: None,
    }
}

/// Events: stored in bulk (more than one statement's worth), read back newest first per project
/// and type with absent fields kept absent, and purged by time.
pub fn events_round_trip(store: &dyn Store) {
    seed_projects(store, &["p1", "p2"]);
    let mut rows: Vec<EventRow> = (0..120).map(|i| event("p1", "Purchase", T0 + i)).collect();
    rows.push(event("p1", "Page View", T0 + 5));
    rows.push(event("p2", "Purchase", T0 + 500));
    let mut bare = event("p1", "Purchase", T0 + 1_000);
    bare.user_id = None;
    bare.device_id = Some("d".to_owned());
    bare.insert_id = None;
    bare.event_properties = None;
    bare.groups = Some(r#"{"company":"acme"}"#.to_owned());
    rows.push(bare.clone());
    write_ok(store, "insert events", |tx| tx.insert_events(&rows));
    read_ok(store, "latest events", |tx| {
        let latest = tx.latest_events("p1", "Purchase", 3)?;
        assert_eq!(latest.len(), 3, "limited");
        assert_eq!(latest[0], bare, "newest first, absent fields absent");
        assert_eq!(latest[1], event("p1", "Purchase", T0 + 119));
        assert_eq!(tx.latest_events("p1", "Page View", 10)?.len(), 1);
        assert_eq!(
            tx.latest_events("p2", "Purchase", 10)?.len(),
            1,
            "per project"
        );
        assert!(tx.latest_events("p1", "Signup", 10)?.is_empty());
        Ok(())
    });
    let purged = write_ok(store, "purge events", |tx| tx.purge_events(T0 + 100));
    assert_eq!(
        purged,
        100 + 1,
        "events before the time, of every project and type"
    );
    read_ok(store, "after purge", |tx| {
        assert_eq!(tx.latest_events("p1", "Purchase", 500)?.len(), 21);
        assert!(tx.latest_events("p1", "Page View", 10)?.is_empty());
        assert_eq!(tx.latest_events("p2", "Purchase", 10)?.len(), 1);
        Ok(())
    });
}
