#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
//! The model's limits (`vexil_core::limits`) at their boundaries, through one `check()`: for
//! each limit, a flag edited through the API (`validate_flag`) and an imported config are
//! accepted with exactly the limit, and refused one over it, with the limit's code, the field
//! and a message that names the flag and the JSON path. A refused import leaves what the
//! previous import stored untouched.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};
use vexil_core::limits::{self, json_bytes, Limit};
use vexil_core::service::{NewDeployment, NewProject};
use vexil_core::validate::validate_flag;
use vexil_core::{Actor, DeploymentType, Error, FieldError, Flag, Services};
use vexil_store::SqliteStore;

/// A test's database directory, removed when the test ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// The API's flag documents

fn api_flag(key: &str) -> Value {
    json!({
        "project": "lim", "key": key, "name": "Limits", "type": "release",
        "evaluation_mode": "remote", "bucketing_unit": "user_id", "bucketing_salt": "abcd1234",
        "state": "inactive", "version": 1, "created_at": 0, "updated_at": 0,
        "variants": [{"key": "on"}], "segments": [],
        "all_other_users": {"percentage": 0, "weights": {}}
    })
}

fn api_segment(name: &str, conditions: Vec<Value>) -> Value {
    json!({"name": name, "percentage": 0, "weights": {}, "conditions": conditions})
}

fn api_condition(op: &str, values: Vec<String>) -> Value {
    json!({"type": "user_field", "field": "country", "op": op, "values": values})
}

fn with_segments(key: &str, segments: Vec<Value>) -> Value {
    let mut doc = api_flag(key);
    doc["segments"] = json!(segments);
    doc
}

/// `n` distinct values.
fn values(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("u{i}")).collect()
}

/// `n` distinct regex patterns.
fn patterns(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("v{i}.*")).collect()
}

fn api_values(n: usize) -> Value {
    let c = api_condition("is", values(n));
    with_segments("lim-values", vec![api_segment("S", vec![c])])
}

fn api_conditions(n: usize) -> Value {
    let c = api_condition("is", values(1));
    with_segments("lim-conditions", vec![api_segment("S", vec![c; n])])
}

fn api_segments(n: usize) -> Value {
    let segments = (0..n)
        .map(|i| api_segment(&format!("S{i}"), vec![]))
        .collect();
    with_segments("lim-segments", segments)
}

fn api_variants(n: usize) -> Value {
    let mut doc = api_flag("lim-variants");
    doc["variants"] = (0..n).map(|i| json!({"key": format!("v{i}")})).collect();
    doc
}

/// `n` regex values over two segments, so the count is the flag's, not one condition's.
fn api_regexes(n: usize) -> Value {
    let all = patterns(n);
    let (a, b) = all.split_at(n / 2);
    let segments = vec![
        api_segment("A", vec![api_condition("regex match", a.to_vec())]),
        api_segment("B", vec![api_condition("regex does not match", b.to_vec())]),
    ];
    with_segments("lim-regexes", segments)
}

fn api_pattern_bytes(n: usize) -> Value {
    let c = api_condition("regex match", vec!["a".repeat(n)]);
    with_segments("lim-pattern", vec![api_segment("S", vec![c])])
}

fn api_compiled_bytes(k: usize) -> Value {
    let c = api_condition("regex match", vec![repeated(k)]);
    with_segments("lim-compiled", vec![api_segment("S", vec![c])])
}

/// A managed flag whose stored document is exactly `n` bytes, padded with included ids.
fn api_config_bytes(n: usize) -> Value {
    let mut doc = api_flag("lim-bytes");
    let size = |doc: &Value| json_bytes(&serde_json::from_value::<Flag>(doc.clone()).unwrap());
    doc["inclusions"] = json!({"on": {"ids": [], "cohorts": []}});
    let empty = size(&doc);
    // k ids of lengths l_i add sum(l_i + 2) + (k - 1) bytes to the empty list.
    let extra = n - empty;
    let k = (extra + 1).div_ceil(1003);
    let mut left = extra + 1 - 3 * k;
    let ids: Vec<String> = (0..k)
        .map(|i| {
            let len = (left - (k - 1 - i)).min(1000);
            left -= len;
            "x".repeat(len)
        })
        .collect();
    doc["inclusions"]["on"]["ids"] = json!(ids);
    assert_eq!(size(&doc), n, "the padding is exact");
    doc
}

// ---------------------------------------------------------------------------------------------
// Imported configs

fn config(key: &str, segments: Vec<Value>) -> Value {
    json!({"key": key, "metadata": {"flagType": "release", "evaluationMode": "local"},
           "variants": {"on": {"key": "on", "value": "on"}, "off": {"key": "off", "metadata": {"default": true}}},
           "segments": segments})
}

fn segment(groups: Vec<Vec<Value>>) -> Value {
    json!({"variant": "on", "conditions": groups})
}

fn condition(op: &str, values: Vec<String>) -> Value {
    json!({"selector": ["context", "user", "country"], "op": op, "values": values})
}

fn import_values(n: usize) -> Value {
    let c = condition("is", values(n));
    json!([config("lim-values", vec![segment(vec![vec![c]])])])
}

/// `n` conditions over two OR-groups of one segment.
fn import_conditions(n: usize) -> Value {
    let c = condition("is", values(1));
    let groups = vec![vec![c.clone(); n / 2], vec![c; n - n / 2]];
    json!([config("lim-conditions", vec![segment(groups)])])
}

fn import_segments(n: usize) -> Value {
    json!([config("lim-segments", vec![json!({"variant": "on"}); n])])
}

/// `n` variants, `off` included.
fn import_variants(n: usize) -> Value {
    let mut c = config("lim-variants", vec![json!({"variant": "off"})]);
    let mut variants = serde_json::Map::new();
    for i in 0..n - 1 {
        variants.insert(format!("v{i}"), json!({"key": format!("v{i}")}));
    }
    variants.insert(
        "off".into(),
        json!({"key": "off", "metadata": {"default": true}}),
    );
    c["variants"] = Value::Object(variants);
    json!([c])
}

fn import_regexes(n: usize) -> Value {
    let all = patterns(n);
    let (a, b) = all.split_at(n / 2);
    let segments = vec![
        segment(vec![vec![condition("regex match", a.to_vec())]]),
        segment(vec![vec![condition("regex does not match", b.to_vec())]]),
    ];
    json!([config("lim-regexes", segments)])
}

fn import_pattern_bytes(n: usize) -> Value {
    let c = condition("regex match", vec!["a".repeat(n)]);
    json!([config("lim-pattern", vec![segment(vec![vec![c]])])])
}

fn import_compiled_bytes(k: usize) -> Value {
    let c = condition("regex match", vec![repeated(k)]);
    json!([config("lim-compiled", vec![segment(vec![vec![c]])])])
}

/// A config whose JSON text is exactly `n` bytes, padded in its metadata.
fn import_config_bytes(n: usize) -> Value {
    let mut c = config("lim-bytes", vec![json!({"variant": "on"})]);
    c["metadata"]["pad"] = json!("");
    let empty = c.to_string().len();
    c["metadata"]["pad"] = json!("x".repeat(n - empty));
    assert_eq!(c.to_string().len(), n, "the padding is exact");
    json!([c])
}

/// `n` configs in one file (a new project has no flags, so the file is the project's count).
fn import_flags(n: usize) -> Value {
    (0..n)
        .map(|i| json!({"key": format!("lim-flag-{i}"), "variants": {}, "segments": []}))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Regex programs

/// A pattern whose compiled program grows with `k`.
fn repeated(k: usize) -> String {
    format!("(?:ab){{{k}}}")
}

/// The largest `k` whose [`repeated`] pattern compiles under the engine's size limit.
fn largest_compiling() -> usize {
    let compiles = |k: usize| vexil_eval::full_match_regex(&repeated(k)).is_ok();
    let (mut ok, mut over) = (1, 2);
    while compiles(over) {
        (ok, over) = (over, over * 2);
    }
    while over - ok > 1 {
        let mid = (ok + over) / 2;
        if compiles(mid) {
            ok = mid;
        } else {
            over = mid;
        }
    }
    ok
}

// ---------------------------------------------------------------------------------------------
// The table

/// One limit: the API document and the import file with `n` of what it counts, and the path
/// of the violation in each (`None`: the limit does not apply on that side). `at` gives the
/// boundary `n` (the limit's `max`, except for the compiled size of a regex, which is not a
/// count) and `detail` the message's end for `n`.
struct Case {
    limit: Limit,
    at: fn(&Limit) -> usize,
    detail: fn(&Limit, usize) -> String,
    api: Side,
    import: Side,
}

/// How one side (the API or import) builds its input with `n` of what is counted, and the path
/// a violation names.
type Side = Option<(fn(usize) -> Value, &'static str)>;

fn max(limit: &Limit) -> usize {
    limit.max
}

fn counted(limit: &Limit, n: usize) -> String {
    limit.message(n)
}

fn cases() -> Vec<Case> {
    let case = |limit, api, import| Case {
        limit,
        at: max,
        detail: counted,
        api,
        import,
    };
    vec![
        case(
            limits::VALUES_PER_CONDITION,
            Some((api_values, "segments[0].conditions[0].values")),
            Some((import_values, "segments[0].conditions[0][0].values")),
        ),
        case(
            limits::CONDITIONS_PER_SEGMENT,
            Some((api_conditions, "segments[0].conditions")),
            Some((import_conditions, "segments[0].conditions")),
        ),
        case(
            limits::SEGMENTS_PER_FLAG,
            Some((api_segments, "segments")),
            Some((import_segments, "segments")),
        ),
        case(
            limits::VARIANTS_PER_FLAG,
            Some((api_variants, "variants")),
            Some((import_variants, "variants")),
        ),
        case(
            limits::REGEXES_PER_FLAG,
            Some((api_regexes, "segments")),
            Some((import_regexes, "segments")),
        ),
        case(
            limits::REGEX_PATTERN_BYTES,
            Some((api_pattern_bytes, "segments[0].conditions[0].values[0]")),
            Some((
                import_pattern_bytes,
                "segments[0].conditions[0][0].values[0]",
            )),
        ),
        Case {
            limit: limits::REGEX_COMPILED_BYTES,
            at: |_| largest_compiling(),
            detail: |limit, _| {
                format!(
                    "the compiled pattern would take more than {} bytes",
                    limit.max
                )
            },
            api: Some((api_compiled_bytes, "segments[0].conditions[0].values[0]")),
            import: Some((
                import_compiled_bytes,
                "segments[0].conditions[0][0].values[0]",
            )),
        },
        case(limits::FLAGS_PER_PROJECT, None, Some((import_flags, ""))),
        case(
            limits::CONFIG_BYTES,
            Some((api_config_bytes, "")),
            Some((import_config_bytes, "")),
        ),
    ]
}

/// A store with the project `lim` and its deployment `production`, and its directory.
fn services(name: &str) -> (Services, Scratch) {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("vexil-core-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.join("vexil.db")).unwrap());
    let services = Services::new(store);
    let actor = Actor::cli();
    let project = NewProject {
        name: "Limits".into(),
        key: Some("lim".into()),
        description: String::new(),
    };
    services.projects.create(&actor, project).unwrap();
    let deployment = NewDeployment {
        label: "Production".into(),
        key: None,
        kind: DeploymentType::Server,
        protected: false,
    };
    services
        .deployments
        .create(&actor, "lim", deployment)
        .unwrap();
    (services, Scratch(dir))
}

fn validate(doc: Value) -> Vec<FieldError> {
    let mut flag: Flag = serde_json::from_value(doc).unwrap();
    validate_flag(&mut flag)
}

fn import(services: &Services, file: &Value) -> Result<(), Error> {
    services
        .import
        .import(&Actor::cli(), "lim", "production", &file.to_string(), None)
        .map(|_| ())
}

/// The stored version and config of (the first ten) flags of an import file.
fn stored(services: &Services, file: &Value) -> Vec<(String, i64, Option<String>)> {
    let keys = file.as_array().unwrap().iter().take(10);
    keys.map(|c| {
        let key = c["key"].as_str().unwrap();
        let f = services.flags.get(Some("lim"), key).unwrap();
        let config = f.imported_config.map(|c| c.json().to_owned());
        (key.to_owned(), f.version, config)
    })
    .collect()
}

/// The one violation `errors` must hold: its code, field and how its message starts (the
/// whole message for a count; a compiled size adds advice).
fn assert_violation(errors: &[FieldError], code: &str, field: &str, message: &str, what: &str) {
    assert_eq!(errors.len(), 1, "{what}: {errors:?}");
    let e = &errors[0];
    assert_eq!((e.code, e.field.as_str()), (code, field), "{what}: {e:?}");
    assert!(
        e.message.starts_with(message),
        "{what}: {:?} does not start with {message:?}",
        e.message
    );
}

fn check(case: &Case, services: &Services) {
    let limit = &case.limit;
    let n = (case.at)(limit);
    let what = limit.code;
    let join = |prefix: &str, path: &str| match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) => format!("{prefix}.{path}"),
    };
    let message = |label: &str, path: &str| {
        let detail = (case.detail)(limit, n + 1);
        if path.is_empty() {
            format!("{label}: {detail}")
        } else {
            format!("{label}: {path}: {detail}")
        }
    };

    if let Some((build, path)) = case.api {
        let at_limit = build(n);
        let key = at_limit["key"].as_str().unwrap().to_owned();
        assert_eq!(validate(at_limit), [], "{what}: the API accepts {n}");
        let label = format!("flag {key:?}");
        assert_violation(
            &validate(build(n + 1)),
            limit.code,
            path,
            &message(&label, path),
            what,
        );
    }

    if let Some((build, path)) = case.import {
        let at_limit = build(n);
        import(services, &at_limit).unwrap_or_else(|e| panic!("{what}: import of {n}: {e:?}"));
        let before = stored(services, &at_limit);
        assert!(!before.is_empty() && before.iter().all(|(_, _, c)| c.is_some()));
        let over = build(n + 1);
        let (field, label) = if limit.code == limits::FLAGS_PER_PROJECT.code {
            ("flags".to_owned(), "the flags file".to_owned())
        } else {
            let key = over[0]["key"].as_str().unwrap();
            (join("flags[0]", path), format!("flags[0] ({key})"))
        };
        match import(services, &over) {
            Err(Error::Invalid(errors)) => {
                assert_violation(&errors, limit.code, &field, &message(&label, path), what);
            }
            other => panic!("{what}: import of {} gave {other:?}", n + 1),
        }
        assert_eq!(
            stored(services, &at_limit),
            before,
            "{what}: a refused import changes nothing"
        );
    }
}

#[test]
fn each_limit_accepts_its_maximum_and_refuses_one_more() {
    let cases = cases();
    assert_eq!(
        cases.iter().map(|c| c.limit).collect::<Vec<_>>(),
        limits::ALL,
        "every limit has a row"
    );
    for case in &cases {
        // A project per limit, so that one row's flags do not count against another's.
        let (services, _dir) = services(&format!("limits-{}", case.limit.code));
        check(case, &services);
    }
}

#[test]
fn an_import_past_the_project_limit_is_refused_before_anything_is_stored() {
    let (services, _dir) = services("limits-project");
    let max = limits::FLAGS_PER_PROJECT.max;
    import(&services, &import_flags(max)).unwrap();
    // Re-importing what is stored adds nothing, so the project stays within its limit.
    import(&services, &import_flags(max)).unwrap();
    let one_more = json!([{"key": "lim-flag-new", "variants": {}, "segments": []}]);
    match import(&services, &one_more) {
        Err(Error::Invalid(errors)) => assert_violation(
            &errors,
            "too_many_flags",
            "flags",
            &format!("project \"lim\": {} flags, at most {max}", max + 1),
            "stored plus imported",
        ),
        other => panic!("{other:?}"),
    }
    assert!(services.flags.get(Some("lim"), "lim-flag-new").is_err());
}
