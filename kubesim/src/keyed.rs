//! The lists server-side apply merges element by element, by a key, instead of replacing them
//! whole: where the real server's schema says `x-kubernetes-list-type: map` (built-ins: a
//! `patchMergeKey` with `listType=map`). kubesim knows the ones its users need; every other list
//! stays atomic (see [`super::managed`]). An element is named in a field path by the segment
//! `k:{"name":"x"}`, as in `fieldsV1`. Pure.

use serde_json::{Value, json};

/// Keyed lists: the path of the list (from the object's root) and its key field.
const KEYED: &[(&[&str], &str)] = &[
    // admissionregistration.k8s.io/v1 (Validating|Mutating)WebhookConfiguration: webhooks are a
    // map keyed by name, so a client owning one webhook's caBundle never conflicts with the
    // applier of the rest.
    (&["webhooks"], "name"),
];

/// The key field of the list at `path`, when it is a keyed list. Element segments inside the
/// path never match, so nested lists are named by their parents' plain keys only.
pub fn merge_key(path: &[String]) -> Option<&'static str> {
    KEYED
        .iter()
        .find(|(at, _)| at.len() == path.len() && at.iter().zip(path).all(|(a, p)| a == p))
        .map(|(_, key)| *key)
}

/// The segment naming `element` of a list keyed by `key` (None when it has no string key).
pub fn segment(key: &str, element: &Value) -> Option<String> {
    let value = element.get(key)?.as_str()?;
    Some(format!("k:{}", json!({ key: value })))
}

/// Whether a path segment names a list element.
pub fn is_element(segment: &str) -> bool {
    segment.starts_with("k:")
}

/// The key field and value a segment names (`k:{"name":"x"}` → `("name", "x")`).
pub fn parse(segment: &str) -> Option<(String, String)> {
    let object: Value = serde_json::from_str(segment.strip_prefix("k:")?).ok()?;
    let (key, value) = object.as_object()?.iter().next()?;
    Some((key.clone(), value.as_str()?.to_owned()))
}

/// The index of the element a segment names in `list`.
pub fn position(list: &[Value], segment: &str) -> Option<usize> {
    let (key, value) = parse(segment)?;
    list.iter()
        .position(|e| e.get(&key).and_then(Value::as_str) == Some(value.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_are_keyed_by_name_and_other_lists_are_not() {
        let path = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(merge_key(&path(&["webhooks"])), Some("name"));
        assert_eq!(merge_key(&path(&["spec", "ports"])), None);
        assert_eq!(merge_key(&path(&["spec", "webhooks"])), None);
        let hook = json!({"name": "a.example.io", "sideEffects": "None"});
        let seg = segment("name", &hook).expect("named");
        assert_eq!(seg, r#"k:{"name":"a.example.io"}"#);
        assert!(is_element(&seg));
        assert_eq!(position(&[json!({"name": "b"}), hook], &seg), Some(1));
        assert_eq!(segment("name", &json!({"other": 1})), None);
    }
}
