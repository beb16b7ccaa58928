//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch for
//! built-in kinds ([`smp`]); server-side apply bodies are parsed here and merged by
//! [`super::managed`]. Pure.

use serde_json::Value;

use super::error::ApiError;
use super::smp;

/// The patch formats a request can name in its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    /// Strategic merge patch, built-in kinds only (see [`smp`]).
    StrategicMerge,
    /// Server-side apply. The API merges it with field ownership ([`super::managed`]); here it
    /// is a plain merge.
    Apply,
}

impl PatchKind {
    pub fn from_content_type(content_type: &str) -> Result<Self, ApiError> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media {
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/json-patch+json" => Ok(Self::Json),
            "application/strategic-merge-patch+json" => Ok(Self::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(Self::Apply),
            _ => Err(ApiError::UnsupportedMediaType(
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                    .into(),
            )),
        }
    }
}

/// Parses a patch body of `kind` (apply patches may be YAML).
pub fn parse_body(kind: PatchKind, body: &[u8]) -> Result<Value, ApiError> {
    let parsed = match kind {
        PatchKind::Apply => serde_json::from_slice(body).or_else(|_| {
            let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
            serde_saphyr::from_str::<Value>(text).map_err(|e| e.to_string())
        }),
        _ => serde_json::from_slice(body).map_err(|e| e.to_string()),
    };
    parsed.map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))
}

/// Applies `patch` to `target` (which is modified in place).
pub fn apply(kind: PatchKind, target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    match kind {
        PatchKind::Merge | PatchKind::Apply => {
            json_patch::merge(target, patch);
            Ok(())
        }
        PatchKind::StrategicMerge => {
            smp::apply(target, patch);
            Ok(())
        }
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))?;
            json_patch::patch(target, &ops).map_err(|e| ApiError::UnprocessablePatch(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_null_removes_a_field() {
        let mut obj = json!({"spec": {"a": 1, "b": 2}});
        apply(
            PatchKind::Merge,
            &mut obj,
            &json!({"spec": {"a": null, "c": 3}}),
        )
        .expect("merge patch applies");
        assert_eq!(obj, json!({"spec": {"b": 2, "c": 3}}));
    }

    #[test]
    fn json_patch_on_a_missing_path_is_an_error() {
        let mut obj = json!({"spec": {}});
        let err = apply(
            PatchKind::Json,
            &mut obj,
            &json!([{"op": "replace", "path": "/spec/x/y", "value": 1}]),
        )
        .expect_err("patch must fail");
        assert_eq!(err.code(), 422);
    }
}
