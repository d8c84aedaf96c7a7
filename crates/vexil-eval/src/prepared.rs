//! Every result a flag set can give, serialized once. A result depends only on the flag, the
//! segment that gave it and the variant (spec §3.2: metadata merged from the three), so an
//! answer for many users is their prepared entries copied together instead of each result
//! serialized again per user.

use crate::compile::FlagSet;
use crate::results::{Results, VariantResult};

/// `"flag-key":{...}`: one result as an entry of the result object SDKs receive.
pub fn result_entry(r: &VariantResult<'_>) -> String {
    // Keys, values and metadata are plain data; serializing them cannot fail.
    format!(
        "{}:{}",
        serde_json::to_string(r.flag_key()).unwrap_or_default(),
        serde_json::to_string(r).unwrap_or_default()
    )
}

/// The [`result_entry`] of every possible result of a [`FlagSet`], by flag, segment and
/// variant.
#[derive(Debug, Clone)]
pub struct PreparedResults {
    flags: Vec<PreparedFlag>,
}

#[derive(Debug, Clone)]
struct PreparedFlag {
    variants: usize,
    /// By `segment * variants + variant`; `None` for a result the flag cannot give.
    entries: Vec<Option<Box<str>>>,
}

impl PreparedResults {
    /// Serializes every result each flag of `set` can give ([`FlagSet::possible_results`]).
    pub fn new(set: &FlagSet) -> PreparedResults {
        let flags = set
            .flags
            .iter()
            .enumerate()
            .map(|(index, flag)| {
                let variants = flag.variant_keys.len();
                let mut entries = vec![None; flag.segments.len() * variants];
                for (segment, variant) in set.possible_results(index) {
                    if let (Some(slot), Some(r)) = (
                        entries.get_mut(segment * variants + variant),
                        set.result_at(index, segment, variant),
                    ) {
                        *slot = Some(result_entry(&r).into_boxed_str());
                    }
                }
                PreparedFlag { variants, entries }
            })
            .collect();
        PreparedResults { flags }
    }

    /// The prepared entry of `r`, when `r` comes from the set these were prepared from.
    pub fn entry(&self, r: &VariantResult<'_>) -> Option<&str> {
        let flag = self.flags.get(r.flag_index())?;
        let at = r.detail().segment_index * flag.variants + r.variant_index();
        flag.entries.get(at)?.as_deref()
    }

    /// Appends `results` to `out` as the JSON object SDKs receive, the same text
    /// `serde_json::to_writer(out, results)` writes.
    pub fn write_object(&self, results: &Results<'_>, out: &mut Vec<u8>) {
        out.push(b'{');
        for (n, r) in results.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            match self.entry(&r) {
                Some(entry) => out.extend_from_slice(entry.as_bytes()),
                None => out.extend_from_slice(result_entry(&r).as_bytes()),
            }
        }
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{evaluate, Context};

    #[test]
    fn prepared_answers_equal_serialized_results() {
        let flags = FlagSet::from_json(
            r#"[{"key": "a", "metadata": {"flagVersion": 3},
                 "variants": {"on": {"key": "on", "value": "on", "payload": {"x": [1, 2]}},
                              "off": {"key": "off", "metadata": {"default": true}}},
                 "segments": [
                   {"metadata": {"segmentName": "NZ"}, "variant": "on",
                    "conditions": [[{"selector": ["context", "user", "country"], "op": "is", "values": ["NZ"]}]]},
                   {"bucket": {"selector": ["context", "user", "user_id"], "salt": "s",
                               "allocations": [{"range": [0, 50], "distributions": [{"variant": "on", "range": [0, 42949673]}]}]},
                    "variant": "off"}]},
                {"key": "b\"quoted", "variants": {"x": {"key": "x"}}, "segments": [{"variant": "x"}]}]"#,
        )
        .unwrap();
        let prepared = PreparedResults::new(&flags);
        for user in [
            r#"{"user_id": "u1", "country": "NZ"}"#,
            r#"{"user_id": "u2"}"#,
            r#"{"user_id": "u3"}"#,
            r#"{}"#,
        ] {
            let context = Context::from_sdk_user_json(user).unwrap();
            let results = evaluate(&flags, &context, &[] as &[&str]).unwrap();
            let mut out = Vec::new();
            prepared.write_object(&results, &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&results).unwrap(),
                "{user}"
            );
        }
    }
}
