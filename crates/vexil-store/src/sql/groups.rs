//! The queries of mutual-exclusion and holdout groups. `SqlTx` delegates its group methods here.

use super::codec::{text, Cells};
use super::{SqlTx, Val};
use crate::rows::GroupRow;
use crate::Result;

const GROUP_COLS: &str = "project, key, kind, archived, doc, version, created_at, updated_at";

fn group_row(c: &mut Cells) -> Result<GroupRow> {
    Ok(GroupRow {
        project: c.text()?,
        key: c.text()?,
        kind: c.text()?,
        archived: c.bool()?,
        doc: c.text()?,
        version: c.int()?,
        created_at: c.int()?,
        updated_at: c.int()?,
    })
}

/// The written columns, in the order of `GROUP_COLS`.
fn group_params(row: &GroupRow) -> Vec<Val> {
    vec![
        text(&row.project),
        text(&row.key),
        text(&row.kind),
        Val::Bool(row.archived),
        text(&row.doc),
        Val::Int(row.version),
        Val::Int(row.created_at),
        Val::Int(row.updated_at),
    ]
}

pub(super) fn get_group(tx: &mut SqlTx<'_>, project: &str, key: &str) -> Result<Option<GroupRow>> {
    let sql = format!("SELECT {GROUP_COLS} FROM flag_groups WHERE project = $1 AND key = $2");
    tx.row(&sql, &[text(project), text(key)], group_row)
}

pub(super) fn list_groups(
    tx: &mut SqlTx<'_>,
    project: &str,
    kind: Option<&str>,
) -> Result<Vec<GroupRow>> {
    match kind {
        Some(kind) => {
            let sql = format!(
                "SELECT {GROUP_COLS} FROM flag_groups WHERE project = $1 AND kind = $2 ORDER BY key"
            );
            tx.rows(&sql, &[text(project), text(kind)], group_row)
        }
        None => {
            let sql =
                format!("SELECT {GROUP_COLS} FROM flag_groups WHERE project = $1 ORDER BY key");
            tx.rows(&sql, &[text(project)], group_row)
        }
    }
}

pub(super) fn insert_group(tx: &mut SqlTx<'_>, row: &GroupRow) -> Result<()> {
    tx.writable()?;
    let sql = format!(
        "INSERT INTO flag_groups ({GROUP_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT DO NOTHING"
    );
    tx.insert_new(&sql, &group_params(row), ("group", &row.key, "key"), &[])
}

pub(super) fn update_group(
    tx: &mut SqlTx<'_>,
    row: &GroupRow,
    expected_version: i64,
) -> Result<()> {
    tx.writable()?;
    let sql = "UPDATE flag_groups SET kind = $3, archived = $4, doc = $5, version = $6, \
               created_at = $7, updated_at = $8 WHERE project = $1 AND key = $2 AND version = $9";
    let mut params = group_params(row);
    params.push(Val::Int(expected_version));
    if tx.conn.execute(sql, &params)? == 0 {
        let check = "SELECT version FROM flag_groups WHERE project = $1 AND key = $2";
        let key = [text(&row.project), text(&row.key)];
        return Err(tx.stale("group", check, &key, &row.key));
    }
    Ok(())
}
