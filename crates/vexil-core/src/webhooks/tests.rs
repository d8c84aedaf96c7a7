//! Unit tests of the webhook events: types, filters, URLs, the signature vector, payloads
//! and the retry schedule.

use super::*;

#[test]
fn history_actions_become_event_types() {
    let on = json!({"archived": false});
    let off = json!({"archived": true});
    for (entity, action, before, after, expected) in [
        ("flag", "create", None, &on, Some("flag.created")),
        ("flag", "import", None, &on, Some("flag.created")),
        ("flag", "import", Some(&on), &on, Some("flag.updated")),
        ("flag", "activate", Some(&on), &on, Some("flag.activated")),
        (
            "flag",
            "deactivate",
            Some(&on),
            &on,
            Some("flag.deactivated"),
        ),
        ("flag", "archive", Some(&on), &off, Some("flag.archived")),
        ("flag", "unarchive", Some(&off), &on, Some("flag.updated")),
        ("flag", "restore", Some(&on), &on, Some("flag.updated")),
        ("cohort", "delete", Some(&on), &on, Some("cohort.deleted")),
        ("cohort", "replace", Some(&on), &on, Some("cohort.updated")),
        (
            "deployment",
            "update",
            Some(&on),
            &off,
            Some("deployment.archived"),
        ),
        (
            "deployment",
            "update",
            Some(&off),
            &on,
            Some("deployment.updated"),
        ),
        (
            "deployment",
            "rotate_key",
            Some(&on),
            &on,
            Some("deployment.updated"),
        ),
        ("project", "update", Some(&on), &on, None),
        ("server", "rotate", None, &on, None),
    ] {
        assert_eq!(
            event_type(entity, action, before, after).as_deref(),
            expected,
            "{entity} {action}"
        );
    }
}

#[test]
fn filters_select_exact_types_entities_or_everything() {
    let f = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(matches(&f(&["*"]), "cohort.deleted"));
    assert!(matches(&f(&["flag.*"]), "flag.activated"));
    assert!(!matches(&f(&["flag.*"]), "flagx.created"));
    assert!(matches(
        &f(&["cohort.created", "flag.created"]),
        "flag.created"
    ));
    assert!(!matches(&f(&["flag.created"]), "flag.updated"));
    assert!(!matches(&f(&[]), "flag.updated"));
    assert_eq!(
        clean_filter(&f(&["flag.created", "*", "flag.created"])).unwrap(),
        f(&["*", "flag.created"])
    );
    let Err(Error::Invalid(errors)) = clean_filter(&f(&["flag.created", "flag.renamed", "x"]))
    else {
        panic!("unknown types are refused");
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["events[1]", "events[2]"]);
    assert!(clean_filter(&[]).is_err());
}

#[test]
fn urls_are_http_or_https_with_a_host() {
    assert_eq!(
        check_url(" http://hooks.example.com:8080/vexil?x=1 ").unwrap(),
        "http://hooks.example.com:8080/vexil?x=1"
    );
    assert_eq!(
        check_url("HTTPS://hooks.example.com/vexil").unwrap(),
        "HTTPS://hooks.example.com/vexil"
    );
    for bad in [
        "https:///path",
        "ftp://example.com/",
        "example.com/hook",
        "http:///path",
        "http://user:pw@example.com/",
        "http://exa mple.com/",
    ] {
        assert!(check_url(bad).is_err(), "{bad}");
    }
    assert!(check_url(&format!("http://e.com/{}", "a".repeat(2100))).is_err());
}

/// A fixed vector, also computable with
/// `printf '1700000000.{"id":"evt_1"}' | openssl dgst -sha256 -hmac whsec_test`.
#[test]
fn signatures_match_a_fixed_vector_and_verify() {
    let body = br#"{"id":"evt_1"}"#;
    let header = signature_header(&["whsec_test"], 1_700_000_000, body).unwrap();
    assert_eq!(
        header,
        "t=1700000000,v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925"
    );
    assert!(verify("whsec_test", &header, body, 1_700_000_100, 300));
    assert!(
        !verify("whsec_test", &header, body, 1_700_001_000, 300),
        "too old"
    );
    assert!(!verify("whsec_other", &header, body, 1_700_000_000, 300));
    assert!(!verify("whsec_test", &header, b"{}", 1_700_000_000, 300));
    assert!(!verify("whsec_test", "v1=abc", body, 1_700_000_000, 300));
}

/// During a rotation's grace period a delivery carries one `v1` per secret, the new one
/// first; a receiver holding either verifies it, one holding neither does not.
#[test]
fn a_rotating_webhook_signs_with_both_secrets() {
    let body = br#"{"id":"evt_1"}"#;
    let header = signature_header(&["whsec_new", "whsec_test"], 1_700_000_000, body).unwrap();
    assert_eq!(
        header,
        format!(
            "t=1700000000,v1={},v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925",
            sign("whsec_new", 1_700_000_000, body).unwrap()
        )
    );
    for secret in ["whsec_new", "whsec_test"] {
        assert!(
            verify(secret, &header, body, 1_700_000_000, 300),
            "{secret}"
        );
    }
    assert!(!verify("whsec_other", &header, body, 1_700_000_000, 300));
}

#[test]
fn payloads_carry_the_change() {
    let actor = EventActor {
        name: "ci",
        role: "writer",
    };
    let body = payload(
        "evt_1",
        "flag.activated",
        "p",
        5,
        &actor,
        None,
        Some(json!({"state": "inactive"})),
        Some(json!({"state": "active"})),
    );
    assert_eq!(
        body,
        json!({"id": "evt_1", "type": "flag.activated", "project": "p", "created_at": 5,
               "actor": {"name": "ci", "role": "writer"},
               "before": {"state": "inactive"}, "after": {"state": "active"}})
    );
    let with_comment = payload("e", "flag.created", "p", 5, &actor, Some("why"), None, None);
    assert_eq!(with_comment["comment"], "why");
    assert_eq!(with_comment["before"], Value::Null);
    let d = public_document(
        "deployment",
        json!({"key": "web", "api_key": "server-x", "previous_api_key": "server-y"}),
    );
    assert_eq!(d, json!({"key": "web"}));
}

#[test]
fn the_schedule_gives_up_after_its_last_delay() {
    let s = RetrySchedule::default();
    assert_eq!(s.delay(1), Some(Duration::from_secs(10)));
    assert_eq!(s.delay(10), Some(Duration::from_secs(480 * 60)));
    assert_eq!(s.delay(11), None);
    assert_eq!(s.delay(0), None);
    let total: Duration = s.delays.iter().sum();
    assert!(total > Duration::from_secs(20 * 3600) && total < Duration::from_secs(30 * 3600));
}
