//! `POST /2/httpapi` and `POST /batch`: the exposure and assignment events of Amplitude's
//! analytics clients (`sdk-protocol.md` §A10). Every answer carries `code`, which those clients
//! read to decide whether to retry, drop or split a batch.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;
use vexil_core::sdk::{IngestError, Source, Tracker};

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
        });
    }
    sdk.registry.project_by_api_key(api_key).map(|p| Source {
        project: p.key.clone(),
        deployment: None,
    })
}

pub(crate) async fn ingest(
    State(sdk): State<SdkState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let bytes = match read_body(&headers, body, EVENTS_LIMIT).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"code": 413, "error": "Payload too large"}),
            )
        }
        Err(BodyError::Invalid(m)) => {
            return answer(StatusCode::BAD_REQUEST, json!({"code": 400, "error": m}))
        }
    };
    let size = bytes.len();
    let batch = match Tracker::parse_batch(&bytes) {
        Ok(b) => b,
        Err(IngestError::MissingField(field)) => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"code": 400, "error": "Request missing required field", "missing_field": field}),
            )
        }
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"code": 400, "error": e.to_string()}),
            )
        }
    };
    let Some(source) = source(&sdk, &batch.api_key) else {
        let error = format!("Invalid API key: {}", batch.api_key);
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"code": 400, "error": error}),
        );
    };
    if let Err(retry) = sdk.limit(&batch.api_key) {
        let rate = sdk.config.rate_limit.unwrap_or(0);
        let body = json!({"code": 429, "error": "Too many requests", "eps_threshold": rate});
        return too_many(retry, body.to_string());
    }
    let tracker = sdk.tracker.clone();
    let events = batch.events;
    let stored = tokio::task::spawn_blocking(move || tracker.ingest(&source, &events)).await;
    match stored {
        Ok(Ok(report)) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            answer(
                StatusCode::OK,
                json!({
                    "code": 200,
                    "events_ingested": report.events_ingested,
                    "payload_size_bytes": size,
                    "server_upload_time": now,
                }),
            )
        }
        Ok(Err(err)) => {
            tracing::error!(error = %vexil_core::error::chain(&err), "storing events failed");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"code": 500, "error": "the events could not be stored"}),
            )
        }
        Err(join) => {
            tracing::error!(error = %join, "storing events panicked");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"code": 500, "error": "the events could not be stored"}),
            )
        }
    }
}
