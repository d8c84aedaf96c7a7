//! Vexil's Rust SDK.
//!
//! - [`LocalClient`] evaluates flags in-process with Vexil's engine (`vexil-eval`, the same code
//!   the server runs). It downloads the deployment's flag configs (`GET /sdk/v2/flags`), follows
//!   changes over the stream (`GET /sdk/stream/v1/flags`), polls with `If-None-Match` while the
//!   stream is down and reconnects with capped, jittered back-off. It syncs the cohorts the
//!   flags target (`GET /sdk/v1/cohort/{id}`) and sends exposure events to `POST /batch` from a
//!   bounded queue in the background, with the product events a service records with
//!   [`LocalClient::track`] (`purchase`, …) for experiments' metrics. Evaluation reads an immutable snapshot swapped atomically
//!   on every change: it never waits for the network and never panics.
//! - [`Evaluation`] (from [`LocalClient::evaluation`]) prepares a user once for the engine and
//!   reads any number of flags for it against the same configs: the fast way to serve a
//!   request that reads several flags.
//! - [`RemoteClient`] asks the server (`POST /sdk/v2/vardata`) with a timeout and retries.
//! - With the `blocking` feature (on by default), `blocking::LocalClient` and
//!   `blocking::RemoteClient` are the same clients for code without an async runtime: each
//!   runs its tasks on a small runtime of its own, and none panics inside a tokio runtime.
//! - With the `openfeature` feature, `openfeature::VexilProvider` is an OpenFeature
//!   `FeatureProvider` over a [`LocalClient`], with OFREP's reasons and error codes.
//!
//! Why `blocking` is on by default: it costs nothing the async clients do not cost already.
//! It adds no dependency (its runtime is tokio's current-thread runtime, with the time and I/O
//! drivers the async clients use anyway) and no thread until a blocking client is started.
//! The applications it serves, a plain `fn main` or a synchronous web framework, are the ones
//! least likely to go looking for a feature. An async application that wants the smallest
//! build can depend on the SDK with `default-features = false`.
//!
//! A service starts even when Vexil is unreachable: give [`LocalConfig::bootstrap`] (or
//! [`LocalConfig::bootstrap_file`]) the configs `/sdk/v2/flags` served last, and every typed
//! accessor takes the fallback to use when a flag cannot give a value.
//!
//! ```
//! use vexil_sdk::{LocalClient, LocalConfig, Reason, User};
//!
//! // The JSON `/sdk/v2/flags` serves: here one release flag for Canada.
//! let flags = r#"[{"key": "new-checkout",
//!     "metadata": {"flagType": "release", "flagVersion": 3, "deployed": true},
//!     "variants": {"on": {"key": "on", "value": "on"}, "off": {"key": "off", "metadata": {"default": true}}},
//!     "segments": [
//!         {"metadata": {"segmentName": "Canada"}, "variant": "on",
//!          "conditions": [[{"selector": ["context", "user", "country"], "op": "is", "values": ["CA"]}]]},
//!         {"metadata": {"segmentName": "All Other Users"}, "variant": "off"}]}]"#;
//! // Offline: no network at all, only the bootstrap.
//! let client = LocalClient::start(LocalConfig::offline(flags))?;
//!
//! let canadian = User::new().with_user_id("u-1").with_field("country", "CA");
//! assert!(client.is_enabled(&canadian, "new-checkout"));
//! assert_eq!(client.string_variation(&canadian, "new-checkout", "old"), "on");
//! assert_eq!(client.detail(&canadian, "new-checkout").reason, Reason::TargetingMatch);
//!
//! let other = User::new().with_user_id("u-2").with_field("country", "NZ");
//! assert_eq!(client.string_variation(&other, "new-checkout", "old"), "old");
//! assert_eq!(client.variant(&other, "new-checkout").map(|v| v.key), Some("off".to_owned()));
//! // Unknown flags give the fallback too.
//! assert!(!client.bool_variation(&other, "no-such-flag", false));
//! # Ok::<(), vexil_sdk::Error>(())
//! ```
//!
//! Against a server (inside a tokio runtime):
//!
//! ```no_run
//! # async fn run() -> Result<(), vexil_sdk::Error> {
//! use std::time::Duration;
//! use vexil_sdk::{CohortSyncConfig, LocalClient, LocalConfig, User};
//!
//! let config = LocalConfig::new("https://vexil.example.com", "server-...")
//!     .cohort_sync(CohortSyncConfig::new("project-api-key", "project-secret-key"));
//! let client = LocalClient::start(config)?;
//! if client.wait_until_ready(Duration::from_secs(2)).await.is_err() {
//!     // Keep going: fallbacks (or the bootstrap) until Vexil answers.
//! }
//! let user = User::new().with_user_id("u-1");
//! let layout = client.string_variation(&user, "checkout-layout", "classic");
//! # let _ = layout;
//! // What an experiment on the layout measures: a metric counts or sums these.
//! let _ = client.track(&user, "Purchase", serde_json::json!({"revenue": 42.5}));
//! client.close().await; // sends the events still queued
//! # Ok(())
//! # }
//! ```

pub mod backoff;
#[cfg(feature = "blocking")]
pub mod blocking;
mod config;
mod error;
mod evaluation;
mod events;
mod local;
mod remote;
mod snapshot;
pub mod sse;
mod sync;
mod user;
mod variant;

#[cfg(feature = "openfeature")]
pub mod openfeature;

pub use config::{CohortSyncConfig, EventsConfig, LocalConfig, RemoteConfig, Secret};
pub use error::Error;
pub use evaluation::Evaluation;
pub use events::{EventStats, TrackError};
pub use local::{LocalClient, Status};
pub use remote::RemoteClient;
pub use user::User;
pub use variant::{Detail, ErrorCode, Reason, Variant};
