//! `/openapi/v2`: a valid Swagger 2.0 document that describes no kinds, as JSON or as the
//! gnostic protobuf client-go asks for. kubesim describes its kinds in OpenAPI v3 only (what
//! kubectl and Helm v4 read first); the v2 document exists because kubectl's client-side apply
//! still asks for it when v3 declares no strategic merge patch for a built-in kind. Finding no
//! definition there, kubectl falls back to its compiled-in patch metadata, which is exactly right
//! for built-ins, instead of logging a 404. A real server lists every kind here. Pure.

use serde_json::{Value, json};

use super::discovery::KUBE_MINOR;

/// The protobuf media type client-go sends in `Accept` (and the answer's `Content-Type`).
pub const PROTOBUF_ACCEPT: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
pub const PROTOBUF_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

fn version() -> String {
    format!("v1.{KUBE_MINOR}.0")
}

/// True when the client wants the protobuf form.
pub fn wants_protobuf(accept: &str) -> bool {
    accept.contains("com.github.proto-openapi.spec.v2")
}

/// The JSON form.
pub fn json_document() -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": version()},
        "paths": {},
        "definitions": {},
    })
}

/// One length-delimited protobuf field (all fields here are short strings or messages).
fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![number << 3 | 2];
    let mut len = bytes.len();
    while len >= 0x80 {
        out.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(bytes);
    out
}

/// The protobuf form: gnostic `openapi_v2.Document { swagger = 1; info = 2 { title = 1;
/// version = 2 } }`.
pub fn protobuf_document() -> Vec<u8> {
    let info = [field(1, b"Kubernetes"), field(2, version().as_bytes())].concat();
    [field(1, b"2.0"), field(2, &info)].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protobuf_document_names_swagger_2_and_the_version() {
        let doc = protobuf_document();
        let info = [field(1, b"Kubernetes"), field(2, b"v1.33.0")].concat();
        assert_eq!(doc[..5], [0x0a, 3, b'2', b'.', b'0']);
        assert_eq!(doc[5..7], [0x12, info.len() as u8]);
        assert_eq!(doc[7..], info[..]);
        assert!(wants_protobuf(PROTOBUF_ACCEPT));
        assert!(!wants_protobuf("application/json"));
        assert_eq!(json_document()["swagger"], "2.0");
    }

    #[test]
    fn long_fields_get_multi_byte_lengths() {
        let long = field(1, &[b'x'; 300]);
        assert_eq!(long[..3], [0x0a, 0xac, 0x02]);
        assert_eq!(long.len(), 303);
    }
}
