//! Types that only describe the management API in its OpenAPI document: the error responses
//! (those every operation may give, then one type per status), so that each operation lists
//! exactly the statuses its handler can answer with, and the `If-Match` header of writes.
//! Handlers never build these; they answer with `ApiError`, whose body is the `ErrorBody` every
//! error response here declares.

// These types exist for their `IntoResponses` and `IntoParams` implementations only, which the
// `#[utoipa::path]` attributes read; no code constructs them or reads their fields.
#![allow(
    dead_code,
    reason = "the types only describe the API in the OpenAPI document"
)]

use utoipa::{IntoParams, IntoResponses};

use crate::error::ErrorBody;

/// A path segment, query parameter, `If-Match` header or JSON body that does not parse;
/// `field` names it when there is one.
#[derive(IntoResponses)]
#[response(status = 400)]
pub(crate) struct BadRequest(ErrorBody);

/// What every operation may answer, whatever it does: it authenticates the caller, and the
/// server may be too busy.
#[derive(IntoResponses)]
pub(crate) enum Common {
    /// No management key, or one that is unknown or revoked (`Authorization: Bearer <key>`).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Too many wrong keys from this client address: every request with a key is refused until
    /// `Retry-After` seconds have passed.
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    TooManyAttempts(ErrorBody),
    /// The server has too many connections or cannot reach its database right now; try again
    /// after `Retry-After` seconds.
    #[response(status = 503, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    Unavailable(ErrorBody),
}

/// The key's role does not allow this: writes need `writer`, key management `admin`.
#[derive(IntoResponses)]
#[response(status = 403)]
pub(crate) struct Forbidden(ErrorBody);

/// The resource named in the path (or a resource the body names) does not exist.
#[derive(IntoResponses)]
#[response(status = 404)]
pub(crate) struct NotFound(ErrorBody);

/// The change conflicts with what is stored: the key is taken, `If-Match` names an older version
/// (`version_conflict`, with `current_version`), or other flags block it (`blocking` names them).
#[derive(IntoResponses)]
#[response(status = 409)]
pub(crate) struct Conflict(ErrorBody);

/// The body did not arrive in time.
#[derive(IntoResponses)]
#[response(status = 408)]
pub(crate) struct RequestTimeout(ErrorBody);

/// The body is larger than this endpoint accepts.
#[derive(IntoResponses)]
#[response(status = 413)]
pub(crate) struct PayloadTooLarge(ErrorBody);

/// The body is not in a format this endpoint takes (see its `Content-Type`).
#[derive(IntoResponses)]
#[response(status = 415)]
pub(crate) struct UnsupportedMediaType(ErrorBody);

/// The request parses but a value is invalid or out of range; `field` names the first one and
/// `errors` lists every one when there are several.
#[derive(IntoResponses)]
#[response(status = 422)]
pub(crate) struct Unprocessable(ErrorBody);

/// The change must name the version it is based on: send `If-Match` with the resource's `ETag`.
#[derive(IntoResponses)]
#[response(status = 428)]
pub(crate) struct PreconditionRequired(ErrorBody);

/// The `If-Match` header of a change to an existing resource. Its pattern is the language the
/// extractor accepts: the version the server hands out as `ETag` (`"3"`), optionally weak
/// (`W/"3"`) or bare (`3`), with up to 18 digits (which any version fits in), so that a fuzzer
/// generating a value outside it can expect it to be refused.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub(crate) struct IfMatchHeader {
    /// The version the change is based on: the resource's `ETag`, e.g. `"3"`. Without it the
    /// change is refused with 428; with an older version, with 409.
    #[param(
        rename = "If-Match",
        pattern = r#"^[ \t]*(W/)?"*[+-]?[0-9]{1,18}"*[ \t]*$"#
    )]
    if_match: String,
}

/// The `If-Match` header of an upload that creates a resource or replaces it.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub(crate) struct IfMatchWhenReplacing {
    /// The version the replacement is based on (the resource's `ETag`, e.g. `"3"`). Needed only
    /// when the resource exists: then a missing one is refused with 428, an older one with 409.
    // Declared as an optional string: `Option` would make the header's schema nullable too.
    #[param(
        rename = "If-Match",
        required = false,
        pattern = r#"^[ \t]*(W/)?"*[+-]?[0-9]{1,18}"*[ \t]*$"#
    )]
    if_match: String,
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// The served document, as JSON, and its operations as ("METHOD path", operation).
    fn operations() -> Vec<(String, Value)> {
        let doc = serde_json::to_value(super::super::openapi()).unwrap();
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                out.push((
                    format!("{} {path}", method.to_uppercase()),
                    operation.clone(),
                ));
            }
        }
        out
    }

    fn parameter<'a>(operation: &'a Value, name: &str) -> Option<&'a Value> {
        operation["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
    }

    /// Every operation lists the statuses it can answer one by one, each error with the error
    /// body, so a client (or a fuzzer checking status conformance) learns every one of them.
    #[test]
    fn every_operation_declares_each_error_status_with_the_error_body() {
        for (name, operation) in operations() {
            let responses = operation["responses"].as_object().unwrap();
            for status in ["401", "429", "503"] {
                assert!(responses.contains_key(status), "{name} lacks {status}");
            }
            for (status, response) in responses {
                assert!(
                    status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()),
                    "{name} declares the range {status}"
                );
                if status.starts_with(['4', '5']) {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{name} {status}"
                    );
                }
            }
        }
    }

    /// The writes that take `If-Match`, and whether they refuse a missing one (428). Every
    /// write to an existing resource is here; a new one must be added, with what it does.
    const IF_MATCH: &[(&str, bool)] = &[
        ("PATCH /api/v1/projects/{project}", true),
        (
            "PATCH /api/v1/projects/{project}/deployments/{deployment}",
            true,
        ),
        ("POST /api/v1/projects/{project}/rotate-keys", true),
        (
            "POST /api/v1/projects/{project}/deployments/{deployment}/rotate-key",
            true,
        ),
        ("PATCH /api/v1/flags/{key}", true),
        ("POST /api/v1/flags/{key}/variants", true),
        ("PUT /api/v1/flags/{key}/variants/{variant}", true),
        ("DELETE /api/v1/flags/{key}/variants/{variant}", true),
        ("POST /api/v1/flags/{key}/activate", true),
        ("POST /api/v1/flags/{key}/changes", true),
        ("POST /api/v1/flags/{key}/deactivate", true),
        ("POST /api/v1/flags/{key}/archive", true),
        ("POST /api/v1/flags/{key}/unarchive", true),
        ("POST /api/v1/flags/{key}/versions/{version}/restore", true),
        ("DELETE /api/v1/projects/{project}/cohorts/{cohort}", true),
        ("PATCH /api/v1/projects/{project}/webhooks/{id}", true),
        ("DELETE /api/v1/projects/{project}/webhooks/{id}", true),
        (
            "POST /api/v1/projects/{project}/webhooks/{id}/rotate-secret",
            true,
        ),
        // Uploads create the cohort, or replace it when it exists: only then is it needed.
        ("POST /api/v1/projects/{project}/cohorts", false),
        ("PUT /api/v1/projects/{project}/cohorts/{cohort}", false),
        ("PATCH /api/v1/projects/{project}/holdouts/{key}", true),
        ("PATCH /api/v1/projects/{project}/mutex-groups/{key}", true),
        ("PATCH /api/v1/projects/{project}/metrics/{key}", true),
        ("PATCH /api/v1/projects/{project}/drafts/{id}", true),
        (
            "POST /api/v1/projects/{project}/metrics/{key}/archive",
            true,
        ),
        (
            "POST /api/v1/projects/{project}/metrics/{key}/unarchive",
            true,
        ),
        (
            "POST /api/v1/projects/{project}/metrics/{key}/versions/{version}/restore",
            true,
        ),
        (
            "POST /api/v1/projects/{project}/holdouts/{key}/archive",
            true,
        ),
        (
            "POST /api/v1/projects/{project}/holdouts/{key}/unarchive",
            true,
        ),
        (
            "POST /api/v1/projects/{project}/holdouts/{key}/versions/{version}/restore",
            true,
        ),
        (
            "POST /api/v1/projects/{project}/mutex-groups/{key}/archive",
            true,
        ),
        (
            "POST /api/v1/projects/{project}/mutex-groups/{key}/unarchive",
            true,
        ),
        (
            "POST /api/v1/projects/{project}/mutex-groups/{key}/versions/{version}/restore",
            true,
        ),
    ];

    #[test]
    fn if_match_is_declared_on_every_write_that_reads_it() {
        let mut declared = Vec::new();
        for (name, operation) in operations() {
            let Some(header) = parameter(&operation, "If-Match") else {
                assert!(
                    operation["responses"].get("428").is_none(),
                    "{name} answers 428 without declaring If-Match"
                );
                continue;
            };
            assert_eq!(header["in"], "header", "{name}");
            assert!(header["schema"]["pattern"].is_string(), "{name}");
            for status in ["409", "428"] {
                assert!(
                    operation["responses"].get(status).is_some(),
                    "{name} takes If-Match but does not declare {status}"
                );
            }
            declared.push((name, header["required"] == true));
        }
        declared.sort();
        let mut expected: Vec<(String, bool)> = IF_MATCH
            .iter()
            .map(|(name, required)| ((*name).to_string(), *required))
            .collect();
        expected.sort();
        assert_eq!(declared, expected);
    }

    /// Paging and window parameters state the range the handlers enforce.
    #[test]
    fn list_parameters_declare_their_bounds() {
        let mut seen = 0;
        for (name, operation) in operations() {
            for field in ["offset", "limit", "days"] {
                if let Some(p) = parameter(&operation, field) {
                    let schema = &p["schema"];
                    assert!(
                        schema["minimum"].is_number() && schema["maximum"].is_number(),
                        "{name} {field}: {schema}"
                    );
                    seen += 1;
                }
            }
        }
        assert_eq!(
            seen, 9,
            "offset and limit of the flag list, the versions' limits of flags, mutual-exclusion \
             groups, holdouts and metrics, days, the delivery log's limit, the audit log's limit"
        );
    }

    /// Types that share a name share one schema in the document, so a second type of the same
    /// name silently replaces the first: each schema must still describe its own type.
    #[test]
    fn schemas_of_like_named_types_do_not_replace_each_other() {
        let doc = serde_json::to_value(super::super::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let props = |name: &str| {
            let mut keys: Vec<String> = schemas[name]["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("no schema {name}"))
                .keys()
                .cloned()
                .collect();
            keys.sort();
            keys
        };
        assert_eq!(props("Comparison"), ["changes", "from", "to"]);
        assert!(props("TreatmentComparison").contains(&"treatment".to_string()));
    }

    /// A cohort's group type may be left out (it is then `User`), but not sent blank.
    #[test]
    fn group_type_is_optional_and_not_blank() {
        let doc = serde_json::to_value(super::super::openapi()).unwrap();
        let upload = &doc["components"]["schemas"]["CohortUpload"];
        assert!(
            !upload["required"]
                .as_array()
                .unwrap()
                .contains(&"group_type".into()),
            "{upload}"
        );
        assert_eq!(upload["properties"]["group_type"]["minLength"], 1);
        let (_, put) = operations()
            .into_iter()
            .find(|(name, _)| name == "PUT /api/v1/projects/{project}/cohorts/{cohort}")
            .unwrap();
        let query = parameter(&put, "group_type").unwrap();
        assert_eq!(query["required"], false, "{query}");
        assert_eq!(query["schema"]["minLength"], 1, "{query}");
    }
}
