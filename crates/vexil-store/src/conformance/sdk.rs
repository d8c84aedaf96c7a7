//! Conformance cases for the SDK-facing tables: settings, snapshot revisions, exposures with
//! insert-id de-duplication, and `[Experiment]` user properties.

use super::{read_ok, write_ok, T0};
use crate::rows::{
    ExperimentPropertyRow, ExposureCount, ExposureQuery, ExposureRow, SdkRevisionRow,
};
use crate::Store;

/// A setting is stored once: a second insert with the same key keeps the first value.
pub fn settings_insert_once(store: &dyn Store) {
    write_ok(store, "settings", |tx| {
        assert_eq!(tx.get_setting("secret")?, None);
        assert!(tx.insert_setting("secret", "first")?);
        assert!(!tx.insert_setting("secret", "second")?);
        assert!(tx.insert_setting("other", "x")?);
        Ok(())
    });
    read_ok(store, "settings read back", |tx| {
        assert_eq!(tx.get_setting("secret")?.as_deref(), Some("first"));
        assert_eq!(tx.get_setting("other")?.as_deref(), Some("x"));
        Ok(())
    });
}

fn revision(project: &str, deployment: &str, revision: i64) -> SdkRevisionRow {
    SdkRevisionRow {
        project: project.to_owned(),
        deployment: deployment.to_owned(),
        revision,
        hash: format!("{revision:0>64}"),
        changed_at: T0 + revision,
    }
}

/// Revisions are upserted per (project, deployment) and listed per project or in all.
pub fn sdk_revisions_round_trip(store: &dyn Store) {
    write_ok(store, "put revisions", |tx| {
        tx.put_sdk_revision(&revision("b", "prod", 1))?;
        tx.put_sdk_revision(&revision("a", "prod", 1))?;
        tx.put_sdk_revision(&revision("a", "dev", 1))?;
        tx.put_sdk_revision(&revision("a", "prod", 2))?;
        Ok(())
    });
    read_ok(store, "list revisions", |tx| {
        assert_eq!(
            tx.sdk_revisions(None)?,
            vec![
                revision("a", "dev", 1),
                revision("a", "prod", 2),
                revision("b", "prod", 1)
            ]
        );
        assert_eq!(tx.sdk_revisions(Some("b"))?, vec![revision("b", "prod", 1)]);
        assert_eq!(tx.sdk_revisions(Some("none"))?, vec![]);
        Ok(())
    });
}

/// An insert id counts once per project inside the window, again after it, and purging
/// forgets old ids.
pub fn insert_ids_deduplicate_within_window(store: &dyn Store) {
    const DAY: i64 = 86_400_000;
    write_ok(store, "claims", |tx| {
        assert!(tx.claim_insert_id("p", "i1", T0, T0 - 7 * DAY)?, "new id");
        assert!(
            !tx.claim_insert_id("p", "i1", T0 + 1, T0 + 1 - 7 * DAY)?,
            "repeat"
        );
        assert!(
            tx.claim_insert_id("q", "i1", T0 + 2, T0 + 2 - 7 * DAY)?,
            "other project"
        );
        let later = T0 + 8 * DAY;
        assert!(
            tx.claim_insert_id("p", "i1", later, later - 7 * DAY)?,
            "past the window"
        );
        assert!(!tx.claim_insert_id("p", "i1", later + 1, later + 1 - 7 * DAY)?);
        assert!(tx.claim_insert_id("p", "i2", T0, T0 - 7 * DAY)?);
        // Only q/i1 and p/i2 arrived before T0 + 3.
        assert_eq!(tx.purge_insert_ids(T0 + 3)?, 2);
        assert!(
            tx.claim_insert_id("p", "i2", T0 + 4, 0)?,
            "forgotten by the purge"
        );
        Ok(())
    });
}

pub(super) fn exposure(
    flag: &str,
    variant: Option<&str>,
    user: &str,
    time: i64,
    kind: &str,
) -> ExposureRow {
    ExposureRow {
        project: "p".to_owned(),
        deployment: "prod".to_owned(),
        kind: kind.to_owned(),
        flag_key: flag.to_owned(),
        variant: variant.map(str::to_owned),
        experiment_key: Some("exp-1".to_owned()),
        flag_version: Some(3),
        segment_name: Some("All Other Users".to_owned()),
        user_id: (!user.starts_with("device:")).then(|| user.to_owned()),
        device_id: user.strip_prefix("device:").map(str::to_owned),
        groups: None,
        event_time: time,
        received_at: time + 5,
        insert_id: None,
        library: Some("test/1.0".to_owned()),
    }
}

/// Counts group by bucket and variant (no variant first), count distinct users by user id
/// else device id, and respect the flag, the time range and the kinds.
pub fn exposure_counts_by_bucket_and_variant(store: &dyn Store) {
    const HOUR: i64 = 3_600_000;
    let base = T0 - T0 % HOUR;
    let rows = vec![
        exposure("f", Some("on"), "u1", base + 1, "server_exposure"),
        exposure("f", Some("on"), "u1", base + 2, "server_exposure"),
        exposure("f", Some("on"), "u2", base + 3, "client_exposure"),
        exposure("f", Some("on"), "device:d1", base + 4, "client_exposure"),
        exposure("f", None, "u3", base + 5, "server_exposure"),
        exposure(
            "f",
            Some("control"),
            "u4",
            base + HOUR + 1,
            "server_exposure",
        ),
        exposure("f", Some("on"), "u5", base + 2 * HOUR, "server_exposure"),
        exposure("f", Some("on"), "u6", base + 3, "remote_assignment"),
        exposure("g", Some("on"), "u1", base + 1, "server_exposure"),
    ];
    // More rows than one statement holds, to cover chunking.
    let mut many = rows.clone();
    for i in 0..120 {
        many.push(exposure(
            "h",
            Some("on"),
            &format!("u{i}"),
            base + i,
            "assignment",
        ));
    }
    write_ok(store, "insert exposures", |tx| tx.insert_exposures(&many));
    let count = |bucket: i64, variant: Option<&str>, count: i64, users: i64| ExposureCount {
        bucket,
        variant: variant.map(str::to_owned),
        count,
        users,
    };
    read_ok(store, "count exposures", |tx| {
        let mut q = ExposureQuery {
            project: "p".to_owned(),
            flag_key: "f".to_owned(),
            kinds: vec!["server_exposure".to_owned(), "client_exposure".to_owned()],
            from: base,
            to: base + 2 * HOUR,
            bucket: HOUR,
        };
        assert_eq!(
            tx.exposure_counts(&q)?,
            vec![
                count(base, None, 1, 1),
                count(base, Some("on"), 4, 3),
                count(base + HOUR, Some("control"), 1, 1),
            ]
        );
        q.kinds.clear();
        q.to = base + 3 * HOUR;
        q.bucket = 3 * HOUR;
        let all = tx.exposure_counts(&q)?;
        assert_eq!(all.iter().map(|c| c.count).sum::<i64>(), 8, "{all:?}");
        q.flag_key = "h".to_owned();
        assert_eq!(tx.exposure_counts(&q)?[0].count, 120);
        q.project = "other".to_owned();
        assert_eq!(tx.exposure_counts(&q)?, vec![]);
        Ok(())
    });
}

fn property(id: &str, flag: &str, variant: Option<&str>, at: i64) -> ExperimentPropertyRow {
    ExperimentPropertyRow {
        project: "p".to_owned(),
        id_kind: "user".to_owned(),
        id: id.to_owned(),
        flag_key: flag.to_owned(),
        variant: variant.map(str::to_owned),
        updated_at: at,
    }
}

/// Properties are upserted (the last write of a batch wins), unset ones are kept with no
/// variant, `since` returns what changed from then on, and one flag's set properties are listed.
pub fn experiment_properties_round_trip(store: &dyn Store) {
    write_ok(store, "put properties", |tx| {
        tx.put_experiment_properties(&[
            property("u1", "a", Some("on"), T0),
            property("u1", "b", Some("x"), T0),
            property("u2", "a", Some("on"), T0),
            property("u1", "a", Some("control"), T0 + 1),
        ])
    });
    write_ok(store, "unset", |tx| {
        tx.put_experiment_properties(&[property("u2", "a", None, T0 + 2)])
    });
    let many: Vec<_> = (0..250)
        .map(|i| property(&format!("m{i}"), "a", Some("on"), T0 + 10))
        .collect();
    write_ok(store, "put many", |tx| tx.put_experiment_properties(&many));
    read_ok(store, "read properties", |tx| {
        let all = tx.experiment_properties(0)?;
        assert_eq!(all.len(), 253);
        assert_eq!(
            all[..3],
            [
                property("u1", "b", Some("x"), T0),
                property("u1", "a", Some("control"), T0 + 1),
                property("u2", "a", None, T0 + 2),
            ]
        );
        assert_eq!(tx.experiment_properties(T0 + 2)?.len(), 251);
        assert_eq!(tx.experiment_properties(T0 + 11)?, vec![]);
        // One flag's set properties: u2's was unset.
        let a = tx.flag_experiment_properties("p", "a")?;
        assert_eq!(a.len(), 251);
        assert_eq!(a[0].id, "m0");
        assert!(a.iter().all(|r| r.flag_key == "a" && r.variant.is_some()));
        assert_eq!(
            tx.flag_experiment_properties("p", "b")?,
            vec![property("u1", "b", Some("x"), T0)]
        );
        assert_eq!(tx.flag_experiment_properties("q", "a")?, vec![]);
        // One user's set properties, by flag key; u2's only one was unset.
        assert_eq!(
            tx.user_experiment_properties("p", "user", "u1")?,
            vec![
                property("u1", "a", Some("control"), T0 + 1),
                property("u1", "b", Some("x"), T0),
            ]
        );
        assert_eq!(tx.user_experiment_properties("p", "user", "u2")?, vec![]);
        assert_eq!(tx.user_experiment_properties("p", "device", "u1")?, vec![]);
        Ok(())
    });
}
