//! The model's limits, defined once: how large one flag, one condition, one regex and one
//! project may grow. Flags edited through the API ([`crate::validate`]) and imported configs
//! ([`crate::service::ImportService`]) are held to the same numbers.
//!
//! Each limit is far above what a real Amplitude export or a person at the console produces,
//! and far below what costs the server memory or publish time: every deployment's snapshot
//! compiles its flags (hash sets for value lists, regex programs), and a project is rebuilt
//! after each change. A limit is checked before the expensive work it protects (values are
//! counted before sets are built, a pattern's length is checked before it is compiled), and a
//! violation is a `FieldError` that names the flag, the JSON path, the count and the limit.

use std::io;

use serde::Serialize;
use vexil_eval::{full_match_regex, FlagConfig, Op, RegexError};
use vexil_store::{FlagFilter, Tx};

use crate::error::{Error, FieldError, Result};

/// One limit: the largest allowed count, the stable error code of a violation, and what is
/// counted (the noun of the message, `20001 values, at most 20000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: usize,
    pub code: &'static str,
    pub what: &'static str,
}

impl Limit {
    /// The message of a violation: `20001 values, at most 20000`.
    pub fn message(&self, count: usize) -> String {
        format!("{count} {}, at most {}", self.what, self.max)
    }
}

/// Values of one condition (and ids or cohorts of one inclusion, which compile to one). The
/// engine keeps them in a hash set, so 20,000 short ids stay around a megabyte per deployment;
/// longer lists belong in a cohort, which is stored once and shared by every snapshot.
pub const VALUES_PER_CONDITION: Limit = Limit {
    max: 20_000,
    code: "too_many_values",
    what: "values",
};

/// Conditions of one segment (all its OR-groups together). Real segments hold a handful; 100
/// keeps the conditions evaluated for every user of every segment bounded.
pub const CONDITIONS_PER_SEGMENT: Limit = Limit {
    max: 100,
    code: "too_many_conditions",
    what: "conditions",
};

/// Segments of one flag. Segments are tried in order for every evaluation, so their number is
/// the engine's per-flag cost; 200 is ten times what a targeting page can usefully show.
pub const SEGMENTS_PER_FLAG: Limit = Limit {
    max: 200,
    code: "too_many_segments",
    what: "segments",
};

/// Variants of one flag (`off` included in an imported config). Experiments have a few; every
/// variant's results are prepared in every snapshot, so 100 bounds that work.
pub const VARIANTS_PER_FLAG: Limit = Limit {
    max: 100,
    code: "too_many_variants",
    what: "variants",
};

/// Regex values of one flag, all conditions together. Each compiles to a program of up to
/// [`REGEX_COMPILED_BYTES`] in every snapshot; 100 keeps a flag's regexes within about a
/// hundred megabytes in the worst case and a few kilobytes in practice (most flags have none).
pub const REGEXES_PER_FLAG: Limit = Limit {
    max: 100,
    code: "too_many_regexes",
    what: "regex values",
};

/// The length of one regex pattern in bytes. The number lives in the engine
/// ([`vexil_eval::MAX_REGEX_PATTERN_BYTES`]), which refuses longer patterns whatever their
/// source (an SDK's downloaded config, say).
pub const REGEX_PATTERN_BYTES: Limit = Limit {
    max: vexil_eval::MAX_REGEX_PATTERN_BYTES,
    code: "regex_too_long",
    what: "bytes in the pattern",
};

/// The heap of one compiled regex program in bytes; the engine sets it as the regex builder's
/// size limit ([`vexil_eval::REGEX_SIZE_LIMIT`]), so this is checked by compiling with it.
pub const REGEX_COMPILED_BYTES: Limit = Limit {
    max: vexil_eval::REGEX_SIZE_LIMIT,
    code: "regex_too_large",
    what: "bytes compiled",
};

/// Flags of one project, archived ones included. A deployment's snapshot compiles all of its
/// flags at every publish; 20,000 is twice the project the management benchmark seeds.
pub const FLAGS_PER_PROJECT: Limit = Limit {
    max: 20_000,
    code: "too_many_flags",
    what: "flags",
};

/// The size of one flag in bytes: an imported config's JSON text, or a managed flag's stored
/// document. Amplitude configs are a few kilobytes; 1 MiB matches the API's JSON body limit and
/// bounds what any one flag costs to store, compile and serve.
pub const CONFIG_BYTES: Limit = Limit {
    max: 1024 * 1024,
    code: "config_too_large",
    what: "bytes",
};

/// Every limit, for documentation and for tests that walk them all.
pub const ALL: [Limit; 9] = [
    VALUES_PER_CONDITION,
    CONDITIONS_PER_SEGMENT,
    SEGMENTS_PER_FLAG,
    VARIANTS_PER_FLAG,
    REGEXES_PER_FLAG,
    REGEX_PATTERN_BYTES,
    REGEX_COMPILED_BYTES,
    FLAGS_PER_PROJECT,
    CONFIG_BYTES,
];

/// Collects violations of one flag under a field prefix (`flags[3]`, or none for the API's own
/// document) and a label that names the flag (`flags[3] (checkout-v2)`, `flag "checkout-v2"`),
/// so every message reads `<label>: <path>: <count> <what>, at most <max>`.
pub struct Violations<'a> {
    prefix: String,
    label: String,
    errors: &'a mut Vec<FieldError>,
}

impl<'a> Violations<'a> {
    /// Violations of the flag labelled `label`, at fields below `prefix` (empty: at the root).
    pub fn new(
        errors: &'a mut Vec<FieldError>,
        prefix: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        Violations {
            prefix: prefix.into(),
            label: label.into(),
            errors,
        }
    }

    /// The full field path of `path` (relative to the flag).
    pub fn field(&self, path: &str) -> String {
        match (self.prefix.is_empty(), path.is_empty()) {
            (true, _) => path.to_owned(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}.{path}", self.prefix),
        }
    }

    /// Records `detail` about `path` under `code`, with the flag's label in the message.
    pub fn push(&mut self, path: &str, code: &'static str, detail: &str) {
        let message = if path.is_empty() {
            format!("{}: {detail}", self.label)
        } else {
            format!("{}: {path}: {detail}", self.label)
        };
        let field = self.field(path);
        self.errors.push(FieldError::new(field, code, message));
    }

    /// Checks `count` against `limit`; false (and a recorded violation) when it is over.
    pub fn count(&mut self, limit: &Limit, path: &str, count: usize) -> bool {
        if count <= limit.max {
            return true;
        }
        self.push(path, limit.code, &limit.message(count));
        false
    }

    /// Checks a regex pattern: its length before anything else, then its compiled size by
    /// compiling it under the engine's limits. Returns the error of a pattern that Rust's
    /// dialect does not accept, for the caller to judge: the API refuses it, an import keeps it
    /// as Amplitude gave it (it matches nothing).
    pub fn regex(&mut self, path: &str, pattern: &str) -> Option<RegexError> {
        if !self.count(&REGEX_PATTERN_BYTES, path, pattern.len()) {
            return None;
        }
        match full_match_regex(pattern) {
            Ok(_) => None,
            Err(RegexError::TooLong { len, .. }) => {
                self.count(&REGEX_PATTERN_BYTES, path, len);
                None
            }
            Err(RegexError::TooLarge { max }) => {
                let detail = format!(
                    "the compiled pattern would take more than {max} bytes; simplify it (large repetitions, of Unicode classes such as \\w above all, are the usual cause)"
                );
                self.push(path, REGEX_COMPILED_BYTES.code, &detail);
                None
            }
            Err(err @ RegexError::Invalid(_)) => Some(err),
        }
    }
}

/// Checks an engine config (an imported flag) against every per-flag limit, in the order that
/// keeps the work small: counts first, and patterns (length, then compiled size) only when the
/// counts are within their limits. The config's byte size is the caller's to check, before it
/// parses the config.
pub fn check_config(config: &FlagConfig, v: &mut Violations<'_>) {
    let mut within = v.count(&VARIANTS_PER_FLAG, "variants", config.variants.len());
    within &= v.count(&SEGMENTS_PER_FLAG, "segments", config.segments.len());
    let mut regexes = 0;
    for (s, segment) in config.segments.iter().enumerate() {
        let groups = segment.conditions.iter().flatten();
        let conditions = groups.clone().map(Vec::len).sum();
        within &= v.count(
            &CONDITIONS_PER_SEGMENT,
            &format!("segments[{s}].conditions"),
            conditions,
        );
        for (g, group) in groups.enumerate() {
            for (c, condition) in group.iter().enumerate() {
                within &= v.count(
                    &VALUES_PER_CONDITION,
                    &format!("segments[{s}].conditions[{g}][{c}].values"),
                    condition.values.len(),
                );
                if is_regex(&condition.op) {
                    regexes += condition.values.len();
                }
            }
        }
    }
    within &= v.count(&REGEXES_PER_FLAG, "segments", regexes);
    if !within {
        return;
    }
    for (s, segment) in config.segments.iter().enumerate() {
        for (g, group) in segment.conditions.iter().flatten().enumerate() {
            for (c, condition) in group.iter().enumerate() {
                if !is_regex(&condition.op) {
                    continue;
                }
                for (k, pattern) in condition.values.iter().enumerate() {
                    // A pattern Rust's dialect does not accept is kept, as the engine keeps it:
                    // it matches nothing and the compile warning says so.
                    let _invalid = v.regex(
                        &format!("segments[{s}].conditions[{g}][{c}].values[{k}]"),
                        pattern,
                    );
                }
            }
        }
    }
}

/// Refuses `added` new flags when they would take `project` past [`FLAGS_PER_PROJECT`]. Call
/// it in the transaction that adds them, after locking the project, so the count cannot change
/// before the commit.
pub fn check_flag_count(tx: &mut dyn Tx, project: &str, added: usize) -> Result<()> {
    let filter = FlagFilter {
        project: Some(project.to_owned()),
        // Only the total is wanted, not a page of rows.
        limit: 0,
        ..FlagFilter::default()
    };
    let stored = tx.list_flags(&filter)?.total;
    let total = usize::try_from(stored)
        .unwrap_or(usize::MAX)
        .saturating_add(added);
    let mut errors = Vec::new();
    let label = format!("project {project:?}");
    if Violations::new(&mut errors, "flags", label).count(&FLAGS_PER_PROJECT, "", total) {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}

/// Whether the operator `op` compiles its values as regexes.
pub fn is_regex(op: &str) -> bool {
    matches!(Op::parse(op), Op::RegexMatch | Op::RegexDoesNotMatch)
}

/// The length of `value` serialized as JSON, without building the text.
pub fn json_bytes<T: Serialize + ?Sized>(value: &T) -> usize {
    struct Counter(usize);
    impl io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Serializing a model type to a writer that never fails cannot fail either; were it to,
    // the count so far is still a lower bound of the size.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}
