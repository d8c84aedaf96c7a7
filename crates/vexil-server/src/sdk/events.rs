//! `POST /2/httpapi` and `POST /batch`: the exposure and assignment events of Amplitude's
//! analytics clients (`sdk-protocol.md` §A10). Every answer carries `code`, which those clients
//! read to decide whether to retry, drop or split a batch. With a state directory, a batch the
//! store cannot take is spooled to local disk and answered `200` like a stored one; see
//! `vexil_core::sdk::spool`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::json;
use vexil_core::model::DeploymentType;
use vexil_core::sdk::{ingest, Accepted, IngestError, Source};

use crate::metrics::Ingested;

use super::{json_response, read_body, too_many, BodyError, SdkState, EVENTS_LIMIT};

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    json_response(status, body.to_string())
}

/// Resolves an `api_key`: a deployment key (client or server) or a project API key.
fn source(sdk: &SdkState, api_key: &str) -> Option<Source> {
    if let Some(served) = sdk.registry.by_key(api_key) {
        let s = &served.snapshot;
        return Some(Source {
            project: s.project.key.clone(),
            deployment: Some(s.deployment.key.clone()),
            trusted: s.deployment.kind == DeploymentType::Server,
        });
    }
    sdk.registry.project_by_api_key(api_key).map(|p| Source {
        project: p.key.clone(),
        deployment: None,
        trusted: true,
    })
}

/// How long a batch waits for room in the ingestion buffer before it is told to retry.
const BUFFER_WAIT: Duration = Duration::from_secs(2);

/// The share of the ingestion buffer a batch takes, in KiB: its length when known and not
/// compressed, else the most a batch may inflate to.
fn cost(headers: &HeaderMap, sdk: &SdkState) -> u32 {
    let compressed = headers.contains_key(header::CONTENT_ENCODING);
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|_| !compressed)
        .unwrap_or(EVENTS_LIMIT)
        .min(EVENTS_LIMIT);
    let kib = length.div_ceil(1024).clamp(1, buffer_kib(sdk) as usize);
    u32::try_from(kib).unwrap_or(u32::MAX)
}

/// The ingestion buffer in KiB (at least one batch).
pub(crate) fn buffer_kib(sdk: &SdkState) -> u32 {
    ingest_buffer_kib(&sdk.config)
}

/// The ingestion buffer of `config` in KiB (at least one batch).
pub(crate) fn ingest_buffer_kib(config: &crate::ServerConfig) -> u32 {
    let kib = config.ingest_buffer.max(EVENTS_LIMIT) / 1024;
    u32::try_from(kib).unwrap_or(u32::MAX)
}

pub(crate) async fn ingest(
    State(sdk): State<SdkState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let metrics = sdk.metrics.clone();
    let response = receive(sdk, headers, body).await;
    let status = response.status();
    let outcome = match status {
        // Accepted batches are counted with their events where they are stored.
        StatusCode::OK => None,
        StatusCode::TOO_MANY_REQUESTS => Some(Ingested::Throttled),
        s if s.is_client_error() => Some(Ingested::Rejected),
        _ => Some(Ingested::Failed),
    };
    if let Some(outcome) = outcome {
        metrics.ingested(outcome);
    }
    response
}

async fn receive(sdk: SdkState, headers: HeaderMap, body: Body) -> Response {
    // Room in the buffer is taken before the body is read, so that concurrent batches never
    // hold more than the buffer: past it they wait briefly, then are told to come back.
    let wanted = cost(&headers, &sdk);
    let room = sdk.ingest_buffer.clone().acquire_many_owned(wanted);
    let Ok(Ok(_room)) = tokio::time::timeout(BUFFER_WAIT, room).await else {
        // The body is read and dropped as it arrives (no memory held), so that the client,
        // which sends its whole batch before it reads the answer, sees the 429 instead of a
        // connection closed under it.
        discard(body, EVENTS_LIMIT).await;
        let body = json!({"code": 429, "error": "Too many requests: the server is busy storing events; retry"});
        return too_many(1, body.to_string());
    };
    let bytes = match read_body(&headers, body, EVENTS_LIMIT).await {
        Ok(b) => b,
        Err(e) => {
            let status = e.status();
            // Amplitude's own words for an oversized batch, which its clients recognise.
            let error = match e {
                BodyError::TooLarge => "Payload too large".to_owned(),
                e => e.message(EVENTS_LIMIT),
            };
            return answer(status, json!({"code": status.as_u16(), "error": error}));
        }
    };
    let stored = tokio::task::spawn_blocking(move || store(&sdk, &bytes)).await;
    stored.unwrap_or_else(|join| {
        tracing::error!(error = %join, "storing events panicked");
        failed()
    })
}

/// `503` with `Retry-After`: the store cannot take the batch now.
fn unavailable() -> Response {
    let mut response = answer(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"code": 503, "error": "the store is unavailable; retry"}),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Reads a body to its end and drops it, up to `limit` bytes (and the body's deadline).
async fn discard(mut body: Body, limit: usize) {
    use http_body_util::BodyExt;

    let mut seen = 0;
    while let Some(Ok(frame)) = body.frame().await {
        seen += frame.data_ref().map_or(0, bytes::Bytes::len);
        if seen > limit {
            return;
        }
    }
}

fn failed() -> Response {
    answer(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"code": 500, "error": "the events could not be stored"}),
    )
}

/// Checks a batch, authenticates and throttles its key, and stores its events. Blocking.
fn store(sdk: &SdkState, bytes: &[u8]) -> Response {
    let head = match ingest::head(bytes) {
        Ok(head) => head,
        Err(IngestError::MissingField(field)) => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"code": 400, "error": "Request missing required field", "missing_field": field}),
            )
        }
        // Amplitude's shape, which its SDKs read to drop those events and resend the rest.
        Err(IngestError::BadEvents { missing, invalid }) => {
            let mut body = json!({"code": 400, "error": "Some events are missing required fields or have invalid ones"});
            if !missing.is_empty() {
                body["events_with_missing_fields"] = json!(missing);
            }
            if !invalid.is_empty() {
                body["events_with_invalid_fields"] = json!(invalid);
            }
            return answer(StatusCode::BAD_REQUEST, body);
        }
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"code": 400, "error": e.to_string()}),
            )
        }
    };
    let Some(source) = source(sdk, &head.api_key) else {
        // Before any snapshot is loaded (the store was unreachable at start and nothing was
        // persisted) no key is known yet: ask the client to come back rather than tell it the
        // key is invalid, which would make it drop the events.
        if !sdk.backend.loaded() {
            return unavailable();
        }
        let error = format!("Invalid API key: {}", head.api_key);
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"code": 400, "error": error}),
        );
    };
    if let Err(retry) = sdk.limit(&head.api_key) {
        let rate = sdk.config.rate_limit.unwrap_or(0);
        let body = json!({"code": 429, "error": "Too many requests", "eps_threshold": rate});
        return too_many(retry, body.to_string());
    }
    // With a spool, a batch the store cannot take is spooled and answered like a stored one:
    // it is on disk, and Amplitude's clients read only `code`.
    let events = match sdk.backend.accept(&source, bytes) {
        Ok(Accepted::Stored(report)) => Ok(report.events_ingested),
        Ok(Accepted::Spooled) => Ok(head.events),
        Err(err) => Err(err),
    };
    match events {
        Ok(events) => {
            sdk.metrics.ingested(Ingested::Accepted(events));
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            answer(
                StatusCode::OK,
                json!({
                    "code": 200,
                    "events_ingested": events,
                    "payload_size_bytes": bytes.len(),
                    "server_upload_time": now,
                }),
            )
        }
        Err(IngestError::Failed(err)) if err.is_unavailable() => {
            tracing::warn!(error = %vexil_core::error::chain(&err), "the store cannot take events now");
            unavailable()
        }
        Err(IngestError::Full(err)) => {
            tracing::warn!(error = %vexil_core::error::chain(&err), "no room to keep an event batch");
            let mut response = answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"code": 503, "error": "the event spool is full until the upstream takes what it holds; retry"}),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            response
        }
        Err(err) => {
            tracing::error!(error = %vexil_core::error::chain(&err), "storing events failed");
            failed()
        }
    }
}
