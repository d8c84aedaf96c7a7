//! [`User`], the user an evaluation is for, in the shape of Amplitude's SDK user
//! (`sdk-protocol.md` §A7): `user_id`, `device_id`, built-in fields such as `country`,
//! `user_properties`, `groups` and `group_properties`.

use vexil_eval::{Object, Value};

use crate::Error;

/// A user to evaluate flags for. Build it with the `with_*` methods, or from JSON.
///
/// ```
/// use vexil_sdk::User;
///
/// let user = User::new()
///     .with_user_id("u-1")
///     .with_field("country", "NZ")
///     .with_property("plan", "premium")
///     .with_group("org", "acme");
/// assert_eq!(user.user_id(), Some("u-1"));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    pub(crate) fields: Object,
}

impl User {
    /// The empty user (no ids: flags bucketed by `user_id` give their default to it).
    pub fn new() -> User {
        User::default()
    }

    /// A user from its JSON object (`{"user_id": ..., "user_properties": {...}}`).
    pub fn from_json(json: serde_json::Value) -> Result<User, Error> {
        match Value::from(json) {
            Value::Object(fields) => Ok(User { fields }),
            _ => Err(Error::InvalidUser),
        }
    }

    /// Sets `user_id`, the usual bucketing unit and the id cohorts are matched against.
    #[must_use]
    pub fn with_user_id(self, id: impl Into<String>) -> User {
        self.with_field("user_id", id.into())
    }

    /// Sets `device_id`.
    #[must_use]
    pub fn with_device_id(self, id: impl Into<String>) -> User {
        self.with_field("device_id", id.into())
    }

    /// Sets a top-level field (`country`, `platform`, `version`, ... or any other name).
    #[must_use]
    pub fn with_field(mut self, name: &str, value: impl Into<serde_json::Value>) -> User {
        self.fields.insert(name, Value::from(value.into()));
        self
    }

    /// Sets a custom property (`user_properties[name]`).
    #[must_use]
    pub fn with_property(mut self, name: &str, value: impl Into<serde_json::Value>) -> User {
        let value = Value::from(value.into());
        with_object(&mut self.fields, "user_properties", |p| {
            p.insert(name, value)
        });
        self
    }

    /// Puts the user in group `name` of type `group_type` (`groups[group_type] = [name]`).
    #[must_use]
    pub fn with_group(mut self, group_type: &str, name: &str) -> User {
        let names = Value::from(vec![name]);
        with_object(&mut self.fields, "groups", |g| g.insert(group_type, names));
        self
    }

    /// Sets a property of a group (`group_properties[group_type][name][property]`).
    #[must_use]
    pub fn with_group_property(
        mut self,
        group_type: &str,
        name: &str,
        property: &str,
        value: impl Into<serde_json::Value>,
    ) -> User {
        let value = Value::from(value.into());
        with_object(&mut self.fields, "group_properties", |by_type| {
            with_object(by_type, group_type, |by_name| {
                with_object(by_name, name, |props| props.insert(property, value));
            });
        });
        self
    }

    /// `user_id`, when it is a string.
    pub fn user_id(&self) -> Option<&str> {
        self.fields.get("user_id").and_then(Value::as_str)
    }

    /// `device_id`, when it is a string.
    pub fn device_id(&self) -> Option<&str> {
        self.fields.get("device_id").and_then(Value::as_str)
    }

    /// The user as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        Value::Object(self.fields.clone()).into()
    }
}

/// Calls `f` with the object at `name` in `object`, made (or made an object, replacing what
/// was there) when it is not one.
fn with_object(object: &mut Object, name: &str, f: impl FnOnce(&mut Object)) {
    if let Some(Value::Object(inner)) = object.get_mut(name) {
        f(inner);
        return;
    }
    let mut inner = Object::new();
    f(&mut inner);
    object.insert(name, Value::Object(inner));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_users_and_reads_json() {
        let user = User::new()
            .with_user_id("u1")
            .with_device_id("d1")
            .with_field("country", "NZ")
            .with_property("plan", "pro")
            .with_property("seats", 3)
            .with_group("org", "acme")
            .with_group_property("org", "acme", "tier", "gold");
        assert_eq!(
            user.to_json(),
            json!({"user_id": "u1", "device_id": "d1", "country": "NZ",
                   "user_properties": {"plan": "pro", "seats": 3},
                   "groups": {"org": ["acme"]},
                   "group_properties": {"org": {"acme": {"tier": "gold"}}}})
        );
        assert_eq!((user.user_id(), user.device_id()), (Some("u1"), Some("d1")));
        // A property on a user whose user_properties is not an object replaces it.
        let odd = User::from_json(json!({"user_properties": 5}))
            .unwrap()
            .with_property("a", 1);
        assert_eq!(odd.to_json(), json!({"user_properties": {"a": 1}}));
        for bad in [json!([]), json!("u1"), json!(null), json!(1)] {
            assert!(matches!(User::from_json(bad), Err(Error::InvalidUser)));
        }
    }
}
