//! API writes of the speaker: status objects and Events. Each write is one call; callers decide
//! what to write from pure diffs, so nothing here is called at steady state.

use ferrolb_api::config_state::{
    COMPONENT_LABEL, CONFIG_RECONCILER_CONDITION, ConfigState, NODE_NAME_LABEL,
};
use ferrolb_api::types::{
    ConfigurationState, ConfigurationStateSpec, ServiceBGPStatus, ServiceBGPStatusSpec,
    ServiceBGPStatusStatus, ServiceL2Status, ServiceL2StatusSpec, ServiceL2StatusStatus,
};
use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::status::{
    NODE_LABEL, SERVICE_NAME_LABEL, SERVICE_NAMESPACE_LABEL, Write, Written, split_key,
};

/// A status kind the speaker writes, one object per (Service, node).
pub trait StatusKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// Its status type.
    type Status: Serialize + Clone;
    /// `generateName` of new objects (MetalLB's).
    const GENERATE_NAME: &'static str;
    /// A new object with this metadata.
    fn with_meta(metadata: ObjectMeta) -> Self;
    /// Its status, if written.
    fn current_status(&self) -> Option<Self::Status>;
}

impl StatusKind for ServiceL2Status {
    type Status = ServiceL2StatusStatus;
    const GENERATE_NAME: &'static str = "l2-";
    fn with_meta(metadata: ObjectMeta) -> Self {
        ServiceL2Status {
            metadata,
            spec: ServiceL2StatusSpec {},
            status: None,
        }
    }
    fn current_status(&self) -> Option<Self::Status> {
        self.status.clone()
    }
}

impl StatusKind for ServiceBGPStatus {
    type Status = ServiceBGPStatusStatus;
    const GENERATE_NAME: &'static str = "bgp-";
    fn with_meta(metadata: ObjectMeta) -> Self {
        ServiceBGPStatus {
            metadata,
            spec: ServiceBGPStatusSpec {},
            status: None,
        }
    }
    fn current_status(&self) -> Option<Self::Status> {
        self.status.clone()
    }
}

/// The speaker's own Pod (from the downward API): owner of the objects it writes, so they go
/// when the Pod is deleted, as MetalLB's do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
}

/// Writes to the API server on behalf of this node. Events go through a queue to a task of
/// their own, so a slow API server never holds up an announcement.
#[derive(Clone)]
pub struct Writer {
    client: Client,
    namespace: String,
    node: String,
    pod: Option<PodRef>,
    events: mpsc::Sender<QueuedEvent>,
    metrics: Metrics,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("namespace", &self.namespace)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// Events waiting to be published; beyond this, new ones are dropped (and logged).
const EVENT_QUEUE: usize = 1024;

/// Status writes sent at once: a first start at 10k Services writes 20k times, which one at a
/// time takes minutes; client-go's default QPS budget is of the same order.
const STATUS_WRITES_IN_FLIGHT: usize = 16;

/// A status object's name and what it holds after a write (`None`: deleted).
type WrittenObject<S> = (String, Option<(String, S)>);

impl Writer {
    /// Writes into `namespace` as the speaker of `node` running in `pod`; starts the Event
    /// publisher.
    pub fn new(
        client: Client,
        namespace: String,
        node: String,
        pod: Option<PodRef>,
        metrics: Metrics,
    ) -> Self {
        let (events, queue) = mpsc::channel(EVENT_QUEUE);
        tokio::spawn(publish_events(
            client.clone(),
            node.clone(),
            queue,
            metrics.clone(),
        ));
        Self {
            client,
            namespace,
            node,
            pod,
            events,
            metrics,
        }
    }

    /// Carries out status writes, [`STATUS_WRITES_IN_FLIGHT`] at a time, recording each success
    /// in `written`; returns the first failure once the others are done (the caller retries).
    pub async fn statuses<K: StatusKind>(
        &self,
        writes: Vec<Write<K::Status>>,
        written: &mut Written<K::Status>,
    ) -> Result<(), kube::Error>
    where
        K::Status: PartialEq,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut done = futures::stream::iter(writes)
            .map(|write| self.status_write(&api, write))
            .buffer_unordered(STATUS_WRITES_IN_FLIGHT);
        let mut first_error = None;
        while let Some(result) = done.next().await {
            match result {
                Ok(Some((name, object))) => written.record(&name, object),
                Ok(None) => {}
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// One status write; returns the object's name and what it now holds (`None`: deleted).
    async fn status_write<K: StatusKind>(
        &self,
        api: &Api<K>,
        write: Write<K::Status>,
    ) -> Result<Option<WrittenObject<K::Status>>, kube::Error> {
        let kind = K::kind(&());
        let count = || {
            self.metrics
                .api_writes
                .with_label_values(&[kind.as_ref()])
                .inc()
        };
        count();
        match write {
            Write::Create { service, status } => {
                let object = K::with_meta(self.status_meta::<K>(&service));
                let created = api.create(&PostParams::default(), &object).await?;
                let Some(name) = created.meta().name.clone() else {
                    return Ok(None);
                };
                count();
                set_status(api, &name, &status).await?;
                Ok(Some((name, Some((service, status)))))
            }
            Write::Update {
                name,
                service,
                status,
            } => {
                set_status(api, &name, &status).await?;
                Ok(Some((name, Some((service, status)))))
            }
            Write::Delete { name } => {
                match api.delete(&name, &Default::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
                Ok(Some((name, None)))
            }
        }
    }

    fn status_meta<K: StatusKind>(&self, service: &str) -> ObjectMeta {
        let (namespace, name) = split_key(service);
        let labels = [
            (NODE_LABEL, self.node.as_str()),
            (SERVICE_NAME_LABEL, name),
            (SERVICE_NAMESPACE_LABEL, namespace),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        ObjectMeta {
            generate_name: Some(K::GENERATE_NAME.to_owned()),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels),
            owner_references: self.owner(),
            ..ObjectMeta::default()
        }
    }

    fn owner(&self) -> Option<Vec<OwnerReference>> {
        let pod = self.pod.as_ref()?;
        Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            ..OwnerReference::default()
        }])
    }

    /// Name of this node's `ConfigurationState`, as MetalLB names it.
    pub fn config_state_name(&self) -> String {
        crate::cluster::speaker_state_name(&self.node)
    }

    /// What this node's `ConfigurationState` says now; `None` when it does not exist yet.
    pub async fn read_config_state(&self) -> Result<Option<ConfigState>, kube::Error> {
        let api: Api<ConfigurationState> = Api::namespaced(self.client.clone(), &self.namespace);
        let object = api.get_opt(&self.config_state_name()).await?;
        Ok(object.map(|o| {
            o.status
                .as_ref()
                .map(|s| ConfigState::of(CONFIG_RECONCILER_CONDITION, s))
                .unwrap_or_else(|| ConfigState::unknown(CONFIG_RECONCILER_CONDITION))
        }))
    }

    /// Deletes this node's `ConfigurationState` (absent is fine). A speaker leaving on purpose
    /// does this so the others' quorum counts it out at once, instead of when its Pod is gone.
    pub async fn delete_config_state(&self) -> Result<(), kube::Error> {
        let api: Api<ConfigurationState> = Api::namespaced(self.client.clone(), &self.namespace);
        self.metrics
            .api_writes
            .with_label_values(&["ConfigurationState"])
            .inc();
        match api
            .delete(&self.config_state_name(), &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Creates this node's `ConfigurationState` (labelled, owned by the Pod) if `exists` is
    /// false, then writes `state` into its status.
    pub async fn write_config_state(
        &self,
        exists: bool,
        state: &ConfigState,
    ) -> Result<(), kube::Error> {
        let api: Api<ConfigurationState> = Api::namespaced(self.client.clone(), &self.namespace);
        let name = self.config_state_name();
        let count = || {
            self.metrics
                .api_writes
                .with_label_values(&["ConfigurationState"])
                .inc()
        };
        if !exists {
            let labels = [(COMPONENT_LABEL, "speaker"), (NODE_NAME_LABEL, &self.node)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            let object = ConfigurationState {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.namespace.clone()),
                    labels: Some(labels),
                    owner_references: self.owner(),
                    ..ObjectMeta::default()
                },
                spec: ConfigurationStateSpec {},
                status: None,
            };
            count();
            match api.create(&PostParams::default(), &object).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        count();
        let patch = state.status_patch(k8s_openapi::jiff::Timestamp::now());
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
    }

    /// Queues an Event about `object`. Events are best effort: a full queue drops it.
    pub fn event(&self, object: &ObjectReference, warning: bool, reason: &str, note: String) {
        let event = QueuedEvent {
            regarding: object.clone(),
            warning,
            reason: reason.to_owned(),
            note,
        };
        if self.events.try_send(event).is_err() {
            tracing::debug!(reason, "Event queue full; Event dropped");
        }
    }
}

/// An Event waiting to be published.
#[derive(Debug)]
struct QueuedEvent {
    regarding: ObjectReference,
    warning: bool,
    reason: String,
    note: String,
}

/// Publishes queued Events one at a time as `events.k8s.io/v1` Events. Each is created once:
/// kube's `Recorder` keeps every Event it published for 6 minutes to count repeats, which at
/// 10k Services held tens of MB and scanned the whole cache on every publish.
async fn publish_events(
    client: Client,
    node: String,
    mut queue: mpsc::Receiver<QueuedEvent>,
    metrics: Metrics,
) {
    while let Some(queued) = queue.recv().await {
        metrics.api_writes.with_label_values(&["Event"]).inc();
        let reason = queued.reason.clone();
        let event = event_object(queued, &node, k8s_openapi::jiff::Timestamp::now());
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        if let Err(error) = api.create(&PostParams::default(), &event).await {
            tracing::warn!(%error, reason, "could not publish an Event");
        }
    }
}

/// The `events.k8s.io/v1` Event for `queued`, reported by `node`'s speaker at `now`: in the
/// namespace of the object it is about (`default` for cluster-scoped ones), named as client-go
/// names Events (the object's name and the time in hex nanoseconds).
fn event_object(queued: QueuedEvent, node: &str, now: k8s_openapi::jiff::Timestamp) -> Event {
    let namespace = queued
        .regarding
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:x}",
                queued.regarding.name.as_deref().unwrap_or("object"),
                now.as_nanosecond()
            )),
            namespace: Some(namespace),
            ..ObjectMeta::default()
        },
        action: Some(queued.reason.clone()),
        reason: Some(queued.reason),
        note: Some(queued.note),
        type_: Some(if queued.warning { "Warning" } else { "Normal" }.to_owned()),
        event_time: Some(MicroTime(now)),
        regarding: Some(queued.regarding),
        reporting_controller: Some("ferrolb-speaker".to_owned()),
        reporting_instance: Some(node.to_owned()),
        ..Event::default()
    }
}

/// Replaces the whole status (JSON patch `add` replaces an existing member too), so fields that
/// became empty are removed rather than merged.
async fn set_status<K: StatusKind>(
    api: &Api<K>,
    name: &str,
    status: &K::Status,
) -> Result<(), kube::Error> {
    let value = serde_json::to_value(status).map_err(kube::Error::SerdeError)?;
    let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
        {"op": "add", "path": "/status", "value": value}
    ]))
    .map_err(kube::Error::SerdeError)?;
    api.patch_status(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_lives_beside_its_object_and_is_named_as_client_go_names_them() {
        let queued = QueuedEvent {
            regarding: ObjectReference {
                kind: Some("Service".into()),
                namespace: Some("shop".into()),
                name: Some("web".into()),
                ..ObjectReference::default()
            },
            warning: false,
            reason: "nodeAssigned".into(),
            note: "announcing".into(),
        };
        let now = k8s_openapi::jiff::Timestamp::from_nanosecond(0x1234_5678_9abc).expect("a time");
        let event = event_object(queued, "node-1", now);
        assert_eq!(event.metadata.name.as_deref(), Some("web.123456789abc"));
        assert_eq!(event.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(event.type_.as_deref(), Some("Normal"));
        assert_eq!(event.reason.as_deref(), Some("nodeAssigned"));
        assert_eq!(event.action.as_deref(), Some("nodeAssigned"));
        assert_eq!(event.note.as_deref(), Some("announcing"));
        assert_eq!(
            event.reporting_controller.as_deref(),
            Some("ferrolb-speaker")
        );
        assert_eq!(event.reporting_instance.as_deref(), Some("node-1"));
        assert_eq!(event.event_time, Some(MicroTime(now)));
    }

    #[test]
    fn a_warning_about_a_cluster_scoped_object_goes_to_the_default_namespace() {
        let queued = QueuedEvent {
            regarding: ObjectReference {
                kind: Some("Node".into()),
                ..ObjectReference::default()
            },
            warning: true,
            reason: "announceFailed".into(),
            note: String::new(),
        };
        let event = event_object(queued, "node-1", k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        assert_eq!(event.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(event.metadata.name.as_deref(), Some("object.0"));
        assert_eq!(event.type_.as_deref(), Some("Warning"));
    }
}
