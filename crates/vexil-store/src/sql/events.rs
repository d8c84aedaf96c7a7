//! The queries of product events (the events applications send that metrics count). `SqlTx`
//! delegates its event methods here.

use super::codec::{none_if_empty, opt_text, text, Cells};
use super::{SqlTx, Val};
use crate::rows::{EventColumns, EventFact, EventRow, ExposureFact};
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

/// The highest ids of `exposures` and of `events` (0 for an empty table).
pub(super) fn last_ids(tx: &mut SqlTx<'_>) -> Result<(i64, i64)> {
    let ids = tx.rows(
        "SELECT (SELECT COALESCE(MAX(id), 0) FROM exposures), \
         (SELECT COALESCE(MAX(id), 0) FROM events)",
        &[],
        |c| Ok((c.int()?, c.int()?)),
    )?;
    Ok(ids.first().copied().unwrap_or((0, 0)))
}

/// `$first, $first + 1, …` for `values`, pushed onto `params`: an `IN` list.
fn in_list(params: &mut Vec<Val>, values: &[&str]) -> String {
    let mut listed = Vec::with_capacity(values.len());
    for v in values {
        params.push(text(v));
        listed.push(format!("${}", params.len()));
    }
    listed.join(", ")
}

// The `*_since` scans walk the primary key from `after`, in the order rows were stored (which
// is also the order of the table's pages, so a first full read is sequential): `project || ''`
// keeps both engines off the (project, …, time) indexes, whose order would send each row's read
// to a random page.

pub(super) fn exposures_since(
    tx: &mut SqlTx<'_>,
    project: &str,
    flag_key: &str,
    kinds: &[&str],
    (after, from): (i64, i64),
    limit: u32,
) -> Result<Vec<ExposureFact>> {
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let mut params = vec![
        Val::Int(after),
        Val::Int(from),
        text(project),
        text(flag_key),
    ];
    let kinds = in_list(&mut params, kinds);
    let sql = format!(
        "SELECT id, variant, user_id, device_id, groups, event_time FROM exposures \
         WHERE id > $1 AND event_time >= $2 AND project || '' = $3 AND flag_key = $4 \
         AND kind IN ({kinds}) AND variant <> '' ORDER BY id LIMIT {}",
        limit.max(1)
    );
    tx.rows(&sql, &params, exposure_fact)
}

pub(super) fn events_since(
    tx: &mut SqlTx<'_>,
    project: &str,
    event_types: &[&str],
    (after, from): (i64, i64),
    columns: EventColumns,
    limit: u32,
) -> Result<Vec<EventFact>> {
    let mut params = vec![Val::Int(after), Val::Int(from), text(project)];
    let column = |wanted: bool, name: &'static str| if wanted { name } else { "''" };
    let typed = if event_types.is_empty() {
        String::new()
    } else {
        format!(" AND event_type IN ({})", in_list(&mut params, event_types))
    };
    let sql = format!(
        "SELECT id, event_type, {}, {}, {}, event_time, {}, {} FROM events \
         WHERE id > $1 AND event_time >= $2 AND project || '' = $3{typed} \
         ORDER BY id LIMIT {}",
        column(columns.user_id, "user_id"),
        column(columns.device_id, "device_id"),
        column(columns.groups, "groups"),
        column(columns.event_properties, "event_properties"),
        column(columns.user_properties, "user_properties"),
        limit.max(1)
    );
    tx.rows(&sql, &params, event_fact)
}

/// The newest `limit` events of a project, newest first (their event properties left out).
pub(super) fn recent(tx: &mut SqlTx<'_>, project: &str, limit: u32) -> Result<Vec<EventFact>> {
    let sql = format!(
        "SELECT id, event_type, user_id, device_id, groups, event_time, '', user_properties \
         FROM events WHERE project = $1 ORDER BY id DESC LIMIT {}",
        limit.max(1)
    );
    tx.rows(&sql, &[text(project)], event_fact)
}

fn exposure_fact(c: &mut Cells) -> Result<ExposureFact> {
    Ok(ExposureFact {
        id: c.int()?,
        variant: c.text()?,
        user_id: none_if_empty(c.text()?),
        device_id: none_if_empty(c.text()?),
        groups: none_if_empty(c.text()?),
        time: c.int()?,
    })
}

fn event_fact(c: &mut Cells) -> Result<EventFact> {
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
}
