//! What changed between two versions of a document: a list of `(path, before, after)` leaves,
//! used for history summaries and the version comparison of the API and console.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// One changed field.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Change {
    /// JSON path, e.g. `segments[0].percentage` or `variants`.
    pub path: String,
    /// The old value; absent when the field was added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The new value; absent when the field was removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// Fields that change on every write and say nothing about the configuration.
const BOOKKEEPING: &[&str] = &[
    "version",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
];

/// The changes from `before` to `after`, in the documents' field order, ignoring bookkeeping fields at
/// the top level. Objects are compared key by key and arrays index by index; a leaf is a
/// scalar or a value whose type changed.
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk("", before, after, &mut out, true);
    out
}

fn walk(path: &str, before: &Value, after: &Value, out: &mut Vec<Change>, top: bool) {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, old) in a {
                if top && BOOKKEEPING.contains(&key.as_str()) {
                    continue;
                }
                let sub = join(path, key);
                match b.get(key) {
                    Some(new) => walk(&sub, old, new, out, false),
                    None => out.push(Change {
                        path: sub,
                        before: Some(old.clone()),
                        after: None,
                    }),
                }
            }
            for (key, new) in b {
                if (top && BOOKKEEPING.contains(&key.as_str())) || a.contains_key(key) {
                    continue;
                }
                out.push(Change {
                    path: join(path, key),
                    before: None,
                    after: Some(new.clone()),
                });
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let sub = format!("{path}[{i}]");
                match (a.get(i), b.get(i)) {
                    (Some(old), Some(new)) => walk(&sub, old, new, out, false),
                    (old, new) => out.push(Change {
                        path: sub,
                        before: old.cloned(),
                        after: new.cloned(),
                    }),
                }
            }
        }
        (old, new) if old != new => out.push(Change {
            path: path.to_string(),
            before: Some(old.clone()),
            after: Some(new.clone()),
        }),
        _ => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A one-line summary: the top-level fields that changed, e.g. `changed segments, state`.
pub fn summary(changes: &[Change]) -> String {
    let mut fields: Vec<&str> = Vec::new();
    for change in changes {
        let end = change.path.find(['.', '[']).unwrap_or(change.path.len());
        let field = &change.path[..end];
        if !fields.contains(&field) {
            fields.push(field);
        }
    }
    if fields.is_empty() {
        "no changes".to_string()
    } else {
        format!("changed {}", fields.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn changes_are_listed_by_path() {
        let before =
            json!({"name": "a", "version": 1, "segments": [{"percentage": 10}], "tags": ["x"]});
        let after = json!({"name": "b", "version": 2, "segments": [{"percentage": 20}, {"percentage": 5}], "extra": true});
        let changes = diff(&before, &after);
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "name",
                "segments[0].percentage",
                "segments[1]",
                "tags",
                "extra"
            ]
        );
        assert_eq!(changes[1].before, Some(json!(10)));
        assert_eq!(changes[1].after, Some(json!(20)));
        assert_eq!(changes[3].after, None);
        assert_eq!(summary(&changes), "changed name, segments, tags, extra");
        assert_eq!(summary(&diff(&before, &before)), "no changes");
    }
}
