//! OFREP, the OpenFeature Remote Evaluation Protocol (`sdk-protocol.md` Part B), over a
//! deployment's snapshot: the context becomes an Amplitude-style user, the result variant
//! becomes an OFREP item with its reason, and the bulk `ETag` covers the deployment's revision
//! and the canonical context.

use sha2::{Digest, Sha256};
use vexil_eval::{evaluate_plan, Context, Object, Results, Value};

use super::counts::ServedCounts;
use super::snapshot::{FlagInfo, Snapshot};

/// Names the engine and compiler in ETags, so that an upgrade that could change results also
/// changes every tag.
pub const ENGINE_VERSION: &str = concat!("vexil/", env!("CARGO_PKG_VERSION"), "/model-v2");

/// A parsed evaluation request.
#[derive(Debug, Clone)]
pub struct OfrepRequest {
    /// The context as sent (the ETag hashes its canonical form).
    pub context: Value,
    /// The user it maps to (§B2).
    pub user: Object,
}

/// Whether a context member is copied to the same user field (§B2): the built-in user fields,
/// plus two the SDKs fill in that conditions do not read.
fn is_user_field(name: &str) -> bool {
    crate::model::USER_FIELDS.contains(&name) || matches!(name, "device_category" | "ip_address")
}

/// Parses `{"context": {...}}`; the error is the `errorDetails` of `INVALID_CONTEXT`.
pub fn parse_request(body: &[u8]) -> Result<OfrepRequest, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
    if text.trim().is_empty() {
        return Err("the body must be a JSON object with a context".to_owned());
    }
    let value =
        Value::from_json_str(text).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let Value::Object(mut body) = value else {
        return Err("the body must be a JSON object with a context".to_owned());
    };
    let context = match body.remove("context") {
        Some(c @ Value::Object(_)) => c,
        Some(_) => return Err("context must be a JSON object".to_owned()),
        None => return Err("the request has no context".to_owned()),
    };
    let user = context_to_user(&context)?;
    Ok(OfrepRequest { context, user })
}

/// The user an OFREP context stands for (§B2).
pub fn context_to_user(context: &Value) -> Result<Object, String> {
    let Value::Object(context) = context else {
        return Err("context must be a JSON object".to_owned());
    };
    let mut user = Object::new();
    let mut loose = Object::new();
    let mut explicit: Option<&Object> = None;
    let mut targeting_key = None;
    for (name, value) in context.iter() {
        match name {
            "targetingKey" => match value {
                Value::String(s) => targeting_key = Some(&**s),
                _ => return Err("targetingKey must be a string".to_owned()),
            },
            "user_properties" => match value {
                Value::Object(o) => explicit = Some(o),
                other => loose.insert(name, other.clone()),
            },
            "groups" | "group_properties" => user.insert(name, value.clone()),
            "cohort_ids" | "group_cohort_ids" => {}
            _ if is_user_field(name) => user.insert(name, value.clone()),
            _ => loose.insert(name, value.clone()),
        }
    }
    if let Some(key) = targeting_key.filter(|k| !k.is_empty()) {
        user.insert("user_id", Value::from(key));
    }
    for (name, value) in explicit.iter().flat_map(|o| o.iter()) {
        loose.insert(name, value.clone());
    }
    if !loose.is_empty() {
        user.insert("user_properties", Value::Object(loose));
    }
    Ok(user)
}

/// `W/"<32 hex>"`: the bulk ETag of §B8 for this snapshot and context.
pub fn etag(snapshot: &Snapshot, context: &Value) -> String {
    let mut hasher = Sha256::new();
    let id = format!("{}/{}", snapshot.project.key, snapshot.deployment.key);
    let revision = snapshot.revision.to_string();
    let parts: [&[u8]; 4] = [
        id.as_bytes(),
        snapshot.deployment.kind.as_str().as_bytes(),
        revision.as_bytes(),
        ENGINE_VERSION.as_bytes(),
    ];
    for part in parts {
        hasher.update(part);
        hasher.update([0u8]);
    }
    let mut canonical = String::new();
    write_canonical(context, &mut canonical);
    hasher.update(canonical.as_bytes());
    let digest = hasher.finalize();
    format!("W/\"{}\"", crate::keys::hex(&digest[..16]))
}

/// JSON with object members sorted by key (code point order) at every level, no whitespace,
/// numbers as parsed.
pub fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(o) => {
            let mut members: Vec<(&str, &Value)> = o.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&serde_json::to_string(scalar).unwrap_or_default()),
    }
}

/// Whether an `If-None-Match` header value lists `etag` (weak comparison, `*` matches all).
pub fn if_none_match(header: &str, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let wanted = strip(etag);
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || strip(t) == wanted)
}

/// The outcome of a single-flag evaluation (§B3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfrepAnswer {
    /// 200 with this body.
    Success(String),
    /// 404 `FLAG_NOT_FOUND`.
    NotFound,
    /// 400 `TARGETING_KEY_MISSING`, with the details.
    TargetingKeyMissing(String),
    /// 500: the flag cannot be evaluated (a dependency cycle in imported data).
    General(String),
}

/// A flag that could not be evaluated for this context: the error code and its details.
type Failure = (&'static str, String);

impl Snapshot {
    /// `POST /ofrep/v1/evaluate/flags/{key}`: evaluates a flag attached to this deployment.
    /// Served results are counted in `counts`, when given.
    pub fn ofrep_flag(
        &self,
        key: &str,
        mut user: Object,
        counts: Option<&ServedCounts>,
    ) -> OfrepAnswer {
        let Some(index) = self.flags.index_of(key).filter(|&i| self.infos[i].deployed) else {
            return OfrepAnswer::NotFound;
        };
        let info = &self.infos[index];
        let plan = match &info.plan {
            Ok(plan) => plan,
            Err(cycle) => return OfrepAnswer::General(cycle.to_string()),
        };
        self.enrich(&mut user);
        let context = Context::from_sdk_user(Value::Object(user));
        let results = evaluate_plan(&self.flags, &context, plan);
        let mut body = String::with_capacity(256);
        match write_item(&mut body, info, &results) {
            Ok(outcome) => {
                if let (Some(counts), Some(o)) = (counts, outcome) {
                    counts.add(index, o);
                }
                OfrepAnswer::Success(body)
            }
            Err((_, details)) => OfrepAnswer::TargetingKeyMissing(details),
        }
    }

    /// `POST /ofrep/v1/evaluate/flags`: every attached flag, ascending by key, with per-flag
    /// failures (§B4). `event_streams` is the JSON array to hand out, if any; served results
    /// are counted in `counts`, when given.
    pub fn ofrep_bulk(
        &self,
        mut user: Object,
        event_streams: Option<&str>,
        counts: Option<&ServedCounts>,
    ) -> String {
        self.enrich(&mut user);
        let context = Context::from_sdk_user(Value::Object(user));
        let shared = self
            .plan_all
            .as_ref()
            .ok()
            .map(|plan| evaluate_plan(&self.flags, &context, plan));
        let mut out = String::with_capacity(64 + self.deployed_by_key.len() * 200);
        out.push_str("{\"flags\":[");
        for (n, &index) in self.deployed_by_key.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            let info = &self.infos[index];
            // With a cycle somewhere, each flag is evaluated alone so that only the flags
            // that reach it fail.
            let own;
            let results = match (&shared, &info.plan) {
                (Some(results), _) => results,
                (None, Ok(plan)) => {
                    own = evaluate_plan(&self.flags, &context, plan);
                    &own
                }
                (None, Err(cycle)) => {
                    push_failure(&mut out, info, "GENERAL", &cycle.to_string());
                    continue;
                }
            };
            match write_item(&mut out, info, results) {
                Ok(outcome) => {
                    if let (Some(counts), Some(o)) = (counts, outcome) {
                        counts.add(index, o);
                    }
                }
                Err((code, details)) => push_failure(&mut out, info, code, &details),
            }
        }
        out.push_str("],\"metadata\":{\"version\":\"");
        out.push_str(&self.revision.to_string());
        out.push_str("\"}");
        if let Some(streams) = event_streams {
            out.push_str(",\"eventStreams\":");
            out.push_str(streams);
        }
        out.push('}');
        out
    }
}

fn push_failure(out: &mut String, info: &FlagInfo, code: &str, details: &str) {
    out.push_str(&info.ofrep_head);
    out.push_str(",\"errorCode\":\"");
    out.push_str(code);
    out.push_str("\",\"errorDetails\":");
    out.push_str(&serde_json::to_string(details).unwrap_or_default());
    out.push('}');
}

/// Appends the OFREP item of one flag from the results (§B5), or returns why there is none
/// (and appends nothing).
/// Writes one flag's item; `Ok` holds the position of the served outcome, if prepared.
fn write_item(
    out: &mut String,
    info: &FlagInfo,
    results: &Results<'_>,
) -> Result<Option<usize>, Failure> {
    let Some(r) = results.get(&info.key) else {
        out.push_str(&info.ofrep_head);
        out.push_str(",\"reason\":\"DEFAULT\"}");
        return Ok(None);
    };
    let detail = r.detail();
    let segment = info.segments.get(detail.segment_index).copied();
    if !info.inactive && detail.missing_bucket_value && segment.is_some_and(|s| s.user_id_bucket) {
        return Err((
            "TARGETING_KEY_MISSING",
            format!(
                "flag '{}' buckets by user_id and the context has no targetingKey",
                info.key
            ),
        ));
    }
    let position = info.outcome_position(detail.segment_index, r.variant_index());
    let Some(outcome) = position.and_then(|p| info.outcomes.get(p)) else {
        // Every result is prepared; should one not be, answer the code-default form.
        out.push_str(&info.ofrep_head);
        out.push_str(",\"reason\":\"DEFAULT\",\"variant\":");
        out.push_str(&serde_json::to_string(r.key()).unwrap_or_default());
        out.push('}');
        return Ok(None);
    };
    let value = outcome
        .ofrep_value()
        .filter(|_| !info.inactive && !outcome.default);
    let reason = match (value, segment) {
        _ if info.inactive => "DISABLED",
        (None, _) => "DEFAULT",
        _ if detail.bucketed => "SPLIT",
        (_, Some(s)) if s.has_conditions => "TARGETING_MATCH",
        _ if info.segments.len() == 1 => "STATIC",
        _ => "DEFAULT",
    };
    out.push_str(&info.ofrep_head);
    if let Some(value) = value {
        out.push_str(",\"value\":");
        out.push_str(value);
    }
    out.push_str(",\"reason\":\"");
    out.push_str(reason);
    out.push('"');
    outcome.write_ofrep_tail(out);
    Ok(position)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_map_to_users() {
        let cases = [
            (
                r#"{"targetingKey":"u-1","country":"CA","plan":"premium","beta":true}"#,
                r#"{"country":"CA","user_id":"u-1","user_properties":{"plan":"premium","beta":true}}"#,
            ),
            (
                r#"{"targetingKey":"","user_id":"u2","device_id":"d"}"#,
                r#"{"user_id":"u2","device_id":"d"}"#,
            ),
            (
                r#"{"targetingKey":"tk","user_id":"u2"}"#,
                r#"{"user_id":"tk"}"#,
            ),
            (
                r#"{"plan":"loose","user_properties":{"plan":"explicit","n":1},"cohort_ids":["c"],"groups":{"org":["a"]}}"#,
                r#"{"groups":{"org":["a"]},"user_properties":{"plan":"explicit","n":1}}"#,
            ),
            ("{}", "{}"),
        ];
        for (context, user) in cases {
            let got = context_to_user(&Value::from_json_str(context).unwrap()).unwrap();
            assert_eq!(
                serde_json::to_string(&got).unwrap(),
                serde_json::to_string(&Value::from_json_str(user).unwrap()).unwrap(),
                "{context}"
            );
        }
    }

    #[test]
    fn bad_requests_are_invalid_contexts() {
        for body in [
            "",
            "x",
            "[]",
            r#"{"ctx":{}}"#,
            r#"{"context":[]}"#,
            r#"{"context":{"targetingKey":5}}"#,
        ] {
            assert!(parse_request(body.as_bytes()).is_err(), "{body}");
        }
        assert!(parse_request(br#"{"context":{}}"#).is_ok());
    }

    #[test]
    fn canonical_json_sorts_members_and_keeps_numbers() {
        let v = Value::from_json_str(r#"{"b":[1,2.5,{"z":1,"a":-0}],"a":"x\"y","c":1e3,"B":null}"#)
            .unwrap();
        let mut out = String::new();
        write_canonical(&v, &mut out);
        assert_eq!(
            out,
            r#"{"B":null,"a":"x\"y","b":[1,2.5,{"a":0,"z":1}],"c":1000.0}"#
        );
    }

    #[test]
    fn if_none_match_compares_weakly() {
        let tag = "W/\"abc\"";
        for (header, expected) in [
            ("W/\"abc\"", true),
            ("\"abc\"", true),
            ("\"x\", W/\"abc\"", true),
            ("*", true),
            ("\"abd\"", false),
            ("", false),
        ] {
            assert_eq!(if_none_match(header, tag), expected, "{header}");
        }
    }
}
