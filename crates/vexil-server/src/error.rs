//! The one place errors become HTTP responses. A 4xx body is
//! `{"code", "message", "field"?, "errors"?, "blocking"?, "current_version"?}`; a 5xx says little
//! to the client and logs the whole error chain.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use vexil_core::{Error, FieldError};

use crate::throttle::TooManyAttempts;

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
    /// Seconds to send as `Retry-After` (429).
    pub retry_after: Option<u64>,
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
            retry_after: None,
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
        e if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
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
            e if e.is_unavailable() => {
                tracing::warn!(error = %chain(&e), "the store is unavailable");
                let mut out = ApiError::new(
                    status,
                    "store_unavailable",
                    "the database is unavailable or busy; retry shortly",
                    None,
                );
                out.retry_after = Some(1);
                out
            }
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

/// A client that failed to give a good management key too often: 429 with `Retry-After`. The
/// console shows the same status and message on its sign-in page.
impl From<TooManyAttempts> for ApiError {
    fn from(refused: TooManyAttempts) -> Self {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            refused.to_string(),
            Some("Authorization".to_string()),
        );
        e.retry_after = Some(refused.retry_after_secs());
        e
    }
}

pub use vexil_core::error::chain;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after;
        let failure = match (self.status, self.body.code.as_str()) {
            (_, "store_unavailable") => Some("unavailable"),
            (StatusCode::INTERNAL_SERVER_ERROR, _) => Some("other"),
            _ => None,
        };
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(kind) = failure {
            response
                .extensions_mut()
                .insert(crate::metrics::StoreFailure(kind));
        }
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Result of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
