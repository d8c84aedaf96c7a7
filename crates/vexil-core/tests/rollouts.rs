#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
//! A progressive rollout walks its steps on a fake clock (`DraftService::run_due(now)`): each
//! step when due and not before, paused and resumed, paused on its own when someone changed
//! the flag since the last step, completed at the last; each step a flag version made on behalf
//! of the planner with the step in its comment.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;
use vexil_core::service::{FlagChange, NewProject, NewRollout, RolloutStatus};
use vexil_core::{Actor, Services};
use vexil_store::SqliteStore;

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn services() -> (Services, Scratch) {
    let dir = std::env::temp_dir().join(format!("vexil-core-rollouts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.join("vexil.db")).unwrap());
    let services = Services::new(store);
    let project = NewProject {
        name: "Shop".into(),
        key: Some("shop".into()),
        description: String::new(),
    };
    services.projects.create(&Actor::cli(), project).unwrap();
    (services, Scratch(dir))
}

const HOUR: i64 = 3_600_000;

#[test]
fn a_rollout_walks_its_steps_on_the_clock() {
    let (s, _scratch) = services();
    let planner = Actor {
        name: "pat".into(),
        ..Actor::cli()
    };
    let new = serde_json::from_value(json!({
        "project": "shop", "name": "New search", "key": "search",
        "all_other_users": {"percentage": 0, "weights": {"on": 1}}
    }))
    .unwrap();
    s.flags.create(&Actor::cli(), new).unwrap();
    // Far enough ahead that resuming (which waits at least until now) keeps the fake clock's.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t0 = now + 1_000 * HOUR;
    let plan = s
        .drafts
        .create_rollout(
            &planner,
            "shop",
            NewRollout {
                flag: "search".into(),
                segment: None,
                steps: vec![5, 25, 50, 100],
                interval_seconds: 24 * 3600,
                start_at: Some(t0),
                comment: "search launch".into(),
            },
        )
        .unwrap();
    let percentage = || {
        s.flags
            .get(Some("shop"), "search")
            .unwrap()
            .all_other_users
            .percentage
    };
    let run = |now: i64| s.drafts.run_due(now).unwrap();

    assert!(run(t0 - 1).0.is_empty(), "not before it is due");
    assert_eq!(percentage(), 0);
    assert_eq!(run(t0).0.len(), 1);
    assert_eq!(percentage(), 5);
    assert!(run(t0 + 23 * HOUR).0.is_empty(), "one step per interval");
    assert_eq!(run(t0 + 24 * HOUR).0.len(), 1);
    assert_eq!(percentage(), 25);
    let versions = s.flags.versions(Some("shop"), "search", None, 1).unwrap();
    assert_eq!(versions[0].meta.actor, "pat", "on behalf of the planner");
    let comment = versions[0].meta.comment.clone().unwrap();
    assert!(
        comment.contains("step 2 of 4, 25%") && comment.contains("search launch"),
        "{comment}"
    );

    // Paused: nothing happens; resumed: the next step comes when due.
    s.drafts
        .steer_rollout(&planner, "shop", &plan.id, RolloutStatus::Paused)
        .unwrap();
    assert!(run(t0 + 72 * HOUR).0.is_empty());
    assert_eq!(percentage(), 25);
    s.drafts
        .steer_rollout(&planner, "shop", &plan.id, RolloutStatus::Running)
        .unwrap();
    assert_eq!(run(t0 + 72 * HOUR).0.len(), 1);
    assert_eq!(percentage(), 50);

    // Someone changes the flag between steps: the step is refused and the plan pauses.
    let v = s.flags.get(Some("shop"), "search").unwrap().version;
    let patch = serde_json::from_value(json!({"description": "edited by hand"})).unwrap();
    s.flags
        .apply(
            &Actor::cli(),
            Some("shop"),
            "search",
            Some(v),
            vec![FlagChange::Update {
                patch: Box::new(patch),
            }],
        )
        .unwrap();
    let (stepped, paused) = run(t0 + 96 * HOUR);
    assert!(stepped.is_empty());
    assert_eq!(paused.len(), 1);
    assert_eq!(percentage(), 50, "not applied");
    let p = s.drafts.rollout("shop", &plan.id).unwrap();
    assert_eq!(p.status, RolloutStatus::Paused);
    assert!(
        p.outcome
            .as_deref()
            .unwrap()
            .contains("changed since the last step"),
        "{:?}",
        p.outcome
    );
    // Resumed from the flag as it is, it completes.
    s.drafts
        .steer_rollout(&planner, "shop", &plan.id, RolloutStatus::Running)
        .unwrap();
    assert_eq!(run(t0 + 96 * HOUR).0.len(), 1);
    assert_eq!(percentage(), 100);
    let p = s.drafts.rollout("shop", &plan.id).unwrap();
    assert_eq!(
        (p.status, p.next_step, p.next_at),
        (RolloutStatus::Completed, 4, None)
    );
    assert!(
        run(t0 + 1_000 * HOUR).0.is_empty(),
        "nothing after the last step"
    );
    assert!(s
        .drafts
        .steer_rollout(&planner, "shop", &plan.id, RolloutStatus::Paused)
        .is_err());
}

/// A schedule is stored, not held by the process: services started anew over the same store
/// (a restarted node) publish what came due meanwhile, once.
#[test]
fn a_schedule_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("vexil-core-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let _scratch = Scratch(dir.clone());
    let path = dir.join("vexil.db");
    let first = Services::new(Arc::new(SqliteStore::open(&path).unwrap()));
    let project = NewProject {
        name: "Shop".into(),
        key: Some("shop".into()),
        description: String::new(),
    };
    first.projects.create(&Actor::cli(), project).unwrap();
    let new = serde_json::from_value(json!({"project": "shop", "name": "Promo", "key": "promo"}))
        .unwrap();
    first.flags.create(&Actor::cli(), new).unwrap();
    let draft = first
        .drafts
        .create(
            &Actor::cli(),
            Some("shop"),
            serde_json::from_value(json!({
                "flag": "promo", "title": "Promo at noon", "changes": [{"kind": "activate"}]
            }))
            .unwrap(),
        )
        .unwrap();
    let at = 4_000_000_000_000; // far ahead: only the test's clock reaches it
    first
        .drafts
        .schedule(&Actor::cli(), "shop", &draft.draft.id, at)
        .unwrap();
    assert!(first.drafts.run_due(at - 1).unwrap().0.is_empty());
    drop(first);

    let second = Services::new(Arc::new(SqliteStore::open(&path).unwrap()));
    let (published, failed) = second.drafts.run_due(at).unwrap();
    assert_eq!((published.len(), failed.len()), (1, 0));
    let flag = second.flags.get(Some("shop"), "promo").unwrap();
    assert_eq!(flag.state, vexil_core::FlagState::Active);
    assert!(second.drafts.run_due(at + 1).unwrap().0.is_empty(), "once");
}
