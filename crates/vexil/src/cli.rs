//! The command line: clap types only. Every option carries a doc comment because clap turns
//! them into `--help`, which is the reference users read. Parsing does no I/O; `main` hands the
//! parsed values to the command that owns them.

use std::path::PathBuf;
use std::time::Duration;

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

    /// Relay deployments of an upstream Vexil without a database: follow them over the relay
    /// protocol (`/sdk/relay/v1/...`) and serve the same SDK endpoints from memory
    /// (`/sdk/v2/flags`, `/sdk/v2/vardata` and v1, the flag stream, cohorts, OFREP), with event
    /// batches spooled and forwarded upstream.
    ///
    /// The upstream is a `vexil serve` node or another edge. While it is unreachable the edge
    /// keeps serving the last snapshots (`/readyz` says `stale`); with `--data-dir` they also
    /// survive a restart, and spooled events survive one. A client deployment (browsers,
    /// mobile apps) is relayed with a server key of its project, given as another --key.
    /// Stops on SIGINT or SIGTERM.
    Edge(EdgeArgs),

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

impl DbArgs {
    /// Whether `--db` names a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        self.db.starts_with("postgres://") || self.db.starts_with("postgresql://")
    }

    /// The SQLite file `--db` names (when it is not PostgreSQL).
    pub fn sqlite_path(&self) -> &str {
        self.db.strip_prefix("sqlite://").unwrap_or(&self.db)
    }
}

/// Options of `vexil edge`.
#[derive(Debug, Args)]
pub struct EdgeArgs {
    /// The upstream's root URL: a `vexil serve` node or another edge.
    #[arg(long, env = "VEXIL_UPSTREAM", value_name = "URL")]
    pub upstream: String,

    /// A deployment key to follow and serve (repeat, or comma-separate in the environment
    /// variable). A server key relays by itself. A client key (for browsers and mobile apps)
    /// is relayed with a server key of its project, which must be among the --key options too:
    /// each is tried in order until the upstream takes one; `/readyz` and the log say so when
    /// none does.
    #[arg(
        long,
        env = "VEXIL_EDGE_KEYS",
        value_delimiter = ',',
        required = true,
        hide_env_values = true,
        value_name = "DEPLOYMENT_KEY"
    )]
    pub key: Vec<String>,

    /// The address to listen on; port 0 picks a free port (the chosen address is printed).
    #[arg(
        long,
        env = "VEXIL_LISTEN",
        default_value = "127.0.0.1:8081",
        value_name = "ADDR"
    )]
    pub listen: std::net::SocketAddr,

    /// A directory of the edge's own for the last snapshots (served at start while the
    /// upstream is unreachable) and the spool of event batches not yet forwarded. Without
    /// it both live only as long as the process.
    #[arg(long, env = "VEXIL_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Mebibytes of event batches the spool may hold; past it batches get 503 with
    /// Retry-After until the upstream takes some.
    #[arg(
        long,
        env = "VEXIL_SPOOL_MAX_MB",
        default_value_t = 256,
        value_name = "MIB"
    )]
    pub spool_max_mb: u64,

    /// The URL SDKs reach this edge at, for the OFREP event-stream URLs; without it the
    /// request's Host is used.
    #[arg(long, env = "VEXIL_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Also serve Prometheus metrics at `/metrics` on this address, without a key (for an
    /// internal network; the edge has no management keys, so only here): the SDK routes'
    /// requests as a node counts them, each followed deployment's revision and link to the
    /// upstream, the spool and forwarding.
    #[arg(long, env = "VEXIL_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// Log lines as text or as JSON objects.
    #[arg(long, env = "VEXIL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
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
    /// nodes or by `vexil flags import` and `vexil keys` (flags, management keys created or
    /// revoked, a rotated server secret).
    #[arg(
        long,
        env = "VEXIL_SYNC_INTERVAL_MS",
        default_value_t = 1000,
        value_name = "MS"
    )]
    pub sync_interval_ms: u64,

    /// Most connections open at once, event streams not counted; past it new connections are
    /// answered 503 with Retry-After and closed. Keep it and --max-streams within the open-file
    /// limit (`ulimit -n`).
    #[arg(
        long,
        env = "VEXIL_MAX_CONNECTIONS",
        default_value_t = 1024,
        value_name = "N"
    )]
    pub max_connections: usize,

    /// Most connections open at once from one client address (0: no per-address cap; use 0
    /// behind a proxy that does not pass client addresses, where every client has its address).
    #[arg(
        long,
        env = "VEXIL_MAX_CONNECTIONS_PER_IP",
        default_value_t = 256,
        value_name = "N"
    )]
    pub max_connections_per_ip: usize,

    /// Most SDK event streams open at once (flag streams and OFREP notifications).
    #[arg(
        long,
        env = "VEXIL_MAX_STREAMS",
        default_value_t = 20_000,
        value_name = "N"
    )]
    pub max_streams: usize,

    /// Seconds a client has to send a request's headers; also how long an idle keep-alive
    /// connection stays open.
    #[arg(
        long,
        env = "VEXIL_HEADER_TIMEOUT",
        default_value_t = 10,
        value_name = "SECONDS"
    )]
    pub header_timeout: u64,

    /// Seconds a client has to send a request's body, from the end of its headers (408 after).
    #[arg(
        long,
        env = "VEXIL_BODY_TIMEOUT",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    pub body_timeout: u64,

    /// Seconds a write to a client may stay blocked because the client stopped reading; then
    /// the connection is closed.
    #[arg(
        long,
        env = "VEXIL_WRITE_TIMEOUT",
        default_value_t = 30,
        value_name = "SECONDS"
    )]
    pub write_timeout: u64,

    /// Log lines as `text` or `json` (one object a line, with each request's trace id).
    #[arg(
        long,
        env = "VEXIL_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,

    /// Export traces (a span per request and per snapshot publish, continuing the caller's W3C
    /// `traceparent`) to this OpenTelemetry collector over OTLP/HTTP, e.g.
    /// `http://collector:4318` (`/v1/traces` is added unless the URL has a path). Off when
    /// absent. `OTEL_EXPORTER_OTLP_HEADERS` adds headers (an API key, say).
    #[arg(long, env = "VEXIL_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// A PEM file of certificate authorities to trust for `https://` webhook receivers besides
    /// the public ones (repeat for several; comma-separate in the environment variable).
    #[arg(
        long = "webhook-ca",
        env = "VEXIL_WEBHOOK_CA",
        value_delimiter = ',',
        value_name = "FILE"
    )]
    pub webhook_ca: Vec<PathBuf>,

    /// A network webhook deliveries may reach although it is loopback, private, link-local
    /// or otherwise special (`10.0.0.0/8`, `127.0.0.1`, `fd00::/8`; repeat for several,
    /// comma-separate in the environment variable). Deliveries to such addresses, the node's
    /// own services and the cloud's metadata endpoint among them, are refused otherwise.
    #[arg(
        long = "webhook-allow-network",
        env = "VEXIL_WEBHOOK_ALLOW_NETWORK",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub webhook_allow_network: Vec<vexil_server::IpNet>,

    /// Also serve Prometheus metrics at `/metrics` on this address, without a management key
    /// (for an internal network); on the main address `/metrics` always asks for one.
    #[arg(long, env = "VEXIL_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// Mebibytes of event batches held at once; past it batches wait briefly, then get 429
    /// with Retry-After (at least 20, the largest batch).
    #[arg(
        long,
        env = "VEXIL_INGEST_BUFFER_MB",
        default_value_t = 24,
        value_name = "MIB"
    )]
    pub ingest_buffer_mb: usize,

    /// Days product events (what metrics count) are kept, from their time; older ones are
    /// deleted every hour.
    #[arg(
        long,
        env = "VEXIL_EVENT_RETENTION_DAYS",
        default_value_t = 90,
        value_parser = clap::value_parser!(u32).range(1..=3650),
        value_name = "DAYS"
    )]
    pub event_retention_days: u32,

    /// A reverse proxy in front of the server, as an address or a network (`10.0.0.0/8`,
    /// `fd00::/8`); repeat, or comma-separate in the environment variable. For requests from
    /// one, the client is the right-most address of X-Forwarded-For that is not a trusted
    /// proxy: the sign-in throttle then counts wrong keys per real client, not per proxy.
    #[arg(
        long = "trusted-proxy",
        env = "VEXIL_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub trusted_proxies: Vec<vexil_server::IpNet>,

    /// This node's own directory for riding out an outage of the database. Event batches the
    /// database cannot take are spooled there (flushed to disk before the 200) and stored once
    /// it answers; the snapshots last served are kept there, so that the node starts and serves
    /// SDKs while the database is unreachable. Default: `vexil-state` beside a SQLite database
    /// file; with PostgreSQL, none unless given (each node needs a directory of its own, which
    /// a shared default cannot promise). `off` turns it off: batches then get 503 while the
    /// database is unreachable, and the server does not start without it.
    #[arg(long, env = "VEXIL_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<String>,

    /// Mebibytes of event batches the spool may hold; past it batches get 503 with Retry-After
    /// while the database is unreachable.
    #[arg(
        long,
        env = "VEXIL_SPOOL_MAX_MB",
        default_value_t = 256,
        value_name = "MIB"
    )]
    pub spool_max_mb: u64,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
            max_streams: self.max_streams.max(1),
            connections: vexil_server::ConnectionLimits {
                max_connections: self.max_connections.max(1),
                max_connections_per_ip: self.max_connections_per_ip,
                header_timeout: Duration::from_secs(self.header_timeout.max(1)),
                body_timeout: Duration::from_secs(self.body_timeout.max(1)),
                write_timeout: Duration::from_secs(self.write_timeout.max(1)),
            },
            ingest_buffer: self.ingest_buffer_mb.saturating_mul(1 << 20),
            event_retention_days: self.event_retention_days,
            trusted_proxies: self.trusted_proxies.clone(),
            state_dir: self.state_dir(),
            spool_max_bytes: self.spool_max_mb.max(1).saturating_mul(1 << 20),
            ..defaults
        }
    }

    /// The state directory: as given (`off` or empty: none), else `vexil-state` beside a
    /// SQLite database, else none.
    pub fn state_dir(&self) -> Option<PathBuf> {
        match self.state_dir.as_deref().map(str::trim) {
            Some("off" | "") => None,
            Some(dir) => Some(PathBuf::from(dir)),
            None if self.db.is_postgres() => None,
            None => {
                let db = std::path::Path::new(self.db.sqlite_path());
                let beside = db.parent().unwrap_or_else(|| std::path::Path::new(""));
                Some(beside.join("vexil-state"))
            }
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
    /// Revoke a key by id or name, ending its console sessions. Running servers refuse it
    /// within their sync interval (the server that revokes it through the API, at once).
    Revoke {
        #[command(flatten)]
        db: DbArgs,
        /// The key's id (or its name, when unique).
        key: String,
    },
    /// Replace the server secret, which keys the console's CSRF tokens and the OFREP stream
    /// tokens. Running servers switch within their sync interval; with a grace period the old
    /// secret keeps verifying tokens until it ends (forms already open, streams already handed
    /// out), with 0 it stops at once.
    RotateServerSecret {
        #[command(flatten)]
        db: DbArgs,
        /// Seconds the old secret keeps working (at most 604800, 7 days).
        #[arg(long, default_value_t = 0, value_name = "SECONDS")]
        grace_seconds: u32,
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
