//! Deletion propagation, the garbage collector's visible effect: when an object is deleted, the
//! objects whose `ownerReferences` name its uid are deleted too (`Background`, the default, and
//! `Foreground`) or released (`Orphan`: the reference is removed). A dependent that still has
//! another live owner only loses the dangling reference, as the real GC does.
//!
//! Simplified: it runs synchronously inside the DELETE, so dependents are gone when it answers
//! (the real GC is asynchronous), `Foreground` deletes dependents first without the owner's
//! `foregroundDeletion` finalizer phase, and an owner kept by finalizers does not cascade when it
//! is removed later.

use std::collections::BTreeSet;

use serde_json::Value;

use super::error::ApiError;
use super::meta::meta_str;
use super::routing::Query;
use super::storage::{ObjectKey, Preconditions, Store};

/// `DeleteOptions.propagationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

impl Propagation {
    /// The policy a delete asks for: the body's `propagationPolicy` (or the deprecated
    /// `orphanDependents`), else the query's, else `Background`.
    pub fn requested(options: &Value, query: &Query) -> Result<Self, ApiError> {
        let named = options
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .or_else(|| query.get("propagationPolicy"));
        match named {
            Some("Background") => Ok(Self::Background),
            Some("Foreground") => Ok(Self::Foreground),
            Some("Orphan") => Ok(Self::Orphan),
            Some(other) => Err(ApiError::BadRequest(format!(
                "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            ))),
            None if options.get("orphanDependents") == Some(&Value::Bool(true)) => Ok(Self::Orphan),
            None => Ok(Self::Background),
        }
    }
}

fn owner_uids(object: &Value) -> impl Iterator<Item = &str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
}

/// The objects that name `uid` as an owner.
fn dependents(store: &Store, uid: &str) -> Vec<(ObjectKey, Value)> {
    store.find(|object| owner_uids(object).any(|u| u == uid))
}

fn uid_exists(store: &Store, uid: &str) -> bool {
    !store
        .find(|object| meta_str(object, "uid") == uid)
        .is_empty()
}

/// Removes the references to `uid` from `key`'s owners.
fn release(store: &Store, key: &ObjectKey, uid: &str) {
    // A dependent changed or deleted meanwhile needs nothing more.
    let _ = store.update(key, false, |current| {
        let mut next = current.clone();
        if let Some(refs) = next
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
        }
        Ok(next)
    });
}

/// Deletes `key` after (Foreground) or before (Background) its dependents, or releases them
/// (Orphan). Returns the object as the delete left it.
pub fn delete(
    store: &Store,
    key: &ObjectKey,
    preconditions: &Preconditions,
    propagation: Propagation,
) -> Result<Value, ApiError> {
    let uid = store
        .get(key)
        .map(|o| meta_str(&o, "uid").to_owned())
        .unwrap_or_default();
    let mut visited = BTreeSet::new();
    if propagation == Propagation::Foreground {
        // Preconditions are checked before anything else goes.
        if let Some(current) = store.get(key) {
            preconditions.check(key, &current)?;
        }
        collect(store, &uid, propagation, &mut visited);
    }
    let last = store.delete(key, preconditions)?;
    if store.get(key).is_none() {
        match propagation {
            Propagation::Orphan => {
                for (dependent, _) in dependents(store, &uid) {
                    release(store, &dependent, &uid);
                }
            }
            _ => collect(store, &uid, propagation, &mut visited),
        }
    }
    Ok(last)
}

/// Deletes (or releases) what the gone owner `uid` held, depth first.
fn collect(store: &Store, uid: &str, propagation: Propagation, visited: &mut BTreeSet<String>) {
    if uid.is_empty() || !visited.insert(uid.to_owned()) {
        return;
    }
    for (key, object) in dependents(store, uid) {
        let other_owner_alive = owner_uids(&object)
            .filter(|u| *u != uid)
            .any(|u| uid_exists(store, u));
        if other_owner_alive {
            release(store, &key, uid);
            continue;
        }
        let own_uid = meta_str(&object, "uid").to_owned();
        if propagation == Propagation::Foreground {
            collect(store, &own_uid, propagation, visited);
        }
        if store.delete(&key, &Preconditions::default()).is_ok() && store.get(&key).is_none() {
            collect(store, &own_uid, propagation, visited);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn query(text: &str) -> Query {
        Query::parse(Some(text))
    }

    #[test]
    fn the_body_wins_over_the_query_and_background_is_the_default() {
        let q = query("propagationPolicy=Foreground");
        assert_eq!(
            Propagation::requested(&json!({"propagationPolicy": "Orphan"}), &q).ok(),
            Some(Propagation::Orphan)
        );
        assert_eq!(
            Propagation::requested(&json!({}), &q).ok(),
            Some(Propagation::Foreground)
        );
        assert_eq!(
            Propagation::requested(&json!({"orphanDependents": true}), &query("")).ok(),
            Some(Propagation::Orphan)
        );
        assert_eq!(
            Propagation::requested(&json!({}), &query("")).ok(),
            Some(Propagation::Background)
        );
        assert!(Propagation::requested(&json!({"propagationPolicy": "Later"}), &q).is_err());
    }
}
