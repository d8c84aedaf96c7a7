//! The OFREP scenario in `scenario.json`: flags and what OFREP answers for them, case by case.
//! Two suites run it: the server's OFREP tests (`tests/sdk_ofrep.rs`), which add what only the
//! HTTP answer shows (headers, error details, metadata), and the Rust SDK's OpenFeature test
//! (`crates/vexil/tests/sdk_rust.rs`, which includes this module by path), which checks that
//! the provider answers what OFREP answers. Each creates the flags with its own management-API
//! helper and asks with its own client; they share the data and [`Case::check`].

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The OFREP answer fields a case states: the rest (key, metadata, error details) is checked
/// apart.
const OUTCOME: [&str; 4] = ["reason", "errorCode", "variant", "value"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[allow(dead_code, reason = "the file's own documentation")]
    about: String,
    /// In creation order: a prerequisite comes before the flags that name it.
    pub flags: Vec<Flag>,
    pub cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flag {
    pub key: String,
    #[allow(dead_code, reason = "documentation in the data")]
    #[serde(default)]
    why: String,
    /// Attached to the deployment the cases ask (otherwise to none).
    pub attached: bool,
    /// Activated after its creation.
    pub active: bool,
    /// The management API's flag body, without project, name, key, deployments and evaluation
    /// mode, which each suite's helper sets.
    pub body: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub flag: String,
    #[serde(default)]
    pub why: String,
    context: Option<Value>,
    /// Instead of `context`: that many users `user-0`, `user-1`, ... as targeting keys.
    users: Option<u32>,
    pub status: u16,
    answer: Option<Value>,
    /// Instead of `answer`: the answers allowed, each of which some context must get.
    #[serde(default)]
    answers: Vec<Value>,
    /// Members the answer's metadata must have.
    #[serde(default)]
    metadata: Map<String, Value>,
}

pub fn scenario() -> Scenario {
    serde_json::from_str(include_str!("scenario.json")).expect("scenario.json is a scenario")
}

impl Scenario {
    /// What the deployment serves once every flag is created: the attached flags and their
    /// prerequisites.
    pub fn served(&self) -> Vec<&str> {
        let mut keys = Vec::new();
        for flag in self.flags.iter().filter(|f| f.attached) {
            keys.push(flag.key.as_str());
            for prerequisite in flag.body["prerequisites"].as_array().into_iter().flatten() {
                keys.push(prerequisite["flag"].as_str().unwrap());
            }
        }
        keys
    }
}

impl Case {
    /// The contexts the case asks with.
    pub fn contexts(&self) -> Vec<Value> {
        match (&self.context, self.users) {
            (Some(context), None) => vec![context.clone()],
            (None, Some(n)) => (0..n)
                .map(|i| json!({ "targetingKey": format!("user-{i}") }))
                .collect(),
            _ => panic!("{}: a case has a context or users", self.flag),
        }
    }

    /// The answers the case allows.
    pub fn answers(&self) -> &[Value] {
        match (&self.answer, self.answers.as_slice()) {
            (Some(answer), []) => std::slice::from_ref(answer),
            (None, answers) if !answers.is_empty() => answers,
            _ => panic!("{}: a case has an answer or answers", self.flag),
        }
    }

    /// Names the case and one of its contexts in a failure.
    pub fn what(&self, context: &Value) -> String {
        match self.why.as_str() {
            "" => format!("{} {context}", self.flag),
            why => format!("{} {context} ({why})", self.flag),
        }
    }

    /// Checks OFREP's answer (status and body) to one of the case's contexts against the case
    /// and returns which of its answers it is; `what` names it in a failure.
    pub fn check(&self, status: u16, body: &Value, what: &str) -> usize {
        assert_eq!(status, self.status, "{what}");
        assert_eq!(body["key"], self.flag, "{what}");
        let outcome: Map<String, Value> = OUTCOME
            .iter()
            .filter_map(|&field| Some((field.to_owned(), body.get(field)?.clone())))
            .collect();
        let outcome = Value::Object(outcome);
        let allowed = self.answers();
        let which = allowed
            .iter()
            .position(|a| *a == outcome)
            .unwrap_or_else(|| panic!("{what}: {outcome} is not one of {}", json!(allowed)));
        for (member, value) in &self.metadata {
            assert_eq!(
                &body["metadata"][member], value,
                "{what}: metadata {member}"
            );
        }
        which
    }

    /// Checks that the case's contexts got every answer it allows; `given` holds what
    /// [`Case::check`] returned for each.
    pub fn check_all_given(&self, given: &BTreeSet<usize>) {
        let allowed = self.answers();
        assert_eq!(
            given.len(),
            allowed.len(),
            "{} ({}): only the answers {given:?} of {} were given",
            self.flag,
            self.why,
            json!(allowed)
        );
    }
}
