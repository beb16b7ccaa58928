//! The API errors kubesim answers with, each rendered as the `metav1.Status` body, HTTP code and
//! `reason` that a real API server returns for the same failure. Owns no I/O.

use serde_json::{Value, json};

/// One field-level problem inside a 422 `Invalid` answer (`details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueTypeInvalid`, `FieldValueNotSupported`, ...
    pub reason: &'static str,
    /// The text after the field path, e.g. `Required value`.
    pub message: String,
    /// The field path, e.g. `spec.addresses[0]`.
    pub field: String,
}

impl Cause {
    /// `field: message`, the form the API server joins into the Status message.
    pub fn describe(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// A failed API request. `resource` is the plural with its group (`ipaddresspools.metallb.io`, or
/// `services` for the core group), as the real server words its messages.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        group: String,
        resource: String,
        name: String,
    },
    #[error("the server could not find the requested resource")]
    NoSuchPath,
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        group: String,
        resource: String,
        name: String,
    },
    #[error(
        "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
    )]
    Conflict {
        group: String,
        resource: String,
        name: String,
    },
    #[error("{kind} \"{name}\" is invalid: {}", join_causes(.causes))]
    Invalid {
        group: String,
        /// `Kind.group` in the message, bare `Kind` in `details.kind`.
        kind: String,
        name: String,
        causes: Vec<Cause>,
    },
    /// A server-side apply that would change fields other managers own (409, reason Conflict,
    /// one `FieldManagerConflict` cause per field).
    #[error("Apply failed with {} conflict{}: {}", .causes.len(), if .causes.len() == 1 { "" } else { "s" }, join_conflicts(.causes))]
    ApplyConflict {
        group: String,
        resource: String,
        name: String,
        causes: Vec<Cause>,
    },
    #[error("{0}")]
    BadRequest(String),
    /// A JSON patch whose operations do not apply to the object (422, reason Invalid).
    #[error("{0}")]
    UnprocessablePatch(String),
    #[error("{0}")]
    Forbidden(String),
    /// No token, or one the server does not know.
    #[error("Unauthorized")]
    Unauthorized,
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("the body of the request was in an unknown format - accepted media types include: {0}")]
    UnsupportedMediaType(String),
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: u64, oldest: u64 },
    /// A `resourceVersion` query parameter that is not a number. The real server answers 500
    /// with no reason (kubernetes/kubernetes#139485, open), so kubesim does too.
    #[error(
        "resourceVersion: Invalid value: {0:?}: strconv.ParseUint: parsing {0:?}: invalid syntax"
    )]
    InvalidResourceVersion(String),
    /// A failure the real server reports as an internal error (e.g. a non-numeric
    /// `metadata.resourceVersion` in an update body).
    #[error("Internal error occurred: {0}")]
    Internal(String),
    /// An admission webhook's denial, with the webhook's code and reason passed through.
    #[error("{message}")]
    Denied {
        code: u16,
        reason: String,
        message: String,
    },
    /// A request body over the server's limit (the real one: 3 MiB for writes).
    #[error("Request entity too large: limit is {limit}")]
    RequestEntityTooLarge { limit: usize },
}

fn join_causes(causes: &[Cause]) -> String {
    match causes {
        [one] => one.describe(),
        many => format!(
            "[{}]",
            many.iter()
                .map(Cause::describe)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `conflict with "m" using v1: .data.x`, as the real server words each conflict.
fn join_conflicts(causes: &[Cause]) -> String {
    causes
        .iter()
        .map(|c| format!("{}: {}", c.message, c.field))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `resource.group`, or the bare resource for the core group.
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    /// The HTTP status code the real API server uses.
    pub fn code(&self) -> u16 {
        match self {
            Self::NotFound { .. } | Self::NoSuchPath => 404,
            Self::AlreadyExists { .. } | Self::Conflict { .. } | Self::ApplyConflict { .. } => 409,
            Self::Invalid { .. } | Self::UnprocessablePatch(_) => 422,
            Self::BadRequest(_) => 400,
            Self::Forbidden(_) => 403,
            Self::Unauthorized => 401,
            Self::MethodNotAllowed => 405,
            Self::UnsupportedMediaType(_) => 415,
            Self::Expired { .. } => 410,
            Self::RequestEntityTooLarge { .. } => 413,
            Self::InvalidResourceVersion(_) | Self::Internal(_) => 500,
            Self::Denied { code, .. } => *code,
        }
    }

    /// `metav1.StatusReason`, stable CamelCase.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound { .. } | Self::NoSuchPath => "NotFound",
            Self::AlreadyExists { .. } => "AlreadyExists",
            Self::Conflict { .. } | Self::ApplyConflict { .. } => "Conflict",
            Self::Invalid { .. } | Self::UnprocessablePatch(_) => "Invalid",
            Self::BadRequest(_) => "BadRequest",
            Self::Forbidden(_) => "Forbidden",
            Self::Unauthorized => "Unauthorized",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Self::Expired { .. } => "Expired",
            Self::RequestEntityTooLarge { .. } => "RequestEntityTooLarge",
            // A denial's reason is the webhook's own string (see `to_status`).
            Self::InvalidResourceVersion(_) | Self::Denied { .. } => "",
            Self::Internal(_) => "InternalError",
        }
    }

    fn details(&self) -> Option<Value> {
        match self {
            Self::NotFound {
                group,
                resource,
                name,
            }
            | Self::AlreadyExists {
                group,
                resource,
                name,
            }
            | Self::Conflict {
                group,
                resource,
                name,
            } => Some(json!({"name": name, "group": group, "kind": resource})),
            Self::ApplyConflict {
                group,
                resource,
                name,
                causes,
            } => Some(
                json!({"name": name, "group": group, "kind": resource, "causes": causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect::<Vec<_>>()}),
            ),
            Self::Invalid {
                group,
                kind,
                name,
                causes,
            } => {
                let bare_kind = kind.split('.').next().unwrap_or(kind);
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                Some(json!({"name": name, "group": group, "kind": bare_kind, "causes": causes}))
            }
            _ => None,
        }
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        if let Some(map) = status.as_object_mut() {
            if let Some(details) = self.details() {
                map.insert("details".into(), details);
            }
            if let Self::Denied { reason, .. } = self
                && !reason.is_empty()
            {
                map.insert("reason".into(), json!(reason));
            } else if self.reason().is_empty() {
                map.remove("reason");
            }
        }
        status
    }

    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::NotFound {
            group: group.into(),
            resource: qualified(group, resource),
            name: name.into(),
        }
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::AlreadyExists {
            group: group.into(),
            resource: qualified(group, resource),
            name: name.into(),
        }
    }

    pub fn conflict(group: &str, resource: &str, name: &str) -> Self {
        Self::Conflict {
            group: group.into(),
            resource: qualified(group, resource),
            name: name.into(),
        }
    }

    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        Self::Invalid {
            group: group.into(),
            kind: qualified(group, kind),
            name: name.into(),
            causes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_with_two_causes_lists_them_in_brackets() {
        let err = ApiError::invalid(
            "metallb.io",
            "IPAddressPool",
            "p",
            vec![
                Cause {
                    reason: "FieldValueRequired",
                    message: "Required value".into(),
                    field: "spec.a".into(),
                },
                Cause {
                    reason: "FieldValueRequired",
                    message: "Required value".into(),
                    field: "spec.b".into(),
                },
            ],
        );
        let status = err.to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(
            status["message"],
            "IPAddressPool.metallb.io \"p\" is invalid: [spec.a: Required value, spec.b: Required value]"
        );
        assert_eq!(status["details"]["kind"], "IPAddressPool");
        assert_eq!(status["details"]["causes"][1]["field"], "spec.b");
    }
}
