//! The server's settings, as a plain struct the binary fills in (from flags, environment and
//! defaults); the library reads nothing itself.

use std::time::Duration;

use vexil_core::sdk::PublisherOptions;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Serve `/sdk/stream/v1/flags`; when off it answers 501 and SDKs poll.
    pub streaming: bool,
    /// Serve OFREP (`/ofrep/v1/...`); when off OFREP keys get 403.
    pub ofrep: bool,
    /// Hand out OFREP change notifications (`eventStreams`, `/sdk/ofrep/v1/events`).
    pub ofrep_events: bool,
    /// The URL SDKs reach this server at (`https://vexil.example.com`), for the OFREP event
    /// stream URL; when unset it is derived from the request's `Host`.
    pub public_url: Option<String>,
    /// Requests per second allowed per SDK key (with a burst of the same size); `None`: no limit.
    pub rate_limit: Option<u32>,
    /// Origins allowed by CORS; empty allows any (`*`).
    pub cors_origins: Vec<String>,
    /// Idle time after which a flag stream sends a keep-alive event.
    pub keepalive: Duration,
    /// Interval of the OFREP stream's `: ping` comments.
    pub ofrep_ping: Duration,
    /// Streams older than this are closed; SDKs reconnect.
    pub stream_max_age: Duration,
    /// Most open streams; past it new ones get 503.
    pub max_streams: usize,
    pub publisher: PublisherOptions,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            streaming: true,
            ofrep: true,
            ofrep_events: true,
            public_url: None,
            rate_limit: None,
            cors_origins: Vec::new(),
            keepalive: Duration::from_secs(10),
            ofrep_ping: Duration::from_secs(15),
            stream_max_age: Duration::from_secs(30 * 60),
            max_streams: 20_000,
            publisher: PublisherOptions::default(),
        }
    }
}
