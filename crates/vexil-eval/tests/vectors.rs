//! Conformance: every vector in `shared/vectors/` (computed with Amplitude's reference engine) and
//! every case in `tests/cases/` (the spec's own tables) goes through one `check()`.
//!
//! The shared vectors live beside the repository (`../shared/vectors`, or `VEXIL_VECTORS`). When
//! they are missing the test says so and skips, except under `CI`, where a missing contract is a
//! failure.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is a failed test with its location"
)]

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value as Json;
use vexil_eval::{bucket_values, evaluate, murmur3_x86_32, Context, FlagSet, Value};

fn shared_vectors() -> Option<PathBuf> {
    let dir = std::env::var_os("VEXIL_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"));
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "conformance vectors not found at {}",
        dir.display()
    );
    eprintln!(
        "skipped: conformance vectors not found at {} (set VEXIL_VECTORS)",
        dir.display()
    );
    None
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(Deserialize)]
struct Murmur3Vectors {
    cases: Vec<Murmur3Case>,
}

#[derive(Deserialize)]
struct Murmur3Case {
    input: String,
    seed: u32,
    hash: u32,
}

#[test]
fn murmur3_vectors() {
    let Some(dir) = shared_vectors() else { return };
    let vectors: Murmur3Vectors = read_json(&dir.join("murmur3.json"));
    assert!(!vectors.cases.is_empty());
    for case in vectors.cases {
        assert_eq!(
            murmur3_x86_32(case.input.as_bytes(), case.seed),
            case.hash,
            "{:?}",
            case.input
        );
    }
}

#[derive(Deserialize)]
struct BucketingVectors {
    ids: Vec<String>,
    salts: Vec<SaltVectors>,
}

#[derive(Deserialize)]
struct SaltVectors {
    salt: String,
    allocation: Vec<u32>,
    distribution: Vec<u32>,
}

#[test]
fn bucketing_vectors() {
    let Some(dir) = shared_vectors() else { return };
    let vectors: BucketingVectors = read_json(&dir.join("bucketing.json"));
    for salt in &vectors.salts {
        assert_eq!(salt.allocation.len(), vectors.ids.len());
        for (i, id) in vectors.ids.iter().enumerate() {
            let expected = (salt.allocation[i], salt.distribution[i]);
            assert_eq!(
                bucket_values(&salt.salt, id),
                expected,
                "salt {:?} id {id:?}",
                salt.salt
            );
        }
    }
}

/// An engine case file: `{"description", "flags", "cases"}`.
#[derive(Deserialize)]
struct CaseFile {
    flags: Json,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    user: Json,
    #[serde(default)]
    flag_keys: Option<Vec<String>>,
    #[serde(default)]
    expected: Option<serde_json::Map<String, Json>>,
    #[serde(default)]
    expected_error: Option<String>,
    /// Optional extra checks of this repository's own cases: segment names and full results.
    #[serde(default)]
    expected_segments: Option<serde_json::Map<String, Json>>,
    #[serde(default)]
    expected_exact: Option<Json>,
}

#[test]
fn engine_vectors() {
    let Some(dir) = shared_vectors() else { return };
    let checked = check_dir(&dir.join("engine"));
    assert!(checked > 1000, "only {checked} engine cases found");
}

#[test]
fn own_cases() {
    let checked = check_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases"));
    assert!(checked > 0);
}

/// Checks every case of every `.json` file in `dir`, reporting all failures at once.
fn check_dir(dir: &Path) -> usize {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let mut checked = 0;
    for file in &files {
        let cases: CaseFile = read_json(file);
        let flags = FlagSet::from_json(&cases.flags.to_string())
            .unwrap_or_else(|e| panic!("{}: flags do not compile: {e}", file.display()));
        for (i, case) in cases.cases.iter().enumerate() {
            checked += 1;
            if let Err(why) = check(&flags, case) {
                let name = file.file_name().unwrap_or_default().to_string_lossy();
                failures.push(format!("{name} case {i} user {}: {why}", case.user));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    checked
}

/// The one check: evaluate the case's user and compare with what the reference engine gave.
fn check(flags: &FlagSet, case: &Case) -> Result<(), String> {
    let user = Value::from_json_str(&case.user.to_string()).map_err(|e| e.to_string())?;
    let context = Context::from_sdk_user(user);
    let keys = case.flag_keys.clone().unwrap_or_default();
    let outcome = evaluate(flags, &context, &keys);
    if let Some(error) = &case.expected_error {
        return match outcome {
            Err(e) if error == "cycle" && e.to_string().contains("cycle") => Ok(()),
            Err(e) => Err(format!("expected error {error:?}, got error {e}")),
            Ok(results) => Err(format!(
                "expected error {error:?}, got {}",
                serde_json::to_string(&results).unwrap()
            )),
        };
    }
    let results = outcome.map_err(|e| format!("unexpected error: {e}"))?;
    let got: Json = serde_json::to_value(&results).map_err(|e| e.to_string())?;
    let got = got.as_object().ok_or("results are not an object")?;

    if let Some(exact) = &case.expected_exact {
        if Json::Object(got.clone()) != *exact {
            return Err(format!(
                "got {}, want exactly {exact}",
                Json::Object(got.clone())
            ));
        }
    }
    let expected = case
        .expected
        .as_ref()
        .ok_or("case has neither expected nor expected_error")?;
    for (key, want) in expected {
        match (want, got.get(key)) {
            (Json::Null, None) => {}
            (Json::Null, Some(g)) => return Err(format!("{key}: want no variant, got {g}")),
            (want, None) => return Err(format!("{key}: want {want}, got no variant")),
            (want, Some(g)) => {
                if g.get("key") != want.get("key") || g.get("value") != want.get("value") {
                    return Err(format!("{key}: want {want}, got {g}"));
                }
            }
        }
    }
    let extra: Vec<&String> = got.keys().filter(|k| !expected.contains_key(*k)).collect();
    if !extra.is_empty() {
        return Err(format!(
            "results hold flags the case does not expect: {extra:?}"
        ));
    }
    for (key, want) in case.expected_segments.iter().flatten() {
        let name = results
            .get(key)
            .and_then(|r| r.detail().segment_name.map(str::to_owned));
        if want.as_str() != name.as_deref() {
            return Err(format!("{key}: want segment {want}, got {name:?}"));
        }
    }
    Ok(())
}
