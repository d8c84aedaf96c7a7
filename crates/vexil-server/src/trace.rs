//! W3C trace context (`traceparent`) for every request: each request runs in a `request` span
//! carrying the caller's trace id (or a new one when the caller sent none or a malformed one)
//! and a span id of its own, so that Vexil's log lines (JSON with `VEXIL_LOG_FORMAT=json`) join
//! the caller's trace in whatever collects the logs. The answer carries `traceparent` with
//! Vexil's span id, so a caller that did not start a trace can still find the request.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The parts of a `traceparent` header (`00-<trace id>-<parent id>-<flags>`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct TraceParent {
    trace_id: String,
    parent_id: String,
    flags: String,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parses a `traceparent` as the W3C recommendation says: version `00` (or a later version,
/// whose first four fields are read the same way), lowercase hex, and neither id all zeros.
fn parse(value: &str) -> Option<TraceParent> {
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    let trace_id = parts.next()?;
    let parent_id = parts.next()?;
    let flags = parts.next()?;
    let rest_ok = match version {
        "00" => parts.next().is_none(),
        "ff" => false,
        _ => true,
    };
    let valid = rest_ok
        && is_hex(version, 2)
        && is_hex(trace_id, 32)
        && is_hex(parent_id, 16)
        && is_hex(flags, 2)
        && trace_id.bytes().any(|b| b != b'0')
        && parent_id.bytes().any(|b| b != b'0');
    valid.then(|| TraceParent {
        trace_id: trace_id.to_owned(),
        parent_id: parent_id.to_owned(),
        flags: flags.to_owned(),
    })
}

/// `n` random bytes as lowercase hex; never all zeros. Ids need to be unique, not secret: a
/// per-thread generator (SplitMix64, seeded once from the OS) spares a system call per request.
fn random_hex(n: usize) -> String {
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new(seed());
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(n * 2);
    let mut any = false;
    let mut word = 0u64;
    for i in 0..n {
        if i % 8 == 0 {
            word = STATE.with(|state| {
                let next = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
                state.set(next);
                let mut z = next;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^ (z >> 31)
            });
        }
        let byte = (word >> ((i % 8) * 8)) as u8;
        any |= byte != 0;
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 15)] as char);
    }
    if !any {
        // All zeros is the one invalid id; make the last digit one.
        out.pop();
        out.push('1');
    }
    out
}

/// A seed from the OS, or from the clock and the thread when the OS has none to give.
fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_ok() {
        return u64::from_le_bytes(bytes);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let thread = std::hash::BuildHasher::hash_one(
        &std::collections::hash_map::RandomState::new(),
        std::thread::current().id(),
    );
    nanos ^ thread
}

/// Middleware: runs the request in its span and answers with its `traceparent`.
pub(crate) async fn context(request: Request, next: Next) -> Response {
    let incoming = request
        .headers()
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(parse);
    let span_id = random_hex(8);
    let (trace_id, parent_id, flags) = match incoming {
        Some(p) => (p.trace_id, p.parent_id, p.flags),
        None => (random_hex(16), String::new(), "00".to_owned()),
    };
    // SDK requests are the hot path and log nothing of their own: their span is at debug
    // level, since an enabled span costs its fields' formatting on every request (about a
    // third of a remote evaluation's CPU at the default `info`). Management and console
    // requests, whose logs the trace id should join, get an info span.
    let sdk = crate::metrics::is_sdk(crate::metrics::family(request.uri().path()));
    // When spans are exported, OpenTelemetry assigns the ids: they are recorded once known.
    let exported = crate::otlp::enabled();
    macro_rules! request_span {
        ($level:expr) => {
            if exported {
                tracing::span!(
                    $level,
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    trace_id = tracing::field::Empty,
                    span_id = tracing::field::Empty,
                    parent_id = %parent_id,
                )
            } else {
                tracing::span!(
                    $level,
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    trace_id = %trace_id,
                    span_id = %span_id,
                    parent_id = %parent_id,
                )
            }
        };
    }
    let span = if sdk {
        request_span!(tracing::Level::DEBUG)
    } else {
        request_span!(tracing::Level::INFO)
    };
    let (trace_id, span_id) = if exported && !span.is_disabled() {
        let ids = exported_ids(&span, &trace_id, &parent_id, &flags).unwrap_or((trace_id, span_id));
        span.record("trace_id", tracing::field::display(&ids.0));
        span.record("span_id", tracing::field::display(&ids.1));
        ids
    } else {
        (trace_id, span_id)
    };
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| tracing::debug!(status = response.status().as_u16(), "answered"));
    if let Ok(value) = HeaderValue::from_str(&format!("00-{trace_id}-{span_id}-{flags}")) {
        response.headers_mut().insert(TRACEPARENT.clone(), value);
    }
    response
}

/// When spans are exported: makes the caller's span (if any) the exported span's parent, and
/// returns the trace and span ids OpenTelemetry gave the request, which the caller records in
/// the log fields and the answer's `traceparent`, so logs, traces and the caller agree.
fn exported_ids(
    span: &tracing::Span,
    trace_id: &str,
    parent_id: &str,
    flags: &str,
) -> Option<(String, String)> {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !parent_id.is_empty() {
        let remote = SpanContext::new(
            TraceId::from_hex(trace_id).ok()?,
            SpanId::from_hex(parent_id).ok()?,
            TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
            true,
            TraceState::default(),
        );
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
    let context = span.context();
    let ours = context.span().span_context().clone();
    if !ours.is_valid() {
        return None;
    }
    Some((ours.trace_id().to_string(), ours.span_id().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_read_as_the_recommendation_says() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let parent = "00f067aa0ba902b7";
        for (value, ok) in [
            (format!("00-{id}-{parent}-01"), true),
            (format!(" 00-{id}-{parent}-00 "), true),
            (format!("01-{id}-{parent}-01-extra"), true),
            (format!("00-{id}-{parent}-01-extra"), false),
            (format!("ff-{id}-{parent}-01"), false),
            (format!("00-{}-{parent}-01", "0".repeat(32)), false),
            (format!("00-{id}-{}-01", "0".repeat(16)), false),
            (format!("00-{}-{parent}-01", id.to_uppercase()), false),
            (format!("00-{id}-{parent}"), false),
            ("".to_owned(), false),
        ] {
            let parsed = parse(&value);
            assert_eq!(parsed.is_some(), ok, "{value:?}");
            if let Some(p) = parsed {
                assert_eq!((p.trace_id.as_str(), p.parent_id.as_str()), (id, parent));
            }
        }
        let fresh = random_hex(16);
        assert!(is_hex(&fresh, 32) && fresh.bytes().any(|b| b != b'0'));
        assert_ne!(fresh, random_hex(16), "ids do not repeat");
        assert!(is_hex(&random_hex(8), 16));
    }
}
