//! One request on a resource path as the API layer sees it: the parsed parts, the field
//! manager it writes as, its body (JSON or protobuf, `DeleteOptions`), `dryRun`, and the opaque
//! `continue` tokens of paginated lists. Pure.

use bytes::Bytes;
use serde_json::{Value, json};

use super::error::ApiError;
use super::managed;
use super::meta::meta_str;
use super::protobuf;
use super::routing::{Query, Target};
use super::storage::Preconditions;

/// A request on a resource path, already parsed.
#[derive(Debug)]
pub struct ResourceRequest<'a> {
    pub method: &'a str,
    pub target: Target,
    pub query: Query,
    pub accept: &'a str,
    pub content_type: &'a str,
    /// Names the field manager of a write without `fieldManager`.
    pub user_agent: &'a str,
    pub body: Bytes,
}

impl ResourceRequest<'_> {
    /// The field manager a write records: `fieldManager`, else the User-Agent's product.
    pub fn manager(&self) -> String {
        match self.query.get("fieldManager") {
            Some(manager) => manager.to_owned(),
            None => managed::manager_from_user_agent(self.user_agent),
        }
    }
}

/// Decodes a create/update body: JSON, or the protobuf that typed client-go clients send.
pub fn parse_body(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    if content_type.split(';').next().map(str::trim) == Some(protobuf::MEDIA_TYPE) {
        return protobuf::decode(body).map_err(|e| match e {
            protobuf::ProtoError::UnknownKind(_) => {
                ApiError::UnsupportedMediaType("application/json".into())
            }
            other => ApiError::BadRequest(format!("error decoding request body: {other}")),
        });
    }
    parse_json(body)
}

pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding request body: {e}")))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(ApiError::BadRequest(
            "the request body must be a JSON object".into(),
        ))
    }
}

/// A DELETE's `DeleteOptions` body (JSON or protobuf), `{}` when there is none.
pub fn delete_options(req: &ResourceRequest<'_>) -> Result<Value, ApiError> {
    if req.body.is_empty() {
        Ok(json!({}))
    } else {
        parse_body(req.content_type, &req.body)
    }
}

/// `DeleteOptions.preconditions`.
pub fn preconditions(options: &Value) -> Preconditions {
    let text = |pointer: &str| {
        options
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Preconditions {
        uid: text("/preconditions/uid"),
        resource_version: text("/preconditions/resourceVersion"),
    }
}

/// `dryRun=All`: validate and answer, but write nothing.
pub fn is_dry_run(query: &Query) -> bool {
    query.get("dryRun") == Some("All")
}

/// Opaque `continue` token: the hex of `namespace\0name` of the last item sent.
pub fn encode_continue(object: &Value) -> String {
    format!(
        "{}\0{}",
        meta_str(object, "namespace"),
        meta_str(object, "name")
    )
    .bytes()
    .map(|b| format!("{b:02x}"))
    .collect()
}

pub fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    let bad = || ApiError::BadRequest(format!("continue key is not valid: {token:?}"));
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Vec<u8> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (ns, name) = text.split_once('\0').ok_or_else(bad)?;
    Ok((ns.to_owned(), name.to_owned()))
}
