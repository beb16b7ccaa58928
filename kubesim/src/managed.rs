//! Field ownership for server-side apply (`metadata.managedFields`): which manager set which
//! field, so that an apply removes the fields its manager applied before and no longer applies,
//! and answers 409 (`FieldManagerConflict` causes) when it would change a field another manager
//! owns, unless forced (the other manager then loses the field). Other writes (create, update,
//! merge/JSON/strategic patches) record an `Update` entry for their manager (`fieldManager`, else
//! the User-Agent's product) and take the fields they change from everyone, never conflicting.
//! Entries are per (manager, operation, subresource), as the real server's `subresource: status`.
//!
//! Simplified against the real structured-merge-diff:
//! - every list is atomic (one field, replaced whole; real built-in lists such as `ports` are
//!   maps keyed by merge keys), and values the server defaulted inside an applied list do not
//!   count as a change;
//! - ownership is of leaves only (no `.` entries for maps);
//! - a manager is its name for conflicts (its `Apply` and `Update` entries never conflict);
//! - `null` in an applied configuration is a value rather than a removal;
//! - an Event applied through events.k8s.io records that view's field names, which a later
//!   core/v1 write does not recognise.
//!
//! Pure.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::error::Cause;
use super::meta::{meta_mut, now_rfc3339};

/// A field: the keys from the object's root (`["data", "x"]`).
type Path = Vec<String>;

/// The metadata fields a manager can own; the rest of metadata belongs to the server.
const OWNABLE_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// The operation an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "Apply",
            Self::Update => "Update",
        }
    }
}

/// Who writes: the manager, the API version of the request and the subresource it went to
/// (`""` or `"status"`); an entry is one per (manager, operation, subresource).
#[derive(Debug, Clone, Copy)]
pub struct Manager<'a> {
    pub name: &'a str,
    pub api_version: &'a str,
    pub subresource: &'a str,
}

#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    subresource: String,
    api_version: String,
    time: String,
    fields: BTreeSet<Path>,
}

/// The leaf fields `value` sets: object keys are followed, lists and scalars are leaves.
fn leaves(value: &Value) -> BTreeSet<Path> {
    fn walk(value: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
        match value.as_object() {
            Some(map) if !map.is_empty() => {
                for (key, child) in map {
                    let skipped = match path.as_slice() {
                        [] => key == "apiVersion" || key == "kind",
                        [metadata] if metadata == "metadata" => {
                            !OWNABLE_METADATA.contains(&key.as_str())
                        }
                        _ => false,
                    };
                    if !skipped {
                        path.push(key.clone());
                        walk(child, path, out);
                        path.pop();
                    }
                }
            }
            _ if !path.is_empty() => {
                out.insert(path.clone());
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

fn get<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

fn set(value: &mut Value, path: &[String], new: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = value;
    for key in parents {
        if !at.get(key).is_some_and(Value::is_object) {
            at[key.as_str()] = json!({});
        }
        at = &mut at[key.as_str()];
    }
    if let Some(map) = at.as_object_mut() {
        map.insert(last.clone(), new);
    }
}

fn remove(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let parent = parents
        .iter()
        .try_fold(value, |v, key| v.get_mut(key.as_str()));
    if let Some(map) = parent.and_then(Value::as_object_mut) {
        map.remove(last);
    }
}

/// True when `live` already holds everything `applied` says: equal scalars, objects with at
/// least the applied keys, lists of the same length element by element. What the server
/// defaulted (a port's `protocol`) then does not count as a change.
fn covers(live: Option<&Value>, applied: Option<&Value>) -> bool {
    match (live, applied) {
        (Some(Value::Object(live)), Some(Value::Object(applied))) => {
            applied.iter().all(|(k, v)| covers(live.get(k), Some(v)))
        }
        (Some(Value::Array(live)), Some(Value::Array(applied))) => {
            live.len() == applied.len()
                && live
                    .iter()
                    .zip(applied)
                    .all(|(l, a)| covers(Some(l), Some(a)))
        }
        (live, applied) => live == applied,
    }
}

/// One field within the other, or the same.
fn related(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// `.data.x`, as conflict messages name fields.
fn dotted(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

/// The `fieldsV1` form of a set: `{"f:data": {"f:x": {}}}`.
fn fields_v1(fields: &BTreeSet<Path>) -> Value {
    let mut root = json!({});
    for path in fields {
        let mut at = &mut root;
        for key in path {
            at = &mut at[format!("f:{key}")];
            if !at.is_object() {
                *at = json!({});
            }
        }
    }
    root
}

fn parse_fields_v1(value: &Value) -> BTreeSet<Path> {
    fn walk(value: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
        let children: Vec<(&String, &Value)> = value
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.starts_with("f:"))
            .collect();
        if children.is_empty() {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            return;
        }
        for (key, child) in children {
            path.push(key[2..].to_owned());
            walk(child, path, out);
            path.pop();
        }
    }
    let mut out = BTreeSet::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

fn entries(object: &Value) -> Vec<Entry> {
    let text = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: text(e, "manager"),
            operation: text(e, "operation"),
            subresource: text(e, "subresource"),
            api_version: text(e, "apiVersion"),
            time: text(e, "time"),
            fields: e.get("fieldsV1").map(parse_fields_v1).unwrap_or_default(),
        })
        .collect()
}

fn write_entries(object: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut entry = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                entry["subresource"] = json!(e.subresource);
            }
            entry
        })
        .collect();
    let meta = meta_mut(object);
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

impl Entry {
    fn is(&self, manager: &Manager<'_>, operation: Operation) -> bool {
        self.manager == manager.name
            && self.operation == operation.as_str()
            && self.subresource == manager.subresource
    }
}

/// The fields of `manager`'s `operation` entry.
fn owned_by(entries: &[Entry], manager: &Manager<'_>, operation: Operation) -> BTreeSet<Path> {
    entries
        .iter()
        .filter(|e| e.is(manager, operation))
        .flat_map(|e| e.fields.iter().cloned())
        .collect()
}

/// Gives `manager`'s `operation` entry exactly `fields` (new entries go last; the time moves
/// only when the fields change).
fn set_entry(
    entries: &mut Vec<Entry>,
    manager: &Manager<'_>,
    operation: Operation,
    fields: BTreeSet<Path>,
) {
    match entries.iter_mut().find(|e| e.is(manager, operation)) {
        Some(entry) => {
            if entry.fields != fields || entry.api_version != manager.api_version {
                entry.time = now_rfc3339();
                entry.api_version = manager.api_version.to_owned();
                entry.fields = fields;
            }
        }
        None => entries.push(Entry {
            manager: manager.name.to_owned(),
            operation: operation.as_str().to_owned(),
            subresource: manager.subresource.to_owned(),
            api_version: manager.api_version.to_owned(),
            time: now_rfc3339(),
            fields,
        }),
    }
}

/// Fields another manager owns that applying `config` over `current` would change:
/// `(entry index, owned field, applied field)`.
fn conflicts(
    entries: &[Entry],
    manager: &str,
    current: &Value,
    config: &Value,
    applied: &BTreeSet<Path>,
) -> Vec<(usize, Path, Path)> {
    let mut found = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if entry.manager == manager {
            continue;
        }
        for owned in &entry.fields {
            for field in applied.iter().filter(|f| related(f, owned)) {
                if !covers(get(current, field), get(config, field)) {
                    found.push((i, owned.clone(), field.clone()));
                }
            }
        }
    }
    found
}

/// The result of applying `config` as `manager` over `current` (None: the object is new), with
/// `managedFields` updated; or the conflicts as 409 causes when not forced.
pub fn apply(
    current: Option<&Value>,
    config: &Value,
    manager: &Manager<'_>,
    force: bool,
) -> Result<Value, Vec<Cause>> {
    let empty = json!({});
    let current = current.unwrap_or(&empty);
    let mut entries = entries(current);
    let applied = leaves(config);
    let found = conflicts(&entries, manager.name, current, config, &applied);
    if !found.is_empty() && !force {
        let mut causes: Vec<Cause> = found
            .iter()
            .map(|(i, _, field)| Cause {
                reason: "FieldManagerConflict",
                message: format!(
                    "conflict with {:?} using {}",
                    entries[*i].manager, entries[*i].api_version
                ),
                field: dotted(field),
            })
            .collect();
        causes.dedup();
        return Err(causes);
    }
    for (i, owned, _) in &found {
        entries[*i].fields.remove(owned);
    }
    let mut next = current.clone();
    let before = owned_by(&entries, manager, Operation::Apply);
    for dropped in before.difference(&applied) {
        let kept_by_other = entries
            .iter()
            .filter(|e| !e.is(manager, Operation::Apply))
            .any(|e| e.fields.iter().any(|f| related(f, dropped)));
        if !kept_by_other {
            remove(&mut next, dropped);
        }
    }
    for field in &applied {
        if let Some(value) = get(config, field)
            && !covers(get(&next, field), Some(value))
        {
            set(&mut next, field, value.clone());
        }
    }
    set_entry(&mut entries, manager, Operation::Apply, applied);
    write_entries(&mut next, entries);
    Ok(next)
}

/// Records a non-apply write by `manager`: it owns the fields it changed (taken from everyone),
/// and fields that are gone are owned by no one. `current` is None for a create.
pub fn record_update(current: Option<&Value>, next: &mut Value, manager: &Manager<'_>) {
    let empty = json!({});
    let before = current.unwrap_or(&empty);
    // managedFields the request itself changed are taken as sent (kubectl rewrites them when it
    // moves client-side-applied fields to server-side apply).
    let sent = next.pointer("/metadata/managedFields");
    let mut entries = if sent.is_some() && sent != before.pointer("/metadata/managedFields") {
        entries(next)
    } else {
        entries(before)
    };
    let now = leaves(next);
    let changed: BTreeSet<Path> = now
        .iter()
        .filter(|f| get(before, f) != get(next, f))
        .cloned()
        .collect();
    for entry in &mut entries {
        entry
            .fields
            .retain(|f| get(next, f).is_some() && !changed.iter().any(|c| related(c, f)));
    }
    let mut mine = owned_by(&entries, manager, Operation::Update);
    mine.extend(changed);
    set_entry(&mut entries, manager, Operation::Update, mine);
    write_entries(next, entries);
}

/// The manager a request without `fieldManager` gets: the User-Agent's product, as the real
/// server derives it (`kubectl/v1.33.1 (linux/amd64) ...` → `kubectl`).
pub fn manager_from_user_agent(user_agent: &str) -> String {
    let product = user_agent.split('/').next().unwrap_or("").trim();
    product.chars().take(128).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn main(name: &str) -> Manager<'_> {
        Manager {
            name,
            api_version: "v1",
            subresource: "",
        }
    }

    #[test]
    fn a_status_apply_keeps_its_managers_main_fields() {
        let svc = json!({"metadata": {"name": "a"}, "spec": {"type": "LoadBalancer"}});
        let applied = apply(None, &svc, &main("ctl"), false).expect("applies");
        let status_manager = Manager {
            subresource: "status",
            ..main("ctl")
        };
        let status = json!({"metadata": {"name": "a"}, "status": {"ready": true}});
        let both = apply(Some(&applied), &status, &status_manager, false).expect("applies");
        assert_eq!(both["spec"]["type"], "LoadBalancer");
        let entries = both["metadata"]["managedFields"]
            .as_array()
            .expect("entries");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1]["subresource"], "status");
        assert_eq!(entries[0]["fieldsV1"], json!({"f:spec": {"f:type": {}}}));
    }

    fn cm(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": data})
    }

    #[test]
    fn an_apply_drops_what_its_manager_no_longer_applies() {
        let first =
            apply(None, &cm(json!({"x": "1", "y": "2"})), &main("ci"), false).expect("applies");
        let second =
            apply(Some(&first), &cm(json!({"x": "1"})), &main("ci"), false).expect("applies");
        assert_eq!(second["data"], json!({"x": "1"}));
        assert_eq!(
            second["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:data": {"f:x": {}}})
        );
    }

    #[test]
    fn another_managers_field_conflicts_unless_forced_or_unchanged() {
        let mut object = cm(json!({"x": "1"}));
        record_update(None, &mut object, &main("kubectl-edit"));
        let same = apply(Some(&object), &cm(json!({"x": "1"})), &main("ci"), false);
        assert!(same.is_ok(), "the same value is shared, not a conflict");
        let causes = apply(Some(&object), &cm(json!({"x": "2"})), &main("ci"), false)
            .expect_err("conflicts");
        assert_eq!(
            causes,
            vec![Cause {
                reason: "FieldManagerConflict",
                message: "conflict with \"kubectl-edit\" using v1".into(),
                field: ".data.x".into(),
            }]
        );
        let forced =
            apply(Some(&object), &cm(json!({"x": "2"})), &main("ci"), true).expect("forced");
        assert_eq!(forced["data"]["x"], "2");
        let managers: Vec<&str> = forced["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["manager"].as_str())
            .collect();
        assert_eq!(managers, vec!["ci"], "the editor lost its only field");
    }

    #[test]
    fn a_field_another_manager_still_owns_is_not_removed() {
        let applied = apply(None, &cm(json!({"x": "1"})), &main("ci"), false).expect("applies");
        let shared =
            apply(Some(&applied), &cm(json!({"x": "1"})), &main("ops"), false).expect("shares x");
        let without_data =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
        let dropped = apply(Some(&shared), &without_data, &main("ci"), false).expect("applies");
        assert_eq!(dropped["data"]["x"], "1", "ops still applies it");
    }

    #[test]
    fn server_defaults_inside_an_applied_list_are_no_change() {
        let live = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}]}});
        assert!(covers(
            Some(&live),
            Some(&json!({"spec": {"ports": [{"port": 80}]}}))
        ));
        assert!(!covers(
            Some(&live),
            Some(&json!({"spec": {"ports": [{"port": 81}]}}))
        ));
        assert!(!covers(Some(&live), Some(&json!({"spec": {"ports": []}}))));
    }

    #[test]
    fn lists_are_atomic_and_metadata_is_owned_only_where_clients_write() {
        let object = json!({"metadata": {"name": "a", "uid": "u", "labels": {"app": "x"}},
                            "spec": {"ports": [{"port": 80}]}});
        let fields: Vec<String> = leaves(&object).iter().map(|p| dotted(p)).collect();
        assert_eq!(fields, vec![".metadata.labels.app", ".spec.ports"]);
        assert_eq!(
            manager_from_user_agent("kubectl/v1.33.1 (linux/amd64)"),
            "kubectl"
        );
    }
}
