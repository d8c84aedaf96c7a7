//! Publishing snapshots: after every committed change to a project, rebuild the snapshots of
//! its deployments, settle their revisions in the store, and hand them to the
//! [`SnapshotSink`]s (the HTTP server swaps them in and wakes its streams).
//!
//! Changes are picked up two ways. A change made through this process's services arrives as a
//! [`ChangeListener`] call and is rebuilt by a worker within a few milliseconds (bursts
//! coalesce). A change made by another node (PostgreSQL) or another process (`vexil flags
//! import`) shows as a stored revision that differs from the one loaded; a sync thread polls
//! the revisions every `sync_interval` and queues those projects.
//!
//! Projects are rebuilt independently: a small pool of workers takes changed projects from one
//! queue, and a project is never rebuilt by two threads at once (a per-project lock, which
//! direct [`Publisher::refresh`] calls take too). A project changed during its rebuild stays
//! queued and is rebuilt again once the running rebuild ends, so a slow project delays only
//! itself.
//!
//! A node that starts while the store is unreachable can serve the snapshots it persisted
//! before ([`super::persist`], handed over with [`Publisher::adopt`]); the sync thread then
//! retries [`Publisher::load_all`] every `sync_interval` until the store answers, and the
//! store's snapshots replace the persisted ones. [`Publisher::source`] says which are served.
//!
//! Revisions are content-addressed: a node bumps a deployment's revision only when the digest
//! of what it would serve differs from the stored digest, under the project lock, so every node
//! that builds the same content agrees on one number.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use vexil_store::{SdkRevisionRow, Store, Tx};

use super::enrich::{referenced_cohort_ids, targeted_properties};
use super::memory::{CohortData, IdKind, UserProperties};
use super::snapshot::{group_kind, ProjectData, Snapshot, SnapshotInput};
use crate::compile::{compile_flag, deployment_flags};
use crate::error::{Error, Result};
use crate::model::{Cohort, Deployment, Flag, Group, GroupKind, Project};
use crate::service::convert::{cohort, deployment, flag, project};
use crate::service::{now_ms, ChangeListener};

/// Receives every project's snapshots after each rebuild.
pub trait SnapshotSink: Send + Sync {
    /// `snapshots` holds every deployment of `project` (archived ones included), replacing
    /// whatever was published for it before. `data` is the project's shared data, `None`
    /// (with no snapshots) when the project is gone.
    fn publish(&self, project: &str, data: Option<&Arc<ProjectData>>, snapshots: &[Arc<Snapshot>]);
}

/// Where the published snapshots came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotSource {
    /// Loaded from the store: [`Publisher::load_all`] succeeded.
    Store,
    /// Persisted on local disk by an earlier run, served while the store is unreachable.
    Disk,
}

impl SnapshotSource {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotSource::Store => "store",
            SnapshotSource::Disk => "disk",
        }
    }
}

/// How the publisher runs.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// How often the stored revisions are compared with the loaded ones.
    pub sync_interval: Duration,
    /// How long a change waits for more changes before the rebuild starts.
    pub debounce: Duration,
    /// How many projects may be rebuilt at once (at least one).
    pub workers: usize,
}

impl Default for PublisherOptions {
    fn default() -> Self {
        PublisherOptions {
            sync_interval: Duration::from_secs(1),
            debounce: Duration::from_millis(5),
            // Enough that a few slow projects do not hold up the rest; few enough that
            // rebuilds leave most of the machine to serving.
            workers: 4,
        }
    }
}

mod threads;

use threads::{follow, listen, work, Job};

/// Property rows written by other nodes are re-read this far back, so that rows committed
/// slightly out of order (or stamped by a clock slightly behind) are not missed.
const PROPERTY_LOOKBACK_MS: i64 = 2_000;

#[derive(Default)]
struct Queue {
    /// Projects changed since their last rebuild started, with the time of the first such
    /// change (a project is rebuilt `debounce` after it).
    dirty: BTreeMap<String, Instant>,
    /// Projects a worker is rebuilding; a worker never takes one of these.
    running: BTreeSet<String>,
    /// Another node announced a change: the sync thread looks at the store now.
    sync_now: bool,
    stop: bool,
}

struct Loaded {
    snapshots: Vec<Arc<Snapshot>>,
    data: Arc<ProjectData>,
}

struct Inner {
    store: Arc<dyn Store>,
    options: PublisherOptions,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// The published snapshots of each project.
    current: RwLock<BTreeMap<String, Loaded>>,
    /// One property index per project, kept across rebuilds.
    properties: Mutex<BTreeMap<String, Arc<UserProperties>>>,
    sinks: RwLock<Vec<Arc<dyn SnapshotSink>>>,
    /// One lock per project, held for its whole rebuild, so that an older build of a project
    /// never replaces a newer one while other projects build at the same time.
    rebuilding: Mutex<BTreeMap<String, Arc<Mutex<()>>>>,
    /// Projects whose last rebuild failed; retried at every sync.
    failed: Mutex<BTreeSet<String>>,
    /// Newest `updated_at` of the properties read from the store.
    property_watermark: Mutex<i64>,
    /// Where the published snapshots came from; `None` until some are loaded.
    source: Mutex<Option<SnapshotSource>>,
    stats: PublishStats,
}

/// Rebuilds so far: how many, how long in all, how many failed (for `/metrics`).
#[derive(Debug, Default)]
pub struct PublishStats {
    count: AtomicU64,
    failed: AtomicU64,
    micros: AtomicU64,
}

impl PublishStats {
    fn record(&self, took: Duration, ok: bool) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Rebuilds, failed rebuilds, and their total duration in seconds.
    pub fn read(&self) -> (u64, u64, f64) {
        (
            self.count.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.micros.load(Ordering::Relaxed) as f64 / 1e6,
        )
    }
}

/// Builds and publishes snapshots; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Publisher {
    /// A publisher with nothing loaded yet: register its [`Publisher::listener`] and sinks,
    /// then [`Publisher::load_all`], then [`Publisher::spawn`] (or call
    /// [`Publisher::refresh`] / [`Publisher::sync`] yourself).
    pub fn new(store: Arc<dyn Store>, options: PublisherOptions) -> Publisher {
        Publisher {
            inner: Arc::new(Inner {
                store,
                options,
                queue: Mutex::new(Queue::default()),
                wake: Condvar::new(),
                current: RwLock::new(BTreeMap::new()),
                properties: Mutex::new(BTreeMap::new()),
                sinks: RwLock::new(Vec::new()),
                rebuilding: Mutex::new(BTreeMap::new()),
                failed: Mutex::new(BTreeSet::new()),
                property_watermark: Mutex::new(0),
                source: Mutex::new(None),
                stats: PublishStats::default(),
            }),
            threads: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// A handle for the background threads, which own no threads themselves.
    fn handle(inner: &Arc<Inner>) -> Publisher {
        Publisher {
            inner: inner.clone(),
            threads: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Loads the stored properties and every project's snapshots. Blocking; run it off async
    /// threads. Projects published before (from disk) that the store no longer has are
    /// withdrawn.
    pub fn load_all(&self) -> Result<()> {
        // Each project loads the stored properties its targeting reads when it is built; other
        // nodes' writes are followed from now on.
        *lock(&self.inner.property_watermark) = now_ms();
        let projects: BTreeSet<String> = vexil_store::read(&*self.inner.store, |tx| {
            Ok::<_, Error>(tx.list_projects()?.into_iter().map(|p| p.key).collect())
        })?;
        for p in &projects {
            self.refresh(p)?;
        }
        let gone: Vec<String> = self
            .projects()
            .into_iter()
            .filter(|p| !projects.contains(p))
            .collect();
        for project in gone {
            self.inner
                .current
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&project);
            publish(&self.inner, &project, None, &[]);
        }
        *lock(&self.inner.source) = Some(SnapshotSource::Store);
        Ok(())
    }

    /// Publishes a project's snapshots persisted by an earlier run (the store being
    /// unreachable), as if rebuilt; [`Publisher::load_all`] replaces them once the store
    /// answers.
    pub fn adopt(&self, data: Arc<ProjectData>, snapshots: Vec<Arc<Snapshot>>) {
        let key = data.key.clone();
        let project_lock = lock(&self.inner.rebuilding)
            .entry(key.clone())
            .or_default()
            .clone();
        let _one_at_a_time = lock(&project_lock);
        publish(&self.inner, &key, Some(&data), &snapshots);
        self.inner
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, Loaded { snapshots, data });
        lock(&self.inner.source).get_or_insert(SnapshotSource::Disk);
    }

    /// Where the published snapshots came from: `None` before any are loaded (the store was
    /// unreachable at start and nothing was persisted).
    pub fn source(&self) -> Option<SnapshotSource> {
        *lock(&self.inner.source)
    }

    /// The keys of the published projects.
    pub fn projects(&self) -> Vec<String> {
        self.inner
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// Starts the background threads: the workers that rebuild changed projects and the one
    /// that polls the store.
    pub fn spawn(&self) -> Result<()> {
        let workers = self.inner.options.workers.max(1);
        let jobs = (0..workers)
            .map(|i| (format!("vexil-publisher-{i}"), Job::Work))
            .chain([
                ("vexil-publisher-sync".to_owned(), Job::Follow),
                ("vexil-publisher-listen".to_owned(), Job::Listen),
            ]);
        for (name, job) in jobs {
            let inner = self.inner.clone();
            let handle = std::thread::Builder::new()
                .name(name)
                .spawn(move || match job {
                    Job::Work => work(&inner),
                    Job::Follow => follow(&inner),
                    Job::Listen => listen(&inner),
                })
                .map_err(|e| Error::Internal(Box::new(e)))?;
            // Recorded one by one, so that `stop` joins whatever started before a failure.
            lock(&self.threads).push(handle);
        }
        Ok(())
    }

    /// Stops the background threads (if any) and waits for them; a rebuild under way ends
    /// first.
    pub fn stop(&self) {
        lock(&self.inner.queue).stop = true;
        self.inner.wake.notify_all();
        let handles = std::mem::take(&mut *lock(&self.threads));
        for handle in handles {
            let _ = handle.join();
        }
    }

    /// Adds a sink and hands it everything published so far.
    pub fn subscribe(&self, sink: Arc<dyn SnapshotSink>) {
        {
            let current = self
                .inner
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (project, loaded) in current.iter() {
                sink.publish(project, Some(&loaded.data), &loaded.snapshots);
            }
        }
        self.inner
            .sinks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(sink);
    }

    /// The listener to register with [`crate::Services::subscribe`].
    pub fn listener(&self) -> Arc<dyn ChangeListener> {
        Arc::new(Listener(self.inner.clone()))
    }

    /// The current snapshots of every deployment of every project.
    pub fn snapshots(&self) -> Vec<Arc<Snapshot>> {
        let current = self
            .inner
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        current
            .values()
            .flat_map(|l| l.snapshots.iter().cloned())
            .collect()
    }

    /// The shared data of a project (credentials, cohorts, properties).
    pub fn project(&self, key: &str) -> Option<Arc<ProjectData>> {
        let current = self
            .inner
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        current.get(key).map(|l| l.data.clone())
    }

    /// The property index of a project (created empty when new).
    pub fn properties(&self, project: &str) -> Arc<UserProperties> {
        properties_of(&self.inner, project)
    }

    /// Rebuilds and publishes one project now.
    pub fn refresh(&self, project: &str) -> Result<()> {
        let started = Instant::now();
        let result = rebuild(&self.inner, project);
        self.inner.stats.record(started.elapsed(), result.is_ok());
        let mut failed = lock(&self.inner.failed);
        if result.is_err() {
            failed.insert(project.to_owned());
        } else {
            failed.remove(project);
        }
        result
    }

    /// Rebuilds so far (for metrics).
    pub fn stats(&self) -> &PublishStats {
        &self.inner.stats
    }

    /// Compares the stored revisions with the loaded ones and rebuilds the projects that
    /// differ (or failed before), on the calling thread; on PostgreSQL also reads the
    /// properties other nodes wrote.
    pub fn sync(&self) -> Result<()> {
        let stale = self.stale()?;
        let mut first_error = None;
        for project in stale {
            if let Err(err) = self.refresh(&project) {
                first_error.get_or_insert(err);
            }
        }
        self.follow_properties()?;
        first_error.map_or(Ok(()), Err)
    }

    /// The projects whose stored revisions differ from the loaded ones, or whose last rebuild
    /// failed.
    fn stale(&self) -> Result<BTreeSet<String>> {
        let stored = vexil_store::read(&*self.inner.store, |tx| {
            Ok::<_, Error>(tx.sdk_revisions(None)?)
        })?;
        let mut stale: BTreeSet<String> = lock(&self.inner.failed).clone();
        {
            let current = self
                .inner
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for row in &stored {
                let loaded = current.get(&row.project).and_then(|l| {
                    l.snapshots
                        .iter()
                        .find(|s| s.deployment.key == row.deployment)
                });
                if loaded.is_none_or(|s| s.revision != row.revision) {
                    stale.insert(row.project.clone());
                }
            }
        }
        Ok(stale)
    }

    /// On PostgreSQL, applies the properties other nodes stored since the last look.
    fn follow_properties(&self) -> Result<()> {
        if self.inner.store.backend() == "postgres" {
            let since = *lock(&self.inner.property_watermark) - PROPERTY_LOOKBACK_MS;
            self.load_properties(since.max(0))?;
        }
        Ok(())
    }

    /// Applies the stored properties written at or after `since` to the in-memory indexes.
    fn load_properties(&self, since: i64) -> Result<()> {
        let rows = vexil_store::read(&*self.inner.store, |tx| {
            Ok::<_, Error>(tx.experiment_properties(since)?)
        })?;
        let mut watermark = lock(&self.inner.property_watermark);
        for row in rows {
            let Some(kind) = IdKind::parse(&row.id_kind) else {
                continue;
            };
            properties_of(&self.inner, &row.project).apply(
                kind,
                &row.id,
                &row.flag_key,
                row.variant.as_deref(),
            );
            *watermark = (*watermark).max(row.updated_at);
        }
        Ok(())
    }
}

struct Listener(Arc<Inner>);

impl ChangeListener for Listener {
    fn changed(&self, project: &str) {
        queue(&self.0, [project.to_owned()]);
    }

    /// Rebuilds and publishes the project on the calling thread (a rotated key then fails on
    /// this node before the rotation answers).
    fn changed_now(&self, project: &str) -> Result<()> {
        Publisher::handle(&self.0).refresh(project)
    }
}

/// Marks `projects` changed (keeping the time of an earlier change still waiting) and wakes
/// the workers.
fn queue(inner: &Inner, projects: impl IntoIterator<Item = String>) {
    let now = Instant::now();
    {
        let mut queue = lock(&inner.queue);
        for project in projects {
            queue.dirty.entry(project).or_insert(now);
        }
    }
    inner.wake.notify_all();
}

fn properties_of(inner: &Inner, project: &str) -> Arc<UserProperties> {
    lock(&inner.properties)
        .entry(project.to_owned())
        .or_default()
        .clone()
}

/// What a project's rebuild reads in one transaction.
struct ProjectState {
    project: Project,
    deployments: Vec<Deployment>,
    flags: Vec<Flag>,
    groups: Vec<Group>,
    cohorts: BTreeMap<String, Arc<CohortData>>,
}

/// Reads the project, reusing the cohorts whose version has not changed.
fn load(
    tx: &mut dyn Tx,
    key: &str,
    cached: &BTreeMap<String, Arc<CohortData>>,
) -> Result<Option<ProjectState>> {
    let Some(row) = tx.get_project(key)? else {
        return Ok(None);
    };
    let project = project(&row)?;
    let deployments = tx
        .list_deployments(key)?
        .iter()
        .map(deployment)
        .collect::<Result<_>>()?;
    let flags = tx
        .project_flags(key)?
        .iter()
        .map(flag)
        .collect::<Result<_>>()?;
    let groups = crate::service::groups::project_groups(tx, key)?;
    let mut cohorts = BTreeMap::new();
    for row in tx.list_cohorts(key)? {
        let c: Cohort = cohort(&row)?;
        let data = match cached.get(&c.id) {
            Some(old) if old.version == c.version => old.clone(),
            old => {
                let members = tx.cohort_members(key, &c.id)?;
                // Re-uploading the same members is not a change of membership.
                let last_modified = match old {
                    Some(old) if old.same_members(&members) => old.last_modified,
                    _ => c.updated_at,
                };
                Arc::new(CohortData::new(
                    c.id.clone(),
                    c.group_type.clone(),
                    c.version,
                    last_modified,
                    members,
                ))
            }
        };
        cohorts.insert(c.id, data);
    }
    Ok(Some(ProjectState {
        project,
        deployments,
        flags,
        groups,
        cohorts,
    }))
}

/// The digest of everything a deployment's snapshot holds.
fn digest(
    state: &ProjectState,
    deployment: &Deployment,
    flags_json: &str,
    configs: &[vexil_eval::FlagConfig],
) -> String {
    let mut h = Sha256::new();
    let fields: [&str; 6] = [
        &deployment.key,
        deployment.kind.as_str(),
        &deployment.api_key,
        if deployment.archived {
            "archived"
        } else {
            "live"
        },
        &state.project.api_key,
        &state.project.secret_key_hash,
    ];
    for field in fields {
        h.update(field.as_bytes());
        h.update([0u8]);
    }
    h.update(flags_json.as_bytes());
    for id in referenced_cohort_ids(configs) {
        if let Some(c) = state.cohorts.get(id) {
            h.update(format!("\0{id}\0{}\0{}", c.version, c.last_modified).as_bytes());
        }
    }
    crate::keys::hex(&h.finalize())
}

/// One deployment before its revision is settled.
struct Planned {
    deployment: Deployment,
    configs: Vec<vexil_eval::FlagConfig>,
    hash: String,
}

fn rebuild(inner: &Inner, key: &str) -> Result<()> {
    // One span per publish, exported as a trace when the server exports them.
    let _span = tracing::info_span!("publish", project = key).entered();
    let project_lock = lock(&inner.rebuilding)
        .entry(key.to_owned())
        .or_default()
        .clone();
    let _one_at_a_time = lock(&project_lock);
    let cached = inner
        .current
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(key)
        .map(|l| l.data.cohorts.clone())
        .unwrap_or_default();
    let Some(state) = vexil_store::read(&*inner.store, |tx| load(tx, key, &cached))? else {
        // The project is gone (it cannot be deleted today; a wiped database, say).
        let removed = inner
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
        if removed.is_some() {
            publish(inner, key, None, &[]);
        }
        return Ok(());
    };
    let planned: Vec<Planned> = state
        .deployments
        .iter()
        .map(|d| {
            let configs = if d.archived {
                Vec::new()
            } else {
                deployment_flags(&d.key, &state.flags, &state.groups)
            };
            let json = serde_json::to_string(&configs).unwrap_or_default();
            Planned {
                hash: digest(&state, d, &json, &configs),
                deployment: d.clone(),
                configs,
            }
        })
        .collect();
    let revisions = settle_revisions(inner, key, &planned)?;
    let properties = properties_of(inner, key);
    let read_by_targeting: BTreeSet<String> = planned
        .iter()
        .flat_map(|p| targeted_properties(&p.configs))
        .collect();
    for flag in properties.keep_only(&read_by_targeting) {
        let rows = vexil_store::read(&*inner.store, |tx| {
            Ok::<_, Error>(tx.flag_experiment_properties(key, &flag)?)
        })?;
        for row in rows {
            if let Some(kind) = IdKind::parse(&row.id_kind) {
                properties.apply(kind, &row.id, &row.flag_key, row.variant.as_deref());
            }
        }
    }
    let data = Arc::new(ProjectData {
        key: state.project.key.clone(),
        api_key: state.project.api_key.clone(),
        secret_key_hash: state.project.secret_key_hash.clone(),
        previous_api_key: state.project.previous_api_key.clone(),
        previous_secret_key_hash: state.project.previous_secret_key_hash.clone(),
        previous_key_expires_at: state.project.previous_key_expires_at,
        cohorts: state.cohorts.clone(),
        properties,
        mutex_flags: mutex_flags(&state.flags, &state.groups),
    });
    let modes: BTreeMap<String, _> = state
        .flags
        .iter()
        .map(|f| (f.key.clone(), f.evaluation_mode))
        .collect();
    let mut snapshots = Vec::with_capacity(planned.len());
    for p in planned {
        let (revision, changed_at) = revisions
            .get(&p.deployment.key)
            .copied()
            .unwrap_or((1, now_ms()));
        let attached = state
            .flags
            .iter()
            .filter(|f| !f.archived && f.deployments.contains(&p.deployment.key))
            .map(|f| f.key.clone())
            .collect();
        let snapshot = Snapshot::build(SnapshotInput {
            project: data.clone(),
            deployment: p.deployment,
            revision,
            changed_at,
            hash: p.hash,
            configs: p.configs,
            modes: modes.clone(),
            attached,
        })
        .map_err(|e| Error::Internal(Box::new(e)))?;
        snapshots.push(Arc::new(snapshot));
    }
    publish(inner, key, Some(&data), &snapshots);
    inner
        .current
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(key.to_owned(), Loaded { snapshots, data });
    Ok(())
}

/// The revision and change time of each deployment: unchanged where the stored digest matches,
/// bumped (under the project lock, so nodes agree) where it does not.
fn settle_revisions(
    inner: &Inner,
    project: &str,
    planned: &[Planned],
) -> Result<BTreeMap<String, (i64, i64)>> {
    let stored = vexil_store::read(&*inner.store, |tx| {
        Ok::<_, Error>(tx.sdk_revisions(Some(project))?)
    })?;
    let by_key = |rows: &[SdkRevisionRow]| -> BTreeMap<String, SdkRevisionRow> {
        rows.iter()
            .map(|r| (r.deployment.clone(), r.clone()))
            .collect()
    };
    let up_to_date = |rows: &BTreeMap<String, SdkRevisionRow>| {
        planned.iter().all(|p| {
            rows.get(&p.deployment.key)
                .is_some_and(|r| r.hash == p.hash)
        })
    };
    let stored = by_key(&stored);
    let result = |rows: &BTreeMap<String, SdkRevisionRow>| {
        rows.iter()
            .map(|(k, r)| (k.clone(), (r.revision, r.changed_at)))
            .collect()
    };
    // Nothing to write: the common case for changes that touch no deployment.
    if up_to_date(&stored) {
        return Ok(result(&stored));
    }
    let settled = vexil_store::write(&*inner.store, |tx| {
        tx.lock_project(project)?;
        let mut rows = by_key(&tx.sdk_revisions(Some(project))?);
        let now = now_ms();
        for p in planned {
            let next = match rows.get(&p.deployment.key) {
                Some(r) if r.hash == p.hash => continue,
                Some(r) => r.revision + 1,
                None => 1,
            };
            let row = SdkRevisionRow {
                project: project.to_owned(),
                deployment: p.deployment.key.clone(),
                revision: next,
                hash: p.hash.clone(),
                changed_at: now,
            };
            tx.put_sdk_revision(&row)?;
            rows.insert(row.deployment.clone(), row);
        }
        Ok::<_, Error>(rows)
    })?;
    Ok(result(&settled))
}

/// Keys of the project's mutual-exclusion groups, native and imported: no `[Experiment]` user
/// property is set for them, whoever reports them.
fn mutex_flags(flags: &[Flag], groups: &[Group]) -> BTreeSet<String> {
    let imported = flags
        .iter()
        .filter(|f| f.imported_config.is_some())
        .filter(|f| group_kind(&compile_flag(f, false)) == Some(GroupKind::MutualExclusion))
        .map(|f| f.key.clone());
    let native = groups
        .iter()
        .filter(|g| g.kind == GroupKind::MutualExclusion)
        .map(|g| g.key.clone());
    imported.chain(native).collect()
}

fn publish(
    inner: &Inner,
    project: &str,
    data: Option<&Arc<ProjectData>>,
    snapshots: &[Arc<Snapshot>],
) {
    let sinks = inner
        .sinks
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    for sink in sinks {
        sink.publish(project, data, snapshots);
    }
}
