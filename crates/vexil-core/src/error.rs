//! The domain's error type. Every refusal carries a stable `code`, a message a person can act
//! on and, where one field is at fault, that field's path (`variants[1].key`); refusals caused
//! by other flags name them in `blocking`.

use vexil_store::StoreError;

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON path of the field in the request, e.g. `segments[0].conditions[1].values[0]`.
    pub field: String,
    /// Stable machine code, e.g. `reserved_variant_key`.
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

/// What a service call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or breaks a validation rule; the first error is the headline.
    #[error("{}", .0.first().map_or("invalid request", |e| e.message.as_str()))]
    Invalid(Vec<FieldError>),
    /// The named entity does not exist.
    #[error("{entity} {key:?} not found")]
    NotFound { entity: &'static str, key: String },
    /// A create would duplicate an existing key or name.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    /// The write was based on a version that is no longer current.
    #[error("{entity} {key:?} was changed by someone else: it is at version {current}, the request was based on version {expected}")]
    VersionMismatch {
        entity: &'static str,
        key: String,
        expected: i64,
        current: i64,
    },
    /// An update did not say which version it was based on.
    #[error("this change must name the version it is based on (If-Match header)")]
    VersionRequired,
    /// A rule refuses the change because of other flags (`blocking`) or the entity's state.
    #[error("{message}")]
    Blocked {
        code: &'static str,
        message: String,
        field: Option<String>,
        blocking: Vec<String>,
    },
    /// The caller's key may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The caller is not authenticated.
    #[error("{0}")]
    Unauthorized(String),
    /// The store failed.
    #[error("storage failed")]
    Store(#[source] StoreError),
    /// Something outside the request failed (the random source, a thread).
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored document could not be read back.
    #[error("stored {entity} {key:?} is unreadable")]
    Corrupt {
        entity: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound { entity, key } => Error::NotFound { entity, key },
            StoreError::Conflict { entity, key, field } => Error::Conflict {
                code: "already_exists",
                message: format!("{entity} {key:?} already exists: its {field} is taken"),
                field: Some(field.to_string()),
            },
            StoreError::VersionMismatch {
                entity,
                key,
                current,
            } => Error::VersionMismatch {
                entity,
                key,
                expected: current - 1,
                current,
            },
            other => Error::Store(other),
        }
    }
}

impl Error {
    /// Whether the store could not be reached or was too busy: the call may succeed later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Store(StoreError::Unavailable(_)))
    }

    /// A single-field validation error.
    pub fn invalid(
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Error::Invalid(vec![FieldError::new(field, code, message)])
    }

    /// A refusal caused by other flags.
    pub fn blocked(code: &'static str, message: impl Into<String>, blocking: Vec<String>) -> Self {
        Error::Blocked {
            code,
            message: message.into(),
            field: None,
            blocking,
        }
    }
}

/// Result of service calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error and its sources, `a: b: c`, for logs.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
