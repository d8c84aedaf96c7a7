//! Console sessions, kept server-side. Signing in with a management key makes a random token
//! (255 bits) that goes into the browser's cookie and nowhere else: the store keeps only its
//! SHA-256 with the key's id, creation and expiry. So whoever reads the database (or a copy of
//! it) can neither forge a session nor use a live one, and ending a session (signing out,
//! revoking its key) is deleting its row.

use vexil_store::SessionRow;

use super::keys::KeyService;
use super::{now_ms, Actor, Role};
use crate::error::{Error, Result};
use crate::keys::{hash_secret, session_token};

/// A session just started. The token is the cookie's value and is shown nowhere else (`Debug`
/// does not print it).
#[derive(Clone)]
pub struct NewSession {
    pub token: String,
    pub actor: Actor,
    pub expires_at: i64,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("token", &"***")
            .field("actor", &self.actor)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The longest a token may be: anything longer was not made here and is not hashed.
const MAX_TOKEN_LEN: usize = 64;

impl KeyService {
    /// Signs in with a management key: checks it (from the key cache), stores a session that
    /// lasts `ttl_ms`, and purges the sessions that have expired.
    pub fn start_session(&self, secret: &str, ttl_ms: i64) -> Result<NewSession> {
        let key = self.key_of(secret)?;
        let token = session_token()?;
        let now = now_ms();
        let row = SessionRow {
            hash: hash_secret(&token),
            key_id: key.id,
            created_at: now,
            expires_at: now.saturating_add(ttl_ms),
        };
        self.core.write(|tx| {
            tx.purge_sessions(now)?;
            Ok(tx.insert_session(&row)?)
        })?;
        Ok(NewSession {
            token,
            actor: key.actor,
            expires_at: row.expires_at,
        })
    }

    /// The actor of a session token, unless the session is unknown, expired or ended, or its
    /// key was revoked.
    pub fn session(&self, token: &str) -> Result<Actor> {
        let ended = || Error::Unauthorized("this session has ended; sign in again".into());
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(ended());
        }
        let hash = hash_secret(token);
        let now = now_ms();
        self.core.read(|tx| {
            let Some(session) = tx.session_by_hash(&hash)? else {
                return Err(ended());
            };
            if session.expires_at <= now {
                return Err(ended());
            }
            let key = tx
                .list_api_keys()?
                .into_iter()
                .find(|k| k.id == session.key_id && k.revoked_at.is_none());
            match key {
                Some(key) => Ok(Actor {
                    name: key.name,
                    role: Role::parse(&key.role).unwrap_or(Role::Reader),
                    comment: None,
                }),
                None => Err(ended()),
            }
        })
    }

    /// Ends a session for good (signing out). Ending a session that is already gone is not an
    /// error.
    pub fn end_session(&self, token: &str) -> Result<()> {
        if token.len() > MAX_TOKEN_LEN {
            return Ok(());
        }
        let hash = hash_secret(token);
        self.core.write(|tx| {
            tx.delete_session(&hash)?;
            Ok(())
        })
    }
}
