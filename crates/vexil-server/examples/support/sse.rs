//! What the SSE examples share: reading complete flag-stream events from a raw connection.

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Reads from `stream` until `events` complete SSE data events (that are not keep-alives)
/// have arrived.
pub async fn read_events(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    events: usize,
) -> Result<(), Error> {
    let mut seen = 0;
    let mut chunk = [0u8; 64 * 1024];
    loop {
        while let Some(end) = find(buf, b"\n\n") {
            let event: Vec<u8> = buf.drain(..end + 2).collect();
            if event.windows(6).any(|w| w == b"data: ")
                && event.windows(2).any(|w| w == b"[{" || w == b"[]")
            {
                seen += 1;
                if seen == events {
                    return Ok(());
                }
            }
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err("stream closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
