//! The webhook outbox through the services over a real SQLite store: a change queues its event
//! in its own transaction (a refused change queues nothing), only for the active webhooks whose
//! filter selects it; and each recorded attempt settles the event as the schedule says.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use vexil_core::service::{
    Attempt, AuditFilter, NewProject, NewWebhook, Outcome, RotateWebhookSecret, WebhookPatch,
};
use vexil_core::webhooks::RetrySchedule;
use vexil_core::{Actor, Services};
use vexil_store::SqliteStore;

/// Removes the scratch directory when the test ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn services(name: &str) -> (Services, Scratch) {
    let (services, _, scratch) = services_and_store(name);
    (services, scratch)
}

fn services_and_store(name: &str) -> (Services, Arc<SqliteStore>, Scratch) {
    let dir =
        std::env::temp_dir().join(format!("vexil-core-webhooks-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.join("vexil.db")).unwrap());
    let services = Services::new(store.clone());
    let project = NewProject {
        name: "Shop".into(),
        key: Some("shop".into()),
        description: String::new(),
    };
    services.projects.create(&Actor::cli(), project).unwrap();
    (services, store, Scratch(dir))
}

fn hook(services: &Services, events: &[&str], active: bool) -> String {
    let new = NewWebhook {
        url: "http://127.0.0.1:9/hook".into(),
        description: String::new(),
        events: events.iter().map(|e| e.to_string()).collect(),
        active,
    };
    let created = services
        .webhooks
        .create(&Actor::cli(), "shop", new)
        .unwrap();
    assert!(created.secret.starts_with("whsec_"));
    created.webhook.id
}

fn create_flag(services: &Services, key: &str) -> vexil_core::Result<()> {
    let new = serde_json::from_value(json!({"project": "shop", "name": key, "key": key})).unwrap();
    services.flags.create(&Actor::cli(), new).map(|_| ())
}

/// Everything due, whenever it is due.
fn claim_all(services: &Services) -> Vec<vexil_core::service::DueEvent> {
    services
        .webhooks
        .claim_due(i64::MAX / 2, 1000, 100)
        .unwrap()
}

#[test]
fn changes_queue_their_events_in_their_transaction() {
    let (services, _scratch) = services("queue");
    let flags = hook(&services, &["flag.*"], true);
    hook(&services, &["cohort.*"], true);
    hook(&services, &["*"], false);
    create_flag(&services, "checkout").unwrap();
    // A refused change (the key is taken) rolls back, events included.
    assert!(create_flag(&services, "checkout").is_err());
    let due = claim_all(&services);
    assert_eq!(
        due.len(),
        1,
        "one event, for the one active webhook that wants it"
    );
    let event = &due[0];
    assert_eq!(event.event.webhook, flags);
    assert_eq!(event.event.event_type, "flag.created");
    assert_eq!(event.secrets.len(), 1, "no rotation, one secret");
    assert!(event.secrets[0].starts_with("whsec_"));
    let body: Value = serde_json::from_str(&event.event.payload).unwrap();
    assert_eq!(body["id"], event.event.id.as_str());
    assert_eq!(body["type"], "flag.created");
    assert_eq!(body["project"], "shop");
    assert_eq!(body["actor"], json!({"name": "cli", "role": "admin"}));
    assert_eq!(body["before"], Value::Null);
    assert_eq!(body["after"]["key"], "checkout");
    assert!(body.get("comment").is_none(), "no reason given, no comment");
    assert!(claim_all(&services).is_empty(), "claimed events are leased");
    // A change with a reason carries it.
    let why = Actor::cli().with_comment(Some("Ticket 42".into()));
    services
        .flags
        .apply(
            &why,
            Some("shop"),
            "checkout",
            Some(1),
            vec![vexil_core::service::FlagChange::Activate],
        )
        .unwrap();
    let due = claim_all(&services);
    let body: Value = serde_json::from_str(&due[0].event.payload).unwrap();
    assert_eq!(body["type"], "flag.activated", "{body}");
    assert_eq!(body["comment"], "Ticket 42");
}

#[test]
fn attempts_settle_events_by_the_schedule() {
    let (services, _scratch) = services("settle");
    let id = hook(&services, &["*"], true);
    create_flag(&services, "a").unwrap();
    let schedule = RetrySchedule {
        delays: vec![Duration::ZERO],
    };
    let attempt = |status: Option<u16>| Attempt {
        at: 1,
        status,
        response: "x".repeat(5000),
        error: status.is_none().then(|| "connection refused".to_string()),
        duration_ms: 3,
    };
    let due = claim_all(&services).remove(0);
    let outcome = services
        .webhooks
        .record_attempt(&due, attempt(Some(500)), &schedule)
        .unwrap();
    assert!(matches!(outcome, Outcome::Retry(_)), "{outcome:?}");
    let again = claim_all(&services).remove(0);
    assert_eq!(again.event.id, due.event.id, "due again after the delay");
    assert_eq!(again.event.attempts, 1);
    let outcome = services
        .webhooks
        .record_attempt(&again, attempt(None), &schedule)
        .unwrap();
    assert_eq!(outcome, Outcome::Failed, "no delay left");
    assert!(
        claim_all(&services).is_empty(),
        "a failed event is not tried again"
    );

    let test = services
        .webhooks
        .send_test(&Actor::cli(), "shop", &id)
        .unwrap();
    let due = claim_all(&services).remove(0);
    assert_eq!(due.event.id, test.event_id);
    let outcome = services
        .webhooks
        .record_attempt(&due, attempt(Some(204)), &schedule)
        .unwrap();
    assert_eq!(outcome, Outcome::Delivered);

    let log = services
        .webhooks
        .deliveries(&Actor::cli(), "shop", &id, 50)
        .unwrap();
    let seen: Vec<(i64, Option<i64>, bool)> =
        log.iter().map(|d| (d.attempt, d.status, d.ok)).collect();
    assert_eq!(
        seen,
        [
            (1, Some(204), true),
            (2, None, false),
            (1, Some(500), false)
        ]
    );
    assert_eq!(log[1].error.as_deref(), Some("connection refused"));
    assert_eq!(log[0].response.len(), 1024, "answers are cut to 1 KiB");
    assert!(services
        .webhooks
        .deliveries(&Actor::cli(), "shop", &id, 51)
        .is_err());

    // Redelivery queues a failed or a delivered event again, now, with its id; a given-up
    // event that fails again is failed at once (its retries went on from where they stopped).
    let failed = &log[1].event_id;
    for event in [failed, &test.event_id] {
        let queued = services
            .webhooks
            .redeliver(&Actor::cli(), "shop", &id, event)
            .unwrap();
        assert_eq!(&queued.event_id, event);
        let due = claim_all(&services);
        assert_eq!(due.len(), 1);
        assert_eq!(&due[0].event.id, event, "the same event, with its id");
    }
    services
        .webhooks
        .redeliver(&Actor::cli(), "shop", &id, failed)
        .unwrap();
    let due = claim_all(&services).remove(0);
    let outcome = services
        .webhooks
        .record_attempt(&due, attempt(None), &schedule)
        .unwrap();
    assert_eq!(outcome, Outcome::Failed);
    let other = hook(&services, &["*"], true);
    for (webhook, event) in [(&other, failed.as_str()), (&id, "evt_nope"), (&id, "a\0b")] {
        let err = services
            .webhooks
            .redeliver(&Actor::cli(), "shop", webhook, event)
            .unwrap_err();
        assert!(
            matches!(
                err,
                vexil_core::Error::NotFound {
                    entity: "webhook event",
                    ..
                }
            ),
            "{webhook} {event}: {err:?}"
        );
    }
    let reader = Actor {
        role: vexil_core::service::Role::Reader,
        ..Actor::cli()
    };
    assert!(services
        .webhooks
        .redeliver(&reader, "shop", &id, failed)
        .is_err());
}

#[test]
fn group_changes_are_delivered_with_before_and_after() {
    let (services, _scratch) = services("groups");
    hook(&services, &["mutex_group.*", "holdout.archived"], true);
    let new =
        serde_json::from_value(json!({"name": "Home", "slots": [{"percentage": 50}]})).unwrap();
    let created = services
        .groups
        .create_mutex(&Actor::cli(), "shop", new)
        .unwrap();
    let patch = vexil_core::service::GroupPatch::MutualExclusion(
        serde_json::from_value(json!({"slots": [{"percentage": 40}, {"percentage": 40}]})).unwrap(),
    );
    services
        .groups
        .update(
            &Actor::cli(),
            "shop",
            "mutex-home",
            Some(created.value.version),
            patch,
        )
        .unwrap();
    let new = serde_json::from_value(json!({"name": "Program", "percentage": 5})).unwrap();
    let h = services
        .groups
        .create_holdout(&Actor::cli(), "shop", new)
        .unwrap();
    services
        .groups
        .archive(
            &Actor::cli(),
            "shop",
            vexil_core::GroupKind::Holdout,
            "holdout-program",
            Some(h.value.version),
        )
        .unwrap();
    let due = claim_all(&services);
    let mut types: Vec<&str> = due.iter().map(|d| d.event.event_type.as_str()).collect();
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "holdout.archived",
            "mutex_group.created",
            "mutex_group.updated"
        ]
    );
    let updated = due
        .iter()
        .find(|d| d.event.event_type == "mutex_group.updated")
        .unwrap();
    let body: Value = serde_json::from_str(&updated.event.payload).unwrap();
    assert_eq!(body["before"]["slots"][0]["percentage"], 50);
    assert_eq!(body["after"]["slots"][1]["key"], "slot-2");
}

/// A rotation with a grace period keeps the replaced secret signing beside the new one until
/// it expires; the view says until when. A rotation without one, or the next rotation, drops
/// it at once; a grace period past 7 days is refused, naming the field.
#[test]
fn rotations_keep_the_old_secret_signing_for_the_grace_period() {
    let (services, _scratch) = services("rotate");
    let id = hook(&services, &["*"], true);
    let cli = Actor::cli();
    let secrets_of_next_event = |now: i64| {
        services.webhooks.send_test(&cli, "shop", &id).unwrap();
        // Leased for longer than the test looks ahead, so that each claim takes only the new
        // event.
        let due = services.webhooks.claim_due(now, 1 << 40, 100).unwrap();
        assert_eq!(due.len(), 1);
        due[0].secrets.clone()
    };
    let rotate = |grace_seconds: u32| {
        let version = services.webhooks.get(&cli, "shop", &id).unwrap().version;
        let req = RotateWebhookSecret { grace_seconds };
        services
            .webhooks
            .rotate_secret(&cli, "shop", &id, Some(version), req)
    };

    let first = rotate(0).unwrap();
    assert_eq!(first.webhook.previous_secret_expires_at, None);
    let now = vexil_core::service::now_ms;
    let start = now();
    assert_eq!(secrets_of_next_event(now()), vec![first.secret.clone()]);

    let second = rotate(60).unwrap();
    let until = second.webhook.previous_secret_expires_at.expect("in grace");
    assert!((start + 60_000..start + 70_000).contains(&until), "{until}");
    let listed = services.webhooks.list(&cli, "shop").unwrap();
    assert_eq!(listed[0].previous_secret_expires_at, Some(until));
    assert_eq!(
        secrets_of_next_event(until - 1),
        vec![second.secret.clone(), first.secret.clone()],
        "both sign during the grace period, the new one first"
    );
    assert_eq!(
        secrets_of_next_event(until),
        vec![second.secret.clone()],
        "the old one stops when it ends"
    );

    let third = rotate(0).unwrap();
    assert_eq!(third.webhook.previous_secret_expires_at, None);
    assert_eq!(
        secrets_of_next_event(now()),
        vec![third.secret],
        "a rotation without grace ends the one before"
    );

    let err = rotate(604_801).unwrap_err();
    assert!(format!("{err:?}").contains("grace_seconds"), "{err:?}");
}

/// Every change to a webhook is in the audit log, as entity `webhook`, with who and what; its
/// documents are views, so no history entry holds a secret. Webhook changes queue no events.
#[test]
fn webhook_changes_are_audited_without_their_secrets() {
    let (services, store, _scratch) = services_and_store("audit");
    let cli = Actor::cli().with_comment(Some("move to the new receiver".into()));
    let id = hook(&services, &["flag.*"], true);
    let version = |services: &Services| services.webhooks.get(&cli, "shop", &id).unwrap().version;
    let patch = WebhookPatch {
        url: Some("https://hooks.example.com/v2".into()),
        active: Some(false),
        ..WebhookPatch::default()
    };
    services
        .webhooks
        .update(&cli, "shop", &id, Some(version(&services)), patch)
        .unwrap();
    let rotated = services
        .webhooks
        .rotate_secret(
            &cli,
            "shop",
            &id,
            Some(version(&services)),
            RotateWebhookSecret { grace_seconds: 60 },
        )
        .unwrap();
    services
        .webhooks
        .delete(&cli, "shop", &id, Some(version(&services)))
        .unwrap();

    let filter = AuditFilter {
        project: Some("shop".into()),
        entity: Some("webhook".into()),
        ..AuditFilter::default()
    };
    let page = services.audit.list(&cli, filter).unwrap();
    let entries: Vec<(i64, &str, &str)> = page
        .entries
        .iter()
        .map(|e| {
            (
                e.meta.version,
                e.meta.action.as_str(),
                e.meta.summary.as_str(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            (
                4,
                "delete",
                "deleted (it posted to https://hooks.example.com/v2)"
            ),
            (
                3,
                "rotate_secret",
                "rotated the secret; the old one signs for 60 s more"
            ),
            (2, "update", "url https://hooks.example.com/v2; deactivated"),
            (1, "create", "created: flag.* to http://127.0.0.1:9/hook"),
        ]
    );
    assert!(page.entries.iter().all(|e| e.key == id));
    assert_eq!(
        page.entries[2].meta.comment.as_deref(),
        Some("move to the new receiver")
    );
    let docs = vexil_store::read(store.as_ref(), |tx| {
        tx.list_history("shop", "webhook", &id, None, 10)
    })
    .unwrap();
    assert_eq!(docs.len(), 4);
    for entry in &docs {
        assert!(!entry.doc.contains("whsec_"), "{}", entry.doc);
        let doc: Value = serde_json::from_str(&entry.doc).unwrap();
        assert_eq!(doc["id"], id.as_str());
    }
    assert!(!docs[1].doc.contains(&rotated.secret));
    assert!(
        claim_all(&services).is_empty(),
        "webhook changes are not delivered"
    );
}
