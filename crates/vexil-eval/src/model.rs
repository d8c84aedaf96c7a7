//! The flag-config JSON model ("evaluation model v2", spec §1): what `/sdk/v2/flags` serves and
//! what SDKs evaluate. Keys are camelCase, unknown keys are ignored, `null` means absent.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::value::{Object, Value};

/// One flag config.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagConfig {
    /// The unique flag key.
    pub key: String,
    /// All variants by key, `off` included, in document order.
    pub variants: OrderedMap<VariantConfig>,
    /// Segments, tried in order.
    pub segments: Vec<SegmentConfig>,
    /// Keys of flags evaluated before this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Vec<String>>,
    /// Copied into every result of this flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Object>,
}

/// A variant.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantConfig {
    /// The key returned to callers; the map key when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The variant's value (any JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// A free-form attachment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Merged into results, e.g. `{"default": true}` on `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Object>,
}

/// A segment: conditions, then a bucket or a fixed variant.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentConfig {
    /// OR of AND-lists. Absent always matches; `[]` never matches; `[[]]` always matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Vec<ConditionConfig>>>,
    /// Hashing into allocations and distributions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<BucketConfig>,
    /// Served when the segment matches but hashing gives nothing; absent falls through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// E.g. `{"segmentName": "..."}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Object>,
}

/// Where the bucketing value is read and how it is hashed.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketConfig {
    /// Path of the bucketing value in the target.
    pub selector: Vec<String>,
    /// Hash salt.
    pub salt: String,
    /// Tried in order.
    pub allocations: Vec<AllocationConfig>,
}

/// A half-open range `[start, end)` over the allocation value 0..=99.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocationConfig {
    /// `[start, end)`.
    pub range: [i64; 2],
    /// Tried in order.
    pub distributions: Vec<DistributionConfig>,
}

/// A half-open range `[start, end)` over the distribution value 0..=42949672.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DistributionConfig {
    /// Variant key.
    pub variant: String,
    /// `[start, end)`.
    pub range: [i64; 2],
}

/// A condition: `select(target, selector) op values`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionConfig {
    /// Path into the target.
    pub selector: Vec<String>,
    /// Operator name, e.g. `set contains any`.
    pub op: String,
    /// Filter values. Numbers and booleans are accepted and read as their JSON text.
    #[serde(deserialize_with = "condition_values")]
    pub values: Vec<String>,
}

fn condition_values<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        String(String),
        Bool(bool),
        Int(i64),
        UInt(u64),
        Float(f64),
    }
    let raw = Vec::<Scalar>::deserialize(d).map_err(|_| {
        de::Error::custom(
            "condition values must be strings (numbers and booleans are read as their JSON text)",
        )
    })?;
    Ok(raw
        .into_iter()
        .map(|s| match s {
            Scalar::String(s) => s,
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::UInt(u) => u.to_string(),
            Scalar::Float(f) => {
                serde_json::Number::from_f64(f).map_or_else(|| f.to_string(), |n| n.to_string())
            }
        })
        .collect())
}

/// A JSON object with values of one type, in document order (a repeated key keeps its first
/// position and its last value).
#[derive(Debug, Clone, PartialEq)]
pub struct OrderedMap<V>(pub Vec<(String, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<V> OrderedMap<V> {
    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Entries in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &V)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<V: Serialize> Serialize for OrderedMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = OrderedMap<V>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(String, V)> = Vec::new();
                while let Some(key) = access.next_key::<String>()? {
                    let value = access.next_value()?;
                    match entries.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, slot)) => *slot = value,
                        None => entries.push((key, value)),
                    }
                }
                entries.shrink_to_fit();
                Ok(OrderedMap(entries))
            }
        }

        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}
