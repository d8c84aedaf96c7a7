//! What an evaluation gives: [`Variant`] (the result map entry SDKs share, `sdk-protocol.md`
//! §A8) and [`Detail`], one flag's result with the reason and error code of OFREP (§B5, §B6).

use serde::{Deserialize, Serialize};

/// A flag's variant for a user: `{"key", "value"?, "payload"?, "metadata"?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// The variant key (`off` for the default).
    pub key: String,
    /// The variant's value; absent for the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// Any JSON delivered with the variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    /// Flag, segment and variant metadata merged (`flagVersion`, `segmentName`, `default`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Variant {
    /// Whether this is the default result (`metadata.default = true`, the `off` convention).
    pub fn is_default(&self) -> bool {
        self.meta("default") == Some(&serde_json::Value::Bool(true))
    }

    /// One metadata member.
    pub fn meta(&self, key: &str) -> Option<&serde_json::Value> {
        self.metadata.as_ref()?.get(key)
    }
}

/// Why a flag gave what it gave; the names are OFREP's and OpenFeature's (`sdk-protocol.md` §B5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The flag serves one variant to everyone (only `All Other Users`, no hashing).
    Static,
    /// A segment with conditions, or an inclusion list, chose the variant.
    TargetingMatch,
    /// Bucketing (a percentage or a weighted split) chose the variant.
    Split,
    /// The default: `off`, a fallback segment after others did not match, or the caller's fallback.
    Default,
    /// The flag is inactive.
    Disabled,
    /// The evaluation failed; see the [`ErrorCode`].
    Error,
}

impl Reason {
    /// The OFREP / OpenFeature name (`STATIC`, `TARGETING_MATCH`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Static => "STATIC",
            Reason::TargetingMatch => "TARGETING_MATCH",
            Reason::Split => "SPLIT",
            Reason::Default => "DEFAULT",
            Reason::Disabled => "DISABLED",
            Reason::Error => "ERROR",
        }
    }
}

/// Why an evaluation gave the caller's fallback (`sdk-protocol.md` §B6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// No flag configs yet: neither a bootstrap nor a download.
    ProviderNotReady,
    /// The flag is unknown here, or served only as an ancestor (`deployed: false`).
    FlagNotFound,
    /// The flag buckets by `user_id` and the user has none.
    TargetingKeyMissing,
    /// The variant's value is not of the type asked for.
    TypeMismatch,
    /// The flag cannot be evaluated (a dependency cycle in imported configs).
    General,
}

impl ErrorCode {
    /// The OFREP / OpenFeature name (`FLAG_NOT_FOUND`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ProviderNotReady => "PROVIDER_NOT_READY",
            ErrorCode::FlagNotFound => "FLAG_NOT_FOUND",
            ErrorCode::TargetingKeyMissing => "TARGETING_KEY_MISSING",
            ErrorCode::TypeMismatch => "TYPE_MISMATCH",
            ErrorCode::General => "GENERAL",
        }
    }
}

/// One flag's evaluation, as OFREP would answer it.
#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    /// The flag key.
    pub flag_key: String,
    /// The variant, when one was chosen (also `off`); `None` with an error.
    pub variant: Option<Variant>,
    /// The value to use: the variant's value, or `None` when the code's default applies (`off`,
    /// an inactive flag, an error).
    pub value: Option<serde_json::Value>,
    /// Why.
    pub reason: Reason,
    /// Set when the evaluation failed.
    pub error: Option<ErrorCode>,
}

impl Detail {
    /// The variant key, if any.
    pub fn variant_key(&self) -> Option<&str> {
        self.variant.as_ref().map(|v| v.key.as_str())
    }

    /// The metadata OFREP answers with: the merged metadata's booleans, strings and numbers, plus
    /// `payload` as compact JSON text when the variant has one (§B5).
    pub fn flag_metadata(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        let Some(variant) = &self.variant else {
            return out;
        };
        for (k, v) in variant.metadata.iter().flatten() {
            if matches!(
                v,
                serde_json::Value::Bool(_)
                    | serde_json::Value::String(_)
                    | serde_json::Value::Number(_)
            ) {
                out.insert(k.clone(), v.clone());
            }
        }
        if let Some(payload) = &variant.payload {
            out.insert(
                "payload".to_owned(),
                serde_json::Value::String(payload.to_string()),
            );
        }
        out
    }

    /// The value as `T`, or `Err` with `TYPE_MISMATCH` when it has another type and with the
    /// evaluation's own error when there is none. `Ok(None)`: the code's default applies.
    pub fn typed<T>(
        &self,
        convert: impl FnOnce(&serde_json::Value) -> Option<T>,
    ) -> Result<Option<T>, ErrorCode> {
        if let Some(code) = self.error {
            return Err(code);
        }
        match &self.value {
            None => Ok(None),
            Some(v) => convert(v).map(Some).ok_or(ErrorCode::TypeMismatch),
        }
    }
}
