//! Persisted snapshots come back as they were published, and a write replaces the old files
//! atomically.

use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::json;
use vexil_eval::Object;

use super::*;
use crate::model::DeploymentType;
use crate::sdk::RemoteOptions;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vexil-persist-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn cohort(version: i64, members: &[&str]) -> Arc<CohortData> {
    let members = members.iter().map(|m| (*m).to_owned()).collect();
    Arc::new(CohortData::new(
        "beta".into(),
        "User".into(),
        version,
        100 + version,
        members,
    ))
}

pub(crate) fn project(cohorts: &[Arc<CohortData>]) -> Arc<ProjectData> {
    Arc::new(ProjectData {
        key: "checkout".into(),
        api_key: "api-key".into(),
        secret_key_hash: "ab".repeat(32),
        previous_api_key: Some("old-api-key".into()),
        previous_secret_key_hash: None,
        previous_key_expires_at: Some(4_000_000_000_000),
        cohorts: cohorts.iter().map(|c| (c.id.clone(), c.clone())).collect(),
        properties: Arc::default(),
        mutex_flags: BTreeSet::from(["slots".to_owned()]),
    })
}

/// A local flag `infra` (an ancestor, not attached) and a remote flag `beta-only` that
/// depends on it and targets the cohort.
pub(crate) fn configs(variant: &str) -> Vec<FlagConfig> {
    serde_json::from_value(json!([
        {"key": "infra", "metadata": {"deployed": false, "evaluationMode": "local", "flagType": "release", "flagVersion": 1},
         "variants": {"on": {"key": "on", "value": "on"}},
         "segments": [{"variant": "on"}]},
        {"key": "beta-only", "dependencies": ["infra"],
         "metadata": {"deployed": true, "evaluationMode": "remote", "flagType": "release", "flagVersion": 4},
         "variants": {"on": {"key": "on", "value": variant, "payload": {"n": 1.5}},
                      "off": {"key": "off", "metadata": {"default": true}}},
         "segments": [
            {"conditions": [[{"selector": ["result", "infra", "key"], "op": "is not", "values": ["on"]}]], "variant": "off"},
            {"metadata": {"segmentName": "Beta"}, "variant": "on",
             "conditions": [[{"selector": ["context", "user", "cohort_ids"], "op": "set contains any", "values": ["beta"]}]]},
            {"metadata": {"segmentName": "All Other Users"}, "variant": "off"}]}
    ]))
    .unwrap()
}

fn snapshot(data: &Arc<ProjectData>, revision: i64, variant: &str) -> Arc<Snapshot> {
    snapshot_of(data, revision, configs(variant))
}

/// The `prod` server deployment's snapshot of `configs` (`infra` local, the rest remote).
pub(crate) fn snapshot_of(
    data: &Arc<ProjectData>,
    revision: i64,
    configs: Vec<FlagConfig>,
) -> Arc<Snapshot> {
    let deployment = Deployment {
        project: data.key.clone(),
        key: "prod".into(),
        label: "Production".into(),
        kind: DeploymentType::Server,
        api_key: "server-abc".into(),
        previous_api_key: None,
        previous_key_expires_at: None,
        archived: false,
        protected: false,
        version: 3,
        created_at: 1,
        updated_at: 2,
    };
    let input = SnapshotInput {
        project: data.clone(),
        deployment,
        revision,
        changed_at: 1_700_000_000_000 + revision,
        hash: format!("hash-{revision}"),
        configs,
        modes: BTreeMap::from([
            ("infra".to_owned(), EvaluationMode::Local),
            ("beta-only".to_owned(), EvaluationMode::Remote),
        ]),
        attached: BTreeSet::from(["beta-only".to_owned()]),
    };
    Arc::new(Snapshot::build(input).unwrap())
}

fn evaluate(s: &Snapshot, user: &str) -> String {
    let mut object = Object::new();
    object.insert("user_id", vexil_eval::Value::from(user));
    let answer = s.evaluate_remote(object, RemoteOptions::default()).unwrap();
    String::from_utf8(answer.body).unwrap()
}

fn read_back(dir: &Path) -> Vec<Restored> {
    read_all(dir, &|_| Arc::default())
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn snapshots_round_trip() {
    let dir = TempDir::new("round-trip");
    let data = project(&[cohort(1, &["u2", "u1"])]);
    let published = snapshot(&data, 7, "green");
    let persister = Persister::open(&dir.0).unwrap();
    persister.publish("checkout", Some(&data), std::slice::from_ref(&published));

    let [(back, snapshots)] = &read_back(&dir.0)[..] else {
        panic!("one project")
    };
    let [restored] = &snapshots[..] else {
        panic!("one deployment")
    };
    // The shared data, credentials as stored.
    assert_eq!(
        (&back.key, &back.api_key, &back.secret_key_hash),
        (&data.key, &data.api_key, &data.secret_key_hash)
    );
    assert_eq!(
        (&back.previous_api_key, back.previous_key_expires_at),
        (&data.previous_api_key, data.previous_key_expires_at)
    );
    assert!(back.accepts_api_key("old-api-key", 0));
    assert_eq!(back.mutex_flags, data.mutex_flags);
    let beta = &back.cohorts["beta"];
    assert_eq!(
        (beta.version, beta.last_modified, beta.members()),
        (1, 101, &["u1".into(), "u2".into()][..])
    );
    // The snapshot serves what was published, at the same revision.
    assert_eq!(restored.deployment, published.deployment);
    assert_eq!(
        (restored.revision, restored.changed_at, &restored.hash),
        (published.revision, published.changed_at, &published.hash)
    );
    for remote in [false, true] {
        assert_eq!(
            restored.flags_json(remote).to_text(),
            published.flags_json(remote).to_text()
        );
    }
    let infos = |s: &Snapshot| -> Vec<(String, bool, bool, bool)> {
        s.flag_infos()
            .iter()
            .map(|i| (i.key.clone(), i.local, i.attached, i.deployed))
            .collect()
    };
    assert_eq!(infos(restored), infos(&published));
    for user in ["u1", "u3"] {
        assert_eq!(
            evaluate(restored, user),
            evaluate(&published, user),
            "{user}"
        );
    }
    assert!(evaluate(restored, "u1").contains("green"));
}

#[test]
fn a_publish_replaces_the_files_atomically() {
    let dir = TempDir::new("replace");
    let persister = Persister::open(&dir.0).unwrap();
    let old = project(&[cohort(1, &["u1"])]);
    persister.publish("checkout", Some(&old), &[snapshot(&old, 1, "green")]);
    // A write that died before its rename leaves only a temporary file, which is ignored.
    let projects = dir.0.join(PROJECTS);
    fs::write(projects.join(".checkout.json.tmp"), b"{ half a fi").unwrap();
    let [(_, before)] = &read_back(&dir.0)[..] else {
        panic!("one project")
    };
    assert_eq!(before[0].revision, 1);

    let new = project(&[cohort(2, &["u9"])]);
    persister.publish("checkout", Some(&new), &[snapshot(&new, 2, "blue")]);
    let [(data, after)] = &read_back(&dir.0)[..] else {
        panic!("one project")
    };
    assert_eq!(after[0].revision, 2);
    assert!(evaluate(&after[0], "u9").contains("blue"));
    assert_eq!(data.cohorts["beta"].members(), &["u9".into()][..]);
    // The replaced cohort file is gone; the temporary file was overwritten by the rename.
    let cohort_files: Vec<_> = fs::read_dir(dir.0.join(COHORTS).join("checkout"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(cohort_files, ["beta.2.102.json"]);
    let project_files: Vec<_> = fs::read_dir(&projects)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(project_files, ["checkout.json"]);

    // A project that is gone is removed; `retain` removes those another store never had.
    persister.publish("checkout", None, &[]);
    assert!(read_back(&dir.0).is_empty());
    persister.publish("other", Some(&new), &[snapshot(&new, 2, "blue")]);
    persister.retain(&BTreeSet::new()).unwrap();
    assert!(read_back(&dir.0).is_empty());
}

#[test]
fn unsafe_keys_do_not_name_paths() {
    assert_eq!(stem("checkout-v2_b"), "checkout-v2_b");
    for key in ["../etc", "a/b", ".hidden", "", "é"] {
        let s = stem(key);
        assert!(s.starts_with('_') && s.len() == 65, "{key} -> {s}");
    }
}

#[test]
fn bundles_carry_one_deployment_and_its_referenced_cohorts() {
    let other = Arc::new(CohortData::new(
        "unused".into(),
        "User".into(),
        1,
        5,
        vec!["x".to_owned()],
    ));
    let data = project(&[cohort(2, &["u1"]), other]);
    let published = snapshot(&data, 9, "blue");
    let text = bundle(&published).unwrap();
    let kept = Arc::new(UserProperties::default());
    let (back, restored) = unbundle(text.as_bytes(), &|key| {
        assert_eq!(key, "checkout");
        kept.clone()
    })
    .unwrap();
    // Only the cohort the configs reference travels, with its members and times.
    assert_eq!(back.cohorts.keys().collect::<Vec<_>>(), ["beta"]);
    assert_eq!(
        (back.cohorts["beta"].version, back.cohorts["beta"].members()),
        (2, &["u1".into()][..])
    );
    assert!(Arc::ptr_eq(&back.properties, &kept));
    assert_eq!(
        (&back.api_key, &back.secret_key_hash, &back.mutex_flags),
        (&data.api_key, &data.secret_key_hash, &data.mutex_flags)
    );
    assert_eq!(
        (restored.revision, &restored.hash, &restored.deployment),
        (published.revision, &published.hash, &published.deployment)
    );
    for remote in [false, true] {
        assert_eq!(
            restored.flags_json(remote).to_text(),
            published.flags_json(remote).to_text()
        );
    }
    for user in ["u1", "u3"] {
        assert_eq!(
            evaluate(&restored, user),
            evaluate(&published, user),
            "{user}"
        );
    }
    assert!(evaluate(&restored, "u1").contains("blue"));
    // Another format, or anything but one deployment, is refused, not guessed at.
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["project"]["format"] = json!(FORMAT + 1);
    let err = unbundle(doc.to_string().as_bytes(), &|_| Arc::default()).unwrap_err();
    assert!(matches!(err, PersistError::Version { .. }), "{err}");
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["project"]["deployments"] = json!([]);
    let err = unbundle(doc.to_string().as_bytes(), &|_| Arc::default()).unwrap_err();
    assert!(matches!(err, PersistError::Format { .. }), "{err}");
    assert!(unbundle(b"{", &|_| Arc::default()).is_err());
}
