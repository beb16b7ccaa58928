//! The speaker's watches: one reflector store per kind, and one stream saying which store
//! changed. Watches retry with backoff on their own, so an API server outage only pauses
//! updates; the stores keep their last contents and nothing is withdrawn.

use std::fmt::Debug;

use ferrolb_api::types::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
    ServiceBGPStatus, ServiceL2Status,
};
use futures::StreamExt;
use futures::stream::{BoxStream, SelectAll};
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::status::NODE_LABEL;

/// Which store a watch event updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// Services.
    Services,
    /// EndpointSlices.
    EndpointSlices,
    /// Nodes.
    Nodes,
    /// Any FerroLB configuration kind or a Secret.
    Config,
    /// This node's status objects.
    Statuses,
}

/// One watch event, after its store took it.
#[derive(Debug, Clone, Copy)]
pub struct Change {
    /// The store.
    pub source: Source,
    /// The watch finished a (re)list: the store is complete.
    pub synced: bool,
}

/// Every store the speaker reads.
#[derive(Debug, Clone)]
pub struct Stores {
    /// LoadBalancer Services (all of them; the class filter is applied when planning).
    pub services: Store<Service>,
    /// EndpointSlices.
    pub slices: Store<EndpointSlice>,
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
    pub l2_statuses: Store<ServiceL2Status>,
    /// This node's `ServiceBGPStatus` objects.
    pub bgp_statuses: Store<ServiceBGPStatus>,
}

/// How many watches [`start`] opens: the loop waits for this many distinct first lists.
pub const WATCHES: usize = 12;

/// Starts every watch. The stream yields `(watch index, change)`; errors are retried inside.
pub fn start(
    client: &Client,
    namespace: &str,
    node: &str,
) -> (Stores, BoxStream<'static, (usize, Change)>) {
    let mut streams: SelectAll<BoxStream<'static, (usize, Change)>> = SelectAll::new();
    let all = watcher::Config::default();
    let mine = watcher::Config::default().labels(&format!("{NODE_LABEL}={node}"));
    let services = watch(
        &mut streams,
        0,
        Api::all(client.clone()),
        all.clone(),
        Source::Services,
    );
    let slices = watch(
        &mut streams,
        1,
        Api::all(client.clone()),
        all.clone(),
        Source::EndpointSlices,
    );
    let nodes = watch(
        &mut streams,
        2,
        Api::all(client.clone()),
        all.clone(),
        Source::Nodes,
    );
    let pools = watch(
        &mut streams,
        3,
        Api::namespaced(client.clone(), namespace),
        all.clone(),
        Source::Config,
    );
    let l2_advertisements = watch(
        &mut streams,
        4,
        Api::namespaced(client.clone(), namespace),
        all.clone(),
        Source::Config,
    );
    let bgp_advertisements = watch(
        &mut streams,
        5,
        Api::namespaced(client.clone(), namespace),
        all.clone(),
        Source::Config,
    );
    let peers = watch(
        &mut streams,
        6,
        Api::namespaced(client.clone(), namespace),
        all.clone(),
        Source::Config,
    );
    let communities = watch(
        &mut streams,
        7,
        Api::namespaced(client.clone(), namespace),
        all.clone(),
        Source::Config,
    );
    let bfd_profiles = watch(
        &mut streams,
        8,
        Api::namespaced(client.clone(), namespace),
        all.clone(),
        Source::Config,
    );
    let secrets = watch(
        &mut streams,
        9,
        Api::namespaced(client.clone(), namespace),
        all,
        Source::Config,
    );
    let l2_statuses = watch(
        &mut streams,
        10,
        Api::namespaced(client.clone(), namespace),
        mine.clone(),
        Source::Statuses,
    );
    let bgp_statuses = watch(
        &mut streams,
        11,
        Api::namespaced(client.clone(), namespace),
        mine,
        Source::Statuses,
    );
    let stores = Stores {
        services,
        slices,
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
    streams: &mut SelectAll<BoxStream<'static, (usize, Change)>>,
    index: usize,
    api: Api<K>,
    config: watcher::Config,
    source: Source,
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
                tracing::warn!(?source, %error, "watch failed; retrying");
                return None;
            }
        };
        Some((index, Change { source, synced }))
    });
    streams.push(stream.boxed());
    store
}
