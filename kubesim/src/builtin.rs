//! What the API server does to built-in kinds on write, beyond generic metadata: Service
//! defaults and IP/port allocation, Namespace phase, Secret `stringData`, and the checks and
//! status of CustomResourceDefinitions. Pure: values in, values out.

use base64::Engine as _;
use serde_json::{Value, json};

use super::error::{ApiError, Cause};
use super::meta::meta_str;
use super::rules;

/// A small stable hash (FNV-1a) used to pick cluster IPs and node ports without shared state.
fn hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Whether objects of a kind carry `metadata.generation`. The real server sets it only where the
/// kind's strategy does (EndpointSlices, webhook configurations, Pods, workloads, CRDs and
/// custom resources); ConfigMaps, Services, Secrets, Namespaces, Nodes, ServiceAccounts, RBAC
/// objects, Leases and Events have none.
pub fn has_generation(group: &str, plural: &str) -> bool {
    match group {
        "" => plural == "pods",
        "coordination.k8s.io"
        | "events.k8s.io"
        | "rbac.authorization.k8s.io"
        | "authorization.k8s.io" => false,
        _ => true,
    }
}

/// Applies the built-in kind's write-time defaults. `old` is the stored object on update.
pub fn default_object(group: &str, plural: &str, object: &mut Value, old: Option<&Value>) {
    match (group, plural) {
        ("", "namespaces") => {
            if object.pointer("/status/phase").is_none() {
                object["status"] = json!({"phase": "Active"});
            }
            if object.pointer("/spec/finalizers").is_none() {
                object["spec"] = json!({"finalizers": ["kubernetes"]});
            }
        }
        ("", "services") => default_service(object, old),
        ("", "secrets") => fold_string_data(object),
        _ => {}
    }
}

fn fold_string_data(object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if let Some(data) = data.as_object_mut() {
        for (k, v) in string_data {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or(""));
            data.insert(k, json!(encoded));
        }
    }
    map.entry("type").or_insert_with(|| json!("Opaque"));
}

fn default_service(object: &mut Value, old: Option<&Value>) {
    let id = format!(
        "{}/{}",
        meta_str(object, "namespace"),
        meta_str(object, "name")
    );
    if !object.get("spec").is_some_and(Value::is_object) {
        object["spec"] = json!({});
    }
    let old_spec = old.and_then(|o| o.get("spec")).cloned().unwrap_or_default();
    let spec = &mut object["spec"];
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_owned();
    spec["type"] = json!(ty);
    if spec.get("sessionAffinity").is_none() {
        spec["sessionAffinity"] = json!("None");
    }
    if ty == "ExternalName" {
        return;
    }
    default_families(spec, &old_spec);
    let h = hash(&id);
    default_cluster_ips(spec, h);
    spec["internalTrafficPolicy"] = spec
        .get("internalTrafficPolicy")
        .cloned()
        .unwrap_or(json!("Cluster"));
    let external = ty == "LoadBalancer" || ty == "NodePort";
    if external && spec.get("externalTrafficPolicy").is_none() {
        spec["externalTrafficPolicy"] = json!("Cluster");
    }
    if ty == "LoadBalancer" && spec.get("allocateLoadBalancerNodePorts").is_none() {
        spec["allocateLoadBalancerNodePorts"] = json!(true);
    }
    let allocate_node_ports = external
        && spec
            .get("allocateLoadBalancerNodePorts")
            .and_then(Value::as_bool)
            != Some(false);
    default_ports(spec, &old_spec, h, allocate_node_ports);
    if object.get("status").is_none() {
        object["status"] = json!({"loadBalancer": {}});
    }
}

/// Keeps the cluster IPs and families an update left out; defaults the family policy and the
/// families (IPv4 first).
fn default_families(spec: &mut Value, old_spec: &Value) {
    for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        if spec.get(field).is_none()
            && let Some(v) = old_spec.get(field)
        {
            spec[field] = v.clone();
        }
    }
    let policy = spec
        .get("ipFamilyPolicy")
        .and_then(Value::as_str)
        .unwrap_or("SingleStack")
        .to_owned();
    spec["ipFamilyPolicy"] = json!(policy);
    if spec.get("ipFamilies").is_none() {
        spec["ipFamilies"] = if policy == "SingleStack" {
            json!(["IPv4"])
        } else {
            json!(["IPv4", "IPv6"])
        };
    }
}

/// One cluster IP per family, derived from the Service's hash `h` (stable across restarts).
fn default_cluster_ips(spec: &mut Value, h: u64) {
    if spec.get("clusterIP").is_some() {
        return;
    }
    let ips: Vec<String> = spec["ipFamilies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|f| {
            if f == "IPv6" {
                format!("fd00:10:96::{:x}", (h >> 16) & 0xffff | 1)
            } else {
                format!("10.96.{}.{}", (h >> 8) & 0xff, (h & 0xfe) | 1)
            }
        })
        .collect();
    spec["clusterIP"] = json!(ips.first().cloned().unwrap_or_default());
    spec["clusterIPs"] = json!(ips);
}

/// Port defaults: protocol TCP, targetPort = port, and a node port (kept across updates) when
/// the type allocates them.
fn default_ports(spec: &mut Value, old_spec: &Value, h: u64, allocate_node_ports: bool) {
    let old_ports = old_spec
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) else {
        return;
    };
    for (i, port) in ports.iter_mut().enumerate() {
        if !port.is_object() {
            continue;
        }
        if port.get("protocol").is_none() {
            port["protocol"] = json!("TCP");
        }
        if port.get("targetPort").is_none() {
            port["targetPort"] = port.get("port").cloned().unwrap_or(json!(0));
        }
        if allocate_node_ports && port.get("nodePort").is_none() {
            let kept = old_ports
                .iter()
                .find(|p| p.get("port") == port.get("port"))
                .and_then(|p| p.get("nodePort"))
                .cloned();
            port["nodePort"] =
                kept.unwrap_or_else(|| json!(30000 + (h.wrapping_add(i as u64 * 7919)) % 2768));
        }
    }
}

/// Checks a CustomResourceDefinition the way the API server must before serving it.
pub fn validate_crd(crd: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let text = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or("");
    let required = |field: &str, causes: &mut Vec<Cause>| {
        causes.push(Cause {
            reason: "FieldValueRequired",
            message: "Required value".into(),
            field: field.into(),
        });
    };
    for (pointer, field) in [
        ("/spec/group", "spec.group"),
        ("/spec/names/plural", "spec.names.plural"),
        ("/spec/names/kind", "spec.names.kind"),
    ] {
        if text(pointer).is_empty() {
            required(field, &mut causes);
        }
    }
    let expected = format!("{}.{}", text("/spec/names/plural"), text("/spec/group"));
    let name = meta_str(crd, "name");
    if name != expected {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
            field: "metadata.name".into(),
        });
    }
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array);
    match versions {
        None => required("spec.versions", &mut causes),
        Some(vs) => {
            causes.extend(rule_compile_errors(vs));
            let storage = vs
                .iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .count();
            if storage != 1 {
                causes.push(Cause {
                    reason: "FieldValueInvalid",
                    message: format!("Invalid value: {vs:?}: must have exactly one version marked as storage version", vs = json!(vs).to_string()),
                    field: "spec.versions".into(),
                });
            }
        }
    }
    causes
}

/// A cause per CEL rule of the versions' schemas that kubesim cannot compile: the API server
/// refuses a CRD whose rules do not compile, and kubesim also refuses one it cannot evaluate,
/// rather than pass it on every write.
fn rule_compile_errors(versions: &[Value]) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, version) in versions.iter().enumerate() {
        let Some(schema) = version.pointer("/schema/openAPIV3Schema") else {
            continue;
        };
        for (path, rule, error) in rules::compile_errors(schema) {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                message: format!("Invalid value: {rule:?}: compilation failed: {error}"),
                field: format!("spec.versions[{i}].schema.openAPIV3Schema.{path}"),
            });
        }
    }
    causes
}

/// The status the API server gives an accepted CRD (`Established`, `NamesAccepted`).
pub fn crd_status(crd: &Value, now: &str) -> Value {
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").cloned())
        .collect();
    let condition = |ty: &str, reason: &str, message: &str| json!({"type": ty, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message});
    json!({
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": crd.pointer("/spec/names").cloned().unwrap_or_default(),
        "storedVersions": storage,
    })
}

/// Rejects a CRD whose checks failed.
pub fn crd_error(crd: &Value, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        meta_str(crd, "name"),
        causes,
    )
}
