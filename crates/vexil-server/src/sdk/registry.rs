//! The published snapshots as the SDK routes look them up: by deployment key, by project API
//! key, by OFREP stream token, and a watch channel per deployment that wakes its streams. The
//! [`Registry`] is the publisher's [`SnapshotSink`]; every publish swaps in a new immutable
//! index, so a request holds one consistent view.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, OnceLock, RwLock};

use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::watch;
use vexil_core::sdk::{ProjectData, Snapshot, SnapshotSink};

/// One deployment as served: its snapshot and what is derived from it once.
#[derive(Debug)]
pub struct Served {
    pub snapshot: Arc<Snapshot>,
    /// `data: <flags>\n\n`: the SSE event of `/sdk/stream/v1/flags`.
    pub sse_frame: Bytes,
    /// The OFREP stream token of this deployment.
    pub token: String,
    gzipped: [OnceLock<Bytes>; 2],
}

impl Served {
    /// `/sdk/v2/flags` (`remote`: every mode) gzip-compressed, made on first use.
    pub fn flags_gzip(&self, remote: bool) -> Bytes {
        self.gzipped[usize::from(remote)]
            .get_or_init(|| {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                let json = self.snapshot.flags_json(remote);
                // Writing to a Vec cannot fail.
                let _ = encoder.write_all(json.as_bytes());
                Bytes::from(encoder.finish().unwrap_or_default())
            })
            .clone()
    }

    /// `project/deployment`: names the deployment in tokens and ETags.
    pub fn id(&self) -> String {
        deployment_id(&self.snapshot)
    }
}

fn deployment_id(s: &Snapshot) -> String {
    format!("{}/{}", s.project.key, s.deployment.key)
}

#[derive(Default)]
struct Index {
    by_key: HashMap<Box<str>, Arc<Served>>,
    by_token: HashMap<Box<str>, Arc<Served>>,
    projects_by_api_key: HashMap<Box<str>, Arc<ProjectData>>,
    /// (project, deployment key) -> served, for replacing a project's deployments.
    by_project: HashMap<String, Vec<Arc<Served>>>,
}

/// The snapshots the SDK routes read.
pub struct Registry {
    index: RwLock<Arc<Index>>,
    watches: RwLock<HashMap<String, watch::Sender<Arc<Served>>>>,
    secret: Vec<u8>,
    closed: watch::Sender<bool>,
}

impl Registry {
    /// `secret` keys the OFREP stream tokens.
    pub fn new(secret: &str) -> Registry {
        Registry {
            index: RwLock::new(Arc::new(Index::default())),
            watches: RwLock::new(HashMap::new()),
            secret: secret.as_bytes().to_vec(),
            closed: watch::channel(false).0,
        }
    }

    fn index(&self) -> Arc<Index> {
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The deployment whose SDK key this is.
    pub fn by_key(&self, key: &str) -> Option<Arc<Served>> {
        let index = self
            .index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        index.by_key.get(key).cloned()
    }

    /// The deployment an OFREP stream token stands for.
    pub fn by_token(&self, token: &str) -> Option<Arc<Served>> {
        self.index().by_token.get(token).cloned()
    }

    /// The project whose API key this is.
    pub fn project_by_api_key(&self, key: &str) -> Option<Arc<ProjectData>> {
        self.index().projects_by_api_key.get(key).cloned()
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

    /// The OFREP stream token: base64url of HMAC-SHA256(secret, `ofrep-sse:<deployment>`).
    pub fn token(&self, deployment_id: &str) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.secret) {
            Ok(mac) => mac,
            // HMAC takes keys of any length.
            Err(_) => return String::new(),
        };
        mac.update(b"ofrep-sse:");
        mac.update(deployment_id.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

impl SnapshotSink for Registry {
    fn publish(&self, project: &str, data: Option<&Arc<ProjectData>>, snapshots: &[Arc<Snapshot>]) {
        let served: Vec<Arc<Served>> = snapshots
            .iter()
            .map(|s| {
                let mut frame = Vec::with_capacity(s.flags_json(false).len() + 8);
                frame.extend_from_slice(b"data: ");
                frame.extend_from_slice(s.flags_json(false).as_bytes());
                frame.extend_from_slice(b"\n\n");
                Arc::new(Served {
                    snapshot: s.clone(),
                    sse_frame: Bytes::from(frame),
                    token: self.token(&deployment_id(s)),
                    gzipped: [OnceLock::new(), OnceLock::new()],
                })
            })
            .collect();
        {
            let mut guard = self
                .index
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let old = guard.clone();
            let mut next = Index {
                by_key: old.by_key.clone(),
                by_token: old.by_token.clone(),
                projects_by_api_key: old.projects_by_api_key.clone(),
                by_project: old.by_project.clone(),
            };
            for gone in next.by_project.remove(project).unwrap_or_default() {
                next.by_key
                    .remove(gone.snapshot.deployment.api_key.as_str());
                next.by_token.remove(gone.token.as_str());
            }
            next.projects_by_api_key.retain(|_, p| p.key != project);
            for s in &served {
                next.by_key
                    .insert(s.snapshot.deployment.api_key.as_str().into(), s.clone());
                next.by_token.insert(s.token.as_str().into(), s.clone());
            }
            if let Some(data) = data {
                next.projects_by_api_key
                    .insert(data.api_key.as_str().into(), data.clone());
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
