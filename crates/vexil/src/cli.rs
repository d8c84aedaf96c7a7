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

    /// Run the server: the management API under /api/v1 (OpenAPI at /api/v1/openapi.json), the
    /// Amplitude-compatible SDK endpoints (/sdk/..., /2/httpapi) and OFREP (/ofrep/v1/...).
    ///
    /// On first start with an empty database it creates an admin management key and prints it
    /// once. Stops gracefully on SIGINT or SIGTERM, finishing requests in flight.
    Serve(ServeArgs),

    /// Manage the management API's keys directly in the database.
    #[command(subcommand)]
    Keys(KeysCommand),

    /// Work with flags directly in the database.
    #[command(subcommand)]
    Flags(FlagsCommand),
}

/// Where the data lives.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// A SQLite file (created on first start) or a `postgres://` URL.
    #[arg(
        long,
        env = "VEXIL_DB",
        default_value = "./vexil.db",
        value_name = "PATH|URL"
    )]
    pub db: String,
}

/// Options of `vexil serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,

    /// The address to listen on; port 0 picks a free port (the chosen address is printed).
    #[arg(
        long,
        env = "VEXIL_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub listen: std::net::SocketAddr,

    /// The URL SDKs reach this server at (e.g. `https://flags.example.com`), used in the OFREP
    /// event-stream URLs handed to providers; without it the request's Host is used.
    #[arg(long, env = "VEXIL_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Requests per second allowed per SDK key (bursts of as many); over it SDKs get 429 with
    /// Retry-After. Off when not given.
    #[arg(long, env = "VEXIL_RATE_LIMIT", value_name = "N")]
    pub rate_limit: Option<u32>,

    /// An origin browsers may call the SDK endpoints from (repeat, or comma-separate in the
    /// environment variable); without any, every origin may (`*`).
    #[arg(
        long = "cors-origin",
        env = "VEXIL_CORS_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub cors_origins: Vec<String>,

    /// Serve the flag stream (`/sdk/stream/v1/flags`); with `false` it answers 501 and SDKs
    /// poll instead.
    #[arg(long, env = "VEXIL_STREAMING", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub streaming: bool,

    /// Serve OFREP (`/ofrep/v1/...`) and its change notifications.
    #[arg(long, env = "VEXIL_OFREP", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub ofrep: bool,

    /// How often, in milliseconds, the server checks the database for changes made by other
    /// nodes or by `vexil flags import`.
    #[arg(
        long,
        env = "VEXIL_SYNC_INTERVAL_MS",
        default_value_t = 1000,
        value_name = "MS"
    )]
    pub sync_interval_ms: u64,
}

impl ServeArgs {
    /// The server's settings from these options.
    pub fn config(&self) -> vexil_server::ServerConfig {
        let defaults = vexil_server::ServerConfig::default();
        vexil_server::ServerConfig {
            streaming: self.streaming,
            ofrep: self.ofrep,
            ofrep_events: self.ofrep,
            public_url: self.public_url.clone(),
            rate_limit: self.rate_limit.filter(|&n| n > 0),
            cors_origins: self
                .cors_origins
                .iter()
                .filter(|o| !o.is_empty())
                .cloned()
                .collect(),
            publisher: vexil_core::sdk::PublisherOptions {
                sync_interval: std::time::Duration::from_millis(self.sync_interval_ms.max(50)),
                ..defaults.publisher.clone()
            },
            ..defaults
        }
    }
}

/// `vexil keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print its secret (shown once).
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// A name to recognise the key by; recorded in history as the author of changes.
        #[arg(long)]
        name: String,
        /// reader, writer or admin.
        #[arg(long, default_value = "writer")]
        role: String,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a key by id or name; it stops working at once.
    Revoke {
        #[command(flatten)]
        db: DbArgs,
        /// The key's id (or its name, when unique).
        key: String,
    },
}

/// `vexil flags ...`
#[derive(Debug, Subcommand)]
pub enum FlagsCommand {
    /// Import flag configs exported from Amplitude Experiment (the `/sdk/v2/flags` array) and
    /// optionally its cohorts; each flag is attached to the deployment and served as given.
    /// Importing the same files again changes nothing.
    Import {
        #[command(flatten)]
        db: DbArgs,
        /// JSON array of flag configs.
        #[arg(long, value_name = "FLAGS.json")]
        file: PathBuf,
        /// JSON array of cohorts: `{cohortId, groupType, memberIds, ...}`.
        #[arg(long, value_name = "COHORTS.json")]
        cohorts: Option<PathBuf>,
        /// The deployment (label or key) to attach the flags to.
        #[arg(long, value_name = "LABEL")]
        deployment: String,
        /// The project; needed only when several projects have a deployment with this label.
        #[arg(long)]
        project: Option<String>,
    },
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
