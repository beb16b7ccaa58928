//! Strategic merge patch for built-in kinds, as `kubectl apply` (client-side) and `kubectl
//! patch` send it: maps merge recursively, `null` deletes, lists with a known merge key merge
//! element by element (`containers` by `name`, Service `ports` by `port`, ...), `finalizers`
//! merge as a set, other lists are replaced; the directives `$patch` (`replace`, `delete`,
//! `merge`), `$retainKeys`, `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>`
//! are honoured. Merge keys come from a fixed table keyed by field name, not from the OpenAPI
//! schema, so a field the table does not know is replaced as a whole. Pure.

use serde_json::{Map, Value};

/// The merge key of a list field, judged from its name and, for `ports`, its elements.
fn merge_key(field: &str, elements: &[&Value]) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "secrets" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" | "addresses" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "ports" if elements.iter().any(|e| e.get("containerPort").is_some()) => "containerPort",
        "ports" => "port",
        _ => return None,
    })
}

/// Lists of scalars that merge as sets.
fn is_set_list(field: &str) -> bool {
    matches!(field, "finalizers")
}

/// Applies a strategic merge patch to `target`.
pub fn apply(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(target_map), Some(patch_map)) => merge_maps(target_map, patch_map),
        _ => *target = strip(patch),
    }
}

/// A patch value with its directives removed, as stored when there is nothing to merge with.
fn strip(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter(|i| i.get("$patch").and_then(Value::as_str) != Some("delete"))
                .map(strip)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn merge_maps(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = strip(&Value::Object(patch.clone()))
                .as_object()
                .cloned()
                .unwrap_or_default();
            return;
        }
        Some("delete") => {
            target.clear();
            return;
        }
        _ => {}
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(remove)) =
                (target.get_mut(field), value.as_array())
            {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) => match target.get_mut(key) {
                Some(Value::Object(existing)) => merge_maps(existing, inner),
                _ => {
                    if inner.get("$patch").and_then(Value::as_str) != Some("delete") {
                        target.insert(key.clone(), strip(value));
                    } else {
                        target.remove(key);
                    }
                }
            },
            Value::Array(items) => {
                let merged = match target.get_mut(key) {
                    Some(Value::Array(existing)) => merge_lists(key, existing, items),
                    _ => strip(value),
                };
                target.insert(key.clone(), merged);
            }
            scalar => {
                target.insert(key.clone(), scalar.clone());
            }
        }
    }
    if let Some(retain) = patch.get("$retainKeys").and_then(Value::as_array) {
        target.retain(|k, _| retain.iter().any(|r| r.as_str() == Some(k)));
    }
}

fn merge_lists(field: &str, existing: &[Value], patch: &[Value]) -> Value {
    if patch
        .iter()
        .any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Value::Array(
            patch
                .iter()
                .filter(|p| p.get("$patch").is_none())
                .map(strip)
                .collect(),
        );
    }
    if is_set_list(field) {
        let mut out = existing.to_vec();
        for item in patch {
            if !out.contains(item) {
                out.push(item.clone());
            }
        }
        return Value::Array(out);
    }
    let elements: Vec<&Value> = existing.iter().chain(patch.iter()).collect();
    let Some(key) = merge_key(field, &elements) else {
        return strip(&Value::Array(patch.to_vec()));
    };
    let mut out = existing.to_vec();
    for item in patch {
        let id = item.get(key);
        let position = id.and_then(|id| out.iter().position(|e| e.get(key) == Some(id)));
        let deleting = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, deleting) {
            (Some(i), true) => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => apply(&mut out[i], item),
            (None, false) => out.push(strip(item)),
        }
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_ports_merge_by_port_and_keep_their_other_fields() {
        let mut svc = json!({"spec": {"ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080},
            {"name": "https", "port": 443, "protocol": "TCP"},
        ]}});
        apply(
            &mut svc,
            &json!({"spec": {
                "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
                "ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "$patch": "delete"}],
            }}),
        );
        assert_eq!(
            svc,
            json!({"spec": {"ports": [
                {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080, "targetPort": 8080},
            ]}})
        );
    }

    #[test]
    fn directives_replace_delete_and_prune_as_the_api_server_does() {
        let mut obj = json!({"metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}},
                             "spec": {"selector": {"a": "1"}, "tags": ["p", "q"]}});
        apply(
            &mut obj,
            &json!({
                "metadata": {"finalizers": ["b"], "labels": {"x": null}},
                "spec": {"selector": {"$patch": "replace", "b": "2"}, "$deleteFromPrimitiveList/tags": ["p"]},
            }),
        );
        assert_eq!(
            obj,
            json!({"metadata": {"finalizers": ["a", "b"], "labels": {"y": "2"}},
                   "spec": {"selector": {"b": "2"}, "tags": ["q"]}})
        );
    }
}
