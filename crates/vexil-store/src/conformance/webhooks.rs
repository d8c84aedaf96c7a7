//! Conformance cases for webhook subscriptions, their outbox (claims, leases, outcomes) and
//! the bounded delivery log.

use super::{
    assert_conflict, assert_mismatch, assert_not_found, read_ok, seed_projects, write_ok, T0,
};
use crate::rows::{DeliveryRow, OutboxRow, WebhookRow};
use crate::Store;

fn webhook(project: &str, id: &str) -> WebhookRow {
    WebhookRow {
        project: project.to_owned(),
        id: id.to_owned(),
        url: format!("http://127.0.0.1:9/{id}"),
        description: format!("hook {id}"),
        events: vec!["flag.created".to_owned(), "cohort.*".to_owned()],
        secret: format!("whsec_{id}"),
        active: true,
        version: 1,
        created_at: T0,
        updated_at: T0,
        previous_secret: None,
        previous_secret_expires_at: None,
    }
}

fn event(id: &str, webhook: &str, due: i64) -> OutboxRow {
    OutboxRow {
        id: id.to_owned(),
        project: "p".to_owned(),
        webhook: webhook.to_owned(),
        event_type: "flag.created".to_owned(),
        payload: format!(r#"{{"id":"{id}"}}"#),
        attempts: 0,
        next_attempt_at: due,
        created_at: T0,
        delivered_at: None,
        failed_at: None,
    }
}

fn delivery(webhook: &str, attempt: i64, status: Option<i64>) -> DeliveryRow {
    DeliveryRow {
        project: "p".to_owned(),
        webhook: webhook.to_owned(),
        event_id: "e1".to_owned(),
        event_type: "flag.created".to_owned(),
        attempt,
        at: T0 + attempt,
        status,
        response: if status.is_some() {
            "ok".to_owned()
        } else {
            String::new()
        },
        error: if status.is_none() {
            "refused".to_owned()
        } else {
            String::new()
        },
        duration_ms: 5,
    }
}

/// Subscriptions round-trip with their lists and booleans, conflict on id per project, update
/// under a version check, and delete with their outbox rows and log.
pub fn webhooks_round_trip(store: &dyn Store) {
    seed_projects(store, &["p", "q"]);
    let (a, b) = (webhook("p", "a"), webhook("p", "b"));
    write_ok(store, "insert webhooks", |tx| {
        tx.insert_webhook(&b)?;
        tx.insert_webhook(&a)?;
        tx.insert_webhook(&webhook("q", "a"))?;
        assert_conflict(
            tx.insert_webhook(&webhook("p", "a")),
            "webhook",
            "id",
            "same id",
        );
        tx.insert_outbox(&event("e1", "a", T0))?;
        tx.insert_delivery(&delivery("a", 1, Some(200)), 10)?;
        Ok(())
    });
    read_ok(store, "read webhooks", |tx| {
        assert_eq!(tx.get_webhook("p", "a")?, Some(a.clone()));
        assert_eq!(tx.get_webhook("p", "zz")?, None);
        assert_eq!(tx.list_webhooks("p")?, vec![a.clone(), b.clone()]);
        assert!(tx.insert_webhook(&webhook("p", "c")).is_err(), "read-only");
        Ok(())
    });
    let mut changed = a.clone();
    changed.active = false;
    changed.events = vec![];
    changed.secret = "whsec_new".to_owned();
    changed.previous_secret = Some("whsec_a".to_owned());
    changed.previous_secret_expires_at = Some(T0 + 60_000);
    changed.version = 2;
    write_ok(store, "update", |tx| {
        tx.update_webhook(&changed, 1)?;
        assert_mismatch(tx.update_webhook(&changed, 1), 2, "stale version");
        assert_not_found(tx.update_webhook(&webhook("p", "zz"), 1), "missing");
        Ok(())
    });
    write_ok(store, "delete", |tx| {
        assert_eq!(tx.get_webhook("p", "a")?, Some(changed.clone()));
        tx.delete_webhook("p", "a")?;
        assert_not_found(tx.delete_webhook("p", "a"), "deleted twice");
        assert_eq!(tx.get_outbox("e1")?, None, "its outbox went with it");
        assert!(tx.list_deliveries("p", "a", 10)?.is_empty(), "and its log");
        assert_eq!(
            tx.list_webhooks("q")?.len(),
            1,
            "other projects keep theirs"
        );
        Ok(())
    });
}

/// Claims take due rows oldest first, at most `limit`, and hold them until the lease lapses;
/// outcomes are written back; finished rows are neither claimed again nor kept by the purge.
pub fn outbox_claims_and_outcomes(store: &dyn Store) {
    seed_projects(store, &["p"]);
    write_ok(store, "queue", |tx| {
        tx.insert_webhook(&webhook("p", "a"))?;
        tx.insert_outbox(&event("e2", "a", T0 + 20))?;
        tx.insert_outbox(&event("e1", "a", T0 + 10))?;
        tx.insert_outbox(&event("e3", "a", T0 + 30))?;
        tx.insert_outbox(&event("later", "a", T0 + 1000))?;
        assert_conflict(
            tx.insert_outbox(&event("e1", "a", T0)),
            "webhook event",
            "id",
            "same id",
        );
        Ok(())
    });
    let claimed = write_ok(store, "claim two", |tx| {
        tx.claim_outbox(T0 + 100, T0 + 500, 2)
    });
    let ids: Vec<&str> = claimed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["e1", "e2"]);
    assert!(claimed.iter().all(|r| r.next_attempt_at == T0 + 500));
    let rest = write_ok(store, "claim the rest", |tx| {
        tx.claim_outbox(T0 + 100, T0 + 500, 10)
    });
    let ids: Vec<&str> = rest.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        ["e3"],
        "claimed rows are held until their lease lapses"
    );
    let mut done = claimed[0].clone();
    done.attempts = 1;
    done.delivered_at = Some(T0 + 101);
    let mut failed = claimed[1].clone();
    failed.attempts = 7;
    failed.failed_at = Some(T0 + 102);
    write_ok(store, "outcomes", |tx| {
        tx.update_outbox(&done)?;
        tx.update_outbox(&failed)?;
        assert_not_found(tx.update_outbox(&event("zz", "a", T0)), "missing row");
        Ok(())
    });
    read_ok(store, "read back", |tx| {
        assert_eq!(tx.get_outbox("e1")?, Some(done.clone()));
        assert_eq!(tx.get_outbox("e2")?, Some(failed.clone()));
        assert!(tx.claim_outbox(T0, T0, 1).is_err(), "read-only");
        Ok(())
    });
    // After the lease lapses, only the unfinished rows come back.
    let again = write_ok(store, "after the lease", |tx| {
        tx.claim_outbox(T0 + 2000, T0 + 3000, 10)
    });
    let ids: Vec<&str> = again.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["e3", "later"]);
    let purged = write_ok(store, "purge", |tx| tx.purge_outbox(T0 + 1));
    assert_eq!(purged, 2, "the delivered and the failed rows");
    read_ok(store, "after purge", |tx| {
        assert_eq!(tx.get_outbox("e1")?, None);
        assert!(tx.get_outbox("e3")?.is_some());
        Ok(())
    });
}

/// The log lists a webhook's attempts newest first, keeps only the newest `keep`, and keeps
/// absent statuses and empty texts as they were.
pub fn delivery_log_keeps_the_newest(store: &dyn Store) {
    seed_projects(store, &["p"]);
    write_ok(store, "log", |tx| {
        tx.insert_webhook(&webhook("p", "a"))?;
        tx.insert_webhook(&webhook("p", "b"))?;
        for attempt in 1..=5 {
            let status = (attempt % 2 == 0).then_some(500);
            tx.insert_delivery(&delivery("a", attempt, status), 3)?;
        }
        tx.insert_delivery(&delivery("b", 1, Some(204)), 3)?;
        Ok(())
    });
    read_ok(store, "read log", |tx| {
        let log = tx.list_deliveries("p", "a", 10)?;
        let attempts: Vec<i64> = log.iter().map(|d| d.attempt).collect();
        assert_eq!(attempts, [5, 4, 3]);
        assert_eq!(log[0], delivery("a", 5, None));
        assert_eq!(log[1], delivery("a", 4, Some(500)));
        assert_eq!(tx.list_deliveries("p", "a", 1)?.len(), 1);
        assert_eq!(
            tx.list_deliveries("p", "b", 10)?,
            vec![delivery("b", 1, Some(204))]
        );
        Ok(())
    });
}
