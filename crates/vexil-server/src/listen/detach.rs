//! Event streams leave hyper once their head is written.
//!
//! hyper holds an 8 KiB read buffer, an 8 KiB write buffer, the answer's header map and its
//! dispatcher's state for as long as a connection lives, which for a flag stream is hours of
//! keep-alives: most of what 10,000 open streams cost a node. So a stream's handler wraps its
//! body in [`Handover`] (`ConnectionSlot::stream_body`). On its first poll, which comes once
//! hyper has written the answer's head (chunked: HTTP/1.1 without a length), it hands the body
//! to the connection's slot and stays pending. The connection task then takes the connection
//! apart (`into_parts`, once hyper has sent everything it wrote) and writes the body's frames
//! as hyper would: each a chunk (`{len:X}\r\n`, the data, `\r\n`), the frames ready together in
//! one write, then `0\r\n\r\n`. Like hyper it watches the client meanwhile: the end of its
//! input ends the stream, and bytes it sends are kept for the next request, which a new hyper
//! connection on the same socket reads after the stream (`write_chunked`'s caller).

use std::io::{self, IoSlice, Write as _};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{ConnectionSlot, Stalling};

/// Most chunks written together, as hyper queues at most 16 buffers for one write.
const MAX_BATCH: usize = 16;

/// An event stream's body until hyper has written its head, then the connection task's.
pub(super) struct Handover {
    body: Option<Body>,
    slot: ConnectionSlot,
}

impl Handover {
    pub(super) fn new(body: Body, slot: ConnectionSlot) -> Handover {
        Handover {
            body: Some(body),
            slot,
        }
    }
}

impl HttpBody for Handover {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Some(body) = self.body.take() {
            self.slot.hand_over(body);
        }
        // No wake-up is needed: the connection task looks for the body as soon as hyper's poll,
        // which this one is part of, returns, and hyper never sees this body again.
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_some_and(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(SizeHint::default, HttpBody::size_hint)
    }
}

/// Writes `body` to `io` as hyper writes a chunked body, until it ends (`Ok`, the last chunk
/// sent) or the client leaves or stops reading (`Err`).
pub(super) async fn write_chunked<T>(io: &mut Stalling<T>, mut body: Body) -> io::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    #[cfg(test)]
    tests::TAKEN_OVER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut batch = Batch::default();
    let mut ended = false;
    // hyper watches for the end of the client's input until the client sends anything, and
    // keeps what it sent for after the answer.
    let mut watching = io.unread.is_empty();
    std::future::poll_fn(|cx| {
        if watching {
            let mut buf = [0u8; 512];
            let mut read = ReadBuf::new(&mut buf);
            match Pin::new(&mut io.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the client closed the connection",
                    )));
                }
                Poll::Ready(Ok(())) => {
                    io.unread = Bytes::copy_from_slice(read.filled());
                    watching = false;
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {}
            }
        }
        loop {
            if !batch.chunks.is_empty() {
                ready!(batch.poll_write(&mut *io, cx))?;
            }
            if ended {
                return Pin::new(&mut *io).poll_flush(cx);
            }
            while batch.chunks.len() < MAX_BATCH {
                match Pin::new(&mut body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        // hyper skips empty chunks (an empty one would end the body) and
                        // frames that are not data.
                        if let Ok(data) = frame.into_data() {
                            if !data.is_empty() {
                                batch.chunks.push(Chunk::new(data));
                            }
                        }
                    }
                    Poll::Ready(Some(Err(err))) => return Poll::Ready(Err(io::Error::other(err))),
                    Poll::Ready(None) => {
                        batch.chunks.push(Chunk::new(Bytes::new()));
                        ended = true;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
            if batch.chunks.is_empty() {
                return Poll::Pending;
            }
        }
    })
    .await
}

/// Chunks being written, and how many of their bytes are.
#[derive(Default)]
struct Batch {
    chunks: Vec<Chunk>,
    written: usize,
}

/// One chunk: its size line, its data and the line end; the last chunk has no data, which
/// makes it `0\r\n\r\n`.
struct Chunk {
    size: [u8; 18],
    size_len: u8,
    data: Bytes,
}

impl Chunk {
    fn new(data: Bytes) -> Chunk {
        let mut size = [0u8; 18];
        let size_len = {
            let mut line = &mut size[..];
            // 16 hex digits and `\r\n` hold any usize.
            let _ = write!(line, "{:X}\r\n", data.len());
            18 - line.len()
        };
        Chunk {
            size,
            size_len: size_len as u8,
            data,
        }
    }

    fn parts(&self) -> [&[u8]; 3] {
        [
            &self.size[..usize::from(self.size_len)],
            &self.data,
            b"\r\n",
        ]
    }
}

impl Batch {
    /// Writes until every chunk is sent (then frees them) or the socket is full.
    fn poll_write<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut slices = [IoSlice::new(&[]); MAX_BATCH * 3];
            let mut n = 0;
            let mut skip = self.written;
            for part in self.chunks.iter().flat_map(Chunk::parts) {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                slices[n] = IoSlice::new(&part[skip..]);
                skip = 0;
                n += 1;
            }
            if n == 0 {
                // Nothing kept between events: an idle stream holds no buffer.
                *self = Batch::default();
                return Poll::Ready(Ok(()));
            }
            let wrote = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n]))?;
            if wrote == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += wrote;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use axum::extract::Query;
    use axum::routing::get;
    use axum::{Extension, Router};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{oneshot, watch};

    use super::*;
    use crate::listen::{serve, ConnectionLimits};

    /// Streams the connection task wrote (the tests check that it did, not hyper).
    pub(super) static TAKEN_OVER: std::sync::atomic::AtomicUsize =
        std::sync::atomic::AtomicUsize::new(0);

    fn taken_over() -> usize {
        TAKEN_OVER.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sends its message when dropped: the stream's end.
    struct Dropped(Option<oneshot::Sender<()>>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }

    #[derive(serde::Deserialize)]
    struct Params {
        /// Whether the body is handed over (as the event streams do) or left to hyper.
        detach: bool,
        /// Frames before the body ends; none: it never ends.
        frames: Option<usize>,
        /// The frames' size, if they are all alike.
        size: Option<usize>,
    }

    /// A server whose `/stream` answers frames of growing length (an empty one among them),
    /// some after a pause, and `/plain` a short body; the receiver learns when a stream's body
    /// is dropped.
    async fn server(
        limits: ConnectionLimits,
    ) -> (
        SocketAddr,
        watch::Sender<bool>,
        tokio::sync::mpsc::Receiver<()>,
    ) {
        let (dropped_tx, dropped_rx) = tokio::sync::mpsc::channel::<()>(8);
        let stream = move |slot: Option<Extension<ConnectionSlot>>, Query(p): Query<Params>| {
            let dropped_tx = dropped_tx.clone();
            async move {
                let (tx, rx) = oneshot::channel();
                tokio::spawn(async move {
                    if rx.await.is_ok() {
                        let _ = dropped_tx.send(()).await;
                    }
                });
                let state = (0usize, Dropped(Some(tx)));
                let frames = futures_util::stream::unfold(state, move |(i, guard)| async move {
                    if p.frames.is_some_and(|n| i >= n) {
                        return None;
                    }
                    if i % 3 == 2 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    let data = Bytes::from(match p.size {
                        Some(size) => "x".repeat(size),
                        None if i == 1 => String::new(),
                        None => "x".repeat((i + 1) * 7),
                    });
                    Some((Ok::<_, io::Error>(data), (i + 1, guard)))
                });
                let body = Body::from_stream(frames);
                let body = match slot {
                    Some(Extension(slot)) if p.detach => slot.stream_body(body),
                    _ => body,
                };
                axum::response::Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(body)
                    .unwrap()
            }
        };
        let app = Router::new()
            .route("/stream", get(stream))
            .route("/plain", get(|| async { "plain" }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, mut stop_rx) = watch::channel(false);
        tokio::spawn(serve(listener, app, limits, async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }));
        (addr, stop_tx, dropped_rx)
    }

    /// Sends `request` (several, pipelined, if it holds several), then `later` once the first
    /// bytes of the answer arrived, and reads until the server closes, without the `date`
    /// lines.
    async fn exchange(addr: SocketAddr, request: &str, later: &str) -> String {
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        if !later.is_empty() {
            let mut buf = [0u8; 64];
            let n = client.read(&mut buf).await.unwrap();
            answer.extend_from_slice(&buf[..n]);
            client.write_all(later.as_bytes()).await.unwrap();
        }
        tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut answer))
            .await
            .expect("the server closes the connection")
            .unwrap();
        String::from_utf8(answer)
            .unwrap()
            .split_inclusive("\r\n")
            .filter(|line| !line.starts_with("date: "))
            .collect()
    }

    #[tokio::test]
    async fn a_stream_written_by_the_connection_task_is_what_hyper_writes() {
        let (addr, _stop, _dropped) = server(ConnectionLimits::default()).await;
        let plain = "GET /plain HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
        let keep_alive =
            format!("GET /stream?detach={{}}&frames=8 HTTP/1.1\r\nhost: x\r\n\r\n{plain}");
        // (requests sent at once, a request sent once the answer began, streams taken over)
        let exchanges = [
            // Keep-alive: the next request, sent with the first, is answered after the stream.
            (keep_alive.as_str(), "", 1),
            // Two streams on one connection, then closed as asked.
            (
                "GET /stream?detach={}&frames=4 HTTP/1.1\r\nhost: x\r\n\r\n\
                 GET /stream?detach={}&frames=3 HTTP/1.1\r\nhost: x\r\nConnection: keep-alive, Close\r\n\r\n",
                "",
                2,
            ),
            // The next request, sent while the stream runs, is answered after it.
            ("GET /stream?detach={}&frames=6 HTTP/1.1\r\nhost: x\r\n\r\n", plain, 1),
            // What hyper writes alone: no body for HEAD, no chunks for HTTP/1.0.
            ("HEAD /stream?detach={}&frames=3 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", "", 0),
            ("GET /stream?detach={}&frames=3 HTTP/1.0\r\nhost: x\r\n\r\n", "", 0),
        ];
        for (request, later, streams) in exchanges {
            let by_hyper = exchange(addr, &request.replace("{}", "false"), later).await;
            let before = taken_over();
            let detached = exchange(addr, &request.replace("{}", "true"), later).await;
            assert_eq!(detached, by_hyper, "{request}");
            // Other tests may take streams over meanwhile, never fewer.
            assert!(taken_over() - before >= streams, "{request}");
        }
        let whole = exchange(addr, &keep_alive.replace("{}", "true"), "").await;
        assert!(whole.contains("transfer-encoding: chunked\r\n"), "{whole}");
        assert!(
            whole.contains(&format!(
                "\r\n7\r\n{}\r\n15\r\n{}\r\n",
                "x".repeat(7),
                "x".repeat(21)
            )),
            "{whole}"
        );
        assert!(
            whole.contains("\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n"),
            "{whole}"
        );
        assert!(whole.ends_with("\r\n\r\nplain"), "{whole}");
    }

    #[tokio::test]
    async fn a_stream_ends_when_its_client_leaves_and_at_shutdown() {
        let (addr, stop, mut dropped) = server(ConnectionLimits::default()).await;
        let request = "GET /stream?detach=true HTTP/1.1\r\nhost: x\r\n\r\n";
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(request.as_bytes()).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = client.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
        drop(client);
        tokio::time::timeout(Duration::from_secs(10), dropped.recv())
            .await
            .expect("the stream ends with its connection");

        // At shutdown a stream is not cut: the stream's own end (here, its last frame)
        // comes first, then the connection closes.
        let request = "GET /stream?detach=true&frames=6 HTTP/1.1\r\nhost: x\r\n\r\n";
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(request.as_bytes()).await.unwrap();
        let n = client.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
        stop.send(true).unwrap();
        let mut rest = buf[..n].to_vec();
        tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut rest))
            .await
            .expect("the connection closes after the stream")
            .unwrap();
        assert!(
            rest.ends_with(b"\r\n0\r\n\r\n"),
            "{}",
            String::from_utf8_lossy(&rest)
        );
    }

    #[tokio::test]
    async fn a_stream_nobody_reads_ends_after_the_write_timeout() {
        let limits = ConnectionLimits {
            write_timeout: Duration::from_millis(300),
            ..ConnectionLimits::default()
        };
        let (addr, _stop, mut dropped) = server(limits).await;
        let request = "GET /stream?detach=true&size=65536 HTTP/1.1\r\nhost: x\r\n\r\n";
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(request.as_bytes()).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = client.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
        // The client reads no more: the socket's buffers fill up, then the write stalls.
        tokio::time::timeout(Duration::from_secs(30), dropped.recv())
            .await
            .expect("a stalled stream ends");
        drop(client);
    }
}
