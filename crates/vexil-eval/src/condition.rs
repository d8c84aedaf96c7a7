//! Conditions: the 20 operators with the reference engine's semantics (spec §4), prepared once at
//! compile time (sets hashed, numbers, versions and regexes parsed) and matched without
//! allocating for string props.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::sync::Arc;

use regex::{Regex, RegexBuilder};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::coerce::{coerce_string, coerce_string_list, string_list};
use crate::number::{java_compare, java_string_compare, parse_java_double, Version};
use crate::value::Value;

/// A condition operator. Unknown operator strings compile to [`Op::Unknown`], which never matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Is,
    IsNot,
    Contains,
    DoesNotContain,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    VersionLess,
    VersionLessOrEqual,
    VersionGreater,
    VersionGreaterOrEqual,
    RegexMatch,
    RegexDoesNotMatch,
    SetIs,
    SetIsNot,
    SetContains,
    SetDoesNotContain,
    SetContainsAny,
    SetDoesNotContainAny,
    Unknown,
}

impl Op {
    /// The operator for its wire name (`"set contains any"`, ...).
    pub fn parse(name: &str) -> Op {
        match name {
            "is" => Op::Is,
            "is not" => Op::IsNot,
            "contains" => Op::Contains,
            "does not contain" => Op::DoesNotContain,
            "less" => Op::Less,
            "less or equal" => Op::LessOrEqual,
            "greater" => Op::Greater,
            "greater or equal" => Op::GreaterOrEqual,
            "version less" => Op::VersionLess,
            "version less or equal" => Op::VersionLessOrEqual,
            "version greater" => Op::VersionGreater,
            "version greater or equal" => Op::VersionGreaterOrEqual,
            "regex match" => Op::RegexMatch,
            "regex does not match" => Op::RegexDoesNotMatch,
            "set is" => Op::SetIs,
            "set is not" => Op::SetIsNot,
            "set contains" => Op::SetContains,
            "set does not contain" => Op::SetDoesNotContain,
            "set contains any" => Op::SetContainsAny,
            "set does not contain any" => Op::SetDoesNotContainAny,
            _ => Op::Unknown,
        }
    }

    /// Every operator the engine knows, by wire name.
    pub const ALL: [&'static str; 20] = [
        "is",
        "is not",
        "contains",
        "does not contain",
        "less",
        "less or equal",
        "greater",
        "greater or equal",
        "version less",
        "version less or equal",
        "version greater",
        "version greater or equal",
        "regex match",
        "regex does not match",
        "set is",
        "set is not",
        "set contains",
        "set does not contain",
        "set contains any",
        "set does not contain any",
    ];

    fn is_set_op(self) -> bool {
        matches!(
            self,
            Op::SetIs
                | Op::SetIsNot
                | Op::SetContains
                | Op::SetDoesNotContain
                | Op::SetContainsAny
                | Op::SetDoesNotContainAny
        )
    }
}

/// A set of strings: a vector for the few values most conditions have, a hash set for the long
/// id lists of individual inclusions and cohorts.
#[derive(Debug, Clone)]
pub(crate) enum StrSet {
    Small(Vec<Box<str>>),
    Large(FxHashSet<Box<str>>),
}

const SMALL_SET: usize = 12;

impl StrSet {
    fn new(values: &[Box<str>]) -> StrSet {
        if values.len() <= SMALL_SET {
            StrSet::Small(values.to_vec())
        } else {
            StrSet::Large(values.iter().cloned().collect())
        }
    }

    #[inline]
    fn contains(&self, s: &str) -> bool {
        match self {
            StrSet::Small(v) => v.iter().any(|x| &**x == s),
            StrSet::Large(h) => h.contains(s),
        }
    }
}

/// Values prepared for the operator, parsed once at compile time.
#[derive(Debug, Clone)]
enum Prepared {
    /// `is`, `is not` and the set operators: the values as a set.
    Set(StrSet),
    /// `contains`, `does not contain`: the values lowercased.
    Lower(Vec<String>),
    /// Numeric operators: the values that parse as numbers.
    Numbers(Vec<f64>),
    /// Version operators: the values that parse as versions.
    Versions(Vec<Version>),
    /// Regex operators: the values that compile (invalid patterns match nothing).
    Regexes(Vec<Arc<Regex>>),
    /// Unknown operators.
    Nothing,
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub(crate) struct Condition {
    pub op: Op,
    /// The filter values, de-duplicated, in first-seen order.
    pub values: Vec<Box<str>>,
    /// `values` contains `(none)`.
    has_none: bool,
    /// Some value is `true` or `false` ignoring case (the boolean rule of `is`).
    has_bool: bool,
    prepared: Prepared,
}

/// A regex that did not compile, reported by [`Condition::new`] as a warning.
pub(crate) struct BadRegex {
    pub pattern: String,
    pub error: RegexError,
}

/// The longest pattern [`full_match_regex`] parses, in bytes. Real targeting patterns (emails,
/// versions, user agents, id prefixes) are tens of bytes; 4 KiB leaves room for long literal
/// alternations while keeping the parse, and the program it compiles to, small. A longer
/// pattern is refused before it is parsed.
pub const MAX_REGEX_PATTERN_BYTES: usize = 4 * 1024;

/// The most heap one compiled regex program may take (`RegexBuilder::size_limit`). 1 MiB holds
/// `\w{20}` (Unicode classes are large) or a 4 KiB literal several times over; the crate's
/// default of 10 MiB let one imported pattern cost hundreds of megabytes once it was compiled
/// into every deployment's snapshot. Compilation stops as soon as the limit is passed, so a
/// refused pattern is also cheap to refuse.
pub const REGEX_SIZE_LIMIT: usize = 1024 * 1024;

/// The most memory the lazy DFA of one compiled regex may cache per thread
/// (`RegexBuilder::dfa_size_limit`). Half the crate's default: patterns within the limits above
/// rarely need more, and one that does only falls back to a slower matcher, never fails.
pub const REGEX_DFA_SIZE_LIMIT: usize = 1024 * 1024;

/// Why [`full_match_regex`] did not compile a pattern.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegexError {
    /// The pattern is longer than [`MAX_REGEX_PATTERN_BYTES`]; it was not parsed.
    #[error("the pattern is {len} bytes long, at most {max}")]
    TooLong {
        /// The pattern's length in bytes.
        len: usize,
        /// [`MAX_REGEX_PATTERN_BYTES`].
        max: usize,
    },
    /// The compiled program would take more than [`REGEX_SIZE_LIMIT`] bytes.
    #[error("the compiled pattern would take more than {max} bytes")]
    TooLarge {
        /// The limit that was passed.
        max: usize,
    },
    /// The pattern is not valid in Rust's regex dialect (look-around and back-references, say).
    #[error(transparent)]
    Invalid(regex::Error),
}

/// The anchored form the engine compiles: the whole prop must match (spec §4.8). Patterns are
/// held to [`MAX_REGEX_PATTERN_BYTES`], [`REGEX_SIZE_LIMIT`] and [`REGEX_DFA_SIZE_LIMIT`], so
/// that no config, however it was made, can make a compiled flag set large.
pub fn full_match_regex(pattern: &str) -> Result<Regex, RegexError> {
    if pattern.len() > MAX_REGEX_PATTERN_BYTES {
        return Err(RegexError::TooLong {
            len: pattern.len(),
            max: MAX_REGEX_PATTERN_BYTES,
        });
    }
    RegexBuilder::new(&format!(r"\A(?:{pattern})\z"))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .build()
        .map_err(|err| match err {
            regex::Error::CompiledTooBig(max) => RegexError::TooLarge { max },
            other => RegexError::Invalid(other),
        })
}

/// The regexes of one flag set, compiled once per distinct pattern: a pattern repeated across
/// conditions and flags (an email domain, a build prefix) shares one compiled program. A
/// program is large (kilobytes, whatever the pattern), so a set of thousands of flags that
/// repeat a few patterns would otherwise hold thousands of copies. Sharing is safe: a `Regex`
/// keeps its per-thread search caches in a pool meant for concurrent use.
#[derive(Default)]
pub(crate) struct Regexes(FxHashMap<Box<str>, Result<Arc<Regex>, RegexError>>);

impl Regexes {
    /// The compiled `pattern` ([`full_match_regex`]), compiled on first use.
    fn get(&mut self, pattern: &str) -> Result<Arc<Regex>, RegexError> {
        if let Some(known) = self.0.get(pattern) {
            return known.clone();
        }
        let made = full_match_regex(pattern).map(Arc::new);
        self.0.insert(pattern.into(), made.clone());
        made
    }
}

impl Condition {
    #[cfg(test)]
    pub fn new(op: Op, raw_values: Vec<String>) -> (Condition, Vec<BadRegex>) {
        Condition::compile(op, raw_values, &mut Regexes::default())
    }

    /// The condition `op` over `raw_values`, its regexes taken from (and added to) `regexes`.
    pub fn compile(
        op: Op,
        raw_values: Vec<String>,
        regexes: &mut Regexes,
    ) -> (Condition, Vec<BadRegex>) {
        let mut values: Vec<Box<str>> = Vec::with_capacity(raw_values.len());
        let mut seen = FxHashSet::default();
        for v in raw_values {
            if seen.insert(v.clone()) {
                values.push(v.into());
            }
        }
        let has_none = values.iter().any(|v| &**v == "(none)");
        let has_bool = values.iter().any(|v| is_bool_like(v));
        let mut bad = Vec::new();
        let prepared = match op {
            Op::Is
            | Op::IsNot
            | Op::SetIs
            | Op::SetIsNot
            | Op::SetContains
            | Op::SetDoesNotContain
            | Op::SetContainsAny
            | Op::SetDoesNotContainAny => Prepared::Set(StrSet::new(&values)),
            Op::Contains | Op::DoesNotContain => {
                Prepared::Lower(values.iter().map(|v| v.to_lowercase()).collect())
            }
            Op::Less | Op::LessOrEqual | Op::Greater | Op::GreaterOrEqual => {
                Prepared::Numbers(values.iter().filter_map(|v| parse_java_double(v)).collect())
            }
            Op::VersionLess
            | Op::VersionLessOrEqual
            | Op::VersionGreater
            | Op::VersionGreaterOrEqual => {
                Prepared::Versions(values.iter().filter_map(|v| Version::parse(v)).collect())
            }
            Op::RegexMatch | Op::RegexDoesNotMatch => Prepared::Regexes(
                values
                    .iter()
                    .filter_map(|v| match regexes.get(v) {
                        Ok(r) => Some(r),
                        Err(error) => {
                            bad.push(BadRegex {
                                pattern: v.to_string(),
                                error,
                            });
                            None
                        }
                    })
                    .collect(),
            ),
            Op::Unknown => Prepared::Nothing,
        };
        (
            Condition {
                op,
                values,
                has_none,
                has_bool,
                prepared,
            },
            bad,
        )
    }

    /// `match_condition` of spec §4.1, given the selected prop.
    pub fn matches(&self, prop: Option<&Value>) -> bool {
        let Some(prop) = prop.filter(|p| !p.is_null()) else {
            return self.match_null();
        };
        if let Value::String(s) = prop {
            return self.matches_str(s);
        }
        // Only arrays and strings that look like JSON arrays can be lists; skip the list
        // coercion for every other prop.
        let may_be_list = match prop {
            Value::Array(_) => true,
            Value::String(s) => s.starts_with('['),
            _ => false,
        };
        if let (Value::Array(items), Op::SetContainsAny | Op::SetDoesNotContainAny) =
            (prop, self.op)
        {
            if let Some(any) = self.array_contains_any(items) {
                return any == (self.op == Op::SetContainsAny);
            }
        }
        if self.op.is_set_op() {
            return may_be_list
                && coerce_string_list(prop).is_some_and(|list| self.match_set(&list));
        }
        if may_be_list {
            if let Some(list) = coerce_string_list(prop) {
                return list.iter().any(|e| self.match_string(e));
            }
        }
        coerce_string(prop).is_some_and(|s| self.match_string(&s))
    }

    /// [`Condition::matches`] for a prop that is a string.
    pub fn matches_str(&self, prop: &str) -> bool {
        if prop.starts_with('[') {
            if let Some(list) = string_list(prop) {
                return if self.op.is_set_op() {
                    self.match_set(&list)
                } else {
                    list.iter().any(|e| self.match_string(e))
                };
            }
        }
        !self.op.is_set_op() && self.match_string(prop)
    }

    /// `set contains any` on an array prop without building its de-duplicated string list (the
    /// cohort check every inclusion segment makes). `None` when the boolean rule could apply,
    /// which needs the general path.
    fn array_contains_any(&self, items: &[Value]) -> Option<bool> {
        let Prepared::Set(values) = &self.prepared else {
            return Some(false);
        };
        if self.has_bool {
            return None;
        }
        let mut found = false;
        for item in items {
            if let Some(s) = coerce_string(item) {
                if is_bool_like(&s) {
                    return None;
                }
                found = found || values.contains(&s);
            }
        }
        Some(found)
    }

    /// Spec §4.4.
    fn match_null(&self) -> bool {
        match self.op {
            Op::Is
            | Op::Contains
            | Op::Less
            | Op::LessOrEqual
            | Op::Greater
            | Op::GreaterOrEqual
            | Op::VersionLess
            | Op::VersionLessOrEqual
            | Op::VersionGreater
            | Op::VersionGreaterOrEqual
            | Op::SetIs
            | Op::SetContains
            | Op::SetContainsAny => self.has_none,
            Op::IsNot | Op::DoesNotContain | Op::SetDoesNotContain | Op::SetDoesNotContainAny => {
                !self.has_none
            }
            Op::RegexDoesNotMatch | Op::SetIsNot => true,
            Op::RegexMatch | Op::Unknown => false,
        }
    }

    /// Spec §4.5, string props.
    fn match_string(&self, p: &str) -> bool {
        match (self.op, &self.prepared) {
            (Op::Is, Prepared::Set(set)) => self.matches_is(p, set),
            (Op::IsNot, Prepared::Set(set)) => !self.matches_is(p, set),
            (Op::Contains, Prepared::Lower(lower)) => matches_contains(p, lower),
            (Op::DoesNotContain, Prepared::Lower(lower)) => !matches_contains(p, lower),
            (op, Prepared::Numbers(numbers)) => match parse_java_double(p) {
                Some(n) if !numbers.is_empty() => {
                    numbers.iter().any(|v| holds(op, java_compare(n, *v)))
                }
                _ => self.string_fallback(p),
            },
            (op, Prepared::Versions(versions)) => match Version::parse(p) {
                Some(version) if !versions.is_empty() => {
                    versions.iter().any(|v| holds(op, version.cmp(v)))
                }
                _ => self.string_fallback(p),
            },
            (Op::RegexMatch, Prepared::Regexes(regexes)) => regexes.iter().any(|r| r.is_match(p)),
            (Op::RegexDoesNotMatch, Prepared::Regexes(regexes)) => {
                !regexes.iter().any(|r| r.is_match(p))
            }
            _ => false,
        }
    }

    /// The `is` rule: exact, except that boolean-like props and values compare ignoring case.
    fn matches_is(&self, p: &str, set: &StrSet) -> bool {
        if self.has_bool && is_bool_like(p) {
            return self.values.iter().any(|v| v.eq_ignore_ascii_case(p));
        }
        set.contains(p)
    }

    /// Comparison of `p` as a string against every original value (spec §4.6 step 2).
    fn string_fallback(&self, p: &str) -> bool {
        self.values
            .iter()
            .any(|v| holds(self.op, java_string_compare(p, v)))
    }

    /// Set operators on the prop list (spec §4.5).
    fn match_set(&self, props: &[Cow<'_, str>]) -> bool {
        let Prepared::Set(values) = &self.prepared else {
            return false;
        };
        match self.op {
            Op::SetIs => self.set_equals(props, values),
            Op::SetIsNot => !self.set_equals(props, values),
            Op::SetContains => self.set_contains_all(props),
            Op::SetDoesNotContain => !self.set_contains_all(props),
            Op::SetContainsAny => self.set_contains_any(props, values),
            Op::SetDoesNotContainAny => !self.set_contains_any(props, values),
            _ => false,
        }
    }

    fn set_equals(&self, props: &[Cow<'_, str>], values: &StrSet) -> bool {
        // Both sides are de-duplicated, so equal sizes and inclusion mean equal sets.
        props.len() == self.values.len() && props.iter().all(|p| values.contains(p))
    }

    /// Every value is-matches the prop list (the prop list playing the values' part).
    fn set_contains_all(&self, props: &[Cow<'_, str>]) -> bool {
        if props.len() < self.values.len() {
            return false;
        }
        let props_have_bool = props.iter().any(|p| is_bool_like(p));
        self.values
            .iter()
            .all(|v| is_in_props(v, props, props_have_bool))
    }

    fn set_contains_any(&self, props: &[Cow<'_, str>], values: &StrSet) -> bool {
        let props_have_bool = props.iter().any(|p| is_bool_like(p));
        if !props_have_bool && !self.has_bool {
            // No boolean rule can apply: a plain intersection test, driven by the shorter side.
            return if props.len() <= self.values.len() {
                props.iter().any(|p| values.contains(p))
            } else {
                self.values.iter().any(|v| props.iter().any(|p| p == &**v))
            };
        }
        self.values
            .iter()
            .any(|v| is_in_props(v, props, props_have_bool))
    }
}

/// The `is` rule with `v` as the prop and `props` as the values.
fn is_in_props(v: &str, props: &[Cow<'_, str>], props_have_bool: bool) -> bool {
    if props_have_bool && is_bool_like(v) {
        return props.iter().any(|p| p.eq_ignore_ascii_case(v));
    }
    props.iter().any(|p| p == v)
}

fn is_bool_like(s: &str) -> bool {
    s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false")
}

fn matches_contains(p: &str, lower_values: &[String]) -> bool {
    // ASCII (most props): compare ignoring case in place, without lowering a copy of `p`.
    if p.is_ascii() {
        let p = p.as_bytes();
        return lower_values.iter().any(|v| {
            let v = v.as_bytes();
            v.is_empty() || p.windows(v.len()).any(|w| w.eq_ignore_ascii_case(v))
        });
    }
    let lower = p.to_lowercase();
    lower_values.iter().any(|v| lower.contains(v.as_str()))
}

fn holds(op: Op, ord: Ordering) -> bool {
    match op {
        Op::Less | Op::VersionLess => ord == Ordering::Less,
        Op::LessOrEqual | Op::VersionLessOrEqual => ord != Ordering::Greater,
        Op::Greater | Op::VersionGreater => ord == Ordering::Greater,
        Op::GreaterOrEqual | Op::VersionGreaterOrEqual => ord != Ordering::Less,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row: operator, filter values, prop as JSON (`None` = missing), expected match.
    type Row = (
        &'static str,
        &'static [&'static str],
        Option<&'static str>,
        bool,
    );

    /// The operator rows of spec §8 and §4, including the Kotlin-specific ones (KT).
    const ROWS: &[Row] = &[
        ("is", &["true"], Some(r#""TRUE""#), true),
        ("is", &["yes"], Some(r#""Yes""#), false),
        ("is not", &["x"], None, true),
        ("is", &["(none)"], None, true),
        ("is not", &["(none)"], None, false),
        ("contains", &["ELL"], Some(r#""Hello""#), true),
        ("greater", &["9"], Some(r#""10""#), true),
        ("greater", &["9"], Some("10"), true),
        ("greater", &["x", "3"], Some(r#""5""#), true),
        ("less", &["x", "3"], Some(r#""5""#), false),
        ("version greater", &["1.9"], Some(r#""1.10""#), true),
        ("version less", &["1.2.3"], Some(r#""1.2.3-alpha""#), true),
        (
            "version less",
            &["1.0.0-alpha.9"],
            Some(r#""1.0.0-alpha.10""#),
            true,
        ),
        (
            "set contains any",
            &["c2", "c9"],
            Some(r#"["c1","c2"]"#),
            true,
        ),
        (
            "set contains",
            &["a", "b", "c"],
            Some(r#"["a","b"]"#),
            false,
        ),
        ("set is", &["b", "a"], Some(r#"["a","b"]"#), true),
        ("is not", &["a"], Some(r#"["a","b"]"#), true),
        ("is not", &["a"], Some("[]"), false),
        ("set does not contain any", &["a"], Some("[]"), true),
        ("set contains any", &["b"], Some(r#""[\"a\",\"b\"]""#), true),
        ("is", &["a"], Some(r#""[\"a\",\"b\"]""#), true),
        ("set contains any", &["a"], Some(r#""a""#), false),
        ("set does not contain any", &["b"], Some(r#""a""#), false),
        ("less", &["b"], Some(r#""abc""#), true),
        ("version greater", &["1.9.0"], Some(r#""1.10.0+b""#), true),
        ("regex match", &["world"], Some(r#""hello world""#), false),
        ("regex match", &["hello.*"], Some(r#""hello world""#), true),
        ("regex match", &["(unclosed"], Some(r#""(unclosed""#), false),
        ("regex does not match", &["(unclosed"], Some(r#""x""#), true),
        ("set is not", &["a"], None, true),
        ("regex does not match", &["a"], None, true),
        ("regex match", &["a"], None, false),
        ("is", &["3"], Some("3.0"), false),
        ("is", &["3"], Some("3"), true),
        ("is", &["True"], Some("true"), true),
        ("is", &["0"], Some("-0"), true),
        ("is", &["-0.0"], Some("-0.0"), true),
        ("is", &["[broken"], Some(r#""[broken""#), true),
        ("is", &["[beta]"], Some(r#""[beta]""#), false),
        ("less", &["0x10"], Some(r#""5""#), false),
        ("less", &["1e3"], Some(r#""999""#), true),
        ("greater", &["NaN"], Some(r#""Infinity""#), false),
        ("greater or equal", &["NaN"], Some(r#""NaN""#), true),
        ("less", &["0"], Some(r#""-0.0""#), true),
        ("less or equal", &["b"], Some(r#""b""#), true),
        ("set contains", &["TRUE"], Some("[true, 1]"), true),
        ("set contains", &["a", "a"], Some(r#"["a"]"#), true),
        ("set is", &[], Some("[]"), true),
        ("set is", &["a"], Some(r#""a""#), false),
        ("glob match", &["a"], Some(r#""a""#), false),
        ("glob match", &["(none)"], None, false),
        ("contains", &["ΣΑΣ"], Some(r#""ΌΣΑΣ""#), true),
        ("is", &["{\"a\":1.0}"], Some(r#"{"a":1.0}"#), true),
    ];

    #[test]
    fn operator_table() {
        for (op, values, prop, expected) in ROWS {
            let (condition, _) = Condition::new(
                Op::parse(op),
                values.iter().map(|s| s.to_string()).collect(),
            );
            let prop = prop.map(|p| Value::from_json_str(p).unwrap());
            assert_eq!(
                condition.matches(prop.as_ref()),
                *expected,
                "{op} {values:?} on {prop:?}"
            );
        }
    }

    #[test]
    fn long_value_lists_use_a_hash_set() {
        let ids: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
        let (condition, _) = Condition::new(Op::Is, ids);
        assert!(matches!(
            condition.prepared,
            Prepared::Set(StrSet::Large(_))
        ));
        assert!(condition.matches(Some(&Value::from("user-999"))));
        assert!(!condition.matches(Some(&Value::from("user-1000"))));
    }

    #[test]
    fn invalid_regexes_are_reported() {
        let (_, bad) = Condition::new(Op::RegexMatch, vec!["ok".into(), "(?<=x)y".into()]);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].pattern, "(?<=x)y");
    }

    #[test]
    fn a_repeated_pattern_is_compiled_once_per_set() {
        let mut regexes = Regexes::default();
        let mut compile = |values: &[&str]| {
            let values = values.iter().map(|v| v.to_string()).collect();
            let (condition, bad) = Condition::compile(Op::RegexMatch, values, &mut regexes);
            match condition.prepared {
                Prepared::Regexes(r) => (r, bad.len()),
                _ => panic!("a regex condition prepares regexes"),
            }
        };
        let (first, _) = compile(&[".*@example\\.com", "a+"]);
        let (second, _) = compile(&["a+", "b+", ".*@example\\.com"]);
        assert!(Arc::ptr_eq(&first[0], &second[2]));
        assert!(Arc::ptr_eq(&first[1], &second[0]));
        assert!(!Arc::ptr_eq(&first[1], &second[1]));
        // A bad pattern is refused every time it appears, not only the first.
        assert_eq!(compile(&["(?<=x)y"]).1, 1);
        assert_eq!(compile(&["(?<=x)y"]).1, 1);
        // Sharing changes nothing of what matches.
        assert!(second[2].is_match("ann@example.com") && !second[2].is_match("ann@example.org"));
    }

    #[test]
    fn regexes_are_held_to_the_limits() {
        let at_limit = "a".repeat(MAX_REGEX_PATTERN_BYTES);
        let over = "a".repeat(MAX_REGEX_PATTERN_BYTES + 1);
        // (pattern, what full_match_regex gives: "ok", "too long", "too large" or "invalid")
        let cases: [(&str, &str); 6] = [
            (&at_limit, "ok"),
            (&over, "too long"),
            (r"\w{10}", "ok"),
            (r"\w{1000}", "too large"),
            (r"(?:a{100}){1000}", "too large"),
            ("(?<=x)y", "invalid"),
        ];
        for (pattern, expected) in cases {
            let got = match full_match_regex(pattern) {
                Ok(_) => "ok",
                Err(RegexError::TooLong { len, max }) => {
                    assert_eq!((len, max), (pattern.len(), MAX_REGEX_PATTERN_BYTES));
                    "too long"
                }
                Err(RegexError::TooLarge { max }) => {
                    assert_eq!(max, REGEX_SIZE_LIMIT);
                    "too large"
                }
                Err(RegexError::Invalid(_)) => "invalid",
            };
            assert_eq!(got, expected, "{}", &pattern[..pattern.len().min(40)]);
        }
        // A pattern over a limit compiles to nothing: a warning, and the condition never matches.
        let (condition, bad) = Condition::new(Op::RegexMatch, vec![over.clone()]);
        assert_eq!(bad.len(), 1);
        assert!(!condition.matches(Some(&Value::from(over.as_str()))));
    }
}
