//! The last published snapshots on local disk, so that a node can start, and serve SDKs, while
//! the store is unreachable.
//!
//! [`Persister`] is a [`SnapshotSink`]: every time the publisher publishes a project it writes
//! what [`Snapshot::build`] needs to build that project's snapshots again (each deployment, its
//! revision, change time and digest, its configs in served order, which of them are local and
//! which are attached) and the project's shared data (credentials as stored, so the secret key
//! only as its hash, the cohorts with their members, the mutual-exclusion flags). [`restore`]
//! reads it all back and hands it to the publisher ([`Publisher::adopt`]). Users'
//! `[Experiment]` properties are not kept: until the store answers, remote evaluation knows
//! only those set since the start.
//!
//! Layout under the directory:
//!
//! - `projects/<project>.json`: one project (format [`FORMAT`]);
//! - `cohorts/<project>/<cohort>.<version>.<last modified>.json`: one cohort's members. Named
//!   by version, a cohort is written once per change of membership, not on every publish of
//!   its project, and a project file never names a cohort file that is not complete.
//!
//! Every file is replaced atomically: written to a temporary file beside it, flushed
//! (`fsync`), renamed over the old one, and the directory flushed. A crash leaves the old file
//! or the new one, never a mix; leftover temporary files (names starting with `.`) are ignored
//! and overwritten. The files hold SDK keys and the project API key: protect the directory like
//! the database (they are created readable by their owner only).
//!
//! The same format travels between nodes: a [`Bundle`] is one deployment's entry with its
//! project's shared data and the members of the cohorts its configs reference, in one JSON
//! document. The SDK API's relay endpoint serves it ([`bundle`]) and `vexil edge` builds the
//! same snapshot from it ([`unbundle`]), then persists it with a [`Persister`] like a node.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use vexil_eval::FlagConfig;

use super::memory::{CohortData, UserProperties};
use super::publisher::{Publisher, SnapshotSink};
use super::snapshot::{ProjectData, Snapshot, SnapshotInput};
use crate::model::{Deployment, EvaluationMode};

/// The version of the file format; a file of another version is not read.
pub const FORMAT: u32 = 1;

const PROJECTS: &str = "projects";
const COHORTS: &str = "cohorts";

/// Why persisted snapshots could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("{} could not be read or written", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a snapshot file this Vexil can read", path.display())]
    Format {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{} has format {found}; this Vexil reads format {FORMAT}", path.display())]
    Version { path: PathBuf, found: u32 },
    #[error("the persisted flags of {project}/{deployment} do not compile")]
    Compile {
        project: String,
        deployment: String,
        #[source]
        source: vexil_eval::CompileError,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> PersistError + '_ {
    move |source| PersistError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One project as persisted.
#[derive(Serialize, Deserialize)]
struct ProjectFile {
    format: u32,
    key: String,
    api_key: String,
    secret_key_hash: String,
    previous_api_key: Option<String>,
    previous_secret_key_hash: Option<String>,
    previous_key_expires_at: Option<i64>,
    mutex_flags: BTreeSet<String>,
    cohorts: Vec<CohortRef>,
    deployments: Vec<DeploymentFile>,
}

/// A cohort of a project and the file with its members.
#[derive(Serialize, Deserialize)]
struct CohortRef {
    id: String,
    group_type: String,
    version: i64,
    last_modified: i64,
    file: String,
}

/// One deployment's snapshot inputs.
#[derive(Serialize, Deserialize)]
struct DeploymentFile {
    deployment: Deployment,
    revision: i64,
    changed_at: i64,
    hash: String,
    /// Keys of the configs whose flags evaluate locally.
    local: BTreeSet<String>,
    /// Keys of the flags attached to the deployment (the other configs are ancestors).
    attached: BTreeSet<String>,
    /// The configs in served order, as the snapshot serves them.
    configs: Box<RawValue>,
}

#[derive(Serialize)]
struct CohortOut<'a> {
    id: &'a str,
    group_type: &'a str,
    members: &'a [Box<str>],
}

#[derive(Serialize, Deserialize)]
struct CohortIn {
    members: Vec<String>,
}

/// Writes every published project to disk; see the module documentation.
pub struct Persister {
    dir: PathBuf,
    /// The digest of each project's file as last written, so that a publish that changes
    /// nothing (every project is published again at start) writes nothing.
    written: Mutex<BTreeMap<String, [u8; 32]>>,
}

impl std::fmt::Debug for Persister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persister").field("dir", &self.dir).finish()
    }
}

impl Persister {
    /// Persists into `dir`, creating it when missing.
    pub fn open(dir: &Path) -> Result<Persister, PersistError> {
        for sub in [PROJECTS, COHORTS] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(io_at(&path))?;
        }
        Ok(Persister {
            dir: dir.to_owned(),
            written: Mutex::new(BTreeMap::new()),
        })
    }

    /// Removes the files of every project not in `keep` (projects a store no longer has, or
    /// another store's when the node was pointed elsewhere).
    pub fn retain(&self, keep: &BTreeSet<String>) -> Result<(), PersistError> {
        let kept: BTreeSet<String> = keep.iter().map(|k| stem(k)).collect();
        let projects = self.dir.join(PROJECTS);
        for entry in fs::read_dir(&projects).map_err(io_at(&projects))? {
            let path = entry.map_err(io_at(&projects))?.path();
            let name = path
                .file_stem()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if path.extension().is_some_and(|e| e == "json") && !kept.contains(name) {
                fs::remove_file(&path).map_err(io_at(&path))?;
                let cohorts = self.dir.join(COHORTS).join(name);
                remove_dir(&cohorts)?;
            }
        }
        sync_dir(&projects)
    }

    fn write(
        &self,
        project: &str,
        data: Option<&Arc<ProjectData>>,
        snapshots: &[Arc<Snapshot>],
    ) -> Result<(), PersistError> {
        let file = self
            .dir
            .join(PROJECTS)
            .join(format!("{}.json", stem(project)));
        let cohort_dir = self.dir.join(COHORTS).join(stem(project));
        let Some(data) = data else {
            match fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&file)(e)),
            }
            remove_dir(&cohort_dir)?;
            self.lock().remove(project);
            return sync_dir(&self.dir.join(PROJECTS));
        };
        let persisted = project_file(data, snapshots)?;
        let bytes = serde_json::to_vec(&persisted).map_err(|source| PersistError::Format {
            path: file.clone(),
            source,
        })?;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        if self.lock().get(project) == Some(&digest) {
            return Ok(());
        }
        fs::create_dir_all(&cohort_dir).map_err(io_at(&cohort_dir))?;
        let mut named = BTreeSet::new();
        for (cohort, reference) in data.cohorts.values().zip(&persisted.cohorts) {
            let path = cohort_dir.join(&reference.file);
            named.insert(reference.file.clone());
            if path.exists() {
                continue;
            }
            let out = CohortOut {
                id: &cohort.id,
                group_type: &cohort.group_type,
                members: cohort.members(),
            };
            write_atomic(&path, |w| {
                serde_json::to_writer(w, &out).map_err(io::Error::from)
            })?;
        }
        write_atomic(&file, |w| w.write_all(&bytes))?;
        // Only now that the project file names the new cohort files may the old ones go.
        for entry in fs::read_dir(&cohort_dir).map_err(io_at(&cohort_dir))? {
            let entry = entry.map_err(io_at(&cohort_dir))?;
            let name = entry.file_name();
            if !named.contains(name.to_string_lossy().as_ref()) {
                let path = entry.path();
                fs::remove_file(&path).map_err(io_at(&path))?;
            }
        }
        self.lock().insert(project.to_owned(), digest);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, [u8; 32]>> {
        self.written.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SnapshotSink for Persister {
    fn publish(&self, project: &str, data: Option<&Arc<ProjectData>>, snapshots: &[Arc<Snapshot>]) {
        // A failed write leaves the previous files in place: a cold start would serve an older
        // revision, which is still better than none. The next publish tries again.
        if let Err(err) = self.write(project, data, snapshots) {
            tracing::warn!(project, error = %crate::error::chain(&err), "persisting the snapshots failed");
        }
    }
}

/// The persisted form of a project's published snapshots.
fn project_file<S: std::ops::Deref<Target = Snapshot>>(
    data: &ProjectData,
    snapshots: &[S],
) -> Result<ProjectFile, PersistError> {
    let cohorts = data
        .cohorts
        .values()
        .map(|c| CohortRef {
            id: c.id.clone(),
            group_type: c.group_type.clone(),
            version: c.version,
            last_modified: c.last_modified,
            file: format!("{}.{}.{}.json", stem(&c.id), c.version, c.last_modified),
        })
        .collect();
    let mut deployments = Vec::with_capacity(snapshots.len());
    for s in snapshots {
        let infos = s.flag_infos();
        let keys = |pick: fn(&super::FlagInfo) -> bool| {
            infos
                .iter()
                .filter(|i| pick(i))
                .map(|i| i.key.clone())
                .collect()
        };
        let configs = RawValue::from_string(s.configs_json().to_string()).map_err(|source| {
            PersistError::Format {
                path: PathBuf::from(&s.deployment.key),
                source,
            }
        })?;
        deployments.push(DeploymentFile {
            deployment: s.deployment.clone(),
            revision: s.revision,
            changed_at: s.changed_at,
            hash: s.hash.clone(),
            local: keys(|i| i.local),
            attached: keys(|i| i.attached),
            configs,
        });
    }
    Ok(ProjectFile {
        format: FORMAT,
        key: data.key.clone(),
        api_key: data.api_key.clone(),
        secret_key_hash: data.secret_key_hash.clone(),
        previous_api_key: data.previous_api_key.clone(),
        previous_secret_key_hash: data.previous_secret_key_hash.clone(),
        previous_key_expires_at: data.previous_key_expires_at,
        mutex_flags: data.mutex_flags.clone(),
        cohorts,
        deployments,
    })
}

/// A project read back: its shared data and its deployments' snapshots.
pub type Restored = (Arc<ProjectData>, Vec<Arc<Snapshot>>);

/// Reads every persisted project in `dir`, each with the property index `properties` gives
/// it. A project that cannot be read is reported on its own; the others still load.
pub fn read_all(
    dir: &Path,
    properties: &dyn Fn(&str) -> Arc<UserProperties>,
) -> Result<Vec<Result<Restored, PersistError>>, PersistError> {
    let projects = dir.join(PROJECTS);
    let entries = match fs::read_dir(&projects) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_at(&projects)(e)),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_at(&projects))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or(".");
        if !name.starts_with('.') && path.extension().is_some_and(|e| e == "json") {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths
        .iter()
        .map(|path| read_project(dir, path, properties))
        .collect())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, PersistError> {
    let file = File::open(path).map_err(io_at(path))?;
    serde_json::from_reader(io::BufReader::new(file)).map_err(|source| PersistError::Format {
        path: path.to_owned(),
        source,
    })
}

fn read_project(
    dir: &Path,
    path: &Path,
    properties: &dyn Fn(&str) -> Arc<UserProperties>,
) -> Result<Restored, PersistError> {
    let file: ProjectFile = read_json(path)?;
    if file.format != FORMAT {
        return Err(PersistError::Version {
            path: path.to_owned(),
            found: file.format,
        });
    }
    let cohort_dir = dir.join(COHORTS).join(stem(&file.key));
    let mut cohorts = BTreeMap::new();
    for c in file.cohorts {
        let members: CohortIn = read_json(&cohort_dir.join(&c.file))?;
        let data = CohortData::new(
            c.id.clone(),
            c.group_type,
            c.version,
            c.last_modified,
            members.members,
        );
        cohorts.insert(c.id, Arc::new(data));
    }
    let data = Arc::new(ProjectData {
        properties: properties(&file.key),
        key: file.key,
        api_key: file.api_key,
        secret_key_hash: file.secret_key_hash,
        previous_api_key: file.previous_api_key,
        previous_secret_key_hash: file.previous_secret_key_hash,
        previous_key_expires_at: file.previous_key_expires_at,
        cohorts,
        mutex_flags: file.mutex_flags,
    });
    let mut snapshots = Vec::with_capacity(file.deployments.len());
    for d in file.deployments {
        snapshots.push(build_deployment(&data, d, path)?);
    }
    Ok((data, snapshots))
}

/// Builds one persisted deployment's snapshot over its project's data.
fn build_deployment(
    data: &Arc<ProjectData>,
    d: DeploymentFile,
    path: &Path,
) -> Result<Arc<Snapshot>, PersistError> {
    let configs: Vec<FlagConfig> =
        serde_json::from_str(d.configs.get()).map_err(|source| PersistError::Format {
            path: path.to_owned(),
            source,
        })?;
    let modes = configs
        .iter()
        .map(|c| {
            let mode = if d.local.contains(&c.key) {
                EvaluationMode::Local
            } else {
                EvaluationMode::Remote
            };
            (c.key.clone(), mode)
        })
        .collect();
    let deployment = d.deployment.key.clone();
    let snapshot = Snapshot::build(SnapshotInput {
        project: data.clone(),
        deployment: d.deployment,
        revision: d.revision,
        changed_at: d.changed_at,
        hash: d.hash,
        configs,
        modes,
        attached: d.attached,
    })
    .map_err(|source| PersistError::Compile {
        project: data.key.clone(),
        deployment,
        source,
    })?;
    Ok(Arc::new(snapshot))
}

/// One deployment as the relay endpoint serves it: the project's file with this deployment
/// only (its `cohorts` name the cohorts the configs reference), and those cohorts' members in
/// the same order.
#[derive(Serialize, Deserialize)]
pub struct Bundle {
    project: ProjectFile,
    members: Vec<CohortIn>,
}

/// The relay document of `snapshot` (see [`Bundle`]). Only the cohorts its configs reference
/// travel: the revision covers their members, so the document changes exactly when the
/// revision does.
pub fn bundle(snapshot: &Snapshot) -> Result<String, PersistError> {
    let path = || PathBuf::from(&snapshot.deployment.key);
    let configs: Vec<FlagConfig> =
        serde_json::from_str(snapshot.configs_json()).map_err(|source| PersistError::Format {
            path: path(),
            source,
        })?;
    let referenced = super::enrich::referenced_cohort_ids(&configs);
    let mut file = project_file(&snapshot.project, &[snapshot])?;
    file.cohorts.retain(|c| referenced.contains(c.id.as_str()));
    let members = file
        .cohorts
        .iter()
        .map(|c| CohortIn {
            members: snapshot
                .project
                .cohorts
                .get(&c.id)
                .map(|d| d.members().iter().map(|m| m.to_string()).collect())
                .unwrap_or_default(),
        })
        .collect();
    let bundle = Bundle {
        project: file,
        members,
    };
    serde_json::to_string(&bundle).map_err(|source| PersistError::Format {
        path: path(),
        source,
    })
}

/// Builds the snapshot a [`bundle`] document describes, over a project data with the
/// property index `properties` gives its project (kept by the caller across documents) and
/// the document's cohorts.
pub fn unbundle(
    bytes: &[u8],
    properties: &dyn Fn(&str) -> Arc<UserProperties>,
) -> Result<(Arc<ProjectData>, Arc<Snapshot>), PersistError> {
    let path = Path::new("relay");
    let Bundle { project, members } =
        serde_json::from_slice(bytes).map_err(|source| PersistError::Format {
            path: path.to_owned(),
            source,
        })?;
    if project.format != FORMAT {
        return Err(PersistError::Version {
            path: path.to_owned(),
            found: project.format,
        });
    }
    let cohorts = project
        .cohorts
        .into_iter()
        .zip(members)
        .map(|(c, m)| {
            let data = CohortData::new(
                c.id.clone(),
                c.group_type,
                c.version,
                c.last_modified,
                m.members,
            );
            (c.id, Arc::new(data))
        })
        .collect();
    let data = Arc::new(ProjectData {
        properties: properties(&project.key),
        key: project.key,
        api_key: project.api_key,
        secret_key_hash: project.secret_key_hash,
        previous_api_key: project.previous_api_key,
        previous_secret_key_hash: project.previous_secret_key_hash,
        previous_key_expires_at: project.previous_key_expires_at,
        cohorts,
        mutex_flags: project.mutex_flags,
    });
    let mut deployments = project.deployments.into_iter();
    let (Some(d), None) = (deployments.next(), deployments.next()) else {
        let source =
            <serde_json::Error as serde::de::Error>::custom("a bundle holds one deployment");
        return Err(PersistError::Format {
            path: path.to_owned(),
            source,
        });
    };
    let snapshot = build_deployment(&data, d, path)?;
    Ok((data, snapshot))
}

/// Publishes every project persisted in `dir` through `publisher` (see
/// [`Publisher::adopt`]); returns how many deployments are served from disk. A project that
/// cannot be read is skipped with a warning.
pub fn restore(publisher: &Publisher, dir: &Path) -> Result<usize, PersistError> {
    let mut deployments = 0;
    for project in read_all(dir, &|key| publisher.properties(key))? {
        match project {
            Ok((data, snapshots)) => {
                deployments += snapshots.len();
                publisher.adopt(data, snapshots);
            }
            Err(err) => {
                tracing::warn!(error = %crate::error::chain(&err), "a persisted project could not be read; it is not served until the store answers");
            }
        }
    }
    Ok(deployments)
}

/// A file name for a key: the key itself when it is plain (project keys and cohort ids are),
/// else a digest of it, so that no key can name a path outside the directory.
fn stem(key: &str) -> String {
    let plain = !key.is_empty()
        && key.len() <= 100
        && !key.starts_with(['.', '-'])
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        key.to_owned()
    } else {
        let digest = Sha256::digest(key.as_bytes());
        format!("_{}", crate::keys::hex(&digest))
    }
}

/// Replaces `path` with what `fill` writes, atomically (see the module documentation).
fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<(), PersistError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = dir.join(format!(".{name}.tmp"));
    let file = create_private(&temp).map_err(io_at(&temp))?;
    let mut out = BufWriter::new(file);
    fill(&mut out)
        .and_then(|()| out.flush())
        .map_err(io_at(&temp))?;
    let file = out.into_inner().map_err(|e| io_at(&temp)(e.into_error()))?;
    file.sync_all().map_err(io_at(&temp))?;
    drop(file);
    fs::rename(&temp, path).map_err(io_at(path))?;
    sync_dir(dir)
}

/// Creates (or truncates) a file only its owner can read.
fn create_private(path: &Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn remove_dir(path: &Path) -> Result<(), PersistError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_at(path)(e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), PersistError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
