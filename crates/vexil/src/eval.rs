//! `vexil eval`: evaluates flags offline for one user or a stream of users, with the same engine
//! and the same result map as the server's SDK endpoints.
//!
//! [`run`] does the process I/O (files, stdin, stdout, stderr); [`Evaluator`] does the work
//! against any `BufRead` and `Write`, so tests drive it in memory. The stream is processed one
//! line at a time with one reused input buffer and one reused output buffer: memory stays
//! bounded by the largest line, whatever the number of users.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use serde::Serialize;
use vexil_eval::{
    evaluate, explain, Context, FlagExplanation, FlagSet, Object, PreparedResults, Results, Value,
};

use crate::cli::EvalArgs;

/// Runs `vexil eval`. Fatal problems (unreadable or invalid flags, invalid `--user`, an
/// unreadable users file, a failed write) are errors; problems with one user are not, they print
/// an error line and set the exit status to 1.
pub fn run(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let flags = load_flags(&args.flags)?;
    let mut stderr = io::stderr().lock();
    // A closed stderr must not stop the evaluation, so diagnostics ignore write failures.
    for w in flags.warnings() {
        let _ = writeln!(
            stderr,
            "warning: flag {:?}: {}: {}",
            w.flag_key, w.path, w.message
        );
    }
    for key in args.flag_keys.iter().filter(|k| flags.get(k).is_none()) {
        let _ = writeln!(
            stderr,
            "warning: --flag-keys: flag {key:?} is not in {}; it is ignored",
            args.flags.display()
        );
    }

    let mut evaluator = Evaluator::new(&flags, &args.flag_keys, args.explain);
    // Locking once and buffering matters at 100,000 lines: an unbuffered stdout makes one
    // system call per line.
    let mut out = BufWriter::new(io::stdout().lock());
    let summary = match (&args.users.user, &args.users.users) {
        (Some(json), _) => evaluator.one(json, &mut out)?,
        (None, Some(path)) if path.as_os_str() == "-" => {
            evaluator.stream(io::stdin().lock(), "standard input", &mut out, &mut stderr)?
        }
        (None, Some(path)) => {
            let file = File::open(path)
                .with_context(|| format!("opening users file {}", path.display()))?;
            let name = path.display().to_string();
            evaluator.stream(BufReader::new(file), &name, &mut out, &mut stderr)?
        }
        // clap's argument group requires one of the two; this keeps the match total anyway.
        (None, None) => bail!("one of --user and --users is required"),
    };
    out.flush().context("writing results")?;
    Ok(summary.exit_code())
}

fn load_flags(path: &Path) -> anyhow::Result<FlagSet> {
    let context = || format!("reading flags from {}", path.display());
    let text = std::fs::read_to_string(path).with_context(context)?;
    FlagSet::from_json(&text).with_context(context)
}

/// How many lines evaluated and how many printed an error.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Lines that printed a result.
    pub evaluated: u64,
    /// Lines that printed `{"error": ...}`.
    pub failed: u64,
}

impl Summary {
    fn record(&mut self, ok: bool) {
        if ok {
            self.evaluated += 1;
        } else {
            self.failed += 1;
        }
    }

    /// 0 when every line evaluated, 1 when some line printed an error.
    pub fn exit_code(&self) -> ExitCode {
        if self.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    }
}

/// Evaluates users against one flag set and writes one JSON line per user.
pub struct Evaluator<'a> {
    flags: &'a FlagSet,
    /// Every result the flags can give, serialized once: a user's line is copied together from
    /// them.
    prepared: PreparedResults,
    /// `--flag-keys`, used by every user that does not bring its own.
    default_keys: Vec<Box<str>>,
    explain: bool,
    /// The output line being built. Rendering into it before writing means a line that fails
    /// halfway is replaced by an error line instead of leaving half a JSON object on stdout.
    line: Vec<u8>,
}

/// The `--explain` output of one user.
#[derive(Serialize)]
struct Explained<'r, 'a> {
    results: &'r Results<'a>,
    explanations: &'r [FlagExplanation],
}

#[derive(Serialize)]
struct ErrorLine<'m> {
    error: &'m str,
}

impl<'a> Evaluator<'a> {
    /// `flag_keys` empty means every flag.
    pub fn new(flags: &'a FlagSet, flag_keys: &[String], explain: bool) -> Self {
        let default_keys = flag_keys.iter().map(|k| k.as_str().into()).collect();
        Evaluator {
            flags,
            prepared: PreparedResults::new(flags),
            default_keys,
            explain,
            line: Vec::new(),
        }
    }

    /// Evaluates the user given as `--user`. Invalid JSON or a non-object is fatal: there is no
    /// stream to go on with.
    pub fn one<W: Write>(&mut self, user_json: &str, out: &mut W) -> anyhow::Result<Summary> {
        let user = Value::from_json_str(user_json).context("--user: invalid JSON")?;
        if !matches!(user, Value::Object(_)) {
            bail!("--user: expected a JSON object, found {}", kind(&user));
        }
        let mut summary = Summary::default();
        summary.record(self.write_user(user, None, out)?);
        Ok(summary)
    }

    /// Evaluates every non-blank line of `input` (JSON Lines), writing one line to `out` per
    /// input line, in order. A malformed line is also reported on `diagnostics`. `source` names
    /// the input in read errors.
    pub fn stream<R: BufRead, W: Write, E: Write>(
        &mut self,
        mut input: R,
        source: &str,
        out: &mut W,
        diagnostics: &mut E,
    ) -> anyhow::Result<Summary> {
        // Bytes rather than `read_line`, so that a line that is not UTF-8 is one bad line
        // rather than a read error that ends the stream.
        let mut raw = Vec::new();
        let mut number = 0u64;
        let mut summary = Summary::default();
        loop {
            raw.clear();
            let read = input
                .read_until(b'\n', &mut raw)
                .with_context(|| format!("reading users from {source}"))?;
            if read == 0 {
                return Ok(summary);
            }
            number += 1;
            let ok = match parse_line(&raw) {
                Ok(None) => continue,
                Ok(Some(line)) => self.write_user(line.user, line.flag_keys.as_deref(), out)?,
                Err(problem) => {
                    let message = format!("line {number}: {problem}");
                    let _ = writeln!(diagnostics, "error: {message}");
                    self.write_error(&message, out)?;
                    false
                }
            };
            summary.record(ok);
        }
    }

    /// Evaluates one user and writes its line; `Ok(false)` when the line is an error line.
    /// Only a failed write is an `Err`.
    fn write_user<W: Write>(
        &mut self,
        user: Value,
        flag_keys: Option<&[Box<str>]>,
        out: &mut W,
    ) -> anyhow::Result<bool> {
        let context = Context::from_sdk_user(user);
        let flag_keys = flag_keys.unwrap_or(&self.default_keys);
        let rendered = render(
            self.flags,
            &self.prepared,
            &context,
            flag_keys,
            self.explain,
            &mut self.line,
        );
        match rendered {
            Ok(()) => {
                self.line.push(b'\n');
                out.write_all(&self.line).context("writing results")?;
                Ok(true)
            }
            Err(err) => {
                self.write_error(&format!("{err:#}"), out)?;
                Ok(false)
            }
        }
    }

    fn write_error<W: Write>(&mut self, message: &str, out: &mut W) -> anyhow::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, &ErrorLine { error: message })?;
        self.line.push(b'\n');
        out.write_all(&self.line).context("writing results")
    }
}

/// Evaluates and serializes one user's output into `line`.
fn render(
    flags: &FlagSet,
    prepared: &PreparedResults,
    context: &Context,
    flag_keys: &[Box<str>],
    explained: bool,
    line: &mut Vec<u8>,
) -> anyhow::Result<()> {
    line.clear();
    if explained {
        let (results, explanations) = explain(flags, context, flag_keys)?;
        serde_json::to_writer(
            line,
            &Explained {
                results: &results,
                explanations: &explanations,
            },
        )?;
    } else {
        let results = evaluate(flags, context, flag_keys)?;
        prepared.write_object(&results, line);
    }
    Ok(())
}

/// One input line: a user and, from a wrapper, the flags to evaluate for it.
struct Line {
    user: Value,
    flag_keys: Option<Vec<Box<str>>>,
}

/// Why an input line could not be evaluated.
#[derive(Debug)]
enum LineProblem {
    NotUtf8(std::str::Utf8Error),
    Json(serde_json::Error),
    NotObject(&'static str),
    FlagKeys(&'static str),
}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineProblem::NotUtf8(err) => write!(f, "not UTF-8: {err}"),
            LineProblem::Json(err) => {
                // serde_json ends its message with "at line 1 column N"; the line number is
                // the input line's, already given, so only the column is kept.
                let message = err.to_string();
                let suffix = format!(" at line {} column {}", err.line(), err.column());
                let message = message.strip_suffix(&suffix).unwrap_or(&message);
                write!(f, "invalid JSON at column {}: {message}", err.column())
            }
            LineProblem::NotObject(found) => write!(f, "expected a user object, found {found}"),
            LineProblem::FlagKeys(found) => {
                write!(f, "flag_keys: expected an array of strings, found {found}")
            }
        }
    }
}

/// Parses one line; `Ok(None)` for a blank line.
fn parse_line(raw: &[u8]) -> Result<Option<Line>, LineProblem> {
    let text = std::str::from_utf8(raw).map_err(LineProblem::NotUtf8)?;
    // Only the line end is cut, so that error columns count from the start of the line;
    // `\r` covers files with CRLF line ends.
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    // Blank means JSON whitespace only.
    if text
        .trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
        .is_empty()
    {
        return Ok(None);
    }
    let value = Value::from_json_str(text).map_err(LineProblem::Json)?;
    let Value::Object(mut object) = value else {
        return Err(LineProblem::NotObject(kind(&value)));
    };
    if !is_wrapper(&object) {
        return Ok(Some(Line {
            user: Value::Object(object),
            flag_keys: None,
        }));
    }
    let user = object.remove("user").unwrap_or_default();
    let flag_keys = match object.remove("flag_keys") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .into_iter()
                .map(|item| match item {
                    Value::String(key) => Ok(key),
                    other => Err(LineProblem::FlagKeys(kind(&other))),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(other) => return Err(LineProblem::FlagKeys(kind(&other))),
    };
    Ok(Some(Line { user, flag_keys }))
}

/// `{"user": {...}, "flag_keys": [...]}` with nothing else. A user object may well have a
/// property called `user`, so the rule is strict: any other member makes it a user.
fn is_wrapper(object: &Object) -> bool {
    matches!(object.get("user"), Some(Value::Object(_)))
        && object.iter().all(|(k, _)| k == "user" || k == "flag_keys")
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Int(_) | Value::UInt(_) | Value::Double(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
