//! The SDK-facing API (`sdk-protocol.md`): Amplitude-compatible flag download, remote
//! evaluation, streams, cohort download and event ingestion, and OFREP. Handlers read the
//! published snapshots in the [`Registry`] and never the database; only event ingestion writes
//! to it.
//!
//! Errors here follow the protocols, not the management API: Amplitude endpoints answer
//! `{"error": "..."}`, ingestion `{"code": n, "error": "..."}`, OFREP `{"errorCode", ...}`.

// Helpers return a finished `Response` as their error so that handlers can answer it as is;
// refusals are the uncommon path, and boxing them would only add an allocation.
#![allow(clippy::result_large_err, reason = "see the comment above")]

mod amplitude;
pub(crate) mod backend;
mod events;
mod limit;
mod ofrep;
pub(crate) mod registry;
mod relay;
mod stream;

use std::io::Read;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
pub use backend::{BackendMetric, MetricKind, NodeBackend, SdkBackend};
use base64::Engine;
use bytes::Bytes;

pub(crate) use events::ingest_buffer_kib;
pub use limit::Limiter;
use registry::{Registry, Served};

use crate::config::ServerConfig;
use crate::listen::{caused_by, BodyTimeout};

/// What the SDK handlers share.
pub(crate) struct Sdk {
    pub registry: Arc<Registry>,
    /// Event batches, tracking, freshness and readiness: the store's on a node, the
    /// upstream's on an edge.
    pub backend: Arc<dyn SdkBackend>,
    pub config: ServerConfig,
    pub limiter: Option<Limiter>,
    /// Streams open now.
    pub streams: Arc<AtomicUsize>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Room for event batches, in KiB (`ServerConfig::ingest_buffer`).
    pub ingest_buffer: Arc<tokio::sync::Semaphore>,
}

pub(crate) type SdkState = Arc<Sdk>;

/// Evaluation request bodies: 1 MiB.
const EVAL_LIMIT: usize = 1 << 20;
/// Event batches: 20 MiB.
const EVENTS_LIMIT: usize = 20 << 20;

pub(crate) fn router(sdk: SdkState) -> Router {
    let routes = Router::new()
        .route(
            "/sdk/v2/flags",
            get(amplitude::flags).options(preflight_handler),
        )
        .route(
            "/sdk/v2/vardata",
            get(amplitude::vardata_get)
                .post(amplitude::vardata_post)
                .options(preflight_handler),
        )
        .route(
            "/sdk/vardata",
            get(amplitude::v1_get)
                .post(amplitude::v1_post)
                .options(preflight_handler),
        )
        .route(
            "/v1/vardata",
            get(amplitude::rest_get)
                .post(amplitude::v1_post)
                .options(preflight_handler),
        )
        .route(
            "/sdk/v1/cohort/{id}",
            get(amplitude::cohort).options(preflight_handler),
        )
        .route(
            "/sdk/stream/v1/flags",
            get(stream::flags).options(preflight_handler),
        )
        .route(
            "/2/httpapi",
            post(events::ingest).options(preflight_handler),
        )
        .route("/batch", post(events::ingest).options(preflight_handler))
        .route(
            "/ofrep/v1/evaluate/flags/{key}",
            post(ofrep::one).options(preflight_handler),
        )
        .route(
            "/ofrep/v1/evaluate/flags",
            post(ofrep::bulk).options(preflight_handler),
        )
        .route(
            "/sdk/ofrep/v1/events",
            get(stream::ofrep_events).options(preflight_handler),
        )
        .route("/sdk/relay/v1/deployment", get(relay::deployment))
        .route("/sdk/relay/v1/stream", get(relay::stream));
    // With any origin allowed (the default) the CORS headers are constant: a plain response
    // map, without the boxing of a middleware.
    let routes = if sdk.config.cors_origins.is_empty() {
        routes.layer(tower::util::MapResponseLayer::new(|mut r: Response| {
            let status = r.status();
            finish_headers(
                r.headers_mut(),
                status,
                Some(HeaderValue::from_static("*")),
                false,
            );
            r
        }))
    } else {
        routes.layer(middleware::from_fn_with_state(sdk.clone(), cors))
    };
    routes.with_state(sdk)
}

const ALLOW_HEADERS: &str = "Authorization, Content-Type, Content-Encoding, X-Amp-Exp-User, \
X-Amp-Exp-Flag-Keys, X-Amp-Exp-Track, X-Amp-Exp-Exposure-Track, X-Amp-Exp-Library, X-API-Key, \
If-None-Match, Cache-Control, Last-Event-ID";

async fn preflight_handler() -> Response {
    preflight().await
}

/// `OPTIONS` on any SDK path (§A11); the origin header is added by [`cors`].
async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS),
            (header::ACCESS_CONTROL_MAX_AGE, "86400"),
        ],
    )
        .into_response()
}

/// With an allow-list of origins: `Access-Control-Allow-Origin` is the request's origin when
/// it is on the list (and absent otherwise), varying by `Origin`.
async fn cors(State(sdk): State<SdkState>, request: Request, next: Next) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .filter(|o| {
            o.to_str()
                .is_ok_and(|o| sdk.config.cors_origins.iter().any(|a| a == o))
        })
        .cloned();
    let mut response = next.run(request).await;
    let status = response.status();
    finish_headers(response.headers_mut(), status, origin, true);
    response
}

/// The headers every SDK response carries (§A11).
fn finish_headers(
    headers: &mut HeaderMap,
    status: StatusCode,
    origin: Option<HeaderValue>,
    vary: bool,
) {
    // A body refused before it was read leaves the connection unusable for the next request.
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    if vary {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("ETag, Retry-After"),
    );
}

/// `{"error": message}` with a status: the Amplitude endpoints' error shape.
pub(crate) fn amp_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    json_response(status, body)
}

pub(crate) use vexil_core::sdk::ArcStr;

/// A snapshot's `/sdk/v2/flags` body as a response body: its parts, shared and sent in order,
/// with the exact length (`Content-Length`).
pub(crate) fn flags_body(flags: &vexil_core::sdk::FlagsBody) -> Body {
    Body::new(Parts {
        parts: flags.parts().iter().cloned().collect(),
        remaining: flags.len() as u64,
    })
}

struct Parts {
    parts: std::collections::VecDeque<Bytes>,
    remaining: u64,
}

impl http_body::Body for Parts {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let part = self.parts.pop_front();
        if let Some(p) = &part {
            self.remaining = self.remaining.saturating_sub(p.len() as u64);
        }
        std::task::Poll::Ready(part.map(|p| Ok(http_body::Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

pub(crate) fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// 429 with `Retry-After`.
pub(crate) fn too_many(retry_after: u64, body: String) -> Response {
    let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, body);
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// The deployment key of `Authorization: <scheme> <key>` when the scheme matches
/// (case-insensitively, followed by one space).
pub(crate) fn scheme_key<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (word, key) = value.split_at_checked(scheme.len())?;
    let key = key.strip_prefix(' ')?;
    (word.eq_ignore_ascii_case(scheme) && !key.is_empty()).then_some(key)
}

impl Sdk {
    /// Checks the per-key rate limit; `Err(seconds)` to wait.
    pub(crate) fn limit(&self, key: &str) -> Result<(), u64> {
        match &self.limiter {
            Some(limiter) => limiter.check(key),
            None => Ok(()),
        }
    }

    /// The deployment of `Authorization: Api-Key <key>`, unless unknown or archived.
    pub(crate) fn amplitude_auth(&self, headers: &HeaderMap) -> Result<Arc<Served>, Response> {
        let served = scheme_key(headers, "Api-Key")
            .and_then(|key| self.registry.by_key(key))
            .filter(|s| !s.snapshot.deployment.archived);
        served.ok_or_else(|| amp_error(StatusCode::UNAUTHORIZED, "Invalid deployment"))
    }
}

/// Base64 decoders that take padding or none.
const INDIFFERENT: base64::engine::GeneralPurposeConfig =
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent);
const STANDARD_ANY: base64::engine::GeneralPurpose =
    base64::engine::GeneralPurpose::new(&base64::alphabet::STANDARD, INDIFFERENT);
const URL_SAFE_ANY: base64::engine::GeneralPurpose =
    base64::engine::GeneralPurpose::new(&base64::alphabet::URL_SAFE, INDIFFERENT);

/// Decodes any base64 flavour SDKs send (§A5): whitespace removed, URL-safe letters mapped,
/// padding dropped. The common case, one alphabet and no whitespace, decodes in place.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let url = bytes.iter().any(|&b| b == b'-' || b == b'_');
    let standard = bytes.iter().any(|&b| b == b'+' || b == b'/');
    let spaced = bytes.iter().any(u8::is_ascii_whitespace);
    let mixed = url && standard;
    if !spaced && !mixed {
        let engine = if url { &URL_SAFE_ANY } else { &STANDARD_ANY };
        return engine.decode(bytes).ok();
    }
    let mut cleaned = Vec::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'-' => cleaned.push(b'+'),
            b'_' => cleaned.push(b'/'),
            b'=' => {}
            b if b.is_ascii_whitespace() || b == 0x0b => {}
            b => cleaned.push(b),
        }
    }
    STANDARD_ANY.decode(&cleaned).ok()
}

/// Why a body could not be read.
pub(crate) enum BodyError {
    TooLarge,
    /// The client did not send it in time.
    TimedOut,
    Invalid(String),
}

impl BodyError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::TimedOut => StatusCode::REQUEST_TIMEOUT,
            BodyError::Invalid(_) => StatusCode::BAD_REQUEST,
        }
    }

    pub(crate) fn message(&self, limit: usize) -> String {
        match self {
            BodyError::TooLarge => format!(
                "the request body is larger than {} MiB",
                limit.div_ceil(1 << 20)
            ),
            BodyError::TimedOut => "the request body did not arrive in time".to_owned(),
            BodyError::Invalid(m) => m.clone(),
        }
    }
}

/// Reads a body up to `limit` bytes, inflating `Content-Encoding: gzip` (also up to `limit`).
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let raw = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if caused_by::<http_body_util::LengthLimitError>(&e) {
            BodyError::TooLarge
        } else if caused_by::<BodyTimeout>(&e) {
            BodyError::TimedOut
        } else {
            BodyError::Invalid(e.to_string())
        }
    })?;
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    if !gzip {
        return Ok(raw);
    }
    let mut out = Vec::new();
    let decoder = flate2::read::GzDecoder::new(&raw[..]);
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::Invalid(format!("the gzip body cannot be inflated: {e}")))?;
    if out.len() > limit {
        return Err(BodyError::TooLarge);
    }
    Ok(Bytes::from(out))
}

/// The first value of a query parameter.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Collapses runs of `/` and drops one trailing `/` before routing (§0), so `//sdk/v2/flags`
/// and `/sdk/v2/flags/` reach `/sdk/v2/flags`.
pub(crate) fn normalize_path(mut request: Request) -> Request {
    let path = request.uri().path();
    let needs = path.contains("//") || (path.len() > 1 && path.ends_with('/'));
    if !needs {
        return request;
    }
    let mut clean = String::with_capacity(path.len());
    for part in path.split('/').filter(|p| !p.is_empty()) {
        clean.push('/');
        clean.push_str(part);
    }
    if clean.is_empty() {
        clean.push('/');
    }
    if let Some(q) = request.uri().query() {
        clean.push('?');
        clean.push_str(q);
    }
    let mut parts = request.uri().clone().into_parts();
    if let Ok(pq) = clean.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// A header's value as text.
pub(crate) fn header_str<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_base64_flavour_decodes() {
        let json = br#"{"user_id":"u?>~1"}"#;
        let standard = base64::engine::general_purpose::STANDARD.encode(json);
        let url = base64::engine::general_purpose::URL_SAFE.encode(json);
        for text in [
            standard.clone(),
            standard.trim_end_matches('=').to_owned(),
            url.clone(),
            url.trim_end_matches('=').to_owned(),
            format!(" {standard}\n"),
            format!("{}\n{}", &url[..8], &url[8..]),
        ] {
            assert_eq!(decode_base64(&text).as_deref(), Some(&json[..]), "{text}");
        }
        assert_eq!(decode_base64("***"), None);
    }

    #[test]
    fn paths_are_normalized() {
        for (path, expected) in [
            ("/sdk/v2/flags", "/sdk/v2/flags"),
            ("//sdk/v2/flags", "/sdk/v2/flags"),
            ("/sdk//v2/flags/", "/sdk/v2/flags"),
            ("/sdk/v2/flags/?v=0", "/sdk/v2/flags?v=0"),
            ("/", "/"),
            ("//", "/"),
        ] {
            let request = Request::builder().uri(path).body(Body::empty()).unwrap();
            let out = normalize_path(request);
            assert_eq!(out.uri().to_string(), expected, "{path}");
        }
    }

    #[test]
    fn authorization_schemes_match_case_insensitively() {
        let mut headers = HeaderMap::new();
        for (value, expected) in [
            ("Api-Key server-abc", Some("server-abc")),
            ("api-key server-abc", Some("server-abc")),
            ("Api-Key  server-abc", Some(" server-abc")),
            ("Bearer server-abc", None),
            ("Api-Key", None),
            ("Api-Keyserver", None),
        ] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            assert_eq!(scheme_key(&headers, "Api-Key"), expected, "{value}");
        }
    }
}
