//! The server secret: the key of the HMACs behind the console's CSRF and sign-in form tokens
//! and the OFREP stream tokens. It is created on first start and shared by every node of a
//! database, so it is stored (the `server_secret` setting): those tokens are worthless without
//! a console session or a deployment's key, and sessions are not derived from it.
//!
//! Rotating it ([`KeyService::rotate_server_secret`], `vexil keys rotate-server-secret`) makes
//! a new one; with a grace period the old one (the `server_secret_previous` setting, with its
//! expiry) keeps verifying tokens until then, so forms already open and streams already handed
//! out keep working. Running servers load the secrets again every sync interval.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::keys::KeyService;
use super::{now_ms, record, Actor, Role};
use crate::error::{Error, Result};
use crate::keys::random_base62;

/// The setting that holds the current server secret.
const CURRENT: &str = "server_secret";
/// The setting that holds the secret the last rotation replaced, with its expiry.
const PREVIOUS: &str = "server_secret_previous";
/// History entries of rotations are filed under this entity and key, in no project.
const ENTITY: &str = "server_secret";

/// The longest grace period a rotation may give the replaced value: 7 days.
pub const MAX_GRACE_SECONDS: u32 = 7 * 24 * 3600;

/// The server secrets in force: the current one, which signs, and during a rotation's grace
/// period the previous one, which still verifies. `Debug` does not print them.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerSecrets {
    current: String,
    previous: Option<(String, i64)>,
}

impl std::fmt::Debug for ServerSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSecrets")
            .field("current", &"***")
            .field("previous_expires_at", &self.previous.as_ref().map(|p| p.1))
            .finish()
    }
}

impl ServerSecrets {
    /// Secrets from their values, for tests and tools that hold them already.
    pub fn new(current: impl Into<String>, previous: Option<(String, i64)>) -> ServerSecrets {
        ServerSecrets {
            current: current.into(),
            previous,
        }
    }

    /// The secret that signs.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// The replaced secret and the end of its grace period (Unix milliseconds).
    pub fn previous(&self) -> Option<(&str, i64)> {
        self.previous.as_ref().map(|(s, end)| (s.as_str(), *end))
    }

    /// The secrets a token may be verified with at `now_ms`: the current one first, then the
    /// previous one while its grace period lasts.
    pub fn accepted(&self, now_ms: i64) -> impl Iterator<Item = &str> {
        let previous = self
            .previous
            .as_ref()
            .filter(|(_, end)| now_ms < *end)
            .map(|(s, _)| s.as_str());
        std::iter::once(self.current.as_str()).chain(previous)
    }
}

/// The stored form of the previous secret.
#[derive(Serialize, Deserialize)]
struct Previous {
    secret: String,
    expires_at: i64,
}

/// What a rotation did; the secrets themselves are never shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SecretRotation {
    /// The number of this rotation (its history version).
    pub version: i64,
    /// Until when the replaced secret still verifies; absent when it stopped at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_expires_at: Option<i64>,
}

/// Checks a grace period and turns it into milliseconds.
pub(crate) fn grace_ms(grace_seconds: u32) -> Result<i64> {
    if grace_seconds > MAX_GRACE_SECONDS {
        return Err(Error::invalid(
            "grace_seconds",
            "grace_too_long",
            format!("a grace period is at most {MAX_GRACE_SECONDS} seconds (7 days)"),
        ));
    }
    Ok(i64::from(grace_seconds) * 1000)
}

impl KeyService {
    /// The server secrets, creating the secret on first use. Blocking; only the first call
    /// on a new database writes.
    pub fn server_secrets(&self) -> Result<ServerSecrets> {
        if let Some(secrets) = self.core.read(|tx| stored_secrets(tx))? {
            return Ok(secrets);
        }
        let fresh = random_base62(43)?;
        self.core.write(|tx| {
            tx.insert_setting(CURRENT, &fresh)?;
            stored_secrets(tx)?
                .ok_or_else(|| Error::Internal("the server secret was not stored".into()))
        })
    }

    /// Replaces the server secret (admins only). The old one keeps verifying for
    /// `grace_seconds` (at most [`MAX_GRACE_SECONDS`]); with 0 it stops at once. A rotation
    /// ends the grace period of the one before. Running servers follow within their sync
    /// interval. The rotation is recorded in the history (entity `server_secret`, no project).
    pub fn rotate_server_secret(
        &self,
        actor: &Actor,
        grace_seconds: u32,
    ) -> Result<SecretRotation> {
        actor.require(Role::Admin)?;
        let grace = grace_ms(grace_seconds)?;
        // Make sure there is a secret to replace.
        self.server_secrets()?;
        let fresh = random_base62(43)?;
        self.core.write(|tx| {
            let now = now_ms();
            let old = tx
                .get_setting(CURRENT)?
                .ok_or_else(|| Error::Internal("the server secret was not stored".into()))?;
            tx.put_setting(CURRENT, &fresh)?;
            let expires_at = (grace > 0).then(|| now.saturating_add(grace));
            match expires_at {
                Some(expires_at) => {
                    let previous = Previous {
                        secret: old,
                        expires_at,
                    };
                    let text = serde_json::to_string(&previous)
                        .map_err(|e| Error::Internal(Box::new(e)))?;
                    tx.put_setting(PREVIOUS, &text)?;
                }
                None => {
                    tx.delete_setting(PREVIOUS)?;
                }
            }
            let version = tx
                .list_history("", ENTITY, ENTITY, None, 1)?
                .first()
                .map_or(1, |h| h.version + 1);
            let rotation = SecretRotation {
                version,
                previous_expires_at: expires_at,
            };
            let summary = match expires_at {
                Some(_) => format!("rotated; the old secret works for {grace_seconds} s more"),
                None => "rotated; the old secret stopped at once".to_owned(),
            };
            let doc = serde_json::json!({"rotated_at": now, "previous_expires_at": expires_at});
            record(
                tx,
                actor,
                "",
                ENTITY,
                ENTITY,
                version,
                now,
                "rotate",
                summary,
                doc.to_string(),
            )?;
            Ok(rotation)
        })
    }
}

/// The stored secrets; `None` before the first is made.
fn stored_secrets(tx: &mut dyn vexil_store::Tx) -> Result<Option<ServerSecrets>> {
    let Some(current) = tx.get_setting(CURRENT)? else {
        return Ok(None);
    };
    let previous = match tx.get_setting(PREVIOUS)? {
        Some(text) => {
            let p: Previous =
                serde_json::from_str(&text).map_err(|e| Error::Internal(Box::new(e)))?;
            Some((p.secret, p.expires_at))
        }
        None => None,
    };
    Ok(Some(ServerSecrets { current, previous }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_secret_counts_until_its_expiry() {
        let secrets = ServerSecrets::new("new", Some(("old".to_owned(), 100)));
        assert_eq!(secrets.accepted(99).collect::<Vec<_>>(), ["new", "old"]);
        assert_eq!(secrets.accepted(100).collect::<Vec<_>>(), ["new"]);
        assert_eq!(
            ServerSecrets::new("only", None)
                .accepted(0)
                .collect::<Vec<_>>(),
            ["only"]
        );
        assert!(!format!("{secrets:?}").contains("old"));
        assert!(grace_ms(MAX_GRACE_SECONDS).is_ok());
        assert!(grace_ms(MAX_GRACE_SECONDS + 1).is_err());
    }
}
