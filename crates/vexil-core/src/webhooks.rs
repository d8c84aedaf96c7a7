//! Webhook events, without I/O: which history entries become which event types, the
//! subscription filters that select them, the delivered JSON body, the `Vexil-Signature`
//! header and the retry schedule. The service (`service::webhooks`) writes events to the
//! outbox; the server delivers them.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

use crate::error::{Error, FieldError, Result};

/// The entities whose changes are delivered. Experiments are flags.
pub const ENTITIES: &[&str] = &[
    "flag",
    "cohort",
    "deployment",
    "mutex_group",
    "holdout",
    "metric",
];

/// What can happen to an entity, as event types spell it.
pub const ACTIONS: &[&str] = &[
    "created",
    "updated",
    "activated",
    "deactivated",
    "archived",
    "deleted",
];

/// The type of the event the `test` endpoint queues; it goes to its one webhook whatever the
/// webhook's filter.
pub const TEST_EVENT: &str = "webhook.test";

/// The longest webhook URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// The event type of a history entry, or `None` when the entity's changes are not delivered.
/// `before` is the previous version's document, `after` the new one.
pub fn event_type(
    entity: &str,
    history_action: &str,
    before: Option<&Value>,
    after: &Value,
) -> Option<String> {
    if !ENTITIES.contains(&entity) {
        return None;
    }
    let action = match history_action {
        "create" => "created",
        // An import creates a flag the first time and updates it afterwards.
        "import" if before.is_none() => "created",
        "activate" => "activated",
        "deactivate" => "deactivated",
        "archive" => "archived",
        "delete" => "deleted",
        // Deployments are archived by an update that sets `archived`.
        _ if archived_now(before, after) => "archived",
        _ => "updated",
    };
    Some(format!("{entity}.{action}"))
}

fn archived_now(before: Option<&Value>, after: &Value) -> bool {
    let archived = |doc: &Value| doc.get("archived").and_then(Value::as_bool) == Some(true);
    before.is_some_and(|b| !archived(b)) && archived(after)
}

/// Whether a subscription's filter selects `event_type`. A filter item is `*` (everything),
/// `<entity>.*` or an exact event type.
pub fn matches(filter: &[String], event_type: &str) -> bool {
    let entity = event_type.split('.').next().unwrap_or(event_type);
    filter.iter().any(|item| {
        item == "*" || item == event_type || item.strip_suffix(".*").is_some_and(|e| e == entity)
    })
}

/// Checks a filter and returns it sorted without duplicates. It must select something.
pub fn clean_filter(events: &[String]) -> Result<Vec<String>> {
    if events.is_empty() {
        return Err(Error::invalid(
            "events",
            "required",
            "name at least one event type (`flag.created`, `flag.*` or `*`)",
        ));
    }
    let mut errors = Vec::new();
    for (i, item) in events.iter().enumerate() {
        if !valid_filter_item(item) {
            errors.push(FieldError::new(
                format!("events[{i}]"),
                "unknown_event_type",
                format!(
                    "{item:?} is not an event type: use `*`, `<entity>.*` or `<entity>.<action>` \
                     with an entity among {} and an action among {}",
                    ENTITIES.join(", "),
                    ACTIONS.join(", ")
                ),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let mut clean = events.to_vec();
    clean.sort();
    clean.dedup();
    Ok(clean)
}

fn valid_filter_item(item: &str) -> bool {
    if item == "*" {
        return true;
    }
    let Some((entity, action)) = item.split_once('.') else {
        return false;
    };
    ENTITIES.contains(&entity) && (action == "*" || ACTIONS.contains(&action))
}

/// Checks a webhook URL: absolute `https://` or `http://` with a host, at most
/// [`MAX_URL_LEN`] bytes, no spaces.
pub fn check_url(url: &str) -> Result<String> {
    let url = url.trim();
    let invalid = |code: &'static str, message: &str| Err(Error::invalid("url", code, message));
    if url.len() > MAX_URL_LEN {
        return invalid("too_long", "the URL is longer than 2048 bytes");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid(
            "invalid_url",
            "the URL contains spaces or control characters",
        );
    }
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    else {
        return invalid(
            "unsupported_scheme",
            "a webhook URL must start with https:// or http://",
        );
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') || host.contains('@') {
        return invalid(
            "invalid_url",
            "the URL needs a host (and no user name or password)",
        );
    }
    Ok(url.to_string())
}

/// The hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`: the `v1` part of the
/// signature header.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|e| Error::Internal(Box::new(e)))?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(crate::keys::hex(&mac.finalize().into_bytes()))
}

/// The `Vexil-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256>`, with one `v1`
/// per secret, the current one first. A webhook has two secrets during a rotation's grace
/// period, so a receiver that still knows only the replaced one keeps verifying.
pub fn signature_header<S: AsRef<str>>(
    secrets: &[S],
    timestamp: i64,
    body: &[u8],
) -> Result<String> {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&sign(secret.as_ref(), timestamp, body)?);
    }
    Ok(header)
}

/// What a receiver does: whether `header` signs `body` under `secret` with a timestamp within
/// `tolerance_seconds` of `now` (Unix seconds). Kept here so that the Rust side has one tested
/// reference of the check the README describes.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_seconds: i64) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.push(v),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return false;
    };
    if (now - timestamp).abs() > tolerance_seconds {
        return false;
    }
    let Ok(expected) = sign(secret, timestamp, body) else {
        return false;
    };
    signatures
        .iter()
        .any(|s| crate::keys::same_secret(s, &expected))
}

/// Who made a change, as events report it.
#[derive(Debug, Clone)]
pub struct EventActor<'a> {
    pub name: &'a str,
    pub role: &'a str,
}

/// The body of one event. `comment` appears only when the change carried one (the author's
/// reason, `Vexil-Comment` or a typed change's `comment`); `before` is `null` for a creation, `after` is `null` for a deletion.
#[allow(
    clippy::too_many_arguments,
    reason = "the flat list of the body's fields; a struct would only rename them"
)]
pub fn payload(
    id: &str,
    event_type: &str,
    project: &str,
    created_at: i64,
    actor: &EventActor<'_>,
    comment: Option<&str>,
    before: Option<Value>,
    after: Option<Value>,
) -> Value {
    let mut body = Map::new();
    body.insert("id".into(), json!(id));
    body.insert("type".into(), json!(event_type));
    body.insert("project".into(), json!(project));
    body.insert("created_at".into(), json!(created_at));
    body.insert(
        "actor".into(),
        json!({"name": actor.name, "role": actor.role}),
    );
    if let Some(comment) = comment {
        body.insert("comment".into(), json!(comment));
    }
    body.insert("before".into(), before.unwrap_or(Value::Null));
    body.insert("after".into(), after.unwrap_or(Value::Null));
    Value::Object(body)
}

/// A stored document as an event shows it: a deployment's SDK keys are left out, since a
/// webhook receiver is not a writer of the project.
pub fn public_document(entity: &str, mut doc: Value) -> Value {
    if entity == "deployment" {
        if let Some(fields) = doc.as_object_mut() {
            fields.remove("api_key");
            fields.remove("previous_api_key");
        }
    }
    doc
}

/// When failed deliveries are tried again: the delay after the n-th failed attempt is the
/// n-th entry; after the last one the event is given up (marked failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    pub delays: Vec<Duration>,
}

impl Default for RetrySchedule {
    /// 10 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 8 h: eleven attempts over about
    /// 24 hours.
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        RetrySchedule {
            delays: vec![
                Duration::from_secs(10),
                Duration::from_secs(30),
                minutes(2),
                minutes(10),
                minutes(30),
                minutes(60),
                minutes(120),
                minutes(240),
                minutes(480),
                minutes(480),
            ],
        }
    }
}

impl RetrySchedule {
    /// The wait after `failed_attempts` failures (1 after the first), or `None` to give up.
    pub fn delay(&self, failed_attempts: i64) -> Option<Duration> {
        let index = usize::try_from(failed_attempts.checked_sub(1)?).ok()?;
        self.delays.get(index).copied()
    }
}

#[cfg(test)]
mod tests;
