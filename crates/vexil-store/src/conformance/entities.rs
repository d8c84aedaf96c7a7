//! Conformance cases for each row type: round trips, unique constraints and versioned updates.

use super::{
    api_key, assert_conflict, assert_mismatch, assert_not_found, cohort, deployment, flag, history,
    project, read_ok, seed_projects, write_ok, T0,
};
use crate::{Store, StoreError};

/// Projects: insert, get, lookup by API key, list in key order, update, lock.
pub fn projects_round_trip(store: &dyn Store) {
    let (b, a) = (project("beta"), project("alpha"));
    write_ok(store, "insert projects", |tx| {
        tx.insert_project(&b)?;
        tx.insert_project(&a)
    });
    read_ok(store, "read projects", |tx| {
        assert_eq!(tx.get_project("alpha")?, Some(a.clone()), "get_project");
        assert_eq!(
            tx.get_project("gamma")?,
            None,
            "get_project of a missing key"
        );
        assert_eq!(tx.project_by_api_key(&b.api_key)?, Some(b.clone()));
        assert_eq!(tx.project_by_api_key("project-nope")?, None);
        assert_eq!(
            tx.list_projects()?,
            vec![a.clone(), b.clone()],
            "list in key order"
        );
        Ok(())
    });

    let mut changed = a.clone();
    changed.name = "Alpha, renamed".to_owned();
    changed.api_key = "project-alpha-rotated".to_owned();
    changed.doc = r#"{"key":"alpha","renamed":true}"#.to_owned();
    changed.version = 2;
    changed.updated_at = T0 + 5;
    write_ok(store, "update project", |tx| {
        assert_eq!(tx.lock_project("alpha")?, Some(a.clone()), "lock_project");
        assert_eq!(
            tx.lock_project("gamma")?,
            None,
            "lock_project of a missing key"
        );
        tx.update_project(&changed, 1)
    });
    read_ok(store, "read updated project", |tx| {
        assert_eq!(tx.get_project("alpha")?, Some(changed.clone()));
        assert_eq!(
            tx.project_by_api_key(&a.api_key)?,
            None,
            "old api key is gone"
        );
        assert_eq!(
            tx.project_by_api_key(&changed.api_key)?,
            Some(changed.clone())
        );
        assert_eq!(
            tx.lock_project("beta")?,
            Some(b.clone()),
            "lock in a read tx"
        );
        Ok(())
    });
}

/// Projects: duplicate key and API key conflict; the transaction goes on after a conflict.
pub fn project_conflicts(store: &dyn Store) {
    seed_projects(store, &["alpha"]);
    write_ok(store, "conflicts then a good insert", |tx| {
        let mut same_key = project("alpha");
        same_key.api_key = "project-other".to_owned();
        assert_conflict(
            tx.insert_project(&same_key),
            "project",
            "key",
            "duplicate key",
        );
        let mut same_api_key = project("beta");
        same_api_key.api_key = project("alpha").api_key;
        assert_conflict(
            tx.insert_project(&same_api_key),
            "project",
            "api_key",
            "duplicate api_key",
        );
        tx.insert_project(&project("gamma"))
    });
    write_ok(store, "update onto a taken api key", |tx| {
        let mut gamma = project("gamma");
        gamma.api_key = project("alpha").api_key;
        gamma.version = 2;
        assert_conflict(tx.update_project(&gamma, 1), "project", "api_key", "update");
        Ok(())
    });
    read_ok(store, "after conflicts", |tx| {
        let keys: Vec<String> = tx.list_projects()?.into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["alpha", "gamma"], "only the good inserts are kept");
        assert_eq!(
            tx.get_project("gamma")?,
            Some(project("gamma")),
            "gamma unchanged"
        );
        Ok(())
    });
}

/// Deployments: insert, get, lookup by SDK key across projects, list, all, update.
pub fn deployments_round_trip(store: &dyn Store) {
    seed_projects(store, &["p1", "p2"]);
    let prod = deployment("p1", "prod");
    let mut dev = deployment("p1", "dev");
    dev.kind = "client".to_owned();
    dev.api_key = "client-p1-dev".to_owned();
    dev.archived = true;
    let other = deployment("p2", "prod");
    write_ok(store, "insert deployments", |tx| {
        tx.insert_deployment(&prod)?;
        tx.insert_deployment(&other)?;
        tx.insert_deployment(&dev)
    });
    read_ok(store, "read deployments", |tx| {
        assert_eq!(
            tx.get_deployment("p1", "dev")?,
            Some(dev.clone()),
            "archived kept"
        );
        assert_eq!(tx.get_deployment("p1", "stage")?, None);
        assert_eq!(tx.get_deployment("p3", "prod")?, None);
        assert_eq!(
            tx.deployment_by_api_key(&other.api_key)?,
            Some(other.clone())
        );
        assert_eq!(tx.deployment_by_api_key("server-nope")?, None);
        let p1 = vec![dev.clone(), prod.clone()];
        assert_eq!(
            tx.list_deployments("p1")?,
            p1,
            "key order, archived included"
        );
        assert_eq!(tx.list_deployments("p3")?, vec![]);
        let all = vec![dev.clone(), prod.clone(), other.clone()];
        assert_eq!(tx.all_deployments()?, all, "project then key order");
        Ok(())
    });

    let mut changed = prod.clone();
    changed.label = "Production".to_owned();
    changed.api_key = "server-p1-prod-rotated".to_owned();
    changed.archived = true;
    changed.doc = r#"{"key":"prod","v":2}"#.to_owned();
    changed.version = 2;
    changed.updated_at = T0 + 1;
    write_ok(store, "update deployment", |tx| {
        tx.update_deployment(&changed, 1)
    });
    read_ok(store, "read updated deployment", |tx| {
        assert_eq!(tx.get_deployment("p1", "prod")?, Some(changed.clone()));
        assert_eq!(tx.deployment_by_api_key(&prod.api_key)?, None);
        assert_eq!(
            tx.deployment_by_api_key(&changed.api_key)?,
            Some(changed.clone())
        );
        Ok(())
    });
}

/// Deployments: key and label are unique per project, the SDK key across projects.
pub fn deployment_conflicts(store: &dyn Store) {
    seed_projects(store, &["p1", "p2"]);
    let prod = deployment("p1", "prod");
    write_ok(store, "insert deployment", |tx| tx.insert_deployment(&prod));
    write_ok(store, "conflicting deployments", |tx| {
        let mut same_key = deployment("p1", "prod");
        same_key.label = "another label".to_owned();
        same_key.api_key = "server-unique-1".to_owned();
        assert_conflict(tx.insert_deployment(&same_key), "deployment", "key", "key");

        let mut same_label = deployment("p1", "stage");
        same_label.label = prod.label.clone();
        assert_conflict(
            tx.insert_deployment(&same_label),
            "deployment",
            "label",
            "label",
        );

        let mut same_api_key = deployment("p2", "stage");
        same_api_key.api_key = prod.api_key.clone();
        assert_conflict(
            tx.insert_deployment(&same_api_key),
            "deployment",
            "api_key",
            "api_key in another project",
        );

        // The same key and label in another project are fine.
        tx.insert_deployment(&deployment("p2", "prod"))?;
        tx.insert_deployment(&deployment("p1", "stage"))?;

        let mut relabel = deployment("p1", "stage");
        relabel.label = prod.label.clone();
        relabel.version = 2;
        assert_conflict(
            tx.update_deployment(&relabel, 1),
            "deployment",
            "label",
            "update",
        );
        Ok(())
    });
    read_ok(store, "after conflicts", |tx| {
        assert_eq!(tx.all_deployments()?.len(), 3);
        assert_eq!(
            tx.get_deployment("p1", "stage")?,
            Some(deployment("p1", "stage"))
        );
        Ok(())
    });
}

/// Flags: insert, get, update and `project_flags`, keeping list columns and order.
pub fn flags_round_trip(store: &dyn Store) {
    seed_projects(store, &["p1", "p2"]);
    let mut b = flag("p1", "b-flag");
    b.tags = vec!["web".to_owned(), "checkout".to_owned()];
    b.deployments = vec!["prod".to_owned(), "dev".to_owned()];
    b.prerequisites = vec!["a-flag".to_owned()];
    b.kind = "experiment".to_owned();
    b.mode = "local".to_owned();
    let mut a = flag("p1", "a-flag");
    a.archived = true;
    let other = flag("p2", "a-flag");
    write_ok(store, "insert flags", |tx| {
        tx.insert_flag(&b)?;
        tx.insert_flag(&a)?;
        tx.insert_flag(&other)
    });
    read_ok(store, "read flags", |tx| {
        assert_eq!(
            tx.get_flag("p1", "b-flag")?,
            Some(b.clone()),
            "lists kept in order"
        );
        assert_eq!(
            tx.get_flag("p1", "a-flag")?,
            Some(a.clone()),
            "archived flag"
        );
        assert_eq!(tx.get_flag("p1", "c-flag")?, None);
        assert_eq!(
            tx.project_flags("p1")?,
            vec![a.clone(), b.clone()],
            "key order"
        );
        assert_eq!(tx.project_flags("p3")?, vec![]);
        Ok(())
    });

    let mut changed = b.clone();
    changed.name = "B, renamed".to_owned();
    changed.state = "active".to_owned();
    changed.tags = vec!["mobile".to_owned()];
    changed.deployments = Vec::new();
    changed.prerequisites = vec!["c-flag".to_owned(), "a-flag".to_owned()];
    changed.doc = r#"{"key":"b-flag","v":2}"#.to_owned();
    changed.version = 2;
    changed.updated_at = T0 + 9;
    write_ok(store, "update flag", |tx| tx.update_flag(&changed, 1));
    read_ok(store, "read updated flag", |tx| {
        assert_eq!(tx.get_flag("p1", "b-flag")?, Some(changed.clone()));
        assert_eq!(
            tx.get_flag("p2", "a-flag")?,
            Some(other.clone()),
            "other project"
        );
        Ok(())
    });
}

/// Flags: a key is unique per project only.
pub fn flag_conflicts(store: &dyn Store) {
    seed_projects(store, &["p1", "p2"]);
    write_ok(store, "insert flag", |tx| tx.insert_flag(&flag("p1", "f")));
    write_ok(store, "conflicting flag", |tx| {
        let mut again = flag("p1", "f");
        again.tags = vec!["t".to_owned()];
        assert_conflict(tx.insert_flag(&again), "flag", "key", "duplicate key");
        tx.insert_flag(&flag("p2", "f"))
    });
    read_ok(store, "after conflict", |tx| {
        assert_eq!(
            tx.get_flag("p1", "f")?,
            Some(flag("p1", "f")),
            "first flag unchanged"
        );
        assert_eq!(tx.project_flags("p2")?.len(), 1);
        Ok(())
    });
}

/// Every `update_*`: a stale version reports the current one and changes nothing; a missing
/// row is `NotFound`.
pub fn version_checks(store: &dyn Store) {
    seed_projects(store, &["p"]);
    write_ok(store, "seed rows", |tx| {
        tx.insert_deployment(&deployment("p", "prod"))?;
        tx.insert_flag(&flag("p", "f"))?;
        tx.insert_cohort(&cohort("p", "c", 1), &["u1".to_owned()])
    });
    // Move everything to version 3.
    for version in 2..=3 {
        write_ok(store, "bump versions", |tx| {
            let mut p = project("p");
            p.version = version;
            tx.update_project(&p, version - 1)?;
            let mut d = deployment("p", "prod");
            d.version = version;
            tx.update_deployment(&d, version - 1)?;
            let mut f = flag("p", "f");
            f.version = version;
            tx.update_flag(&f, version - 1)?;
            let mut c = cohort("p", "c", 1);
            c.version = version;
            tx.update_cohort(&c, None, version - 1)
        });
    }
    write_ok(store, "stale and missing updates", |tx| {
        let mut p = project("p");
        p.version = 3;
        p.name = "stale".to_owned();
        assert_mismatch(tx.update_project(&p, 1), 3, "project");
        p.key = "missing".to_owned();
        assert_not_found(tx.update_project(&p, 1), "missing project");

        let mut d = deployment("p", "prod");
        d.version = 3;
        d.label = "stale".to_owned();
        assert_mismatch(tx.update_deployment(&d, 2), 3, "deployment");
        d.key = "missing".to_owned();
        assert_not_found(tx.update_deployment(&d, 2), "missing deployment");

        let mut f = flag("p", "f");
        f.version = 5;
        f.name = "stale".to_owned();
        f.tags = vec!["stale".to_owned()];
        assert_mismatch(tx.update_flag(&f, 4), 3, "flag");
        f.key = "missing".to_owned();
        assert_not_found(tx.update_flag(&f, 4), "missing flag");

        let mut c = cohort("p", "c", 1);
        c.version = 3;
        c.name = "stale".to_owned();
        let members = ["stale".to_owned()];
        assert_mismatch(tx.update_cohort(&c, Some(&members), 1), 3, "cohort");
        c.id = "missing".to_owned();
        assert_not_found(tx.update_cohort(&c, None, 1), "missing cohort");
        Ok(())
    });
    read_ok(store, "nothing changed", |tx| {
        let p = tx.get_project("p")?;
        assert_eq!(
            p.map(|p| (p.name, p.version)),
            Some(("Project p".to_owned(), 3))
        );
        let d = tx.get_deployment("p", "prod")?;
        assert_eq!(
            d.map(|d| (d.label, d.version)),
            Some(("prod label".to_owned(), 3))
        );
        let f = tx.get_flag("p", "f")?;
        assert_eq!(
            f.map(|f| (f.name, f.tags, f.version)),
            Some(("Flag f".to_owned(), vec![], 3))
        );
        let c = tx.get_cohort("p", "c")?;
        assert_eq!(
            c.map(|c| (c.name, c.version)),
            Some(("Cohort c".to_owned(), 3))
        );
        assert_eq!(tx.cohort_members("p", "c")?, ["u1"]);
        Ok(())
    });
}

/// Cohorts: 1,000 members round-trip in order; updates with and without members; delete.
pub fn cohorts_round_trip(store: &dyn Store) {
    seed_projects(store, &["p", "q"]);
    let members: Vec<String> = (0..1000).map(|i| format!("user-{:04}", 999 - i)).collect();
    let big = cohort("p", "big", 1000);
    let empty = cohort("p", "empty", 0);
    write_ok(store, "insert cohorts", |tx| {
        tx.insert_cohort(&big, &members)?;
        tx.insert_cohort(&empty, &[])?;
        tx.insert_cohort(&cohort("q", "big", 1), &["someone".to_owned()])
    });
    write_ok(store, "duplicate cohort", |tx| {
        assert_conflict(tx.insert_cohort(&big, &[]), "cohort", "id", "duplicate id");
        Ok(())
    });
    read_ok(store, "read cohorts", |tx| {
        assert_eq!(tx.get_cohort("p", "big")?, Some(big.clone()));
        assert_eq!(tx.get_cohort("p", "nope")?, None);
        assert_eq!(
            tx.list_cohorts("p")?,
            vec![big.clone(), empty.clone()],
            "id order"
        );
        assert_eq!(
            tx.cohort_members("p", "big")?,
            members,
            "members in stored order"
        );
        assert_eq!(tx.cohort_members("p", "empty")?, Vec::<String>::new());
        assert_eq!(tx.cohort_members("q", "big")?, ["someone"]);
        assert_not_found(
            tx.cohort_members("p", "nope"),
            "members of a missing cohort",
        );
        Ok(())
    });

    let mut renamed = big.clone();
    renamed.name = "Renamed".to_owned();
    renamed.version = 2;
    write_ok(store, "update without members", |tx| {
        tx.update_cohort(&renamed, None, 1)
    });
    read_ok(store, "members kept", |tx| {
        assert_eq!(tx.get_cohort("p", "big")?, Some(renamed.clone()));
        assert_eq!(tx.cohort_members("p", "big")?, members);
        Ok(())
    });

    let replacement: Vec<String> = vec!["zed".to_owned(), "amy".to_owned(), "bob".to_owned()];
    let mut replaced = renamed.clone();
    replaced.size = 3;
    replaced.version = 3;
    write_ok(store, "update with members", |tx| {
        tx.update_cohort(&replaced, Some(&replacement), 2)
    });
    read_ok(store, "members replaced", |tx| {
        assert_eq!(tx.get_cohort("p", "big")?, Some(replaced.clone()));
        assert_eq!(tx.cohort_members("p", "big")?, replacement);
        Ok(())
    });

    write_ok(store, "delete cohort", |tx| {
        tx.delete_cohort("p", "big")?;
        assert_not_found(tx.delete_cohort("p", "big"), "second delete");
        assert_not_found(tx.delete_cohort("p", "never"), "delete of a missing cohort");
        Ok(())
    });
    read_ok(store, "after delete", |tx| {
        assert_eq!(tx.get_cohort("p", "big")?, None);
        assert_not_found(tx.cohort_members("p", "big"), "members of a deleted cohort");
        assert_eq!(tx.list_cohorts("p")?, vec![empty.clone()]);
        assert_eq!(
            tx.cohort_members("q", "big")?,
            ["someone"],
            "other project kept"
        );
        Ok(())
    });
    write_ok(store, "re-create after delete", |tx| {
        tx.insert_cohort(&big, &replacement[..1])
    });
    read_ok(store, "re-created", |tx| {
        assert_eq!(tx.cohort_members("p", "big")?, ["zed"]);
        Ok(())
    });
}

/// Cohorts: a transaction that replaces members and then fails keeps the old members.
pub fn cohort_member_replace_is_atomic(store: &dyn Store) {
    seed_projects(store, &["p"]);
    let before: Vec<String> = (0..1000).map(|i| format!("old-{i}")).collect();
    write_ok(store, "insert cohort", |tx| {
        tx.insert_cohort(&cohort("p", "c", 1000), &before)
    });
    let after: Vec<String> = (0..1500).map(|i| format!("new-{i}")).collect();
    let result = crate::write(store, |tx| {
        let mut row = cohort("p", "c", 1500);
        row.version = 2;
        tx.update_cohort(&row, Some(&after), 1)?;
        Err::<(), _>(StoreError::Corrupt("abort on purpose".to_owned()))
    });
    assert!(
        matches!(result, Err(StoreError::Corrupt(_))),
        "the closure's error is returned, got {result:?}"
    );
    read_ok(store, "old members kept", |tx| {
        assert_eq!(tx.get_cohort("p", "c")?, Some(cohort("p", "c", 1000)));
        assert_eq!(tx.cohort_members("p", "c")?, before);
        Ok(())
    });
}

/// The audit log: history entries of every entity, newest first, filtered by project, actor,
/// entity, key and time, paged after the last entry read without losing entries that share a
/// time; each keeps its comment, role and changes.
pub fn audit_lists_every_entity_newest_first(store: &dyn Store) {
    use crate::{AuditCursor, AuditQuery};
    seed_projects(store, &["p", "q"]);
    write_ok(store, "append history", |tx| {
        for version in 1..=3 {
            tx.append_history(&history("p", "flag", "f", version))?;
        }
        let mut cohort = history("p", "cohort", "c", 2); // at T0 + 2, like flag f version 2
        cohort.actor = "ci".to_owned();
        cohort.changes = r#"[{"kind":"activate"}]"#.to_owned();
        tx.append_history(&cohort)?;
        tx.append_history(&history("q", "flag", "f", 1))
    });
    read_ok(store, "audit", |tx| {
        let q = |f: &dyn Fn(&mut AuditQuery)| {
            let mut q = AuditQuery {
                limit: 100,
                ..AuditQuery::default()
            };
            f(&mut q);
            q
        };
        let ids = |rows: Vec<crate::HistoryRow>| -> Vec<String> {
            rows.into_iter()
                .map(|r| format!("{}/{}/{}@{}", r.project, r.entity, r.key, r.version))
                .collect()
        };
        let all = tx.audit(&q(&|_| {}))?;
        let cohort = all.iter().find(|r| r.entity == "cohort");
        assert_eq!(
            cohort.map(|r| r.changes.as_str()),
            Some(r#"[{"kind":"activate"}]"#),
            "rows round-trip"
        );
        assert_eq!(
            (all[0].comment.as_str(), all[0].role.as_str()),
            ("why 3", "admin")
        );
        assert_eq!(
            ids(all),
            [
                "p/flag/f@3",
                "p/flag/f@2",
                "p/cohort/c@2",
                "q/flag/f@1",
                "p/flag/f@1"
            ],
            "newest first, ties in a fixed order"
        );
        assert_eq!(
            ids(tx.audit(&q(&|q| q.project = Some("p".into())))?).len(),
            4
        );
        assert_eq!(
            ids(tx.audit(&q(&|q| q.actor = Some("ci".into())))?),
            ["p/cohort/c@2"]
        );
        assert_eq!(
            ids(tx.audit(&q(&|q| {
                q.entity = Some("flag".into());
                q.key = Some("f".into());
                q.from = Some(T0 + 1);
                q.to = Some(T0 + 3);
            }))?),
            ["p/flag/f@2", "q/flag/f@1", "p/flag/f@1"],
            "entity, key and [from, to)"
        );
        // Pages of two, resumed after the last entry.
        let mut seen = Vec::new();
        let mut after: Option<AuditCursor> = None;
        loop {
            let page = tx.audit(&q(&|q| {
                q.limit = 2;
                q.after = after.clone();
            }))?;
            let Some(last) = page.last() else { break };
            after = Some(AuditCursor {
                at: last.at,
                project: last.project.clone(),
                entity: last.entity.clone(),
                key: last.key.clone(),
                version: last.version,
            });
            seen.extend(ids(page));
        }
        assert_eq!(seen.len(), 5, "every entry once: {seen:?}");
        assert!(tx.audit(&q(&|q| q.limit = 0))?.is_empty());
        Ok(())
    });
}

/// History: appended entries page newest first; a duplicate version conflicts.
pub fn history_pages_newest_first(store: &dyn Store) {
    seed_projects(store, &["p"]);
    write_ok(store, "append history", |tx| {
        for version in 1..=5 {
            tx.append_history(&history("p", "flag", "f", version))?;
        }
        tx.append_history(&history("p", "flag", "g", 1))?;
        tx.append_history(&history("p", "deployment", "f", 1))?;
        tx.append_history(&history("q", "flag", "f", 1))
    });
    write_ok(store, "duplicate history entry", |tx| {
        let mut again = history("p", "flag", "f", 3);
        again.summary = "another".to_owned();
        assert_conflict(tx.append_history(&again), "history", "version", "duplicate");
        Ok(())
    });
    read_ok(store, "read history", |tx| {
        let versions = |rows: Vec<crate::HistoryRow>| -> Vec<i64> {
            rows.into_iter().map(|r| r.version).collect()
        };
        let all = tx.list_history("p", "flag", "f", None, 100)?;
        assert_eq!(
            all.first(),
            Some(&history("p", "flag", "f", 5)),
            "rows round-trip"
        );
        assert_eq!(versions(all), [5, 4, 3, 2, 1], "newest first");
        assert_eq!(
            versions(tx.list_history("p", "flag", "f", None, 2)?),
            [5, 4],
            "limit"
        );
        let before = tx.list_history("p", "flag", "f", Some(4), 2)?;
        assert_eq!(versions(before), [3, 2], "before_version is exclusive");
        let before = tx.list_history("p", "flag", "f", Some(2), 10)?;
        assert_eq!(versions(before), [1]);
        assert_eq!(
            versions(tx.list_history("p", "flag", "f", Some(1), 10)?),
            Vec::<i64>::new()
        );
        assert_eq!(
            versions(tx.list_history("p", "flag", "f", None, 0)?),
            Vec::<i64>::new(),
            "limit 0"
        );
        assert_eq!(versions(tx.list_history("p", "flag", "g", None, 10)?), [1]);
        assert_eq!(
            versions(tx.list_history("p", "cohort", "f", None, 10)?),
            Vec::<i64>::new()
        );
        assert_eq!(
            tx.get_history("p", "flag", "f", 3)?,
            Some(history("p", "flag", "f", 3)),
            "get keeps the first entry"
        );
        assert_eq!(tx.get_history("p", "flag", "f", 6)?, None);
        assert_eq!(
            tx.get_history("p", "deployment", "f", 1)?,
            Some(history("p", "deployment", "f", 1))
        );
        Ok(())
    });
}

/// Management API keys: insert, list oldest first, lookup by hash, revoke.
pub fn api_keys_round_trip(store: &dyn Store) {
    let (k1, k2, k3) = (
        api_key("k1", T0 + 20),
        api_key("k2", T0),
        api_key("k3", T0 + 10),
    );
    write_ok(store, "insert keys", |tx| {
        tx.insert_api_key(&k1)?;
        tx.insert_api_key(&k2)?;
        tx.insert_api_key(&k3)
    });
    write_ok(store, "conflicting keys", |tx| {
        let mut same_id = api_key("k1", T0);
        same_id.hash = "f".repeat(64);
        assert_conflict(tx.insert_api_key(&same_id), "api key", "id", "duplicate id");
        let mut same_hash = api_key("k4", T0);
        same_hash.hash = k2.hash.clone();
        assert_conflict(
            tx.insert_api_key(&same_hash),
            "api key",
            "hash",
            "duplicate hash",
        );
        Ok(())
    });
    read_ok(store, "read keys", |tx| {
        let list = vec![k2.clone(), k3.clone(), k1.clone()];
        assert_eq!(tx.list_api_keys()?, list, "oldest first");
        assert_eq!(tx.api_key_by_hash(&k3.hash)?, Some(k3.clone()));
        assert_eq!(tx.api_key_by_hash(&"0".repeat(64))?, None);
        Ok(())
    });
    write_ok(store, "revoke", |tx| {
        tx.revoke_api_key("k3", T0 + 100)?;
        assert_not_found(tx.revoke_api_key("k9", T0 + 100), "revoke a missing key");
        Ok(())
    });
    read_ok(store, "after revoke", |tx| {
        let revoked = tx.api_key_by_hash(&k3.hash)?;
        assert_eq!(revoked.and_then(|k| k.revoked_at), Some(T0 + 100));
        assert_eq!(tx.list_api_keys()?.len(), 3, "revoked keys are listed");
        assert_eq!(
            tx.api_key_by_hash(&k1.hash)?,
            Some(k1.clone()),
            "others untouched"
        );
        Ok(())
    });
}
