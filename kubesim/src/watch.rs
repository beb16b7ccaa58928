//! Watch streams: turns a [`WatchFeed`] into newline-delimited JSON watch events (`ADDED`,
//! `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR`), with label/field selection (an object leaving the
//! selection is sent as `DELETED`, one entering it as `ADDED`), the initial-events-end bookmark of
//! streaming lists, periodic bookmarks and `timeoutSeconds`.
//!
//! Each watch is one task that owns its feed and writes into a channel the HTTP body reads from;
//! it ends at the timeout, when the client goes away, or when it falls too far behind (the
//! client then resumes from the last RV it saw, or re-lists after 410).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, MissedTickBehavior};

use super::error::ApiError;
use super::meta::meta_str;
use super::resources::Resolved;
use super::selectors::Selectors;
use super::storage::{EventType, StoredEvent, WatchFeed};
use super::tables::{self, View};

/// What one watch request asked for.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    pub group: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub selectors: Selectors,
    /// `apiVersion` and `kind` written on every object sent (the version the client asked for).
    pub api_version: String,
    pub kind: String,
    pub allow_bookmarks: bool,
    /// `sendInitialEvents=true`: end the initial ADDED events with an annotated BOOKMARK.
    pub send_initial_events: bool,
    pub timeout: Duration,
    pub bookmark_interval: Duration,
    /// How the client sees objects: whole, as one-row Tables (`kubectl get -w`), or metadata.
    pub view: View,
    /// The watched type, for Table columns.
    pub resolved: Resolved,
}

/// One encoded watch event line.
fn line(event_type: &str, object: &Value) -> Bytes {
    let mut text = json!({"type": event_type, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

/// The single `ERROR` event a watch from a too-old RV gets.
pub fn error_line(error: &ApiError) -> Bytes {
    line("ERROR", &error.to_status())
}

impl WatchRequest {
    /// `stored` as this watch's client sees it.
    fn present(&self, stored: &Value) -> Value {
        let mut out = self.resolved.info.from_storage(stored).into_owned();
        if let Some(map) = out.as_object_mut() {
            map.insert("apiVersion".into(), json!(self.api_version));
            map.insert("kind".into(), json!(self.kind));
        }
        match self.view {
            View::Table(include) => {
                let rv = meta_str(&out, "resourceVersion").parse().unwrap_or(0);
                tables::table(&self.resolved, &[out], rv, None, include)
            }
            View::Metadata => tables::metadata_only(&out),
            View::Object => out,
        }
    }

    /// Whether `stored` is in this watch's selection (selectors see the client's view).
    fn selects(&self, stored: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| meta_str(stored, "namespace") == ns)
            && self
                .selectors
                .matches(&self.resolved.info.from_storage(stored))
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_events_end && let Some(map) = metadata.as_object_mut() {
            map.insert(
                "annotations".into(),
                json!({"k8s.io/initial-events-end": "true"}),
            );
        }
        line(
            "BOOKMARK",
            &json!({"kind": self.kind, "apiVersion": self.api_version, "metadata": metadata}),
        )
    }

    /// The line a stored event becomes for this watch, if any.
    fn translate(&self, event: &StoredEvent) -> Option<Bytes> {
        if event.key.group != self.group || event.key.resource != self.resource {
            return None;
        }
        let now = self.selects(&event.object);
        let before = event.previous.as_ref().is_some_and(|p| self.selects(p));
        let event_type = match (event.event_type, before, now) {
            (EventType::Modified, true, true) => EventType::Modified,
            (EventType::Modified, false, true) => EventType::Added,
            (EventType::Modified, true, false) => EventType::Deleted,
            (EventType::Modified, false, false) => return None,
            (other, _, true) => other,
            (_, _, false) => return None,
        };
        if event_type == event.event_type && matches!(self.view, View::Object) {
            let (api_version, bytes) = event.encoded.get_or_init(|| {
                let bytes = line(event_type.as_str(), &self.present(&event.object));
                (self.api_version.clone(), bytes)
            });
            if *api_version == self.api_version {
                return Some(bytes.clone());
            }
        }
        Some(line(event_type.as_str(), &self.present(&event.object)))
    }
}

/// Starts the task that feeds one watch; returns the receiving end for the response body.
pub fn spawn(request: WatchRequest, feed: WatchFeed) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(run(request, feed, tx));
    rx
}

async fn run(request: WatchRequest, feed: WatchFeed, tx: mpsc::Sender<Bytes>) {
    let deadline = Instant::now() + request.timeout;
    let WatchFeed {
        rv: start_rv,
        initial,
        backlog,
        mut live,
    } = feed;
    let mut last_rv = start_rv;
    if let Some(objects) = initial {
        for object in objects.iter().filter(|o| request.selects(o)) {
            if tx
                .send(line("ADDED", &request.present(object)))
                .await
                .is_err()
            {
                return;
            }
        }
        if request.send_initial_events
            && request.allow_bookmarks
            && tx.send(request.bookmark(start_rv, true)).await.is_err()
        {
            return;
        }
    }
    for event in &backlog {
        last_rv = last_rv.max(event.rv);
        if let Some(bytes) = request.translate(event)
            && tx.send(bytes).await.is_err()
        {
            return;
        }
    }
    let mut ticker = tokio::time::interval_at(
        Instant::now() + request.bookmark_interval,
        request.bookmark_interval,
    );
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let outgoing = tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return,
            _ = tx.closed() => return,
            _ = ticker.tick(), if request.allow_bookmarks => Some(request.bookmark(last_rv, false)),
            received = live.recv() => match received {
                Ok(event) => relay(&request, &event, start_rv, &mut last_rv),
                // Too far behind, or the server is going away: end the stream; the client
                // resumes from the last RV it saw.
                Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
            },
        };
        if let Some(bytes) = outgoing
            && tx.send(bytes).await.is_err()
        {
            return;
        }
    }
}

fn relay(
    request: &WatchRequest,
    event: &Arc<StoredEvent>,
    start_rv: u64,
    last_rv: &mut u64,
) -> Option<Bytes> {
    if event.rv <= start_rv {
        return None;
    }
    let bytes = request.translate(event);
    if event.key.group == request.group && event.key.resource == request.resource {
        *last_rv = event.rv;
    }
    bytes
}
