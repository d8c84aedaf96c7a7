//! Data migrations that SQL cannot write once for both dialects (SQLite has no SHA-256
//! function). Each is written over [`Conn`] and run by the backends right after the script of
//! its schema version, in the same transaction, so a failure leaves the old schema and data.

use sha2::{Digest, Sha256};

use super::codec::text;
use super::{Conn, Val};
use crate::{Result, StoreError};

/// Version 3: project secret keys are kept only as their hex SHA-256. Every project document
/// and every project history entry that holds a clear `secret_key` gets `secret_key_hash`
/// instead, so neither the projects nor their history hand the secret to a database reader.
pub(crate) fn hash_project_secrets(conn: &mut dyn Conn) -> Result<()> {
    for row in conn.query("SELECT key, doc FROM projects", &[])? {
        let (key, doc) = match row.as_slice() {
            [Val::Text(key), Val::Text(doc)] => (key, doc),
            _ => return Err(StoreError::Corrupt("a project row is malformed".to_owned())),
        };
        if let Some(doc) = hashed(key, doc)? {
            let sql = "UPDATE projects SET doc = $2 WHERE key = $1";
            conn.execute(sql, &[text(key), text(&doc)])?;
        }
    }
    let sql = "SELECT project, key, version, doc FROM history WHERE entity = 'project'";
    for row in conn.query(sql, &[])? {
        let (project, key, version, doc) = match row.as_slice() {
            [Val::Text(project), Val::Text(key), Val::Int(version), Val::Text(doc)] => {
                (project, key, *version, doc)
            }
            _ => return Err(StoreError::Corrupt("a history row is malformed".to_owned())),
        };
        if let Some(doc) = hashed(key, doc)? {
            let sql = "UPDATE history SET doc = $4 \
                       WHERE project = $1 AND entity = 'project' AND key = $2 AND version = $3";
            let params = [text(project), text(key), Val::Int(version), text(&doc)];
            conn.execute(sql, &params)?;
        }
    }
    Ok(())
}

/// `doc` with its `secret_key` replaced by `secret_key_hash`; `None` when it holds no clear
/// secret (already migrated, or never had one).
fn hashed(key: &str, doc: &str) -> Result<Option<String>> {
    let corrupt = |e: serde_json::Error| {
        StoreError::Corrupt(format!("the document of project {key:?} is not JSON: {e}"))
    };
    let mut value: serde_json::Value = serde_json::from_str(doc).map_err(corrupt)?;
    let Some(object) = value.as_object_mut() else {
        return Ok(None);
    };
    let Some(serde_json::Value::String(secret)) = object.remove("secret_key") else {
        return Ok(None);
    };
    object.insert(
        "secret_key_hash".to_owned(),
        serde_json::Value::String(sha256_hex(&secret)),
    );
    serde_json::to_string(&value).map(Some).map_err(corrupt)
}

/// Hex SHA-256, the form `vexil-core` stores secrets in (its `keys::hash_secret`).
fn sha256_hex(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_secrets_become_hashes_and_the_rest_stays() {
        let doc = r#"{"key":"p","api_key":"a","secret_key":"abc","version":2}"#;
        let out: serde_json::Value =
            serde_json::from_str(&hashed("p", doc).unwrap().unwrap()).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"key": "p", "api_key": "a", "version": 2,
                "secret_key_hash": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"})
        );
        let migrated = out.to_string();
        assert_eq!(hashed("p", &migrated).unwrap(), None, "idempotent");
        assert_eq!(hashed("p", "[]").unwrap(), None);
        assert!(hashed("p", "not json").is_err());
    }
}
