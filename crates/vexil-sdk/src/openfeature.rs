//! An OpenFeature provider over [`LocalClient`] (feature `openfeature`): the same values,
//! variants, reasons and error codes as OFREP (`sdk-protocol.md` §B2, §B5, §B6), evaluated
//! in-process.
//!
//! The evaluation context maps to a user as OFREP's does: `targetingKey` is `user_id`, the
//! built-in user fields stay top-level, every other field is a user property. One difference
//! follows from the Rust trait: a provider cannot return the application's default value, so
//! where OFREP answers "no value, use your default" (`off`, an inactive flag) this provider
//! returns an error whose code is `General("DEFAULT")` (or `General("DISABLED")`), and the
//! OpenFeature client then returns the application's default.

use async_trait::async_trait;
use open_feature::provider::{
    FeatureProvider, ProviderMetadata, ProviderStatus, ResolutionDetails,
};
use open_feature::{
    EvaluationContext, EvaluationContextFieldValue, EvaluationError, EvaluationErrorCode,
    EvaluationReason, EvaluationResult, FlagMetadata, FlagMetadataValue, StructValue, Value,
};

use crate::{Detail, ErrorCode, LocalClient, Reason, User};

/// Context fields copied to the same user field (§B2).
const USER_FIELDS: &[&str] = &[
    "user_id",
    "device_id",
    "amplitude_id",
    "country",
    "region",
    "city",
    "dma",
    "language",
    "platform",
    "version",
    "os",
    "device_manufacturer",
    "device_brand",
    "device_model",
    "device_category",
    "carrier",
    "library",
    "ip_address",
];

/// The OpenFeature provider.
#[derive(Debug, Clone)]
pub struct VexilProvider {
    client: LocalClient,
    metadata: ProviderMetadata,
}

impl VexilProvider {
    /// A provider over `client` (start it, and wait for it if you like, before handing it over).
    pub fn new(client: LocalClient) -> VexilProvider {
        VexilProvider {
            client,
            metadata: ProviderMetadata::new("vexil"),
        }
    }

    /// The client underneath.
    pub fn client(&self) -> &LocalClient {
        &self.client
    }

    fn resolve<T>(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
        convert: impl FnOnce(&serde_json::Value) -> Option<T>,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        let detail = self.client.detail(&user_of(context), flag_key);
        let value = match detail.typed(convert) {
            Ok(Some(value)) => value,
            Ok(None) => {
                return Err(EvaluationError {
                    code: EvaluationErrorCode::General(detail.reason.as_str().to_owned()),
                    message: Some(format!(
                        "flag '{flag_key}' gave variant {:?} without a value: use the default",
                        detail.variant_key().unwrap_or("")
                    )),
                })
            }
            Err(code) => return Err(error_of(&detail, code)),
        };
        Ok(ResolutionDetails {
            value,
            variant: detail.variant_key().map(str::to_owned),
            reason: Some(reason_of(detail.reason)),
            flag_metadata: Some(metadata_of(&detail)),
        })
    }
}

/// The user an evaluation context stands for (§B2).
pub fn user_of(context: &EvaluationContext) -> User {
    let mut user = serde_json::Map::new();
    let mut loose = serde_json::Map::new();
    let mut explicit = None;
    for (name, value) in &context.custom_fields {
        let value = json_of_field(value);
        match name.as_str() {
            "user_properties" => match value {
                serde_json::Value::Object(o) => explicit = Some(o),
                other => {
                    loose.insert(name.clone(), other);
                }
            },
            "groups" | "group_properties" => {
                user.insert(name.clone(), value);
            }
            "cohort_ids" | "group_cohort_ids" | "targetingKey" => {}
            _ if USER_FIELDS.contains(&name.as_str()) => {
                user.insert(name.clone(), value);
            }
            _ => {
                loose.insert(name.clone(), value);
            }
        }
    }
    if let Some(key) = context.targeting_key.as_deref().filter(|k| !k.is_empty()) {
        user.insert("user_id".into(), key.into());
    }
    loose.extend(explicit.unwrap_or_default());
    if !loose.is_empty() {
        user.insert("user_properties".into(), serde_json::Value::Object(loose));
    }
    User::from_json(serde_json::Value::Object(user)).unwrap_or_default()
}

fn json_of_field(value: &EvaluationContextFieldValue) -> serde_json::Value {
    match value {
        EvaluationContextFieldValue::Bool(b) => (*b).into(),
        EvaluationContextFieldValue::Int(i) => (*i).into(),
        EvaluationContextFieldValue::Float(f) => (*f).into(),
        EvaluationContextFieldValue::String(s) => s.clone().into(),
        EvaluationContextFieldValue::DateTime(t) => t.to_string().into(),
        // An opaque Rust value: only a JSON value given as such can be read.
        EvaluationContextFieldValue::Struct(any) => any
            .downcast_ref::<serde_json::Value>()
            .cloned()
            .unwrap_or(serde_json::Value::Null),
    }
}

fn reason_of(reason: Reason) -> EvaluationReason {
    match reason {
        Reason::Static => EvaluationReason::Static,
        Reason::TargetingMatch => EvaluationReason::TargetingMatch,
        Reason::Split => EvaluationReason::Split,
        Reason::Default => EvaluationReason::Default,
        Reason::Disabled => EvaluationReason::Disabled,
        Reason::Error => EvaluationReason::Error,
    }
}

fn error_of(detail: &Detail, code: ErrorCode) -> EvaluationError {
    let code = match code {
        ErrorCode::ProviderNotReady => EvaluationErrorCode::ProviderNotReady,
        ErrorCode::FlagNotFound => EvaluationErrorCode::FlagNotFound,
        ErrorCode::TargetingKeyMissing => EvaluationErrorCode::TargetingKeyMissing,
        ErrorCode::TypeMismatch => EvaluationErrorCode::TypeMismatch,
        ErrorCode::General => EvaluationErrorCode::General("GENERAL".to_owned()),
    };
    EvaluationError {
        message: Some(format!("flag '{}': {code}", detail.flag_key)),
        code,
    }
}

fn metadata_of(detail: &Detail) -> FlagMetadata {
    let mut out = FlagMetadata::default();
    for (k, v) in detail.flag_metadata() {
        let value = match v {
            serde_json::Value::Bool(b) => FlagMetadataValue::Bool(b),
            serde_json::Value::String(s) => FlagMetadataValue::String(s),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => FlagMetadataValue::Int(i),
                None => FlagMetadataValue::Float(n.as_f64().unwrap_or_default()),
            },
            _ => continue,
        };
        out.values.insert(k, value);
    }
    out
}

/// An OpenFeature value from JSON (`null` has no OpenFeature form: `None`).
fn value_of(json: &serde_json::Value) -> Option<Value> {
    Some(match json {
        serde_json::Value::Null => return None,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64()?),
        },
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().filter_map(value_of).collect()),
        serde_json::Value::Object(o) => Value::Struct(struct_of(o)),
    })
}

fn struct_of(object: &serde_json::Map<String, serde_json::Value>) -> StructValue {
    StructValue {
        fields: object
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), value_of(v)?)))
            .collect(),
    }
}

#[async_trait]
impl FeatureProvider for VexilProvider {
    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    fn status(&self) -> ProviderStatus {
        if self.client.status().flags > 0 || self.client.is_ready() {
            ProviderStatus::Ready
        } else {
            ProviderStatus::NotReady
        }
    }

    async fn resolve_bool_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        self.resolve(flag_key, context, serde_json::Value::as_bool)
    }

    async fn resolve_int_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        self.resolve(flag_key, context, serde_json::Value::as_i64)
    }

    async fn resolve_float_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        self.resolve(flag_key, context, serde_json::Value::as_f64)
    }

    async fn resolve_string_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        self.resolve(flag_key, context, |v| v.as_str().map(str::to_owned))
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        self.resolve(flag_key, context, |v| v.as_object().map(struct_of))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(context: EvaluationContext, expected: serde_json::Value) {
        assert_eq!(user_of(&context).to_json(), expected, "{context:?}");
    }

    #[test]
    fn contexts_map_to_users_as_ofrep_does() {
        let cases = [
            (
                EvaluationContext::default()
                    .with_targeting_key("u-1")
                    .with_custom_field("country", "CA")
                    .with_custom_field("plan", "premium")
                    .with_custom_field("beta", true),
                json!({"user_id": "u-1", "country": "CA", "user_properties": {"plan": "premium", "beta": true}}),
            ),
            (
                EvaluationContext::default()
                    .with_targeting_key("")
                    .with_custom_field("user_id", "u2")
                    .with_custom_field("device_id", "d"),
                json!({"user_id": "u2", "device_id": "d"}),
            ),
            (
                EvaluationContext::default()
                    .with_targeting_key("tk")
                    .with_custom_field("user_id", "u2"),
                json!({"user_id": "tk"}),
            ),
            (
                EvaluationContext::default()
                    .with_custom_field("seats", 3)
                    .with_custom_field("cohort_ids", "ignored")
                    .with_custom_field(
                        "user_properties",
                        EvaluationContextFieldValue::new_struct(json!({"seats": 4})),
                    ),
                json!({"user_properties": {"seats": 4}}),
            ),
            (EvaluationContext::default(), json!({})),
        ];
        for (context, expected) in cases {
            check(context, expected);
        }
    }
}
