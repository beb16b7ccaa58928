//! Decoding of the Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`)
//! that client-go's typed clients send — `kubectl create namespace|secret|configmap|service`,
//! Helm's release storage and its deletes — into the JSON object kubesim stores. Only the kinds
//! in `MESSAGES` (and `DeleteOptions`) are known; their unknown fields are skipped. Responses
//! stay JSON (clients accept it). Pure.
//!
//! Wire layout of a body:
//! ```text
//! "k8s\0" | runtime.Unknown { 1: TypeMeta { 1: apiVersion, 2: kind }, 2: raw (the object's
//!          own message), 3: contentEncoding, 4: contentType }
//! ```

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("the protobuf body does not start with the k8s magic number")]
    NoMagic,
    #[error("the protobuf body is truncated or malformed")]
    Malformed,
    #[error("protobuf bodies of kind {0:?} are not supported by kubesim; send JSON")]
    UnknownKind(String),
}

impl ProtoError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoMagic => "NoMagic",
            Self::Malformed => "Malformed",
            Self::UnknownKind(_) => "UnknownKind",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Int,
    /// A Go non-pointer integer: typed clients write 0 where JSON omits the field.
    IntOrUnset,
    /// `intstr.IntOrString { type = 1; intVal = 2; strVal = 3 }`: a JSON number or string.
    IntOrString,
    Bool,
    Time,
    StrMap,
    BytesMap,
    Message(&'static [Field]),
}

#[derive(Debug, Clone, Copy)]
struct Field {
    number: u64,
    name: &'static str,
    kind: Kind,
    repeated: bool,
}

const fn f(number: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        number,
        name,
        kind,
        repeated: false,
    }
}

const fn list(number: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        number,
        name,
        kind,
        repeated: true,
    }
}

const OWNER_REFERENCE: &[Field] = &[
    f(1, "kind", Kind::Str),
    f(3, "name", Kind::Str),
    f(4, "uid", Kind::Str),
    f(5, "apiVersion", Kind::Str),
    f(6, "controller", Kind::Bool),
    f(7, "blockOwnerDeletion", Kind::Bool),
];

const OBJECT_META: &[Field] = &[
    f(1, "name", Kind::Str),
    f(2, "generateName", Kind::Str),
    f(3, "namespace", Kind::Str),
    f(5, "uid", Kind::Str),
    f(6, "resourceVersion", Kind::Str),
    f(7, "generation", Kind::Int),
    f(8, "creationTimestamp", Kind::Time),
    f(11, "labels", Kind::StrMap),
    f(12, "annotations", Kind::StrMap),
    list(13, "ownerReferences", Kind::Message(OWNER_REFERENCE)),
    list(14, "finalizers", Kind::Str),
];

const NAMESPACE: &[Field] = &[
    f(1, "metadata", Kind::Message(OBJECT_META)),
    f(
        2,
        "spec",
        Kind::Message(&[list(1, "finalizers", Kind::Str)]),
    ),
];

const CONFIG_MAP: &[Field] = &[
    f(1, "metadata", Kind::Message(OBJECT_META)),
    f(2, "data", Kind::StrMap),
    f(3, "binaryData", Kind::BytesMap),
    f(4, "immutable", Kind::Bool),
];

const SECRET: &[Field] = &[
    f(1, "metadata", Kind::Message(OBJECT_META)),
    f(2, "data", Kind::BytesMap),
    f(3, "type", Kind::Str),
    f(4, "stringData", Kind::StrMap),
    f(5, "immutable", Kind::Bool),
];

/// `kubectl create service ...` (core/v1 generated.proto): the fields it sets, and the
/// ones whose numbers are certain.
const SERVICE: &[Field] = &[
    f(1, "metadata", Kind::Message(OBJECT_META)),
    f(
        2,
        "spec",
        Kind::Message(&[
            list(
                1,
                "ports",
                Kind::Message(&[
                    f(1, "name", Kind::Str),
                    f(2, "protocol", Kind::Str),
                    f(3, "port", Kind::IntOrUnset),
                    f(4, "targetPort", Kind::IntOrString),
                    f(5, "nodePort", Kind::IntOrUnset),
                    f(6, "appProtocol", Kind::Str),
                ]),
            ),
            f(2, "selector", Kind::StrMap),
            f(3, "clusterIP", Kind::Str),
            f(4, "type", Kind::Str),
            f(10, "externalName", Kind::Str),
        ]),
    ),
];

const SERVICE_ACCOUNT: &[Field] = &[
    f(1, "metadata", Kind::Message(OBJECT_META)),
    f(4, "automountServiceAccountToken", Kind::Bool),
];

const LEASE: &[Field] = &[
    f(1, "metadata", Kind::Message(OBJECT_META)),
    f(
        2,
        "spec",
        Kind::Message(&[
            f(1, "holderIdentity", Kind::Str),
            f(2, "leaseDurationSeconds", Kind::Int),
            f(3, "acquireTime", Kind::Time),
            f(4, "renewTime", Kind::Time),
            f(5, "leaseTransitions", Kind::Int),
        ]),
    ),
];

/// `kubectl auth can-i`'s question (authorization/v1 generated.proto).
const SELF_SUBJECT_ACCESS_REVIEW: &[Field] = &[
    f(1, "metadata", Kind::Message(OBJECT_META)),
    f(
        2,
        "spec",
        Kind::Message(&[
            f(
                1,
                "resourceAttributes",
                Kind::Message(&[
                    f(1, "namespace", Kind::Str),
                    f(2, "verb", Kind::Str),
                    f(3, "group", Kind::Str),
                    f(4, "version", Kind::Str),
                    f(5, "resource", Kind::Str),
                    f(6, "subresource", Kind::Str),
                    f(7, "name", Kind::Str),
                ]),
            ),
            f(
                2,
                "nonResourceAttributes",
                Kind::Message(&[f(1, "path", Kind::Str), f(2, "verb", Kind::Str)]),
            ),
        ]),
    ),
];

/// The body of a typed client's delete (meta/v1 generated.proto); Helm's release storage
/// sends one when it purges a release.
const DELETE_OPTIONS: &[Field] = &[
    f(1, "gracePeriodSeconds", Kind::Int),
    f(
        2,
        "preconditions",
        Kind::Message(&[f(1, "uid", Kind::Str), f(2, "resourceVersion", Kind::Str)]),
    ),
    f(3, "orphanDependents", Kind::Bool),
    f(4, "propagationPolicy", Kind::Str),
    list(5, "dryRun", Kind::Str),
];

/// The kinds whose protobuf bodies kubesim decodes: (apiVersion, kind, message).
const MESSAGES: &[(&str, &str, &[Field])] = &[
    ("v1", "Namespace", NAMESPACE),
    ("v1", "ConfigMap", CONFIG_MAP),
    ("v1", "Secret", SECRET),
    ("v1", "Service", SERVICE),
    ("v1", "ServiceAccount", SERVICE_ACCOUNT),
    ("coordination.k8s.io/v1", "Lease", LEASE),
    (
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        SELF_SUBJECT_ACCESS_REVIEW,
    ),
];

/// One field as read off the wire.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, ProtoError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos).ok_or(ProtoError::Malformed)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ProtoError::Malformed)
}

/// Splits a message into (field number, value) pairs.
fn read_fields(buf: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, ProtoError> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let wire = match tag & 7 {
            0 => Wire::Varint(varint(buf, &mut pos)?),
            1 => {
                pos += 8;
                Wire::Other
            }
            2 => {
                let len =
                    usize::try_from(varint(buf, &mut pos)?).map_err(|_| ProtoError::Malformed)?;
                let end = pos.checked_add(len).ok_or(ProtoError::Malformed)?;
                let bytes = buf.get(pos..end).ok_or(ProtoError::Malformed)?;
                pos = end;
                Wire::Bytes(bytes)
            }
            5 => {
                pos += 4;
                Wire::Other
            }
            _ => return Err(ProtoError::Malformed),
        };
        if pos > buf.len() {
            return Err(ProtoError::Malformed);
        }
        out.push((tag >> 3, wire));
    }
    Ok(out)
}

fn text(bytes: &[u8]) -> Result<String, ProtoError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtoError::Malformed)
}

fn map_entry(bytes: &[u8], binary: bool) -> Result<(String, Value), ProtoError> {
    let mut key = String::new();
    let mut value = json!("");
    for (number, wire) in read_fields(bytes)? {
        match (number, wire) {
            (1, Wire::Bytes(b)) => key = text(b)?,
            (2, Wire::Bytes(b)) if binary => {
                value = json!(base64::engine::general_purpose::STANDARD.encode(b));
            }
            (2, Wire::Bytes(b)) => value = json!(text(b)?),
            _ => {}
        }
    }
    Ok((key, value))
}

fn int_or_string(bytes: &[u8]) -> Result<Value, ProtoError> {
    let (mut is_string, mut int, mut text) = (false, 0i64, String::new());
    for (number, wire) in read_fields(bytes)? {
        match (number, wire) {
            (1, Wire::Varint(t)) => is_string = t == 1,
            (2, Wire::Varint(v)) => int = i64::from(v as i32),
            (3, Wire::Bytes(b)) => text = self::text(b)?,
            _ => {}
        }
    }
    Ok(if is_string { json!(text) } else { json!(int) })
}

fn time(bytes: &[u8]) -> Result<Value, ProtoError> {
    let mut seconds = 0i64;
    for (number, wire) in read_fields(bytes)? {
        if let (1, Wire::Varint(v)) = (number, wire) {
            seconds = v as i64;
        }
    }
    let stamp = jiff::Timestamp::from_second(seconds).map_err(|_| ProtoError::Malformed)?;
    Ok(json!(stamp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

fn decode_message(fields: &[Field], buf: &[u8]) -> Result<Value, ProtoError> {
    let mut out = Map::new();
    for (number, wire) in read_fields(buf)? {
        let Some(field) = fields.iter().find(|f| f.number == number) else {
            continue;
        };
        let value = match (field.kind, wire) {
            // Typed clients write empty strings where JSON omits the field.
            (Kind::Str, Wire::Bytes([])) if !field.repeated => continue,
            (Kind::Str, Wire::Bytes(b)) => json!(text(b)?),
            (Kind::Int, Wire::Varint(v)) => json!(v as i64),
            (Kind::IntOrUnset, Wire::Varint(0)) => continue,
            (Kind::IntOrUnset, Wire::Varint(v)) => json!(v as i64),
            (Kind::IntOrString, Wire::Bytes(b)) => int_or_string(b)?,
            (Kind::Bool, Wire::Varint(v)) => json!(v != 0),
            (Kind::Time, Wire::Bytes(b)) => time(b)?,
            (Kind::Message(inner), Wire::Bytes(b)) => decode_message(inner, b)?,
            (Kind::StrMap | Kind::BytesMap, Wire::Bytes(b)) => {
                let (key, value) = map_entry(b, matches!(field.kind, Kind::BytesMap))?;
                let map = out.entry(field.name).or_insert_with(|| json!({}));
                if let Some(map) = map.as_object_mut() {
                    map.insert(key, value);
                }
                continue;
            }
            _ => return Err(ProtoError::Malformed),
        };
        if field.repeated {
            let list = out.entry(field.name).or_insert_with(|| json!([]));
            if let Some(list) = list.as_array_mut() {
                list.push(value);
            }
        } else {
            out.insert(field.name.to_owned(), value);
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a protobuf request body into the JSON object it stands for.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let envelope = body.strip_prefix(MAGIC).ok_or(ProtoError::NoMagic)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (number, wire) in read_fields(envelope)? {
        match (number, wire) {
            (1, Wire::Bytes(type_meta)) => {
                for (n, w) in read_fields(type_meta)? {
                    match (n, w) {
                        (1, Wire::Bytes(b)) => api_version = text(b)?,
                        (2, Wire::Bytes(b)) => kind = text(b)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    // DeleteOptions is registered in every group version, so it comes with the client's own.
    let fields = if kind == "DeleteOptions" {
        DELETE_OPTIONS
    } else {
        MESSAGES
            .iter()
            .find(|(v, k, _)| *v == api_version && *k == kind)
            .map(|(_, _, fields)| *fields)
            .ok_or_else(|| ProtoError::UnknownKind(format!("{api_version} {kind}")))?
    };
    let mut object = decode_message(fields, raw)?;
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), json!(api_version));
        map.insert("kind".into(), json!(kind));
    }
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_bytes(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3 | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn a_secret_body_decodes_to_its_json_object() {
        let mut meta = field_bytes(1, b"md5");
        meta.extend(field_bytes(
            11,
            &[field_bytes(1, b"app"), field_bytes(2, b"x")].concat(),
        ));
        let mut secret = field_bytes(1, &meta);
        secret.extend(field_bytes(
            2,
            &[field_bytes(1, b"password"), field_bytes(2, b"abc")].concat(),
        ));
        secret.extend(field_bytes(3, b"Opaque"));
        let type_meta = [field_bytes(1, b"v1"), field_bytes(2, b"Secret")].concat();
        let body = [
            MAGIC.to_vec(),
            field_bytes(1, &type_meta),
            field_bytes(2, &secret),
        ]
        .concat();
        let decoded = decode(&body).expect("decodes");
        assert_eq!(
            decoded,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "md5", "labels": {"app": "x"}},
                "data": {"password": "YWJj"},
                "type": "Opaque",
            })
        );
    }

    #[test]
    fn a_service_body_keeps_ports_with_int_or_string_target_ports() {
        let int_target = [vec![0x08, 0], vec![0x10, 80]].concat();
        let named_target = [vec![0x08, 1], field_bytes(3, b"http")].concat();
        let port = |name: &[u8], number: u8, target: &[u8]| {
            [
                field_bytes(1, name),
                field_bytes(2, b"TCP"),
                vec![0x18, number],
                field_bytes(4, target),
                vec![0x28, 0],
            ]
            .concat()
        };
        let spec = [
            field_bytes(1, &port(b"web", 80, &int_target)),
            field_bytes(1, &port(b"alt", 81, &named_target)),
            field_bytes(
                2,
                &[field_bytes(1, b"app"), field_bytes(2, b"web")].concat(),
            ),
            field_bytes(3, b""),
            field_bytes(4, b"LoadBalancer"),
        ]
        .concat();
        let service = [
            field_bytes(1, &field_bytes(1, b"web")),
            field_bytes(2, &spec),
        ]
        .concat();
        let type_meta = [field_bytes(1, b"v1"), field_bytes(2, b"Service")].concat();
        let body = [
            MAGIC.to_vec(),
            field_bytes(1, &type_meta),
            field_bytes(2, &service),
        ]
        .concat();
        assert_eq!(
            decode(&body),
            Ok(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web"},
                "spec": {
                    "ports": [
                        {"name": "web", "protocol": "TCP", "port": 80, "targetPort": 80},
                        {"name": "alt", "protocol": "TCP", "port": 81, "targetPort": "http"},
                    ],
                    "selector": {"app": "web"},
                    "type": "LoadBalancer",
                },
            }))
        );
    }

    #[test]
    fn delete_options_decode_under_any_group_version() {
        let preconditions = field_bytes(2, b"7");
        let options = [
            field_bytes(2, &preconditions),
            field_bytes(4, b"Background"),
        ]
        .concat();
        let type_meta = [field_bytes(1, b"apps/v1"), field_bytes(2, b"DeleteOptions")].concat();
        let body = [
            MAGIC.to_vec(),
            field_bytes(1, &type_meta),
            field_bytes(2, &options),
        ]
        .concat();
        assert_eq!(
            decode(&body),
            Ok(json!({
                "apiVersion": "apps/v1", "kind": "DeleteOptions",
                "preconditions": {"resourceVersion": "7"},
                "propagationPolicy": "Background",
            }))
        );
    }

    #[test]
    fn an_unknown_kind_or_a_truncated_body_is_an_error() {
        let type_meta = [field_bytes(1, b"v1"), field_bytes(2, b"Pod")].concat();
        let body = [MAGIC.to_vec(), field_bytes(1, &type_meta)].concat();
        assert_eq!(decode(&body), Err(ProtoError::UnknownKind("v1 Pod".into())));
        assert_eq!(decode(b"k8s\0\x0a\x05ab"), Err(ProtoError::Malformed));
        assert_eq!(decode(b"{}"), Err(ProtoError::NoMagic));
    }
}
