//! The published snapshots as the SDK routes look them up: by deployment key, by project API
//! key, by OFREP stream token, and a watch channel per deployment that wakes its streams. The
//! [`Registry`] is the publisher's [`SnapshotSink`]; every publish swaps in a new immutable
//! index, so a request holds one consistent view.
//!
//! Keys a rotation replaced stay in the index with their deployment or project, and are
//! accepted only until their grace period ends (checked on every lookup, so they stop on time
//! without a publish). Stream tokens are made with the current server secret; during the
//! grace period of a secret's rotation, tokens made with the previous one still resolve.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::watch;
use vexil_core::sdk::{DeploymentCounts, ProjectData, ServedCounts, Snapshot, SnapshotSink};
use vexil_core::service::ServerSecrets;

/// One deployment as served: its snapshot and what is derived from it once.
#[derive(Debug)]
pub struct Served {
    pub snapshot: Arc<Snapshot>,
    /// What remote evaluation and OFREP served, per flag and variant (kept across publishes).
    pub counts: ServedCounts,
    gzipped: [OnceLock<Bytes>; 2],
    /// The relay document (`GET /sdk/relay/v1/deployment`), made on first use.
    relay: OnceLock<Bytes>,
}

impl Served {
    /// `/sdk/v2/flags` (`remote`: every mode) gzip-compressed, made on first use.
    pub fn flags_gzip(&self, remote: bool) -> Bytes {
        self.gzipped[usize::from(remote)]
            .get_or_init(|| {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                // Writing to a Vec cannot fail.
                for part in self.snapshot.flags_json(remote).parts() {
                    let _ = encoder.write_all(part);
                }
                Bytes::from(encoder.finish().unwrap_or_default())
            })
            .clone()
    }

    /// The relay document of this deployment ([`vexil_core::sdk::bundle`]), made once.
    pub fn relay_bundle(&self) -> Result<Bytes, vexil_core::sdk::PersistError> {
        if let Some(made) = self.relay.get() {
            return Ok(made.clone());
        }
        let made = Bytes::from(vexil_core::sdk::bundle(&self.snapshot)?);
        Ok(self.relay.get_or_init(|| made).clone())
    }

    /// `project/deployment`: names the deployment in tokens and ETags.
    pub fn id(&self) -> String {
        deployment_id(&self.snapshot)
    }
}

fn deployment_id(s: &Snapshot) -> String {
    format!("{}/{}", s.project.key, s.deployment.key)
}

#[derive(Default, Clone)]
struct Index {
    /// By SDK key, and by the key a rotation replaced (checked against its expiry).
    by_key: HashMap<Box<str>, Arc<Served>>,
    /// By stream token made with the current server secret.
    by_token: HashMap<Box<str>, Arc<Served>>,
    /// The current stream token of each deployment (`project/deployment`): made once, not per
    /// OFREP answer.
    tokens: HashMap<String, Arc<str>>,
    /// By stream token made with the previous server secret, during its grace period.
    by_previous_token: HashMap<Box<str>, Arc<Served>>,
    /// By API key, and by the API key a rotation replaced (checked against its expiry).
    projects_by_api_key: HashMap<Box<str>, Arc<ProjectData>>,
    /// (project, deployment key) -> served, for replacing a project's deployments.
    by_project: HashMap<String, Vec<Arc<Served>>>,
}

/// The labels of an evaluation counter: project, deployment, flag, variant.
pub type CounterKey = (String, String, String, String);

/// The snapshots the SDK routes read.
pub struct Registry {
    index: RwLock<Arc<Index>>,
    /// Evaluation counters by (project, deployment), handed to every snapshot of the
    /// deployment.
    counters: Mutex<HashMap<(String, String), DeploymentCounts>>,
    watches: RwLock<HashMap<String, watch::Sender<Arc<Served>>>>,
    secrets: RwLock<Arc<ServerSecrets>>,
    closed: watch::Sender<bool>,
}

/// Milliseconds since the Unix epoch, what grace periods end at.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// base64url of HMAC-SHA256(secret, `ofrep-sse:<deployment>`).
fn token_with(secret: &str, deployment_id: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length.
        Err(_) => return String::new(),
    };
    mac.update(b"ofrep-sse:");
    mac.update(deployment_id.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

impl Index {
    /// Adds a deployment under its keys and tokens.
    fn add(&mut self, s: &Arc<Served>, secrets: &ServerSecrets) {
        let d = &s.snapshot.deployment;
        self.by_key.insert(d.api_key.as_str().into(), s.clone());
        if let Some(previous) = &d.previous_api_key {
            self.by_key.insert(previous.as_str().into(), s.clone());
        }
        let id = s.id();
        let token = token_with(secrets.current(), &id);
        self.by_token.insert(token.as_str().into(), s.clone());
        if let Some((previous, _)) = secrets.previous() {
            self.by_previous_token
                .insert(token_with(previous, &id).into(), s.clone());
        }
        self.tokens.insert(id, token.into());
    }

    /// Removes a deployment from under its keys and tokens.
    fn remove(&mut self, s: &Served, secrets: &ServerSecrets) {
        let d = &s.snapshot.deployment;
        self.by_key.remove(d.api_key.as_str());
        if let Some(previous) = &d.previous_api_key {
            self.by_key.remove(previous.as_str());
        }
        let id = s.id();
        self.by_token
            .remove(token_with(secrets.current(), &id).as_str());
        if let Some((previous, _)) = secrets.previous() {
            self.by_previous_token
                .remove(token_with(previous, &id).as_str());
        }
        self.tokens.remove(&id);
    }
}

impl Registry {
    /// `secrets` key the OFREP stream tokens.
    pub fn new(secrets: &ServerSecrets) -> Registry {
        Registry {
            index: RwLock::new(Arc::new(Index::default())),
            counters: Mutex::new(HashMap::new()),
            watches: RwLock::new(HashMap::new()),
            secrets: RwLock::new(Arc::new(secrets.clone())),
            closed: watch::channel(false).0,
        }
    }

    fn secrets(&self) -> Arc<ServerSecrets> {
        self.secrets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Makes stream tokens with new server secrets (after a rotation): every deployment is
    /// indexed again under the tokens of the new current secret and, during the grace period,
    /// of the previous one.
    pub fn rekey(&self, secrets: &ServerSecrets) {
        let mut guard = self
            .index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *self
            .secrets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(secrets.clone());
        let mut next = (**guard).clone();
        next.by_token.clear();
        next.by_previous_token.clear();
        next.tokens.clear();
        for s in guard.by_project.values().flatten() {
            next.add(s, secrets);
        }
        *guard = Arc::new(next);
    }

    fn index(&self) -> Arc<Index> {
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The deployment whose SDK key this is (or was, during a rotation's grace period).
    pub fn by_key(&self, key: &str) -> Option<Arc<Served>> {
        let index = self
            .index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let served = index.by_key.get(key)?;
        // The current key needs no clock; a replaced one is checked against its expiry.
        (served.snapshot.deployment.api_key == key
            || served.snapshot.deployment.accepts_key(key, now_ms()))
        .then(|| served.clone())
    }

    /// The deployment an OFREP stream token stands for.
    pub fn by_token(&self, token: &str) -> Option<Arc<Served>> {
        let index = self.index();
        if let Some(served) = index.by_token.get(token) {
            return Some(served.clone());
        }
        let in_grace = self
            .secrets()
            .previous()
            .is_some_and(|(_, end)| now_ms() < end);
        in_grace
            .then(|| index.by_previous_token.get(token).cloned())
            .flatten()
    }

    /// The project whose API key this is (or was, during a rotation's grace period).
    pub fn project_by_api_key(&self, key: &str) -> Option<Arc<ProjectData>> {
        let data = self.index().projects_by_api_key.get(key).cloned()?;
        data.accepts_api_key(key, now_ms()).then_some(data)
    }

    /// Every deployment served now.
    pub fn all(&self) -> Vec<Arc<Served>> {
        self.index()
            .by_project
            .values()
            .flatten()
            .cloned()
            .collect()
    }

    /// The evaluation counters, sorted by their labels.
    pub fn evaluation_counts(&self) -> Vec<(CounterKey, u64)> {
        let counters = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<(CounterKey, u64)> = counters
            .iter()
            .flat_map(|((project, deployment), counts)| {
                counts.counts().map(|(flag, variant, n)| {
                    let key = (
                        project.clone(),
                        deployment.clone(),
                        flag.to_owned(),
                        variant.to_owned(),
                    );
                    (key, n)
                })
            })
            .collect();
        out.sort();
        out
    }

    /// The counters of what `snapshot` can serve; counters it cannot serve are forgotten, so
    /// that deleted flags do not accumulate.
    fn counts_for(&self, snapshot: &Snapshot) -> ServedCounts {
        let mut counters = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (
            snapshot.project.key.clone(),
            snapshot.deployment.key.clone(),
        );
        counters.entry(key).or_default().serve(snapshot)
    }

    /// Follows a deployment's publications; `None` when it has none.
    pub fn watch(&self, served: &Served) -> Option<watch::Receiver<Arc<Served>>> {
        let watches = self
            .watches
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        watches.get(&served.id()).map(watch::Sender::subscribe)
    }

    /// Resolves once the server is shutting down, so that streams end.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    /// Ends every stream.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// The OFREP stream token of a deployment (`project/deployment`): base64url of
    /// HMAC-SHA256(current server secret, `ofrep-sse:<deployment>`).
    pub fn token(&self, deployment_id: &str) -> Arc<str> {
        if let Some(token) = self.index().tokens.get(deployment_id) {
            return token.clone();
        }
        token_with(self.secrets().current(), deployment_id).into()
    }
}

impl SnapshotSink for Registry {
    fn publish(&self, project: &str, data: Option<&Arc<ProjectData>>, snapshots: &[Arc<Snapshot>]) {
        let served: Vec<Arc<Served>> = snapshots
            .iter()
            .map(|s| {
                Arc::new(Served {
                    snapshot: s.clone(),
                    counts: self.counts_for(s),
                    gzipped: [OnceLock::new(), OnceLock::new()],
                    relay: OnceLock::new(),
                })
            })
            .collect();
        // The counters of deployments the project no longer has go with them.
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(p, d), _| p != project || snapshots.iter().any(|s| s.deployment.key == *d));
        {
            let mut guard = self
                .index
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Under the index lock, so a rotation of the secret cannot come in between.
            let secrets = self.secrets();
            let mut next = (**guard).clone();
            for gone in next.by_project.remove(project).unwrap_or_default() {
                next.remove(&gone, &secrets);
            }
            next.projects_by_api_key.retain(|_, p| p.key != project);
            for s in &served {
                next.add(s, &secrets);
            }
            if let Some(data) = data {
                next.projects_by_api_key
                    .insert(data.api_key.as_str().into(), data.clone());
                if let Some(previous) = &data.previous_api_key {
                    next.projects_by_api_key
                        .insert(previous.as_str().into(), data.clone());
                }
            }
            next.by_project.insert(project.to_owned(), served.clone());
            *guard = Arc::new(next);
        }
        let mut watches = self
            .watches
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for s in served {
            match watches.get(&s.id()) {
                // Streams only care about new content; an unchanged rebuild wakes no one.
                Some(tx) => {
                    let changed = {
                        let old = tx.borrow();
                        old.snapshot.hash != s.snapshot.hash
                            || old.snapshot.revision != s.snapshot.revision
                    };
                    if changed {
                        tx.send_replace(s);
                    }
                }
                None => {
                    watches.insert(s.id(), watch::channel(s).0);
                }
            }
        }
    }
}
