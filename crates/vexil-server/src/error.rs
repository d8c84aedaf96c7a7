//! The one place errors become HTTP responses. A 4xx body is
//! `{"code", "message", "field"?, "errors"?, "blocking"?, "current_version"?}`; a 5xx says little
//! to the client and logs the whole error chain.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use vexil_core::{Error, FieldError};

/// The error body of every endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine code, e.g. `version_conflict`, `reserved_variant_key`.
    pub code: String,
    pub message: String,
    /// The request field at fault, as a JSON path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every invalid field, when there are several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The flags that block the change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocking: Vec<String>,
    /// On `version_conflict`: the version now stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
}

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Box<ErrorBody>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &str,
        message: impl Into<String>,
        field: Option<String>,
    ) -> Self {
        ApiError {
            status,
            body: Box::new(ErrorBody {
                code: code.to_string(),
                message: message.into(),
                field,
                errors: Vec::new(),
                blocking: Vec::new(),
                current_version: None,
            }),
        }
    }

    pub fn bad_request(code: &str, message: impl Into<String>, field: Option<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message, field)
    }
}

/// The status a service error answers with; the JSON API and the console share it.
pub fn status(err: &Error) -> StatusCode {
    match err {
        Error::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::Conflict { .. } | Error::VersionMismatch { .. } | Error::Blocked { .. } => {
            StatusCode::CONFLICT
        }
        Error::VersionRequired => StatusCode::PRECONDITION_REQUIRED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let status = status(&err);
        match err {
            Error::Invalid(errors) => {
                let first = errors.first().cloned();
                let mut e = ApiError::new(
                    status,
                    first.as_ref().map_or("invalid", |f| f.code),
                    first
                        .as_ref()
                        .map_or_else(|| "invalid request".to_string(), |f| f.message.clone()),
                    first.map(|f| f.field),
                );
                if errors.len() > 1 {
                    e.body.errors = errors;
                }
                e
            }
            Error::NotFound { entity, key } => ApiError::new(
                status,
                "not_found",
                format!("{entity} {key:?} not found"),
                None,
            ),
            Error::Conflict {
                code,
                message,
                field,
            } => ApiError::new(status, code, message, field),
            e @ Error::VersionMismatch { current, .. } => {
                let mut out = ApiError::new(status, "version_conflict", e.to_string(), None);
                out.body.current_version = Some(current);
                out
            }
            e @ Error::VersionRequired => ApiError::new(
                status,
                "version_required",
                format!("{e}: send If-Match with the version you read (the ETag of the resource)"),
                None,
            ),
            Error::Blocked {
                code,
                message,
                field,
                blocking,
            } => {
                let mut out = ApiError::new(status, code, message, field);
                out.body.blocking = blocking;
                out
            }
            Error::Forbidden(m) => ApiError::new(status, "forbidden", m, None),
            Error::Unauthorized(m) => ApiError::new(status, "unauthorized", m, None),
            other => {
                tracing::error!(error = %chain(&other), "request failed");
                ApiError::new(
                    status,
                    "internal",
                    "internal error; the server log has the details",
                    None,
                )
            }
        }
    }
}

pub use vexil_core::error::chain;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// Result of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
