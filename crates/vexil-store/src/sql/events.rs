//! The queries of product events (the events applications send that metrics count). `SqlTx`
//! delegates its event methods here.

use super::codec::{text, Cells};
use super::{SqlTx, Val};
use crate::rows::EventRow;
use crate::Result;

const EVENT_COLS: &str = "project, event_type, user_id, device_id, groups, event_time, \
    received_at, insert_id, event_properties, user_properties";
const EVENT_NCOLS: usize = 10;
/// Rows written by one `INSERT` (10 columns each, far below the drivers' parameter limits).
const EVENTS_PER_STATEMENT: usize = 50;

/// '' stands for "none" in the optional text columns.
fn opt_text(value: &Option<String>) -> Val {
    text(value.as_deref().unwrap_or(""))
}

fn none_if_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

fn event_row(c: &mut Cells) -> Result<EventRow> {
    Ok(EventRow {
        project: c.text()?,
        event_type: c.text()?,
        user_id: none_if_empty(c.text()?),
        device_id: none_if_empty(c.text()?),
        groups: none_if_empty(c.text()?),
        event_time: c.int()?,
        received_at: c.int()?,
        insert_id: none_if_empty(c.text()?),
        event_properties: none_if_empty(c.text()?),
        user_properties: none_if_empty(c.text()?),
    })
}

pub(super) fn insert(tx: &mut SqlTx<'_>, rows: &[EventRow]) -> Result<()> {
    tx.writable()?;
    for chunk in rows.chunks(EVENTS_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let cells: Vec<String> = (1..=EVENT_NCOLS)
                    .map(|c| format!("${}", i * EVENT_NCOLS + c))
                    .collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO events ({EVENT_COLS}) VALUES {}",
            values.join(", ")
        );
        let mut params = Vec::with_capacity(chunk.len() * EVENT_NCOLS);
        for row in chunk {
            params.extend([
                text(&row.project),
                text(&row.event_type),
                opt_text(&row.user_id),
                opt_text(&row.device_id),
                opt_text(&row.groups),
                Val::Int(row.event_time),
                Val::Int(row.received_at),
                opt_text(&row.insert_id),
                opt_text(&row.event_properties),
                opt_text(&row.user_properties),
            ]);
        }
        tx.conn.execute(&sql, &params)?;
    }
    Ok(())
}

pub(super) fn purge(tx: &mut SqlTx<'_>, before: i64) -> Result<u64> {
    tx.writable()?;
    tx.conn.execute(
        "DELETE FROM events WHERE event_time < $1",
        &[Val::Int(before)],
    )
}

pub(super) fn latest(
    tx: &mut SqlTx<'_>,
    project: &str,
    event_type: &str,
    limit: u32,
) -> Result<Vec<EventRow>> {
    let sql = format!(
        "SELECT {EVENT_COLS} FROM events WHERE project = $1 AND event_type = $2 \
         ORDER BY event_time DESC LIMIT {}",
        limit.max(1)
    );
    tx.rows(&sql, &[text(project), text(event_type)], event_row)
}
