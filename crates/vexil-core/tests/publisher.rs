#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
//! The publisher rebuilds projects independently: while one project's publish is held (a sink
//! that blocks it on a channel, standing in for a slow project), another project's change is
//! published; the held project is never rebuilt twice at once, and a change that arrives during
//! its rebuild is published by a rebuild after it. Every wait is a channel receive with a
//! generous deadline that only a broken publisher reaches; nothing sleeps.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use vexil_core::sdk::{ProjectData, Publisher, PublisherOptions, Snapshot, SnapshotSink};
use vexil_core::service::{NewDeployment, NewFlag, NewProject};
use vexil_core::{Actor, DeploymentType, Services};
use vexil_store::SqliteStore;

/// A test's database directory, removed when the test ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Far longer than any publish takes; reaching it means the publisher is stuck.
const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// A publish of the project started: the revision and the served flags' JSON.
    Started(String, i64, String),
    /// A publish of the project returned.
    Done(String),
}

/// Reports every publish and, once armed, holds each publish of `held` until the test sends
/// a release. It also counts the publishes of each project under way at once.
struct Sink {
    held: String,
    armed: AtomicBool,
    events: Mutex<Sender<Event>>,
    release: Mutex<Receiver<()>>,
    under_way: Mutex<BTreeMap<String, usize>>,
    most_at_once: Mutex<BTreeMap<String, usize>>,
}

impl SnapshotSink for Sink {
    fn publish(&self, project: &str, _: Option<&Arc<ProjectData>>, snapshots: &[Arc<Snapshot>]) {
        {
            let mut under_way = self.under_way.lock().unwrap();
            let n = under_way.entry(project.to_owned()).or_default();
            *n += 1;
            let mut most = self.most_at_once.lock().unwrap();
            let m = most.entry(project.to_owned()).or_default();
            *m = (*m).max(*n);
        }
        let (revision, json) = snapshots
            .first()
            .map(|s| (s.revision, s.flags_json(true).to_text()))
            .unwrap_or_default();
        let send = |e: Event| self.events.lock().unwrap().send(e).unwrap();
        send(Event::Started(project.to_owned(), revision, json));
        if project == self.held && self.armed.load(Ordering::SeqCst) {
            self.release
                .lock()
                .unwrap()
                .recv_timeout(DEADLINE)
                .expect("the test releases the held publish");
        }
        *self.under_way.lock().unwrap().get_mut(project).unwrap() -= 1;
        send(Event::Done(project.to_owned()));
    }
}

/// A store with the projects `slow` and `fast`, each with the deployment `production`, and its
/// directory.
fn services() -> (Services, Scratch) {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("vexil-core-publisher-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.join("vexil.db")).unwrap());
    let services = Services::new(store);
    for project in ["slow", "fast"] {
        let new = NewProject {
            name: project.into(),
            key: Some(project.into()),
            description: String::new(),
        };
        services.projects.create(&Actor::cli(), new).unwrap();
        let deployment = NewDeployment {
            label: "Production".into(),
            key: None,
            kind: DeploymentType::Server,
            protected: false,
        };
        services
            .deployments
            .create(&Actor::cli(), project, deployment)
            .unwrap();
    }
    (services, Scratch(dir))
}

/// A change to `project`: a new flag served by its deployment.
fn add_flag(services: &Services, project: &str, key: &str) {
    let req: NewFlag = serde_json::from_value(
        json!({"project": project, "name": key, "key": key, "deployments": ["production"]}),
    )
    .unwrap();
    services.flags.create(&Actor::cli(), req).unwrap();
}

fn next(events: &Receiver<Event>) -> Event {
    events
        .recv_timeout(DEADLINE)
        .expect("a publish within the deadline")
}

#[test]
fn a_slow_project_does_not_delay_another_projects_publish() {
    let (services, _dir) = services();
    let (events_tx, events) = channel();
    let (release, release_rx) = channel();
    let sink = Arc::new(Sink {
        held: "slow".into(),
        armed: AtomicBool::new(false),
        events: Mutex::new(events_tx),
        release: Mutex::new(release_rx),
        under_way: Mutex::new(BTreeMap::new()),
        most_at_once: Mutex::new(BTreeMap::new()),
    });
    let publisher = Publisher::new(
        services.store().clone(),
        PublisherOptions {
            // Only the changes below trigger rebuilds; the sync thread stays out of the way.
            sync_interval: Duration::from_secs(3600),
            debounce: Duration::from_millis(1),
            workers: 2,
        },
    );
    publisher.subscribe(sink.clone());
    services.subscribe(publisher.listener());
    publisher.load_all().unwrap();
    // The initial load published both projects, unheld.
    let mut loaded: Vec<Event> = events.try_iter().collect();
    loaded.retain(|e| matches!(e, Event::Done(_)));
    assert_eq!(loaded.len(), 2, "{loaded:?}");
    sink.armed.store(true, Ordering::SeqCst);
    publisher.spawn().unwrap();

    // The slow project's publish starts and is held.
    add_flag(&services, "slow", "slow-one");
    let Event::Started(project, first_revision, json) = next(&events) else {
        panic!("a publish starts first");
    };
    assert_eq!(project, "slow");
    assert!(json.contains("slow-one"), "{json}");

    // While it is held: another change to it waits, and the other project's change is
    // published from start to end.
    add_flag(&services, "slow", "slow-two");
    add_flag(&services, "fast", "fast-one");
    let Event::Started(project, _, json) = next(&events) else {
        panic!("the fast project's publish starts");
    };
    assert_eq!(
        project, "fast",
        "only the fast project can be published now"
    );
    assert!(json.contains("fast-one"), "{json}");
    assert_eq!(next(&events), Event::Done("fast".into()));

    // Released, the held publish ends, and the change made during it is published after it.
    release.send(()).unwrap();
    assert_eq!(next(&events), Event::Done("slow".into()));
    let Event::Started(project, revision, json) = next(&events) else {
        panic!("the slow project is rebuilt again");
    };
    assert_eq!(project, "slow");
    assert!(revision > first_revision, "{revision} > {first_revision}");
    assert!(
        json.contains("slow-one") && json.contains("slow-two"),
        "{json}"
    );
    release.send(()).unwrap();
    assert_eq!(next(&events), Event::Done("slow".into()));

    publisher.stop();
    assert!(events.try_iter().next().is_none(), "nothing else published");
    let most = sink.most_at_once.lock().unwrap().clone();
    assert_eq!(
        most,
        BTreeMap::from([("fast".to_owned(), 1), ("slow".to_owned(), 1)]),
        "no project is published by two threads at once"
    );
}
