//! The speaker's watches: a reflector store per configuration kind, and for Services and
//! EndpointSlices the plan's compact view of each event instead of a copy of the object (see
//! [`crate::inputs`]). One stream says what changed. Watches retry with backoff on their own,
//! so an API server outage only pauses updates; what was known is kept and nothing is
//! withdrawn.

use std::fmt::Debug;

use std::sync::{Arc, Mutex, PoisonError};

use ferrolb_api::types::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
    ServiceBGPStatus, ServiceBGPStatusStatus, ServiceL2Status, ServiceL2StatusStatus,
};
use futures::StreamExt;
use futures::stream::{BoxStream, SelectAll};
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::writer::StatusKind;
use crate::cluster;
use crate::inputs::{Input, ServiceFacts, SliceFacts};
use crate::schedule::Watch;
use crate::status::{
    Existing, NODE_LABEL, SERVICE_NAME_LABEL, SERVICE_NAMESPACE_LABEL, StatusView,
};

/// A [`StatusView`] shared by the watch that fills it and the tasks that read it.
pub type StatusStore<S> = Arc<Mutex<StatusView<S>>>;

/// Runs `read` on a status store (a poisoned lock still holds a consistent view: every update
/// is one `apply`).
pub fn read_statuses<S, T>(store: &StatusStore<S>, read: impl FnOnce(&StatusView<S>) -> T) -> T {
    read(&store.lock().unwrap_or_else(PoisonError::into_inner))
}

/// One watch event, after its store took it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The watch.
    pub watch: Watch,
    /// The watch finished a (re)list: the store is complete.
    pub synced: bool,
    /// For Services and EndpointSlices, which keep no store: the event itself.
    pub input: Option<InputEvent>,
}

/// A Services or EndpointSlices watch event, read as the plan's view.
#[derive(Debug, Clone)]
pub enum InputEvent {
    /// About a Service.
    Service(Input<ServiceFacts>),
    /// About an EndpointSlice.
    Slice(Input<SliceFacts>),
}

/// Every store the speaker reads.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Nodes.
    pub nodes: Store<Node>,
    /// `IPAddressPool`s in FerroLB's namespace.
    pub pools: Store<IPAddressPool>,
    /// `L2Advertisement`s.
    pub l2_advertisements: Store<L2Advertisement>,
    /// `BGPAdvertisement`s.
    pub bgp_advertisements: Store<BGPAdvertisement>,
    /// `BGPPeer`s (v1beta2).
    pub peers: Store<BGPPeer>,
    /// `Community` alias sets.
    pub communities: Store<Community>,
    /// `BFDProfile`s.
    pub bfd_profiles: Store<BFDProfile>,
    /// Secrets in FerroLB's namespace (BGP passwords).
    pub secrets: Store<Secret>,
    /// This node's `ServiceL2Status` objects.
    pub l2_statuses: StatusStore<ServiceL2StatusStatus>,
    /// This node's `ServiceBGPStatus` objects.
    pub bgp_statuses: StatusStore<ServiceBGPStatusStatus>,
}

/// Starts every watch. The stream yields each change; errors are retried inside.
/// Services are read for `lb_class` (see [`cluster::service_info`]).
pub fn start(
    client: &Client,
    namespace: &str,
    node: &str,
    lb_class: Option<String>,
) -> (Stores, BoxStream<'static, Change>) {
    let mut streams: SelectAll<BoxStream<'static, Change>> = SelectAll::new();
    let all = watcher::Config::default();
    let mine = watcher::Config::default().labels(&format!("{NODE_LABEL}={node}"));
    watch_inputs(
        &mut streams,
        Watch::Services,
        Api::<Service>::all(client.clone()),
        move |service| {
            let key = ferrolb_api::key::of_parts(
                service.metadata.namespace.as_deref(),
                service.metadata.name.as_deref(),
            );
            ServiceFacts {
                info: cluster::service_info(&service, lb_class.as_deref()),
                uid: service.metadata.uid,
                key,
            }
        },
        InputEvent::Service,
    );
    watch_inputs(
        &mut streams,
        Watch::EndpointSlices,
        Api::<EndpointSlice>::all(client.clone()),
        |slice| SliceFacts {
            key: ferrolb_api::key::of_parts(
                slice.metadata.namespace.as_deref(),
                slice.metadata.name.as_deref(),
            ),
            endpoints: cluster::slice_endpoints(&slice),
        },
        InputEvent::Slice,
    );
    let nodes = watch(
        &mut streams,
        Watch::Nodes,
        Api::all(client.clone()),
        all.clone(),
    );
    let pools = watch(
        &mut streams,
        Watch::Pools,
        Api::namespaced(client.clone(), namespace),
        all.clone(),
    );
    let l2_advertisements = watch(
        &mut streams,
        Watch::L2Advertisements,
        Api::namespaced(client.clone(), namespace),
        all.clone(),
    );
    let bgp_advertisements = watch(
        &mut streams,
        Watch::BgpAdvertisements,
        Api::namespaced(client.clone(), namespace),
        all.clone(),
    );
    let peers = watch(
        &mut streams,
        Watch::Peers,
        Api::namespaced(client.clone(), namespace),
        all.clone(),
    );
    let communities = watch(
        &mut streams,
        Watch::Communities,
        Api::namespaced(client.clone(), namespace),
        all.clone(),
    );
    let bfd_profiles = watch(
        &mut streams,
        Watch::BfdProfiles,
        Api::namespaced(client.clone(), namespace),
        all.clone(),
    );
    let secrets = watch(
        &mut streams,
        Watch::Secrets,
        Api::namespaced(client.clone(), namespace),
        all,
    );
    let l2_statuses = watch_statuses::<ServiceL2Status>(
        &mut streams,
        Watch::L2Statuses,
        Api::namespaced(client.clone(), namespace),
        mine.clone(),
    );
    let bgp_statuses = watch_statuses::<ServiceBGPStatus>(
        &mut streams,
        Watch::BgpStatuses,
        Api::namespaced(client.clone(), namespace),
        mine,
    );
    let stores = Stores {
        nodes,
        pools,
        l2_advertisements,
        bgp_advertisements,
        peers,
        communities,
        bfd_profiles,
        secrets,
        l2_statuses,
        bgp_statuses,
    };
    (stores, streams.boxed())
}

/// What the speaker never reads is not kept: managed fields and kubectl's copy of the last
/// applied object are often larger than the rest of a Service.
fn trim<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

fn watch<K>(
    streams: &mut SelectAll<BoxStream<'static, Change>>,
    watch: Watch,
    api: Api<K>,
    config: watcher::Config,
) -> Store<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, writer) = reflector::store();
    let trimmed = watcher(api, config).default_backoff().modify(trim);
    let stream = reflector::reflector(writer, trimmed).filter_map(move |event| async move {
        let synced = match event {
            Ok(watcher::Event::InitDone) => true,
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => return None,
            Ok(_) => false,
            Err(error) => {
                tracing::warn!(?watch, %error, "watch failed; retrying");
                return None;
            }
        };
        Some(Change {
            watch,
            synced,
            input: None,
        })
    });
    streams.push(stream.boxed());
    store
}

/// Watches this node's status objects of one kind into a [`StatusStore`].
fn watch_statuses<K: StatusKind>(
    streams: &mut SelectAll<BoxStream<'static, Change>>,
    watch: Watch,
    api: Api<K>,
    config: watcher::Config,
) -> StatusStore<K::Status>
where
    K::Status: Send + Clone,
{
    let store: StatusStore<K::Status> = Arc::default();
    let view = store.clone();
    let stream = watcher(api, config)
        .default_backoff()
        .filter_map(move |event| {
            let view = view.clone();
            async move {
                let (input, synced) = input_of(
                    event,
                    watch,
                    |object: K| existing_of(&object),
                    |object| object.name_any(),
                )?;
                view.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .apply(input);
                Some(Change {
                    watch,
                    synced,
                    input: None,
                })
            }
        });
    streams.push(stream.boxed());
    store
}

/// A watch event as an [`Input`] (objects read with `read`, deletions named with `key`), and
/// whether a (re)list just ended; `None` for an error, which the watcher retries itself.
fn input_of<K, T>(
    event: Result<watcher::Event<K>, watcher::Error>,
    watch: Watch,
    read: impl FnOnce(K) -> T,
    key: impl FnOnce(&K) -> String,
) -> Option<(Input<T>, bool)> {
    match event {
        Ok(watcher::Event::Init) => Some((Input::Relist, false)),
        Ok(watcher::Event::InitApply(object) | watcher::Event::Apply(object)) => {
            Some((Input::Apply(read(object)), false))
        }
        Ok(watcher::Event::Delete(object)) => Some((Input::Delete(key(&object)), false)),
        Ok(watcher::Event::InitDone) => Some((Input::Relisted, true)),
        Err(error) => {
            tracing::warn!(?watch, %error, "watch failed; retrying");
            None
        }
    }
}

/// A status object read as [`Existing`]: the Service from its labels.
fn existing_of<K: StatusKind>(object: &K) -> Existing<K::Status> {
    let labels = object.labels();
    Existing {
        name: object.name_any(),
        service: ferrolb_api::key::of_parts(
            labels.get(SERVICE_NAMESPACE_LABEL).map(String::as_str),
            labels.get(SERVICE_NAME_LABEL).map(String::as_str),
        ),
        status: object.current_status(),
    }
}

/// Watches a kind whose objects are read once with `read` and not kept.
fn watch_inputs<K, T>(
    streams: &mut SelectAll<BoxStream<'static, Change>>,
    watch: Watch,
    api: Api<K>,
    read: impl Fn(K) -> T + Send + Sync + 'static,
    wrap: fn(Input<T>) -> InputEvent,
) where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default,
    T: Send + 'static,
{
    let read = std::sync::Arc::new(read);
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |event| {
            let read = read.clone();
            async move {
                let (input, synced) = input_of(
                    event,
                    watch,
                    |object| read(object),
                    |object| {
                        let meta = object.meta();
                        ferrolb_api::key::of_parts(meta.namespace.as_deref(), meta.name.as_deref())
                    },
                )?;
                Some(Change {
                    watch,
                    synced,
                    input: Some(wrap(input)),
                })
            }
        });
    streams.push(stream.boxed());
}
