//! OpenTelemetry traces from the real binary: `vexil serve --otlp-endpoint` posts OTLP/HTTP
//! protobuf to a collector (a small one here, on port 0), with a span per management request
//! that continues the caller's W3C `traceparent`, and a span per snapshot publish.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{start_with_env, TempDir};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// A collector that answers every POST with 200 and hands over what it was sent: the path and
/// the decoded export.
fn collector() -> (String, mpsc::Receiver<(String, ExportTraceServiceRequest)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || loop {
                let mut reader = BufReader::new(&mut stream);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                    return;
                }
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap();
                        }
                    }
                }
                let mut body = vec![0u8; length];
                reader.read_exact(&mut body).unwrap();
                let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
                let export = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
                let _ = tx.send((path, export));
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
                    .unwrap();
            });
        }
    });
    (format!("http://{addr}"), rx)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            other => Some(format!("{other:?}")),
        }
    })
}

#[test]
fn requests_and_publishes_are_exported_as_spans_of_the_callers_trace() {
    let dir = TempDir::new("vexil-traces");
    let (endpoint, exports) = collector();
    let server = start_with_env(
        &dir.0.join("vexil.db"),
        &["--otlp-endpoint", &endpoint],
        &[("VEXIL_LOG", "info"), ("OTEL_BSP_SCHEDULE_DELAY", "50")],
    );
    let key = server.key.clone().unwrap();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = runtime.block_on(
        reqwest::Client::new()
            .post(format!("{}/api/v1/projects", server.base()))
            .bearer_auth(&key)
            .header("traceparent", format!("00-{trace_id}-{parent}-01"))
            .json(&serde_json::json!({"name": "Traced"}))
            .send(),
    );
    let answer = answer.unwrap();
    assert_eq!(answer.status(), 201);
    let ours = answer.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_string();
    let parts: Vec<&str> = ours.split('-').collect();
    assert_eq!(
        parts[1], trace_id,
        "the answer continues the caller's trace: {ours}"
    );
    assert_ne!(parts[2], parent, "with a span of its own");

    let mut spans: Vec<Span> = Vec::new();
    let mut paths = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = |spans: &[Span]| {
        spans
            .iter()
            .any(|s| s.name == "request" && hex(&s.trace_id) == trace_id)
            && spans.iter().any(|s| s.name == "publish")
    };
    while !found(&spans) && Instant::now() < deadline {
        if let Ok((path, export)) = exports.recv_timeout(Duration::from_millis(200)) {
            paths.push(path);
            for resource in export.resource_spans {
                let service = resource
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|a| a.key == "service.name")
                    .and_then(|a| a.value.as_ref()?.value.clone());
                assert_eq!(service, Some(Value::StringValue("vexil".into())));
                for scope in resource.scope_spans {
                    spans.extend(scope.spans);
                }
            }
        }
    }
    assert!(
        found(&spans),
        "spans received: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert!(paths.iter().all(|p| p == "/v1/traces"), "{paths:?}");
    let request = spans
        .iter()
        .find(|s| s.name == "request" && hex(&s.trace_id) == trace_id)
        .unwrap();
    assert_eq!(
        hex(&request.parent_span_id),
        parent,
        "the caller's span is the parent"
    );
    assert_eq!(
        hex(&request.span_id),
        parts[2],
        "the answer names the exported span"
    );
    assert_eq!(attribute(request, "method").as_deref(), Some("POST"));
    assert_eq!(
        attribute(request, "path").as_deref(),
        Some("/api/v1/projects")
    );
    let publish = spans.iter().find(|s| s.name == "publish").unwrap();
    assert_eq!(attribute(publish, "project").as_deref(), Some("traced"));
}
