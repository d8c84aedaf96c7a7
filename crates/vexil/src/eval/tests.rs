//! `Evaluator` driven over in-memory input and output. The flags are small configs in the
//! `/sdk/v2/flags` model; expected variants come from the shared vectors (computed with
//! Amplitude's reference engine), not from this engine.

use serde_json::{json, Value as Json};

use super::*;

/// `by-country` serves `on` to NZ; `split` is the 50/50 experiment of
/// `vectors/engine/bucket-distribution-2way.json` (user-1 gets treatment, user-2 control).
const FLAGS: &str = r#"[
  {"key": "by-country",
   "segments": [{"conditions": [[{"selector": ["context", "user", "country"], "op": "is", "values": ["NZ"]}]],
                 "variant": "on", "metadata": {"segmentName": "Kiwis"}},
                {"variant": "off"}],
   "variants": {"on": {"key": "on", "value": "on", "payload": {"n": 1}}, "off": {"key": "off", "metadata": {"default": true}}}},
  {"key": "split",
   "segments": [{"bucket": {"selector": ["context", "user", "user_id"], "salt": "d2Way5050",
                            "allocations": [{"range": [0, 100], "distributions": [
                              {"variant": "control", "range": [0, 21474837]},
                              {"variant": "treatment", "range": [21474836, 42949673]}]}]},
                 "variant": "off"}],
   "variants": {"control": {"key": "control", "value": "control"}, "treatment": {"key": "treatment", "value": "treatment"},
                "off": {"key": "off", "metadata": {"default": true}}}}
]"#;

/// The flags of `vectors/engine/deps-cycle.json`: `cyc-a` and `cyc-b` depend on each other,
/// `free` on nothing.
const CYCLE: &str = r#"[
  {"key": "cyc-a", "segments": [{"variant": "on"}], "variants": {"on": {"key": "on", "value": "on"}}, "dependencies": ["cyc-b"]},
  {"key": "cyc-b", "segments": [{"variant": "on"}], "variants": {"on": {"key": "on", "value": "on"}}, "dependencies": ["cyc-a"]},
  {"key": "free", "segments": [{"variant": "on"}], "variants": {"on": {"key": "on", "value": "on"}}}
]"#;

struct Run {
    lines: Vec<Json>,
    raw: String,
    diagnostics: String,
    summary: Summary,
}

fn stream(flags: &str, flag_keys: &[&str], explain: bool, input: &str) -> Run {
    let flags = FlagSet::from_json(flags).unwrap();
    let keys: Vec<String> = flag_keys.iter().map(|k| k.to_string()).collect();
    let mut evaluator = Evaluator::new(&flags, &keys, explain);
    let (mut out, mut diagnostics) = (Vec::new(), Vec::new());
    let summary = evaluator
        .stream(input.as_bytes(), "test input", &mut out, &mut diagnostics)
        .unwrap();
    let raw = String::from_utf8(out).unwrap();
    let lines = raw
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    Run {
        lines,
        raw,
        diagnostics: String::from_utf8(diagnostics).unwrap(),
        summary,
    }
}

/// The variant keys of a result map, by flag, in output order.
fn keys(result: &Json) -> Vec<(String, String)> {
    let map = result
        .as_object()
        .unwrap_or_else(|| panic!("not a result map: {result}"));
    map.iter()
        .map(|(flag, r)| (flag.clone(), r["key"].as_str().unwrap().to_owned()))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|&(f, k)| (f.to_owned(), k.to_owned()))
        .collect()
}

#[test]
fn one_user_prints_the_result_map_sdks_receive() {
    let flags = FlagSet::from_json(FLAGS).unwrap();
    let mut out = Vec::new();
    let summary = Evaluator::new(&flags, &[], false)
        .one(r#"{"user_id": "user-1", "country": "NZ"}"#, &mut out)
        .unwrap();
    assert_eq!(
        summary,
        Summary {
            evaluated: 1,
            failed: 0
        }
    );

    // Byte for byte what serializing the engine's results gives, one line.
    let context = Context::from_sdk_user_json(r#"{"user_id": "user-1", "country": "NZ"}"#).unwrap();
    let direct =
        serde_json::to_string(&evaluate(&flags, &context, &[] as &[&str]).unwrap()).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), format!("{direct}\n"));

    let line: Json = serde_json::from_str(&direct).unwrap();
    assert_eq!(
        line["by-country"],
        json!({"key": "on", "value": "on", "payload": {"n": 1}, "metadata": {"segmentName": "Kiwis"}})
    );
    assert_eq!(
        line["split"],
        json!({"key": "treatment", "value": "treatment"})
    );
}

#[test]
fn one_user_refuses_what_is_not_a_json_object() {
    let flags = FlagSet::from_json(FLAGS).unwrap();
    for (input, expected) in [
        (r#"{"user_id": "#, "--user: invalid JSON"),
        (
            r#"["user-1"]"#,
            "--user: expected a JSON object, found an array",
        ),
        ("42", "--user: expected a JSON object, found a number"),
    ] {
        let mut out = Vec::new();
        let err = Evaluator::new(&flags, &[], false)
            .one(input, &mut out)
            .unwrap_err();
        assert!(format!("{err:#}").starts_with(expected), "{input}: {err:#}");
        assert!(out.is_empty(), "{input}: nothing is printed");
    }
}

#[test]
fn wrapper_lines_pick_their_flags() {
    let input = [
        // A plain user: `--flag-keys` (here `split`) applies.
        r#"{"user_id": "user-1", "country": "NZ"}"#,
        // Its own flag_keys replace `--flag-keys`.
        r#"{"user": {"user_id": "user-2", "country": "NZ"}, "flag_keys": ["by-country"]}"#,
        // An empty list means every flag.
        r#"{"user": {"user_id": "user-2", "country": "FR"}, "flag_keys": []}"#,
        // A wrapper without flag_keys (or with null) keeps `--flag-keys`.
        r#"{"user": {"user_id": "user-2", "country": "NZ"}}"#,
        r#"{"user": {"user_id": "user-1"}, "flag_keys": null}"#,
        // Another member besides user/flag_keys: this is a user whose property `user` is an object.
        r#"{"user": {"user_id": "user-2"}, "country": "NZ", "flag_keys": ["by-country"]}"#,
    ]
    .join("\n");
    let run = stream(FLAGS, &["split"], false, &input);
    assert_eq!(
        run.summary,
        Summary {
            evaluated: 6,
            failed: 0
        }
    );
    let got: Vec<_> = run.lines.iter().map(keys).collect();
    assert_eq!(
        got,
        [
            pairs(&[("split", "treatment")]),
            pairs(&[("by-country", "on")]),
            pairs(&[("by-country", "off"), ("split", "control")]),
            pairs(&[("split", "control")]),
            pairs(&[("split", "treatment")]),
            // No user_id at the top level, so the split has no bucketing value and serves `off`.
            pairs(&[("split", "off")]),
        ]
    );
    assert_eq!(run.diagnostics, "");
}

#[test]
fn blank_lines_print_nothing() {
    let input = "\n{\"user_id\": \"user-1\"}\n   \n\t\r\n{\"user_id\": \"user-2\"}\r\n\n";
    let run = stream(FLAGS, &["split"], false, input);
    assert_eq!(
        run.summary,
        Summary {
            evaluated: 2,
            failed: 0
        }
    );
    let got: Vec<_> = run.lines.iter().map(keys).collect();
    assert_eq!(
        got,
        [
            pairs(&[("split", "treatment")]),
            pairs(&[("split", "control")])
        ]
    );
}

#[test]
fn a_malformed_line_prints_an_error_with_its_number_and_the_stream_goes_on() {
    let input = "{\"user_id\": \"user-1\"}\n\n{\"user_id\": \n{\"user_id\": \"user-2\"}\n";
    let run = stream(FLAGS, &["split"], false, input);
    assert_eq!(
        run.summary,
        Summary {
            evaluated: 2,
            failed: 1
        }
    );
    assert_eq!(run.lines.len(), 3);
    assert_eq!(keys(&run.lines[0]), pairs(&[("split", "treatment")]));
    let error = run.lines[1]["error"].as_str().unwrap();
    assert!(
        error.starts_with("line 3: invalid JSON at column 12: EOF while parsing a value"),
        "{error}"
    );
    assert_eq!(run.diagnostics, format!("error: {error}\n"));
    assert_eq!(keys(&run.lines[2]), pairs(&[("split", "control")]));
}

#[test]
fn every_kind_of_malformed_line_is_named() {
    let cases: [(&[u8], &str); 8] = [
        (b"nope", "line 1: invalid JSON at column 2: expected ident"),
        (
            b"[{\"user_id\": \"u\"}]",
            "line 1: expected a user object, found an array",
        ),
        (
            b"\"user-1\"",
            "line 1: expected a user object, found a string",
        ),
        (b"null", "line 1: expected a user object, found null"),
        (
            b"{\"user\": {}, \"flag_keys\": \"split\"}",
            "line 1: flag_keys: expected an array of strings, found a string",
        ),
        (
            b"{\"user\": {}, \"flag_keys\": [\"split\", 3]}",
            "line 1: flag_keys: expected an array of strings, found a number",
        ),
        (b"{\"user_id\": \"\xff\"}", "line 1: not UTF-8: "),
        (
            b"  {\"user_id\": 1,}\r\n",
            "line 1: invalid JSON at column 17: trailing comma",
        ),
    ];
    let flags = FlagSet::from_json(FLAGS).unwrap();
    for (input, expected) in cases {
        let (mut out, mut diagnostics) = (Vec::new(), Vec::new());
        let summary = Evaluator::new(&flags, &[], false)
            .stream(input, "t", &mut out, &mut diagnostics)
            .unwrap();
        assert_eq!(
            summary,
            Summary {
                evaluated: 0,
                failed: 1
            }
        );
        let line: Json = serde_json::from_slice(&out).unwrap();
        let error = line["error"].as_str().unwrap();
        assert!(
            error.starts_with(expected),
            "got {error:?}, want {expected:?}"
        );
        assert!(String::from_utf8(diagnostics).unwrap().contains(error));
    }
}

#[test]
fn a_cycle_fails_only_the_users_that_reach_it() {
    let input = concat!(
        "{\"user_id\": \"a\"}\n",
        "{\"user\": {\"user_id\": \"a\"}, \"flag_keys\": [\"free\"]}\n",
        "{\"user\": {\"user_id\": \"a\"}, \"flag_keys\": [\"cyc-b\"]}\n",
    );
    let run = stream(CYCLE, &[], false, input);
    assert_eq!(
        run.summary,
        Summary {
            evaluated: 1,
            failed: 2
        }
    );
    for i in [0, 2] {
        let error = run.lines[i]["error"]
            .as_str()
            .unwrap_or_else(|| panic!("line {i}: {}", run.lines[i]));
        assert!(error.contains("cycle"), "{error}");
    }
    assert_eq!(run.lines[1], json!({"free": {"key": "on", "value": "on"}}));
    // Evaluation errors are results, not malformed input: stderr stays quiet.
    assert_eq!(run.diagnostics, "");
    assert_eq!(run.summary.exit_code(), ExitCode::from(1));
}

#[test]
fn explain_shows_the_segment_and_the_bucketing() {
    let input = "{\"user_id\": \"user-2\", \"country\": \"NZ\"}\n";
    let run = stream(FLAGS, &[], true, input);
    assert_eq!(
        run.summary,
        Summary {
            evaluated: 1,
            failed: 0
        }
    );
    let line = &run.lines[0];
    assert!(run.raw.starts_with(r#"{"results":{"#), "{}", run.raw);
    assert_eq!(line.as_object().unwrap().len(), 2);
    assert_eq!(
        keys(&line["results"]),
        pairs(&[("by-country", "on"), ("split", "control")])
    );

    let explanations = line["explanations"].as_array().unwrap();
    assert_eq!(explanations.len(), 2);
    let country = &explanations[0];
    assert_eq!(
        (&country["flag_key"], &country["variant"]),
        (&json!("by-country"), &json!("on"))
    );
    assert_eq!(country["segment_index"], 0);
    assert_eq!(
        country["segments"][0]["conditions"],
        json!({"result": "matched", "group": 0})
    );

    let split = &explanations[1];
    assert_eq!(
        (&split["flag_key"], &split["variant"]),
        (&json!("split"), &json!("control"))
    );
    assert_eq!(split["segment_index"], 0);
    let bucket = &split["segments"][0]["bucket"];
    let hash = vexil_eval::murmur3_x86_32(b"d2Way5050/user-2", 0);
    assert_eq!(bucket["value"], "user-2");
    assert_eq!(bucket["hash"], hash);
    assert_eq!(bucket["allocation_value"], hash % 100);
    assert_eq!(bucket["distribution_value"], hash / 100);
    assert_eq!(bucket["distribution"]["variant"], "control");
    assert_eq!(split["segments"][0]["outcome"]["outcome"], "served");
}

#[test]
fn explain_of_a_cycle_is_an_error_line_too() {
    let run = stream(CYCLE, &["cyc-a"], true, "{\"user_id\": \"a\"}\n");
    assert!(
        run.lines[0]["error"].as_str().unwrap().contains("cycle"),
        "{}",
        run.raw
    );
}

/// A stdout whose reader went away.
struct ClosedPipe;

impl Write for ClosedPipe {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::BrokenPipe.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_closed_output_stops_the_stream_with_the_io_error_in_the_chain() {
    let flags = FlagSet::from_json(FLAGS).unwrap();
    let input = "{\"user_id\": \"a\"}\n".repeat(3);
    let err = Evaluator::new(&flags, &[], false)
        .stream(input.as_bytes(), "t", &mut ClosedPipe, &mut Vec::new())
        .unwrap_err();
    let io = err
        .chain()
        .find_map(|e| e.downcast_ref::<io::Error>())
        .unwrap();
    assert_eq!(io.kind(), io::ErrorKind::BrokenPipe);
}
