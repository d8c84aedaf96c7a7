//! Compiling flag configs into the form the engine evaluates: variant keys resolved to indexes,
//! selectors classified, condition values parsed once, dependency order computed once.

use rustc_hash::FxHashMap;

use crate::condition::{Condition, Op, Regexes};
use crate::model::{ConditionConfig, FlagConfig, SegmentConfig};
use crate::results::{Entry, VariantResult};
use crate::value::Value;

/// A set of compiled flags, ready to evaluate. Immutable; share it behind an `Arc`.
#[derive(Debug, Clone)]
pub struct FlagSet {
    pub(crate) flags: Vec<Flag>,
    pub(crate) by_key: FxHashMap<Box<str>, usize>,
    /// Evaluation order of all flags (spec §6), or the cycle that prevents one.
    pub(crate) full_order: Result<Vec<usize>, CycleError>,
    /// Some condition reads `["result", ...]`, so evaluation keeps a result index per flag.
    pub(crate) reads_results: bool,
    /// How many distinct `context` paths the selectors read (their `slot`s).
    pub(crate) context_slots: usize,
    warnings: Vec<Warning>,
}

/// Why a config was refused: the flag, the JSON path of the fault, and what is wrong there.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The JSON does not have the shape of an array of flag configs.
    #[error("{}{path}: invalid flag config", flag_prefix(flag_key.as_deref()))]
    Invalid {
        /// Key of the flag holding the fault, when it has one.
        flag_key: Option<String>,
        /// JSON path of the fault, e.g. `[3].segments[0].bucket.salt`.
        path: String,
        /// What serde_json found there.
        #[source]
        source: serde_json::Error,
    },
    /// Two flags share a key.
    #[error("flag {key:?}: {path}: duplicate flag key (also at index {first})")]
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// Path of the second occurrence.
        path: String,
        /// Index of the first occurrence.
        first: usize,
    },
}

fn flag_prefix(key: Option<&str>) -> String {
    key.map(|k| format!("flag {k:?}: ")).unwrap_or_default()
}

/// Something in a config that evaluates without error but is probably not what its author
/// meant: an invalid regex (matches nothing), an unknown operator (never matches), a variant
/// key that does not exist (falls through), a dependency that is not in the set (ignored).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    /// The flag concerned.
    pub flag_key: String,
    /// JSON path inside the array of configs.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// An evaluation order computed once by [`FlagSet::plan`], for [`crate::evaluate_plan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub(crate) order: Vec<usize>,
}

impl Plan {
    /// The flag indexes in evaluation order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

/// A dependency cycle: evaluation of every flag that reaches it fails (spec §6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Detected a cycle between flags [{}]", flags.join(", "))]
pub struct CycleError {
    /// The flags on the dependency path when the cycle closed, in path order.
    pub flags: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Flag {
    pub config: FlagConfig,
    /// Variant keys as returned to callers (`variant.key`, else the map key), by index.
    pub variant_keys: Vec<Box<str>>,
    pub segments: Vec<Segment>,
    /// Resolved dependencies, de-duplicated, in order; missing ones dropped.
    pub dependencies: Vec<usize>,
}

#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub conditions: Option<Vec<Vec<CompiledCondition>>>,
    pub bucket: Option<Bucket>,
    /// `segment.variant`: `None` when absent.
    pub variant: Option<VariantRef>,
    pub name: Option<Box<str>>,
}

/// A variant named by a segment or distribution; `index` is `None` when the flag has no such
/// variant (the segment then falls through).
#[derive(Debug, Clone)]
pub(crate) struct VariantRef {
    pub key: Box<str>,
    pub index: Option<usize>,
}

#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    pub selector: Selector,
    /// `salt + "/"`, the hashed prefix.
    pub prefix: Box<[u8]>,
    pub allocations: Vec<Allocation>,
}

#[derive(Debug, Clone)]
pub(crate) struct Allocation {
    pub start: i64,
    pub end: i64,
    pub distributions: Vec<Distribution>,
}

#[derive(Debug, Clone)]
pub(crate) struct Distribution {
    pub start: i64,
    pub end: i64,
    pub variant: VariantRef,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledCondition {
    pub selector: Selector,
    pub condition: Condition,
}

/// Where a selector points, resolved at compile time.
#[derive(Debug, Clone)]
pub(crate) enum Selector {
    /// Always null: empty, or a root other than `context` / `result`.
    Null,
    /// A path below `context` (empty: the whole context). `slot` numbers the distinct paths of
    /// the set, so evaluation walks each path once per user whatever the number of conditions
    /// that read it.
    Context { path: Box<[Box<str>]>, slot: u32 },
    /// `["result"]`: every result so far.
    AllResults,
    /// `["result", flag, path...]`; `flag` is `None` when no flag of the set has that key.
    Result {
        flag: Option<usize>,
        path: Box<[Box<str>]>,
    },
}

impl Selector {
    fn compile(raw: &[String], by_key: &FxHashMap<Box<str>, usize>) -> Selector {
        let path = |rest: &[String]| rest.iter().map(|s| s.as_str().into()).collect();
        match raw {
            [root, rest @ ..] if root == "context" => Selector::Context {
                path: path(rest),
                slot: 0,
            },
            [root] if root == "result" => Selector::AllResults,
            [root, flag, rest @ ..] if root == "result" => Selector::Result {
                flag: by_key.get(flag.as_str()).copied(),
                path: path(rest),
            },
            _ => Selector::Null,
        }
    }

    pub fn reads_results(&self) -> bool {
        matches!(self, Selector::AllResults | Selector::Result { .. })
    }
}

/// Gives every `context` selector the slot of its path (equal paths, equal slots); returns the
/// number of slots.
fn number_context_paths(flags: &mut [Flag]) -> usize {
    let mut slots: FxHashMap<Box<[Box<str>]>, u32> = FxHashMap::default();
    let selectors = flags.iter_mut().flat_map(|f| {
        f.segments.iter_mut().flat_map(|s| {
            let buckets = s.bucket.iter_mut().map(|b| &mut b.selector);
            let conditions = s
                .conditions
                .iter_mut()
                .flatten()
                .flatten()
                .map(|c| &mut c.selector);
            buckets.chain(conditions)
        })
    });
    for selector in selectors {
        if let Selector::Context { path, slot } = selector {
            let next = u32::try_from(slots.len()).unwrap_or(u32::MAX);
            *slot = *slots.entry(path.clone()).or_insert(next);
        }
    }
    slots.len()
}

impl FlagSet {
    /// Parses and compiles the JSON array `/sdk/v2/flags` serves.
    pub fn from_json(text: &str) -> Result<FlagSet, CompileError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let configs = match serde_path_to_error::deserialize::<_, Vec<FlagConfig>>(&mut de) {
            Ok(configs) => configs,
            Err(err) => {
                let path = err.path().to_string();
                let flag_key = flag_key_at(text, err.path());
                return Err(CompileError::Invalid {
                    flag_key,
                    path,
                    source: err.into_inner(),
                });
            }
        };
        de.end().map_err(|source| CompileError::Invalid {
            flag_key: None,
            path: ".".into(),
            source,
        })?;
        FlagSet::compile(configs)
    }

    /// Compiles configs that are already deserialized.
    pub fn compile(configs: Vec<FlagConfig>) -> Result<FlagSet, CompileError> {
        let mut by_key: FxHashMap<Box<str>, usize> = FxHashMap::default();
        for (i, config) in configs.iter().enumerate() {
            if let Some(&first) = by_key.get(config.key.as_str()) {
                return Err(CompileError::DuplicateKey {
                    key: config.key.clone(),
                    path: format!("[{i}].key"),
                    first,
                });
            }
            by_key.insert(config.key.as_str().into(), i);
        }
        let mut warnings = Vec::new();
        let mut regexes = Regexes::default();
        let mut flags: Vec<Flag> = configs
            .into_iter()
            .enumerate()
            .map(|(i, config)| compile_flag(i, config, &by_key, &mut regexes, &mut warnings))
            .collect();
        let context_slots = number_context_paths(&mut flags);
        let reads_results = flags.iter().any(|f| {
            f.segments.iter().any(|s| {
                s.bucket
                    .as_ref()
                    .is_some_and(|b| b.selector.reads_results())
                    || s.conditions
                        .iter()
                        .flatten()
                        .flatten()
                        .any(|c| c.selector.reads_results())
            })
        });
        let mut set = FlagSet {
            flags,
            by_key,
            full_order: Ok(Vec::new()),
            reads_results,
            context_slots,
            warnings,
        };
        set.full_order = set.order(&[] as &[&str]);
        Ok(set)
    }

    /// Drops from the kept configs what evaluation reads only in compiled form: each
    /// segment's `conditions` and `bucket`. Results still borrow values, payloads and metadata
    /// from the configs, and evaluate the same; what changes is that [`FlagSet::configs`] and
    /// [`FlagSet::get`] then give configs without conditions or buckets, and [`crate::explain`]
    /// explains no condition or bucket. For a set that is only evaluated and kept for long (a
    /// server's snapshot, which keeps the JSON it serves apart): with realistic flags the
    /// configs are most of a compiled set's memory, and half of that is these two parts.
    pub fn shed_rules(&mut self) {
        for flag in &mut self.flags {
            for segment in &mut flag.config.segments {
                segment.conditions = None;
                segment.bucket = None;
            }
            flag.config.segments.shrink_to_fit();
        }
    }

    /// Things in the configs that evaluate but are probably mistakes.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Number of flags.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// True when the set has no flags.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// The flag configs, in the order given.
    pub fn configs(&self) -> impl ExactSizeIterator<Item = &FlagConfig> {
        self.flags.iter().map(|f| &f.config)
    }

    /// The config of flag `key`.
    pub fn get(&self, key: &str) -> Option<&FlagConfig> {
        self.by_key.get(key).map(|&i| &self.flags[i].config)
    }

    /// The index of flag `key` in the order the configs were given.
    pub fn index_of(&self, key: &str) -> Option<usize> {
        self.by_key.get(key).copied()
    }

    /// The evaluation order for `flag_keys` (all flags when empty) and their ancestors,
    /// computed once so that callers evaluating the same keys many times (a server serving one
    /// deployment) do not sort on every call. Use it only with this set.
    pub fn plan<K: AsRef<str>>(&self, flag_keys: &[K]) -> Result<Plan, CycleError> {
        Ok(Plan {
            order: self.order(flag_keys)?,
        })
    }

    /// The same plan over flags given by index (as [`FlagSet::index_of`] returns); indexes out
    /// of range are ignored.
    pub fn plan_indexes(&self, roots: &[usize]) -> Result<Plan, CycleError> {
        let keys: Vec<&str> = roots
            .iter()
            .filter_map(|&i| self.flags.get(i))
            .map(|f| f.config.key.as_str())
            .collect();
        if keys.is_empty() {
            return Ok(Plan { order: Vec::new() });
        }
        self.plan(&keys)
    }

    /// Every (segment index, variant index) that can be flag `flag`'s result: each segment's
    /// own variant and the variants of its distributions, where the flag has them. Lets a
    /// caller prepare output for every possible result once ([`FlagSet::result_at`]).
    pub fn possible_results(&self, flag: usize) -> Vec<(usize, usize)> {
        let Some(flag) = self.flags.get(flag) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (index, segment) in flag.segments.iter().enumerate() {
            let distributed = segment
                .bucket
                .iter()
                .flat_map(|b| b.allocations.iter())
                .flat_map(|a| a.distributions.iter())
                .map(|d| &d.variant);
            for variant in segment.variant.iter().chain(distributed) {
                if let Some(v) = variant.index {
                    if !out.contains(&(index, v)) {
                        out.push((index, v));
                    }
                }
            }
        }
        out
    }

    /// The result flag `flag` gives when segment `segment` yields variant `variant` (indexes
    /// as in [`VariantResult::flag_index`]), as if evaluated without bucketing; `None` when an
    /// index is out of range.
    pub fn result_at(
        &self,
        flag: usize,
        segment: usize,
        variant: usize,
    ) -> Option<VariantResult<'_>> {
        let f = self.flags.get(flag)?;
        if segment >= f.segments.len() || variant >= f.variant_keys.len() {
            return None;
        }
        Some(VariantResult::new(
            self,
            Entry {
                flag,
                segment,
                variant,
                bucketed: false,
                missing_bucket_value: false,
            },
        ))
    }

    /// The evaluation order (spec §6): every flag once, dependencies first. With `flag_keys`
    /// non-empty, only those flags and their ancestors; unknown keys are ignored.
    pub(crate) fn order<K: AsRef<str>>(&self, flag_keys: &[K]) -> Result<Vec<usize>, CycleError> {
        let mut emitted = vec![false; self.flags.len()];
        let mut on_path = vec![false; self.flags.len()];
        let mut path = Vec::new();
        let mut out = Vec::with_capacity(if flag_keys.is_empty() {
            self.flags.len()
        } else {
            flag_keys.len()
        });
        if flag_keys.is_empty() {
            for start in 0..self.flags.len() {
                self.visit(start, &mut emitted, &mut on_path, &mut path, &mut out)?;
            }
        } else {
            for key in flag_keys {
                if let Some(&start) = self.by_key.get(key.as_ref()) {
                    self.visit(start, &mut emitted, &mut on_path, &mut path, &mut out)?;
                }
            }
        }
        Ok(out)
    }

    /// Depth-first visit from `start`, iterative so that long dependency chains cannot
    /// overflow the stack. `stack` holds the path: each flag with its next dependency to visit.
    fn visit(
        &self,
        start: usize,
        emitted: &mut [bool],
        on_path: &mut [bool],
        stack: &mut Vec<(usize, usize)>,
        out: &mut Vec<usize>,
    ) -> Result<(), CycleError> {
        if emitted[start] {
            return Ok(());
        }
        on_path[start] = true;
        stack.push((start, 0));
        while let Some((flag, next)) = stack.last_mut() {
            let flag = *flag;
            match self.flags[flag].dependencies.get(*next) {
                Some(&dependency) => {
                    *next += 1;
                    if on_path[dependency] {
                        let flags = stack
                            .iter()
                            .map(|&(i, _)| self.flags[i].config.key.clone())
                            .collect();
                        stack.clear();
                        return Err(CycleError { flags });
                    }
                    if !emitted[dependency] {
                        on_path[dependency] = true;
                        stack.push((dependency, 0));
                    }
                }
                None => {
                    stack.pop();
                    on_path[flag] = false;
                    emitted[flag] = true;
                    out.push(flag);
                }
            }
        }
        Ok(())
    }
}

/// The key of the flag that a failed path points into, read leniently from the raw text.
fn flag_key_at(text: &str, path: &serde_path_to_error::Path) -> Option<String> {
    let serde_path_to_error::Segment::Seq { index } = path.iter().next()? else {
        return None;
    };
    let all: Vec<serde_json::Value> = serde_json::from_str(text).ok()?;
    all.get(*index)?.get("key")?.as_str().map(str::to_owned)
}

fn compile_flag(
    index: usize,
    config: FlagConfig,
    by_key: &FxHashMap<Box<str>, usize>,
    regexes: &mut Regexes,
    warnings: &mut Vec<Warning>,
) -> Flag {
    let mut warn = |path: String, message: String| {
        warnings.push(Warning {
            flag_key: config.key.clone(),
            path: format!("[{index}]{path}"),
            message,
        });
    };
    let variant_keys: Vec<Box<str>> = config
        .variants
        .iter()
        .map(|(map_key, v)| v.key.as_deref().unwrap_or(map_key).into())
        .collect();
    let resolve = |key: &str| VariantRef {
        key: key.into(),
        index: config.variants.0.iter().position(|(k, _)| k == key),
    };

    let mut dependencies = Vec::new();
    for (d, dep) in config.dependencies.iter().flatten().enumerate() {
        match by_key.get(dep.as_str()) {
            Some(&i) if !dependencies.contains(&i) => dependencies.push(i),
            Some(_) => {}
            None => warn(
                format!(".dependencies[{d}]"),
                format!("flag {dep:?} is not in the set; the dependency is ignored"),
            ),
        }
    }

    let segments = config
        .segments
        .iter()
        .enumerate()
        .map(|(s, segment)| {
            compile_segment(
                segment,
                &format!(".segments[{s}]"),
                by_key,
                &resolve,
                regexes,
                &mut warn,
            )
        })
        .collect();
    Flag {
        variant_keys,
        segments,
        dependencies,
        config,
    }
}

fn compile_segment(
    segment: &SegmentConfig,
    path: &str,
    by_key: &FxHashMap<Box<str>, usize>,
    resolve: &dyn Fn(&str) -> VariantRef,
    regexes: &mut Regexes,
    warn: &mut dyn FnMut(String, String),
) -> Segment {
    let mut check = |r: VariantRef, at: String| {
        if r.index.is_none() {
            warn(
                at,
                format!(
                    "variant {:?} does not exist; users reaching it fall through",
                    r.key
                ),
            );
        }
        r
    };
    let variant = segment
        .variant
        .as_deref()
        .map(|k| check(resolve(k), format!("{path}.variant")));
    let bucket = segment.bucket.as_ref().map(|b| Bucket {
        selector: Selector::compile(&b.selector, by_key),
        prefix: format!("{}/", b.salt).into_bytes().into(),
        allocations: b
            .allocations
            .iter()
            .enumerate()
            .map(|(a, alloc)| Allocation {
                start: alloc.range[0],
                end: alloc.range[1],
                distributions: alloc
                    .distributions
                    .iter()
                    .enumerate()
                    .map(|(d, dist)| Distribution {
                        start: dist.range[0],
                        end: dist.range[1],
                        variant: check(
                            resolve(&dist.variant),
                            format!("{path}.bucket.allocations[{a}].distributions[{d}].variant"),
                        ),
                    })
                    .collect(),
            })
            .collect(),
    });
    let conditions = segment.conditions.as_ref().map(|groups| {
        groups
            .iter()
            .enumerate()
            .map(|(g, group)| {
                group
                    .iter()
                    .enumerate()
                    .map(|(c, cond)| {
                        compile_condition(
                            cond,
                            &format!("{path}.conditions[{g}][{c}]"),
                            by_key,
                            regexes,
                            warn,
                        )
                    })
                    .collect()
            })
            .collect()
    });
    let name = segment
        .metadata
        .as_ref()
        .and_then(|m| m.get("segmentName"))
        .and_then(Value::as_str)
        .map(Into::into);
    Segment {
        conditions,
        bucket,
        variant,
        name,
    }
}

fn compile_condition(
    config: &ConditionConfig,
    path: &str,
    by_key: &FxHashMap<Box<str>, usize>,
    regexes: &mut Regexes,
    warn: &mut dyn FnMut(String, String),
) -> CompiledCondition {
    let op = Op::parse(&config.op);
    if op == Op::Unknown {
        warn(
            format!("{path}.op"),
            format!("unknown operator {:?} never matches", config.op),
        );
    }
    let (condition, bad_regexes) = Condition::compile(op, config.values.clone(), regexes);
    for bad in bad_regexes {
        warn(
            format!("{path}.values"),
            format!(
                "regex {:?} does not compile and matches nothing: {}",
                bad.pattern, bad.error
            ),
        );
    }
    CompiledCondition {
        selector: Selector::compile(&config.selector, by_key),
        condition,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_name_the_flag_and_the_path() {
        let cases = [
            (r#"[{"key":"a","variants":{},"segments":[{"bucket":{"selector":[],"allocations":[]}}]}]"#, "flag \"a\": [0].segments[0].bucket: missing field `salt`"),
            (r#"[{"key":"a","variants":{},"segments":[]},{"key":"b","variants":{},"segments":[{"conditions":[[{"selector":["x"],"op":"is","values":[{}]}]]}]}]"#, "flag \"b\": [1].segments[0].conditions[0][0].values[0]: condition values must be strings"),
            (r#"[{"key":"a","variants":{"on":{"key":"on"}},"segments":[{"bucket":{"selector":[],"salt":"s","allocations":[{"range":[0],"distributions":[]}]}}]}]"#, "flag \"a\": [0].segments[0].bucket.allocations[0].range: invalid length 1"),
            (r#"[{"variants":{},"segments":[]}]"#, "[0]: missing field `key`"),
            (r#"{"key":"a"}"#, ".: invalid type: map, expected a sequence"),
            (r#"[] x"#, ".: trailing characters"),
            (r#"[{"key":"a","variants":{},"segments":[]},{"key":"a","variants":{},"segments":[]}]"#, "flag \"a\": [1].key: duplicate flag key (also at index 0)"),
        ];
        for (json, expected) in cases {
            // The path is in the message, the detail in the source chain.
            let err = FlagSet::from_json(json).unwrap_err();
            let err = match std::error::Error::source(&err) {
                Some(source) => format!(
                    "{}: {source}",
                    err.to_string().trim_end_matches(": invalid flag config")
                ),
                None => err.to_string(),
            };
            assert!(
                err.starts_with(expected),
                "{json}\n  got: {err}\n want: {expected}"
            );
        }
    }

    #[test]
    fn odd_but_valid_configs_compile_with_warnings() {
        let json = r#"[{"key":"a","dependencies":["ghost"],"variants":{"on":{"value":"on"}},"segments":[
            {"variant":"nope","conditions":[[{"selector":["context","user","x"],"op":"glob","values":[1, true, 2.5]}],
                                           [{"selector":["context","user","x"],"op":"regex match","values":["(?=x)"]}]]}]}]"#;
        let set = FlagSet::from_json(json).unwrap();
        let messages: Vec<_> = set
            .warnings()
            .iter()
            .map(|w| format!("{} {}", w.path, w.message))
            .collect();
        assert_eq!(messages.len(), 4, "{messages:#?}");
        assert!(messages[0].starts_with("[0].dependencies[0] flag \"ghost\""));
        assert!(messages
            .iter()
            .any(|m| m.starts_with("[0].segments[0].variant variant \"nope\"")));
        assert!(messages.iter().any(
            |m| m.starts_with("[0].segments[0].conditions[0][0].op unknown operator \"glob\"")
        ));
        assert!(messages
            .iter()
            .any(|m| m.starts_with("[0].segments[0].conditions[1][0].values regex \"(?=x)\"")));
        assert_eq!(&*set.flags[0].variant_keys[0], "on");
        let cond = &set.flags[0].segments[0].conditions.as_ref().unwrap()[0][0].condition;
        assert_eq!(
            cond.values.iter().map(|v| &**v).collect::<Vec<_>>(),
            ["1", "true", "2.5"]
        );
    }

    #[test]
    fn order_puts_ancestors_first_and_reports_cycles() {
        let flag = |key: &str, deps: &[&str]| {
            format!(r#"{{"key":"{key}","variants":{{}},"segments":[],"dependencies":{deps:?}}}"#)
        };
        let json = format!(
            "[{},{},{},{}]",
            flag("c", &["b"]),
            flag("b", &["a", "zz"]),
            flag("a", &[]),
            flag("zz", &[])
        );
        let set = FlagSet::from_json(&json).unwrap();
        let keys = |order: Vec<usize>| {
            order
                .into_iter()
                .map(|i| set.flags[i].config.key.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(set.order(&["c"]).unwrap()), ["a", "zz", "b", "c"]);
        assert_eq!(keys(set.order(&["a", "missing"]).unwrap()), ["a"]);
        assert_eq!(keys(set.full_order.clone().unwrap()), ["a", "zz", "b", "c"]);

        let json = format!(
            "[{},{},{}]",
            flag("a", &["b"]),
            flag("b", &["c"]),
            flag("c", &["a"])
        );
        let set = FlagSet::from_json(&json).unwrap();
        assert_eq!(
            set.order(&["b"]).unwrap_err().to_string(),
            "Detected a cycle between flags [b, c, a]"
        );
        assert!(set.full_order.is_err());
    }

    #[test]
    fn plans_and_prepared_results_agree_with_evaluation() {
        let json = r#"[
            {"key":"a","variants":{"on":{"key":"on","value":"on"},"off":{"key":"off","metadata":{"default":true}}},
             "segments":[{"conditions":[[{"selector":["context","user","country"],"op":"is","values":["NZ"]}]],"variant":"on","metadata":{"segmentName":"NZ"}},
                         {"bucket":{"selector":["context","user","user_id"],"salt":"s","allocations":[{"range":[0,50],"distributions":[{"variant":"on","range":[0,42949673]}]}]},"variant":"off"},
                         {"variant":"ghost"}],
             "metadata":{"flagVersion":3}},
            {"key":"b","dependencies":["a"],"variants":{"x":{"key":"x"}},"segments":[{"variant":"x"}]}
        ]"#;
        let set = FlagSet::from_json(json).unwrap();
        assert_eq!(set.index_of("b"), Some(1));
        assert_eq!(set.index_of("nope"), None);
        // Segment 0 gives `on`; segment 1 `on` by distribution or `off`; `ghost` is unknown.
        assert_eq!(set.possible_results(0), [(0, 0), (1, 1), (1, 0)]);
        assert_eq!(set.possible_results(7), []);
        let plan = set.plan(&["b"]).unwrap();
        assert_eq!(plan.order(), [0, 1]);
        assert_eq!(set.plan_indexes(&[0, 99]).unwrap().order(), [0]);
        for user in [
            r#"{"country":"NZ"}"#,
            r#"{"user_id":"u1"}"#,
            r#"{"user_id":"u7"}"#,
            "{}",
        ] {
            let context = crate::Context::from_sdk_user_json(user).unwrap();
            let planned = crate::evaluate_plan(&set, &context, &plan);
            let direct = crate::evaluate(&set, &context, &["b"]).unwrap();
            assert_eq!(
                serde_json::to_string(&planned).unwrap(),
                serde_json::to_string(&direct).unwrap(),
                "{user}"
            );
            // Every result is one of the prepared ones, and serializes the same way.
            for r in planned.iter() {
                let detail = r.detail();
                let prepared = set
                    .result_at(r.flag_index(), detail.segment_index, r.variant_index())
                    .unwrap();
                assert_eq!(
                    serde_json::to_string(&prepared).unwrap(),
                    serde_json::to_string(&r).unwrap()
                );
                assert!(set
                    .possible_results(r.flag_index())
                    .contains(&(detail.segment_index, r.variant_index())));
            }
        }
        assert!(set.result_at(0, 3, 0).is_none());
        assert!(set.result_at(0, 0, 2).is_none());
        // A plan from another set evaluates only the indexes this set has.
        let small = FlagSet::from_json(r#"[{"key":"z","variants":{},"segments":[]}]"#).unwrap();
        let context = crate::Context::from_sdk_user_json("{}").unwrap();
        assert!(crate::evaluate_plan(&small, &context, &plan).is_empty());
    }
}
