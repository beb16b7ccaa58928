//! Server-side tables (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`), as `kubectl get`
//! asks for them: a CRD's `additionalPrinterColumns` evaluated with a simple JSONPath, and
//! fixed columns for the built-in kinds that FerroLB's users look at; and the
//! `PartialObjectMetadata` view. Pure apart from reading the
//! clock for ages.

use serde_json::{Value, json};

use super::meta::{age_secs, meta_str};
use super::resources::Resolved;

/// How a client asked to see objects in its `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The objects themselves.
    Object,
    /// A `meta.k8s.io/v1` Table (`kubectl get`).
    Table(IncludeObject),
    /// `PartialObjectMetadata` (kube-rs `metadata_watcher`, `get_metadata`).
    Metadata,
}

impl View {
    pub fn from_request(accept: &str, include_object: Option<&str>) -> Self {
        let first = accept.split(',').next().unwrap_or("");
        if wants_table(accept) {
            Self::Table(IncludeObject::parse(include_object))
        } else if first.contains("as=PartialObjectMetadata") && first.contains("g=meta.k8s.io") {
            Self::Metadata
        } else {
            Self::Object
        }
    }
}

/// An object reduced to its `PartialObjectMetadata`.
pub fn metadata_only(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object.get("metadata").cloned().unwrap_or_default(),
    })
}

/// Whether an `Accept` header asks for a `meta.k8s.io` Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table") && first.contains("g=meta.k8s.io"))
}

/// What each row carries besides its cells (`includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(text: Option<&str>) -> Self {
        match text {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

/// The API server's human-readable duration (k8s.io/apimachinery `duration.HumanDuration`).
pub fn human_duration(secs: i64) -> String {
    if secs < 120 {
        return format!("{}s", secs.max(0));
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{d}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(usize),
    All,
}

fn parse_path(path: &str) -> Vec<Step> {
    let trimmed = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut steps = Vec::new();
    for part in trimmed.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            let field = &rest[..open];
            if !field.is_empty() {
                steps.push(Step::Field(field.to_owned()));
            }
            rest = &rest[open..];
            while let Some(inner) = rest.strip_prefix('[') {
                let close = inner.find(']').unwrap_or(inner.len());
                let index = &inner[..close];
                if index == "*" {
                    steps.push(Step::All);
                } else if let Ok(i) = index.parse() {
                    steps.push(Step::Index(i));
                }
                rest = inner.get(close + 1..).unwrap_or("");
            }
        } else {
            steps.push(Step::Field(rest.to_owned()));
        }
    }
    steps
}

/// Evaluates a simple JSONPath (`.a.b`, `.a[0]`, `.a[*].b`) and returns every match.
pub fn jsonpath(object: &Value, path: &str) -> Vec<Value> {
    let mut current = vec![object.clone()];
    for step in parse_path(path) {
        current = current
            .into_iter()
            .flat_map(|v| match (&step, v) {
                (Step::Field(f), Value::Object(mut m)) => m.remove(f).into_iter().collect(),
                (Step::Index(i), Value::Array(mut a)) if *i < a.len() => vec![a.swap_remove(*i)],
                (Step::All, Value::Array(a)) => a,
                _ => Vec::new(),
            })
            .collect();
    }
    current
}

fn column(name: &str, kind: &str, format: &str, description: &str, priority: i64) -> Value {
    json!({"name": name, "type": kind, "format": format, "description": description, "priority": priority})
}

fn name_column() -> Value {
    column(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically.",
        0,
    )
}

fn age_cell(object: &Value) -> Value {
    json!(human_duration(
        age_secs(meta_str(object, "creationTimestamp")).unwrap_or(0)
    ))
}

/// One printer-column cell as the CRD table convertor computes it.
fn custom_cell(column: &Value, object: &Value) -> Value {
    let path = column.get("jsonPath").and_then(Value::as_str).unwrap_or("");
    let kind = column
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string");
    let Some(value) = jsonpath(object, path).into_iter().next() else {
        return Value::Null;
    };
    match (kind, &value) {
        (_, Value::Null) => Value::Null,
        ("string", Value::String(_)) => value,
        ("string", other) => json!(other.to_string()),
        ("integer", v) => v.as_i64().map_or(Value::Null, |i| json!(i)),
        ("number", v) => v.as_f64().map_or(Value::Null, |f| json!(f)),
        ("boolean", Value::Bool(_)) => value,
        ("date", Value::String(s)) => age_secs(s).map_or(Value::Null, |a| json!(human_duration(a))),
        _ => Value::Null,
    }
}

fn service_ports(object: &Value) -> String {
    let ports = object.pointer("/spec/ports").and_then(Value::as_array);
    let text: Vec<String> = ports
        .into_iter()
        .flatten()
        .map(|p| {
            let port = p.get("port").map(Value::to_string).unwrap_or_default();
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort") {
                Some(np) => format!("{port}:{np}/{proto}"),
                None => format!("{port}/{proto}"),
            }
        })
        .collect();
    if text.is_empty() {
        "<none>".into()
    } else {
        text.join(",")
    }
}

fn service_external_ips(object: &Value) -> String {
    let mut ips: Vec<String> = object
        .pointer("/spec/externalIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let ty = object
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if ty == "LoadBalancer" {
        for ingress in object
            .pointer("/status/loadBalancer/ingress")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(ip) = ingress
                .get("ip")
                .or(ingress.get("hostname"))
                .and_then(Value::as_str)
            {
                ips.push(ip.to_owned());
            }
        }
        if ips.is_empty() {
            return "<pending>".into();
        }
    }
    if ips.is_empty() {
        "<none>".into()
    } else {
        ips.join(",")
    }
}

fn node_status(object: &Value) -> String {
    let ready = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        .and_then(|c| c.get("status").and_then(Value::as_str));
    match ready {
        Some("True") => "Ready".into(),
        Some(_) => "NotReady".into(),
        None => "Unknown".into(),
    }
}

/// Cells of an Event row (core/v1 or events.k8s.io/v1 field names).
fn event_cells(o: &Value) -> Vec<Value> {
    let field = |paths: &[&str]| {
        paths
            .iter()
            .find_map(|p| {
                o.pointer(p)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or("")
            .to_owned()
    };
    let seen = field(&[
        "/series/lastObservedTime",
        "/lastTimestamp",
        "/deprecatedLastTimestamp",
        "/eventTime",
        "/metadata/creationTimestamp",
    ]);
    let object_kind = field(&["/involvedObject/kind", "/regarding/kind"]).to_lowercase();
    let object_name = field(&["/involvedObject/name", "/regarding/name"]);
    vec![
        age_secs(&seen).map_or(json!("<unknown>"), |a| json!(human_duration(a))),
        json!(field(&["/type"])),
        json!(field(&["/reason"])),
        json!(format!("{object_kind}/{object_name}")),
        json!(field(&["/message", "/note"])),
        json!(meta_str(o, "name")),
    ]
}

/// Column definitions and a cell function for a resource type.
/// Computes a row's cells from an object.
type CellFn = Box<dyn Fn(&Value) -> Vec<Value>>;

fn layout(res: &Resolved) -> (Vec<Value>, CellFn) {
    let printer = res
        .version_info()
        .map(|v| v.printer_columns.clone())
        .unwrap_or_default();
    if res.info.is_custom && !printer.is_empty() {
        return custom_layout(printer);
    }
    let age = column(
        "Age",
        "string",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        0,
    );
    let text = |n: &str| column(n, "string", "", "", 0);
    match (res.info.group.as_str(), res.info.plural.as_str()) {
        ("", "services") => (
            vec![
                name_column(),
                text("Type"),
                text("Cluster-IP"),
                text("External-IP"),
                text("Port(s)"),
                age,
                column("Selector", "string", "", "", 1),
            ],
            Box::new(service_cells),
        ),
        ("", "namespaces") => (
            vec![name_column(), text("Status"), age],
            Box::new(namespace_cells),
        ),
        ("", "nodes") => (
            vec![
                name_column(),
                text("Status"),
                text("Roles"),
                age,
                text("Version"),
            ],
            Box::new(node_cells),
        ),
        ("", "events") | ("events.k8s.io", "events") => (
            vec![
                text("Last Seen"),
                text("Type"),
                text("Reason"),
                text("Object"),
                text("Message"),
                column("Name", "string", "name", "", 1),
            ],
            Box::new(event_cells),
        ),
        _ => (
            vec![name_column(), age],
            Box::new(|o: &Value| vec![json!(meta_str(o, "name")), age_cell(o)]),
        ),
    }
}

/// The columns of a CRD's `additionalPrinterColumns`, after the name.
fn custom_layout(printer: Vec<Value>) -> (Vec<Value>, CellFn) {
    let mut columns = vec![name_column()];
    for c in &printer {
        let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        columns.push(column(
            &text("name"),
            &text("type"),
            &text("format"),
            &text("description"),
            c.get("priority").and_then(Value::as_i64).unwrap_or(0),
        ));
    }
    let cells = move |o: &Value| {
        let mut row = vec![json!(meta_str(o, "name"))];
        row.extend(printer.iter().map(|c| custom_cell(c, o)));
        row
    };
    (columns, Box::new(cells))
}

fn service_cells(o: &Value) -> Vec<Value> {
    let selector = o
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "<none>".into());
    let text = |pointer: &str, default: &'static str| {
        json!(
            o.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or(default)
        )
    };
    vec![
        json!(meta_str(o, "name")),
        text("/spec/type", "ClusterIP"),
        text("/spec/clusterIP", "<none>"),
        json!(service_external_ips(o)),
        json!(service_ports(o)),
        age_cell(o),
        json!(selector),
    ]
}

fn namespace_cells(o: &Value) -> Vec<Value> {
    vec![
        json!(meta_str(o, "name")),
        json!(
            o.pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Active")
        ),
        age_cell(o),
    ]
}

fn node_cells(o: &Value) -> Vec<Value> {
    vec![
        json!(meta_str(o, "name")),
        json!(node_status(o)),
        json!("<none>"),
        age_cell(o),
        json!(
            o.pointer("/status/nodeInfo/kubeletVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
    ]
}

/// A `meta.k8s.io/v1` Table of `objects`.
pub fn table(
    res: &Resolved,
    objects: &[Value],
    resource_version: u64,
    continue_token: Option<&str>,
    include: IncludeObject,
) -> Value {
    let (columns, cells) = layout(res);
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(o)});
            let embedded = match include {
                IncludeObject::None => None,
                IncludeObject::Metadata => Some(metadata_only(o)),
                IncludeObject::Object => Some(o.clone()),
            };
            if let (Some(e), Some(map)) = (embedded, row.as_object_mut()) {
                map.insert("object".into(), e);
            }
            row
        })
        .collect();
    let mut metadata = json!({"resourceVersion": resource_version.to_string()});
    if let (Some(token), Some(map)) = (continue_token, metadata.as_object_mut()) {
        map.insert("continue".into(), json!(token));
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_follows_fields_indexes_and_wildcards() {
        let obj = json!({"spec": {"a": [{"b": 1}, {"b": 2}]}});
        assert_eq!(jsonpath(&obj, ".spec.a[1].b"), vec![json!(2)]);
        assert_eq!(jsonpath(&obj, "{.spec.a[*].b}"), vec![json!(1), json!(2)]);
        assert!(jsonpath(&obj, ".spec.missing").is_empty());
    }

    #[test]
    fn durations_read_like_kubectl_ages() {
        assert_eq!(human_duration(59), "59s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(50 * 3600), "2d2h");
    }

    #[test]
    fn only_a_table_first_accept_header_asks_for_a_table() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
