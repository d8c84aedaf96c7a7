//! Evaluation results: which variant each evaluated flag gave, borrowed from the compiled flags so
//! that evaluating does not copy values, payloads or metadata. Serializes to the result map SDKs
//! receive (`{flagKey: {key, value?, payload?, metadata?}}`, spec §3.2).

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::compile::{Flag, FlagSet};
use crate::engine::merge_metadata;
use crate::value::{Object, Value};

/// One flag's result, by index into the compiled set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub flag: usize,
    pub segment: usize,
    pub variant: usize,
    pub bucketed: bool,
    pub missing_bucket_value: bool,
}

/// The results of one evaluation, in evaluation order (ancestors first).
#[derive(Debug, Clone)]
pub struct Results<'a> {
    set: &'a FlagSet,
    entries: Vec<Entry>,
    /// Flag index to position in `entries`, kept only when some condition reads results.
    positions: Vec<u32>,
}

const ABSENT: u32 = u32::MAX;

impl<'a> Results<'a> {
    pub(crate) fn with_capacity(set: &'a FlagSet, capacity: usize) -> Self {
        let positions = if set.reads_results {
            vec![ABSENT; set.flags.len()]
        } else {
            Vec::new()
        };
        Results {
            set,
            entries: Vec::with_capacity(capacity),
            positions,
        }
    }

    pub(crate) fn push(&mut self, entry: Entry) {
        if let Some(p) = self.positions.get_mut(entry.flag) {
            *p = self.entries.len() as u32;
        }
        self.entries.push(entry);
    }

    pub(crate) fn get_index(&self, flag: usize) -> Option<VariantResult<'a>> {
        let position = *self.positions.get(flag)?;
        let entry = *self.entries.get(position as usize)?;
        Some(VariantResult {
            set: self.set,
            entry,
        })
    }

    /// The result of flag `key`, if it was evaluated and gave a variant.
    pub fn get(&self, key: &str) -> Option<VariantResult<'a>> {
        let flag = *self.set.by_key.get(key)?;
        self.entries
            .iter()
            .find(|e| e.flag == flag)
            .map(|&entry| VariantResult {
                set: self.set,
                entry,
            })
    }

    /// Results in evaluation order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = VariantResult<'a>> + '_ {
        self.entries.iter().map(|&entry| VariantResult {
            set: self.set,
            entry,
        })
    }

    /// Number of flags that gave a variant.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no flag gave a variant.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `target.result` as selectors see it: flag key to `{key, value, metadata}`.
    pub(crate) fn to_target_value(&self) -> Value {
        let mut object = Object::new();
        for r in self.iter() {
            object.insert(r.flag_key(), r.target_value());
        }
        Value::Object(object)
    }
}

impl Serialize for Results<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for r in self.iter() {
            map.serialize_entry(r.flag_key(), &r)?;
        }
        map.end()
    }
}

/// The variant one flag gave, with how it was reached (spec §3.5).
#[derive(Debug, Clone, Copy)]
pub struct VariantResult<'a> {
    set: &'a FlagSet,
    entry: Entry,
}

/// How a result was reached (spec §3.5): feeds OFREP reasons and the debugger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detail<'a> {
    /// Index of the segment that gave the variant.
    pub segment_index: usize,
    /// That segment's `metadata.segmentName`.
    pub segment_name: Option<&'a str>,
    /// True when the variant came from a distribution, false when from `segment.variant`.
    pub bucketed: bool,
    /// True when the segment has a bucket but the bucketing value was missing.
    pub missing_bucket_value: bool,
}

impl<'a> VariantResult<'a> {
    pub(crate) fn new(set: &'a FlagSet, entry: Entry) -> Self {
        VariantResult { set, entry }
    }

    /// The flag's index in its [`FlagSet`] (the order the configs were given).
    pub fn flag_index(&self) -> usize {
        self.entry.flag
    }

    /// The variant's index in the flag's `variants`.
    pub fn variant_index(&self) -> usize {
        self.entry.variant
    }

    fn flag(&self) -> &'a Flag {
        &self.set.flags[self.entry.flag]
    }

    fn layers(&self) -> [Option<&'a Object>; 3] {
        let flag = self.flag();
        [
            flag.config.metadata.as_ref(),
            flag.config.segments[self.entry.segment].metadata.as_ref(),
            flag.config.variants.0[self.entry.variant]
                .1
                .metadata
                .as_ref(),
        ]
    }

    /// The flag's key.
    pub fn flag_key(&self) -> &'a str {
        &self.flag().config.key
    }

    /// The variant key.
    pub fn key(&self) -> &'a str {
        &self.flag().variant_keys[self.entry.variant]
    }

    /// The variant's value.
    pub fn value(&self) -> Option<&'a Value> {
        self.flag().config.variants.0[self.entry.variant]
            .1
            .value
            .as_ref()
    }

    /// The variant's payload.
    pub fn payload(&self) -> Option<&'a Value> {
        self.flag().config.variants.0[self.entry.variant]
            .1
            .payload
            .as_ref()
    }

    /// One key of the merged metadata, without building the merge.
    pub fn metadata_value(&self, key: &str) -> Option<&'a Value> {
        self.layers()
            .into_iter()
            .rev()
            .flatten()
            .find_map(|m| m.get(key))
    }

    /// The merged metadata (flag, then segment, then variant); `None` when empty.
    pub fn metadata(&self) -> Option<Object> {
        merge_metadata(self.layers())
    }

    /// True when the merged metadata has `default: true` (the `off` convention, spec §7).
    pub fn is_default(&self) -> bool {
        self.metadata_value("default") == Some(&Value::Bool(true))
    }

    /// How the variant was reached.
    pub fn detail(&self) -> Detail<'a> {
        let flag = self.flag();
        Detail {
            segment_index: self.entry.segment,
            segment_name: flag.segments[self.entry.segment].name.as_deref(),
            bucketed: self.entry.bucketed,
            missing_bucket_value: self.entry.missing_bucket_value,
        }
    }

    /// `{key, value, metadata}`: the result as `["result", flag]` selectors see it.
    pub(crate) fn target_value(&self) -> Value {
        let mut object = Object::new();
        object.insert("key", Value::from(self.key()));
        if let Some(v) = self.value() {
            object.insert("value", v.clone());
        }
        if let Some(m) = self.metadata() {
            object.insert("metadata", Value::Object(m));
        }
        Value::Object(object)
    }
}

impl Serialize for VariantResult<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("key", self.key())?;
        if let Some(v) = self.value() {
            map.serialize_entry("value", v)?;
        }
        if let Some(p) = self.payload() {
            map.serialize_entry("payload", p)?;
        }
        let layers = self.layers();
        if layers.iter().flatten().any(|m| !m.is_empty()) {
            map.serialize_entry("metadata", &MergedMetadata(layers))?;
        }
        map.end()
    }
}

/// Serializes the merge of metadata layers without building it: each key at the position of
/// its first occurrence, with the value of its last.
struct MergedMetadata<'a>([Option<&'a Object>; 3]);

impl Serialize for MergedMetadata<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let layers = &self.0;
        let mut map = serializer.serialize_map(None)?;
        for (i, layer) in layers.iter().enumerate() {
            let Some(layer) = layer else { continue };
            for (k, v) in layer.iter() {
                if layers[..i]
                    .iter()
                    .flatten()
                    .any(|earlier| earlier.get(k).is_some())
                {
                    continue;
                }
                let last = layers[i + 1..]
                    .iter()
                    .rev()
                    .flatten()
                    .find_map(|later| later.get(k))
                    .unwrap_or(v);
                map.serialize_entry(k, last)?;
            }
        }
        map.end()
    }
}
