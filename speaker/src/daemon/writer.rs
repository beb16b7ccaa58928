//! API writes of the speaker: status objects and Events. Each write is one call; callers decide
//! what to write from pure diffs, so nothing here is called at steady state.

use ferrolb_api::types::{
    ServiceBGPStatus, ServiceBGPStatusSpec, ServiceBGPStatusStatus, ServiceL2Status,
    ServiceL2StatusSpec, ServiceL2StatusStatus,
};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::metrics::Metrics;
use crate::status::{NODE_LABEL, SERVICE_NAME_LABEL, SERVICE_NAMESPACE_LABEL, Write};

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

/// Writes to the API server on behalf of this node.
#[derive(Clone)]
pub struct Writer {
    client: Client,
    namespace: String,
    node: String,
    recorder: Recorder,
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

impl Writer {
    /// Writes into `namespace` as the speaker of `node`.
    pub fn new(client: Client, namespace: String, node: String, metrics: Metrics) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "ferrolb-speaker".into(),
                instance: Some(node.clone()),
            },
        );
        Self {
            client,
            namespace,
            node,
            recorder,
            metrics,
        }
    }

    /// Carries out status writes; stops at the first failure (the caller retries later).
    pub async fn statuses<K: StatusKind>(
        &self,
        writes: Vec<Write<K::Status>>,
    ) -> Result<(), kube::Error> {
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.namespace);
        for write in writes {
            self.metrics
                .api_writes
                .with_label_values(&[K::kind(&()).as_ref()])
                .inc();
            match write {
                Write::Create { service, status } => {
                    let (namespace, name) = service.split_once('/').unwrap_or(("", &service));
                    let labels = [
                        (NODE_LABEL, self.node.as_str()),
                        (SERVICE_NAME_LABEL, name),
                        (SERVICE_NAMESPACE_LABEL, namespace),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                    let object = K::with_meta(ObjectMeta {
                        generate_name: Some(K::GENERATE_NAME.to_owned()),
                        namespace: Some(self.namespace.clone()),
                        labels: Some(labels),
                        ..ObjectMeta::default()
                    });
                    let created = api.create(&PostParams::default(), &object).await?;
                    let Some(name) = created.meta().name.clone() else {
                        continue;
                    };
                    self.metrics
                        .api_writes
                        .with_label_values(&[K::kind(&()).as_ref()])
                        .inc();
                    set_status(&api, &name, &status).await?;
                }
                Write::Update { name, status } => set_status(&api, &name, &status).await?,
                Write::Delete { name } => match api.delete(&name, &Default::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e),
                },
            }
        }
        Ok(())
    }

    /// Publishes an Event about `object` (failures are logged: Events are best effort).
    pub async fn event(&self, object: &ObjectReference, warning: bool, reason: &str, note: String) {
        self.metrics.api_writes.with_label_values(&["Event"]).inc();
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            note: Some(note),
            action: reason.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, object).await {
            tracing::warn!(%error, reason, "could not publish an Event");
        }
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
