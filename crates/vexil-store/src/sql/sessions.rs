//! The queries of console sessions. `SqlTx` delegates its session methods here.

use super::codec::{text, Cells};
use super::{SqlTx, Val};
use crate::rows::SessionRow;
use crate::{Result, StoreError};

const SESSION_COLS: &str = "hash, key_id, created_at, expires_at";

fn session_row(c: &mut Cells) -> Result<SessionRow> {
    Ok(SessionRow {
        hash: c.text()?,
        key_id: c.text()?,
        created_at: c.int()?,
        expires_at: c.int()?,
    })
}

pub(super) fn insert_session(tx: &mut SqlTx<'_>, row: &SessionRow) -> Result<()> {
    tx.writable()?;
    let sql = format!(
        "INSERT INTO sessions ({SESSION_COLS}) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
    );
    let params = [
        text(&row.hash),
        text(&row.key_id),
        Val::Int(row.created_at),
        Val::Int(row.expires_at),
    ];
    if tx.conn.execute(&sql, &params)? == 0 {
        return Err(StoreError::Conflict {
            entity: "session",
            key: row.key_id.clone(),
            field: "hash",
        });
    }
    Ok(())
}

pub(super) fn session_by_hash(tx: &mut SqlTx<'_>, hash: &str) -> Result<Option<SessionRow>> {
    let sql = format!("SELECT {SESSION_COLS} FROM sessions WHERE hash = $1");
    tx.row(&sql, &[text(hash)], session_row)
}

pub(super) fn delete_session(tx: &mut SqlTx<'_>, hash: &str) -> Result<bool> {
    tx.writable()?;
    let sql = "DELETE FROM sessions WHERE hash = $1";
    Ok(tx.conn.execute(sql, &[text(hash)])? > 0)
}

pub(super) fn delete_key_sessions(tx: &mut SqlTx<'_>, key_id: &str) -> Result<u64> {
    tx.writable()?;
    tx.conn
        .execute("DELETE FROM sessions WHERE key_id = $1", &[text(key_id)])
}

pub(super) fn purge_sessions(tx: &mut SqlTx<'_>, now: i64) -> Result<u64> {
    tx.writable()?;
    tx.conn.execute(
        "DELETE FROM sessions WHERE expires_at <= $1",
        &[Val::Int(now)],
    )
}
