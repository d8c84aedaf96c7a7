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
//! Only server deployment keys authorize relaying: the document holds remote-mode configs and
//! cohort members, which client keys (public by design) must not reveal. A client deployment
//! (what browsers and mobile apps read) is relayed with a server key of the same project:
//! `Authorization: Api-Key <server deployment key>` and the query parameter
//! `deployment=<client deployment key>`, on both endpoints; the parameter may name any
//! deployment of the server key's project. An archived deployment's key relays only its own
//! deployment. Refusals, as `{"code": "...", "message": "..."}`:
//!
//! - `401` `invalid_deployment_key`: the `Authorization` key, or the deployment the
//!   `deployment` parameter names, is unknown;
//! - `403` `relay_needs_server_key`: the `Authorization` key is a client deployment's;
//! - `403` `relay_other_project`: the `deployment` parameter names a deployment of another
//!   project than the server key's;
//! - `403` `relay_key_archived`: an archived deployment's key names another deployment;
//! - `400` `invalid_parameter`: `deployment` is given more than once;
//! - `429` `rate_limited`, per `Authorization` key.
//!
//! An edge serves these endpoints from its own registry, so it relays (and checks) only the
//! deployments it follows: to relay a client deployment it must follow a server key of the
//! project too, which it needs anyway to follow the client deployment from its upstream.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;
use bytes::Bytes;
use futures_util::stream;
use tokio::sync::watch;
use tokio::time::Instant;
use vexil_core::model::DeploymentType;

use super::registry::{now_ms, Served};
use super::stream::{sse_response, Refused, Wait, Wake};
use super::{header_str, json_response, scheme_key, too_many, SdkState};
use crate::listen::ConnectionSlot;

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    json_response(status, body)
}

/// The deployment a relay request is for, archived or not, within its key's rate limit: the
/// one of the server key in `Authorization`, or the one the `deployment` query parameter names
/// when it belongs to that key's project.
fn admit(
    sdk: &SdkState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Arc<Served>, Response> {
    let Some(authority) = scheme_key(headers, "Api-Key").and_then(|k| sdk.registry.by_key(k))
    else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_deployment_key",
            "Authorization must be `Api-Key <deployment key>` of a known server deployment",
        ));
    };
    let named = named_deployment(query)?;
    if authority.snapshot.deployment.kind != DeploymentType::Server {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "relay_needs_server_key",
            "only a server deployment's key may relay: to relay a client deployment, give \
             `Authorization: Api-Key <server deployment key>` of its project and the client \
             deployment's key in the `deployment` query parameter",
        ));
    }
    if let Err(retry) = sdk.limit(&authority.snapshot.deployment.api_key) {
        let body = serde_json::json!({"code": "rate_limited", "message": "Too many requests"});
        return Err(too_many(retry, body.to_string()));
    }
    let Some(key) = named else {
        return Ok(authority);
    };
    let Some(target) = sdk.registry.by_key(&key) else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_deployment_key",
            "the `deployment` query parameter must be the key of a known deployment",
        ));
    };
    let (a, t) = (&authority.snapshot, &target.snapshot);
    if a.project.key != t.project.key {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "relay_other_project",
            "the `deployment` query parameter names a deployment of another project than the \
             server key's: relay it with a server key of its own project",
        ));
    }
    if a.deployment.archived && a.deployment.key != t.deployment.key {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "relay_key_archived",
            "an archived deployment's key relays only that deployment, not the one the \
             `deployment` query parameter names",
        ));
    }
    Ok(target)
}

/// Whether `key` still relays deployments of `project` other than its own: the current key (or
/// one in its rotation's grace period) of a live server deployment of that project.
fn still_relays(sdk: &SdkState, key: &str, project: &str) -> bool {
    sdk.registry.by_key(key).is_some_and(|a| {
        let d = &a.snapshot.deployment;
        d.kind == DeploymentType::Server
            && !d.archived
            && d.accepts_key(key, now_ms())
            && a.snapshot.project.key == project
    })
}

/// The `deployment` query parameter, when given once.
fn named_deployment(query: Option<&str>) -> Result<Option<String>, Response> {
    let mut named = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "deployment")
        .map(|(_, v)| v.into_owned());
    let first = named.next();
    if named.next().is_some() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "give the `deployment` query parameter at most once",
        ));
    }
    Ok(first)
}

/// The relay ETag of what `served` serves.
pub(crate) fn etag(served: &Served) -> String {
    let s = &served.snapshot;
    let digest: String = s.hash.chars().take(16).collect();
    format!("W/\"relay-{}-{digest}\"", s.revision)
}

/// `GET /sdk/relay/v1/deployment`.
pub(crate) async fn deployment(
    State(sdk): State<SdkState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let served = match admit(&sdk, &headers, query.as_deref()) {
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
    /// The key that relays another deployment than its own, and its deployment's updates: the
    /// key is checked again whenever either deployment changes, and at every ping.
    authority: Option<(String, watch::Receiver<Arc<Served>>)>,
    sdk: SdkState,
    last: String,
    ping: tokio::time::Duration,
    next_ping: Instant,
    first: Option<Bytes>,
}

/// `GET /sdk/relay/v1/stream`.
pub(crate) async fn stream(
    State(sdk): State<SdkState>,
    slot: Option<Extension<ConnectionSlot>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let served = match admit(&sdk, &headers, query.as_deref()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (wait, latest) = match Wait::open(&sdk, &served, slot.as_deref()) {
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
    // A server key relaying another deployment of its project does so while it stays a live
    // key of a live deployment: archiving that deployment ends the stream when it is published,
    // the end of a rotation's grace period at the next ping.
    let authority = scheme_key(&headers, "Api-Key")
        .filter(|key| !latest.snapshot.deployment.accepts_key(key, now_ms()))
        .and_then(|key| {
            let updates = sdk.registry.watch(&*sdk.registry.by_key(key)?)?;
            Some((key.to_owned(), updates))
        });
    let state = RelayStream {
        wait,
        authority,
        sdk: sdk.clone(),
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
            let wake = match &mut s.authority {
                Some((_, updates)) => tokio::select! {
                    wake = s.wait.next(s.next_ping) => Some(wake),
                    changed = updates.changed() => match changed {
                        Ok(()) => None,
                        Err(_) => Some(Wake::End),
                    },
                },
                None => Some(s.wait.next(s.next_ping).await),
            };
            if let Some((key, _)) = &s.authority {
                if !still_relays(&s.sdk, key, &s.wait.peek().snapshot.project.key) {
                    return None;
                }
            }
            let Some(wake) = wake else { continue };
            match wake {
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
    sse_response(Body::from_stream(body), slot.as_deref())
}
