//! OFREP over HTTP (`sdk-protocol.md` Part B): authentication, status codes, headers, the bulk
//! `ETag`/`If-None-Match` exchange and the `eventStreams` hand-out. The mapping of contexts
//! and results lives in `vexil_core::sdk::ofrep`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use vexil_core::sdk::ofrep::{etag, if_none_match, parse_request, OfrepAnswer};

use super::registry::Served;
use super::{header_str, json_response, query_param, read_body, scheme_key, SdkState, EVAL_LIMIT};

static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// How long a bulk request waits for a newer revision named by `flagConfigEtag`.
const FRESHNESS_WAIT: Duration = Duration::from_secs(2);

fn with_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    h.insert(
        header::VARY,
        HeaderValue::from_static("Authorization, X-API-Key"),
    );
    response
}

fn error(status: StatusCode, key: Option<&str>, code: Option<&str>, details: &str) -> Response {
    let mut body = serde_json::Map::new();
    if let Some(key) = key {
        body.insert("key".into(), key.into());
    }
    if let Some(code) = code {
        body.insert("errorCode".into(), code.into());
    }
    body.insert("errorDetails".into(), details.into());
    with_headers(json_response(
        status,
        serde_json::Value::Object(body).to_string(),
    ))
}

/// The deployment key: `Authorization: Bearer`, else `X-API-Key`, else `Authorization: Api-Key`.
fn key(headers: &HeaderMap) -> Option<&str> {
    scheme_key(headers, "Bearer")
        .or_else(|| header_str(headers, &X_API_KEY).filter(|k| !k.is_empty()))
        .or_else(|| scheme_key(headers, "Api-Key"))
}

fn admit(sdk: &SdkState, headers: &HeaderMap) -> Result<Arc<Served>, Response> {
    let served = key(headers)
        .and_then(|k| sdk.registry.by_key(k))
        .ok_or_else(|| {
            error(
                StatusCode::UNAUTHORIZED,
                None,
                None,
                "unknown or missing key",
            )
        })?;
    if served.snapshot.deployment.archived || !sdk.config.ofrep {
        return Err(error(
            StatusCode::FORBIDDEN,
            None,
            None,
            "this key may not use OFREP",
        ));
    }
    if let Err(retry) = sdk.limit(&served.snapshot.deployment.api_key) {
        let mut r = error(StatusCode::TOO_MANY_REQUESTS, None, None, "rate limited");
        if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Err(r);
    }
    Ok(served)
}

async fn context(
    headers: &HeaderMap,
    body: Body,
    key: Option<&str>,
) -> Result<vexil_core::sdk::ofrep::OfrepRequest, Response> {
    let bytes = read_body(headers, body, EVAL_LIMIT).await.map_err(|e| {
        let message = e.message(EVAL_LIMIT);
        error(e.status(), key, Some("INVALID_CONTEXT"), &message)
    })?;
    parse_request(&bytes)
        .map_err(|m| error(StatusCode::BAD_REQUEST, key, Some("INVALID_CONTEXT"), &m))
}

/// `POST /ofrep/v1/evaluate/flags/{key}`.
pub(crate) async fn one(
    State(sdk): State<SdkState>,
    Path(flag): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let served = match admit(&sdk, headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let request = match context(headers, body, Some(&flag)).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match served
        .snapshot
        .ofrep_flag(&flag, request.user, Some(&served.counts))
    {
        OfrepAnswer::Success(body) => with_headers(json_response(StatusCode::OK, body)),
        OfrepAnswer::NotFound => error(
            StatusCode::NOT_FOUND,
            Some(&flag),
            Some("FLAG_NOT_FOUND"),
            &format!("flag '{flag}' not found"),
        ),
        OfrepAnswer::TargetingKeyMissing(details) => error(
            StatusCode::BAD_REQUEST,
            Some(&flag),
            Some("TARGETING_KEY_MISSING"),
            &details,
        ),
        OfrepAnswer::General(details) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, None, None, &details)
        }
    }
}

/// `POST /ofrep/v1/evaluate/flags`.
pub(crate) async fn bulk(State(sdk): State<SdkState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let mut served = match admit(&sdk, headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let request = match context(headers, body, None).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    // A notification named a revision this node may not have loaded yet.
    let wanted = query_param(parts.uri.query(), "flagConfigEtag")
        .and_then(|e| e.trim_matches('"').parse::<i64>().ok());
    if wanted.is_some_and(|w| w > served.snapshot.revision) {
        let backend = sdk.backend.clone();
        let sync = tokio::task::spawn_blocking(move || backend.refresh());
        let _ = tokio::time::timeout(FRESHNESS_WAIT, sync).await;
        if let Some(fresh) = sdk.registry.by_key(&served.snapshot.deployment.api_key) {
            served = fresh;
        }
    }
    let tag = etag(&served.snapshot, &request.context);
    let matches =
        header_str(headers, &header::IF_NONE_MATCH).is_some_and(|h| if_none_match(h, &tag));
    let mut response = if matches {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        with_headers(r)
    } else {
        let streams = sdk
            .config
            .ofrep_events
            .then(|| event_streams(&sdk, headers, &served));
        let body =
            served
                .snapshot
                .ofrep_bulk(request.user, streams.as_deref(), Some(&served.counts));
        with_headers(json_response(StatusCode::OK, body))
    };
    if let Ok(v) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

/// `[{"type":"sse","url":…,"inactivityDelaySec":120}]` for this deployment.
fn event_streams(sdk: &SdkState, headers: &HeaderMap, served: &Served) -> String {
    let base = match &sdk.config.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let host = header_str(headers, &header::HOST).unwrap_or("localhost");
            let proto = header_str(headers, &HeaderName::from_static("x-forwarded-proto"))
                .filter(|p| *p == "https")
                .unwrap_or("http");
            format!("{proto}://{host}")
        }
    };
    // Made with the current server secret, so a rotated one stops being handed out at once.
    let token = sdk.registry.token(&served.id());
    let url = format!("{base}/sdk/ofrep/v1/events?token={token}");
    // The URL is the only part that needs escaping.
    let url = serde_json::to_string(&url).unwrap_or_default();
    format!(r#"[{{"type":"sse","url":{url},"inactivityDelaySec":120}}]"#)
}
