//! The SDK's one error type. Evaluation never returns it: an evaluation that cannot give a
//! variant gives the caller's fallback with an [`crate::ErrorCode`] instead.

use std::time::Duration;

/// What can go wrong when starting a client, downloading or remote-evaluating.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server URL of a config does not parse.
    #[error("invalid URL {url:?}")]
    InvalidUrl {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Flag configs (a bootstrap, a download or a stream event) do not compile.
    #[error("the flag configs do not compile")]
    Flags(#[source] vexil_eval::CompileError),
    /// A bootstrap file cannot be read.
    #[error("cannot read the bootstrap file {path:?}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A request failed on the way (connection refused, reset, timeout, bad TLS).
    #[error("the request to Vexil failed")]
    Http(#[source] reqwest::Error),
    /// The server answered with an unexpected status.
    #[error("Vexil answered {status}")]
    Status {
        status: u16,
        /// `Retry-After`, when the answer carried one.
        retry_after: Option<Duration>,
    },
    /// The server's answer is not the JSON expected.
    #[error("Vexil's answer is not the JSON expected")]
    Json(#[source] serde_json::Error),
    /// A user given as JSON is not a JSON object.
    #[error("a user must be a JSON object")]
    InvalidUser,
    /// A wait gave up: `wait_until_ready`, a request, or a blocking client's `flush` or
    /// `shutdown`.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The client needs a tokio runtime to run its background tasks.
    #[error("no tokio runtime: start the client from inside one")]
    NoRuntime(#[source] tokio::runtime::TryCurrentError),
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    /// A blocking client could not start its runtime (its thread, or the runtime's drivers).
    #[error("cannot start the blocking client's runtime")]
    Runtime(#[source] std::io::Error),
    /// A blocking client was shut down: what needs its runtime cannot run any more.
    #[error("the blocking client was shut down")]
    ShutDown,
}

impl Error {
    /// Whether trying the same request again may succeed (network errors, 429, 5xx), as
    /// `sdk-protocol.md` §A2 prescribes for SDKs.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Http(_) | Error::Timeout(_) => true,
            Error::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}
