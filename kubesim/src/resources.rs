//! The registry of served resource types: the built-in kinds kubesim knows and the ones that
//! CustomResourceDefinitions add. Owns names, scope, versions, subresources, schemas and printer
//! columns; stores no objects and does no I/O.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::event_views;

/// One served version of a resource type.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    pub name: String,
    /// Whether `/status` exists; the main endpoint then ignores status changes.
    pub has_status: bool,
    /// The CRD's `openAPIV3Schema`, for defaulting, pruning and validation (None for built-ins).
    pub schema: Option<Value>,
    /// The CRD's `additionalPrinterColumns` (raw JSON).
    pub printer_columns: Vec<Value>,
}

/// A resource type, e.g. `ipaddresspools.metallb.io`.
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    pub group: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Served versions, preferred (storage) first.
    pub versions: Vec<VersionInfo>,
    /// True when a CRD defines it: schema handling and CR-specific behaviour apply.
    pub is_custom: bool,
}

impl ResourceInfo {
    pub fn version(&self, name: &str) -> Option<&VersionInfo> {
        self.versions.iter().find(|v| v.name == name)
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The group its objects are stored under: both Event APIs share core's.
    pub fn storage_group(&self) -> &str {
        event_views::storage_group(&self.group, &self.plural)
    }

    /// A stored object as this type shows it (only `events.k8s.io` Events differ).
    pub fn from_storage<'a>(&self, stored: &'a Value) -> Cow<'a, Value> {
        if event_views::is_events_view(&self.group, &self.plural) {
            Cow::Owned(event_views::to_events(stored))
        } else {
            Cow::Borrowed(stored)
        }
    }

    /// An object of this type in its stored shape.
    pub fn to_storage(&self, object: Value) -> Value {
        if event_views::is_events_view(&self.group, &self.plural) {
            event_views::to_core(&object)
        } else {
            object
        }
    }
}

/// A request's resource type at the version it asked for.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub info: Arc<ResourceInfo>,
    pub version: String,
}

impl Resolved {
    pub fn version_info(&self) -> Option<&VersionInfo> {
        self.info.version(&self.version)
    }

    pub fn has_status(&self) -> bool {
        self.version_info().is_some_and(|v| v.has_status)
    }

    pub fn schema(&self) -> Option<&Value> {
        self.version_info().and_then(|v| v.schema.as_ref())
    }

    pub fn api_version(&self) -> String {
        self.info.api_version(&self.version)
    }
}

/// All served resource types, by group.
#[derive(Debug, Clone)]
pub struct Registry {
    groups: BTreeMap<String, Vec<Arc<ResourceInfo>>>,
    /// Bumped on every change, so OpenAPI hashes and cached discovery can tell.
    pub generation: u64,
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    has_status: bool,
    short_names: &'static [&'static str],
}

#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    Builtin { group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false, has_status: true, short_names: &["ns"] },
    Builtin { group: "", version: "v1", plural: "nodes", kind: "Node", namespaced: false, has_status: true, short_names: &["no"] },
    Builtin { group: "", version: "v1", plural: "services", kind: "Service", namespaced: true, has_status: true, short_names: &["svc"] },
    Builtin { group: "", version: "v1", plural: "endpoints", kind: "Endpoints", namespaced: true, has_status: false, short_names: &["ep"] },
    Builtin { group: "", version: "v1", plural: "pods", kind: "Pod", namespaced: true, has_status: true, short_names: &["po"] },
    Builtin { group: "", version: "v1", plural: "secrets", kind: "Secret", namespaced: true, has_status: false, short_names: &[] },
    Builtin { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap", namespaced: true, has_status: false, short_names: &["cm"] },
    Builtin { group: "", version: "v1", plural: "events", kind: "Event", namespaced: true, has_status: false, short_names: &["ev"] },
    Builtin { group: "", version: "v1", plural: "serviceaccounts", kind: "ServiceAccount", namespaced: true, has_status: false, short_names: &["sa"] },
    Builtin { group: "discovery.k8s.io", version: "v1", plural: "endpointslices", kind: "EndpointSlice", namespaced: true, has_status: false, short_names: &[] },
    Builtin { group: "events.k8s.io", version: "v1", plural: "events", kind: "Event", namespaced: true, has_status: false, short_names: &["ev"] },
    Builtin { group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease", namespaced: true, has_status: false, short_names: &[] },
    Builtin { group: "admissionregistration.k8s.io", version: "v1", plural: "validatingwebhookconfigurations", kind: "ValidatingWebhookConfiguration", namespaced: false, has_status: false, short_names: &[] },
    Builtin { group: "rbac.authorization.k8s.io", version: "v1", plural: "roles", kind: "Role", namespaced: true, has_status: false, short_names: &[] },
    Builtin { group: "rbac.authorization.k8s.io", version: "v1", plural: "rolebindings", kind: "RoleBinding", namespaced: true, has_status: false, short_names: &[] },
    Builtin { group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterroles", kind: "ClusterRole", namespaced: false, has_status: false, short_names: &[] },
    Builtin { group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterrolebindings", kind: "ClusterRoleBinding", namespaced: false, has_status: false, short_names: &[] },
    Builtin { group: "authorization.k8s.io", version: "v1", plural: "selfsubjectaccessreviews", kind: "SelfSubjectAccessReview", namespaced: false, has_status: true, short_names: &[] },
    Builtin { group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions", kind: "CustomResourceDefinition", namespaced: false, has_status: true, short_names: &["crd", "crds"] },
];

impl Default for Registry {
    fn default() -> Self {
        Self::with_builtins()
    }
}

/// The categories a built-in kind is listed under: `kubectl get all` asks for `all`, which the
/// real server gives Pods and Services (and workloads kubesim does not serve).
fn builtin_categories(group: &str, plural: &str) -> Vec<String> {
    match (group, plural) {
        ("", "pods" | "services") => vec!["all".to_owned()],
        _ => Vec::new(),
    }
}

impl Registry {
    /// The built-in kinds only.
    pub fn with_builtins() -> Self {
        let mut groups: BTreeMap<String, Vec<Arc<ResourceInfo>>> = BTreeMap::new();
        for b in BUILTINS {
            groups
                .entry(b.group.into())
                .or_default()
                .push(Arc::new(ResourceInfo {
                    group: b.group.into(),
                    plural: b.plural.into(),
                    singular: b.kind.to_lowercase(),
                    kind: b.kind.into(),
                    namespaced: b.namespaced,
                    short_names: b.short_names.iter().map(|s| (*s).to_owned()).collect(),
                    categories: builtin_categories(b.group, b.plural),
                    versions: vec![VersionInfo {
                        name: b.version.into(),
                        has_status: b.has_status,
                        schema: None,
                        printer_columns: Vec::new(),
                    }],
                    is_custom: false,
                }));
        }
        Self {
            groups,
            generation: 1,
        }
    }

    /// Finds `plural` served at `group/version`.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Resolved> {
        let info = self
            .groups
            .get(group)?
            .iter()
            .find(|r| r.plural == plural && r.version(version).is_some())?;
        Some(Resolved {
            info: Arc::clone(info),
            version: version.to_owned(),
        })
    }

    /// Finds the resource type of `kind` served at `apiVersion` (`v1`, `metallb.io/v1beta1`).
    pub fn resolve_kind(&self, api_version: &str, kind: &str) -> Option<Resolved> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let info = self
            .groups
            .get(group)?
            .iter()
            .find(|r| r.kind == kind && r.version(version).is_some())?;
        Some(Resolved {
            info: Arc::clone(info),
            version: version.to_owned(),
        })
    }

    /// Every group with the versions it serves, preferred first (group "" is the core group).
    pub fn group_versions(&self) -> Vec<(String, Vec<String>)> {
        self.groups
            .iter()
            .filter(|(_, rs)| !rs.is_empty())
            .map(|(g, rs)| {
                let mut versions: Vec<String> = Vec::new();
                for r in rs {
                    for v in &r.versions {
                        if !versions.contains(&v.name) {
                            versions.push(v.name.clone());
                        }
                    }
                }
                versions.sort_by_key(|v| version_priority(v));
                (g.clone(), versions)
            })
            .collect()
    }

    /// The resource types served at `group/version`.
    pub fn resources_at(&self, group: &str, version: &str) -> Vec<Arc<ResourceInfo>> {
        self.groups
            .get(group)
            .map(|rs| {
                rs.iter()
                    .filter(|r| r.version(version).is_some())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Adds or replaces the resource type a CRD defines.
    pub fn upsert_custom(&mut self, info: ResourceInfo) {
        let list = self.groups.entry(info.group.clone()).or_default();
        list.retain(|r| r.plural != info.plural);
        list.push(Arc::new(info));
        self.generation += 1;
    }

    /// Removes the resource type a deleted CRD defined.
    pub fn remove_custom(&mut self, group: &str, plural: &str) {
        if let Some(list) = self.groups.get_mut(group) {
            list.retain(|r| !(r.is_custom && r.plural == plural));
            if list.is_empty() {
                self.groups.remove(group);
            }
        }
        self.generation += 1;
    }
}

/// Sort key giving Kubernetes' version priority: GA before beta before alpha, higher numbers
/// first, then anything else alphabetically (`v1` < `v1beta2` < `v1beta1` < `v1alpha1` < `foo`).
pub fn version_priority(
    version: &str,
) -> (u8, std::cmp::Reverse<u64>, std::cmp::Reverse<u64>, String) {
    let parsed = version.strip_prefix('v').and_then(|rest| {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        let tail = &rest[digits..];
        if tail.is_empty() {
            return Some((0, major, 0));
        }
        let (class, minor) = if let Some(m) = tail.strip_prefix("beta") {
            (1, m)
        } else if let Some(m) = tail.strip_prefix("alpha") {
            (2, m)
        } else {
            return None;
        };
        Some((class, major, minor.parse().ok()?))
    });
    match parsed {
        Some((class, major, minor)) => (
            class,
            std::cmp::Reverse(major),
            std::cmp::Reverse(minor),
            String::new(),
        ),
        None => (
            3,
            std::cmp::Reverse(0),
            std::cmp::Reverse(0),
            version.to_owned(),
        ),
    }
}

/// Reads the resource type out of a `CustomResourceDefinition` object (assumed validated).
pub fn from_crd(crd: &Value) -> Option<ResourceInfo> {
    let spec = crd.get("spec")?;
    let names = spec.get("names")?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let list = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let kind = text(names.get("kind"))?;
    let mut versions: Vec<(bool, VersionInfo)> = spec
        .get("versions")?
        .as_array()?
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
        .filter_map(|v| {
            Some((
                v.get("storage").and_then(Value::as_bool).unwrap_or(false),
                VersionInfo {
                    name: text(v.get("name"))?,
                    has_status: v.pointer("/subresources/status").is_some(),
                    schema: v.pointer("/schema/openAPIV3Schema").cloned(),
                    printer_columns: v
                        .get("additionalPrinterColumns")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                },
            ))
        })
        .collect();
    versions.sort_by_key(|(storage, _)| !*storage);
    Some(ResourceInfo {
        group: text(spec.get("group"))?,
        plural: text(names.get("plural"))?,
        singular: text(names.get("singular")).unwrap_or_else(|| kind.to_lowercase()),
        kind,
        namespaced: spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
        short_names: list(names.get("shortNames")),
        categories: list(names.get("categories")),
        versions: versions.into_iter().map(|(_, v)| v).collect(),
        is_custom: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_by_kubernetes_priority() {
        let mut versions = vec!["v1alpha1", "v1beta1", "foo", "v2", "v1beta2", "v1"];
        versions.sort_by_key(|v| version_priority(v));
        assert_eq!(
            versions,
            vec!["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }
}
