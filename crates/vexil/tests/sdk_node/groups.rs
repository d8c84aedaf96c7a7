//! The groups scenario of `sdk_node.rs`: a home page and a checkout, each a mutual-exclusion
//! group of experiments, a program-wide holdout across both, a holdout that runs in one slot of
//! the home page, and a release flag gated on one checkout experiment, all made through the
//! management API the way a team would (groups first, experiments drafted, placed in their groups
//! with `PATCH /api/v1/flags/{key}`, then started).
//!
//! `declared` tells `tests/sdk-node/groups.mjs` what was configured (which experiments share a
//! group, who the holdouts cover, the ids a holdout includes and excludes), so that it checks the
//! groups' guarantees against what was asked for, never against what the server compiled.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{json, Value};

use super::{activate, create_flag, field, property, Api};

/// The id the program holdout always holds out, and the one it never does.
pub const INCLUDED: &str = "qa-always-held-out";
pub const EXCLUDED: &str = "ceo-never-held-out";

/// A group to create: the collection under `/api/v1/projects/{project}/`, the body, and the key
/// the server must generate from its name.
struct GroupSpec {
    collection: &'static str,
    key: &'static str,
    body: Value,
}

/// The groups, in creation order (a holdout in a slot after its mutual-exclusion group). Salts
/// are fixed so that every run buckets the same users the same way.
fn groups() -> Vec<GroupSpec> {
    vec![
        GroupSpec {
            collection: "mutex-groups",
            key: "mutex-home",
            // 10% of users are in no slot.
            body: json!({"name": "Home", "bucketing_salt": "Hm7xQ2pL",
                         "slots": [{"percentage": 40}, {"percentage": 30}, {"percentage": 20}]}),
        },
        GroupSpec {
            collection: "mutex-groups",
            key: "mutex-checkout",
            body: json!({"name": "Checkout", "bucketing_unit": "device_id", "bucketing_salt": "Ck4wZ9rT",
                         "slots": [{"percentage": 50}, {"percentage": 50}]}),
        },
        GroupSpec {
            collection: "holdouts",
            key: "holdout-program",
            body: json!({"name": "Program", "percentage": 10, "bucketing_salt": "Pg3nV8sK",
                         "inclusions": {"ids": [INCLUDED]}, "exclusions": {"ids": [EXCLUDED]}}),
        },
        GroupSpec {
            collection: "holdouts",
            key: "holdout-search-pilot",
            body: json!({"name": "Search pilot", "percentage": 25, "bucketing_salt": "Sp6mB1dY",
                         "mutex_group": {"group": "mutex-home", "slot": 3}}),
        },
    ]
}

/// A flag of the scenario: its key, its body, its mutual-exclusion slot and its holdouts.
struct FlagSpec {
    key: &'static str,
    body: Value,
    slot: Option<(&'static str, u8)>,
    holdouts: &'static [&'static str],
}

fn experiment(key: &str, variants: &[&str], rest: Value) -> Value {
    let variants: Vec<Value> = variants.iter().map(|v| json!({"key": v})).collect();
    let mut body = json!({"type": "experiment", "experiment_key": format!("exp-{key}"),
                          "evaluation_mode": "local", "deployments": ["production"],
                          "variants": variants});
    body.as_object_mut()
        .unwrap()
        .extend(rest.as_object().unwrap().clone());
    body
}

/// The flags, in creation order (a prerequisite before its dependent). Like `flags()`, they stay
/// clear of the corners where Amplitude's JavaScript engine differs from the reference.
fn flags() -> Vec<FlagSpec> {
    let old_apps = || field("version", "version less", &["2.0.0"]);
    vec![
        FlagSpec {
            key: "home-hero",
            body: experiment(
                "home-hero",
                &["control", "treatment"],
                json!({
                    "segments": [{"name": "Mobile", "conditions": [field("platform", "is", &["iOS", "Android"])],
                                  "percentage": 100, "weights": {"control": 1, "treatment": 3}}],
                    "all_other_users": {"percentage": 100, "weights": {"control": 1, "treatment": 1}}
                }),
            ),
            slot: Some(("mutex-home", 1)),
            holdouts: &["holdout-program"],
        },
        FlagSpec {
            key: "home-feed",
            body: experiment(
                "home-feed",
                &["control", "ranked", "social"],
                json!({
                    "segments": [
                        {"name": "Old apps", "conditions": [old_apps()], "percentage": 0, "weights": {"control": 1}},
                        {"name": "Premium", "conditions": [property("premium", "is", &["true"])],
                         "percentage": 100, "weights": {"ranked": 1, "social": 1}}
                    ],
                    "all_other_users": {"percentage": 80, "weights": {"control": 1, "ranked": 1, "social": 1}}
                }),
            ),
            slot: Some(("mutex-home", 2)),
            holdouts: &["holdout-program"],
        },
        // In slot 3 of the home page through the holdout that runs there.
        FlagSpec {
            key: "home-search",
            body: experiment(
                "home-search",
                &["control", "semantic"],
                json!({
                    "segments": [{"name": "DACH", "conditions": [field("country", "is", &["DE", "AT", "CH"])],
                                  "percentage": 100, "weights": {"semantic": 1}}],
                    "all_other_users": {"percentage": 100, "weights": {"control": 1, "semantic": 1}}
                }),
            ),
            slot: None,
            holdouts: &["holdout-search-pilot"],
        },
        FlagSpec {
            key: "checkout-button",
            body: experiment(
                "checkout-button",
                &["control", "green"],
                json!({
                    "bucketing_unit": "device_id",
                    "all_other_users": {"percentage": 100, "weights": {"control": 1, "green": 1}}
                }),
            ),
            slot: Some(("mutex-checkout", 1)),
            holdouts: &["holdout-program"],
        },
        FlagSpec {
            key: "checkout-copy",
            body: experiment(
                "checkout-copy",
                &["control", "urgency"],
                json!({
                    "segments": [{"name": "Teams", "conditions": [property("plan", "is", &["team", "enterprise"])],
                                  "percentage": 100, "weights": {"urgency": 1}}],
                    "all_other_users": {"percentage": 60, "weights": {"control": 1, "urgency": 1}}
                }),
            ),
            slot: Some(("mutex-checkout", 2)),
            holdouts: &[],
        },
        // A release that ships with the winning checkout button.
        FlagSpec {
            key: "one-click-checkout",
            body: json!({
                "evaluation_mode": "local", "deployments": ["production"],
                "prerequisites": [{"flag": "checkout-button", "variants": ["green"]}],
                "segments": [{"name": "Old apps", "conditions": [old_apps()], "percentage": 0, "weights": {"on": 1}}],
                "all_other_users": {"percentage": 100, "weights": {"on": 1}}
            }),
            slot: None,
            holdouts: &[],
        },
    ]
}

/// The users of the main test, and three more: the id the program holdout includes (as a user
/// id, and as the device id of a user without one) and the id it excludes.
pub fn users() -> Vec<Value> {
    let mut users = super::users();
    users.extend([
        json!({"user_id": INCLUDED, "device_id": "device-qa", "country": "DE", "platform": "iOS",
               "version": "3.0.0", "user_properties": {"premium": true, "plan": "team"}}),
        json!({"device_id": INCLUDED, "country": "US", "platform": "Android", "version": "2.1.0"}),
        json!({"user_id": EXCLUDED, "device_id": "device-ceo", "country": "US", "platform": "Web",
               "version": "10.2.0", "user_properties": {"premium": true, "plan": "enterprise"}}),
    ]);
    users
}

/// What the scenario made.
pub struct Scenario {
    /// The version each flag must be served at.
    pub versions: BTreeMap<String, i64>,
    /// The group keys the deployment must serve.
    pub groups: Vec<String>,
    /// What was configured, for the script's checks.
    pub declared: Value,
}

/// Creates the groups and the flags, places the flags in their groups and starts them.
pub async fn set_up(api: &Api, project: &str) -> Scenario {
    let mut group_keys = Vec::new();
    for g in groups() {
        let path = format!("/api/v1/projects/{project}/{}", g.collection);
        let (_, created) = api.json(Method::POST, &path, &g.body, None, 201).await;
        assert_eq!(created["key"], g.key, "the key generated for {}", g.body);
        group_keys.push(g.key.to_owned());
    }
    let mut versions = BTreeMap::new();
    for f in flags() {
        let mut version = create_flag(api, project, f.key, &f.body).await;
        if f.slot.is_some() || !f.holdouts.is_empty() {
            let membership = json!({
                "mutex_group": f.slot.map(|(group, slot)| json!({"group": group, "slot": slot})),
                "holdouts": f.holdouts,
            });
            let path = format!("/api/v1/flags/{}", f.key);
            let (v, body) = api
                .json(Method::PATCH, &path, &membership, Some(version), 200)
                .await;
            version = v.unwrap_or_else(|| panic!("no ETag placing {}: {body}", f.key));
        }
        versions.insert(f.key.to_owned(), activate(api, f.key, version).await);
    }
    Scenario {
        versions,
        groups: group_keys,
        declared: declared(),
    }
}

/// What was configured: the deployed flags; per mutual-exclusion group, the share it leaves
/// unallocated and the experiments in each slot (directly or through a holdout that runs in
/// it); per holdout, its percentage, members and
/// the ids it includes and excludes; per flag, its prerequisites.
fn declared() -> Value {
    let groups = groups();
    let flags = flags();
    let slot_of_holdout: BTreeMap<&str, (&str, u8)> = groups
        .iter()
        .filter_map(|g| {
            let slot = &g.body["mutex_group"];
            let group = slot["group"].as_str()?;
            Some((g.key, (group, u8::try_from(slot["slot"].as_u64()?).ok()?)))
        })
        .collect();
    let mut mutex: BTreeMap<&str, Value> = BTreeMap::new();
    let mut holdouts: BTreeMap<&str, Value> = BTreeMap::new();
    for g in groups.iter().filter(|g| g.collection == "mutex-groups") {
        let used: u64 = g.body["slots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["percentage"].as_u64().unwrap())
            .sum();
        mutex.insert(g.key, json!({"unallocated": 100 - used, "slots": {}}));
    }
    for g in groups.iter().filter(|g| g.collection == "holdouts") {
        let ids = |list: &str| g.body[list]["ids"].as_array().cloned().unwrap_or_default();
        holdouts.insert(
            g.key,
            json!({"percentage": g.body["percentage"], "members": [],
                   "included": ids("inclusions"), "excluded": ids("exclusions")}),
        );
    }
    for f in &flags {
        let slots = f.slot.into_iter().chain(
            f.holdouts
                .iter()
                .filter_map(|h| slot_of_holdout.get(h).copied()),
        );
        for (group, slot) in slots {
            let members = mutex.get_mut(group).unwrap()["slots"]
                .as_object_mut()
                .unwrap()
                .entry(slot.to_string())
                .or_insert_with(|| json!([]));
            members.as_array_mut().unwrap().push(json!(f.key));
        }
        for h in f.holdouts {
            holdouts.get_mut(h).unwrap()["members"]
                .as_array_mut()
                .unwrap()
                .push(json!(f.key));
        }
    }
    let prerequisites: BTreeMap<&str, Value> = flags
        .iter()
        .filter(|f| f.body.get("prerequisites").is_some())
        .map(|f| {
            let by_flag: BTreeMap<&str, &Value> = f.body["prerequisites"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["flag"].as_str().unwrap(), &p["variants"]))
                .collect();
            (f.key, json!(by_flag))
        })
        .collect();
    json!({
        "flags": flags.iter().map(|f| f.key).collect::<Vec<_>>(),
        "mutexGroups": mutex,
        "holdouts": holdouts,
        "prerequisites": prerequisites,
    })
}
