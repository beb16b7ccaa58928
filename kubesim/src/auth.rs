//! Authentication and RBAC authorisation, on when kubesim starts with [`Options::rbac`]:
//! bearer tokens minted by the test map to users (ServiceAccounts among them); each request is
//! allowed by the stored Roles/ClusterRoles through their RoleBindings/ClusterRoleBindings
//! (verbs, apiGroups, resources with subresources, resourceNames), discovery and health paths are
//! open to every authenticated user, `system:masters` may do anything, and
//! SelfSubjectAccessReviews answer `kubectl auth can-i`. Errors are worded as the real server's
//! (401 `Unauthorized`, 403 `... is forbidden: User "..." cannot ...`).
//!
//! Not done: aggregated ClusterRoles, the default bootstrap roles besides discovery, impersonation.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::error::{ApiError, qualified};
use super::storage::Store;

const RBAC: &str = "rbac.authorization.k8s.io";

/// Who a request is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The user a ServiceAccount's token stands for, with the groups the real server gives it.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            username: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    /// The all-powerful test user behind `KubeSim::client()` and its kubeconfig.
    pub fn admin() -> Self {
        Self {
            username: "kubesim-admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }

    /// An unauthenticated request on a public-info path.
    pub fn anonymous() -> Self {
        Self {
            username: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
        }
    }

    fn is_subject(&self, subject: &Value, binding_namespace: &str) -> bool {
        let field = |k: &str| subject.get(k).and_then(Value::as_str).unwrap_or("");
        match field("kind") {
            "ServiceAccount" => {
                let ns = match field("namespace") {
                    "" => binding_namespace,
                    ns => ns,
                };
                self.username == format!("system:serviceaccount:{ns}:{}", field("name"))
            }
            "User" => self.username == field("name"),
            "Group" => self.groups.iter().any(|g| g == field("name")),
            _ => false,
        }
    }
}

/// What a request wants to do to a resource (RBAC's resource attributes).
#[derive(Debug, Clone, Default)]
pub struct ResourceAttributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

impl ResourceAttributes {
    fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// The 403 the real server answers, e.g. `services "a" is forbidden: User "u" cannot
    /// update resource "services/status" in API group "" in the namespace "default"`.
    pub fn forbidden(&self, user: &UserInfo) -> ApiError {
        let target = qualified(&self.group, &self.resource);
        let object = if self.name.is_empty() {
            target
        } else {
            format!("{target} {:?}", self.name)
        };
        let scope = if self.namespace.is_empty() {
            "at the cluster scope".to_owned()
        } else {
            format!("in the namespace {:?}", self.namespace)
        };
        ApiError::Forbidden(format!(
            "{object} is forbidden: User {:?} cannot {} resource {:?} in API group {:?} {scope}",
            user.username,
            self.verb,
            self.combined_resource(),
            self.group
        ))
    }
}

/// The tokens minted so far: token → user.
#[derive(Debug, Default)]
pub struct Tokens {
    by_token: Mutex<HashMap<String, UserInfo>>,
}

impl Tokens {
    pub fn insert(&self, token: String, user: UserInfo) {
        self.by_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token, user);
    }

    /// The user an `Authorization` header names; 401 for a missing or unknown token.
    pub fn authenticate(&self, authorization: &str) -> Result<UserInfo, ApiError> {
        let token = authorization
            .strip_prefix("Bearer ")
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?;
        self.by_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
            .ok_or(ApiError::Unauthorized)
    }
}

fn strings(rule: &Value, key: &str) -> Vec<String> {
    rule.get(key)
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|v| v == "*" || v == want)
}

fn rule_allows(rule: &Value, attrs: &ResourceAttributes) -> bool {
    let resources = strings(rule, "resources");
    let combined = attrs.combined_resource();
    let resource_ok = resources.iter().any(|r| {
        r == "*"
            || *r == combined
            || (!attrs.subresource.is_empty() && *r == format!("*/{}", attrs.subresource))
    });
    let names = strings(rule, "resourceNames");
    has(&strings(rule, "verbs"), &attrs.verb)
        && has(&strings(rule, "apiGroups"), &attrs.group)
        && resource_ok
        && (names.is_empty() || names.contains(&attrs.name))
}

/// The rules of the role a binding refers to (a Role in the binding's namespace, or a ClusterRole).
fn role_rules(store: &Store, binding: &Value, namespace: &str) -> Vec<Value> {
    let field = |k: &str| {
        binding
            .pointer(&format!("/roleRef/{k}"))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let (resource, ns) = match field("kind") {
        "Role" => ("roles", namespace),
        "ClusterRole" => ("clusterroles", ""),
        _ => return Vec::new(),
    };
    let key = super::storage::ObjectKey::new(RBAC, resource, ns, field("name"));
    store
        .get(&key)
        .and_then(|role| role.get("rules").and_then(Value::as_array).cloned())
        .unwrap_or_default()
}

fn bound(user: &UserInfo, binding: &Value) -> bool {
    let ns = binding
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .is_some_and(|subjects| subjects.iter().any(|s| user.is_subject(s, ns)))
}

/// Whether RBAC (plus the built-in rules above) allows `attrs` for `user`.
pub fn allows(store: &Store, user: &UserInfo, attrs: &ResourceAttributes) -> bool {
    if user.groups.iter().any(|g| g == "system:masters") {
        return true;
    }
    // system:basic-user: anyone may ask what they may do.
    if attrs.group == "authorization.k8s.io"
        && attrs.resource == "selfsubjectaccessreviews"
        && attrs.verb == "create"
    {
        return true;
    }
    let (_, cluster_bindings) = store.list(RBAC, "clusterrolebindings", None);
    let cluster_wide = cluster_bindings
        .iter()
        .filter(|b| bound(user, b))
        .flat_map(|b| role_rules(store, b, ""))
        .any(|rule| rule_allows(&rule, attrs));
    if cluster_wide || attrs.namespace.is_empty() {
        return cluster_wide;
    }
    let (_, bindings) = store.list(RBAC, "rolebindings", Some(&attrs.namespace));
    bindings
        .iter()
        .filter(|b| bound(user, b))
        .flat_map(|b| role_rules(store, b, &attrs.namespace))
        .any(|rule| rule_allows(&rule, attrs))
}

/// The RBAC verb of an HTTP request on a resource path.
pub fn verb(method: &str, has_name: bool, is_watch: bool) -> &'static str {
    match (method, has_name) {
        ("GET" | "HEAD", _) if is_watch => "watch",
        ("GET" | "HEAD", true) => "get",
        ("GET" | "HEAD", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

/// Answers a SelfSubjectAccessReview body for `user` (the object with its `status` filled in).
pub fn self_subject_access_review(store: &Store, user: &UserInfo, mut review: Value) -> Value {
    let allowed = if let Some(ra) = review.pointer("/spec/resourceAttributes") {
        let field = |k: &str| ra.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let attrs = ResourceAttributes {
            verb: field("verb"),
            group: field("group"),
            resource: field("resource"),
            subresource: field("subresource"),
            namespace: field("namespace"),
            name: field("name"),
        };
        allows(store, user, &attrs)
    } else {
        let path = review
            .pointer("/spec/nonResourceAttributes/path")
            .and_then(Value::as_str)
            .unwrap_or("");
        user.groups.iter().any(|g| g == "system:masters") || is_discovery_path(path)
    };
    if let Some(map) = review.as_object_mut() {
        map.insert("apiVersion".into(), json!("authorization.k8s.io/v1"));
        map.insert("kind".into(), json!("SelfSubjectAccessReview"));
        map.insert("status".into(), json!({"allowed": allowed}));
    }
    review
}

/// Paths anyone may GET without a token (`system:public-info-viewer`).
pub fn is_public_info_path(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    ["/version", "/healthz", "/livez", "/readyz"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// Paths every authenticated user may GET (the real server's `system:discovery` and
/// `system:public-info-viewer` roles).
pub fn is_discovery_path(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    [
        "/api", "/apis", "/openapi", "/version", "/healthz", "/livez", "/readyz",
    ]
    .iter()
    .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_star_slash_subresource_rule_matches_only_that_subresource() {
        let rule = json!({"verbs": ["update"], "apiGroups": [""], "resources": ["*/status"]});
        let mut attrs = ResourceAttributes {
            verb: "update".into(),
            resource: "services".into(),
            subresource: "status".into(),
            ..ResourceAttributes::default()
        };
        assert!(rule_allows(&rule, &attrs));
        attrs.subresource.clear();
        assert!(!rule_allows(&rule, &attrs));
    }

    #[test]
    fn resource_names_limit_a_rule_to_named_requests() {
        let rule = json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["configmaps"],
            "resourceNames": ["one"]});
        let mut attrs = ResourceAttributes {
            verb: "get".into(),
            resource: "configmaps".into(),
            name: "one".into(),
            ..ResourceAttributes::default()
        };
        assert!(rule_allows(&rule, &attrs));
        attrs.name = "two".into();
        assert!(!rule_allows(&rule, &attrs));
        attrs.name.clear();
        attrs.verb = "list".into();
        assert!(!rule_allows(&rule, &attrs));
    }
}
