//! The queries of versioned project documents kept in collections (groups, metrics). `SqlTx`
//! delegates its document methods here.

use super::codec::{text, Cells};
use super::{SqlTx, Val};
use crate::rows::DocumentRow;
use crate::Result;

const DOCUMENT_COLS: &str =
    "project, collection, key, kind, archived, doc, version, created_at, updated_at";

fn document_row(c: &mut Cells) -> Result<DocumentRow> {
    Ok(DocumentRow {
        project: c.text()?,
        collection: c.text()?,
        key: c.text()?,
        kind: c.text()?,
        archived: c.bool()?,
        doc: c.text()?,
        version: c.int()?,
        created_at: c.int()?,
        updated_at: c.int()?,
    })
}

/// The written columns, in the order of `DOCUMENT_COLS`.
fn document_params(row: &DocumentRow) -> Vec<Val> {
    vec![
        text(&row.project),
        text(&row.collection),
        text(&row.key),
        text(&row.kind),
        Val::Bool(row.archived),
        text(&row.doc),
        Val::Int(row.version),
        Val::Int(row.created_at),
        Val::Int(row.updated_at),
    ]
}

pub(super) fn get(
    tx: &mut SqlTx<'_>,
    project: &str,
    collection: &str,
    key: &str,
) -> Result<Option<DocumentRow>> {
    let sql = format!(
        "SELECT {DOCUMENT_COLS} FROM documents WHERE project = $1 AND collection = $2 AND key = $3"
    );
    tx.row(
        &sql,
        &[text(project), text(collection), text(key)],
        document_row,
    )
}

pub(super) fn list(
    tx: &mut SqlTx<'_>,
    project: &str,
    collection: &str,
    kind: Option<&str>,
) -> Result<Vec<DocumentRow>> {
    let mut params = vec![text(project), text(collection)];
    let mut sql =
        format!("SELECT {DOCUMENT_COLS} FROM documents WHERE project = $1 AND collection = $2");
    if let Some(kind) = kind {
        sql.push_str(" AND kind = $3");
        params.push(text(kind));
    }
    sql.push_str(" ORDER BY key");
    tx.rows(&sql, &params, document_row)
}

pub(super) fn insert(tx: &mut SqlTx<'_>, row: &DocumentRow) -> Result<()> {
    tx.writable()?;
    let sql = format!(
        "INSERT INTO documents ({DOCUMENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT DO NOTHING"
    );
    let entity = if row.collection == "metric" {
        "metric"
    } else {
        "group"
    };
    tx.insert_new(&sql, &document_params(row), (entity, &row.key, "key"), &[])
}

pub(super) fn update(tx: &mut SqlTx<'_>, row: &DocumentRow, expected_version: i64) -> Result<()> {
    tx.writable()?;
    let sql = "UPDATE documents SET kind = $4, archived = $5, doc = $6, version = $7, \
               created_at = $8, updated_at = $9 \
               WHERE project = $1 AND collection = $2 AND key = $3 AND version = $10";
    let mut params = document_params(row);
    params.push(Val::Int(expected_version));
    if tx.conn.execute(sql, &params)? == 0 {
        let check =
            "SELECT version FROM documents WHERE project = $1 AND collection = $2 AND key = $3";
        let key = [text(&row.project), text(&row.collection), text(&row.key)];
        let entity = if row.collection == "metric" {
            "metric"
        } else {
            "group"
        };
        return Err(tx.stale(entity, check, &key, &row.key));
    }
    Ok(())
}
