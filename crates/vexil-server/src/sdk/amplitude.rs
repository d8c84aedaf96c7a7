//! Amplitude Experiment's SDK endpoints (`sdk-protocol.md` §A3, §A5, §A6, §A9): flag
//! download, remote evaluation in its v2 and v1 shapes, and cohort download.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use vexil_core::sdk::RemoteOptions;
use vexil_eval::{Object, Value};

use super::registry::Served;
use super::{
    amp_error, decode_base64, flags_body, header_str, json_response, query_param, read_body,
    too_many, ArcStr, SdkState, EVAL_LIMIT,
};

static X_AMP_EXP_USER: HeaderName = HeaderName::from_static("x-amp-exp-user");
static X_AMP_EXP_FLAG_KEYS: HeaderName = HeaderName::from_static("x-amp-exp-flag-keys");
static X_AMP_EXP_TRACK: HeaderName = HeaderName::from_static("x-amp-exp-track");
static X_AMP_EXP_EXPOSURE_TRACK: HeaderName = HeaderName::from_static("x-amp-exp-exposure-track");
static X_AMP_EXP_LIBRARY: HeaderName = HeaderName::from_static("x-amp-exp-library");

/// Authenticates and applies the rate limit.
fn admit(sdk: &SdkState, headers: &HeaderMap) -> Result<Arc<Served>, Response> {
    let served = sdk.amplitude_auth(headers)?;
    sdk.limit(&served.snapshot.deployment.api_key)
        .map_err(|retry| too_many(retry, r#"{"error":"Too many requests"}"#.to_owned()))?;
    Ok(served)
}

/// `GET /sdk/v2/flags`.
pub(crate) async fn flags(State(sdk): State<SdkState>, request: Request) -> Response {
    let headers = request.headers();
    let served = match admit(&sdk, headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let query = request.uri().query();
    if query_param(query, "delivery_method").as_deref() == Some("web") {
        return json_response(StatusCode::OK, "[]");
    }
    let snapshot = &served.snapshot;
    let remote = query_param(query, "eval_mode").as_deref() == Some("remote")
        && snapshot.deployment.kind == vexil_core::DeploymentType::Server;
    let etag = format!(
        "W/\"{}-{}\"",
        snapshot.revision,
        if remote { "remote" } else { "local" }
    );
    let matches = header_str(headers, &header::IF_NONE_MATCH)
        .is_some_and(|h| vexil_core::sdk::ofrep::if_none_match(h, &etag));
    let mut response = if matches {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if accepts_gzip(headers) {
        let mut r = json_response(StatusCode::OK, served.flags_gzip(remote));
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        json_response(StatusCode::OK, flags_body(snapshot.flags_json(remote)))
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    response
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    header_str(headers, &header::ACCEPT_ENCODING).is_some_and(|v| {
        v.split(',').any(|e| {
            let mut parts = e.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            name.eq_ignore_ascii_case("gzip") && !refused
        })
    })
}

/// A user parsed from JSON: an object, or the empty user for `null` / nothing.
fn user_from_json(bytes: &[u8]) -> Result<Object, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the user is not UTF-8".to_owned())?;
    if text.trim().is_empty() {
        return Ok(Object::new());
    }
    match Value::from_json_str(text) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(Value::Null) => Ok(Object::new()),
        Ok(_) => Err("the user must be a JSON object".to_owned()),
        Err(e) => Err(format!("the user is not valid JSON: {e}")),
    }
}

/// The user of `X-Amp-Exp-User` (base64 JSON); the empty user when absent.
fn header_user(headers: &HeaderMap) -> Result<Object, Response> {
    let Some(raw) = headers.get(&X_AMP_EXP_USER) else {
        return Ok(Object::new());
    };
    let bytes = raw.to_str().ok().and_then(decode_base64).ok_or_else(|| {
        amp_error(
            StatusCode::BAD_REQUEST,
            "X-Amp-Exp-User is not valid base64",
        )
    })?;
    user_from_json(&bytes)
        .map_err(|m| amp_error(StatusCode::BAD_REQUEST, &format!("X-Amp-Exp-User: {m}")))
}

/// The flag keys of `X-Amp-Exp-Flag-Keys` (base64 JSON array); none when absent.
fn header_flag_keys(headers: &HeaderMap) -> Result<Vec<String>, Response> {
    let Some(raw) = headers.get(&X_AMP_EXP_FLAG_KEYS) else {
        return Ok(Vec::new());
    };
    let bad = || {
        amp_error(
            StatusCode::BAD_REQUEST,
            "X-Amp-Exp-Flag-Keys must be base64 of a JSON array of flag keys",
        )
    };
    let bytes = raw.to_str().ok().and_then(decode_base64).ok_or_else(bad)?;
    serde_json::from_slice::<Vec<String>>(&bytes).map_err(|_| bad())
}

async fn body_user(headers: &HeaderMap, body: Body) -> Result<Object, Response> {
    let bytes = read_body(headers, body, EVAL_LIMIT)
        .await
        .map_err(|e| amp_error(e.status(), &e.message(EVAL_LIMIT)))?;
    user_from_json(&bytes).map_err(|m| amp_error(StatusCode::BAD_REQUEST, &m))
}

/// Evaluates and answers; records assignments and exposures as the tracking headers ask.
fn answer(
    sdk: &SdkState,
    served: &Served,
    headers: &HeaderMap,
    query: Option<&str>,
    user: Object,
    flag_keys: &[String],
    v1: bool,
) -> Response {
    if query_param(query, "delivery_method").as_deref() == Some("web") {
        return no_store(json_response(StatusCode::OK, "{}"));
    }
    let local_only = query_param(query, "eval_mode").as_deref() == Some("local");
    let assignment = !matches!(
        header_str(headers, &X_AMP_EXP_TRACK),
        Some("no-track" | "read-only")
    );
    let exposure = header_str(headers, &X_AMP_EXP_EXPOSURE_TRACK) == Some("track");
    let options = RemoteOptions {
        flag_keys,
        local_only,
        v1,
        track: assignment || exposure,
        counts: Some(&served.counts),
    };
    match served.snapshot.evaluate_remote(user, options) {
        Ok(answer) => {
            if let Some(tracked) = answer.tracked {
                let library = header_str(headers, &X_AMP_EXP_LIBRARY);
                sdk.backend
                    .record_remote(&served.snapshot, tracked, assignment, exposure, library);
            }
            no_store(json_response(StatusCode::OK, answer.body))
        }
        Err(cycle) => amp_error(StatusCode::INTERNAL_SERVER_ERROR, &cycle.to_string()),
    }
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn remote_get(sdk: SdkState, request: Request, v1: bool) -> Response {
    let headers = request.headers();
    let served = match admit(&sdk, headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (user, keys) = match (header_user(headers), header_flag_keys(headers)) {
        (Ok(u), Ok(k)) => (u, k),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    answer(
        &sdk,
        &served,
        headers,
        request.uri().query(),
        user,
        &keys,
        v1,
    )
}

async fn remote_post(sdk: SdkState, request: Request, v1: bool) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let served = match admit(&sdk, headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let keys = match header_flag_keys(headers) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let user = match body_user(headers, body).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    answer(&sdk, &served, headers, parts.uri.query(), user, &keys, v1)
}

/// `GET /sdk/v2/vardata`: the user in `X-Amp-Exp-User`.
pub(crate) async fn vardata_get(State(sdk): State<SdkState>, request: Request) -> Response {
    remote_get(sdk, request, false).await
}

/// `POST /sdk/v2/vardata`: the user in the body.
pub(crate) async fn vardata_post(State(sdk): State<SdkState>, request: Request) -> Response {
    remote_post(sdk, request, false).await
}

/// `GET /sdk/vardata`: as v2, v1-filtered.
pub(crate) async fn v1_get(State(sdk): State<SdkState>, request: Request) -> Response {
    remote_get(sdk, request, true).await
}

/// `POST /sdk/vardata` and `POST /v1/vardata`: the user in the body, v1-filtered.
pub(crate) async fn v1_post(State(sdk): State<SdkState>, request: Request) -> Response {
    remote_post(sdk, request, true).await
}

/// `GET /v1/vardata?user_id=…&device_id=…&context=…&flag_keys=a,b` (§A6).
pub(crate) async fn rest_get(
    State(sdk): State<SdkState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let served = match admit(&sdk, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = query.as_deref();
    let mut user = match query_param(q, "context") {
        None => Object::new(),
        Some(context) => match Value::from_json_str(&context) {
            Ok(Value::Object(o)) => o,
            _ => {
                return amp_error(
                    StatusCode::BAD_REQUEST,
                    "context must be a URL-encoded JSON object",
                )
            }
        },
    };
    for field in ["user_id", "device_id"] {
        if let Some(v) = query_param(q, field) {
            user.insert(field, Value::from(v));
        }
    }
    let keys = match query_param(q, "flag_keys").or_else(|| query_param(q, "flag_key")) {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect(),
        None => match header_flag_keys(&headers) {
            Ok(k) => k,
            Err(r) => return r,
        },
    };
    answer(&sdk, &served, &headers, q, user, &keys, true)
}

/// `GET /sdk/v1/cohort/{id}?maxCohortSize=N&lastModified=T` with the project's credentials in
/// `Authorization: Basic` (§A9).
pub(crate) async fn cohort(
    State(sdk): State<SdkState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let credentials = super::scheme_key(&headers, "Basic")
        .and_then(decode_base64)
        .and_then(|b| String::from_utf8(b).ok());
    let project = credentials.as_deref().and_then(|c| {
        let (key, secret) = c.split_once(':')?;
        let project = sdk.registry.project_by_api_key(key)?;
        // Only the secret's hash is kept; a rotated one counts during its grace period.
        project
            .accepts_secret(secret, super::registry::now_ms())
            .then_some(project)
    });
    let Some(project) = project else {
        return amp_error(StatusCode::UNAUTHORIZED, "Invalid cohort credentials");
    };
    if let Err(retry) = sdk.limit(&project.api_key) {
        return too_many(retry, r#"{"error":"Too many requests"}"#.to_owned());
    }
    let Some(cohort) = project.cohorts.get(&id) else {
        return amp_error(StatusCode::NOT_FOUND, "Cohort not found");
    };
    let q = query.as_deref();
    let max = query_param(q, "maxCohortSize").and_then(|m| m.parse::<usize>().ok());
    if max.is_some_and(|max| cohort.size() > max) {
        return amp_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Cohort is larger than maxCohortSize",
        );
    }
    let last = query_param(q, "lastModified").and_then(|m| m.parse::<i64>().ok());
    if last == Some(cohort.last_modified) {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NO_CONTENT;
        return r;
    }
    json_response(
        StatusCode::OK,
        Bytes::from_owner(ArcStr(cohort.download_body())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_parse_from_json() {
        assert!(user_from_json(b"").unwrap().is_empty());
        assert!(user_from_json(b"null").unwrap().is_empty());
        assert_eq!(user_from_json(br#"{"user_id":"u"}"#).unwrap().len(), 1);
        assert!(user_from_json(b"[1]").is_err());
        assert!(user_from_json(b"{").is_err());
    }

    #[test]
    fn gzip_acceptance() {
        let mut h = HeaderMap::new();
        for (value, expected) in [
            ("gzip, deflate, br", true),
            ("br;q=1.0, GZIP;q=0.5", true),
            ("gzip;q=0", false),
            ("identity", false),
        ] {
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
            assert_eq!(accepts_gzip(&h), expected, "{value}");
        }
    }
}
