//! Aggregated discovery (`apidiscovery.k8s.io/v2`, `APIGroupDiscoveryList`): `/api` and `/apis`
//! each answered in one document when the client's `Accept` asks for it, as kubectl and
//! client-go do first, so they skip the request per group-version. A client that asks for plain
//! JSON first still gets the legacy documents from [`super::discovery`]. Pure: reads the
//! registry only.

use serde_json::{Value, json};

use super::discovery::VERBS;
use super::resources::Registry;

/// The `as=` parameter naming an aggregated discovery document.
const AS_LIST: &str = "APIGroupDiscoveryList";

/// The aggregated versions served, newest first (v2beta1 has the same shape).
const VERSIONS: &[&str] = &["v2", "v2beta1"];

/// The aggregated-discovery version `accept` prefers over the legacy document, if any: the first
/// media range kubesim can serve decides (JSON only; a protobuf range is passed over).
pub fn negotiate(accept: &str) -> Option<&'static str> {
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        if !matches!(media, "application/json" | "application/*" | "*/*") {
            continue;
        }
        match param("as") {
            None => return None,
            Some(AS_LIST) if param("g") == Some("apidiscovery.k8s.io") => {
                if let Some(version) = VERSIONS.iter().find(|v| param("v") == Some(**v)) {
                    return Some(version);
                }
            }
            Some(_) => {}
        }
    }
    None
}

/// The `Content-Type` of an aggregated document of `version`.
pub fn content_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as={AS_LIST}")
}

/// One group's `APIGroupDiscovery`: its versions (preferred first) and their resources.
fn group_discovery(registry: &Registry, group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|version| {
            let resources: Vec<Value> = registry
                .resources_at(group, version)
                .iter()
                .map(|r| {
                    let kind = json!({"group": group, "version": version, "kind": r.kind});
                    let mut entry = json!({
                        "resource": r.plural,
                        "responseKind": kind,
                        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.singular,
                        "verbs": VERBS,
                    });
                    if let Some(map) = entry.as_object_mut() {
                        if !r.short_names.is_empty() {
                            map.insert("shortNames".into(), json!(r.short_names));
                        }
                        if !r.categories.is_empty() {
                            map.insert("categories".into(), json!(r.categories));
                        }
                        if r.version(version).is_some_and(|v| v.has_status) {
                            map.insert(
                                "subresources".into(),
                                json!([{"subresource": "status", "responseKind": kind, "verbs": ["get", "patch", "update"]}]),
                            );
                        }
                    }
                    entry
                })
                .collect();
            json!({"version": version, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let mut metadata = json!({"creationTimestamp": null});
    if !group.is_empty() {
        metadata["name"] = json!(group);
    }
    json!({"metadata": metadata, "versions": versions})
}

/// `/api` (`core`) or `/apis` as one `APIGroupDiscoveryList` of `version`.
pub fn document(registry: &Registry, core: bool, version: &str) -> Value {
    let items: Vec<Value> = registry
        .group_versions()
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, vs)| group_discovery(registry, &g, &vs))
        .collect();
    json!({
        "kind": AS_LIST,
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_servable_media_range_decides() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(kubectl), Some("v2"));
        let proto_first = "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
        assert_eq!(negotiate(proto_first), Some("v2beta1"));
        assert_eq!(negotiate("application/json, */*"), None);
        assert_eq!(negotiate(""), None);
        assert_eq!(
            negotiate("application/json;g=apidiscovery.k8s.io;v=v9;as=APIGroupDiscoveryList"),
            None
        );
    }

    #[test]
    fn core_and_named_groups_are_separate_documents() {
        let registry = Registry::with_builtins();
        let core = document(&registry, true, "v2");
        let items = core["items"].as_array().expect("items");
        assert_eq!(items.len(), 1);
        assert!(items[0]["metadata"].get("name").is_none());
        let services = items[0]["versions"][0]["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["resource"] == "services")
            .expect("services are served");
        assert_eq!(services["scope"], "Namespaced");
        assert_eq!(services["subresources"][0]["subresource"], "status");
        assert_eq!(services["shortNames"], json!(["svc"]));

        let named = document(&registry, false, "v2");
        let groups: Vec<&str> = named["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|g| g["metadata"]["name"].as_str())
            .collect();
        assert!(groups.contains(&"events.k8s.io"), "{groups:?}");
        assert!(!groups.contains(&""), "{groups:?}");
    }
}
