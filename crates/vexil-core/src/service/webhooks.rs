//! Webhook subscriptions and their outbox: create, list, show, change, delete and rotate the
//! secret of a project's webhooks; [`enqueue`], which [`super::record`] calls so that every
//! delivered change is queued in the transaction that makes it; and the delivery side the
//! server's worker calls (claim due events, record each attempt's outcome).
//!
//! A webhook's secret signs its deliveries, so it is stored in clear. It is shown once, in
//! the answer that made it (creation, rotation); no view carries it afterwards.
//!
//! Every change to a webhook is a history entry of entity `webhook` (the audit log's "who
//! pointed our events where, who rotated the secret"), whose document is the view: never the
//! secret. Webhook changes are not themselves delivered to webhooks.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use vexil_store::{DeliveryRow, OutboxRow, Tx, WebhookRow};

use super::convert::from_doc;
use super::{check_version, now_ms, record, Actor, Core, Role};
use crate::error::{Error, Result};
use crate::keys::{is_url_safe_key, random_base62};
use crate::webhooks::{self as events, EventActor, RetrySchedule};

/// How many attempts each webhook's delivery log keeps.
pub const LOG_SIZE: u32 = 50;

/// A webhook to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where events are posted: an `https://` or `http://` URL. Deliveries to loopback,
    /// private and link-local addresses are refused unless the node allows their network
    /// (`vexil serve --webhook-allow-network`).
    pub url: String,
    #[serde(default)]
    pub description: String,
    /// The event types delivered: `flag.created`, `flag.*`, `*`, … (entities `flag`,
    /// `cohort`, `deployment`, `mutex_group`, `holdout`, `metric`; actions `created`,
    /// `updated`, `activated`, `deactivated`, `archived`, `deleted`).
    pub events: Vec<String>,
    /// Whether changes are queued for it (default true).
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// Fields of a webhook to change; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub events: Option<Vec<String>>,
    pub active: Option<bool>,
}

/// A webhook, without its secret. In the OpenAPI document it is the `Webhook` schema.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Webhook)]
pub struct WebhookView {
    pub project: String,
    /// Generated, unique per project.
    pub id: String,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub active: bool,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// While a rotation's grace period runs: until when (Unix milliseconds) the replaced
    /// secret still signs every delivery beside the new one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<i64>,
    /// The newest delivery attempt, when there is one (in listings and `GET`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_delivery: Option<DeliveryView>,
}

/// A webhook with its signing secret: the answer of a creation or a rotation, the only ones
/// that show the secret.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_` and 43 random base62 characters; shown this once.
    pub secret: String,
}

/// One delivery attempt. In the OpenAPI document it is the `WebhookDelivery` schema.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = WebhookDelivery)]
pub struct DeliveryView {
    pub event_id: String,
    pub event_type: String,
    /// 1 for the first attempt at this event.
    pub attempt: i64,
    /// When it was made (Unix milliseconds).
    pub at: i64,
    /// The receiver's HTTP status; absent when no answer came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    /// Whether the receiver answered 2xx.
    pub ok: bool,
    /// The start of the receiver's answer (at most 1 KiB).
    pub response: String,
    /// Why no answer came (connection refused, timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: i64,
}

impl From<DeliveryRow> for DeliveryView {
    fn from(d: DeliveryRow) -> DeliveryView {
        DeliveryView {
            ok: d.status.is_some_and(|s| (200..300).contains(&s)),
            event_id: d.event_id,
            event_type: d.event_type,
            attempt: d.attempt,
            at: d.at,
            status: d.status,
            response: d.response,
            error: (!d.error.is_empty()).then_some(d.error),
            duration_ms: d.duration_ms,
        }
    }
}

/// The answer of the test endpoint: the queued event.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct QueuedEvent {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
}

/// How to replace a webhook's signing secret: the replaced secret keeps signing every
/// delivery beside the new one for `grace_seconds` (0, the default, stops it at once; at most
/// 604800, 7 days), so receivers can switch without refusing a delivery. A rotation ends the
/// grace period of the one before.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateWebhookSecret {
    #[serde(default)]
    pub grace_seconds: u32,
}

/// An event a worker claimed, with what it needs to deliver it.
#[derive(Debug, Clone)]
pub struct DueEvent {
    pub event: OutboxRow,
    pub url: String,
    /// The secrets that sign it: the current one, then the replaced one while its grace
    /// period runs.
    pub secrets: Vec<String>,
}

/// What one delivery attempt got.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// When it started (Unix milliseconds).
    pub at: i64,
    pub status: Option<u16>,
    /// The start of the answer; cut to 1 KiB here.
    pub response: String,
    /// Why no answer came.
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// What became of an event after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Tried again at this time (Unix milliseconds).
    Retry(i64),
    /// The retries ran out.
    Failed,
    /// The webhook was deleted meanwhile; nothing was recorded.
    Gone,
}

/// Webhook use cases.
#[derive(Clone)]
pub struct WebhookService {
    pub(crate) core: Core,
}

/// The replaced secret while it still signs, as of `now` (Unix milliseconds).
fn previous_secret(row: &WebhookRow, now: i64) -> Option<(&str, i64)> {
    match (&row.previous_secret, row.previous_secret_expires_at) {
        (Some(secret), Some(until)) if until > now => Some((secret, until)),
        _ => None,
    }
}

fn view(row: WebhookRow, last_delivery: Option<DeliveryView>) -> WebhookView {
    WebhookView {
        previous_secret_expires_at: previous_secret(&row, now_ms()).map(|(_, until)| until),
        project: row.project,
        id: row.id,
        url: row.url,
        description: row.description,
        events: row.events,
        active: row.active,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
        last_delivery,
    }
}

fn get(tx: &mut dyn Tx, project: &str, id: &str) -> Result<WebhookRow> {
    let not_found = || Error::NotFound {
        entity: "webhook",
        key: id.to_string(),
    };
    // Ids are generated URL-safe, so anything else (a NUL byte, say) names nothing; it never
    // reaches the database, which may refuse such text.
    if !is_url_safe_key(project) || !is_url_safe_key(id) {
        return Err(not_found());
    }
    tx.get_webhook(project, id)?.ok_or_else(not_found)
}

fn last_delivery(tx: &mut dyn Tx, row: &WebhookRow) -> Result<Option<DeliveryView>> {
    Ok(tx
        .list_deliveries(&row.project, &row.id, 1)?
        .into_iter()
        .next()
        .map(DeliveryView::from))
}

/// The history entry of a change to a webhook: its view as the document, never its secret.
fn audit(
    tx: &mut dyn Tx,
    actor: &Actor,
    row: &WebhookRow,
    version: i64,
    action: &str,
    summary: String,
) -> Result<()> {
    let doc = serde_json::to_string(&view(row.clone(), None))
        .map_err(|e| Error::Internal(Box::new(e)))?;
    let at = now_ms();
    record(
        tx,
        actor,
        &row.project,
        "webhook",
        &row.id,
        version,
        at,
        action,
        summary,
        doc,
    )
}

fn secret() -> Result<String> {
    Ok(format!("whsec_{}", random_base62(43)?))
}

fn event_id() -> Result<String> {
    Ok(format!("evt_{}", random_base62(24)?))
}

fn check_description(description: &str) -> Result<String> {
    // The shared text rule: at most 500 characters, no control characters (PostgreSQL
    // refuses NUL in text, which must be a 422, not a 500).
    match crate::validate::text_error("description", description, 500, false) {
        Some(error) => Err(Error::Invalid(vec![error])),
        None => Ok(description.trim().to_string()),
    }
}

impl WebhookService {
    /// Creates a webhook; the answer holds its secret, shown this once.
    pub fn create(
        &self,
        actor: &Actor,
        project: &str,
        req: NewWebhook,
    ) -> Result<WebhookWithSecret> {
        actor.require(Role::Writer)?;
        let now = now_ms();
        let row = WebhookRow {
            project: project.to_string(),
            id: format!("wh_{}", random_base62(16)?.to_ascii_lowercase()),
            url: events::check_url(&req.url)?,
            description: check_description(&req.description)?,
            events: events::clean_filter(&req.events)?,
            secret: secret()?,
            active: req.active,
            version: 1,
            created_at: now,
            updated_at: now,
            previous_secret: None,
            previous_secret_expires_at: None,
        };
        self.core.write(|tx| {
            super::projects::lock(tx, project)?;
            tx.insert_webhook(&row)?;
            let summary = format!("created: {} to {}", row.events.join(", "), row.url);
            audit(tx, actor, &row, row.version, "create", summary)
        })?;
        Ok(WebhookWithSecret {
            secret: row.secret.clone(),
            webhook: view(row, None),
        })
    }

    /// A project's webhooks with their newest delivery; anyone may read them (no secrets).
    pub fn list(&self, _actor: &Actor, project: &str) -> Result<Vec<WebhookView>> {
        self.core.read(|tx| {
            super::projects::get(tx, project)?;
            let rows = tx.list_webhooks(project)?;
            let mut views = Vec::with_capacity(rows.len());
            for row in rows {
                let last = last_delivery(tx, &row)?;
                views.push(view(row, last));
            }
            Ok(views)
        })
    }

    pub fn get(&self, _actor: &Actor, project: &str, id: &str) -> Result<WebhookView> {
        self.core.read(|tx| {
            let row = get(tx, project, id)?;
            let last = last_delivery(tx, &row)?;
            Ok(view(row, last))
        })
    }

    /// Changes a webhook (`expected` is the version the change is based on).
    pub fn update(
        &self,
        actor: &Actor,
        project: &str,
        id: &str,
        expected: Option<i64>,
        patch: WebhookPatch,
    ) -> Result<WebhookView> {
        actor.require(Role::Writer)?;
        let url = patch.url.as_deref().map(events::check_url).transpose()?;
        let filter = patch
            .events
            .as_deref()
            .map(events::clean_filter)
            .transpose()?;
        let description = patch
            .description
            .as_deref()
            .map(check_description)
            .transpose()?;
        self.change(actor, project, id, expected, "update", |row| {
            let mut changed = Vec::new();
            if let Some(url) = url.filter(|u| *u != row.url) {
                changed.push(format!("url {url}"));
                row.url = url;
            }
            if let Some(filter) = filter.filter(|f| *f != row.events) {
                changed.push(format!("events {}", filter.join(", ")));
                row.events = filter;
            }
            if let Some(description) = description.filter(|d| *d != row.description) {
                changed.push("description".to_owned());
                row.description = description;
            }
            if let Some(active) = patch.active.filter(|a| *a != row.active) {
                changed.push(if active { "activated" } else { "deactivated" }.to_owned());
                row.active = active;
            }
            Ok(match changed.is_empty() {
                true => "saved unchanged".to_owned(),
                false => changed.join("; "),
            })
        })
        .map(|row| view(row, None))
    }

    /// Replaces a webhook's secret. The old one keeps signing beside it for the grace period
    /// (and stops at once without one); a rotation ends the grace period of the one before.
    /// The answer holds the new secret, shown this once.
    pub fn rotate_secret(
        &self,
        actor: &Actor,
        project: &str,
        id: &str,
        expected: Option<i64>,
        req: RotateWebhookSecret,
    ) -> Result<WebhookWithSecret> {
        actor.require(Role::Writer)?;
        let grace = super::secrets::grace_ms(req.grace_seconds)?;
        let new_secret = secret()?;
        let row = self.change(actor, project, id, expected, "rotate_secret", |row| {
            let in_grace = grace > 0;
            let replaced = std::mem::replace(&mut row.secret, new_secret.clone());
            row.previous_secret = in_grace.then_some(replaced);
            row.previous_secret_expires_at = in_grace.then(|| now_ms().saturating_add(grace));
            Ok(match in_grace {
                true => format!(
                    "rotated the secret; the old one signs for {} s more",
                    req.grace_seconds
                ),
                false => "rotated the secret; the old one stopped at once".to_owned(),
            })
        })?;
        Ok(WebhookWithSecret {
            secret: new_secret,
            webhook: view(row, None),
        })
    }

    fn change(
        &self,
        actor: &Actor,
        project: &str,
        id: &str,
        expected: Option<i64>,
        action: &str,
        edit: impl FnOnce(&mut WebhookRow) -> Result<String>,
    ) -> Result<WebhookRow> {
        actor.require(Role::Writer)?;
        self.core.write(|tx| {
            super::projects::lock(tx, project)?;
            let mut row = get(tx, project, id)?;
            check_version("webhook", id, expected, row.version)?;
            let summary = edit(&mut row)?;
            row.version += 1;
            row.updated_at = now_ms().max(row.updated_at + 1);
            tx.update_webhook(&row, row.version - 1)?;
            audit(tx, actor, &row, row.version, action, summary)?;
            Ok(row)
        })
    }

    /// Deletes a webhook with its queued events and delivery log.
    pub fn delete(
        &self,
        actor: &Actor,
        project: &str,
        id: &str,
        expected: Option<i64>,
    ) -> Result<()> {
        actor.require(Role::Writer)?;
        self.core.write(|tx| {
            super::projects::lock(tx, project)?;
            let row = get(tx, project, id)?;
            check_version("webhook", id, expected, row.version)?;
            tx.delete_webhook(project, id)?;
            let summary = format!("deleted (it posted to {})", row.url);
            audit(tx, actor, &row, row.version + 1, "delete", summary)
        })
    }

    /// A webhook's newest `limit` delivery attempts (1 to [`LOG_SIZE`]), newest first.
    pub fn deliveries(
        &self,
        _actor: &Actor,
        project: &str,
        id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryView>> {
        if !(1..=LOG_SIZE).contains(&limit) {
            return Err(Error::invalid(
                "limit",
                "out_of_range",
                format!("limit is 1 to {LOG_SIZE}"),
            ));
        }
        self.core.read(|tx| {
            get(tx, project, id)?;
            Ok(tx
                .list_deliveries(project, id, limit)?
                .into_iter()
                .map(DeliveryView::from)
                .collect())
        })
    }

    /// Queues a `webhook.test` event for one webhook, whatever its filter and state.
    pub fn send_test(&self, actor: &Actor, project: &str, id: &str) -> Result<QueuedEvent> {
        actor.require(Role::Writer)?;
        let event_id = event_id()?;
        let now = now_ms();
        let mut body = events::payload(
            &event_id,
            events::TEST_EVENT,
            project,
            now,
            &EventActor {
                name: &actor.name,
                role: actor.role.as_str(),
            },
            None,
            None,
            None,
        );
        body["webhook"] = Value::String(id.to_string());
        let payload = serde_json::to_string(&body).map_err(|e| Error::Internal(Box::new(e)))?;
        self.core.write(|tx| {
            get(tx, project, id)?;
            tx.insert_outbox(&OutboxRow {
                id: event_id.clone(),
                project: project.to_string(),
                webhook: id.to_string(),
                event_type: events::TEST_EVENT.to_string(),
                payload: payload.clone(),
                attempts: 0,
                next_attempt_at: now,
                created_at: now,
                delivered_at: None,
                failed_at: None,
            })?;
            Ok(())
        })?;
        Ok(QueuedEvent {
            event_id,
            event_type: events::TEST_EVENT.to_string(),
        })
    }

    /// Queues one of a webhook's events again, to be posted now: a failed one after the
    /// receiver is fixed, or a delivered one the receiver lost. It keeps its id (receivers that
    /// de-duplicate by `Vexil-Webhook-Id` see the same event) and its body; the attempt is
    /// signed with the webhook's secrets of now. If it fails, its retries go on from where they
    /// stopped (a given-up event fails again at once). Events are kept for the retention of
    /// the delivery worker (7 days by default).
    pub fn redeliver(
        &self,
        actor: &Actor,
        project: &str,
        id: &str,
        event_id: &str,
    ) -> Result<QueuedEvent> {
        actor.require(Role::Writer)?;
        self.core.write(|tx| {
            get(tx, project, id)?;
            let not_found = || Error::NotFound {
                entity: "webhook event",
                key: event_id.to_string(),
            };
            // Event ids are generated URL-safe: anything else names nothing (see `get`).
            if !is_url_safe_key(event_id) {
                return Err(not_found());
            }
            let event = tx
                .get_outbox(event_id)?
                .filter(|e| e.project == project && e.webhook == id);
            let Some(mut event) = event else {
                return Err(not_found());
            };
            event.delivered_at = None;
            event.failed_at = None;
            event.next_attempt_at = now_ms();
            tx.update_outbox(&event)?;
            Ok(QueuedEvent {
                event_id: event.id,
                event_type: event.event_type,
            })
        })
    }

    // -- the delivery side ----------------------------------------------------------------

    /// Claims at most `limit` due events for `lease_ms` (a worker that dies loses them when
    /// the lease lapses, and another takes them over), with each one's URL and secrets.
    pub fn claim_due(&self, now: i64, lease_ms: i64, limit: u32) -> Result<Vec<DueEvent>> {
        self.core.write(|tx| {
            let claimed = tx.claim_outbox(now, now.saturating_add(lease_ms), limit)?;
            let mut due = Vec::with_capacity(claimed.len());
            for event in claimed {
                // The cascade of a deleted webhook removes its events in the same
                // transaction, so a missing webhook here means a row of an older build.
                if let Some(hook) = tx.get_webhook(&event.project, &event.webhook)? {
                    let mut secrets = vec![hook.secret.clone()];
                    secrets.extend(previous_secret(&hook, now).map(|(s, _)| s.to_owned()));
                    due.push(DueEvent {
                        event,
                        url: hook.url,
                        secrets,
                    });
                }
            }
            Ok(due)
        })
    }

    /// Records an attempt in the webhook's log and settles the event: delivered after a 2xx,
    /// otherwise due again after the schedule's next delay, or failed when it has none left.
    pub fn record_attempt(
        &self,
        due: &DueEvent,
        attempt: Attempt,
        schedule: &RetrySchedule,
    ) -> Result<Outcome> {
        self.core.write(|tx| {
            let Some(mut event) = tx.get_outbox(&due.event.id)? else {
                return Ok(Outcome::Gone);
            };
            event.attempts += 1;
            let delivered = attempt.status.is_some_and(|s| (200..300).contains(&s));
            let outcome = if delivered {
                event.delivered_at = Some(attempt.at);
                Outcome::Delivered
            } else if let Some(delay) = schedule.delay(event.attempts) {
                let delay = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                event.next_attempt_at = now_ms().saturating_add(delay);
                Outcome::Retry(event.next_attempt_at)
            } else {
                event.failed_at = Some(attempt.at);
                Outcome::Failed
            };
            tx.insert_delivery(
                &DeliveryRow {
                    project: event.project.clone(),
                    webhook: event.webhook.clone(),
                    event_id: event.id.clone(),
                    event_type: event.event_type.clone(),
                    attempt: event.attempts,
                    at: attempt.at,
                    status: attempt.status.map(i64::from),
                    response: cut(&attempt.response, 1024),
                    error: attempt.error.clone().unwrap_or_default(),
                    duration_ms: attempt.duration_ms,
                },
                LOG_SIZE,
            )?;
            tx.update_outbox(&event)?;
            Ok(outcome)
        })
    }

    /// Forgets delivered and failed events created before `before` (Unix milliseconds).
    pub fn purge(&self, before: i64) -> Result<u64> {
        self.core.write(|tx| Ok(tx.purge_outbox(before)?))
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// One recorded change, as [`super::record`] hands it over.
pub(crate) struct Change<'a> {
    pub actor: &'a Actor,
    pub project: &'a str,
    pub entity: &'a str,
    pub key: &'a str,
    pub version: i64,
    pub at: i64,
    pub action: &'a str,
    pub doc: &'a str,
}

/// An event type with the documents before and after the change, as events show them.
type Event = (String, Option<Value>, Option<Value>);

/// The event of a change; `None` when the change is not delivered.
fn event_of(tx: &mut dyn Tx, change: &Change<'_>) -> Result<Option<Event>> {
    let after: Value = from_doc("history entry", change.key, change.doc)?;
    let before = match change.version.checked_sub(1) {
        Some(previous) if previous >= 1 => tx
            .get_history(change.project, change.entity, change.key, previous)?
            .map(|h| from_doc::<Value>("history entry", change.key, &h.doc))
            .transpose()?,
        _ => None,
    };
    let Some(event_type) =
        events::event_type(change.entity, change.action, before.as_ref(), &after)
    else {
        return Ok(None);
    };
    // A deletion's history entry holds the last document: it is the event's `before`.
    let (before, after) = if change.action == "delete" {
        (Some(after), None)
    } else {
        (before, Some(after))
    };
    let public = |d: Value| events::public_document(change.entity, d);
    Ok(Some((event_type, before.map(public), after.map(public))))
}

/// Queues the event of a change for every active webhook of the project whose filter selects
/// it, in the transaction that writes the change: the change and its events commit together
/// or not at all (the outbox invariant). Costs one query when the project has no webhooks.
pub(crate) fn enqueue(tx: &mut dyn Tx, change: &Change<'_>) -> Result<()> {
    if !events::ENTITIES.contains(&change.entity) {
        return Ok(());
    }
    let hooks: Vec<WebhookRow> = tx
        .list_webhooks(change.project)?
        .into_iter()
        .filter(|h| h.active)
        .collect();
    if hooks.is_empty() {
        return Ok(());
    }
    let Some((event_type, before, after)) = event_of(tx, change)? else {
        return Ok(());
    };
    let actor = EventActor {
        name: &change.actor.name,
        role: change.actor.role.as_str(),
    };
    for hook in hooks
        .iter()
        .filter(|h| events::matches(&h.events, &event_type))
    {
        let id = event_id()?;
        let body = events::payload(
            &id,
            &event_type,
            change.project,
            change.at,
            &actor,
            change.actor.comment.as_deref(),
            before.clone(),
            after.clone(),
        );
        let payload = serde_json::to_string(&body).map_err(|e| Error::Internal(Box::new(e)))?;
        tx.insert_outbox(&OutboxRow {
            id,
            project: change.project.to_string(),
            webhook: hook.id.clone(),
            event_type: event_type.clone(),
            payload,
            attempts: 0,
            next_attempt_at: change.at,
            created_at: change.at,
            delivered_at: None,
            failed_at: None,
        })?;
    }
    Ok(())
}
