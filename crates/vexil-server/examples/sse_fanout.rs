//! Measures SSE fan-out for `bench/sdk-load.sh`: opens N flag streams
//! (`/sdk/stream/v1/flags`) to a running Vexil, waits for every first event, changes a flag
//! through the management API, and reports how long until every stream received the new
//! payload (median and maximum).
//!
//! Usage: `sse_fanout BASE SERVER_KEY ADMIN_KEY FLAG [STREAMS]` (default 1000 streams).
//! BASE is `http://127.0.0.1:PORT`.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[path = "support/sse.rs"]
mod sse;

use sse::{read_events, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let [_, base, key, admin, flag, rest @ ..] = args.as_slice() else {
        return Err("usage: sse_fanout BASE SERVER_KEY ADMIN_KEY FLAG [STREAMS]".into());
    };
    let streams: usize = rest.first().map_or(Ok(1000), |s| s.parse())?;
    let addr = base.trim_start_matches("http://").to_owned();
    let request = format!(
        "GET /sdk/stream/v1/flags HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Api-Key {key}\r\nAccept: text/event-stream\r\n\r\n"
    );
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(streams);
    let (go_tx, _) = tokio::sync::broadcast::channel::<Instant>(1);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<Duration>(streams);
    for _ in 0..streams {
        let (addr, request) = (addr.clone(), request.clone());
        let (ready, done) = (ready_tx.clone(), done_tx.clone());
        let mut go = go_tx.subscribe();
        tokio::spawn(async move {
            let run = async {
                let mut stream = TcpStream::connect(&addr).await?;
                stream.write_all(request.as_bytes()).await?;
                let mut buf = Vec::new();
                read_events(&mut stream, &mut buf, 1).await?;
                ready.send(()).await?;
                let changed_at = go.recv().await?;
                read_events(&mut stream, &mut buf, 1).await?;
                done.send(changed_at.elapsed()).await?;
                Ok::<_, Error>(())
            };
            if let Err(err) = run.await {
                // The others would wait for it forever: the fan-out cannot be timed.
                eprintln!("error: a stream failed: {err}");
                std::process::exit(1);
            }
        });
    }
    drop((ready_tx, done_tx));
    for _ in 0..streams {
        ready_rx
            .recv()
            .await
            .ok_or("a stream failed before its first event")?;
    }
    // Change the flag: read its version, then patch its description.
    let http = reqwest::Client::new();
    let current = http
        .get(format!("{base}/api/v1/flags/{flag}"))
        .bearer_auth(admin)
        .send()
        .await?;
    let etag = current.headers()["etag"].to_str()?.to_owned();
    let flag_doc: serde_json::Value = current.json().await?;
    let percentage = flag_doc["all_other_users"]["percentage"]
        .as_u64()
        .unwrap_or(50);
    let weights = flag_doc["all_other_users"]["weights"].clone();
    let changed = Instant::now();
    let _ = go_tx.send(changed);
    let body = serde_json::json!({"all_other_users": {"percentage": (percentage + 1) % 100, "weights": weights}});
    let answer = http
        .patch(format!("{base}/api/v1/flags/{flag}"))
        .bearer_auth(admin)
        .header("If-Match", etag)
        .json(&body)
        .send()
        .await?;
    if !answer.status().is_success() {
        return Err(format!("the change failed: {}", answer.text().await?).into());
    }
    let mut latencies = Vec::with_capacity(streams);
    while let Some(l) = done_rx.recv().await {
        latencies.push(l);
    }
    if latencies.len() != streams {
        return Err(format!(
            "only {} of {streams} streams saw the change",
            latencies.len()
        )
        .into());
    }
    latencies.sort();
    println!(
        "{streams} streams: change seen by all in {:.1} ms (median {:.1} ms)",
        latencies[streams - 1].as_secs_f64() * 1e3,
        latencies[streams / 2].as_secs_f64() * 1e3
    );
    Ok(())
}
