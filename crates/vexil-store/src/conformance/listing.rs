//! Conformance cases for `list_flags` and `dependents`: filters, search, paging and the side
//! tables that keep tags, deployments and prerequisites indexed through updates.

use super::{flag, keys, read_ok, seed_projects, write_ok};
use crate::rows::{FlagFilter, FlagRow};
use crate::Store;

/// A flag with these attributes.
fn shaped(project: &str, key: &str, shape: &[(&str, &str)]) -> FlagRow {
    let mut row = flag(project, key);
    for (field, value) in shape {
        match *field {
            "name" => row.name = (*value).to_owned(),
            "kind" => row.kind = (*value).to_owned(),
            "state" => row.state = (*value).to_owned(),
            "mode" => row.mode = (*value).to_owned(),
            "archived" => row.archived = *value == "true",
            "tag" => row.tags.push((*value).to_owned()),
            "deployment" => row.deployments.push((*value).to_owned()),
            "prerequisite" => row.prerequisites.push((*value).to_owned()),
            other => panic!("unknown flag field {other}"),
        }
    }
    row
}

fn insert_flags(store: &dyn Store, rows: &[FlagRow]) {
    write_ok(store, "insert flags", |tx| {
        rows.iter().try_for_each(|row| tx.insert_flag(row))
    });
}

/// The `project/key`s of the flags `filter` lists (all of them) and the reported total.
fn list(store: &dyn Store, filter: FlagFilter) -> (Vec<String>, u64) {
    let filter = FlagFilter {
        limit: 1000,
        ..filter
    };
    let page = read_ok(store, "list_flags", |tx| tx.list_flags(&filter));
    assert_eq!(
        page.items.len() as u64,
        page.total,
        "total counts every matching flag for {filter:?}"
    );
    (keys(&page.items), page.total)
}

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

/// Each filter alone, then several combined.
pub fn list_flags_filters(store: &dyn Store) {
    seed_projects(store, &["p1", "p2"]);
    insert_flags(
        store,
        &[
            shaped(
                "p1",
                "a",
                &[("state", "active"), ("tag", "web"), ("deployment", "prod")],
            ),
            shaped(
                "p1",
                "b",
                &[("kind", "experiment"), ("mode", "local"), ("tag", "web")],
            ),
            shaped("p1", "c", &[("archived", "true"), ("state", "active")]),
            shaped("p1", "d", &[("deployment", "prod"), ("deployment", "dev")]),
            shaped(
                "p2",
                "a",
                &[("state", "active"), ("tag", "web"), ("deployment", "prod")],
            ),
            shaped("p2", "e", &[("kind", "experiment"), ("archived", "true")]),
        ],
    );
    let cases: Vec<(&str, FlagFilter, Vec<&str>)> = vec![
        (
            "no filter",
            FlagFilter::default(),
            vec!["p1/a", "p1/b", "p1/c", "p1/d", "p2/a", "p2/e"],
        ),
        (
            "project",
            FlagFilter {
                project: some("p2"),
                ..FlagFilter::default()
            },
            vec!["p2/a", "p2/e"],
        ),
        (
            "key",
            FlagFilter {
                key: some("a"),
                ..FlagFilter::default()
            },
            vec!["p1/a", "p2/a"],
        ),
        (
            "state",
            FlagFilter {
                state: some("active"),
                ..FlagFilter::default()
            },
            vec!["p1/a", "p1/c", "p2/a"],
        ),
        (
            "kind",
            FlagFilter {
                kind: some("experiment"),
                ..FlagFilter::default()
            },
            vec!["p1/b", "p2/e"],
        ),
        (
            "mode",
            FlagFilter {
                mode: some("local"),
                ..FlagFilter::default()
            },
            vec!["p1/b"],
        ),
        (
            "archived",
            FlagFilter {
                archived: Some(true),
                ..FlagFilter::default()
            },
            vec!["p1/c", "p2/e"],
        ),
        (
            "not archived",
            FlagFilter {
                archived: Some(false),
                ..FlagFilter::default()
            },
            vec!["p1/a", "p1/b", "p1/d", "p2/a"],
        ),
        (
            "tag",
            FlagFilter {
                tag: some("web"),
                ..FlagFilter::default()
            },
            vec!["p1/a", "p1/b", "p2/a"],
        ),
        (
            "deployment",
            FlagFilter {
                deployment: some("prod"),
                ..FlagFilter::default()
            },
            vec!["p1/a", "p1/d", "p2/a"],
        ),
        (
            "deployment dev",
            FlagFilter {
                deployment: some("dev"),
                ..FlagFilter::default()
            },
            vec!["p1/d"],
        ),
        (
            "unknown tag",
            FlagFilter {
                tag: some("nope"),
                ..FlagFilter::default()
            },
            vec![],
        ),
        (
            "project + tag + deployment",
            FlagFilter {
                project: some("p1"),
                tag: some("web"),
                deployment: some("prod"),
                ..FlagFilter::default()
            },
            vec!["p1/a"],
        ),
        (
            "project + state + archived",
            FlagFilter {
                project: some("p1"),
                state: some("active"),
                archived: Some(false),
                ..FlagFilter::default()
            },
            vec!["p1/a"],
        ),
        (
            "kind + archived + text",
            FlagFilter {
                kind: some("experiment"),
                archived: Some(true),
                text: some("E"),
                ..FlagFilter::default()
            },
            vec!["p2/e"],
        ),
        (
            "contradiction",
            FlagFilter {
                project: some("p1"),
                key: some("e"),
                ..FlagFilter::default()
            },
            vec![],
        ),
    ];
    for (what, filter, expected) in cases {
        let (got, _) = list(store, filter);
        assert_eq!(got, expected, "filter: {what}");
    }
}

/// The tag filter matches a whole tag, never a part of one or of the JSON around it.
pub fn list_flags_tags_match_exactly(store: &dyn Store) {
    seed_projects(store, &["p"]);
    insert_flags(
        store,
        &[
            shaped("p", "exact", &[("tag", "beta")]),
            shaped("p", "longer", &[("tag", "beta-2")]),
            shaped("p", "prefixed", &[("tag", "alpha-beta")]),
            shaped("p", "upper", &[("tag", "Beta")]),
            shaped("p", "quoted", &[("tag", "\"beta\"")]),
            shaped("p", "two", &[("tag", "x"), ("tag", "beta")]),
            shaped("p", "percent", &[("tag", "50%")]),
        ],
    );
    let tag = |t: &str| {
        list(
            store,
            FlagFilter {
                tag: some(t),
                ..FlagFilter::default()
            },
        )
        .0
    };
    assert_eq!(tag("beta"), ["p/exact", "p/two"]);
    assert_eq!(tag("Beta"), ["p/upper"]);
    assert_eq!(tag("bet"), Vec::<String>::new());
    assert_eq!(tag("\"beta\""), ["p/quoted"]);
    assert_eq!(tag("%"), Vec::<String>::new());
    assert_eq!(tag("50%"), ["p/percent"]);
}

/// `text` is a case-insensitive substring of the name or the key, wildcards taken literally.
pub fn list_flags_text_search(store: &dyn Store) {
    seed_projects(store, &["p"]);
    insert_flags(
        store,
        &[
            shaped("p", "checkout-button", &[("name", "Checkout Button")]),
            shaped("p", "NEW-Checkout", &[("name", "redesign")]),
            shaped("p", "search", &[("name", "Search results: 100% faster")]),
            shaped("p", "under_score", &[("name", "plain")]),
            shaped("p", "underXscore", &[("name", "plain")]),
            shaped("p", "umlaut", &[("name", "Ärger mit Straße")]),
            shaped("p", "back", &[("name", "a\\b")]),
        ],
    );
    let text = |t: &str| {
        list(
            store,
            FlagFilter {
                text: some(t),
                ..FlagFilter::default()
            },
        )
        .0
    };
    assert_eq!(
        text("checkout"),
        ["p/NEW-Checkout", "p/checkout-button"],
        "key or name"
    );
    assert_eq!(
        text("CHECKOUT BUT"),
        ["p/checkout-button"],
        "name, case-insensitive"
    );
    assert_eq!(text("new-"), ["p/NEW-Checkout"], "key, case-insensitive");
    assert_eq!(text("design"), ["p/NEW-Checkout"], "name only");
    assert_eq!(text("100%"), ["p/search"], "% is literal");
    assert_eq!(text("%"), ["p/search"], "a lone % matches only a %");
    assert_eq!(text("under_"), ["p/under_score"], "_ is literal");
    assert_eq!(text("_"), ["p/under_score"]);
    assert_eq!(text("\\"), ["p/back"], "backslash is literal");
    assert_eq!(text("ärger"), ["p/umlaut"], "non-ASCII, case-insensitive");
    assert_eq!(text("zzz"), Vec::<String>::new());
    assert_eq!(text("").len(), 7, "empty text matches everything");
}

/// Pages: offset, limit and total; `limit` 0 still counts; order is project then key.
pub fn list_flags_pagination(store: &dyn Store) {
    seed_projects(store, &["b", "a"]);
    let mut rows = Vec::new();
    for i in (0..25).rev() {
        rows.push(shaped("b", &format!("flag-{i:02}"), &[]));
        rows.push(shaped("a", &format!("flag-{i:02}"), &[("state", "active")]));
    }
    insert_flags(store, &rows);
    let page = |filter: FlagFilter| read_ok(store, "list_flags", |tx| tx.list_flags(&filter));

    let first = page(FlagFilter {
        limit: 10,
        ..FlagFilter::default()
    });
    assert_eq!(first.total, 50);
    let expected: Vec<String> = (0..10).map(|i| format!("a/flag-{i:02}")).collect();
    assert_eq!(keys(&first.items), expected, "project then key order");

    let middle = page(FlagFilter {
        offset: 20,
        limit: 10,
        ..FlagFilter::default()
    });
    let expected: Vec<String> = (20..25)
        .map(|i| format!("a/flag-{i:02}"))
        .chain((0..5).map(|i| format!("b/flag-{i:02}")))
        .collect();
    assert_eq!(keys(&middle.items), expected, "a page across projects");
    assert_eq!(middle.total, 50);

    let last = page(FlagFilter {
        offset: 45,
        limit: 10,
        ..FlagFilter::default()
    });
    assert_eq!(last.items.len(), 5, "a short last page");
    assert_eq!(last.total, 50);

    let past = page(FlagFilter {
        offset: 50,
        limit: 10,
        ..FlagFilter::default()
    });
    assert_eq!(
        (past.items.len(), past.total),
        (0, 50),
        "offset past the end"
    );

    let count = page(FlagFilter {
        limit: 0,
        state: some("active"),
        ..FlagFilter::default()
    });
    assert_eq!(
        (count.items.len(), count.total),
        (0, 25),
        "limit 0 only counts"
    );

    let filtered = page(FlagFilter {
        project: some("b"),
        offset: 3,
        limit: 2,
        ..FlagFilter::default()
    });
    assert_eq!(keys(&filtered.items), ["b/flag-03", "b/flag-04"]);
    assert_eq!(filtered.total, 25);

    // Walking every page visits every flag once, in order.
    let mut walked = Vec::new();
    let mut offset = 0;
    loop {
        let p = page(FlagFilter {
            offset,
            limit: 7,
            ..FlagFilter::default()
        });
        if p.items.is_empty() {
            break;
        }
        offset += p.items.len() as u64;
        walked.extend(keys(&p.items));
    }
    let mut sorted = walked.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        (walked.len(), walked),
        (50, sorted),
        "pages cover each flag once in order"
    );
}

/// `dependents` finds the flags listing a prerequisite, in key order, in the same project.
pub fn dependents_follow_prerequisites(store: &dyn Store) {
    seed_projects(store, &["p", "q"]);
    insert_flags(
        store,
        &[
            shaped("p", "base", &[]),
            shaped("p", "z-child", &[("prerequisite", "base")]),
            shaped(
                "p",
                "a-child",
                &[("prerequisite", "other"), ("prerequisite", "base")],
            ),
            shaped(
                "p",
                "old",
                &[("prerequisite", "base"), ("archived", "true")],
            ),
            shaped("p", "grandchild", &[("prerequisite", "a-child")]),
            shaped("q", "child", &[("prerequisite", "base")]),
        ],
    );
    let dependents = |key: &str| {
        let rows = read_ok(store, "dependents", |tx| tx.dependents("p", key));
        keys(&rows)
    };
    assert_eq!(
        dependents("base"),
        ["p/a-child", "p/old", "p/z-child"],
        "archived included"
    );
    assert_eq!(dependents("a-child"), ["p/grandchild"]);
    assert_eq!(
        dependents("other"),
        ["p/a-child"],
        "a missing prerequisite still counts"
    );
    assert_eq!(dependents("grandchild"), Vec::<String>::new());

    let full = read_ok(store, "dependents rows", |tx| tx.dependents("p", "a-child"));
    let grandchild = shaped("p", "grandchild", &[("prerequisite", "a-child")]);
    assert_eq!(full, vec![grandchild], "full rows");

    write_ok(store, "drop a prerequisite", |tx| {
        let mut row = shaped("p", "z-child", &[("prerequisite", "a-child")]);
        row.version = 2;
        tx.update_flag(&row, 1)
    });
    assert_eq!(
        dependents("base"),
        ["p/a-child", "p/old"],
        "updated prerequisites"
    );
    assert_eq!(dependents("a-child"), ["p/grandchild", "p/z-child"]);
}

/// After `update_flag`, the tag and deployment filters see the new lists only.
pub fn flag_links_follow_updates(store: &dyn Store) {
    seed_projects(store, &["p"]);
    let row = shaped(
        "p",
        "f",
        &[
            ("tag", "web"),
            ("deployment", "prod"),
            ("deployment", "dev"),
        ],
    );
    insert_flags(
        store,
        &[row.clone(), shaped("p", "g", &[("deployment", "prod")])],
    );
    let by_deployment = |d: &str| {
        list(
            store,
            FlagFilter {
                deployment: some(d),
                ..FlagFilter::default()
            },
        )
        .0
    };
    let by_tag = |t: &str| {
        list(
            store,
            FlagFilter {
                tag: some(t),
                ..FlagFilter::default()
            },
        )
        .0
    };
    assert_eq!(by_deployment("prod"), ["p/f", "p/g"]);
    assert_eq!(by_deployment("dev"), ["p/f"]);
    assert_eq!(by_tag("web"), ["p/f"]);

    let mut detached = row.clone();
    detached.deployments = vec!["dev".to_owned(), "stage".to_owned()];
    detached.tags = vec!["mobile".to_owned(), "mobile".to_owned()];
    detached.version = 2;
    write_ok(store, "detach from prod", |tx| tx.update_flag(&detached, 1));
    assert_eq!(
        by_deployment("prod"),
        ["p/g"],
        "a detached flag no longer matches"
    );
    assert_eq!(by_deployment("dev"), ["p/f"]);
    assert_eq!(by_deployment("stage"), ["p/f"]);
    assert_eq!(
        by_tag("web"),
        Vec::<String>::new(),
        "a removed tag no longer matches"
    );
    assert_eq!(by_tag("mobile"), ["p/f"], "a duplicated tag matches once");

    // A rejected update leaves the links as they were.
    let mut stale = row.clone();
    stale.deployments = Vec::new();
    stale.version = 3;
    let result = crate::write(store, |tx| tx.update_flag(&stale, 1));
    assert!(result.is_err(), "stale update must fail");
    assert_eq!(
        by_deployment("dev"),
        ["p/f"],
        "links kept after a failed update"
    );
}

/// Listings in the three orders: key (the default), name case-insensitively, the most recently
/// changed first; ties by project and key, and pages cut in that order.
pub fn list_flags_sorts(store: &dyn Store) {
    use crate::rows::FlagSort;
    seed_projects(store, &["p"]);
    let mut rows = vec![
        shaped("p", "a", &[("name", "zebra")]),
        shaped("p", "b", &[("name", "Apple")]),
        shaped("p", "c", &[("name", "mango")]),
        shaped("p", "d", &[("name", "apple")]),
    ];
    for (i, row) in rows.iter_mut().enumerate() {
        row.updated_at = super::T0 + [30, 10, 20, 10][i];
    }
    insert_flags(store, &rows);
    for (sort, expected) in [
        (FlagSort::Key, ["p/a", "p/b", "p/c", "p/d"]),
        (FlagSort::Name, ["p/b", "p/d", "p/c", "p/a"]),
        (FlagSort::Updated, ["p/a", "p/c", "p/b", "p/d"]),
    ] {
        let filter = FlagFilter {
            project: Some("p".into()),
            sort,
            ..FlagFilter::default()
        };
        assert_eq!(list(store, filter.clone()).0, expected, "{sort:?}");
        let second = read_ok(store, "a page", |tx| {
            tx.list_flags(&FlagFilter {
                offset: 1,
                limit: 2,
                ..filter.clone()
            })
        });
        assert_eq!(
            keys(&second.items),
            expected[1..3],
            "{sort:?}: the second page"
        );
    }
}
