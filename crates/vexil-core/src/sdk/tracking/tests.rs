//! The tracker's tests: events to records, property changes, mutual-exclusion groups.

use super::*;
use serde_json::json;

fn source() -> Source {
    Source {
        project: "p".into(),
        deployment: Some("prod".into()),
        trusted: true,
    }
}

#[test]
fn events_become_records() {
    let cases = [
        (
            json!({"event_type": "$exposure", "user_id": "u1", "time": 5, "insert_id": "i",
                   "event_properties": {"flag_key": "f", "variant": "on", "experiment_key": "e",
                                        "metadata": {"flagVersion": 3, "segmentName": "S"}}}),
            vec![("client_exposure", "f", Some("on"), Some(3), Some("S"))],
        ),
        (
            json!({"event_type": "$exposure", "device_id": "d", "event_properties": {"flag_key": "f"}}),
            vec![("client_exposure", "f", None, None, None)],
        ),
        (
            json!({"event_type": "[Experiment] Exposure", "user_id": "u",
                   "event_properties": {"[Experiment] Flag Key": "f", "[Experiment] Variant": "treatment",
                                        "metadata": {"flagVersion": 7}}}),
            vec![("server_exposure", "f", Some("treatment"), Some(7), None)],
        ),
        (
            json!({"event_type": "[Experiment] Exposure", "user_id": "u",
                   "event_properties": {"key": "legacy", "variant": "on"}}),
            vec![("client_exposure", "legacy", Some("on"), None, None)],
        ),
        (
            json!({"event_type": "[Experiment] Assignment", "user_id": "u",
                   "event_properties": {"a.variant": "on", "a.details": "v4 rule:Beta users",
                                        "b.variant": "off", "b.details": "v1 rule:All Other Users"}}),
            vec![
                ("assignment", "a", Some("on"), Some(4), Some("Beta users")),
                ("assignment", "b", None, Some(1), Some("All Other Users")),
            ],
        ),
        (json!({"event_type": "page view", "user_id": "u"}), vec![]),
        (json!({"event_type": "$exposure", "user_id": "u"}), vec![]),
    ];
    for (event, expected) in cases {
        let got: Vec<_> = records(&source(), &event, 99)
            .into_iter()
            .map(|r| {
                (
                    r.kind,
                    r.flag_key,
                    r.variant,
                    r.flag_version,
                    r.segment_name,
                )
            })
            .collect();
        let expected: Vec<_> = expected
            .into_iter()
            .map(|(k, f, v, n, s)| {
                (
                    k.to_owned(),
                    f.to_owned(),
                    v.map(str::to_owned),
                    n,
                    s.map(str::to_owned),
                )
            })
            .collect();
        assert_eq!(got, expected, "{event}");
    }
    let row = &records(
        &source(),
        &json!({"event_type": "$exposure", "user_id": "u",
        "groups": {"org": ["acme"]}, "library": "x/1", "event_properties": {"flag_key": "f"}}),
        99,
    )[0];
    assert_eq!(
        (
            row.event_time,
            row.groups.as_deref(),
            row.library.as_deref(),
            row.deployment.as_str()
        ),
        (99, Some(r#"{"org":["acme"]}"#), Some("x/1"), "prod")
    );
}

#[test]
fn properties_follow_the_last_record_and_skip_mutex_groups() {
    let row =
        |flag: &str, variant: Option<&str>, user: Option<&str>, device: Option<&str>| ExposureRow {
            project: "p".into(),
            deployment: String::new(),
            kind: "client_exposure".into(),
            flag_key: flag.into(),
            variant: variant.map(str::to_owned),
            experiment_key: None,
            flag_version: None,
            segment_name: None,
            user_id: user.map(str::to_owned),
            device_id: device.map(str::to_owned),
            groups: None,
            event_time: 1,
            received_at: 1,
            insert_id: None,
            library: None,
        };
    let mutex = std::collections::BTreeSet::from(["mutex-1".to_owned()]);
    let rows = [
        row("a", Some("on"), Some("u"), Some("d")),
        row("b", None, None, Some("d")),
        row("mutex-1", Some("slot-1"), Some("u"), None),
        row("c", Some("x"), None, None),
    ];
    let got: Vec<_> = property_rows("p", &rows, &mutex, 7)
        .into_iter()
        .map(|p| (p.id_kind, p.id, p.flag_key, p.variant))
        .collect();
    assert_eq!(
        got,
        [
            ("user".into(), "u".into(), "a".into(), Some("on".into())),
            ("device".into(), "d".into(), "b".into(), None),
        ]
    );
}
