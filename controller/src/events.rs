//! `events`: the controller's Kubernetes Events, through a bounded queue to a task of their own
//! (the speaker's pattern), so that a slow API server never holds up the next Service's
//! EXTERNAL-IP and a burst cannot grow memory without bound: beyond [`EVENT_QUEUE`] waiting
//! Events, new ones are dropped and counted. Each Event is created once (no `Recorder` cache:
//! it kept every Event for 6 minutes, tens of MB at 10k Services).

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::mpsc;

use crate::lease::Leadership;
use crate::metrics::Metrics;
use crate::plan::{EventType, PlannedEvent};

/// Events waiting to be published; beyond this, new ones are dropped.
pub const EVENT_QUEUE: usize = 1024;

/// What the controller reports as the Event's `action`.
const ACTION: &str = "Allocate";

/// The sending end: cheap to clone, never waits.
#[derive(Debug, Clone)]
pub struct EventQueue {
    queue: mpsc::Sender<QueuedEvent>,
    metrics: std::sync::Arc<Metrics>,
}

/// An Event waiting to be published.
#[derive(Debug)]
struct QueuedEvent {
    regarding: ObjectReference,
    planned: PlannedEvent,
}

impl EventQueue {
    /// A queue and the task that publishes it as `instance`; run the task for as long as the
    /// controller runs. Events are published only while `leadership` says we lead.
    pub fn new(
        client: Client,
        instance: String,
        leadership: Leadership,
        metrics: std::sync::Arc<Metrics>,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (queue, receiver) = mpsc::channel(EVENT_QUEUE);
        let publisher = publish(client, instance, receiver, leadership, metrics.clone());
        (EventQueue { queue, metrics }, publisher)
    }

    /// Queues `planned` about `regarding`; a full queue drops it.
    pub fn record(&self, regarding: ObjectReference, planned: PlannedEvent) {
        let reason = planned.reason;
        if self
            .queue
            .try_send(QueuedEvent { regarding, planned })
            .is_err()
        {
            self.metrics.events_dropped.inc();
            tracing::debug!(reason, "Event queue full; Event dropped");
        }
    }
}

/// Publishes queued Events one at a time as `events.k8s.io/v1` Events.
async fn publish(
    client: Client,
    instance: String,
    mut queue: mpsc::Receiver<QueuedEvent>,
    leadership: Leadership,
    metrics: std::sync::Arc<Metrics>,
) {
    while let Some(queued) = queue.recv().await {
        if !leadership.is_leading() {
            continue;
        }
        let namespace = queued
            .regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let event = event(&instance, queued, k8s_openapi::jiff::Timestamp::now());
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        let result = api.create(&PostParams::default(), &event).await;
        metrics.count_write(result.is_ok());
        if let Err(error) = result {
            tracing::debug!(%error, "Event not recorded");
        }
    }
}

/// The Event object for `queued`, made at `now`. Pure.
fn event(instance: &str, queued: QueuedEvent, now: k8s_openapi::jiff::Timestamp) -> Event {
    let QueuedEvent { regarding, planned } = queued;
    Event {
        metadata: ObjectMeta {
            // client-go's naming: the object's name and the time in hex nanoseconds.
            name: Some(format!(
                "{}.{:x}",
                regarding.name.as_deref().unwrap_or("object"),
                now.as_nanosecond()
            )),
            namespace: regarding.namespace.clone(),
            ..ObjectMeta::default()
        },
        action: Some(ACTION.to_owned()),
        reason: Some(planned.reason.to_owned()),
        note: Some(planned.message),
        type_: Some(
            match planned.type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .to_owned(),
        ),
        event_time: Some(MicroTime(now)),
        regarding: Some(regarding),
        reporting_controller: Some("ferrolb-controller".to_owned()),
        reporting_instance: Some(instance.to_owned()),
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_the_service_the_reason_and_the_reporting_replica() {
        let regarding = ObjectReference {
            kind: Some("Service".into()),
            namespace: Some("shop".into()),
            name: Some("web".into()),
            ..ObjectReference::default()
        };
        let planned = PlannedEvent {
            type_: EventType::Warning,
            reason: "AllocationFailed",
            message: "no available IPs".into(),
        };
        let now = k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).expect("time");
        let event = event("replica-a", QueuedEvent { regarding, planned }, now);
        assert_eq!(event.metadata.namespace.as_deref(), Some("shop"));
        assert!(
            event
                .metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("web."))
        );
        assert_eq!(event.reason.as_deref(), Some("AllocationFailed"));
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert_eq!(event.note.as_deref(), Some("no available IPs"));
        assert_eq!(event.reporting_instance.as_deref(), Some("replica-a"));
        assert_eq!(event.regarding.and_then(|r| r.name).as_deref(), Some("web"));
    }

    #[tokio::test]
    async fn a_full_queue_drops_new_events_instead_of_waiting() {
        let metrics = std::sync::Arc::new(Metrics::new().expect("metrics"));
        let (queue, receiver) = mpsc::channel(1);
        let queue = EventQueue {
            queue,
            metrics: metrics.clone(),
        };
        let planned = PlannedEvent {
            type_: EventType::Normal,
            reason: "IPAllocated",
            message: String::new(),
        };
        queue.record(ObjectReference::default(), planned.clone());
        queue.record(ObjectReference::default(), planned);
        assert_eq!(metrics.events_dropped.get(), 1);
        drop(receiver);
    }
}
