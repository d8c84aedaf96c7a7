//! OpenTelemetry traces over OTLP/HTTP (protobuf), off unless `vexil serve --otlp-endpoint` is
//! given. Spans are batched on the SDK's own thread and posted with the server's one HTTP stack
//! (reqwest, the client webhooks use), so tracing adds no second HTTP client to the build.
//!
//! What is exported is what the log filter (`VEXIL_LOG`) enables: at the default `info`, a span
//! per management or console request and per snapshot publish; SDK requests, whose spans are at
//! debug level to keep the hot path cheap, are exported when `VEXIL_LOG` enables debug for
//! `vexil_server`. A request continues the caller's W3C trace (`traceparent`), see
//! [`crate::trace`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
use opentelemetry_sdk::Resource;

/// Set once traces are exported, so that the request middleware only asks the OpenTelemetry
/// context for ids when there is one.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported.
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The longest an export may take (the collector's answer included).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// An exporter's provider: flushes and stops the export thread when shut down.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Exports what is buffered and stops; spans ended after this are dropped.
    pub fn shutdown(&self) {
        if let Err(err) = self.provider.shutdown() {
            tracing::warn!(error = %err, "flushing traces at shutdown failed");
        }
        ENABLED.store(false, Ordering::Relaxed);
    }
}

/// The OTLP/HTTP traces URL for a collector's base URL (`http://collector:4318`): its
/// `/v1/traces` path, unless the URL names a path of its own.
pub fn traces_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    let has_path = trimmed
        .split_once("://")
        .is_some_and(|(_, rest)| rest.contains('/'));
    if has_path {
        trimmed.to_string()
    } else {
        format!("{trimmed}/v1/traces")
    }
}

/// Starts exporting spans to the collector at `endpoint` and returns the tracer to give
/// `tracing_opentelemetry::layer().with_tracer`, with the handle that flushes at shutdown.
/// `runtime` runs the HTTP requests (the export thread itself is not a tokio thread).
pub fn start(
    endpoint: &str,
    runtime: tokio::runtime::Handle,
) -> Result<(Tracer, Traces), Box<dyn std::error::Error + Send + Sync>> {
    let client = reqwest::Client::builder().timeout(EXPORT_TIMEOUT).build()?;
    let exporter = SpanExporter::builder()
        .with_http()
        .with_http_client(Exporter { client, runtime })
        .with_endpoint(traces_url(endpoint))
        .with_timeout(EXPORT_TIMEOUT)
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder_empty()
                .with_service_name("vexil")
                .with_attribute(opentelemetry::KeyValue::new(
                    "service.version",
                    env!("CARGO_PKG_VERSION"),
                ))
                .build(),
        )
        .build();
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "vexil");
    ENABLED.store(true, Ordering::Relaxed);
    Ok((tracer, Traces { provider }))
}

/// Posts export requests with reqwest on the server's runtime: the batch thread awaits the
/// spawned task's handle, which needs no runtime of its own.
#[derive(Debug)]
struct Exporter {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait]
impl HttpClient for Exporter {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let (parts, body) = request.into_parts();
        let mut outgoing = client
            .request(parts.method, parts.uri.to_string())
            .body(body);
        for (name, value) in &parts.headers {
            outgoing = outgoing.header(name, value);
        }
        let answer = self
            .runtime
            .spawn(async move {
                let response = outgoing.send().await?;
                let status = response.status();
                let headers = response.headers().clone();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, headers, body))
            })
            .await??;
        let (status, headers, body) = answer;
        let mut response = Response::builder().status(status);
        if let Some(h) = response.headers_mut() {
            *h = headers;
        }
        Ok(response.body(body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn collector_urls_get_the_traces_path_unless_they_name_one() {
        for (given, url) in [
            ("http://c:4318", "http://c:4318/v1/traces"),
            ("http://c:4318/", "http://c:4318/v1/traces"),
            (
                "https://c.example/otlp/v1/traces",
                "https://c.example/otlp/v1/traces",
            ),
            ("http://c:4318/custom/", "http://c:4318/custom"),
        ] {
            assert_eq!(traces_url(given), url, "{given}");
        }
    }
}
