//! Reading manifests: multi-document YAML (or JSON, or `kind: List`) into typed objects, with a
//! clear error for what cannot be read and a note for what is not ours. No I/O: callers hand in text.

use k8s_openapi::api::core::v1::{Node, Secret};
use kube::ResourceExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::Objects;
use crate::error::{ConfigError, Kind, Problem};
use crate::types;

/// Input larger than this is refused before parsing: configuration is kilobytes, and the limit
/// keeps memory bounded whatever is fed in.
pub const MAX_INPUT_BYTES: usize = 16 * 1024 * 1024;

/// Why a manifest cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Over [`MAX_INPUT_BYTES`].
    #[error(
        "input is larger than the {MAX_INPUT_BYTES}-byte limit for manifests ({size} bytes read)"
    )]
    TooLarge {
        /// Its size.
        size: usize,
    },
    /// Not UTF-8 text.
    #[error("input is not UTF-8 text")]
    NotText,
    /// Not YAML, or over the parser's budget (alias bombs, nesting, event counts).
    #[error("invalid YAML: {0}")]
    Yaml(String),
}

/// What one document turned out to be.
#[derive(Debug, Clone)]
pub enum Document {
    /// A FerroLB object, parsed. `unknown_fields` lists fields its kind does not have: kubectl's
    /// strict field validation refuses them, and the API server would silently drop them.
    Object {
        /// The object.
        object: Box<Object>,
        /// One error per unknown field.
        unknown_fields: Vec<ConfigError>,
    },
    /// A FerroLB object whose shape does not match its kind.
    Invalid(ConfigError),
    /// Something else (a Deployment, a Service...), with a short description.
    Skipped(String),
    /// A deprecated API version that was converted.
    Deprecated {
        /// The converted object.
        object: Box<Object>,
        /// The API server's warning for it.
        warning: String,
    },
}

/// A typed object FerroLB reads.
#[derive(Debug, Clone)]
pub enum Object {
    /// IPAddressPool.
    Pool(types::IPAddressPool),
    /// L2Advertisement.
    L2Advertisement(types::L2Advertisement),
    /// BGPAdvertisement.
    BgpAdvertisement(types::BGPAdvertisement),
    /// BGPPeer (v1beta2 shape).
    BgpPeer(types::BGPPeer),
    /// BFDProfile.
    BfdProfile(types::BFDProfile),
    /// Community.
    Community(types::Community),
    /// A Secret (peer passwords).
    Secret(Secret),
    /// A Node (for node-selector rules).
    Node(Box<Node>),
}

/// Parses every document of a manifest. Fails only when the text as a whole is unreadable.
pub fn parse(bytes: &[u8]) -> Result<Vec<Document>, ManifestError> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(ManifestError::TooLarge { size: bytes.len() });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::NotText)?;
    let values: Vec<Value> = serde_saphyr::from_multiple(text)
        .map_err(|e| ManifestError::Yaml(first_line(&e.to_string())))?;
    let mut documents = Vec::new();
    for value in values {
        flatten(value, &mut documents);
    }
    Ok(documents)
}

/// The parser adds a source snippet on later lines; one line per problem is what we print.
fn first_line(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

/// `kind: List` (and `XList`) documents hold their objects in `items`, as `kubectl get -o yaml` writes.
fn flatten(value: Value, documents: &mut Vec<Document>) {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind.ends_with("List")
        && let Some(Value::Array(items)) = value.get("items")
    {
        for item in items.clone() {
            flatten(item, documents);
        }
        return;
    }
    documents.push(classify(value));
}

fn classify(value: Value) -> Document {
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let kind_text = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let describe = || {
        if kind_text.is_empty() {
            "a document without kind".to_owned()
        } else {
            format!(
                "{kind_text}/{name} ({})",
                if api_version.is_empty() {
                    "no apiVersion"
                } else {
                    &api_version
                }
            )
        }
    };
    let typed = |kind: Kind| TypedReader {
        kind,
        name: &name,
        value: &value,
    };
    match (api_version.as_str(), kind_text.as_str()) {
        ("metallb.io/v1beta1", "IPAddressPool") => typed(Kind::IPAddressPool).read(Object::Pool),
        ("metallb.io/v1beta1", "L2Advertisement") => {
            typed(Kind::L2Advertisement).read(Object::L2Advertisement)
        }
        ("metallb.io/v1beta1", "BGPAdvertisement") => {
            typed(Kind::BGPAdvertisement).read(Object::BgpAdvertisement)
        }
        ("metallb.io/v1beta2", "BGPPeer") => typed(Kind::BGPPeer).read(Object::BgpPeer),
        ("metallb.io/v1beta1", "BGPPeer") => {
            match typed(Kind::BGPPeer).read(|old: types::bgppeer_v1beta1::BGPPeer| {
                let mut peer = types::BGPPeer::new(&old.name_any(), old.spec.into());
                peer.metadata = old.metadata;
                Object::BgpPeer(peer)
            }) {
                Document::Object { object, .. } => Document::Deprecated {
                    object,
                    warning: "metallb.io/v1beta1 BGPPeer is deprecated, please use v1beta2".into(),
                },
                other => other,
            }
        }
        ("metallb.io/v1beta1", "BFDProfile") => typed(Kind::BFDProfile).read(Object::BfdProfile),
        ("metallb.io/v1beta1", "Community") => typed(Kind::Community).read(Object::Community),
        ("v1", "Secret") => builtin(&value, Object::Secret)
            .unwrap_or_else(|e| Document::Skipped(format!("{} (unreadable: {e})", describe()))),
        ("v1", "Node") => builtin(&value, |node| Object::Node(Box::new(node)))
            .unwrap_or_else(|e| Document::Skipped(format!("{} (unreadable: {e})", describe()))),
        _ => Document::Skipped(describe()),
    }
}

/// Reads a built-in kind that only feeds references (Secrets, Nodes).
fn builtin<T: DeserializeOwned>(
    value: &Value,
    wrap: impl FnOnce(T) -> Object,
) -> Result<Document, serde_json::Error> {
    let object = wrap(serde_json::from_value(value.clone())?);
    Ok(Document::Object {
        object: Box::new(object),
        unknown_fields: Vec::new(),
    })
}

/// Reads one document as a FerroLB kind, naming the field on failure.
struct TypedReader<'a> {
    kind: Kind,
    name: &'a str,
    value: &'a Value,
}

impl TypedReader<'_> {
    fn read<T: DeserializeOwned + Serialize>(&self, wrap: impl FnOnce(T) -> Object) -> Document {
        let typed: T = match serde_path_to_error::deserialize(self.value) {
            Ok(typed) => typed,
            Err(e) => {
                let field = e.path().to_string();
                let field = if field == "." { String::new() } else { field };
                return Document::Invalid(ConfigError::new(
                    self.kind,
                    self.name,
                    field,
                    Problem::Malformed(e.inner().to_string()),
                ));
            }
        };
        // Fields the types do not know would be silently dropped; kubectl's strict field
        // validation refuses them, and so do we.
        let round_trip = serde_json::to_value(&typed).unwrap_or(Value::Null);
        let unknown_fields = unknown_fields(self.value, &round_trip, "")
            .into_iter()
            .map(|field| ConfigError::new(self.kind, self.name, field, Problem::UnknownField))
            .collect();
        Document::Object {
            object: Box::new(wrap(typed)),
            unknown_fields,
        }
    }
}

/// Paths present (and not null) in `input` but absent from `known`.
fn unknown_fields(input: &Value, known: &Value, path: &str) -> Vec<String> {
    match (input, known) {
        (Value::Object(given), Value::Object(kept)) => given
            .iter()
            .filter(|(_, v)| !v.is_null())
            .flat_map(|(key, v)| {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match kept.get(key) {
                    Some(k) => unknown_fields(v, k, &child),
                    None => vec![child],
                }
            })
            .collect(),
        (Value::Array(given), Value::Array(kept)) => given
            .iter()
            .zip(kept)
            .enumerate()
            .flat_map(|(i, (g, k))| unknown_fields(g, k, &format!("{path}[{i}]")))
            .collect(),
        (Value::Object(given), _) if !given.is_empty() => vec![path.to_owned()],
        _ => Vec::new(),
    }
}

/// Gathers parsed objects for [`crate::config::build`]. Secrets and Nodes count as known only when
/// the manifests hold at least one of them.
pub fn collect<'a>(objects: impl IntoIterator<Item = &'a Object>) -> Objects {
    let mut out = Objects::default();
    for object in objects {
        out.add(object.clone());
    }
    out
}

impl Object {
    /// Kind and name of a FerroLB object; `None` for Secrets and Nodes.
    pub fn identity(&self) -> Option<(Kind, String)> {
        Some(match self {
            Object::Pool(o) => (Kind::IPAddressPool, o.name_any()),
            Object::L2Advertisement(o) => (Kind::L2Advertisement, o.name_any()),
            Object::BgpAdvertisement(o) => (Kind::BGPAdvertisement, o.name_any()),
            Object::BgpPeer(o) => (Kind::BGPPeer, o.name_any()),
            Object::BfdProfile(o) => (Kind::BFDProfile, o.name_any()),
            Object::Community(o) => (Kind::Community, o.name_any()),
            Object::Secret(_) | Object::Node(_) => return None,
        })
    }

    /// `metadata.namespace`; `None` for cluster-scoped Nodes.
    pub fn namespace(&self) -> Option<String> {
        match self {
            Object::Pool(o) => o.namespace(),
            Object::L2Advertisement(o) => o.namespace(),
            Object::BgpAdvertisement(o) => o.namespace(),
            Object::BgpPeer(o) => o.namespace(),
            Object::BfdProfile(o) => o.namespace(),
            Object::Community(o) => o.namespace(),
            Object::Secret(o) => o.namespace(),
            Object::Node(_) => None,
        }
    }
}
