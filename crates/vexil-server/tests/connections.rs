//! The connection layer against clients that misbehave on purpose: half-sent heads and bodies
//! are cut off, connections over the caps are refused at once with `503`, and event streams are
//! counted apart so that they neither crowd out requests nor are crowded out by them.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[allow(
    unused_macros,
    reason = "these tests need servers with their own limits"
)]
mod common;

use std::time::Duration;

use common::sdk::DEADLINE;
use common::{fast_config, Backend, Server};
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vexil_server::ServerConfig;

async fn server(configure: impl FnOnce(&mut ServerConfig)) -> Server {
    let mut config = fast_config();
    configure(&mut config);
    Server::start_with(Backend::Sqlite, config).await.unwrap()
}

async fn connect(srv: &Server) -> TcpStream {
    TcpStream::connect(srv.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection; what it sent before.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(DEADLINE, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&out).into_owned()
}

/// What a silent or slow client gets: the connection closed (with an answer or none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    let srv = server(|c| {
        c.connections.header_timeout = Duration::from_millis(300);
        c.connections.body_timeout = Duration::from_millis(300);
    })
    .await;
    let fx = srv.sdk_fixture("Slow").await;
    // (what the client sends and then stops, what the answer must start with if any)
    let half_head = "GET /sdk/v2/flags HTTP/1.1\r\nHost: x\r\nAuthorization: Api-Key ".to_owned();
    let half_body = format!(
        "POST /batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"api_key\":\"{}\",\"events\":[",
        fx.server
    );
    let half_api_body = format!(
        "POST /api/v1/projects HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"name\":",
        srv.admin
    );
    let cases: [(&str, String, Option<&str>); 4] = [
        ("a silent connection", String::new(), None),
        ("a half-sent head", half_head, None),
        ("a half-sent event batch", half_body, Some("HTTP/1.1 408")),
        ("a half-sent API body", half_api_body, Some("HTTP/1.1 408")),
    ];
    for (what, sent, answer) in cases {
        let mut stream = connect(&srv).await;
        stream.write_all(sent.as_bytes()).await.unwrap();
        let got = until_closed(&mut stream).await;
        match answer {
            Some(prefix) => assert!(got.starts_with(prefix), "{what}: {got:?}"),
            None => assert!(got.is_empty(), "{what}: {got:?}"),
        }
    }
    // An idle keep-alive connection is closed too, after a request that succeeded.
    let mut stream = connect(&srv).await;
    let request = format!(
        "GET /sdk/v2/flags HTTP/1.1\r\nHost: x\r\nAuthorization: Api-Key {}\r\n\r\n",
        fx.server
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let got = until_closed(&mut stream).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_caps_are_refused_at_once() {
    for per_ip in [false, true] {
        let srv = server(|c| {
            c.connections.header_timeout = Duration::from_secs(60);
            if per_ip {
                c.connections.max_connections = 100;
                c.connections.max_connections_per_ip = 3;
            } else {
                c.connections.max_connections = 3;
                c.connections.max_connections_per_ip = 0;
            }
        })
        .await;
        let mut idle = Vec::new();
        for _ in 0..3 {
            let mut s = connect(&srv).await;
            s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
            idle.push(s);
        }
        // The caps are full of half-sent requests: a new connection is answered 503 at once.
        let refused = srv
            .eventually("a connection over the cap to be refused", || async {
                let r = srv
                    .http
                    .get(srv.url("/api/v1/projects"))
                    .send()
                    .await
                    .ok()?;
                (r.status() == 503).then_some(r)
            })
            .await;
        assert_eq!(refused.headers()["retry-after"], "1");
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["code"], "too_many_connections");
        // A place freed is a place to take.
        idle.pop();
        srv.eventually("a freed place to be taken", || async {
            let r = srv
                .http
                .get(srv.url("/api/v1/openapi.json"))
                .send()
                .await
                .ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_counted_apart_from_connections() {
    let srv = server(|c| {
        c.connections.max_connections = 2;
        c.connections.max_connections_per_ip = 0;
        c.max_streams = 4;
    })
    .await;
    let fx = srv.sdk_fixture("Streams").await;
    // Four streams, twice the connection cap, all open at once.
    let mut streams = Vec::new();
    for _ in 0..4 {
        let r = srv
            .sdk(Method::GET, "/sdk/stream/v1/flags", &fx.server)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        streams.push(r);
    }
    // Ordinary requests still get through.
    let flags = srv
        .send(srv.sdk(Method::GET, "/sdk/v2/flags", &fx.server))
        .await;
    assert_eq!(flags.status, 200);
    // The stream cap holds on its own.
    let fifth = srv
        .sdk(Method::GET, "/sdk/stream/v1/flags", &fx.server)
        .send()
        .await
        .unwrap();
    assert_eq!(fifth.status(), 503);
    drop(streams);
}
