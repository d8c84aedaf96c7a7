//! Client configuration: plain structs with chained setters, filled in by the application (the
//! SDK reads no environment variable and no file unless asked to, through
//! [`LocalConfig::bootstrap_file`]).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::Error;

/// A secret (deployment key, project secret key) whose `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The library name sent in `X-Amp-Exp-Library` and in events.
pub(crate) const LIBRARY: &str = concat!("vexil-rust/", env!("CARGO_PKG_VERSION"));

/// Credentials and limits of cohort sync (`sdk-protocol.md` §A9).
#[derive(Debug, Clone)]
pub struct CohortSyncConfig {
    /// The project's API key.
    pub api_key: String,
    /// The project's secret key.
    pub secret_key: Secret,
    /// Cohorts larger than this are not downloaded (`maxCohortSize`).
    pub max_cohort_size: Option<u64>,
    /// How often unchanged cohorts are checked again (the spec asks for at least 60 s).
    pub poll_interval: Duration,
}

impl CohortSyncConfig {
    /// Cohort sync with the project's API key and secret key, checked every 60 s.
    pub fn new(api_key: impl Into<String>, secret_key: impl Into<String>) -> CohortSyncConfig {
        CohortSyncConfig {
            api_key: api_key.into(),
            secret_key: Secret::new(secret_key),
            max_cohort_size: None,
            poll_interval: Duration::from_secs(60),
        }
    }
}

/// Exposure and assignment events (`sdk-protocol.md` §A10), batched to `POST /batch`.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// The `api_key` of batches; `None` uses the deployment key.
    pub api_key: Option<Secret>,
    /// Where batches go; `None` is `<server_url>/batch`.
    pub url: Option<String>,
    /// Events waiting to be sent; past this, new ones are dropped and counted.
    pub queue_capacity: usize,
    /// A batch is sent when it has this many events...
    pub flush_at: usize,
    /// ... or this long after the last send.
    pub flush_interval: Duration,
    /// Attempts per batch on network errors, 429 and 5xx.
    pub max_attempts: u32,
    /// The same user, flag and variant is sent once within this window.
    pub dedup_window: Duration,
    /// Entries the de-duplication cache keeps.
    pub dedup_capacity: usize,
    /// Also send an `[Experiment] Assignment` for each `all_variants` call (off by default;
    /// Amplitude deprecated assignments in favour of exposures).
    pub assignments: bool,
    /// Back-off between attempts.
    pub retry_min: Duration,
    pub retry_max: Duration,
}

impl Default for EventsConfig {
    fn default() -> EventsConfig {
        EventsConfig {
            api_key: None,
            url: None,
            queue_capacity: 10_000,
            flush_at: 100,
            flush_interval: Duration::from_secs(10),
            max_attempts: 5,
            dedup_window: Duration::from_secs(24 * 3600),
            dedup_capacity: 100_000,
            assignments: false,
            retry_min: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
        }
    }
}

/// How the local client gets and follows flag configs.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// The deployment key (`server-...`).
    pub deployment_key: Secret,
    /// The Vexil root URL (`https://vexil.example.com`, no path).
    pub server_url: String,
    /// Follow `/sdk/stream/v1/flags` (else poll only).
    pub stream: bool,
    /// How often to poll `/sdk/v2/flags` when not streaming or while the stream is down.
    pub poll_interval: Duration,
    /// Timeout of each download, cohort request and connection attempt.
    pub request_timeout: Duration,
    /// The stream is dropped after this long without an event (the server sends a keep-alive
    /// every 10 s).
    pub stream_idle_timeout: Duration,
    /// Stream connections are renewed after about this long, as Amplitude's SDKs do.
    pub stream_max_age: Duration,
    /// Back-off between stream reconnections.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Flag configs to start from (the JSON array `/sdk/v2/flags` serves).
    pub bootstrap: Option<String>,
    /// Evaluate from the bootstrap only: no request ever.
    pub offline: bool,
    /// Local cohort targeting; `None`: the user's own `cohort_ids` are used as given.
    pub cohort_sync: Option<CohortSyncConfig>,
    /// Exposure tracking; `None`: no events.
    pub events: Option<EventsConfig>,
}

impl LocalConfig {
    /// A config for `server_url` and a deployment key, with the defaults: streaming, polling
    /// every 30 s while the stream is down, exposure events on, no cohort sync.
    pub fn new(server_url: impl Into<String>, deployment_key: impl Into<String>) -> LocalConfig {
        LocalConfig {
            deployment_key: Secret::new(deployment_key),
            server_url: server_url.into(),
            stream: true,
            poll_interval: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            stream_idle_timeout: Duration::from_secs(17),
            stream_max_age: Duration::from_secs(15 * 60),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(30),
            bootstrap: None,
            offline: false,
            cohort_sync: None,
            events: Some(EventsConfig::default()),
        }
    }

    /// A client that never calls the network and evaluates `bootstrap` (tests, examples, a
    /// service that must run with fixed flags).
    pub fn offline(bootstrap: impl Into<String>) -> LocalConfig {
        LocalConfig {
            offline: true,
            events: None,
            ..LocalConfig::new("http://offline.invalid", "offline")
        }
        .bootstrap(bootstrap)
    }

    /// Starts from these flag configs (the JSON array `/sdk/v2/flags` serves).
    #[must_use]
    pub fn bootstrap(mut self, flags_json: impl Into<String>) -> LocalConfig {
        self.bootstrap = Some(flags_json.into());
        self
    }

    /// Starts from the flag configs in a file (for example one saved from
    /// [`crate::LocalClient::flags_json`]).
    pub fn bootstrap_file(self, path: impl AsRef<Path>) -> Result<LocalConfig, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(self.bootstrap(text))
    }

    /// Streams updates (`true`, the default) or only polls.
    #[must_use]
    pub fn stream(mut self, on: bool) -> LocalConfig {
        self.stream = on;
        self
    }

    /// How often to poll while not streaming.
    #[must_use]
    pub fn poll_interval(mut self, every: Duration) -> LocalConfig {
        self.poll_interval = every;
        self
    }

    /// Timeout of each request.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> LocalConfig {
        self.request_timeout = timeout;
        self
    }

    /// Back-off bounds between stream reconnections.
    #[must_use]
    pub fn reconnect(mut self, min: Duration, max: Duration) -> LocalConfig {
        self.reconnect_min = min;
        self.reconnect_max = max;
        self
    }

    /// Syncs cohorts for local cohort targeting.
    #[must_use]
    pub fn cohort_sync(mut self, cohorts: CohortSyncConfig) -> LocalConfig {
        self.cohort_sync = Some(cohorts);
        self
    }

    /// Event settings; `None` turns exposure tracking off.
    #[must_use]
    pub fn events(mut self, events: Option<EventsConfig>) -> LocalConfig {
        self.events = events;
        self
    }
}

/// The remote evaluation client's settings.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// The deployment key.
    pub deployment_key: Secret,
    /// The Vexil root URL.
    pub server_url: String,
    /// Timeout of each attempt.
    pub timeout: Duration,
    /// Attempts after the first, on network errors, 429 and 5xx.
    pub retries: u32,
    /// Back-off between attempts.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Let the server record assignments (`X-Amp-Exp-Track: track`); off by default.
    pub track_assignments: bool,
    /// Let the server record exposures of the returned variants (`X-Amp-Exp-Exposure-Track`).
    pub track_exposures: bool,
}

impl RemoteConfig {
    /// Defaults: 10 s per attempt, 2 retries, no server-side tracking.
    pub fn new(server_url: impl Into<String>, deployment_key: impl Into<String>) -> RemoteConfig {
        RemoteConfig {
            deployment_key: Secret::new(deployment_key),
            server_url: server_url.into(),
            timeout: Duration::from_secs(10),
            retries: 2,
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            track_assignments: false,
            track_exposures: false,
        }
    }

    /// Timeout of each attempt.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> RemoteConfig {
        self.timeout = timeout;
        self
    }

    /// Attempts after the first.
    #[must_use]
    pub fn retries(mut self, retries: u32) -> RemoteConfig {
        self.retries = retries;
        self
    }
}

/// `server_url` without a trailing `/`, checked to parse.
pub(crate) fn base_url(server_url: &str) -> Result<String, Error> {
    let trimmed = server_url.trim_end_matches('/');
    reqwest::Url::parse(trimmed).map_err(|e| Error::InvalidUrl {
        url: server_url.to_owned(),
        source: Box::new(e),
    })?;
    Ok(trimmed.to_owned())
}
