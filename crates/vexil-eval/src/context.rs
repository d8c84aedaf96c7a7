//! The evaluation context (spec §2.3): built from the user object Amplitude SDKs send.

use crate::value::{Object, Value};

/// What selectors under `["context", ...]` read: `{"user": {...}, "groups": {...}}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    root: Value,
}

impl Context {
    /// Uses `context` as it is (already in context shape: `user`, `groups`, ...).
    pub fn from_value(context: Value) -> Context {
        Context { root: context }
    }

    /// Builds the context from an SDK user object (spec §2.3): `context.user` is the user
    /// without `groups`, `group_properties` and `group_cohort_ids`; `context.groups[T]` holds
    /// the first name of each group type with its properties and cohorts. A user that is not
    /// an object gives the empty context.
    pub fn from_sdk_user(user: Value) -> Context {
        let Value::Object(mut user) = user else {
            return Context {
                root: Value::Object(Object::new()),
            };
        };
        let groups = user.remove("groups");
        let group_properties = user.remove("group_properties");
        let group_cohort_ids = user.remove("group_cohort_ids");

        let mut root = Object::new();
        if !user.is_empty() {
            root.insert("user", Value::Object(user));
        }
        if let Some(Value::Object(groups)) = groups {
            let mut out = Object::new();
            for (group_type, names) in groups.iter() {
                let Some(name) = first_name(names) else {
                    continue;
                };
                let mut group = Object::new();
                group.insert("group_name", Value::from(name));
                if let Some(Value::Object(props)) = lookup(&group_properties, group_type, name) {
                    if !props.is_empty() {
                        group.insert("group_properties", Value::Object(props.clone()));
                    }
                }
                if let Some(Value::Array(cohorts)) = lookup(&group_cohort_ids, group_type, name) {
                    if !cohorts.is_empty() {
                        group.insert("cohort_ids", Value::Array(cohorts.clone()));
                    }
                }
                out.insert(group_type, Value::Object(group));
            }
            if !out.is_empty() {
                root.insert("groups", Value::Object(out));
            }
        }
        Context {
            root: Value::Object(root),
        }
    }

    /// Parses an SDK user from JSON text and builds its context.
    pub fn from_sdk_user_json(text: &str) -> Result<Context, serde_json::Error> {
        Value::from_json_str(text).map(Context::from_sdk_user)
    }

    /// The context object.
    pub fn as_value(&self) -> &Value {
        &self.root
    }
}

fn first_name(names: &Value) -> Option<&str> {
    match names {
        Value::Array(list) => list.first()?.as_str().filter(|n| !n.is_empty()),
        _ => None,
    }
}

fn lookup<'a>(by_type: &'a Option<Value>, group_type: &str, name: &str) -> Option<&'a Value> {
    by_type.as_ref()?.get(group_type)?.get(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example() {
        let user = r#"{"user_id":"u1","user_properties":{"plan":"pro"},"groups":{"org":["acme","x"],"team":[]},
            "group_properties":{"org":{"acme":{"tier":"gold"}}},"group_cohort_ids":{"org":{"acme":["gc1"]}}}"#;
        let expected = r#"{"user":{"user_id":"u1","user_properties":{"plan":"pro"}},
            "groups":{"org":{"group_name":"acme","group_properties":{"tier":"gold"},"cohort_ids":["gc1"]}}}"#;
        let context = Context::from_sdk_user_json(user).unwrap();
        assert_eq!(context.as_value(), &Value::from_json_str(expected).unwrap());
    }

    #[test]
    fn empty_parts_are_left_out() {
        let cases = [
            ("{}", "{}"),
            ("null", "{}"),
            (
                r#"{"groups":{"org":[""],"team":"x"},"group_properties":{}}"#,
                "{}",
            ),
            (
                r#"{"groups":{"org":["a"]},"group_properties":{"org":{"a":{}}},"group_cohort_ids":{"org":{"a":[]}}}"#,
                r#"{"groups":{"org":{"group_name":"a"}}}"#,
            ),
        ];
        for (user, expected) in cases {
            let context = Context::from_sdk_user_json(user).unwrap();
            assert_eq!(
                context.as_value(),
                &Value::from_json_str(expected).unwrap(),
                "{user}"
            );
        }
    }
}
