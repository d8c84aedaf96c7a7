//! Conformance cases for product events.

use super::{read_ok, seed_projects, write_ok, T0};
use crate::rows::{EventColumns, EventRow};
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

/// The scans analysis reads: rows with an id above a watermark and a time from a bound, in
/// arrival order (whatever their time), of one flag's kinds to real variants or of the given
/// event types, a page at a time; and the watermarks themselves.
pub fn analysis_scans_resume_after_an_id(store: &dyn Store) {
    seed_projects(store, &["p", "q"]);
    let (exposures0, events0) = read_ok(store, "ids before", |tx| tx.last_ids());
    write_ok(store, "insert", |tx| {
        tx.insert_exposures(&[
            super::sdk::exposure("exp", Some("on"), "u1", T0 + 50, "client_exposure"),
            super::sdk::exposure("exp", Some("on"), "u2", T0 + 1, "assignment"),
            super::sdk::exposure("exp", Some("off"), "u3", T0 + 2, "client_exposure"),
            super::sdk::exposure("other", Some("on"), "u4", T0 + 2, "client_exposure"),
            super::sdk::exposure("exp", None, "u5", T0 + 2, "client_exposure"),
            super::sdk::exposure("exp", Some("on"), "u6", T0 - 1, "client_exposure"),
        ])?;
        tx.insert_events(&[
            event("p", "Purchase", T0 + 9),
            event("p", "Page View", T0 + 1),
            event("q", "Purchase", T0 + 1),
            event("p", "Signup", T0 + 5),
            event("p", "Signup", T0 - 1),
        ])
    });
    read_ok(store, "since", |tx| {
        let (exposures1, events1) = tx.last_ids()?;
        assert!(
            exposures1 >= exposures0 + 6 && events1 >= events0 + 5,
            "watermarks move"
        );
        let since = tx.exposures_since("p", "exp", &["client_exposure"], (exposures0, T0), 10)?;
        let seen: Vec<(String, i64)> = since.iter().map(|e| (e.variant.clone(), e.time)).collect();
        assert_eq!(
            seen,
            [("on".to_owned(), T0 + 50), ("off".to_owned(), T0 + 2)],
            "in arrival order, of the flag's kinds, real variants, from the time"
        );
        assert!(tx
            .exposures_since("p", "exp", &["client_exposure"], (exposures1, 0), 10)?
            .is_empty());
        let types = |rows: Vec<crate::rows::EventFact>| -> Vec<String> {
            rows.into_iter().map(|e| e.event_type).collect()
        };
        assert_eq!(
            types(tx.events_since(
                "p",
                &["Purchase", "Signup"],
                (events0, T0),
                EventColumns::ALL,
                10
            )?),
            ["Purchase", "Signup"],
            "of the types, from the time"
        );
        assert_eq!(
            types(tx.events_since("p", &[], (events0, T0), EventColumns::ALL, 2)?),
            ["Purchase", "Page View"],
            "every type, limited"
        );
        let first = tx.events_since("p", &[], (events0, 0), EventColumns::ALL, 1)?;
        assert_eq!(
            types(tx.events_since("p", &[], (first[0].id, 0), EventColumns::ALL, 5)?),
            ["Page View", "Signup", "Signup"],
            "resumed after an id"
        );
        let recent = tx.recent_events("p", 2)?;
        assert_eq!(
            recent.iter().map(|e| e.time).collect::<Vec<_>>(),
            [T0 - 1, T0 + 5],
            "the newest first"
        );
        assert_eq!(recent[0].event_properties, None, "without event properties");
        let only = EventColumns {
            user_id: false,
            device_id: false,
            groups: false,
            event_properties: true,
            user_properties: false,
        };
        let bare = &tx.events_since("p", &["Purchase"], (events0, T0), only, 1)?[0];
        assert_eq!(
            (bare.user_id.as_deref(), bare.event_properties.as_deref()),
            (None, Some(r#"{"amount":12.5}"#)),
            "only the columns asked for"
        );
        Ok(())
    });
}
