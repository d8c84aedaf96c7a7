//! Server-sent events: the flag stream of Amplitude's server SDKs (`sdk-protocol.md` §A4) and
//! OFREP's change notifications (§B9).
//!
//! Each deployment has a watch channel holding its latest snapshot; a stream waits on it, so a
//! publish never waits for any client. A slow client only delays its own connection, and
//! because a watch keeps only the latest value, a client that falls behind skips straight to
//! the newest flags.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;
use bytes::Bytes;
use futures_util::stream;
use tokio::sync::watch;
use tokio::time::{sleep_until, Duration, Instant};
use vexil_core::sdk::FlagsBody;

use super::registry::{now_ms, Served};
use super::{amp_error, header_str, query_param, scheme_key, too_many, SdkState};
use crate::listen::ConnectionSlot;

/// The keep-alive event: data of one space, which is `data:` and two spaces on the wire.
const KEEPALIVE: &[u8] = b"data:  \n\n";

/// Counts a stream as open for as long as it lives.
struct Open(SdkState);

impl Open {
    fn new(sdk: &SdkState) -> Option<Open> {
        let open = sdk.streams.fetch_add(1, Ordering::AcqRel);
        let guard = Open(sdk.clone());
        (open < sdk.config.max_streams).then_some(guard)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An event stream's answer. Served by our connection layer (`slot`), the body is written by
/// the connection task once hyper has written the head, so that the stream keeps none of
/// hyper's buffers.
pub(super) fn sse_response(body: Body, slot: Option<&ConnectionSlot>) -> Response {
    let body = match slot {
        Some(slot) => slot.stream_body(body),
        None => body,
    };
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// What every stream waits on: its deployment's publications, the server's shutdown and its
/// own age limit. Holding it counts the stream as open.
pub(super) struct Wait {
    _open: Open,
    updates: watch::Receiver<Arc<Served>>,
    closing: watch::Receiver<bool>,
    ends: Instant,
}

/// Why a stream woke up.
pub(super) enum Wake {
    /// The server is stopping, the stream is too old, or the deployment is gone.
    End,
    /// Its own timer (keep-alive, ping) fired.
    Timer,
    /// A new snapshot was published.
    Changed(Arc<Served>),
}

/// Why a stream could not open.
pub(super) enum Refused {
    Publishing,
    TooMany,
}

impl Wait {
    /// Subscribes to `served`'s deployment; returns the wait and the latest snapshot.
    /// The connection's place under the connection cap is given back: streams are counted
    /// apart, by `max_streams`.
    pub(super) fn open(
        sdk: &SdkState,
        served: &Served,
        slot: Option<&ConnectionSlot>,
    ) -> Result<(Wait, Arc<Served>), Refused> {
        let mut updates = sdk.registry.watch(served).ok_or(Refused::Publishing)?;
        let open = Open::new(sdk).ok_or(Refused::TooMany)?;
        if let Some(slot) = slot {
            slot.release();
        }
        let latest = updates.borrow_and_update().clone();
        let wait = Wait {
            _open: open,
            updates,
            closing: sdk.registry.closing(),
            ends: Instant::now() + sdk.config.stream_max_age,
        };
        Ok((wait, latest))
    }

    pub(super) async fn next(&mut self, timer: Instant) -> Wake {
        if *self.closing.borrow() {
            return Wake::End;
        }
        // One timer, of the stream's own wake-up or its age limit, whichever comes first: a
        // sleep is 112 bytes in every open stream, and a registration in tokio's timer wheel.
        let (until, aged) = if self.ends <= timer {
            (self.ends, true)
        } else {
            (timer, false)
        };
        tokio::select! {
            _ = self.closing.changed() => Wake::End,
            () = sleep_until(until) => if aged { Wake::End } else { Wake::Timer },
            changed = self.updates.changed() => match changed {
                Ok(()) => Wake::Changed(self.updates.borrow_and_update().clone()),
                Err(_) => Wake::End,
            },
        }
    }

    /// The newest snapshot, without marking it seen.
    pub(super) fn peek(&self) -> Arc<Served> {
        self.updates.borrow().clone()
    }

    /// The newest snapshot, marked seen.
    fn latest(&mut self) -> Arc<Served> {
        self.updates.borrow_and_update().clone()
    }
}

struct FlagStream {
    wait: Wait,
    /// The key the client authenticated with: the deployment's, or one a rotation replaced
    /// whose grace period was still running.
    key: String,
    /// Digest of the flags last sent (`/sdk/v2/flags`, local mode).
    last: [u8; 32],
    last_event: Instant,
    keepalive: Duration,
    /// The parts of the event being sent.
    pending: VecDeque<Bytes>,
}

/// `data: <flags>\n\n`, the event of `/sdk/stream/v1/flags`, in parts that share the
/// snapshot's body instead of copying it.
fn flags_event(flags: &FlagsBody) -> VecDeque<Bytes> {
    let mut event = VecDeque::with_capacity(flags.parts().len() + 2);
    event.push_back(Bytes::from_static(b"data: "));
    event.extend(flags.parts().iter().cloned());
    event.push_back(Bytes::from_static(b"\n\n"));
    event
}

/// `GET /sdk/stream/v1/flags`.
pub(crate) async fn flags(
    State(sdk): State<SdkState>,
    slot: Option<Extension<ConnectionSlot>>,
    headers: HeaderMap,
) -> Response {
    if !sdk.config.streaming {
        return amp_error(
            StatusCode::NOT_IMPLEMENTED,
            "streaming is disabled on this server",
        );
    }
    let served = match sdk.amplitude_auth(&headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let key = served.snapshot.deployment.api_key.clone();
    let sent = scheme_key(&headers, "Api-Key")
        .unwrap_or_default()
        .to_owned();
    if let Err(retry) = sdk.limit(&key) {
        return too_many(retry, r#"{"error":"Too many requests"}"#.to_owned());
    }
    let (wait, latest) = match Wait::open(&sdk, &served, slot.as_deref()) {
        Ok(opened) => opened,
        Err(Refused::Publishing) => {
            return amp_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the deployment is being published",
            )
        }
        Err(Refused::TooMany) => {
            return amp_error(StatusCode::SERVICE_UNAVAILABLE, "too many open streams")
        }
    };
    let state = FlagStream {
        wait,
        key: sent,
        last: latest.snapshot.flags_json(false).digest(),
        last_event: Instant::now(),
        keepalive: sdk.config.keepalive,
        pending: flags_event(latest.snapshot.flags_json(false)),
    };
    let body = stream::unfold(state, |mut s| async move {
        if let Some(part) = s.pending.pop_front() {
            return Some((Ok::<_, Infallible>(part), s));
        }
        loop {
            match s.wait.next(s.last_event + s.keepalive).await {
                Wake::End => return None,
                Wake::Timer => {
                    // A replaced key's grace period ends on the clock, not with a publish.
                    if !s
                        .wait
                        .peek()
                        .snapshot
                        .deployment
                        .accepts_key(&s.key, now_ms())
                    {
                        return None;
                    }
                    s.last_event = Instant::now();
                    return Some((Ok(Bytes::from_static(KEEPALIVE)), s));
                }
                Wake::Changed(latest) => {
                    let deployment = &latest.snapshot.deployment;
                    // An archived deployment or a key that no longer works ends the stream;
                    // the SDK's reconnect then gets 401.
                    if deployment.archived || !deployment.accepts_key(&s.key, now_ms()) {
                        return None;
                    }
                    let flags = latest.snapshot.flags_json(false);
                    if flags.digest() != s.last {
                        s.last = flags.digest();
                        s.last_event = Instant::now();
                        s.pending = flags_event(flags);
                        if let Some(part) = s.pending.pop_front() {
                            return Some((Ok(part), s));
                        }
                    }
                }
            }
        }
    });
    sse_response(Body::from_stream(body), slot.as_deref())
}

struct EventStream {
    wait: Wait,
    /// Revision last notified.
    notified: i64,
    last_sent: Option<Instant>,
    ping: Duration,
    next_ping: Instant,
    queue: Vec<Bytes>,
}

fn refetch(served: &Served) -> Bytes {
    let s = &served.snapshot;
    Bytes::from(format!(
        "event: message\nid: {rev}\ndata: {{\"type\":\"refetchEvaluation\",\"etag\":\"{rev}\",\"lastModified\":{at}}}\n\n",
        rev = s.revision,
        at = s.changed_at / 1000
    ))
}

/// `GET /sdk/ofrep/v1/events?token=…`: a `refetchEvaluation` event whenever the deployment's
/// revision changes, at most one a second.
pub(crate) async fn ofrep_events(
    State(sdk): State<SdkState>,
    slot: Option<Extension<ConnectionSlot>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if !sdk.config.ofrep || !sdk.config.ofrep_events {
        return plain(StatusCode::NOT_FOUND);
    }
    let served = query_param(query.as_deref(), "token").and_then(|t| sdk.registry.by_token(&t));
    let Some(served) = served.filter(|s| !s.snapshot.deployment.archived) else {
        return plain(StatusCode::UNAUTHORIZED);
    };
    let Ok((wait, latest)) = Wait::open(&sdk, &served, slot.as_deref()) else {
        return plain(StatusCode::SERVICE_UNAVAILABLE);
    };
    let mut queue = vec![Bytes::from_static(b"retry: 5000\n\n")];
    let last_id = header_str(&headers, &header::HeaderName::from_static("last-event-id"))
        .and_then(|v| v.trim().parse::<i64>().ok());
    if last_id.is_some_and(|id| id < latest.snapshot.revision) {
        queue.push(refetch(&latest));
    }
    queue.reverse();
    let state = EventStream {
        wait,
        notified: latest.snapshot.revision,
        last_sent: None,
        ping: sdk.config.ofrep_ping,
        next_ping: Instant::now() + sdk.config.ofrep_ping,
        queue,
    };
    let body = stream::unfold(state, |mut s| async move {
        if let Some(next) = s.queue.pop() {
            return Some((Ok::<_, Infallible>(next), s));
        }
        loop {
            match s.wait.next(s.next_ping).await {
                Wake::End => return None,
                Wake::Timer => {
                    s.next_ping = Instant::now() + s.ping;
                    return Some((Ok(Bytes::from_static(b": ping\n\n")), s));
                }
                Wake::Changed(_) => {
                    // Coalesce: at most one notification a second, always of the newest.
                    if let Some(at) = s.last_sent {
                        sleep_until(at + Duration::from_secs(1)).await;
                    }
                    let latest = s.wait.latest();
                    if latest.snapshot.deployment.archived {
                        return None;
                    }
                    if latest.snapshot.revision != s.notified {
                        s.notified = latest.snapshot.revision;
                        s.last_sent = Some(Instant::now());
                        return Some((Ok(refetch(&latest)), s));
                    }
                }
            }
        }
    });
    sse_response(Body::from_stream(body), slot.as_deref())
}

fn plain(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}
