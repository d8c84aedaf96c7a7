//! Measures cross-node propagation for `bench/propagation.sh`: holds a flag stream open on
//! every follower node, changes the flag CHANGES times through the first node, and reports how
//! long each change took to reach each follower's stream (p50, p99, max), from just before the
//! management call to the arrival of the new payload.
//!
//! Usage: `propagation WRITER_BASE FOLLOWER_BASE[,FOLLOWER_BASE…] SERVER_KEY ADMIN_KEY FLAG [CHANGES]`
//! (default 100 changes). Bases are `http://127.0.0.1:PORT`.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[path = "support/sse.rs"]
mod sse;

use sse::{read_events, Error};

/// An open flag stream that has delivered its first event.
async fn open_stream(base: &str, key: &str) -> Result<(TcpStream, Vec<u8>), Error> {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!(
        "GET /sdk/stream/v1/flags HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Api-Key {key}\r\nAccept: text/event-stream\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    read_events(&mut stream, &mut buf, 1).await?;
    Ok((stream, buf))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let [_, writer, followers, key, admin, flag, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: propagation WRITER FOLLOWER[,FOLLOWER…] SERVER_KEY ADMIN_KEY FLAG [CHANGES]"
                .into(),
        );
    };
    let changes: usize = rest.first().map_or(Ok(100), |s| s.parse())?;
    let mut streams = Vec::new();
    for base in followers.split(',') {
        streams.push(open_stream(base, key).await?);
    }
    let http = reqwest::Client::new();
    let mut latencies = Vec::with_capacity(changes * streams.len());
    for n in 0..changes {
        let current = http
            .get(format!("{writer}/api/v1/flags/{flag}"))
            .bearer_auth(admin)
            .send()
            .await?;
        let etag = current.headers()["etag"].to_str()?.to_owned();
        let body = serde_json::json!({
            "all_other_users": {"percentage": 1 + n % 98, "weights": {"on": 1}}
        });
        let started = Instant::now();
        let answer = http
            .patch(format!("{writer}/api/v1/flags/{flag}"))
            .bearer_auth(admin)
            .header("If-Match", etag)
            .json(&body)
            .send()
            .await?;
        if !answer.status().is_success() {
            return Err(format!("change {n} failed: {}", answer.text().await?).into());
        }
        // Each follower's stream in turn; they were all sent the change at once.
        for (stream, buf) in &mut streams {
            tokio::time::timeout(Duration::from_secs(10), read_events(stream, buf, 1))
                .await
                .map_err(|_| format!("change {n} did not arrive within 10 s"))??;
            latencies.push(started.elapsed());
        }
    }
    latencies.sort();
    println!(
        "{changes} changes x {} followers: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        streams.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
    Ok(())
}
