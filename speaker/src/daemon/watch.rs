//! The speaker's watches: a reflector store per configuration kind, and for Services and
//! EndpointSlices the plan's compact view of each event instead of a copy of the object (see
//! [`crate::inputs`]). One stream says what changed. Watches retry with backoff on their own,
//! so an API server outage only pauses updates; what was known is kept and nothing is
//! withdrawn.

use std::fmt::Debug;

use std::sync::{Arc, Mutex, PoisonError};

use ferrolb_api::config::Objects;
use ferrolb_api::types::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, ConfigurationState, IPAddressPool,
    L2Advertisement, ServiceBGPStatus, ServiceBGPStatusStatus, ServiceL2Status,
    ServiceL2StatusStatus,
};
use futures::StreamExt;
use futures::stream::{BoxStream, SelectAll};
use k8s_openapi::NamespaceResourceScope;
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
    /// Every `ConfigurationState` in FerroLB's namespace: each speaker keeps one, so their names
    /// say which nodes run a speaker (the quorum's set).
    pub config_states: Store<ConfigurationState>,
}

impl Stores {
    /// The configuration objects the stores hold now, with `nodes` (read once per plan by the
    /// caller).
    pub fn objects(&self, nodes: &[Arc<Node>]) -> Objects {
        fn owned<K: Clone + Resource + 'static>(store: &Store<K>) -> Vec<K>
        where
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            store.state().iter().map(|o| (**o).clone()).collect()
        }
        Objects {
            pools: owned(&self.pools),
            l2_advertisements: owned(&self.l2_advertisements),
            bgp_advertisements: owned(&self.bgp_advertisements),
            bgp_peers: owned(&self.peers),
            bfd_profiles: owned(&self.bfd_profiles),
            communities: owned(&self.communities),
            secrets: Some(owned(&self.secrets)),
            nodes: Some(nodes.iter().map(|n| (**n).clone()).collect()),
        }
    }

    /// The nodes whose speaker keeps a `ConfigurationState`.
    pub fn speaker_nodes(&self) -> std::collections::BTreeSet<String> {
        let states = self.config_states.state();
        cluster::speaker_nodes(states.iter().filter_map(|s| s.metadata.name.as_deref()))
    }

    /// Our own Node, once the Nodes watch has it.
    pub fn node(&self, name: &str) -> Option<Arc<Node>> {
        self.nodes
            .state()
            .into_iter()
            .find(|n| n.metadata.name.as_deref() == Some(name))
    }
}

/// Starts every watch. The stream yields each change; errors are retried inside.
/// Services are read for `lb_class` (see [`cluster::service_info`]).
pub fn start(
    client: &Client,
    namespace: &str,
    node: &str,
    lb_class: Option<String>,
) -> (Stores, BoxStream<'static, Change>) {
    let mut open = Opening {
        streams: SelectAll::new(),
        client,
        namespace,
    };
    open.services(lb_class);
    open.endpoint_slices();
    let mine = watcher::Config::default().labels(&format!("{NODE_LABEL}={node}"));
    let stores = Stores {
        nodes: open.store(Watch::Nodes, Api::all(client.clone()), Default::default()),
        pools: open.config(Watch::Pools),
        l2_advertisements: open.config(Watch::L2Advertisements),
        bgp_advertisements: open.config(Watch::BgpAdvertisements),
        peers: open.config(Watch::Peers),
        communities: open.config(Watch::Communities),
        bfd_profiles: open.config(Watch::BfdProfiles),
        secrets: open.config(Watch::Secrets),
        l2_statuses: open.statuses::<ServiceL2Status>(Watch::L2Statuses, mine.clone()),
        bgp_statuses: open.statuses::<ServiceBGPStatus>(Watch::BgpStatuses, mine),
        config_states: open.config(Watch::ConfigStates),
    };
    (stores, open.streams.boxed())
}

/// The watches being opened, their streams merged into one.
struct Opening<'a> {
    streams: SelectAll<BoxStream<'static, Change>>,
    client: &'a Client,
    namespace: &'a str,
}

impl Opening<'_> {
    /// Services, read for `lb_class` and not kept.
    fn services(&mut self, lb_class: Option<String>) {
        let read = move |service: Service| ServiceFacts {
            key: ferrolb_api::key::of(&service.metadata),
            info: cluster::service_info(&service, lb_class.as_deref()),
            uid: service.metadata.uid,
        };
        let api = Api::<Service>::all(self.client.clone());
        self.inputs(Watch::Services, api, read, InputEvent::Service);
    }

    /// EndpointSlices, read as their Service's endpoints and not kept.
    fn endpoint_slices(&mut self) {
        let read = |slice: EndpointSlice| SliceFacts {
            key: ferrolb_api::key::of(&slice.metadata),
            endpoints: cluster::slice_endpoints(&slice),
        };
        let api = Api::<EndpointSlice>::all(self.client.clone());
        self.inputs(Watch::EndpointSlices, api, read, InputEvent::Slice);
    }

    /// A store of every object of a kind in FerroLB's namespace.
    fn config<K>(&mut self, watch: Watch) -> Store<K>
    where
        K: Resource<Scope = NamespaceResourceScope>
            + Clone
            + Debug
            + DeserializeOwned
            + Send
            + Sync
            + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let api = Api::namespaced(self.client.clone(), self.namespace);
        self.store(watch, api, watcher::Config::default())
    }

    /// This node's status objects of one kind, in FerroLB's namespace.
    fn statuses<K: StatusKind>(
        &mut self,
        watch: Watch,
        mine: watcher::Config,
    ) -> StatusStore<K::Status>
    where
        K::Status: Send + Clone,
    {
        let api = Api::namespaced(self.client.clone(), self.namespace);
        let (store, stream) = watch_statuses::<K>(watch, api, mine);
        self.streams.push(stream);
        store
    }

    fn store<K>(&mut self, watch: Watch, api: Api<K>, config: watcher::Config) -> Store<K>
    where
        K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let (store, stream) = watch_store(watch, api, config);
        self.streams.push(stream);
        store
    }

    fn inputs<K, T>(
        &mut self,
        watch: Watch,
        api: Api<K>,
        read: impl Fn(K) -> T + Send + Sync + 'static,
        wrap: fn(Input<T>) -> InputEvent,
    ) where
        K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
        K::DynamicType: Default,
        T: Send + 'static,
    {
        self.streams.push(watch_inputs(watch, api, read, wrap));
    }
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

/// Watches a kind into a reflector store.
fn watch_store<K>(
    watch: Watch,
    api: Api<K>,
    config: watcher::Config,
) -> (Store<K>, BoxStream<'static, Change>)
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
    (store, stream.boxed())
}

/// Watches this node's status objects of one kind into a [`StatusStore`].
fn watch_statuses<K: StatusKind>(
    watch: Watch,
    api: Api<K>,
    config: watcher::Config,
) -> (StatusStore<K::Status>, BoxStream<'static, Change>)
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
    (store, stream.boxed())
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
    watch: Watch,
    api: Api<K>,
    read: impl Fn(K) -> T + Send + Sync + 'static,
    wrap: fn(Input<T>) -> InputEvent,
) -> BoxStream<'static, Change>
where
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
                    |object| ferrolb_api::key::of(object.meta()),
                )?;
                Some(Change {
                    watch,
                    synced,
                    input: Some(wrap(input)),
                })
            }
        });
    stream.boxed()
}
