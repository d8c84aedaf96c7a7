//! Management API keys: created with a role, shown once, stored as a hash, revoked.
//!
//! Requests authenticate from [`KeyCache`], an in-memory copy of every key by hash, never from
//! the store: a wrong key is refused at once even while the database is down, and a flood of
//! wrong keys costs the database nothing. The cache is loaded on first use (the server loads it
//! when it starts), follows the keys this process creates and revokes as soon as they are
//! committed, and follows other nodes and `vexil keys` through [`KeyService::refresh`], which
//! the server calls every sync interval. When a refresh fails, the last known keys stay in use.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use serde::Serialize;
use utoipa::ToSchema;
use vexil_store::ApiKeyRow;

use super::{now_ms, Actor, Core, Role};
use crate::error::{Error, Result};
use crate::keys::{hash_secret, management_secret, random_base62};

/// A key as listed: never its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
}

/// A key just created, with its secret, which is shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: KeyInfo,
    pub secret: String,
}

/// Key use cases.
#[derive(Clone)]
pub struct KeyService {
    pub(crate) core: Core,
    pub(crate) cache: Arc<KeyCache>,
}

/// What authentication needs of a key.
#[derive(Debug, Clone)]
pub(crate) struct CachedKey {
    pub id: String,
    pub actor: Actor,
    pub revoked: bool,
}

/// Every management key by hash; see the module's documentation.
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    state: RwLock<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    loaded: bool,
    /// Bumped by every local change, so that a refresh that read the store before the change
    /// committed does not bring the old state back.
    generation: u64,
    by_hash: HashMap<String, CachedKey>,
}

fn cached(row: &ApiKeyRow) -> CachedKey {
    CachedKey {
        id: row.id.clone(),
        actor: Actor {
            name: row.name.clone(),
            role: Role::parse(&row.role).unwrap_or(Role::Reader),
            comment: None,
        },
        revoked: row.revoked_at.is_some(),
    }
}

impl KeyCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, CacheState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, CacheState> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn loaded(&self) -> bool {
        self.read().loaded
    }

    fn generation(&self) -> u64 {
        self.read().generation
    }

    /// Replaces the cache with `rows`, read from the store when the cache was at
    /// `generation`; refuses (returns false) when a local change came in between.
    fn replace(&self, rows: &[ApiKeyRow], generation: u64) -> bool {
        let mut state = self.write();
        if state.generation != generation {
            return false;
        }
        state.by_hash = rows.iter().map(|r| (r.hash.clone(), cached(r))).collect();
        state.loaded = true;
        true
    }

    /// Applies a committed local change to one key.
    fn apply(&self, row: &ApiKeyRow) {
        let mut state = self.write();
        state.generation += 1;
        if state.loaded {
            state.by_hash.insert(row.hash.clone(), cached(row));
        }
    }

    fn get(&self, hash: &str) -> Option<CachedKey> {
        self.read().by_hash.get(hash).cloned()
    }
}

fn info(row: &ApiKeyRow) -> KeyInfo {
    KeyInfo {
        id: row.id.clone(),
        name: row.name.clone(),
        role: Role::parse(&row.role).unwrap_or(Role::Reader),
        prefix: row.prefix.clone(),
        created_at: row.created_at,
        revoked_at: row.revoked_at,
    }
}

/// Records a key's creation (version 1) or revocation (version 2) in the audit log: keys belong
/// to no project, so the entry's project is empty. The document holds what `KeyInfo` shows,
/// never the hash.
fn audit(
    tx: &mut dyn vexil_store::Tx,
    actor: &Actor,
    row: &ApiKeyRow,
    version: i64,
    action: &str,
) -> Result<()> {
    let doc = serde_json::to_string(&info(row)).map_err(|e| Error::Internal(e.into()))?;
    let at = row.revoked_at.unwrap_or(row.created_at);
    let summary = format!("{action}d the {} key {:?}", row.role, row.name);
    super::record(
        tx, actor, "", "api_key", &row.id, version, at, action, summary, doc,
    )
}

impl KeyService {
    pub fn create(&self, actor: &Actor, name: &str, role: Role) -> Result<CreatedKey> {
        actor.require(Role::Admin)?;
        self.create_unchecked(name, role, Some(actor))
    }

    /// Creates a key; with `by`, records it in the audit log (the first admin key has no one
    /// to record).
    fn create_unchecked(&self, name: &str, role: Role, by: Option<&Actor>) -> Result<CreatedKey> {
        let name = name.trim();
        if let Some(error) = crate::validate::text_error("name", name, 128, true) {
            return Err(Error::Invalid(vec![error]));
        }
        let secret = management_secret()?;
        let row = ApiKeyRow {
            id: random_base62(12)?,
            name: name.to_string(),
            hash: hash_secret(&secret),
            prefix: secret.chars().take(10).collect(),
            role: role.as_str().to_string(),
            created_at: now_ms(),
            revoked_at: None,
        };
        self.core.write(|tx| {
            tx.insert_api_key(&row)?;
            match by {
                Some(actor) => audit(tx, actor, &row, 1, "create"),
                None => Ok(()),
            }
        })?;
        self.cache.apply(&row);
        Ok(CreatedKey {
            key: info(&row),
            secret,
        })
    }

    /// On a store without any key, creates an admin key named `admin` and returns it; `None`
    /// when keys exist.
    pub fn bootstrap(&self) -> Result<Option<CreatedKey>> {
        let any = self.core.read(|tx| Ok(!tx.list_api_keys()?.is_empty()))?;
        if any {
            return Ok(None);
        }
        self.create_unchecked("admin", Role::Admin, None).map(Some)
    }

    pub fn list(&self, actor: &Actor) -> Result<Vec<KeyInfo>> {
        actor.require(Role::Admin)?;
        self.core
            .read(|tx| Ok(tx.list_api_keys()?.iter().map(info).collect()))
    }

    /// Revokes a key by id or name (when the name is unique), and ends its console sessions.
    /// The last active admin key stays: without it nobody could create or revoke keys any
    /// more.
    pub fn revoke(&self, actor: &Actor, id_or_name: &str) -> Result<KeyInfo> {
        actor.require(Role::Admin)?;
        let revoked = self.core.write(|tx| {
            let keys = tx.list_api_keys()?;
            let matches: Vec<&ApiKeyRow> = keys
                .iter()
                .filter(|k| k.id == id_or_name || k.name == id_or_name)
                .collect();
            let row = match matches.as_slice() {
                [] => {
                    return Err(Error::NotFound {
                        entity: "key",
                        key: id_or_name.to_string(),
                    })
                }
                [one] => *one,
                _ => {
                    return Err(Error::invalid(
                        "key",
                        "ambiguous_key",
                        format!("several keys are named {id_or_name:?}; revoke one by its id"),
                    ))
                }
            };
            refuse_last_admin(&keys, row)?;
            let at = now_ms();
            tx.revoke_api_key(&row.id, at)?;
            tx.delete_key_sessions(&row.id)?;
            let mut row = row.clone();
            row.revoked_at = Some(at);
            audit(tx, actor, &row, 2, "revoke")?;
            Ok(row)
        })?;
        self.cache.apply(&revoked);
        Ok(info(&revoked))
    }

    /// Reloads the key cache from the store. Keys this process creates or revokes are in the
    /// cache at once; this brings those of other nodes and of `vexil keys`. On failure the
    /// cache keeps what it had.
    pub fn refresh(&self) -> Result<()> {
        // A local change that commits while the keys are read makes the read stale; the change
        // is in the cache already, so read again (a few times at most: the next refresh comes
        // soon anyway).
        for _ in 0..3 {
            let generation = self.cache.generation();
            let rows = self.core.read(|tx| Ok(tx.list_api_keys()?))?;
            if self.cache.replace(&rows, generation) {
                break;
            }
        }
        Ok(())
    }

    /// The actor a secret authenticates, or `Unauthorized`. Answers from the key cache, without
    /// the store (which it reads only to load the cache on first use).
    pub fn authenticate(&self, secret: &str) -> Result<Actor> {
        self.key_of(secret).map(|key| key.actor)
    }

    /// The cached key of a secret, unless unknown or revoked.
    pub(crate) fn key_of(&self, secret: &str) -> Result<CachedKey> {
        if !self.cache.loaded() {
            self.refresh()?;
        }
        match self.cache.get(&hash_secret(secret)) {
            Some(key) if !key.revoked => Ok(key),
            Some(_) => Err(Error::Unauthorized(
                "this management key has been revoked".into(),
            )),
            None => Err(Error::Unauthorized("unknown management key".into())),
        }
    }
}

/// Refuses to revoke `row` when it is the last active admin key.
fn refuse_last_admin(keys: &[ApiKeyRow], row: &ApiKeyRow) -> Result<()> {
    let active_admin = |k: &ApiKeyRow| k.revoked_at.is_none() && k.role == Role::Admin.as_str();
    if !active_admin(row) || keys.iter().filter(|k| active_admin(k)).count() > 1 {
        return Ok(());
    }
    Err(Error::Blocked {
        code: "last_admin_key",
        message: format!(
            "the key {:?} (id {}) is the last active admin key; create another admin key before \
             revoking it, or nobody could manage keys any more",
            row.name, row.id
        ),
        field: None,
        blocking: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn row(id: &str, revoked: bool) -> ApiKeyRow {
        ApiKeyRow {
            id: id.to_owned(),
            name: format!("key {id}"),
            hash: hash_secret(id),
            prefix: String::new(),
            role: "writer".to_owned(),
            created_at: 0,
            revoked_at: revoked.then_some(1),
        }
    }

    /// A refresh that read the store before a local change committed is refused, so the
    /// change is not undone; a later one applies.
    #[test]
    fn refreshes_never_undo_local_changes() {
        let cache = KeyCache::default();
        assert!(cache.replace(&[row("a", false)], 0));
        let before = cache.generation();
        cache.apply(&row("a", true));
        assert!(!cache.replace(&[row("a", false)], before), "stale read");
        assert!(cache.get(&hash_secret("a")).unwrap().revoked);
        assert!(cache.replace(&[row("a", true), row("b", false)], cache.generation()));
        assert!(cache.get(&hash_secret("b")).is_some());
    }
}
