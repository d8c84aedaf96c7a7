//! The queries of webhook subscriptions, their outbox and their delivery log. `SqlTx`
//! delegates its webhook methods here.

use super::codec::{json_list, none_if_empty, opt_text, text, Cells};
use super::{SqlTx, Val};
use crate::rows::{DeliveryRow, OutboxRow, WebhookRow};
use crate::{Result, StoreError};

const WEBHOOK_COLS: &str = "project, id, url, description, events, secret, active, version, \
     created_at, updated_at, previous_secret, previous_secret_expires_at";
const OUTBOX_COLS: &str = "id, project, webhook, event_type, payload, attempts, \
     next_attempt_at, created_at, delivered_at, failed_at";
const DELIVERY_COLS: &str = "project, webhook, event_id, event_type, attempt, at, status, \
     response, error, duration_ms";

fn opt(value: Option<i64>) -> Val {
    value.map_or(Val::Null, Val::Int)
}

fn webhook_row(c: &mut Cells) -> Result<WebhookRow> {
    Ok(WebhookRow {
        project: c.text()?,
        id: c.text()?,
        url: c.text()?,
        description: c.text()?,
        events: c.list()?,
        secret: c.text()?,
        active: c.bool()?,
        version: c.int()?,
        created_at: c.int()?,
        updated_at: c.int()?,
        previous_secret: none_if_empty(c.text()?),
        previous_secret_expires_at: c.opt_int()?,
    })
}

fn webhook_params(row: &WebhookRow) -> Result<Vec<Val>> {
    Ok(vec![
        text(&row.project),
        text(&row.id),
        text(&row.url),
        text(&row.description),
        json_list(&row.events)?,
        text(&row.secret),
        Val::Bool(row.active),
        Val::Int(row.version),
        Val::Int(row.created_at),
        Val::Int(row.updated_at),
        opt_text(&row.previous_secret),
        opt(row.previous_secret_expires_at),
    ])
}

fn outbox_row(c: &mut Cells) -> Result<OutboxRow> {
    Ok(OutboxRow {
        id: c.text()?,
        project: c.text()?,
        webhook: c.text()?,
        event_type: c.text()?,
        payload: c.text()?,
        attempts: c.int()?,
        next_attempt_at: c.int()?,
        created_at: c.int()?,
        delivered_at: c.opt_int()?,
        failed_at: c.opt_int()?,
    })
}

fn delivery_row(c: &mut Cells) -> Result<DeliveryRow> {
    Ok(DeliveryRow {
        project: c.text()?,
        webhook: c.text()?,
        event_id: c.text()?,
        event_type: c.text()?,
        attempt: c.int()?,
        at: c.int()?,
        status: c.opt_int()?,
        response: c.text()?,
        error: c.text()?,
        duration_ms: c.int()?,
    })
}

pub(super) fn insert_webhook(tx: &mut SqlTx<'_>, row: &WebhookRow) -> Result<()> {
    tx.writable()?;
    let sql = format!(
        "INSERT INTO webhooks ({WEBHOOK_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12) ON CONFLICT DO NOTHING"
    );
    tx.insert_new(&sql, &webhook_params(row)?, ("webhook", &row.id, "id"), &[])
}

pub(super) fn get_webhook(
    tx: &mut SqlTx<'_>,
    project: &str,
    id: &str,
) -> Result<Option<WebhookRow>> {
    let sql = format!("SELECT {WEBHOOK_COLS} FROM webhooks WHERE project = $1 AND id = $2");
    tx.row(&sql, &[text(project), text(id)], webhook_row)
}

pub(super) fn list_webhooks(tx: &mut SqlTx<'_>, project: &str) -> Result<Vec<WebhookRow>> {
    let sql = format!("SELECT {WEBHOOK_COLS} FROM webhooks WHERE project = $1 ORDER BY id");
    tx.rows(&sql, &[text(project)], webhook_row)
}

pub(super) fn update_webhook(
    tx: &mut SqlTx<'_>,
    row: &WebhookRow,
    expected_version: i64,
) -> Result<()> {
    tx.writable()?;
    let sql = "UPDATE webhooks SET url = $3, description = $4, events = $5, secret = $6, \
               active = $7, version = $8, created_at = $9, updated_at = $10, \
               previous_secret = $11, previous_secret_expires_at = $12 \
               WHERE project = $1 AND id = $2 AND version = $13";
    let mut params = webhook_params(row)?;
    params.push(Val::Int(expected_version));
    if tx.conn.execute(sql, &params)? > 0 {
        return Ok(());
    }
    Err(tx.stale(
        "webhook",
        "SELECT version FROM webhooks WHERE project = $1 AND id = $2",
        &[text(&row.project), text(&row.id)],
        &row.id,
    ))
}

pub(super) fn delete_webhook(tx: &mut SqlTx<'_>, project: &str, id: &str) -> Result<()> {
    tx.writable()?;
    let key = [text(project), text(id)];
    if tx
        .conn
        .execute("DELETE FROM webhooks WHERE project = $1 AND id = $2", &key)?
        == 0
    {
        return Err(StoreError::NotFound {
            entity: "webhook",
            key: id.to_owned(),
        });
    }
    tx.conn.execute(
        "DELETE FROM webhook_outbox WHERE project = $1 AND webhook = $2",
        &key,
    )?;
    tx.conn.execute(
        "DELETE FROM webhook_deliveries WHERE project = $1 AND webhook = $2",
        &key,
    )?;
    Ok(())
}

pub(super) fn insert_outbox(tx: &mut SqlTx<'_>, row: &OutboxRow) -> Result<()> {
    tx.writable()?;
    let sql = format!(
        "INSERT INTO webhook_outbox ({OUTBOX_COLS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING"
    );
    let params = [
        text(&row.id),
        text(&row.project),
        text(&row.webhook),
        text(&row.event_type),
        text(&row.payload),
        Val::Int(row.attempts),
        Val::Int(row.next_attempt_at),
        Val::Int(row.created_at),
        opt(row.delivered_at),
        opt(row.failed_at),
    ];
    tx.insert_new(&sql, &params, ("webhook event", &row.id, "id"), &[])
}

pub(super) fn claim_outbox(
    tx: &mut SqlTx<'_>,
    now: i64,
    lease_until: i64,
    limit: u32,
) -> Result<Vec<OutboxRow>> {
    tx.writable()?;
    let sql = format!(
        "SELECT {OUTBOX_COLS} FROM webhook_outbox \
         WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 \
         ORDER BY next_attempt_at, id LIMIT $2"
    );
    let due = tx.rows(
        &sql,
        &[Val::Int(now), Val::Int(i64::from(limit))],
        outbox_row,
    )?;
    let mut claimed = Vec::with_capacity(due.len());
    for mut row in due {
        // The condition on the old due time makes the claim conditional: on PostgreSQL a
        // concurrent claimer waits for this row's lock, re-reads it, and then changes nothing.
        let changed = tx.conn.execute(
            "UPDATE webhook_outbox SET next_attempt_at = $2 \
             WHERE id = $1 AND next_attempt_at = $3 AND delivered_at IS NULL AND failed_at IS NULL",
            &[
                text(&row.id),
                Val::Int(lease_until),
                Val::Int(row.next_attempt_at),
            ],
        )?;
        if changed > 0 {
            row.next_attempt_at = lease_until;
            claimed.push(row);
        }
    }
    Ok(claimed)
}

pub(super) fn update_outbox(tx: &mut SqlTx<'_>, row: &OutboxRow) -> Result<()> {
    tx.writable()?;
    let changed = tx.conn.execute(
        "UPDATE webhook_outbox SET attempts = $2, next_attempt_at = $3, delivered_at = $4, \
         failed_at = $5 WHERE id = $1",
        &[
            text(&row.id),
            Val::Int(row.attempts),
            Val::Int(row.next_attempt_at),
            opt(row.delivered_at),
            opt(row.failed_at),
        ],
    )?;
    if changed == 0 {
        return Err(StoreError::NotFound {
            entity: "webhook event",
            key: row.id.clone(),
        });
    }
    Ok(())
}

pub(super) fn get_outbox(tx: &mut SqlTx<'_>, id: &str) -> Result<Option<OutboxRow>> {
    let sql = format!("SELECT {OUTBOX_COLS} FROM webhook_outbox WHERE id = $1");
    tx.row(&sql, &[text(id)], outbox_row)
}

pub(super) fn purge_outbox(tx: &mut SqlTx<'_>, before: i64) -> Result<u64> {
    tx.writable()?;
    tx.conn.execute(
        "DELETE FROM webhook_outbox WHERE created_at < $1 \
         AND (delivered_at IS NOT NULL OR failed_at IS NOT NULL)",
        &[Val::Int(before)],
    )
}

pub(super) fn insert_delivery(tx: &mut SqlTx<'_>, row: &DeliveryRow, keep: u32) -> Result<()> {
    tx.writable()?;
    let sql = format!(
        "INSERT INTO webhook_deliveries ({DELIVERY_COLS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    );
    let key = [text(&row.project), text(&row.webhook)];
    tx.conn.execute(
        &sql,
        &[
            key[0].clone(),
            key[1].clone(),
            text(&row.event_id),
            text(&row.event_type),
            Val::Int(row.attempt),
            Val::Int(row.at),
            opt(row.status),
            text(&row.response),
            text(&row.error),
            Val::Int(row.duration_ms),
        ],
    )?;
    // The log keeps the newest `keep` entries: whatever is older than the `keep`-th newest goes.
    tx.conn.execute(
        "DELETE FROM webhook_deliveries WHERE project = $1 AND webhook = $2 AND seq < \
         (SELECT MIN(seq) FROM (SELECT seq FROM webhook_deliveries \
          WHERE project = $1 AND webhook = $2 ORDER BY seq DESC LIMIT $3) AS newest)",
        &[key[0].clone(), key[1].clone(), Val::Int(i64::from(keep))],
    )?;
    Ok(())
}

pub(super) fn list_deliveries(
    tx: &mut SqlTx<'_>,
    project: &str,
    webhook: &str,
    limit: u32,
) -> Result<Vec<DeliveryRow>> {
    let sql = format!(
        "SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE project = $1 AND webhook = $2 \
         ORDER BY seq DESC LIMIT $3"
    );
    tx.rows(
        &sql,
        &[text(project), text(webhook), Val::Int(i64::from(limit))],
        delivery_row,
    )
}
