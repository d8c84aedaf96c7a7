//! The relay protocol: what a `vexil edge` (or a chain of them) reads from its upstream to
//! serve a deployment without a database. Vexil's own, not Amplitude's or OFREP's.
//!
//! - `GET /sdk/relay/v1/deployment`, with `Authorization: Api-Key <server deployment key>`:
//!   the deployment's [`vexil_core::sdk::Bundle`] (the persisted-snapshot format of
//!   `vexil_core::sdk::persist`, for this deployment only: its configs in served order, which
//!   are local and attached, its revision and digest, the project's credentials as stored, the
//!   mutual-exclusion flags, and the members of the cohorts its configs reference). `ETag:
//!   W/"relay-<revision>-<digest prefix>"`; a matching `If-None-Match` gets `304`. An archived
//!   deployment is still relayed, so that edges stop serving it too.
//! - `GET /sdk/relay/v1/stream`, same credentials: server-sent events, one
//!   `event: revision` with `data: {"revision": n, "etag": "<ETag>"}` at once and after every
//!   publish that changes what the deployment serves, and a `: ping` comment every keep-alive
//!   interval. It carries no data: the follower fetches the document with `If-None-Match`.
//!
//! Only server deployment keys may relay: the document holds remote-mode configs and cohort
//! members, which client keys (public by design) must not reveal. A client key gets `403`
//! `relay_needs_server_key`; an unknown key `401` `invalid_deployment_key`. Errors are
//! `{"code": "...", "message": "..."}`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;
use bytes::Bytes;
use futures_util::stream;
use tokio::time::Instant;
use vexil_core::model::DeploymentType;

use super::registry::Served;
use super::stream::{sse_response, Refused, Wait, Wake};
use super::{header_str, json_response, scheme_key, too_many, SdkState};
use crate::listen::ConnectionSlot;

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    json_response(status, body)
}

/// The deployment of a server key, archived or not, within its rate limit.
fn admit(sdk: &SdkState, headers: &HeaderMap) -> Result<Arc<Served>, Response> {
    let Some(served) = scheme_key(headers, "Api-Key").and_then(|k| sdk.registry.by_key(k)) else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_deployment_key",
            "Authorization must be `Api-Key <deployment key>` of a known deployment",
        ));
    };
    if served.snapshot.deployment.kind != DeploymentType::Server {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "relay_needs_server_key",
            "only a server deployment's key may relay it",
        ));
    }
    if let Err(retry) = sdk.limit(&served.snapshot.deployment.api_key) {
        let body = serde_json::json!({"code": "rate_limited", "message": "Too many requests"});
        return Err(too_many(retry, body.to_string()));
    }
    Ok(served)
}

/// The relay ETag of what `served` serves.
pub(crate) fn etag(served: &Served) -> String {
    let s = &served.snapshot;
    let digest: String = s.hash.chars().take(16).collect();
    format!("W/\"relay-{}-{digest}\"", s.revision)
}

/// `GET /sdk/relay/v1/deployment`.
pub(crate) async fn deployment(State(sdk): State<SdkState>, headers: HeaderMap) -> Response {
    let served = match admit(&sdk, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tag = etag(&served);
    let matches = header_str(&headers, &header::IF_NONE_MATCH)
        .is_some_and(|h| vexil_core::sdk::ofrep::if_none_match(h, &tag));
    let mut response = if matches {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        match served.relay_bundle() {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(err) => {
                tracing::error!(error = %vexil_core::error::chain(&err), "making the relay document failed");
                refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the relay document could not be made",
                )
            }
        }
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    response
}

fn revision_event(served: &Served) -> Bytes {
    let data = serde_json::json!({ "revision": served.snapshot.revision, "etag": etag(served) });
    Bytes::from(format!("event: revision\ndata: {data}\n\n"))
}

struct RelayStream {
    wait: Wait,
    last: String,
    ping: tokio::time::Duration,
    next_ping: Instant,
    first: Option<Bytes>,
}

/// `GET /sdk/relay/v1/stream`.
pub(crate) async fn stream(
    State(sdk): State<SdkState>,
    slot: Option<Extension<ConnectionSlot>>,
    headers: HeaderMap,
) -> Response {
    let served = match admit(&sdk, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (wait, latest) = match Wait::open(&sdk, &served, slot) {
        Ok(opened) => opened,
        Err(Refused::Publishing) => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "publishing",
                "the deployment is being published",
            )
        }
        Err(Refused::TooMany) => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_streams",
                "too many open streams",
            )
        }
    };
    let state = RelayStream {
        wait,
        last: etag(&latest),
        ping: sdk.config.keepalive,
        next_ping: Instant::now() + sdk.config.keepalive,
        first: Some(revision_event(&latest)),
    };
    let body = stream::unfold(state, |mut s| async move {
        if let Some(first) = s.first.take() {
            return Some((Ok::<_, Infallible>(first), s));
        }
        loop {
            match s.wait.next(s.next_ping).await {
                Wake::End => return None,
                Wake::Timer => {
                    s.next_ping = Instant::now() + s.ping;
                    return Some((Ok(Bytes::from_static(b": ping\n\n")), s));
                }
                Wake::Changed(latest) => {
                    let tag = etag(&latest);
                    if tag != s.last {
                        s.last = tag;
                        s.next_ping = Instant::now() + s.ping;
                        return Some((Ok(revision_event(&latest)), s));
                    }
                }
            }
        }
    });
    sse_response(Body::from_stream(body))
}
