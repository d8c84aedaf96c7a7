//! Request extractors whose failures are JSON errors naming the field: JSON bodies (with the
//! path of the first bad field), query strings, path segments, `If-Match`, and the management
//! key of `Authorization: Bearer` (wrong keys count against the client in the sign-in
//! throttle).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use vexil_core::Actor;

use crate::error::ApiError;
use crate::AppState;

/// A JSON body; a syntax or type error answers 400 with the path of the field.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(&req) {
            return Err(not_json());
        }
        let bytes = body(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// A JSON body the client may leave out: an empty body, or `null`, stands for `T::default()`,
/// as for endpoints whose every field has a default (a rotation's grace period, say). The
/// OpenAPI document shows it as `Option<T>`.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = is_json(&req);
        let bytes = body(req, state).await?;
        if bytes.is_empty() {
            return Ok(OptionalJson(T::default()));
        }
        if !is_json {
            return Err(not_json());
        }
        parse_json::<Option<T>>(&bytes).map(|body| OptionalJson(body.unwrap_or_default()))
    }
}

fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"))
}

fn not_json() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as JSON with Content-Type: application/json",
        None,
    )
}

/// Reads a whole body, answering 413 past the router's limit.
pub async fn body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        let status = rejection.status();
        if crate::listen::caused_by::<crate::listen::BodyTimeout>(&rejection) {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                "the request body did not arrive in time",
                None,
            )
        } else if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "body_too_large",
                "the request body is larger than this endpoint accepts",
                None,
            )
        } else {
            ApiError::new(status, "invalid_body", rejection.body_text(), None)
        }
    })
}

/// Parses JSON with the path of the first field that does not fit.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let code = if inner.is_syntax() || inner.is_eof() {
            "invalid_json"
        } else {
            "invalid_field"
        };
        let field = (path != "." && !path.is_empty()).then_some(path);
        let message = match &field {
            Some(f) => format!("{f}: {inner}"),
            None => format!("invalid JSON body: {inner}"),
        };
        ApiError::bad_request(code, message, field)
    })?;
    de.end().map_err(|err| {
        ApiError::bad_request("invalid_json", format!("invalid JSON body: {err}"), None)
    })?;
    Ok(value)
}

/// A query string; a bad parameter answers 400 naming it.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|err| {
                let path = err.path().to_string();
                let inner = err.into_inner();
                // A missing parameter fails at the top level; serde's message names it.
                if path == "." || path.is_empty() {
                    ApiError::bad_request("invalid_query", format!("query string: {inner}"), None)
                } else {
                    ApiError::bad_request(
                        "invalid_query",
                        format!("query parameter {path}: {inner}"),
                        Some(path),
                    )
                }
            })
    }
}

/// The version a write is based on, from `If-Match` (`"3"`, `W/"3"` or `3`).
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let text = value.to_str().unwrap_or_default().trim();
        let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
        text.parse::<i64>().map(|v| IfMatch(Some(v))).map_err(|_| {
            ApiError::bad_request(
                "invalid_if_match",
                "If-Match holds the version the change is based on, e.g. \"3\" (the resource's ETag)",
                Some("If-Match".to_string()),
            )
        })
    }
}

/// The caller, authenticated by `Authorization: Bearer <management key>`.
pub struct Auth(pub Actor);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        // Authentication schemes are case-insensitive (RFC 9110 §11.1).
        let secret = header.and_then(|h| {
            let (scheme, rest) = h.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
        let Some(secret) = secret.filter(|s| !s.is_empty()) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send a management key as Authorization: Bearer <key>",
                Some("Authorization".to_string()),
            ));
        };
        // Only a key that fails counts against the client; a missing header guesses nothing.
        let client = state.throttle.client(&parts.extensions, &parts.headers);
        state.throttle.check(client)?;
        // The key cache answers without the store (the server loaded it at start), so this
        // runs here rather than on the blocking pool: a wrong key is refused at once even
        // while the database is down.
        let authenticated = state.services.keys.authenticate(secret);
        if let Err(vexil_core::Error::Unauthorized(_)) = authenticated {
            state.throttle.failed(client);
        }
        let actor = authenticated.map_err(ApiError::from)?;
        // Why the request changes what it changes, for the history and the audit log.
        let comment = match parts.headers.get(COMMENT_HEADER) {
            None => None,
            Some(value) => Some(String::from_utf8(value.as_bytes().to_vec()).map_err(|_| {
                ApiError::bad_request(
                    "invalid_comment",
                    format!("the {COMMENT_HEADER} header is not UTF-8 text"),
                    Some(COMMENT_HEADER.to_string()),
                )
            })?),
        };
        Ok(Auth(
            actor.with_comment(comment_of(comment, COMMENT_HEADER)?),
        ))
    }
}

/// The header that gives the reason for a change (recorded with its history entry).
pub const COMMENT_HEADER: &str = "Vexil-Comment";
/// The longest comment kept, in characters.
const COMMENT_LIMIT: usize = 2_000;

/// A change's comment from a request body (`comment`), checked like the header's.
pub fn comment(text: Option<String>) -> Result<Option<String>, ApiError> {
    comment_of(text, "comment")
}

fn comment_of(text: Option<String>, field: &str) -> Result<Option<String>, ApiError> {
    let Some(text) = text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > COMMENT_LIMIT {
        return Err(ApiError::bad_request(
            "comment_too_long",
            format!("a comment holds at most {COMMENT_LIMIT} characters"),
            Some(field.to_string()),
        ));
    }
    Ok(Some(text))
}

/// Path parameters; a bad one answers 400 naming it.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|rejection| ApiError::bad_request("invalid_path", rejection.body_text(), None))
    }
}
