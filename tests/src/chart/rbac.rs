//! RBAC as the least-privilege check sees it: the attributes an API request is authorised by
//! (user, verb, group, resource, name — a list or watch pinned with `metadata.name=` counts as a
//! request for that name, as on a real server), and every grant a Role rule makes. Pure.

use serde_json::Value;

/// One request's RBAC attributes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    pub user: String,
    pub verb: String,
    /// `""` for the core group.
    pub group: String,
    /// `resource` or `resource/subresource`.
    pub resource: String,
    /// The object's name, `""` when the request names none.
    pub name: String,
}

/// The attributes of a request (`method`, URL `path` and `query` as recorded), None for paths
/// that are not resources (discovery, health).
pub fn access(method: &str, path: &str, query: &str, user: &str) -> Option<Access> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => (String::new(), rest),
        ["apis", group, _version, rest @ ..] => ((*group).to_owned(), rest),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] if !rest.is_empty() => rest,
        other => other,
    };
    let (resource, name, sub) = match rest {
        [resource] => (*resource, "", ""),
        [resource, name] => (*resource, *name, ""),
        [resource, name, sub] => (*resource, *name, *sub),
        _ => return None,
    };
    let query: Vec<(String, String)> = form_pairs(query);
    let pinned = query
        .iter()
        .find(|(k, _)| k == "fieldSelector")
        .and_then(|(_, v)| v.strip_prefix("metadata.name="))
        .filter(|v| !v.contains(','))
        .unwrap_or("");
    let watch = query
        .iter()
        .any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
    let verb = match (method, name.is_empty()) {
        ("GET", true) if watch => "watch",
        ("GET", true) => "list",
        ("GET", false) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", false) => "delete",
        ("DELETE", true) => "deletecollection",
        _ => return None,
    };
    let resource = if sub.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}/{sub}")
    };
    let name = if name.is_empty() { pinned } else { name };
    Some(Access {
        user: user.to_owned(),
        verb: verb.to_owned(),
        group,
        resource,
        name: name.to_owned(),
    })
}

/// `a=b&c=d` with percent-decoding.
fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One grant of a rule: (verb, group, resource, name — `""`: any name).
pub type Grant = (String, String, String, String);

/// Every grant a Role rule makes.
pub fn grants(rule: &Value) -> Vec<Grant> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let mut names = strings(&rule["resourceNames"]);
    if names.is_empty() {
        names.push(String::new());
    }
    let mut out = Vec::new();
    for verb in strings(&rule["verbs"]) {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for name in &names {
                    out.push((verb.clone(), group.clone(), resource.clone(), name.clone()));
                }
            }
        }
    }
    out
}

/// Whether `access` by `user` used `grant`.
pub fn uses(access: &Access, user: &str, grant: &Grant) -> bool {
    let (verb, group, resource, name) = grant;
    access.user == user
        && access.verb == *verb
        && access.group == *group
        && access.resource == *resource
        && (name.is_empty() || access.name == *name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_map_to_the_verbs_and_names_rbac_checks() {
        let a = |m: &str, p: &str, q: &str| {
            access(m, p, q, "u").map(|a| (a.verb, a.group, a.resource, a.name))
        };
        let owned =
            |v: &str, g: &str, r: &str, n: &str| Some((v.into(), g.into(), r.into(), n.into()));
        assert_eq!(
            a("GET", "/api/v1/services", "watch=true&resourceVersion=1"),
            owned("watch", "", "services", "")
        );
        assert_eq!(
            a("GET", "/api/v1/namespaces/x/secrets", ""),
            owned("list", "", "secrets", "")
        );
        assert_eq!(
            a(
                "GET",
                "/apis/coordination.k8s.io/v1/namespaces/x/leases",
                "fieldSelector=metadata.name%3Dleader&watch=1"
            ),
            owned("watch", "coordination.k8s.io", "leases", "leader")
        );
        assert_eq!(
            a("PATCH", "/api/v1/namespaces/d/services/web/status", ""),
            owned("patch", "", "services/status", "web")
        );
        assert_eq!(
            a(
                "PUT",
                "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/v",
                ""
            ),
            owned(
                "update",
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
                "v"
            )
        );
        assert_eq!(a("GET", "/apis", ""), None);
        assert_eq!(a("GET", "/version", ""), None);
    }

    #[test]
    fn a_rule_grants_each_verb_on_each_resource_and_name() {
        let rule = json!({"apiGroups": ["metallb.io"], "resources": ["a", "b"], "verbs": ["get", "list"], "resourceNames": ["n"]});
        let all = grants(&rule);
        assert_eq!(all.len(), 4);
        let get_a = (
            "get".to_owned(),
            "metallb.io".to_owned(),
            "a".to_owned(),
            "n".to_owned(),
        );
        assert!(all.contains(&get_a));
        let hit =
            access("GET", "/apis/metallb.io/v1/namespaces/x/a/n", "", "u").expect("a resource");
        assert!(uses(&hit, "u", &get_a));
        assert!(!uses(&hit, "someone-else", &get_a));
        let other =
            access("GET", "/apis/metallb.io/v1/namespaces/x/a/m", "", "u").expect("a resource");
        assert!(!uses(&other, "u", &get_a), "another name is not granted");
    }
}
