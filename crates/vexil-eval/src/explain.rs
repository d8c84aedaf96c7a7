//! Why a flag gave the variant it gave: per segment, whether its conditions matched (and which
//! condition failed in each OR-group when they did not), the bucketing value, hash, allocation and
//! distribution numbers, and what the segment yielded. This is what the console's QA panel and
//! `vexil eval --explain` show.

use std::fmt;

use serde::Serialize;

use crate::model::BucketConfig;
use crate::value::Value;

/// The explanation of one flag's evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlagExplanation {
    /// The flag.
    pub flag_key: String,
    /// The variant key it gave, if any.
    pub variant: Option<String>,
    /// The index of the segment that gave it.
    pub segment_index: Option<usize>,
    /// Every segment examined, in order, up to and including the one that gave the variant.
    pub segments: Vec<SegmentExplanation>,
}

/// One examined segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentExplanation {
    /// Position in the flag's segments.
    pub index: usize,
    /// `metadata.segmentName`.
    pub name: Option<String>,
    /// Whether the conditions matched.
    pub conditions: ConditionsExplanation,
    /// Bucketing, when the segment matched and has a bucket.
    pub bucket: Option<BucketExplanation>,
    /// What the segment yielded.
    pub outcome: SegmentOutcome,
}

/// The conditions of a segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ConditionsExplanation {
    /// The segment has no conditions: it matches everyone.
    Absent,
    /// The OR-group at `group` had all its conditions true.
    Matched {
        /// Index of the first matching OR-group.
        group: usize,
    },
    /// No OR-group matched; for each, the first condition that was false.
    NotMatched {
        /// One entry per OR-group (none when `conditions` is `[]`).
        failed: Vec<FailedCondition>,
    },
}

/// A condition that was false.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedCondition {
    /// OR-group index.
    pub group: usize,
    /// Index inside the group.
    pub condition: usize,
    /// The condition's selector.
    pub selector: Vec<String>,
    /// The operator.
    pub op: String,
    /// The filter values.
    pub values: Vec<String>,
    /// What the selector found (`None`: nothing, the property is not set).
    pub actual: Option<Value>,
}

/// Bucketing numbers for a matched segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BucketExplanation {
    /// Where the bucketing value was read.
    pub selector: Vec<String>,
    /// The salt.
    pub salt: String,
    /// The bucketing value as hashed; `None` when missing or empty.
    pub value: Option<String>,
    /// `murmur3(salt + "/" + value)`.
    pub hash: Option<u32>,
    /// `hash % 100`.
    pub allocation_value: Option<u32>,
    /// `hash / 100`.
    pub distribution_value: Option<u32>,
    /// The allocation that held the user, with its range.
    pub allocation: Option<RangeHit>,
    /// The distribution that held the user, with its range and variant.
    pub distribution: Option<RangeHit>,
}

/// A range that held the bucketing numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RangeHit {
    /// Index in its list.
    pub index: usize,
    /// `[start, end)`.
    pub range: [i64; 2],
    /// The distribution's variant (distributions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl BucketExplanation {
    pub(crate) fn new(
        config: &BucketConfig,
        value: Option<String>,
        hash: Option<u32>,
        hit: Option<(usize, usize)>,
    ) -> Self {
        let allocation = hit.map(|(a, _)| RangeHit {
            index: a,
            range: config.allocations[a].range,
            variant: None,
        });
        let distribution = hit.map(|(a, d)| {
            let dist = &config.allocations[a].distributions[d];
            RangeHit {
                index: d,
                range: dist.range,
                variant: Some(dist.variant.clone()),
            }
        });
        BucketExplanation {
            selector: config.selector.clone(),
            salt: config.salt.clone(),
            value: value.filter(|v| !v.is_empty()),
            hash,
            allocation_value: hash.map(|h| h % 100),
            distribution_value: hash.map(|h| h / 100),
            allocation,
            distribution,
        }
    }
}

/// What a segment yielded.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SegmentOutcome {
    /// Conditions false: the next segment is tried.
    NotMatched,
    /// The segment gave `variant` and evaluation stopped.
    Served {
        /// The variant key.
        variant: String,
        /// True when it came from a distribution, false when from the segment's own variant.
        bucketed: bool,
        /// `bucketed`, `not allocated`, `no bucketing value` or `segment has no bucket`.
        reason: String,
    },
    /// The segment matched but gave no existing variant: the next segment is tried.
    FellThrough {
        /// Why.
        reason: String,
    },
}

impl fmt::Display for FlagExplanation {
    /// A few lines a person can read: the verdict, then one line per examined segment.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.variant {
            Some(v) => writeln!(f, "{}: {v}", self.flag_key)?,
            None => writeln!(f, "{}: no variant", self.flag_key)?,
        }
        for s in &self.segments {
            let name = s.name.as_deref().unwrap_or("(unnamed)");
            write!(f, "  segment {} {name:?}: ", s.index)?;
            match &s.conditions {
                ConditionsExplanation::NotMatched { failed } if failed.is_empty() => {
                    write!(f, "conditions [] never match")?
                }
                ConditionsExplanation::NotMatched { failed } => {
                    let parts: Vec<String> = failed
                        .iter()
                        .map(|c| {
                            let actual = c.actual.as_ref().map_or("(none)".into(), |v| {
                                serde_json::to_string(v).unwrap_or_default()
                            });
                            format!(
                                "{} {} {:?} is false for {actual}",
                                c.selector.join("."),
                                c.op,
                                c.values
                            )
                        })
                        .collect();
                    write!(f, "not matched: {}", parts.join("; "))?;
                }
                ConditionsExplanation::Matched { group } => write!(f, "matched (group {group})")?,
                ConditionsExplanation::Absent => write!(f, "matched (no conditions)")?,
            }
            if let Some(b) = &s.bucket {
                match (&b.value, b.hash) {
                    (Some(value), Some(hash)) => write!(
                        f,
                        "; bucketed {}={value:?} hash {hash} allocation {} distribution {}",
                        b.selector.join("."),
                        hash % 100,
                        hash / 100
                    )?,
                    _ => write!(f, "; no bucketing value at {}", b.selector.join("."))?,
                }
            }
            match &s.outcome {
                SegmentOutcome::NotMatched => writeln!(f)?,
                SegmentOutcome::Served {
                    variant, reason, ..
                } => writeln!(f, " -> {variant} ({reason})")?,
                SegmentOutcome::FellThrough { reason } => {
                    writeln!(f, " -> falls through ({reason})")?
                }
            }
        }
        Ok(())
    }
}
