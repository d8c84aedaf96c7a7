//! `vexil edge`: a relay with no database. It follows deployments of an upstream Vexil (a
//! `vexil serve` node or another edge) over the relay protocol (`GET /sdk/relay/v1/stream`
//! for change signals, `GET /sdk/relay/v1/deployment` for the snapshot's inputs, see
//! `vexil_server`'s `sdk/relay.rs`), builds the same snapshots with `Snapshot::build`, and
//! serves them through `vexil_server::SdkApp`: the node's own SDK routes and registry.
//!
//! Without the upstream it keeps serving the last snapshots; with `--data-dir` they are
//! persisted (`Persister`) and restored at start, and accepted event batches are spooled
//! (`Spool`) and forwarded upstream in the background, so none is lost while it is away.
//!
//! A client deployment's key is followed with a server key of its project among the `--key`s
//! (see `follow.rs`). With `--metrics-listen` the SDK app's `/metrics` is served there, with
//! what [`Edge::metrics`] and the backend report.
//!
//! This is the binary's glue, like `serve.rs`: the pieces it assembles live in the libraries
//! (`vexil-server` serves, `vexil-core` builds and persists snapshots and spools batches,
//! `vexil-sdk` parses the stream and spaces the retries).

mod follow;
mod forward;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use vexil_core::sdk::{persist, ProjectData, Snapshot, SnapshotSink, SpoolOptions, UserProperties};
use vexil_server::{BackendMetric, MetricKind};

use crate::cli::EdgeArgs;
use crate::serve;

/// What `vexil edge` runs with, resolved once from the command line.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// The upstream's root URL, without a trailing `/`.
    pub upstream: String,
    /// Deployment keys to follow: server keys, and client keys relayed with one of the server
    /// keys of their project.
    pub keys: Vec<vexil_sdk::Secret>,
    /// Snapshots (`snapshots/`) and the event spool (`spool/`); without it, both stay in
    /// memory only (the spool then lives in a temporary directory removed at exit).
    pub data_dir: Option<PathBuf>,
    pub spool_max_bytes: u64,
    /// How long the relay stream may stay silent (the upstream pings every keep-alive
    /// interval) before it is taken for dead.
    pub stream_timeout: Duration,
    /// Where `/metrics` is served, without a key; none without it.
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub server: vexil_server::ServerConfig,
}

impl EdgeArgs {
    pub fn config(&self) -> EdgeConfig {
        let mut server = vexil_server::ServerConfig {
            public_url: self.public_url.clone(),
            ..Default::default()
        };
        server.state_dir = None;
        EdgeConfig {
            upstream: self.upstream.trim_end_matches('/').to_owned(),
            keys: self.key.iter().map(vexil_sdk::Secret::new).collect(),
            data_dir: self.data_dir.clone(),
            spool_max_bytes: self.spool_max_mb.saturating_mul(1 << 20),
            stream_timeout: Duration::from_secs(35),
            metrics_listen: self.metrics_listen,
            server,
        }
    }
}

/// One followed deployment's link to the upstream.
#[derive(Debug, Default, Clone)]
struct Link {
    /// `project/deployment`, once a snapshot of it is known (fetched or restored).
    id: Option<String>,
    /// The relay stream is open and the last fetch succeeded.
    connected: bool,
    /// When the upstream last answered for this deployment.
    last_contact: Option<Instant>,
    /// Why it does not now, in words.
    error: Option<String>,
    /// The ETag of the document served, for `If-None-Match`.
    etag: Option<String>,
}

/// A project as served: its deployments' snapshots, each built from its own document.
struct Project {
    deployments: BTreeMap<String, Arc<Snapshot>>,
    latest: Arc<ProjectData>,
}

/// What the followers, the backend and the probes share.
pub(crate) struct Edge {
    sink: Arc<dyn SnapshotSink>,
    persister: Option<vexil_core::sdk::Persister>,
    projects: Mutex<BTreeMap<String, Project>>,
    properties: Mutex<BTreeMap<String, Arc<UserProperties>>>,
    links: Vec<Mutex<Link>>,
    started: Instant,
    /// Counts finished fetches, so that `refresh` can wait for the next one.
    fetched: (Mutex<u64>, Condvar),
    /// Wakes every follower to fetch now.
    nudge: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Edge {
    fn properties(&self, project: &str) -> Arc<UserProperties> {
        lock(&self.properties)
            .entry(project.to_owned())
            .or_default()
            .clone()
    }

    /// The data of a project served now.
    pub(crate) fn project(&self, key: &str) -> Option<Arc<ProjectData>> {
        lock(&self.projects).get(key).map(|p| p.latest.clone())
    }

    /// Serves (and persists) one deployment's snapshot beside the project's others. The
    /// project's data is the newest document's, with the cohorts of every deployment's.
    fn install(&self, data: Arc<ProjectData>, snapshot: Arc<Snapshot>) {
        let mut projects = lock(&self.projects);
        let project = projects.entry(data.key.clone()).or_insert_with(|| Project {
            deployments: BTreeMap::new(),
            latest: data.clone(),
        });
        project
            .deployments
            .insert(snapshot.deployment.key.clone(), snapshot);
        let mut cohorts = BTreeMap::new();
        for s in project.deployments.values() {
            cohorts.extend(
                s.project
                    .cohorts
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        cohorts.extend(data.cohorts.iter().map(|(k, v)| (k.clone(), v.clone())));
        let merged = Arc::new(ProjectData {
            key: data.key.clone(),
            api_key: data.api_key.clone(),
            secret_key_hash: data.secret_key_hash.clone(),
            previous_api_key: data.previous_api_key.clone(),
            previous_secret_key_hash: data.previous_secret_key_hash.clone(),
            previous_key_expires_at: data.previous_key_expires_at,
            cohorts,
            properties: data.properties.clone(),
            mutex_flags: data.mutex_flags.clone(),
        });
        project.latest = merged.clone();
        let snapshots: Vec<Arc<Snapshot>> = project.deployments.values().cloned().collect();
        // Under the lock, so that two deployments of a project publish in order.
        self.sink.publish(&merged.key, Some(&merged), &snapshots);
        if let Some(persister) = &self.persister {
            persister.publish(&merged.key, Some(&merged), &snapshots);
        }
    }

    fn link(&self, i: usize) -> std::sync::MutexGuard<'_, Link> {
        lock(&self.links[i])
    }

    fn fetch_done(&self) {
        *lock(&self.fetched.0) += 1;
        self.fetched.1.notify_all();
    }

    /// Asks every follower to fetch now, and waits (at most `wait`) until one has.
    pub(crate) fn refresh(&self, wait: Duration) {
        let before = *lock(&self.fetched.0);
        self.nudge.notify_waiters();
        let guard = lock(&self.fetched.0);
        let _ = self
            .fetched
            .1
            .wait_timeout_while(guard, wait, |n| *n == before);
    }

    /// `/readyz`: ready once any snapshot is served; `upstream` is `connected` while every
    /// followed deployment's stream is open, else `stale` with the seconds since the least
    /// recent contact.
    pub(crate) fn readiness(&self) -> (bool, serde_json::Value) {
        let served = lock(&self.projects)
            .values()
            .map(|p| p.deployments.len())
            .sum::<usize>();
        let links: Vec<Link> = self.links.iter().map(|l| lock(l).clone()).collect();
        let connected = links.iter().all(|l| l.connected);
        let age = |l: &Link| l.last_contact.unwrap_or(self.started).elapsed().as_secs();
        let stale = links.iter().filter(|l| !l.connected).map(age).max();
        let deployments: Vec<serde_json::Value> = links
            .iter()
            .map(|l| {
                serde_json::json!({
                    "deployment": l.id,
                    "upstream": if l.connected { "connected" } else { "stale" },
                    "seconds_since_contact": l.last_contact.map(|t| t.elapsed().as_secs()),
                    "error": l.error,
                })
            })
            .collect();
        let ready = served > 0;
        let mut body = serde_json::json!({
            "status": if ready { "ready" } else { "starting" },
            "upstream": if connected { "connected" } else { "stale" },
            "snapshots": { "deployments": served },
            "deployments": deployments,
        });
        if let Some(seconds) = stale {
            body["stale_seconds"] = serde_json::json!(seconds);
        }
        (ready, body)
    }

    /// `/metrics`: each followed deployment's link to the upstream, and the keys that serve
    /// nothing yet. The revision and age of what each deployment serves are the SDK app's own
    /// (`vexil_snapshot_revision`, `vexil_snapshot_age_seconds`).
    pub(crate) fn metrics(&self) -> Vec<BackendMetric> {
        let links: Vec<Link> = self.links.iter().map(|l| lock(l).clone()).collect();
        let mut connected = Vec::new();
        let mut contact = Vec::new();
        let mut unserved = 0.0;
        for link in &links {
            let Some((project, deployment)) = link.id.as_deref().and_then(|id| id.split_once('/'))
            else {
                unserved += 1.0;
                continue;
            };
            let labels = vec![
                ("project", project.to_owned()),
                ("deployment", deployment.to_owned()),
            ];
            let age = link.last_contact.unwrap_or(self.started).elapsed();
            connected.push((labels.clone(), if link.connected { 1.0 } else { 0.0 }));
            contact.push((labels, age.as_secs_f64()));
        }
        vec![
            BackendMetric {
                name: "vexil_edge_upstream_connected",
                help: "Whether the edge follows each deployment's relay stream now (1) or serves its last snapshot (0)",
                kind: MetricKind::Gauge,
                samples: connected,
            },
            BackendMetric {
                name: "vexil_edge_upstream_contact_age_seconds",
                help: "Seconds since the upstream last answered for each deployment (since the start, when never)",
                kind: MetricKind::Gauge,
                samples: contact,
            },
            BackendMetric::single(
                "vexil_edge_keys_unserved",
                "Followed keys with no snapshot yet: not reached, unknown upstream, or a client key without a server key of its project",
                MetricKind::Gauge,
                unserved,
            ),
        ]
    }

    /// Serves what an earlier run persisted for the followed keys, and names their links.
    fn restore(&self, dir: &Path, keys: &[vexil_sdk::Secret]) -> Result<usize> {
        let followed = |s: &Snapshot| {
            let link = keys.iter().position(|k| {
                s.deployment.api_key == k.expose()
                    || s.deployment.previous_api_key.as_deref() == Some(k.expose())
            });
            if let Some(i) = link {
                self.link(i).id = Some(format!("{}/{}", s.project.key, s.deployment.key));
            }
            link.is_some()
        };
        let mut restored = 0;
        for project in persist::read_all(dir, &|key| self.properties(key))
            .context("reading the persisted snapshots")?
        {
            match project {
                Ok((data, snapshots)) => {
                    for s in snapshots.into_iter().filter(|s| followed(s)) {
                        restored += 1;
                        self.install(data.clone(), s);
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %vexil_core::error::chain(&err), "a persisted project could not be read");
                }
            }
        }
        Ok(restored)
    }
}

/// Runs `vexil edge` until SIGINT or SIGTERM.
pub fn edge(args: &EdgeArgs) -> Result<()> {
    let config = args.config();
    anyhow::ensure!(!config.keys.is_empty(), "give at least one --key");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let traces = crate::serve::init_logging(args.log_format, None, runtime.handle())?;
    let temp;
    let spool_dir = match &config.data_dir {
        Some(dir) => dir.join("spool"),
        None => {
            temp = TempSpool::new()?;
            temp.0.clone()
        }
    };
    let mut spool_options = SpoolOptions::new(spool_dir);
    spool_options.max_bytes = config.spool_max_bytes;
    let spool =
        Arc::new(vexil_core::sdk::Spool::open(spool_options).context("opening the event spool")?);
    let persister = match &config.data_dir {
        Some(dir) => Some(
            vexil_core::sdk::Persister::open(&dir.join("snapshots"))
                .context("opening the snapshot directory")?,
        ),
        None => None,
    };
    let secret = vexil_core::keys::random_base62(43).context("making the stream secret")?;
    let secrets = vexil_core::service::ServerSecrets::new(secret, None);
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .context("making the HTTP client")?;
    runtime.block_on(async move {
        let forwarder_slot: Arc<std::sync::OnceLock<Arc<Edge>>> = Arc::default();
        let backend = Arc::new(forward::EdgeBackend::new(
            forwarder_slot.clone(),
            spool.clone(),
        ));
        let app = vexil_server::SdkApp::new(config.server.clone(), &secrets, backend.clone());
        let edge = Arc::new(Edge {
            sink: app.sink(),
            persister,
            projects: Mutex::new(BTreeMap::new()),
            properties: Mutex::new(BTreeMap::new()),
            links: config.keys.iter().map(|_| Mutex::default()).collect(),
            started: Instant::now(),
            fetched: (Mutex::new(0), Condvar::new()),
            nudge: tokio::sync::Notify::new(),
        });
        let _ = forwarder_slot.set(edge.clone());
        if let Some(dir) = &config.data_dir {
            let restored = edge.restore(&dir.join("snapshots"), &config.keys)?;
            tracing::info!(
                deployments = restored,
                "serving the persisted snapshots until the upstream answers"
            );
        }
        let forwarder = forward::Forwarder::start(
            http.clone(),
            config.upstream.clone(),
            spool,
            backend.clone(),
            tokio::runtime::Handle::current(),
        )?;
        for (i, key) in config.keys.iter().enumerate() {
            let others = (config.keys.iter().enumerate())
                .filter(|&(j, _)| j != i)
                .map(|(_, k)| k.clone())
                .collect();
            let follower = follow::Follower {
                edge: edge.clone(),
                http: http.clone(),
                upstream: config.upstream.clone(),
                key: key.clone(),
                others,
                index: i,
                timeout: config.stream_timeout,
                via: None,
            };
            tokio::spawn(follower.run());
        }
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        // One signal stops both listeners.
        let stop = serve::stop_on_signal();
        if let Some(at) = config.metrics_listen {
            let metrics_listener = serve::bind_metrics(at).await?;
            serve::announce_metrics(&metrics_listener)?;
            tokio::spawn(serve::log_failure(
                app.serve_metrics(metrics_listener, serve::stopped(stop.clone())),
            ));
        }
        println!("Vexil edge is listening on http://{addr}");
        tracing::info!(%addr, upstream = %config.upstream, "listening");
        let served = app.serve(listener, serve::stopped(stop)).await;
        let stopping = forwarder.clone();
        let _ = tokio::task::spawn_blocking(move || stopping.stop()).await;
        served.context("serving")
    })?;
    if let Some(traces) = traces {
        traces.shutdown();
    }
    tracing::info!("stopped");
    Ok(())
}

/// A spool directory of its own for an edge without `--data-dir`, removed at exit.
struct TempSpool(PathBuf);

impl TempSpool {
    fn new() -> Result<TempSpool> {
        let suffix = vexil_core::keys::random_base62(12).context("naming the spool directory")?;
        let dir = std::env::temp_dir().join(format!("vexil-edge-spool-{suffix}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(TempSpool(dir))
    }
}

impl Drop for TempSpool {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
