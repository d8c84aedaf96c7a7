//! The command line: clap types only. Every option carries a doc comment because clap turns
//! them into `--help`, which is the reference users read. Parsing does no I/O; `main` hands the
//! parsed values to the command that owns them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Vexil: self-hosted feature flags and experimentation.
#[derive(Debug, Parser)]
#[command(name = "vexil", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Evaluate flags for one user or a stream of users, offline, with the server's engine.
    ///
    /// Prints one JSON line per user: the result map SDKs receive,
    /// `{"<flag>": {"key", "value"?, "payload"?, "metadata"?}}`, leaving out flags that give no
    /// variant. A user whose evaluation fails (a dependency cycle) or an input line that cannot be
    /// read prints `{"error": "..."}` on its line instead, and evaluation goes on with the next.
    ///
    /// Exit status: 0 when every user evaluated, 1 when some line printed an error, 2 when the run
    /// could not start or finish (bad arguments, an unreadable or invalid flags file, invalid
    /// `--user` JSON, an unreadable users file).
    #[command(after_long_help = EVAL_EXAMPLES)]
    Eval(EvalArgs),
}

const EVAL_EXAMPLES: &str = "Examples:
  vexil eval --flags flags.json --user '{\"user_id\": \"u1\", \"country\": \"NZ\"}'
  vexil eval --flags flags.json --users users.jsonl --flag-keys new-checkout,dark-mode
  producer | vexil eval --flags flags.json --users - --explain";

/// Options of `vexil eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// JSON array of flag configs, as `GET /sdk/v2/flags` returns them.
    ///
    /// An invalid file stops the run (exit 2) with the flag key and JSON path of the fault.
    /// Configs that evaluate but look like mistakes (an unknown operator, a regex that does not
    /// compile, a missing variant) are reported on stderr as warnings.
    #[arg(long, value_name = "FILE")]
    pub flags: PathBuf,

    /// Who to evaluate for.
    #[command(flatten)]
    pub users: UserSource,

    /// Evaluate only these flags (comma-separated) and the flags they depend on.
    ///
    /// Without it, every flag is evaluated. The flags they depend on are evaluated first and
    /// appear in the output too, as SDKs receive them. Unknown keys are ignored with a warning.
    #[arg(long, value_name = "KEYS", value_delimiter = ',')]
    pub flag_keys: Vec<String>,

    /// Print `{"results": {...}, "explanations": [...]}` per user instead of the result map.
    ///
    /// An explanation per evaluated flag says which segments were examined, why each matched
    /// or not (the first false condition of every OR-group, with the value it saw), and the
    /// bucketing value, hash, allocation and distribution of a bucketed segment.
    #[arg(long)]
    pub explain: bool,
}

/// Exactly one of `--user` and `--users`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct UserSource {
    /// One user, as the JSON object an Amplitude SDK sends (`user_id`, `device_id`,
    /// `user_properties`, `groups`, `group_properties`, `cohort_ids`, ...).
    #[arg(long, value_name = "JSON")]
    pub user: Option<String>,

    /// Users as JSON Lines (`-` reads standard input), streamed: one output line per
    /// non-blank input line, in order.
    ///
    /// A line is a user object, or `{"user": {...}, "flag_keys": [...]}` to pick that line's
    /// flags: its `flag_keys` replace `--flag-keys`, and an empty list means every flag. An
    /// object counts as such a wrapper when its `user` member is an object and it has no members
    /// other than `user` and `flag_keys`.
    #[arg(long, value_name = "FILE")]
    pub users: Option<PathBuf>,
}
