//! The connection layer: accepts TCP connections and serves HTTP/1.1 on them with limits that no
//! client can talk its way around.
//!
//! - **Connections are capped**, in all and per client address. A connection over either cap is
//!   answered `503` with `Retry-After` at once and closed, without reading its request, so
//!   refusing costs the server nothing. A connection that turns into an event stream gives its
//!   place back (streams are counted apart, by `ServerConfig::max_streams`), so thousands of SDK
//!   streams never crowd out ordinary requests and ordinary requests never crowd out streams.
//! - **Request heads must arrive in time** (`header_timeout`): the timer runs from the moment
//!   the connection waits for a request, so it also closes idle keep-alive connections.
//! - **Request bodies must arrive in time** (`body_timeout`, from the head's arrival): a body
//!   trickled a byte at a time fails with `408`-class errors in the handlers' body readers.
//! - **Responses must be read** (`write_timeout`): a client that stops reading (an event stream
//!   nobody consumes) is cut off once a write has been stalled that long, so what the server
//!   holds for it is bounded by one pending frame and the socket's buffers.
//!
//! An event stream leaves hyper once hyper has written its head (`detach`): the connection task
//! writes its chunks itself and hands the socket back to hyper when it ends, so the thousands of
//! streams a node holds keep none of hyper's per-connection state (an 8 KiB read and an 8 KiB
//! write buffer among it) through hours of keep-alives.
//!
//! The client's address is handed to handlers as `ConnectInfo<SocketAddr>`, as axum's own
//! `serve` does, for the sign-in throttle.

mod detach;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::Router;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// The limits of the connection layer (part of `ServerConfig`).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Most connections open at once, event streams not counted.
    pub max_connections: usize,
    /// Most connections open at once from one client address, event streams not counted;
    /// 0 for no per-address cap (behind a proxy every client has the proxy's address).
    pub max_connections_per_ip: usize,
    /// Time a client has to send a request's head, also the longest idle keep-alive.
    pub header_timeout: Duration,
    /// Time a client has to send a request's body, from the arrival of its head.
    pub body_timeout: Duration,
    /// Longest a write to a client may stay stalled (the client not reading).
    pub write_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 1024,
            max_connections_per_ip: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// The answer to a connection over a cap.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 76\r\n\r\n\
{\"code\":\"too_many_connections\",\"message\":\"too many open connections; retry\"}";

/// Serves `app` on `listener` until `shutdown` resolves, then lets the requests in flight
/// finish and returns when every connection has closed.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let places = Arc::new(Places::new(&limits));
    // Every connection task holds a receiver: when all are dropped, every connection is done.
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors or a connection reset before it was accepted:
                    // waiting a moment lets descriptors free up instead of spinning.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(place) = places.take(addr.ip()) else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let closing = closing_rx.clone();
        tokio::spawn(connection(
            stream,
            addr,
            app.clone(),
            limits.clone(),
            place,
            closing,
        ));
    }
    drop(listener);
    let _ = closing_tx.send(true);
    drop(closing_rx);
    closing_tx.closed().await;
    Ok(())
}

/// Answers `503` and closes, reading (and discarding) for a moment so that the client sees the
/// answer rather than a reset.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(BUSY).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        loop {
            stream.readable().await?;
            match stream.try_read(&mut sink) {
                Ok(0) => return Ok::<_, io::Error>(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await;
}

/// The hyper connection of [`connection`], boxed: an event stream that leaves hyper frees it.
type Http<S> = Box<hyper::server::conn::http1::Connection<TokioIo<Stalling<TcpStream>>, S>>;

async fn connection(
    stream: TcpStream,
    addr: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    place: Place,
    mut closing: watch::Receiver<bool>,
) {
    let slot = ConnectionSlot::new(place);
    let body_timeout = limits.body_timeout;
    let request_slot = slot.clone();
    let service = app.map_request(move |request: Request<Incoming>| {
        request_slot.begin(&request);
        let deadline = Instant::now() + body_timeout;
        let mut request = request.map(|body| Body::new(Deadline::new(body, deadline)));
        request.extensions_mut().insert(ConnectInfo(addr));
        request.extensions_mut().insert(request_slot.clone());
        crate::sdk::normalize_path(request)
    });
    let mut service = TowerToHyperService::new(service);
    let mut io = Stalling::new(stream, limits.write_timeout);
    io.report_to(slot.clone());
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024);
    loop {
        let conn = Box::new(builder.serve_connection(TokioIo::new(io), service));
        let Some((parts, body)) = serve_http(conn, &slot, &mut closing, addr).await else {
            return;
        };
        // An event stream's head is on the wire: the connection task writes the rest.
        (io, service) = take_apart(parts);
        let keep_alive = slot.keep_alive();
        match detach::write_chunked(&mut io, body).await {
            // Like hyper after a response: the next request on a kept-alive connection, or
            // closing it.
            Ok(()) if keep_alive && !*closing.borrow() => {}
            Ok(()) => {
                let _ = io.shutdown().await;
                return;
            }
            Err(err) => {
                tracing::debug!(error = %err, %addr, "event stream ended with an error");
                return;
            }
        }
    }
}

/// Serves HTTP/1.1 on `conn` until the connection ends (`None`) or a response's event stream
/// is handed over with its head written (the connection's parts and the stream's body).
/// Shuts down gracefully once `closing` is set: requests in flight finish, keep-alive ends.
async fn serve_http<S>(
    mut conn: Http<S>,
    slot: &ConnectionSlot,
    closing: &mut watch::Receiver<bool>,
    addr: SocketAddr,
) -> Option<(
    hyper::server::conn::http1::Parts<TokioIo<Stalling<TcpStream>>, S>,
    Body,
)>
where
    S: hyper::service::HttpService<Incoming, ResBody = Body> + Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut shutting_down = false;
    loop {
        let closed = async {
            if shutting_down {
                std::future::pending::<()>().await;
            }
            let _ = closing.wait_for(|c| *c).await;
        };
        let served = std::future::poll_fn(|cx| match Pin::new(&mut *conn).poll(cx) {
            Poll::Ready(result) => Poll::Ready(Err(result)),
            Poll::Pending => match slot.take_stream() {
                Some(body) => Poll::Ready(Ok(body)),
                None => Poll::Pending,
            },
        });
        tokio::select! {
            served = served => match served {
                Ok(body) => return Some((conn.into_parts(), body)),
                Err(result) => {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, %addr, "connection ended with an error");
                    }
                    // A stream handed over as the connection failed ends with it.
                    drop(slot.take_handed());
                    return None;
                }
            },
            () = closed => {}
        }
        Pin::new(&mut *conn).graceful_shutdown();
        shutting_down = true;
    }
}

/// The socket and the service of a hyper connection that an event stream left, with what the
/// client sent beyond its request kept to be read first by the next hyper connection. It is
/// copied: hyper's read buffer is 8 KiB however little it holds.
fn take_apart<S>(
    parts: hyper::server::conn::http1::Parts<TokioIo<Stalling<TcpStream>>, S>,
) -> (Stalling<TcpStream>, S) {
    let mut io = parts.io.into_inner();
    if !parts.read_buf.is_empty() {
        io.unread = [&parts.read_buf[..], &io.unread[..]].concat().into();
    }
    (io, parts.service)
}

/// A connection's place under the caps; given back when dropped.
pub(crate) struct Place {
    _all: OwnedSemaphorePermit,
    per_ip: Option<(Arc<Places>, IpAddr)>,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some((places, ip)) = self.per_ip.take() {
            places.leave(ip);
        }
    }
}

/// The caps on connections.
pub(crate) struct Places {
    all: Arc<Semaphore>,
    per_ip_max: usize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl Places {
    fn new(limits: &ConnectionLimits) -> Places {
        Places {
            all: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            per_ip_max: limits.max_connections_per_ip,
            per_ip: Mutex::new(HashMap::new()),
        }
    }

    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Place> {
        let all = self.all.clone().try_acquire_owned().ok()?;
        if self.per_ip_max == 0 {
            return Some(Place {
                _all: all,
                per_ip: None,
            });
        }
        let mut per_ip = self
            .per_ip
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= self.per_ip_max {
            return None;
        }
        *n += 1;
        Some(Place {
            _all: all,
            per_ip: Some((self.clone(), ip)),
        })
    }

    fn leave(&self, ip: IpAddr) {
        let mut per_ip = self
            .per_ip
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&ip);
            }
        }
    }
}

/// A request's handle on its connection, in the request's extensions: an event stream gives
/// the connection's place back, since streams are counted apart, and hands its body over to
/// the connection task (`stream_body`).
#[derive(Clone)]
pub(crate) struct ConnectionSlot(Arc<Slot>);

struct Slot {
    place: Mutex<Option<Place>>,
    request: Mutex<Current>,
    /// Whether a write to the client is stalled (hyper still holds bytes to send).
    write_pending: AtomicBool,
}

/// What the connection task needs to know of the request being answered.
#[derive(Default)]
struct Current {
    /// Whether its answer's body may be written by the connection task: HTTP/1.1 (chunked, as
    /// hyper writes it), not `HEAD`, and without a request body that hyper would still read.
    detachable: bool,
    /// Whether the connection stays open after the answer (no `Connection: close`).
    keep_alive: bool,
    /// An event stream's body, handed over once hyper has written the head.
    handed: Option<Body>,
}

impl ConnectionSlot {
    fn new(place: Place) -> ConnectionSlot {
        ConnectionSlot(Arc::new(Slot {
            place: Mutex::new(Some(place)),
            request: Mutex::new(Current::default()),
            write_pending: AtomicBool::new(false),
        }))
    }

    /// Gives the connection's place back: it now serves a long-lived stream.
    pub(crate) fn release(&self) {
        let place = self
            .0
            .place
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(place);
    }

    /// The body of an event stream's answer: written by the connection task once hyper has
    /// written the head, so that the connection holds none of hyper's buffers while the stream
    /// lasts. Answers it cannot take over (`HEAD`, HTTP/1.0) keep their body as it is.
    pub(crate) fn stream_body(&self, body: Body) -> Body {
        if self.current().detachable {
            Body::new(detach::Handover::new(body, self.clone()))
        } else {
            body
        }
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Current> {
        self.0
            .request
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records what the connection task needs of a new request.
    fn begin(&self, request: &Request<Incoming>) {
        let keep_alive = !request
            .headers()
            .get_all(axum::http::header::CONNECTION)
            .iter()
            .any(|v| has_token(v, "close"));
        *self.current() = Current {
            detachable: request.version() == axum::http::Version::HTTP_11
                && request.method() != axum::http::Method::HEAD
                && request.body().is_end_stream(),
            keep_alive,
            handed: None,
        };
    }

    fn hand_over(&self, body: Body) {
        self.current().handed = Some(body);
    }

    fn take_handed(&self) -> Option<Body> {
        self.current().handed.take()
    }

    /// The stream handed over, once everything hyper wrote has been sent.
    fn take_stream(&self) -> Option<Body> {
        if self.0.write_pending.load(Ordering::Acquire) {
            return None;
        }
        self.take_handed()
    }

    fn keep_alive(&self) -> bool {
        self.current().keep_alive
    }
}

/// Whether a `Connection` header value lists `token`, as hyper reads it.
fn has_token(value: &axum::http::HeaderValue, token: &str) -> bool {
    value
        .to_str()
        .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// The error of a body that did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimeout;

/// Whether a body error, or any error in its source chain, is `T` (a [`BodyTimeout`], or
/// `http_body_util::LengthLimitError` for an oversized body).
pub(crate) fn caused_by<T: std::error::Error + 'static>(
    err: &(dyn std::error::Error + 'static),
) -> bool {
    let mut source = Some(err);
    while let Some(s) = source {
        if s.is::<T>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// A request body that fails once its deadline passes.
struct Deadline<B> {
    inner: B,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> Deadline<B> {
    fn new(inner: B, deadline: Instant) -> Deadline<B> {
        Deadline {
            inner,
            deadline,
            sleep: None,
        }
    }
}

impl<B> HttpBody for Deadline<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimeout))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A socket whose writes fail once stalled for `limit`.
struct Stalling<T> {
    inner: T,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    /// Bytes the client sent that were read but not yet parsed, read again first: what hyper
    /// had buffered when an event stream left it.
    unread: Bytes,
    /// Told whether a write is stalled, so that a stream leaves hyper only once hyper has
    /// nothing left to send.
    report: Option<ConnectionSlot>,
}

impl<T> Stalling<T> {
    fn new(inner: T, limit: Duration) -> Stalling<T> {
        Stalling {
            inner,
            limit,
            stalled: None,
            unread: Bytes::new(),
            report: None,
        }
    }

    fn report_to(&mut self, slot: ConnectionSlot) {
        self.report = Some(slot);
    }

    /// Passes a ready write through (ending any stall); on a pending one, starts or checks
    /// the stall timer.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        let polled = match polled {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let limit = self.limit;
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client stopped reading",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        };
        if let Some(slot) = &self.report {
            slot.0
                .write_pending
                .store(polled.is_pending(), Ordering::Release);
        }
        polled
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stalling<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.unread.is_empty() {
            let n = self.unread.len().min(buf.remaining());
            buf.put_slice(&self.unread.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stalling<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::AsyncReadExt;

    #[tokio::test(start_paused = true)]
    async fn a_stalled_write_fails_after_the_limit_and_a_moving_one_never_does() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut stalling = Stalling::new(client, Duration::from_secs(30));
        // A reader that keeps up: a megabyte goes through, however long it takes.
        let reader = tokio::spawn(async move {
            let mut total = 0;
            let mut buf = [0u8; 16];
            while total < 1 << 20 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                total += server.read(&mut buf).await.unwrap();
            }
            server
        });
        let chunk = vec![7u8; 1 << 20];
        stalling.write_all(&chunk).await.unwrap();
        let server = reader.await.unwrap();
        // Nobody reads any more: the write fails once stalled for the limit, not before.
        let started = Instant::now();
        let err = stalling.write_all(&chunk).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        drop(server);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_fails_at_its_deadline() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let frames = futures_util::stream::unfold(rx, |mut rx| async move {
            let data = rx.recv().await?;
            Some((Ok::<_, io::Error>(Frame::data(data)), rx))
        });
        let body = http_body_util::StreamBody::new(Box::pin(frames));
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut body = Deadline::new(body, deadline);
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), Bytes::from_static(b"abc"));
        // The rest never comes: the body fails at the deadline, counted from the start.
        tokio::time::sleep(Duration::from_secs(59)).await;
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<BodyTimeout>(), "{err}");
        assert_eq!(Instant::now(), deadline);
        drop(tx);
    }
}
