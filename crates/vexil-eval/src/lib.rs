//! Vexil's evaluation engine: the flag-config model Amplitude Experiment SDKs download
//! ("evaluation model v2"), a compile step that parses every regex, number, version and set once,
//! and [`evaluate`], which gives exactly the variant Amplitude's reference engine gives for the
//! same config and user.
//!
//! The crate is pure: no I/O, clock, randomness, logging or async runtime, so the server, the
//! command line, SDKs and WebAssembly builds all run the same code.
//!
//! ```
//! use vexil_eval::{evaluate, Context, FlagSet};
//!
//! let flags = FlagSet::from_json(r#"[{"key": "dark-mode",
//!     "variants": {"on": {"key": "on", "value": "on"}, "off": {"key": "off"}},
//!     "segments": [{"conditions": [[{"selector": ["context", "user", "country"],
//!                                    "op": "is", "values": ["NZ"]}]], "variant": "on"},
//!                  {"variant": "off"}]}]"#)?;
//! let user = Context::from_sdk_user_json(r#"{"user_id": "u1", "country": "NZ"}"#)?;
//! let results = evaluate(&flags, &user, &[] as &[&str])?;
//! assert_eq!(results.get("dark-mode").map(|r| r.key()), Some("on"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod coerce;
mod compile;
mod condition;
mod context;
mod engine;
mod explain;
mod model;
mod murmur;
mod number;
mod prepared;
mod results;
mod value;

pub use compile::{CompileError, CycleError, FlagSet, Plan, Warning};
pub use condition::{
    full_match_regex, Op, RegexError, MAX_REGEX_PATTERN_BYTES, REGEX_DFA_SIZE_LIMIT,
    REGEX_SIZE_LIMIT,
};
pub use context::Context;
pub use engine::{evaluate, evaluate_plan, explain};
pub use explain::{
    BucketExplanation, ConditionsExplanation, FailedCondition, FlagExplanation, RangeHit,
    SegmentExplanation, SegmentOutcome,
};
pub use model::{
    AllocationConfig, BucketConfig, ConditionConfig, DistributionConfig, FlagConfig, OrderedMap,
    SegmentConfig, VariantConfig,
};
pub use murmur::murmur3_x86_32;
pub use prepared::{result_entry, PreparedResults};
pub use results::{Detail, Results, VariantResult};
pub use value::{Object, Value};

/// Whether `s` is a semantic version the `version …` operators understand (spec §4.7).
pub fn is_version(s: &str) -> bool {
    number::Version::parse(s).is_some()
}

/// The largest distribution value (`u32::MAX / 100`); a range ending at this plus one covers
/// everyone.
pub const MAX_DISTRIBUTION: i64 = 42_949_672;

/// The bucketing numbers for `value` under `salt`: `(allocation, distribution)` =
/// `(h % 100, h / 100)` with `h = murmur3(salt + "/" + value)` (spec §3.4).
pub fn bucket_values(salt: &str, value: &str) -> (u32, u32) {
    let h = murmur::murmur3_parts(&[salt.as_bytes(), b"/", value.as_bytes()], 0);
    (h % 100, h / 100)
}
