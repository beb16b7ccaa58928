//! The object store: every object of every kind, one global resourceVersion counter, the
//! metadata the server owns (uid, creationTimestamp, generation where the kind has one,
//! resourceVersion, deletionTimestamp), optimistic concurrency, finalizer-aware deletion,
//! namespace lifecycle, and the window of recent change events that watches replay from.
//!
//! It knows nothing about HTTP, schemas or patches: callers hand it finished objects (or a closure
//! that computes one from the current object under the store's lock).
//!
//! - this module: keys, the objects, create/update, optimistic concurrency;
//! - `deletion`: finalizer-aware deletion and the namespace lifecycle;
//! - `events`: the window of change events and the feeds watches start from.

mod deletion;
mod events;

pub use events::{EventType, StoredEvent, WatchFeed};

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::builtin;
use super::error::ApiError;
use super::meta::{IdGen, has_finalizers, meta_mut, meta_str, now_rfc3339};

/// Where an object lives. `namespace` is empty for cluster-scoped kinds. Objects are stored once
/// per resource, whatever version wrote them (conversion strategy `None`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub group: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(group: &str, resource: &str, namespace: &str, name: &str) -> Self {
        Self {
            group: group.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn namespace_key(namespace: &str) -> Self {
        Self::new("", "namespaces", "", namespace)
    }
}

/// Conditions a delete request may carry (`DeleteOptions.preconditions`).
#[derive(Debug, Clone, Default)]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

impl Preconditions {
    /// 409 Conflict when `current` (stored at `key`) is not the object the request meant.
    pub fn check(&self, key: &ObjectKey, current: &Value) -> Result<(), ApiError> {
        let mismatch = |want: &Option<String>, field: &str| {
            want.as_deref()
                .is_some_and(|w| !w.is_empty() && w != meta_str(current, field))
        };
        if mismatch(&self.uid, "uid") || mismatch(&self.resource_version, "resourceVersion") {
            return Err(ApiError::conflict(&key.group, &key.resource, &key.name));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Inner {
    /// The last resourceVersion handed out; every write takes the next one.
    rv: u64,
    objects: BTreeMap<ObjectKey, Value>,
    /// Recent events, oldest first, at most `window_capacity` long.
    window: VecDeque<Arc<StoredEvent>>,
    window_capacity: usize,
    /// Every event with an RV at or below this has left the window: watches from older RVs get 410.
    compacted_rv: u64,
    ids: IdGen,
}

/// The store; share it behind an `Arc`. The lock is never held across an await.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<StoredEvent>>,
}

/// Everything of an object except metadata and status: a change here bumps `generation`.
fn spec_part(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    copy
}

fn without_rv(object: &Value) -> Value {
    let mut copy = object.clone();
    meta_mut(&mut copy).remove("resourceVersion");
    copy
}

impl Store {
    /// A store that keeps the last `window_capacity` events for watches to resume from.
    pub fn new(window_capacity: usize, seed: u64) -> Self {
        let (events, _) = broadcast::channel(4096);
        Self {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: BTreeMap::new(),
                window: VecDeque::new(),
                window_capacity: window_capacity.max(1),
                compacted_rv: 0,
                ids: IdGen::new(seed),
            }),
            events,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every write is one insert), so a
        // poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Value> {
        self.lock().objects.get(key).cloned()
    }

    /// Every object `keep` accepts, with its key (a full scan: for the rare cross-resource
    /// questions, such as which objects an owner has).
    pub fn find(&self, keep: impl Fn(&Value) -> bool) -> Vec<(ObjectKey, Value)> {
        let inner = self.lock();
        inner
            .objects
            .iter()
            .filter(|(_, object)| keep(object))
            .map(|(key, object)| (key.clone(), object.clone()))
            .collect()
    }

    /// All objects of a resource (in one namespace, or all), ordered by namespace and name, with
    /// the RV they are a snapshot of.
    pub fn list(&self, group: &str, resource: &str, namespace: Option<&str>) -> (u64, Vec<Value>) {
        let inner = self.lock();
        (inner.rv, inner.select(group, resource, namespace))
    }

    /// Stores a new object. Fills in name (from generateName), namespace, uid,
    /// creationTimestamp, generation and resourceVersion.
    pub fn create(
        &self,
        group: &str,
        resource: &str,
        namespace: &str,
        mut object: Value,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        if !namespace.is_empty() {
            match inner.objects.get(&ObjectKey::namespace_key(namespace)) {
                None => return Err(ApiError::not_found("", "namespaces", namespace)),
                Some(ns) if !meta_str(ns, "deletionTimestamp").is_empty() => {
                    return Err(ApiError::Forbidden(format!(
                        "{} \"{}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                        super::error::qualified(group, resource),
                        meta_str(&object, "name")
                    )));
                }
                Some(_) => {}
            }
        }
        let mut name = meta_str(&object, "name").to_owned();
        if name.is_empty() {
            let prefix = meta_str(&object, "generateName").to_owned();
            loop {
                name = format!("{prefix}{}", inner.ids.name_suffix());
                if !inner
                    .objects
                    .contains_key(&ObjectKey::new(group, resource, namespace, &name))
                {
                    break;
                }
            }
        }
        let key = ObjectKey::new(group, resource, namespace, &name);
        if inner.objects.contains_key(&key) {
            return Err(ApiError::already_exists(group, resource, &name));
        }
        inner.rv += 1;
        let rv = inner.rv;
        let uid = inner.ids.uid();
        let meta = meta_mut(&mut object);
        meta.insert("name".into(), json!(name));
        if namespace.is_empty() {
            meta.remove("namespace");
        } else {
            meta.insert("namespace".into(), json!(namespace));
        }
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        if builtin::has_generation(group, resource) {
            meta.insert("generation".into(), json!(1));
        }
        for owned in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(owned);
        }
        inner.objects.insert(key.clone(), object.clone());
        self.emit(&mut inner, EventType::Added, key, object.clone(), None);
        Ok(object)
    }

    /// Replaces an object with what `change` computes from the current one, all under the lock.
    /// A non-empty `metadata.resourceVersion` in the result must equal the stored one (409
    /// Conflict otherwise). A change that alters nothing writes nothing. Removing the last
    /// finalizer of an object being deleted removes the object. With `dry_run` nothing is
    /// written and the would-be object is returned.
    pub fn update(
        &self,
        key: &ObjectKey,
        dry_run: bool,
        change: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let current = inner
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&key.group, &key.resource, &key.name))?;
        let mut next = change(&current)?;
        let requested_rv = meta_str(&next, "resourceVersion");
        if !requested_rv.is_empty() && requested_rv.parse::<u64>().is_err() {
            return Err(ApiError::Internal(format!(
                "strconv.ParseUint: parsing {requested_rv:?}: invalid syntax"
            )));
        }
        if !requested_rv.is_empty() && requested_rv != meta_str(&current, "resourceVersion") {
            return Err(ApiError::conflict(&key.group, &key.resource, &key.name));
        }
        {
            let current_meta = current.get("metadata").cloned().unwrap_or_default();
            let meta = meta_mut(&mut next);
            for owned in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "resourceVersion",
            ] {
                match current_meta.get(owned) {
                    Some(v) => meta.insert(owned.into(), v.clone()),
                    None => meta.remove(owned),
                };
            }
        }
        let generation = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        if builtin::has_generation(&key.group, &key.resource)
            && spec_part(&next) != spec_part(&current)
        {
            meta_mut(&mut next).insert("generation".into(), json!(generation + 1));
        }
        if dry_run {
            return Ok(next);
        }
        let deleting = !meta_str(&current, "deletionTimestamp").is_empty();
        if deleting && !has_finalizers(&next) {
            return Ok(inner.remove(self, key, next));
        }
        if without_rv(&next) == without_rv(&current) {
            return Ok(current);
        }
        inner.rv += 1;
        let rv = inner.rv;
        meta_mut(&mut next).insert("resourceVersion".into(), json!(rv.to_string()));
        inner.objects.insert(key.clone(), next.clone());
        self.emit(
            &mut inner,
            EventType::Modified,
            key.clone(),
            next.clone(),
            Some(current),
        );
        Ok(next)
    }
}

impl Inner {
    fn select(&self, group: &str, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        let start = ObjectKey::new(group, resource, namespace.unwrap_or(""), "");
        self.objects
            .range(start..)
            .take_while(|(k, _)| {
                k.group == group
                    && k.resource == resource
                    && namespace.is_none_or(|ns| k.namespace == ns)
            })
            .map(|(_, v)| v.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_ns() -> Store {
        let store = Store::new(10, 7);
        store
            .create("", "namespaces", "", json!({"metadata": {"name": "ns"}}))
            .expect("namespace created");
        store
    }

    #[test]
    fn a_stale_resource_version_is_a_conflict() {
        let store = store_with_ns();
        let created = store
            .create(
                "",
                "configmaps",
                "ns",
                json!({"metadata": {"name": "a"}, "data": {"k": "1"}}),
            )
            .expect("created");
        let key = ObjectKey::new("", "configmaps", "ns", "a");
        let mut edit = created.clone();
        edit["data"]["k"] = json!("2");
        store
            .update(&key, false, |_| Ok(edit.clone()))
            .expect("first update wins");
        let err = store
            .update(&key, false, |_| Ok(edit.clone()))
            .expect_err("stale update");
        assert_eq!(err.code(), 409);
    }

    #[test]
    fn finalizers_hold_an_object_until_they_are_removed() {
        let store = store_with_ns();
        store
            .create(
                "",
                "configmaps",
                "ns",
                json!({"metadata": {"name": "a", "finalizers": ["x/y"]}}),
            )
            .expect("created");
        let key = ObjectKey::new("", "configmaps", "ns", "a");
        let marked = store
            .delete(&key, &Preconditions::default())
            .expect("delete accepted");
        assert!(!meta_str(&marked, "deletionTimestamp").is_empty());
        assert!(store.get(&key).is_some());
        store
            .update(&key, false, |cur| {
                let mut next = cur.clone();
                next["metadata"]["finalizers"] = json!([]);
                Ok(next)
            })
            .expect("finalizer removed");
        assert!(store.get(&key).is_none());
    }

    #[test]
    fn a_watch_from_an_rv_older_than_the_window_is_expired() {
        let store = store_with_ns();
        for i in 0..20 {
            store
                .create(
                    "",
                    "configmaps",
                    "ns",
                    json!({"metadata": {"name": format!("c{i}")}}),
                )
                .expect("created");
        }
        let err = store
            .watch("", "configmaps", None, Some(2))
            .expect_err("too old");
        assert_eq!(err.code(), 410);
        let feed = store
            .watch("", "configmaps", None, Some(store.resource_version() - 3))
            .expect("recent enough");
        assert_eq!(feed.backlog.len(), 3);
    }
}
