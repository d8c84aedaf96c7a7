//! The queries behind the SDK-facing API: server settings, snapshot revisions, exposures with
//! their insert-id de-duplication, and the `[Experiment]` user properties. `SqlTx` delegates
//! its trait methods for these tables here.

use super::codec::{none_if_empty, opt_text, text, Cells};
use super::{Dialect, SqlTx, Val};
use crate::rows::{
    ExperimentPropertyRow, ExposureCount, ExposureQuery, ExposureRow, SdkRevisionRow,
};
use crate::Result;

/// Exposures written by one `INSERT`; 15 columns each stays far below the drivers' limits.
const EXPOSURES_PER_STATEMENT: usize = 50;
/// Property rows written by one `INSERT` (6 columns each).
const PROPERTIES_PER_STATEMENT: usize = 100;

/// `($k+1, $k+2, …, $k+n)` for the `row`-th row of `n` parameters.
fn placeholders(row: usize, n: usize) -> String {
    let cells: Vec<String> = (1..=n).map(|i| format!("${}", row * n + i)).collect();
    format!("({})", cells.join(", "))
}

pub(super) fn get_setting(tx: &mut SqlTx<'_>, key: &str) -> Result<Option<String>> {
    tx.row(
        "SELECT value FROM settings WHERE key = $1",
        &[text(key)],
        |c| c.text(),
    )
}

pub(super) fn insert_setting(tx: &mut SqlTx<'_>, key: &str, value: &str) -> Result<bool> {
    tx.writable()?;
    let sql = "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING";
    Ok(tx.conn.execute(sql, &[text(key), text(value)])? > 0)
}

pub(super) fn put_setting(tx: &mut SqlTx<'_>, key: &str, value: &str) -> Result<()> {
    tx.writable()?;
    let sql = "INSERT INTO settings (key, value) VALUES ($1, $2) \
               ON CONFLICT (key) DO UPDATE SET value = excluded.value";
    tx.conn.execute(sql, &[text(key), text(value)])?;
    Ok(())
}

pub(super) fn delete_setting(tx: &mut SqlTx<'_>, key: &str) -> Result<bool> {
    tx.writable()?;
    let sql = "DELETE FROM settings WHERE key = $1";
    Ok(tx.conn.execute(sql, &[text(key)])? > 0)
}

fn revision_row(c: &mut Cells) -> Result<SdkRevisionRow> {
    Ok(SdkRevisionRow {
        project: c.text()?,
        deployment: c.text()?,
        revision: c.int()?,
        hash: c.text()?,
        changed_at: c.int()?,
    })
}

pub(super) fn sdk_revisions(
    tx: &mut SqlTx<'_>,
    project: Option<&str>,
) -> Result<Vec<SdkRevisionRow>> {
    let cols = "project, deployment, revision, hash, changed_at";
    match project {
        Some(p) => tx.rows(
            &format!(
                "SELECT {cols} FROM sdk_revisions WHERE project = $1 ORDER BY project, deployment"
            ),
            &[text(p)],
            revision_row,
        ),
        None => tx.rows(
            &format!("SELECT {cols} FROM sdk_revisions ORDER BY project, deployment"),
            &[],
            revision_row,
        ),
    }
}

pub(super) fn put_sdk_revision(tx: &mut SqlTx<'_>, row: &SdkRevisionRow) -> Result<()> {
    tx.writable()?;
    let sql = "INSERT INTO sdk_revisions (project, deployment, revision, hash, changed_at) \
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project, deployment) DO UPDATE SET \
               revision = excluded.revision, hash = excluded.hash, changed_at = excluded.changed_at";
    tx.conn.execute(
        sql,
        &[
            text(&row.project),
            text(&row.deployment),
            Val::Int(row.revision),
            text(&row.hash),
            Val::Int(row.changed_at),
        ],
    )?;
    // Other nodes' change feeds hear of it when the transaction commits (PostgreSQL delivers
    // notifications on commit, once per distinct payload). The payload names the schema, since
    // stores in different schemas of one database share the channel.
    if tx.conn.dialect() == Dialect::Postgres {
        // `execute`, not `query`: pg_notify returns `void`, which has no cell to decode.
        tx.conn.execute(
            "SELECT pg_notify($1, current_schema() || '/' || $2)",
            &[text(crate::CHANGE_CHANNEL), text(&row.project)],
        )?;
    }
    Ok(())
}

pub(super) fn claim_insert_id(
    tx: &mut SqlTx<'_>,
    project: &str,
    insert_id: &str,
    at: i64,
    window_start: i64,
) -> Result<bool> {
    tx.writable()?;
    // A new id inserts; an id last seen before the window is claimed again; an id seen inside
    // the window changes nothing, which both databases report as 0 rows.
    let sql = "INSERT INTO exposure_insert_ids (project, insert_id, received_at) \
               VALUES ($1, $2, $3) ON CONFLICT (project, insert_id) DO UPDATE \
               SET received_at = excluded.received_at \
               WHERE exposure_insert_ids.received_at < $4";
    let changed = tx.conn.execute(
        sql,
        &[
            text(project),
            text(insert_id),
            Val::Int(at),
            Val::Int(window_start),
        ],
    )?;
    Ok(changed > 0)
}

pub(super) fn purge_insert_ids(tx: &mut SqlTx<'_>, before: i64) -> Result<u64> {
    tx.writable()?;
    tx.conn.execute(
        "DELETE FROM exposure_insert_ids WHERE received_at < $1",
        &[Val::Int(before)],
    )
}

const EXPOSURE_COLS: &str = "project, deployment, kind, flag_key, variant, experiment_key, \
    flag_version, segment_name, user_id, device_id, groups, event_time, received_at, \
    insert_id, library";
const EXPOSURE_NCOLS: usize = 15;

fn exposure_params(row: &ExposureRow, out: &mut Vec<Val>) {
    out.extend([
        text(&row.project),
        text(&row.deployment),
        text(&row.kind),
        text(&row.flag_key),
        opt_text(&row.variant),
        opt_text(&row.experiment_key),
        row.flag_version.map_or(Val::Null, Val::Int),
        opt_text(&row.segment_name),
        opt_text(&row.user_id),
        opt_text(&row.device_id),
        opt_text(&row.groups),
        Val::Int(row.event_time),
        Val::Int(row.received_at),
        opt_text(&row.insert_id),
        opt_text(&row.library),
    ]);
}

pub(super) fn insert_exposures(tx: &mut SqlTx<'_>, rows: &[ExposureRow]) -> Result<()> {
    tx.writable()?;
    for chunk in rows.chunks(EXPOSURES_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| placeholders(i, EXPOSURE_NCOLS))
            .collect();
        let sql = format!(
            "INSERT INTO exposures ({EXPOSURE_COLS}) VALUES {}",
            values.join(", ")
        );
        let mut params = Vec::with_capacity(chunk.len() * EXPOSURE_NCOLS);
        for row in chunk {
            exposure_params(row, &mut params);
        }
        tx.conn.execute(&sql, &params)?;
    }
    Ok(())
}

pub(super) fn exposure_counts(tx: &mut SqlTx<'_>, q: &ExposureQuery) -> Result<Vec<ExposureCount>> {
    let bucket = q.bucket.max(1);
    let mut params = vec![
        text(&q.project),
        text(&q.flag_key),
        Val::Int(q.from),
        Val::Int(q.to),
        Val::Int(bucket),
    ];
    let mut kinds = String::new();
    if !q.kinds.is_empty() {
        let names: Vec<String> = q
            .kinds
            .iter()
            .map(|k| {
                params.push(text(k));
                format!("${}", params.len())
            })
            .collect();
        kinds = format!(" AND kind IN ({})", names.join(", "));
    }
    // Integer division rounds toward zero in both databases; event times are positive.
    let sql = format!(
        "SELECT (event_time / $5) * $5 AS bucket, variant, COUNT(*), \
         COUNT(DISTINCT CASE WHEN user_id <> '' THEN 'u:' || user_id ELSE 'd:' || device_id END) \
         FROM exposures WHERE project = $1 AND flag_key = $2 AND event_time >= $3 \
         AND event_time < $4{kinds} GROUP BY bucket, variant ORDER BY bucket, variant"
    );
    tx.rows(&sql, &params, |c| {
        Ok(ExposureCount {
            bucket: c.int()?,
            variant: none_if_empty(c.text()?),
            count: c.int()?,
            users: c.int()?,
        })
    })
}

pub(super) fn put_experiment_properties(
    tx: &mut SqlTx<'_>,
    rows: &[ExperimentPropertyRow],
) -> Result<()> {
    tx.writable()?;
    for chunk in rows.chunks(PROPERTIES_PER_STATEMENT) {
        // A statement may not touch one row twice (PostgreSQL refuses it), so within a chunk
        // the last write of each (project, id, flag) wins before the statement is built.
        let mut unique: Vec<&ExperimentPropertyRow> = Vec::with_capacity(chunk.len());
        for row in chunk {
            let same = |r: &&ExperimentPropertyRow| {
                r.project == row.project
                    && r.id_kind == row.id_kind
                    && r.id == row.id
                    && r.flag_key == row.flag_key
            };
            match unique.iter().position(same) {
                Some(i) => unique[i] = row,
                None => unique.push(row),
            }
        }
        let values: Vec<String> = (0..unique.len()).map(|i| placeholders(i, 6)).collect();
        let sql = format!(
            "INSERT INTO experiment_properties (project, id_kind, id, flag_key, variant, \
             updated_at) VALUES {} ON CONFLICT (project, id_kind, id, flag_key) DO UPDATE SET \
             variant = excluded.variant, updated_at = excluded.updated_at",
            values.join(", ")
        );
        let mut params = Vec::with_capacity(unique.len() * 6);
        for row in unique {
            params.extend([
                text(&row.project),
                text(&row.id_kind),
                text(&row.id),
                text(&row.flag_key),
                opt_text(&row.variant),
                Val::Int(row.updated_at),
            ]);
        }
        tx.conn.execute(&sql, &params)?;
    }
    Ok(())
}

fn property_row(c: &mut Cells) -> Result<ExperimentPropertyRow> {
    Ok(ExperimentPropertyRow {
        project: c.text()?,
        id_kind: c.text()?,
        id: c.text()?,
        flag_key: c.text()?,
        variant: none_if_empty(c.text()?),
        updated_at: c.int()?,
    })
}

pub(super) fn experiment_properties(
    tx: &mut SqlTx<'_>,
    since: i64,
) -> Result<Vec<ExperimentPropertyRow>> {
    let sql = "SELECT project, id_kind, id, flag_key, variant, updated_at \
               FROM experiment_properties WHERE updated_at >= $1 \
               ORDER BY updated_at, project, id_kind, id, flag_key";
    tx.rows(sql, &[Val::Int(since)], property_row)
}

pub(super) fn user_experiment_properties(
    tx: &mut SqlTx<'_>,
    project: &str,
    id_kind: &str,
    id: &str,
) -> Result<Vec<ExperimentPropertyRow>> {
    let sql = "SELECT project, id_kind, id, flag_key, variant, updated_at \
               FROM experiment_properties WHERE project = $1 AND id_kind = $2 AND id = $3 \
               AND variant <> '' ORDER BY flag_key";
    tx.rows(sql, &[text(project), text(id_kind), text(id)], property_row)
}

pub(super) fn flag_experiment_properties(
    tx: &mut SqlTx<'_>,
    project: &str,
    flag_key: &str,
) -> Result<Vec<ExperimentPropertyRow>> {
    let sql = "SELECT project, id_kind, id, flag_key, variant, updated_at \
               FROM experiment_properties WHERE project = $1 AND flag_key = $2 AND variant <> '' \
               ORDER BY id_kind, id";
    tx.rows(sql, &[text(project), text(flag_key)], property_row)
}
