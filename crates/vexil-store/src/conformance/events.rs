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

/// The analysis scans: exposures of one flag to real variants and events (of one type or all),
/// in a time window, in `(time, id)` order, resumed page after page without losing or repeating
/// rows that share a time.
pub fn analysis_scans_page_in_time_order(store: &dyn Store) {
    use crate::rows::ScanFrom;
    seed_projects(store, &["p"]);
    let exposures = vec![
        super::sdk::exposure("exp", Some("on"), "u1", T0 + 1, "client_exposure"),
        super::sdk::exposure("exp", Some("off2"), "device:d1", T0 + 1, "server_exposure"),
        super::sdk::exposure("exp", None, "u2", T0 + 1, "client_exposure"),
        super::sdk::exposure("exp", Some("on"), "u3", T0 + 2, "assignment"),
        super::sdk::exposure("exp", Some("on"), "u4", T0 + 2, "remote_exposure"),
        super::sdk::exposure("other", Some("on"), "u5", T0 + 2, "client_exposure"),
        super::sdk::exposure("exp", Some("on"), "u6", T0 + 50, "client_exposure"),
    ];
    let mut events: Vec<EventRow> = (0..7).map(|i| event("p", "Purchase", T0 + i / 3)).collect();
    events.push(event("p", "Page View", T0 + 1));
    write_ok(store, "insert", |tx| {
        tx.insert_exposures(&exposures)?;
        tx.insert_events(&events)
    });
    read_ok(store, "scan", |tx| {
        let mut seen = Vec::new();
        let mut after = ScanFrom::default();
        loop {
            let page = tx.scan_exposures(
                "p",
                "exp",
                &["client_exposure", "server_exposure", "remote_exposure"],
                (T0, T0 + 50),
                after,
                2,
            )?;
            let Some(last) = page.last() else { break };
            after = ScanFrom {
                time: last.time,
                id: last.id,
            };
            seen.extend(page.into_iter().map(|e| {
                (
                    e.user_id.or(e.device_id).unwrap_or_default(),
                    e.variant,
                    e.time,
                )
            }));
        }
        assert_eq!(
            seen,
            [
                ("u1".to_owned(), "on".to_owned(), T0 + 1),
                ("d1".to_owned(), "off2".to_owned(), T0 + 1),
                ("u4".to_owned(), "on".to_owned(), T0 + 2),
            ],
            "real variants of exposure kinds, in the window, in order"
        );
        for (event_type, expected) in [(Some("Purchase"), 7), (None, 8)] {
            let mut count = 0;
            let mut times = Vec::new();
            let mut after = ScanFrom::default();
            loop {
                let page = tx.scan_events("p", event_type, (T0, T0 + 100), after, 3)?;
                let Some(last) = page.last() else { break };
                after = ScanFrom {
                    time: last.time,
                    id: last.id,
                };
                count += page.len();
                times.extend(page.iter().map(|e| e.time));
            }
            assert_eq!(count, expected, "{event_type:?}: every event once");
            assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order");
        }
        assert!(tx
            .scan_events("p", None, (T0 + 10, T0 + 20), ScanFrom::default(), 5)?
            .is_empty());
        Ok(())
    });
}
