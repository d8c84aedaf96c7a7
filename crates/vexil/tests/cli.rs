//! Runs the real `vexil` binary: every shared engine vector through `vexil eval --users`, the
//! exit statuses and messages of bad input, standard input, and a reader that goes away.

// clippy's allow-unwrap-in-tests covers `#[test]` functions but not the helpers they share here.
#![allow(
    clippy::unwrap_used,
    reason = "a panic in a test helper is a failed test with its location"
)]

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value as Json;
use vexil_eval::{Object, Value};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/vectors/engine"
);

/// A file in the temp directory, removed when dropped. Names hold the process id and a counter
/// so that parallel tests and parallel test runs never share one.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: impl AsRef<[u8]>) -> TempFile {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("vexil-cli-{}-{n}-{name}", std::process::id()));
        fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &OsStr {
        self.0.as_os_str()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn vexil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vexil"))
}

fn run(args: &[&OsStr]) -> Output {
    vexil().args(args).stdin(Stdio::null()).output().unwrap()
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

fn vectors_dir() -> Option<&'static Path> {
    let dir = Path::new(VECTORS);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{VECTORS} not found: CI must run the engine vectors"
    );
    println!("skipped: {VECTORS} not found");
    None
}

#[test]
fn every_engine_vector_gives_the_expected_results() {
    let Some(dir) = vectors_dir() else { return };
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension() == Some(OsStr::new("json")))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no vectors in {VECTORS}");
    let failures: Vec<String> = files.iter().flat_map(|f| check_vector_file(f)).collect();
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Runs one vector file through `vexil eval --users` and returns one message per wrong case.
fn check_vector_file(path: &Path) -> Vec<String> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let raw = fs::read_to_string(path).unwrap();
    // Users and flags are re-serialized from the engine's own `Value`, which keeps number
    // literals typed as written (`-0`, big integers); serde_json's value would not.
    let doc = Value::from_json_str(&raw).unwrap();
    let expectations: Json = serde_json::from_str(&raw).unwrap();
    let flags = TempFile::new(
        "flags.json",
        serde_json::to_string(doc.get("flags").unwrap()).unwrap(),
    );
    let Some(Value::Array(cases)) = doc.get("cases") else {
        panic!("{name}: no cases")
    };
    let mut users = String::new();
    for case in cases {
        let mut line = Object::new();
        line.insert("user", case.get("user").unwrap().clone());
        if let Some(keys) = case.get("flag_keys") {
            line.insert("flag_keys", keys.clone());
        }
        users.push_str(&serde_json::to_string(&Value::Object(line)).unwrap());
        users.push('\n');
    }
    let users = TempFile::new("users.jsonl", users);

    let out = run(&[
        "eval".as_ref(),
        "--flags".as_ref(),
        flags.path(),
        "--users".as_ref(),
        users.path(),
    ]);
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    if lines.len() != cases.len() {
        return vec![format!(
            "{name}: {} output lines for {} cases; status {}, stderr: {}",
            lines.len(),
            cases.len(),
            out.status,
            text(&out.stderr)
        )];
    }
    let mut failures = Vec::new();
    let mut any_error = false;
    for (i, (case, line)) in expectations["cases"]
        .as_array()
        .unwrap()
        .iter()
        .zip(lines)
        .enumerate()
    {
        let got: Json = serde_json::from_str(line).unwrap();
        any_error |= case.get("expected_error").is_some();
        if let Err(problem) = check_case(case, &got) {
            failures.push(format!(
                "{name} case {i} (user {}): {problem}\n    got: {line}",
                case["user"]
            ));
        }
    }
    let expected_status = if any_error { 1 } else { 0 };
    if out.status.code() != Some(expected_status) {
        failures.push(format!(
            "{name}: status {} (want {expected_status})",
            out.status
        ));
    }
    failures
}

fn check_case(case: &Json, got: &Json) -> Result<(), String> {
    if case.get("expected_error").is_some() {
        return match got["error"].as_str() {
            Some(error) if error.contains("cycle") => Ok(()),
            _ => Err("want an error line about a cycle".into()),
        };
    }
    let got = got.as_object().ok_or("not a result map")?;
    let expected: Vec<(&String, &Json)> = case["expected"]
        .as_object()
        .ok_or("the case has no expected map")?
        .iter()
        .filter(|(_, v)| !v.is_null())
        .collect();
    let mut got_flags: Vec<&String> = got.keys().collect();
    let mut want_flags: Vec<&String> = expected.iter().map(|(k, _)| *k).collect();
    got_flags.sort();
    want_flags.sort();
    if got_flags != want_flags {
        return Err(format!("flags {got_flags:?}, want {want_flags:?}"));
    }
    for (flag, want) in expected {
        let result = &got[flag];
        if result.get("key") != want.get("key") {
            return Err(format!(
                "{flag}: key {}, want {}",
                result["key"], want["key"]
            ));
        }
        // A variant without a value has no `value` member in either (README: `{"key", "value"?}`).
        if result.get("value") != want.get("value") {
            let show = |v: Option<&Json>| v.map_or("(none)".to_owned(), Json::to_string);
            return Err(format!(
                "{flag}: value {}, want {}",
                show(result.get("value")),
                show(want.get("value"))
            ));
        }
    }
    Ok(())
}

const FLAG: &str = r#"{"key": "dark-mode", "segments": [
    {"conditions": [[{"selector": ["context", "user", "country"], "op": "is", "values": ["NZ"]}]], "variant": "on"},
    {"variant": "off"}],
  "variants": {"on": {"key": "on", "value": "on"}, "off": {"key": "off"}}}"#;

#[test]
fn an_invalid_flags_file_names_the_flag_and_the_path() {
    let broken = r#"{"key": "broken", "variants": {}, "segments": [{"bucket": {"selector": [], "allocations": []}}]}"#;
    let flags = TempFile::new("bad-flags.json", format!("[{FLAG}, {broken}]"));
    let out = run(&[
        "eval".as_ref(),
        "--flags".as_ref(),
        flags.path(),
        "--user".as_ref(),
        "{}".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    let expected = format!(
        "error: reading flags from {}: flag \"broken\": [1].segments[0].bucket: invalid flag config: missing field `salt`",
        flags.0.display()
    );
    assert!(stderr.starts_with(&expected), "{stderr}");
    assert_eq!(
        stderr.matches("missing field").count(),
        1,
        "the cause is printed once: {stderr}"
    );
}

#[test]
fn fatal_problems_exit_2_with_a_message() {
    let flags = TempFile::new("flags.json", format!("[{FLAG}]"));
    let missing =
        std::env::temp_dir().join(format!("vexil-cli-{}-missing.json", std::process::id()));
    let cases: [(Vec<&OsStr>, &str); 4] = [
        (
            vec![
                "--flags".as_ref(),
                flags.path(),
                "--user".as_ref(),
                r#"{"user_id": "#.as_ref(),
            ],
            "error: --user: invalid JSON",
        ),
        (
            vec![
                "--flags".as_ref(),
                flags.path(),
                "--user".as_ref(),
                "[]".as_ref(),
            ],
            "error: --user: expected a JSON object",
        ),
        (
            vec![
                "--flags".as_ref(),
                missing.as_os_str(),
                "--user".as_ref(),
                "{}".as_ref(),
            ],
            "error: reading flags from",
        ),
        (
            vec![
                "--flags".as_ref(),
                flags.path(),
                "--users".as_ref(),
                missing.as_os_str(),
            ],
            "error: opening users file",
        ),
    ];
    for (args, expected) in cases {
        let out = run(&[&["eval".as_ref()], &args[..]].concat());
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with(expected), "{args:?}: {stderr}");
        assert_eq!(text(&out.stdout), "", "{args:?}");
    }
    // clap's own usage errors: neither or both of --user and --users.
    for args in [
        vec!["eval", "--flags", "f"],
        vec!["eval", "--flags", "f", "--user", "{}", "--users", "-"],
    ] {
        let out = vexil().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn one_user_prints_one_line_and_warnings_go_to_stderr() {
    let odd = r#"{"key": "odd", "segments": [{"conditions": [[{"selector": ["context", "user", "x"], "op": "glob", "values": ["a"]}]], "variant": "on"}],
                  "variants": {"on": {"key": "on"}}}"#;
    let flags = TempFile::new("flags.json", format!("[{FLAG}, {odd}]"));
    let user = r#"{"user_id": "u1", "country": "NZ"}"#;
    let out = run(&[
        "eval".as_ref(),
        "--flags".as_ref(),
        flags.path(),
        "--user".as_ref(),
        user.as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "{\"dark-mode\":{\"key\":\"on\",\"value\":\"on\"}}\n"
    );
    assert_eq!(
        text(&out.stderr),
        "warning: flag \"odd\": [1].segments[0].conditions[0][0].op: unknown operator \"glob\" never matches\n"
    );
}

/// Starts `vexil eval --flags FLAGS --users -` with every standard stream piped.
fn eval_from_stdin(flags: &TempFile) -> std::process::Child {
    vexil()
        .args([
            "eval".as_ref(),
            "--flags".as_ref(),
            flags.path(),
            "--users".as_ref(),
            "-".as_ref(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn users_from_standard_input() {
    let flags = TempFile::new("flags.json", format!("[{FLAG}]"));
    let mut child = eval_from_stdin(&flags);
    let input = "{\"country\": \"NZ\"}\n{oops}\n\n{\"country\": \"FR\"}\n";
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a bad line makes the status 1");
    let lines: Vec<Json> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["dark-mode"]["key"], "on");
    assert!(lines[1]["error"]
        .as_str()
        .unwrap()
        .starts_with("line 2: invalid JSON"));
    assert_eq!(lines[2]["dark-mode"]["key"], "off");
    assert!(
        text(&out.stderr).starts_with("error: line 2: invalid JSON"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_run_quietly() {
    let flags = TempFile::new("flags.json", format!("[{FLAG}]"));
    let mut child = eval_from_stdin(&flags);
    // Far more output than a pipe holds, so the binary is still writing when stdout closes. The
    // writer stops at the first failed write: the binary exits without reading all its input.
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let line = b"{\"user_id\": \"u\", \"country\": \"NZ\"}\n";
        for _ in 0..200_000 {
            if stdin.write_all(line).is_err() {
                break;
            }
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first, "{\"dark-mode\":{\"key\":\"on\",\"value\":\"on\"}}\n");
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn help_documents_every_option() {
    let out = vexil().args(["eval", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for option in [
        "--flags <FILE>",
        "--user <JSON>",
        "--users <FILE>",
        "--flag-keys <KEYS>",
        "--explain",
        "Exit status",
    ] {
        assert!(help.contains(option), "{option} missing from:\n{help}");
    }
    let out = vexil().args(["edge", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for option in [
        "--upstream <URL>",
        "--key <DEPLOYMENT_KEY>",
        "--listen <ADDR>",
        "--data-dir <DIR>",
        "--spool-max-mb <MIB>",
        "--public-url <URL>",
        "--metrics-listen <ADDR>",
        "--log-format",
        "A client key (for browsers and mobile apps)",
    ] {
        assert!(help.contains(option), "{option} missing from:\n{help}");
    }
}
