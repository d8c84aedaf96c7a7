//! Vexil's domain: projects, deployments, flags, variants, segments, cohorts and
//! prerequisites; their validation; compiling a flag into the engine's config; and the services
//! that authorize, validate, write (with history) and report what changed.
//!
//! The crate knows no HTTP, HTML or SQL: it holds an `Arc<dyn Store>` and talks to it in
//! transactions.

pub mod analysis;
pub mod compile;
pub mod diff;
pub mod error;
pub mod keys;
pub mod limits;
pub mod model;
pub mod rules;
pub mod sdk;
pub mod service;
pub mod validate;
pub mod webhooks;

pub use error::{Error, FieldError, Result};
pub use model::*;
pub use service::{Actor, Role, Services};
