//! Discovery documents: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/GROUP[/VERSION]` in the
//! legacy (unaggregated) form, and a small OpenAPI v3 (`/openapi/v3` and one document per
//! group-version) that declares each resource's operations, their `fieldValidation` parameter
//! and the CRD schemas, which is what `kubectl apply` looks for. Pure: reads the registry only.

use serde_json::{Value, json};

use super::resources::{Registry, ResourceInfo};

/// The Kubernetes version kubesim claims to be.
pub const KUBE_MINOR: &str = "33";

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0-kubesim"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn api_group(name: &str, versions: &[String]) -> Value {
    let entries: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    let preferred = entries.first().cloned().unwrap_or_default();
    json!({"name": name, "versions": entries, "preferredVersion": preferred})
}

/// `/apis`: every named group.
pub fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .group_versions()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| api_group(&g, &vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/GROUP`.
pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    let (_, versions) = registry
        .group_versions()
        .into_iter()
        .find(|(g, _)| g == name && !g.is_empty())?;
    let mut doc = api_group(name, &versions);
    if let Some(map) = doc.as_object_mut() {
        map.insert("kind".into(), json!("APIGroup"));
        map.insert("apiVersion".into(), json!("v1"));
    }
    Some(doc)
}

/// The verbs every served resource lists (legacy and aggregated discovery alike).
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `/api/v1` or `/apis/GROUP/VERSION`: an APIResourceList.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources = registry.resources_at(group, version);
    if resources.is_empty() {
        return None;
    }
    let mut entries = Vec::new();
    for r in &resources {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
        });
        if let Some(map) = entry.as_object_mut() {
            if !r.short_names.is_empty() {
                map.insert("shortNames".into(), json!(r.short_names));
            }
            if !r.categories.is_empty() {
                map.insert("categories".into(), json!(r.categories));
            }
        }
        entries.push(entry);
        if r.version(version).is_some_and(|v| v.has_status) {
            entries.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }))
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: where each group-version's document is.
pub fn openapi_v3_root(registry: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    for (group, versions) in registry.group_versions() {
        for v in versions {
            let path = gv_path(&group, &v);
            paths.insert(
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={:016X}", registry.generation)}),
            );
        }
    }
    json!({"paths": paths})
}

/// The OpenAPI definition name of a kind, e.g. `io.metallb.v1beta1.IPAddressPool`.
fn definition_name(r: &ResourceInfo, version: &str) -> String {
    if r.group.is_empty() {
        return format!("io.k8s.api.core.{version}.{}", r.kind);
    }
    let reversed: Vec<&str> = r.group.split('.').rev().collect();
    format!("{}.{version}.{}", reversed.join("."), r.kind)
}

fn operation(
    r: &ResourceInfo,
    version: &str,
    action: &str,
    schema_ref: &str,
    with_validation: bool,
) -> Value {
    let mut parameters =
        vec![json!({"name": "pretty", "in": "query", "schema": {"type": "string"}})];
    if with_validation {
        for p in ["dryRun", "fieldManager", "fieldValidation"] {
            parameters.push(json!({"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": true}}));
        }
    }
    let mut op = json!({
        "operationId": format!("{action}{}", r.kind),
        "parameters": parameters,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": schema_ref}}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": version, "kind": r.kind},
    });
    let body_types: &[&str] = match action {
        "patch" => &[
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ],
        "post" | "put" => &["application/json"],
        _ => &[],
    };
    if !body_types.is_empty()
        && let Some(map) = op.as_object_mut()
    {
        let content: serde_json::Map<String, Value> = body_types
            .iter()
            .map(|t| ((*t).to_owned(), json!({"schema": {"$ref": schema_ref}})))
            .collect();
        map.insert(
            "requestBody".into(),
            json!({"content": content, "required": true}),
        );
    }
    op
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/GROUP/VERSION`.
pub fn openapi_v3_document(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources = registry.resources_at(group, version);
    if resources.is_empty() {
        return None;
    }
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    let prefix = format!("/{}", gv_path(group, version));
    for r in &resources {
        let def = definition_name(r, version);
        let schema_ref = format!("#/components/schemas/{def}");
        let mut schema = r
            .version(version)
            .and_then(|v| v.schema.clone())
            .unwrap_or_else(
                || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            );
        if let Some(map) = schema.as_object_mut() {
            map.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": r.group, "version": version, "kind": r.kind}]),
            );
        }
        schemas.insert(def, schema);
        let collection = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{prefix}/{}", r.plural)
        };
        paths.insert(
            collection.clone(),
            json!({
                "get": operation(r, version, "list", &schema_ref, false),
                "post": operation(r, version, "post", &schema_ref, true),
            }),
        );
        let item = json!({
            "get": operation(r, version, "get", &schema_ref, false),
            "put": operation(r, version, "put", &schema_ref, true),
            "patch": operation(r, version, "patch", &schema_ref, true),
            "delete": operation(r, version, "delete", &schema_ref, false),
        });
        paths.insert(format!("{collection}/{{name}}"), item.clone());
        if r.version(version).is_some_and(|v| v.has_status) {
            paths.insert(format!("{collection}/{{name}}/status"), item);
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{KUBE_MINOR}.0")},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
