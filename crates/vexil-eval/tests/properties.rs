//! Property tests for the engine's promises (STYLE.md "Tests", spec §10.8): evaluation never
//! panics whatever the config or user, `explain` agrees with `evaluate`, raising a rollout never
//! drops a user, bucketing is stable, and weights split users as configured.

#![allow(
    clippy::unwrap_used,
    reason = "a test crate: clippy.toml allows unwrap in #[test] functions, and their helpers may too"
)]

use std::collections::BTreeMap;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::FileFailurePersistence;
use vexil_eval::{
    bucket_values, evaluate, explain, murmur3_x86_32, AllocationConfig, BucketConfig,
    ConditionConfig, Context, CycleError, DistributionConfig, FlagConfig, FlagSet, Object, Op,
    OrderedMap, SegmentConfig, Value, VariantConfig,
};

mod fixtures;

use fixtures::{
    distributions, object, off_variant, realistic_flags, realistic_user, rollout_segment, variant,
    USER_ID,
};

// ---------------------------------------------------------------------------------------------
// Vocabularies. Small on purpose: selectors, variant keys, flag keys and values must collide
// often enough that conditions match, dependencies form chains and cycles, and segments name
// variants that exist as well as ones that do not.

/// Keys of the generated flags, by position.
const FLAG_KEYS: [&str; 5] = ["a", "b", "c", "d", "flag-ünï"];
/// Flag keys as dependencies, `["result", F, ...]` selectors and requested keys refer to them.
const FLAG_REFS: [&str; 7] = ["a", "b", "c", "d", "flag-ünï", "missing", ""];
const VARIANT_KEYS: [&str; 4] = ["on", "off", "control", "treatment"];
const ODD_VARIANT_KEYS: [&str; 4] = ["", "(none)", "ghost", "ON"];
#[rustfmt::skip]
const USER_FIELDS: [&str; 12] = [
    "user_id", "device_id", "country", "platform", "version", "cohort_ids", "user_properties", "groups",
    "group_properties", "group_cohort_ids", "p", "",
];
const PROPS: [&str; 6] = ["plan", "p", "sessions", "beta", "email", ""];
#[rustfmt::skip]
const OBJECT_KEYS: [&str; 8] = ["segmentName", "default", "x", "p", "plan", "org", "acme", ""];
const UNKNOWN_OPS: [&str; 5] = ["IS", "", "glob", "set contains all", "is  not"];
/// Values and props: booleans in several cases, numbers in every form the Java grammar accepts
/// or rejects, versions, JSON-array strings (strict, lenient, broken, deeply nested), regexes
/// (valid, invalid, Java-only), `(none)`.
#[rustfmt::skip]
const STRINGS: &[&str] = &[
    "", " ", "US", "iOS", "on", "off", "control", "(none)", "true", "TRUE", "false", "yes",
    "3", "3.0", "-0", "-0.0", "1e3", " 12 ", "\t12\n", "0x1p3", "0x1.8p1", "0x10", "NaN", "Infinity", "-Infinity",
    "1d", "1e400", "-1e-400", "9223372036854775808",
    "1.2.3", "1.10", "1.0.0-alpha.9", "1.0.0-alpha.10", "1.2.3+build", "1.2.3-01", "2147483648.1.0",
    "1.2.99999999999", "1.2-beta",
    "[a, 1, {x:2}]", "[\"a\",\"b\"]", "[broken", "[]", "[beta]", "[1, 2.5, true, null, -0]", "[[1],{\"a\":[]}]",
    "[a,]", "[\"\\ud800\"]",
    "a.*", "(?=x)", "(a", r"\d+", "^(?:a|b)$", r"(\w)\1", "a{2,1}",
    "user-1", "ünï💥",
];
#[rustfmt::skip]
const SEGMENT_NAMES: [&str; 5] = ["individual-inclusions", "flag-dependencies", "All Other Users", "default", "US"];
/// Fragments spliced into configs' JSON to make it invalid or odd.
#[rustfmt::skip]
const JSON_TOKENS: [&str; 24] = [
    "{", "}", "[", "]", ",", ":", "\"", "null", "true", "-0", "1e999", "-1.5e-3", "18446744073709551616",
    "\"key\"", "\"variants\"", "\"segments\"", "\"conditions\"", "[[]]", "[]", "{}", "\"(none)\"", "\\u0000",
    "\\ud800", "\"ü\"",
];

// ---------------------------------------------------------------------------------------------
// Strategies.

fn string() -> BoxedStrategy<String> {
    prop_oneof![
        12 => select(STRINGS.to_vec()).prop_map(String::from),
        2 => "\\PC{0,6}",
        2 => any::<String>(),
        1 => (0usize..300).prop_map(|depth| format!("{}1{}", "[".repeat(depth), "]".repeat(depth))),
    ]
    .boxed()
}

fn double() -> BoxedStrategy<f64> {
    prop_oneof![
        any::<f64>(),
        select(vec![
            -0.0,
            0.0,
            3.0,
            1e21,
            1e300,
            1e-7,
            123456.789,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY
        ]),
    ]
    .boxed()
}

/// Any engine value: scalars of every JSON type (and the doubles JSON cannot write), nested
/// arrays and objects.
fn value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => prop_oneof![-3i64..40, any::<i64>()].prop_map(Value::Int),
        1 => (i64::MAX as u64 + 1..=u64::MAX).prop_map(Value::UInt),
        1 => double().prop_map(Value::Double),
        3 => string().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((select(OBJECT_KEYS.to_vec()), inner), 0..4)
                .prop_map(|m| Value::Object(members(m))),
        ]
    })
    .boxed()
}

fn members(m: Vec<(&str, Value)>) -> Object {
    m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn object_value() -> BoxedStrategy<Object> {
    vec((select(OBJECT_KEYS.to_vec()), value()), 0..4)
        .prop_map(members)
        .boxed()
}

/// An SDK user or context: mostly objects with the usual fields, sometimes anything at all.
fn user() -> BoxedStrategy<Value> {
    let field_value = prop_oneof![
        3 => value(),
        2 => string().prop_map(Value::from),
        1 => vec(string(), 0..4).prop_map(Value::from),
        1 => vec((select(PROPS.to_vec()), value()), 0..4).prop_map(|m| Value::Object(members(m))),
        1 => (select(vec!["org", "team", ""]), vec(string(), 0..3))
            .prop_map(|(t, names)| Value::Object(object([(t, Value::from(names))]))),
    ];
    let user_id = prop_oneof![2 => "user-[0-9]{1,4}".prop_map(Value::from), 1 => value()];
    let structured = (
        option::weighted(0.7, user_id),
        vec((select(USER_FIELDS.to_vec()), field_value), 0..7),
    )
        .prop_map(|(user_id, fields)| {
            let mut user = members(fields);
            if let Some(id) = user_id {
                user.insert("user_id", id);
            }
            Value::Object(user)
        });
    let realistic = ("user-[0-9]{1,5}", any::<bool>()).prop_map(|(id, keep)| {
        let mut user = realistic_user();
        if let (Value::Object(o), true) = (&mut user, keep) {
            o.insert("user_id", Value::from(id));
        }
        user
    });
    prop_oneof![6 => structured, 2 => realistic, 1 => value()].boxed()
}

/// A context built from an SDK user, or given directly: the user under `user`, or any value
/// as the whole context.
fn context() -> BoxedStrategy<Context> {
    prop_oneof![
        3 => user().prop_map(Context::from_sdk_user),
        1 => user().prop_map(|user| Context::from_value(Value::Object(object([("user", user)])))),
        1 => user().prop_map(Context::from_value),
    ]
    .boxed()
}

fn path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

/// Selectors over the context and earlier results, plus empty ones and odd roots.
fn selector() -> BoxedStrategy<Vec<String>> {
    let flag = || select(FLAG_REFS.to_vec());
    prop_oneof![
        1 => Just(Vec::new()),
        6 => select(USER_FIELDS.to_vec()).prop_map(|f| path(&["context", "user", f])),
        3 => select(PROPS.to_vec()).prop_map(|p| path(&["context", "user", "user_properties", p])),
        1 => (select(vec!["org", "team"]), select(vec!["group_name", "group_properties", "cohort_ids"]))
            .prop_map(|(t, f)| path(&["context", "groups", t, f])),
        3 => (flag(), select(vec!["key", "value", "payload", "metadata"])).prop_map(|(f, k)| path(&["result", f, k])),
        1 => (flag(), select(vec!["segmentName", "default", "flagVersion"]))
            .prop_map(|(f, m)| path(&["result", f, "metadata", m])),
        1 => flag().prop_map(|f| path(&["result", f])),
        1 => select(vec![path(&["result"]), path(&["context"]), path(&["context", "user"])]),
        1 => vec(select(vec!["user", "context", "result", "", "x", "key"]), 0..5)
            .prop_map(|p| p.into_iter().map(String::from).collect()),
    ]
    .boxed()
}

fn condition() -> BoxedStrategy<ConditionConfig> {
    let op = prop_oneof![6 => select(Op::ALL.to_vec()), 1 => select(UNKNOWN_OPS.to_vec())];
    (selector(), op, vec(string(), 0..4))
        .prop_map(|(selector, op, values)| ConditionConfig {
            selector,
            op: op.to_owned(),
            values,
        })
        .boxed()
}

/// Range ends: percentages, distribution values, around zero and the extremes; reversed and
/// negative ranges arise by themselves.
fn range() -> BoxedStrategy<[i64; 2]> {
    let end = || {
        prop_oneof![
            3 => 0i64..=100,
            2 => 0i64..=42_949_674,
            1 => -3i64..3,
            1 => any::<i64>(),
            1 => select(vec![i64::MIN, i64::MAX, 42_949_672, 42_949_673]),
        ]
    };
    (end(), end()).prop_map(|(a, b)| [a, b]).boxed()
}

fn variant_ref() -> BoxedStrategy<String> {
    prop_oneof![6 => select(VARIANT_KEYS.to_vec()), 1 => select(ODD_VARIANT_KEYS.to_vec())]
        .prop_map(String::from)
        .boxed()
}

/// Buckets: mostly on `user_id` with one allocation as the compiler emits it (spec §10.7),
/// otherwise anything.
fn bucket() -> BoxedStrategy<BucketConfig> {
    let distribution =
        (variant_ref(), range()).prop_map(|(variant, range)| DistributionConfig { variant, range });
    let arbitrary =
        (range(), vec(distribution, 0..4)).prop_map(|(range, distributions)| AllocationConfig {
            range,
            distributions,
        });
    let compiled =
        (0i64..=100, vec((variant_ref(), 0u64..=5), 1..4)).prop_map(|(percentage, weights)| {
            let weights: Vec<(&str, u64)> = weights.iter().map(|(v, w)| (v.as_str(), *w)).collect();
            AllocationConfig {
                range: [0, percentage],
                distributions: distributions(&weights),
            }
        });
    let allocations = prop_oneof![3 => vec(compiled, 1..=1), 1 => vec(arbitrary, 0..3)];
    let selector = prop_oneof![
        3 => Just(path(&USER_ID)),
        1 => Just(path(&["context", "user", "device_id"])),
        2 => selector(),
    ];
    (selector, string(), allocations)
        .prop_map(|(selector, salt, allocations)| BucketConfig {
            selector,
            salt,
            allocations,
        })
        .boxed()
}

fn segment() -> BoxedStrategy<SegmentConfig> {
    let metadata = prop_oneof![
        object_value(),
        select(SEGMENT_NAMES.to_vec()).prop_map(|n| object([("segmentName", Value::from(n))])),
    ];
    (
        option::of(vec(vec(condition(), 0..3), 0..3)),
        option::of(bucket()),
        option::of(variant_ref()),
        option::of(metadata),
    )
        .prop_map(|(conditions, bucket, variant, metadata)| SegmentConfig {
            conditions,
            bucket,
            variant,
            metadata,
        })
        .boxed()
}

fn variant_config() -> BoxedStrategy<VariantConfig> {
    let metadata = prop_oneof![
        object_value(),
        Just(object([("default", Value::Bool(true))]))
    ];
    (
        option::of(variant_ref()),
        option::of(value()),
        option::of(value()),
        option::of(metadata),
    )
        .prop_map(|(key, value, payload, metadata)| VariantConfig {
            key,
            value,
            payload,
            metadata,
        })
        .boxed()
}

/// Structurally valid flag configs with unique keys and anything else arbitrary: unknown and
/// missing variants, invalid regexes, dependencies on missing flags and in cycles.
fn configs() -> BoxedStrategy<Vec<FlagConfig>> {
    let flag = (
        vec((variant_ref(), variant_config()), 0..5),
        vec(segment(), 0..4),
        option::of(vec(select(FLAG_REFS.to_vec()).prop_map(String::from), 0..3)),
        option::of(object_value()),
    );
    vec(flag, 0..=FLAG_KEYS.len())
        .prop_map(|flags| {
            flags
                .into_iter()
                .zip(FLAG_KEYS)
                .map(
                    |((variants, segments, dependencies, metadata), key)| FlagConfig {
                        key: key.to_owned(),
                        variants: OrderedMap(variants),
                        segments,
                        dependencies,
                        metadata,
                    },
                )
                .collect()
        })
        .boxed()
}

/// Arbitrary configs, or a prefix of the realistic set the benchmarks use.
fn any_configs() -> BoxedStrategy<Vec<FlagConfig>> {
    prop_oneof![3 => configs(), 1 => (1usize..=40).prop_map(realistic_flags)].boxed()
}

fn flag_keys() -> BoxedStrategy<Vec<&'static str>> {
    prop_oneof![Just(Vec::new()), vec(select(FLAG_REFS.to_vec()), 0..4)].boxed()
}

/// An edit to JSON text: cut it short, delete a stretch, insert a fragment, or replace a
/// stretch with one.
#[derive(Debug, Clone)]
struct Mutation {
    kind: u8,
    at: Index,
    len: usize,
    token: &'static str,
}

fn mutation() -> BoxedStrategy<Mutation> {
    (
        0u8..4,
        any::<Index>(),
        0usize..8,
        select(JSON_TOKENS.to_vec()),
    )
        .prop_map(|(kind, at, len, token)| Mutation {
            kind,
            at,
            len,
            token,
        })
        .boxed()
}

fn mutate(text: &str, mutations: &[Mutation]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for m in mutations {
        let at = m.at.index(chars.len() + 1);
        let end = (at + m.len).min(chars.len());
        match m.kind {
            0 => chars.truncate(at),
            1 => {
                chars.drain(at..end);
            }
            2 => {
                chars.splice(at..at, m.token.chars());
            }
            _ => {
                chars.splice(at..end, m.token.chars());
            }
        }
    }
    chars.into_iter().collect()
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Evaluates, serializes the results as the server does, and exercises every accessor of every
/// result.
fn evaluate_to_json(
    flags: &FlagSet,
    context: &Context,
    keys: &[&str],
) -> Result<String, CycleError> {
    let results = evaluate(flags, context, keys)?;
    for r in results.iter() {
        let _ = (
            r.flag_key(),
            r.key(),
            r.value(),
            r.payload(),
            r.metadata(),
            r.is_default(),
            r.detail(),
        );
        let _ = r.metadata_value("segmentName");
    }
    Ok(serde_json::to_string(&results).unwrap())
}

fn compile(configs: Vec<FlagConfig>) -> FlagSet {
    FlagSet::compile(configs).unwrap()
}

/// Evaluates everything a config set offers, for the never-panics property.
fn exercise(flags: &FlagSet, context: &Context, keys: &[&str]) {
    let _ = flags.warnings().len();
    for keys in [keys, &[]] {
        if let Err(err) = evaluate_to_json(flags, context, keys) {
            assert!(
                err.to_string()
                    .starts_with("Detected a cycle between flags ["),
                "{err}"
            );
        }
        if let Ok((_, explanations)) = explain(flags, context, keys) {
            serde_json::to_string(&explanations).unwrap();
            for e in &explanations {
                let _ = e.to_string();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Properties.

/// `cases` cases per property; a failing case is saved next to this file
/// (`properties.proptest-regressions`, to be committed) and replayed first on later runs.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(800))]

    /// Arbitrary configs and users never make compiling, evaluating, explaining or serializing
    /// panic; configs serialized by the model parse back.
    #[test]
    fn never_panics(configs in configs(), context in context(), keys in flag_keys()) {
        let json = serde_json::to_string(&configs).unwrap();
        let flags = FlagSet::compile(configs);
        prop_assert!(flags.is_ok(), "{:?}", flags.as_ref().err());
        let flags = flags.unwrap();
        exercise(&flags, &context, &keys);
        let reparsed = FlagSet::from_json(&json);
        prop_assert!(reparsed.is_ok(), "{json}\n{:?}", reparsed.as_ref().err());
    }

    /// Parsing arbitrary text, and configs' JSON with pieces cut out or spliced in, returns Ok
    /// or Err and never panics; what parses evaluates without panicking.
    #[test]
    fn never_panics_on_json(
        configs in configs(),
        mutations in vec(mutation(), 1..4),
        noise in any::<String>(),
        context in context(),
    ) {
        let json = serde_json::to_string(&configs).unwrap();
        for text in [mutate(&json, &mutations), noise] {
            if let Ok(flags) = FlagSet::from_json(&text) {
                exercise(&flags, &context, &[]);
            }
        }
    }
}

proptest! {
    #![proptest_config(config(500))]

    /// `explain` gives exactly the results of `evaluate`, and each explanation names the variant
    /// and segment its flag's result has (none when the flag is absent from the results).
    #[test]
    fn explain_agrees_with_evaluate(configs in any_configs(), context in context(), keys in flag_keys()) {
        let flags = compile(configs);
        match (evaluate(&flags, &context, &keys), explain(&flags, &context, &keys)) {
            (Ok(results), Ok((explained, explanations))) => {
                prop_assert_eq!(serde_json::to_string(&results).unwrap(), serde_json::to_string(&explained).unwrap());
                for e in &explanations {
                    let result = results.get(&e.flag_key);
                    prop_assert_eq!(e.variant.as_deref(), result.map(|r| r.key()), "{}", e);
                    prop_assert_eq!(e.segment_index, result.map(|r| r.detail().segment_index), "{}", e);
                }
                let explained_keys: Vec<&str> =
                    explanations.iter().filter(|e| e.variant.is_some()).map(|e| e.flag_key.as_str()).collect();
                let result_keys: Vec<&str> = results.iter().map(|r| r.flag_key()).collect();
                prop_assert_eq!(explained_keys, result_keys);
            }
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "evaluate {:?} but explain {:?}", a.map(|r| r.len()), b.map(|r| r.1)),
        }
    }

    /// A set that has shed its rules (`FlagSet::shed_rules`, what a server keeps) gives the
    /// same results as the set it was, with every accessor, and its configs keep everything
    /// but conditions and buckets.
    #[test]
    fn shedding_rules_keeps_results(configs in any_configs(), context in context(), keys in flag_keys()) {
        let full = compile(configs);
        let mut lean = full.clone();
        lean.shed_rules();
        prop_assert_eq!(evaluate_to_json(&full, &context, &keys), evaluate_to_json(&lean, &context, &keys));
        let detail = |set: &FlagSet| -> Vec<String> {
            evaluate(set, &context, &keys)
                .map(|r| r.iter().map(|r| format!("{:?} {:?}", r.detail(), r.metadata())).collect())
                .unwrap_or_default()
        };
        prop_assert_eq!(detail(&full), detail(&lean));
        for (a, b) in full.configs().zip(lean.configs()) {
            prop_assert!(b.segments.iter().all(|s| s.conditions.is_none() && s.bucket.is_none()));
            let rules_gone = |c: &FlagConfig| {
                let mut c = c.clone();
                for s in &mut c.segments {
                    s.conditions = None;
                    s.bucket = None;
                }
                c
            };
            // Compared as text: a NaN payload is not equal to itself.
            prop_assert_eq!(format!("{:?}", rules_gone(a)), format!("{b:?}"));
        }
    }

    /// The same config and user always give the same results: twice on one set, on a clone,
    /// and on a second compilation of the same configs. `bucket_values` is murmur3 of
    /// `salt/id`, split into allocation and distribution values.
    #[test]
    fn bucketing_is_stable(
        configs in any_configs(),
        context in context(),
        keys in flag_keys(),
        salt in string(),
        id in string(),
    ) {
        let flags = compile(configs.clone());
        let first = evaluate_to_json(&flags, &context, &keys);
        prop_assert_eq!(&first, &evaluate_to_json(&flags, &context, &keys));
        prop_assert_eq!(&first, &evaluate_to_json(&flags.clone(), &context, &keys));
        prop_assert_eq!(&first, &evaluate_to_json(&compile(configs), &context, &keys));

        let h = murmur3_x86_32(format!("{salt}/{id}").as_bytes(), 0);
        prop_assert_eq!(bucket_values(&salt, &id), (h % 100, h / 100));
    }
}

proptest! {
    #![proptest_config(config(1000))]

    /// Spec §10.8: raising a rollout from `p1` to `p2` keeps every user who had a variant at
    /// `p1`, with the same variant.
    #[test]
    fn raising_allocation_never_drops_a_user(
        salt in prop_oneof!["[A-Za-z0-9]{8}", string()],
        id in prop_oneof!["user-[0-9]{1,6}", string()],
        weights in vec(0u64..=10, 1..=3).prop_filter("some weight must be positive", |w| w.iter().any(|&w| w > 0)),
        p1 in 0i64..=100,
        p2 in 0i64..=100,
    ) {
        let (low, high) = (p1.min(p2), p1.max(p2));
        let names = ["v0", "v1", "v2"];
        let weights: Vec<(&str, u64)> = names.into_iter().zip(weights).collect();
        let context = Context::from_sdk_user(Value::Object(object([("user_id", Value::from(id.as_str()))])));
        let at = |percentage: i64| {
            let mut variants: Vec<_> = weights.iter().map(|(v, _)| variant(v)).collect();
            variants.push(off_variant());
            let flag = FlagConfig {
                key: "f".into(),
                variants: OrderedMap(variants),
                segments: vec![rollout_segment("All Other Users", None, percentage, &weights, &USER_ID, &salt)],
                dependencies: None,
                metadata: None,
            };
            let flags = compile(vec![flag]);
            let results = evaluate(&flags, &context, &[] as &[&str]).unwrap();
            results.get("f").map(|r| r.key().to_owned())
        };
        let before = at(low);
        prop_assert!(before.is_some(), "a segment without conditions serving off always yields");
        if before.as_deref() != Some("off") {
            prop_assert_eq!(at(high), before, "raised from {}% to {}%", low, high);
        }
    }
}

/// The §10.7 helper reproduces the table of the spec.
#[test]
fn distributions_match_the_spec_table() {
    let cases: [(&[u64], &[[i64; 2]]); 8] = [
        (&[1, 1], &[[0, 21474837], [21474836, 42949673]]),
        (&[1, 99], &[[0, 429497], [429496, 42949673]]),
        (&[99, 1], &[[0, 42520177], [42520175, 42949673]]),
        (&[10, 90], &[[0, 4294968], [4294967, 42949673]]),
        (
            &[1, 1, 1],
            &[[0, 14316558], [14316557, 28633116], [28633114, 42949673]],
        ),
        (
            &[1, 1, 2],
            &[[0, 10737419], [10737418, 21474837], [21474836, 42949673]],
        ),
        (&[1, 0, 1], &[[0, 21474837], [21474836, 42949673]]),
        (
            &[1, 1, 1, 1],
            &[
                [0, 10737419],
                [10737418, 21474837],
                [21474836, 32212255],
                [32212254, 42949673],
            ],
        ),
    ];
    let names = ["a", "b", "c", "d"];
    for (weights, expected) in cases {
        let pairs: Vec<(&str, u64)> = names.into_iter().zip(weights.iter().copied()).collect();
        let ranges: Vec<[i64; 2]> = distributions(&pairs).iter().map(|d| d.range).collect();
        assert_eq!(ranges, expected, "weights {weights:?}");
    }
}

/// 100,000 users `user-{i}` split within one percentage point of the configured weights at a
/// 100% rollout, and a 30% rollout holds 30% of them, within one point.
#[test]
fn weights_split_within_one_percent() {
    let weight_sets: [&[u64]; 5] = [&[1, 1], &[1, 4], &[1, 1, 1], &[10, 20, 30, 40], &[1, 99]];
    let names = ["v0", "v1", "v2", "v3"];
    let flag = |key: String, percentage: i64, weights: &[u64]| {
        let weights: Vec<(&str, u64)> = names.into_iter().zip(weights.iter().copied()).collect();
        let mut variants: Vec<_> = weights.iter().map(|(v, _)| variant(v)).collect();
        variants.push(off_variant());
        let salt = format!("salt-{key}");
        FlagConfig {
            segments: vec![rollout_segment(
                "All Other Users",
                None,
                percentage,
                &weights,
                &USER_ID,
                &salt,
            )],
            key,
            variants: OrderedMap(variants),
            dependencies: None,
            metadata: None,
        }
    };
    let mut configs: Vec<FlagConfig> = weight_sets
        .iter()
        .enumerate()
        .map(|(k, w)| flag(format!("split-{k}"), 100, w))
        .collect();
    configs.push(flag("rollout-30".into(), 30, &[1, 1]));
    let flags = compile(configs);

    const USERS: u32 = 100_000;
    let mut counts: BTreeMap<(String, String), u32> = BTreeMap::new();
    for i in 0..USERS {
        let user = Value::Object(object([("user_id", Value::from(format!("user-{i}")))]));
        let results = evaluate(&flags, &Context::from_sdk_user(user), &[] as &[&str]).unwrap();
        assert_eq!(results.len(), weight_sets.len() + 1);
        for r in results.iter() {
            *counts
                .entry((r.flag_key().to_owned(), r.key().to_owned()))
                .or_default() += 1;
        }
    }
    let share = |flag: &str, variant: &str| {
        f64::from(
            counts
                .get(&(flag.to_owned(), variant.to_owned()))
                .copied()
                .unwrap_or(0),
        ) / f64::from(USERS)
    };
    for (k, weights) in weight_sets.iter().enumerate() {
        let total: u64 = weights.iter().sum();
        for (name, &w) in names.iter().zip(weights.iter()) {
            let (got, want) = (share(&format!("split-{k}"), name), w as f64 / total as f64);
            assert!(
                (got - want).abs() <= 0.01,
                "weights {weights:?}: {name} got {got:.4}, want {want:.4}"
            );
        }
        assert_eq!(
            share(&format!("split-{k}"), "off"),
            0.0,
            "weights {weights:?}"
        );
    }
    let rolled_out = 1.0 - share("rollout-30", "off");
    assert!(
        (rolled_out - 0.30).abs() <= 0.01,
        "30% rollout holds {rolled_out:.4}"
    );
}
