//! The window of recent change events: every write emits one, watches replay the ones after
//! their resourceVersion (410 Expired once those have left the window) and then follow the live
//! broadcast.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use super::{Inner, ObjectKey, Store};
use crate::error::ApiError;

/// A watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in the window and sent to watchers.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub rv: u64,
    pub event_type: EventType,
    pub key: ObjectKey,
    /// The object after the change (for DELETED: its last state, with the deletion's RV).
    pub object: Value,
    /// The object before the change, so selector-filtered watches can turn a MODIFIED that leaves
    /// the selection into DELETED.
    pub previous: Option<Value>,
    /// The watch line of this event as most watches send it (whole object, the event's own
    /// type), with the apiVersion it was encoded for: encoded once, shared by every watcher.
    pub encoded: std::sync::OnceLock<(String, bytes::Bytes)>,
}

/// What a watch starts from: the current state (as ADDED events) or the events after an RV.
#[derive(Debug)]
pub struct WatchFeed {
    /// The RV when the feed was taken.
    pub rv: u64,
    /// Objects to announce first, when the watch starts from the current state.
    pub initial: Option<Vec<Value>>,
    /// Kept events after the requested RV, of this resource.
    pub backlog: Vec<Arc<StoredEvent>>,
    /// Later events of every resource (the watcher filters).
    pub live: broadcast::Receiver<Arc<StoredEvent>>,
}

impl Store {
    /// Starts a watch of a resource: from the current state when `after` is None, else from the
    /// events after `after` (410 Expired when they have left the window).
    pub fn watch(
        &self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
        after: Option<u64>,
    ) -> Result<WatchFeed, ApiError> {
        let inner = self.lock();
        let live = self.events.subscribe();
        let (initial, backlog) = match after {
            None => (Some(inner.select(group, resource, namespace)), Vec::new()),
            Some(rv) if rv < inner.compacted_rv => {
                return Err(ApiError::Expired {
                    requested: rv,
                    oldest: inner.compacted_rv + 1,
                });
            }
            Some(rv) => (
                None,
                inner
                    .window
                    .iter()
                    .filter(|e| e.rv > rv && e.key.group == group && e.key.resource == resource)
                    .cloned()
                    .collect(),
            ),
        };
        Ok(WatchFeed {
            rv: inner.rv,
            initial,
            backlog,
            live,
        })
    }

    /// The oldest RV a watch can still resume from.
    pub fn oldest_resumable_rv(&self) -> u64 {
        self.lock().compacted_rv
    }

    pub(super) fn emit(
        &self,
        inner: &mut Inner,
        event_type: EventType,
        key: ObjectKey,
        object: Value,
        previous: Option<Value>,
    ) {
        let event = Arc::new(StoredEvent {
            rv: inner.rv,
            event_type,
            key,
            object,
            previous,
            encoded: std::sync::OnceLock::new(),
        });
        inner.window.push_back(Arc::clone(&event));
        while inner.window.len() > inner.window_capacity {
            if let Some(old) = inner.window.pop_front() {
                inner.compacted_rv = old.rv;
            }
        }
        // No receivers is fine: nobody watches.
        let _ = self.events.send(event);
    }
}
