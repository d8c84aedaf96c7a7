//! The server's settings, as a plain struct the binary fills in (from flags, environment and
//! defaults); the library reads nothing itself.

use std::path::PathBuf;
use std::time::Duration;

use vexil_core::sdk::PublisherOptions;

use crate::listen::ConnectionLimits;
use crate::proxy::IpNet;
use crate::webhooks::WebhookOptions;

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
    /// How snapshots are rebuilt. Its `sync_interval` also paces how often the server reloads
    /// the management keys and the server secret that other nodes and `vexil keys` change.
    pub publisher: PublisherOptions,
    /// Caps and timeouts of the connection layer.
    pub connections: ConnectionLimits,
    /// Bytes of event batches held at once (read, checked or being stored); a batch that does
    /// not fit waits briefly, then gets 429 with `Retry-After`. A batch counts its
    /// `Content-Length`, or the 20 MiB batch limit when compressed or of unknown length.
    pub ingest_buffer: usize,
    /// Days product events are kept (from their time) for the metrics of experiment analysis.
    pub event_retention_days: u32,
    /// Failed management-key attempts (API and console sign-in) allowed per client address and
    /// minute, refilled continuously; past them every attempt gets 429 until one refills. 0
    /// turns the throttle off.
    pub auth_failures_per_minute: u32,
    /// Most client addresses the sign-in throttle tracks; past it, it forgets those with the
    /// most attempts left.
    pub auth_throttle_clients: usize,
    /// Reverse proxies in front of the server: when a request comes from one, its client is
    /// the right-most address of `X-Forwarded-For` that is not a trusted proxy (the sign-in
    /// throttle counts failures per client). Empty: the peer is the client.
    pub trusted_proxies: Vec<IpNet>,
    /// This node's own directory for riding out an outage of the store: the snapshots it last
    /// published (`snapshots/`), from which it starts and serves SDKs while the store is
    /// unreachable, and the spool of event batches the store could not take (`spool/`),
    /// stored once it answers. `None`: neither; a batch then gets `503` while the store is
    /// unreachable, and the server does not start without the store. Never share one
    /// directory between two running nodes.
    pub state_dir: Option<PathBuf>,
    /// Bytes the spool may hold on disk; past it batches get `503` with `Retry-After`.
    pub spool_max_bytes: u64,
    /// How webhook events are delivered (retry delays, poll interval, timeout).
    pub webhooks: WebhookOptions,
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
            connections: ConnectionLimits::default(),
            ingest_buffer: 24 << 20,
            event_retention_days: vexil_core::sdk::DEFAULT_EVENT_RETENTION_DAYS,
            auth_failures_per_minute: 10,
            auth_throttle_clients: 100_000,
            trusted_proxies: Vec::new(),
            state_dir: None,
            spool_max_bytes: vexil_core::sdk::spool::DEFAULT_MAX_BYTES,
            webhooks: WebhookOptions::default(),
        }
    }
}
