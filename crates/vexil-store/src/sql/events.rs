//! The queries of product events (the events applications send that metrics count). `SqlTx`
//! delegates its event methods here.

use super::codec::{none_if_empty, opt_text, text, Cells};
use super::{SqlTx, Val};
use crate::rows::{EventFact, EventRow, ExposureFact, ScanFrom};
use crate::Result;

const EVENT_COLS: &str = "project, event_type, user_id, device_id, groups, event_time, \
    received_at, insert_id, event_properties, user_properties";
const EVENT_NCOLS: usize = 10;
/// Rows written by one `INSERT` (10 columns each, far below the drivers' parameter limits).
const EVENTS_PER_STATEMENT: usize = 50;

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

/// `(time, id)` after the resume point: the scans' keyset condition, on columns `time_col`
/// and `id`, with parameters `$first` and `$first + 1`.
fn after_clause(time_col: &str, first: usize) -> String {
    format!(
        "({time_col} > ${first} OR ({time_col} = ${first} AND id > ${}))",
        first + 1
    )
}

pub(super) fn scan_exposures(
    tx: &mut SqlTx<'_>,
    project: &str,
    flag_key: &str,
    kinds: &[&str],
    (from, to): (i64, i64),
    after: ScanFrom,
    limit: u32,
) -> Result<Vec<ExposureFact>> {
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let mut params = vec![
        text(project),
        text(flag_key),
        Val::Int(from),
        Val::Int(to),
        Val::Int(after.time),
        Val::Int(after.id),
    ];
    let mut listed = Vec::new();
    for kind in kinds {
        params.push(text(kind));
        listed.push(format!("${}", params.len()));
    }
    let sql = format!(
        "SELECT id, variant, user_id, device_id, groups, event_time FROM exposures \
         WHERE project = $1 AND flag_key = $2 AND event_time >= $3 AND event_time < $4 \
         AND kind IN ({}) AND variant <> '' AND {} ORDER BY event_time, id LIMIT {}",
        listed.join(", "),
        after_clause("event_time", 5),
        limit.max(1)
    );
    tx.rows(&sql, &params, |c| {
        Ok(ExposureFact {
            id: c.int()?,
            variant: c.text()?,
            user_id: none_if_empty(c.text()?),
            device_id: none_if_empty(c.text()?),
            groups: none_if_empty(c.text()?),
            time: c.int()?,
        })
    })
}

pub(super) fn scan_events(
    tx: &mut SqlTx<'_>,
    project: &str,
    event_type: Option<&str>,
    (from, to): (i64, i64),
    after: ScanFrom,
    limit: u32,
) -> Result<Vec<EventFact>> {
    let mut params = vec![
        text(project),
        Val::Int(from),
        Val::Int(to),
        Val::Int(after.time),
        Val::Int(after.id),
    ];
    let mut typed = String::new();
    if let Some(t) = event_type {
        typed = " AND event_type = $6".to_owned();
        params.push(text(t));
    }
    let sql = format!(
        "SELECT id, event_type, user_id, device_id, groups, event_time, event_properties, \
         user_properties FROM events WHERE project = $1 AND event_time >= $2 \
         AND event_time < $3{typed} AND {} ORDER BY event_time, id LIMIT {}",
        after_clause("event_time", 4),
        limit.max(1)
    );
    tx.rows(&sql, &params, |c| {
        Ok(EventFact {
            id: c.int()?,
            event_type: c.text()?,
            user_id: none_if_empty(c.text()?),
            device_id: none_if_empty(c.text()?),
            groups: none_if_empty(c.text()?),
            time: c.int()?,
            event_properties: none_if_empty(c.text()?),
            user_properties: none_if_empty(c.text()?),
        })
    })
}
