//! Management API keys: created with a role, shown once, stored as a hash, revoked.

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

impl KeyService {
    pub fn create(&self, actor: &Actor, name: &str, role: Role) -> Result<CreatedKey> {
        actor.require(Role::Admin)?;
        self.create_unchecked(name, role)
    }

    fn create_unchecked(&self, name: &str, role: Role) -> Result<CreatedKey> {
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
        self.core.write(|tx| Ok(tx.insert_api_key(&row)?))?;
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
        self.create_unchecked("admin", Role::Admin).map(Some)
    }

    pub fn list(&self, actor: &Actor) -> Result<Vec<KeyInfo>> {
        actor.require(Role::Admin)?;
        self.core
            .read(|tx| Ok(tx.list_api_keys()?.iter().map(info).collect()))
    }

    /// Revokes a key by id or name (when the name is unique).
    pub fn revoke(&self, actor: &Actor, id_or_name: &str) -> Result<KeyInfo> {
        actor.require(Role::Admin)?;
        self.core.write(|tx| {
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
            let at = now_ms();
            tx.revoke_api_key(&row.id, at)?;
            let mut row = row.clone();
            row.revoked_at = Some(at);
            Ok(info(&row))
        })
    }

    /// The actor a secret authenticates, or `Unauthorized`.
    pub fn authenticate(&self, secret: &str) -> Result<Actor> {
        self.sign_in(secret).map(|(_, actor)| actor)
    }

    /// Like [`KeyService::authenticate`], with the key's id (console sessions name the key
    /// by id, never by secret).
    pub fn sign_in(&self, secret: &str) -> Result<(String, Actor)> {
        let hash = hash_secret(secret);
        let row = self.core.read(|tx| Ok(tx.api_key_by_hash(&hash)?))?;
        live(row).map(|(row, actor)| (row.id, actor))
    }

    /// Ends a console session for good (signing out): `session` is its random id.
    pub fn end_session(&self, session: &str) -> Result<()> {
        let name = format!("ended_session:{session}");
        self.core.write(|tx| {
            tx.insert_setting(&name, &now_ms().to_string())?;
            Ok(())
        })
    }

    /// The actor of a console session of key `id`, unless the key was revoked or the session
    /// ended.
    pub fn session_actor(&self, id: &str, session: &str) -> Result<Actor> {
        let name = format!("ended_session:{session}");
        let (row, ended) = self.core.read(|tx| {
            let row = tx.list_api_keys()?.into_iter().find(|k| k.id == id);
            Ok((row, tx.get_setting(&name)?.is_some()))
        })?;
        if ended {
            return Err(Error::Unauthorized("this session has ended".into()));
        }
        live(row).map(|(_, actor)| actor)
    }
}

/// The key's actor, unless the key is unknown or revoked.
fn live(row: Option<ApiKeyRow>) -> Result<(ApiKeyRow, Actor)> {
    match row {
        Some(row) if row.revoked_at.is_none() => {
            let actor = Actor {
                name: row.name.clone(),
                role: Role::parse(&row.role).unwrap_or(Role::Reader),
            };
            Ok((row, actor))
        }
        Some(_) => Err(Error::Unauthorized(
            "this management key has been revoked".into(),
        )),
        None => Err(Error::Unauthorized("unknown management key".into())),
    }
}
