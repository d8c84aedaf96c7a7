//! [`Evaluation`]: one user's evaluations against one snapshot.
//!
//! Evaluating needs the user as the engine's [`Context`] (its fields copied into the context's
//! shape, enriched with the synced cohorts) and, for exposures, the user's ids. An
//! `Evaluation` builds both once, so each flag read through it costs only the engine's work on
//! that flag and its ancestors: no copy of the user, no metadata map, no string for the
//! exposure's de-duplication. [`crate::LocalClient`]'s per-call accessors make a throw-away
//! `Evaluation` and so give the same answers.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use vexil_eval::{Context, Value, VariantResult};

use crate::events::Unit;
use crate::snapshot::{variant_of, ResultTraits, Snapshot};
use crate::sync::Shared;
use crate::variant::Detail;
use crate::{User, Variant};

/// One user's evaluations against the flag configs current when it was made.
///
/// Make one per request (or other unit of work) with [`crate::LocalClient::evaluation`] and
/// read every flag the request needs through it: the user is prepared once, and every flag
/// is evaluated against the same configs even if new ones arrive meanwhile. It does not follow
/// later changes, so do not keep one for long: make a new one for the next request.
///
/// Exposures are recorded as the client's accessors record them. Cheap to clone; `Send` and
/// `Sync`.
///
/// ```
/// use vexil_sdk::{LocalClient, LocalConfig, User};
///
/// # let flags = r#"[{"key": "new-checkout", "variants": {"on": {"key": "on", "value": "on"}},
/// #     "segments": [{"variant": "on"}]}]"#;
/// let client = LocalClient::start(LocalConfig::offline(flags))?;
/// let user = User::new().with_user_id("u-1").with_field("country", "CA");
/// let flags = client.evaluation(&user);
/// assert_eq!(flags.string_variation("new-checkout", "old"), "on");
/// assert!(!flags.bool_variation("dark-mode", false));
/// # Ok::<(), vexil_sdk::Error>(())
/// ```
#[derive(Clone)]
pub struct Evaluation {
    snapshot: Arc<Snapshot>,
    context: Context,
    /// Where exposures go and whom they are about; `None` when events are off or the user has
    /// no id.
    events: Option<(Arc<Shared>, Unit)>,
}

impl fmt::Debug for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Evaluation")
            .field("context", &self.context)
            .field("flags", &self.snapshot.flags.as_ref().map(|f| f.len()))
            .field("exposures", &self.events.is_some())
            .finish()
    }
}

impl Evaluation {
    pub(crate) fn new(shared: &Arc<Shared>, user: &User) -> Evaluation {
        let snapshot = shared.snapshot();
        let context = snapshot.context(user);
        let events = shared
            .tracker
            .as_ref()
            .and_then(|tracker| tracker.unit(user))
            .map(|unit| (shared.clone(), unit));
        Evaluation {
            snapshot,
            context,
            events,
        }
    }

    fn expose(&self, result: &VariantResult<'_>, traits: ResultTraits) {
        if !traits.exposed {
            return;
        }
        if let Some((shared, unit)) = &self.events {
            if let Some(tracker) = &shared.tracker {
                tracker.exposure(unit, &self.context, result);
            }
        }
    }

    /// Every flag's variant, as remote evaluation answers (`off` results and ancestors served
    /// with `deployed: false` included). Records an assignment event when assignment tracking
    /// is on; no exposures.
    pub fn all_variants(&self) -> BTreeMap<String, Variant> {
        let results = self.snapshot.all(&self.context);
        if let Some((shared, unit)) = &self.events {
            if let Some(tracker) = &shared.tracker {
                tracker.assignment(unit, &self.context, &results);
            }
        }
        results
    }

    /// One flag's variant (`None`: unknown flag or no configs yet), and an exposure.
    pub fn variant(&self, flag_key: &str) -> Option<Variant> {
        let (result, traits) = self.snapshot.result(&self.context, flag_key)?;
        self.expose(&result, traits);
        Some(variant_of(&result))
    }

    /// One flag with its OFREP reason and error code (the OpenFeature provider's answer), and
    /// an exposure.
    pub fn detail(&self, flag_key: &str) -> Detail {
        let outcome = self.snapshot.outcome(&self.context, flag_key);
        if let Some(result) = &outcome.result {
            self.expose(result, outcome.traits);
        }
        outcome.detail(flag_key)
    }

    /// Whether the flag gives a variant other than the default (`off`): the usual test of a
    /// release flag.
    pub fn is_enabled(&self, flag_key: &str) -> bool {
        let outcome = self.snapshot.outcome(&self.context, flag_key);
        if let Some(result) = &outcome.result {
            self.expose(result, outcome.traits);
        }
        outcome.error.is_none() && outcome.value.is_some()
    }

    /// The flag's value converted by `convert`; `fallback` when there is none (the default,
    /// an error) or it has another type. Reads the value where the compiled flags hold it.
    fn typed<'a, T>(
        &'a self,
        flag_key: &str,
        fallback: T,
        convert: impl FnOnce(&'a Value) -> Option<T>,
    ) -> T {
        let outcome = self.snapshot.outcome(&self.context, flag_key);
        if let Some(result) = &outcome.result {
            self.expose(result, outcome.traits);
        }
        outcome.value.and_then(convert).unwrap_or(fallback)
    }

    /// The flag's value as a boolean (a JSON `true`/`false` value); `fallback` for the default,
    /// another type, or an error.
    pub fn bool_variation(&self, flag_key: &str, fallback: bool) -> bool {
        self.typed(flag_key, fallback, as_bool)
    }

    /// The flag's value as a string; `fallback` for the default, another type, or an error.
    pub fn string_variation(&self, flag_key: &str, fallback: &str) -> String {
        self.typed(flag_key, fallback, Value::as_str).to_owned()
    }

    /// The flag's value as an integer; `fallback` otherwise.
    pub fn int_variation(&self, flag_key: &str, fallback: i64) -> i64 {
        self.typed(flag_key, fallback, as_i64)
    }

    /// The flag's value as a number; `fallback` otherwise.
    pub fn float_variation(&self, flag_key: &str, fallback: f64) -> f64 {
        self.typed(flag_key, fallback, as_f64)
    }

    /// The flag's value as any JSON; `fallback` for the default or an error.
    pub fn json_variation(&self, flag_key: &str, fallback: serde_json::Value) -> serde_json::Value {
        self.typed(flag_key, fallback, |v| Some(v.clone().into()))
    }
}

/// What `serde_json::Value::as_bool` gives for the value's JSON.
fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

/// What `serde_json::Value::as_i64` gives for the value's JSON: integers that fit (`UInt` holds
/// only integers above `i64::MAX`), not doubles, even whole ones.
fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

/// What `serde_json::Value::as_f64` gives for the value's JSON (a double that is not finite
/// has no JSON form and becomes `null`).
fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Int(i) => Some(*i as f64),
        Value::UInt(u) => Some(*u as f64),
        Value::Double(d) if d.is_finite() => Some(*d),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed accessors read the engine's values directly; they must convert exactly as
    /// `Detail::typed` over the value's JSON does.
    #[test]
    fn conversions_agree_with_serde_json() {
        let texts = [
            "true",
            "false",
            "null",
            "0",
            "-0",
            "-0.0",
            "1",
            "-1",
            "2.0",
            "1e2",
            "0.5",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "\"on\"",
            "\"\"",
            "\"1\"",
            "[1]",
            "{\"a\": 1}",
        ];
        let mut values: Vec<Value> = texts
            .iter()
            .map(|t| Value::from_json_str(t).unwrap())
            .collect();
        values.extend([
            Value::Double(f64::NAN),
            Value::Double(f64::INFINITY),
            Value::Double(-0.0),
        ]);
        for value in values {
            let json = serde_json::Value::from(value.clone());
            let what = format!("{value:?} as {json}");
            assert_eq!(as_bool(&value), json.as_bool(), "{what}");
            assert_eq!(as_i64(&value), json.as_i64(), "{what}");
            assert_eq!(
                as_f64(&value).map(f64::to_bits),
                json.as_f64().map(f64::to_bits),
                "{what}"
            );
            assert_eq!(value.as_str(), json.as_str(), "{what}");
        }
    }
}
