//! Deletion as the API server does it: an object with finalizers only gets a deletionTimestamp
//! (and goes when an update empties its finalizers); a namespace turns Terminating, deletes its
//! content, and goes once it is empty.

use serde_json::{Value, json};

use super::{EventType, Inner, ObjectKey, Preconditions, Store};
use crate::builtin;
use crate::error::ApiError;
use crate::meta::{has_finalizers, meta_mut, meta_str, now_rfc3339};

impl Store {
    /// Deletes an object: one with finalizers only gets a deletionTimestamp (and is removed when
    /// an update empties its finalizers); a namespace deletes its content first.
    pub fn delete(
        &self,
        key: &ObjectKey,
        preconditions: &Preconditions,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let current = inner
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&key.group, &key.resource, &key.name))?;
        preconditions.check(key, &current)?;
        let is_namespace = key.group.is_empty() && key.resource == "namespaces";
        if is_namespace {
            let content: Vec<ObjectKey> = inner
                .objects
                .keys()
                .filter(|k| k.namespace == key.name)
                .cloned()
                .collect();
            let marked = inner.mark_deleting(self, key, current.clone(), true);
            for k in content {
                inner.delete_one(self, &k);
            }
            return Ok(inner.finish_namespace(self, &key.name).unwrap_or(marked));
        }
        Ok(inner.delete_one(self, key).unwrap_or(current))
    }

    /// Removes every object of a resource (a deleted CRD's custom resources).
    pub fn remove_all(&self, group: &str, resource: &str) {
        let mut inner = self.lock();
        let keys: Vec<ObjectKey> = inner
            .objects
            .keys()
            .filter(|k| k.group == group && k.resource == resource)
            .cloned()
            .collect();
        for key in keys {
            if let Some(object) = inner.objects.get(&key).cloned() {
                inner.remove(self, &key, object);
            }
        }
    }
}

impl Inner {
    /// Deletes one object (finalizers respected); returns its final or marked state.
    pub(super) fn delete_one(&mut self, store: &Store, key: &ObjectKey) -> Option<Value> {
        let current = self.objects.get(key).cloned()?;
        if has_finalizers(&current) {
            Some(self.mark_deleting(store, key, current, false))
        } else {
            Some(self.remove(store, key, current))
        }
    }

    /// Sets deletionTimestamp (once); a namespace also turns `Terminating`.
    fn mark_deleting(
        &mut self,
        store: &Store,
        key: &ObjectKey,
        current: Value,
        namespace: bool,
    ) -> Value {
        if !meta_str(&current, "deletionTimestamp").is_empty() {
            return current;
        }
        let mut next = current.clone();
        self.rv += 1;
        let rv = self.rv;
        let generation = next
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let meta = meta_mut(&mut next);
        meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        if builtin::has_generation(&key.group, &key.resource) {
            meta.insert("generation".into(), json!(generation + 1));
        }
        if namespace && let Some(map) = next.as_object_mut() {
            map.insert("status".into(), json!({"phase": "Terminating"}));
        }
        self.objects.insert(key.clone(), next.clone());
        store.emit(
            self,
            EventType::Modified,
            key.clone(),
            next.clone(),
            Some(current),
        );
        next
    }

    /// Removes an object for good, then finishes its namespace if that was the last thing in it.
    pub(super) fn remove(&mut self, store: &Store, key: &ObjectKey, mut last: Value) -> Value {
        self.objects.remove(key);
        self.rv += 1;
        let rv = self.rv;
        meta_mut(&mut last).insert("resourceVersion".into(), json!(rv.to_string()));
        store.emit(self, EventType::Deleted, key.clone(), last.clone(), None);
        if !key.namespace.is_empty() {
            self.finish_namespace(store, &key.namespace);
        }
        last
    }

    /// Removes a terminating namespace once nothing is left in it.
    fn finish_namespace(&mut self, store: &Store, namespace: &str) -> Option<Value> {
        let key = ObjectKey::namespace_key(namespace);
        let ns = self.objects.get(&key)?.clone();
        let terminating = !meta_str(&ns, "deletionTimestamp").is_empty();
        let empty = !self.objects.keys().any(|k| k.namespace == namespace);
        if terminating && empty && !has_finalizers(&ns) {
            Some(self.remove(store, &key, ns))
        } else {
            None
        }
    }
}
