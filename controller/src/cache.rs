//! `cache`: the controller's watches and what they keep, shared by the reconciler (which plans
//! from them) and the webhook (which judges from them instead of listing per request).
//!
//! ```text
//!  Services ──────────► ServiceViews (compact, see view) ─┐
//!  IPAddressPools, Namespaces, L2/BGP advertisements,      ├─► Caches ─► reconciler, webhook
//!  BGPPeers, BFDProfiles, Communities ─► reflector stores  │
//!  Nodes (metadata only) ──────────────► reflector store ──┘
//!  every event ──► Change (which source, which keys, list done) ──► the reconcile loop
//! ```
//! Stored objects lose their `managedFields` (and Nodes everything but name and labels): they
//! are most of an object's size and nothing here reads them. Decides nothing.

use std::sync::Arc;

use ferrolb_api::config::Objects;
use ferrolb_api::types::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};

use crate::client::watch_config;
use crate::view::ServiceViews;

/// Which watch an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Services, all namespaces.
    Services = 0,
    /// IPAddressPools in FerroLB's namespace.
    Pools,
    /// Namespaces (their labels restrict pools).
    Namespaces,
    /// L2Advertisements (for the webhook).
    L2Advertisements,
    /// BGPAdvertisements (for the webhook).
    BgpAdvertisements,
    /// BGPPeers (for the webhook).
    BgpPeers,
    /// BFDProfiles (for the webhook).
    BfdProfiles,
    /// Communities (for the webhook).
    Communities,
    /// Nodes, name and labels (for the webhook's node-selector rules).
    Nodes,
}

/// How many sources there are.
pub const SOURCES: usize = 9;

/// What a watch event means for the reconciler, once its cache is updated.
#[derive(Debug)]
pub struct Change {
    /// The cache it updated.
    pub source: Source,
    /// `namespace/name` of the objects it touched.
    pub keys: Vec<String>,
    /// It completed a (re)list.
    pub synced: bool,
}

impl Change {
    fn of<K: Resource>(source: Source, event: &watcher::Event<K>) -> Self {
        let key = |o: &K| ferrolb_api::key::of(o.meta());
        let (keys, synced) = match event {
            watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o) => {
                (vec![key(o)], false)
            }
            watcher::Event::Init => (Vec::new(), false),
            watcher::Event::InitDone => (Vec::new(), true),
        };
        Change {
            source,
            keys,
            synced,
        }
    }
}

/// Everything the watches keep. Cheap to clone; clones share the contents.
#[derive(Debug, Clone)]
pub struct Caches {
    /// Every Service, as the controller keeps it.
    pub services: ServiceViews,
    /// FerroLB's pools.
    pub pools: Store<IPAddressPool>,
    /// Every Namespace.
    pub namespaces: Store<Namespace>,
    /// FerroLB's L2Advertisements.
    pub l2_advertisements: Store<L2Advertisement>,
    /// FerroLB's BGPAdvertisements.
    pub bgp_advertisements: Store<BGPAdvertisement>,
    /// FerroLB's BGPPeers.
    pub bgp_peers: Store<BGPPeer>,
    /// FerroLB's BFDProfiles.
    pub bfd_profiles: Store<BFDProfile>,
    /// FerroLB's Communities.
    pub communities: Store<Community>,
    /// Every Node's name and labels.
    pub nodes: Store<PartialObjectMeta<Node>>,
}

/// Copies of `objects` in name order, as a LIST returns them.
fn owned<K: Resource + Clone>(objects: Vec<Arc<K>>) -> Vec<K> {
    let mut objects: Vec<K> = objects.iter().map(|o| (**o).clone()).collect();
    objects.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
    objects
}

impl Caches {
    /// FerroLB's objects as a configuration is built from, with the Nodes when asked (only
    /// their names and labels are known, which is all the rules read).
    pub fn objects(&self, with_nodes: bool) -> Objects {
        let nodes = with_nodes.then(|| {
            self.nodes
                .state()
                .iter()
                .map(|n| Node {
                    metadata: ObjectMeta {
                        name: n.metadata.name.clone(),
                        labels: n.metadata.labels.clone(),
                        ..ObjectMeta::default()
                    },
                    ..Node::default()
                })
                .collect()
        });
        Objects {
            pools: owned(self.pools.state()),
            l2_advertisements: owned(self.l2_advertisements.state()),
            bgp_advertisements: owned(self.bgp_advertisements.state()),
            bgp_peers: owned(self.bgp_peers.state()),
            bfd_profiles: owned(self.bfd_profiles.state()),
            communities: owned(self.communities.state()),
            secrets: None,
            nodes,
        }
    }
}

/// The changes every watch reports, merged, in order.
pub type Changes = mpsc::UnboundedReceiver<Result<Change, watcher::Error>>;

/// Every watch, merged.
type Merged = std::pin::Pin<Box<dyn Stream<Item = Result<Change, watcher::Error>> + Send>>;

/// A reflector over FerroLB's objects of kind `K` in `namespace`.
fn namespaced<K>(
    client: &Client,
    namespace: &str,
    source: Source,
) -> (
    Store<K>,
    impl Stream<Item = Result<Change, watcher::Error>> + Send + use<K>,
)
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let api = Api::<K>::namespaced(client.clone(), namespace);
    let events = reflector::reflector(
        writer,
        watcher(api, watch_config())
            .default_backoff()
            .modify(|o| o.meta_mut().managed_fields = None),
    )
    .map(move |r| r.map(|e| Change::of(source, &e)));
    (store, events)
}

/// The caches, the changes the watches report, and the future that runs the watches (each
/// retrying with backoff): spawn it for as long as the caches are used. It runs on its own, so
/// the caches stay current while the reconciler is busy writing. `our_class` is the
/// `loadBalancerClass` served, which each Service's view records.
pub fn start(
    client: &Client,
    namespace: &str,
    our_class: Option<String>,
) -> (Caches, Changes, impl Future<Output = ()> + Send + use<>) {
    let services = ServiceViews::default();
    let views = services.clone();
    let service_events = watcher(Api::<Service>::all(client.clone()), watch_config())
        .default_backoff()
        .map(move |r| {
            r.map(|event| {
                let applied = views.apply(event, our_class.as_deref());
                Change {
                    source: Source::Services,
                    keys: applied.keys,
                    synced: applied.synced,
                }
            })
        });
    let (namespaces, namespaces_writer) = reflector::store();
    let namespace_events = reflector::reflector(
        namespaces_writer,
        watcher(Api::<Namespace>::all(client.clone()), watch_config())
            .default_backoff()
            .modify(|n| n.metadata.managed_fields = None),
    )
    .map(|r| r.map(|e| Change::of(Source::Namespaces, &e)));
    let (nodes, nodes_writer) = reflector::store();
    let node_events = reflector::reflector(
        nodes_writer,
        watcher(
            Api::<PartialObjectMeta<Node>>::all(client.clone()),
            watch_config(),
        )
        .default_backoff()
        .modify(|n| {
            n.metadata.managed_fields = None;
            n.metadata.annotations = None;
        }),
    )
    .map(|r| r.map(|e| Change::of(Source::Nodes, &e)));
    let (pools, pool_events) = namespaced(client, namespace, Source::Pools);
    let (l2_advertisements, l2_events) = namespaced(client, namespace, Source::L2Advertisements);
    let (bgp_advertisements, bgp_events) = namespaced(client, namespace, Source::BgpAdvertisements);
    let (bgp_peers, peer_events) = namespaced(client, namespace, Source::BgpPeers);
    let (bfd_profiles, bfd_events) = namespaced(client, namespace, Source::BfdProfiles);
    let (communities, community_events) = namespaced(client, namespace, Source::Communities);
    let mut merged: Merged = Box::pin(futures::stream::select_all([
        service_events.boxed(),
        pool_events.boxed(),
        namespace_events.boxed(),
        l2_events.boxed(),
        bgp_events.boxed(),
        peer_events.boxed(),
        bfd_events.boxed(),
        community_events.boxed(),
        node_events.boxed(),
    ]));
    let caches = Caches {
        services,
        pools,
        namespaces,
        l2_advertisements,
        bgp_advertisements,
        bgp_peers,
        bfd_profiles,
        communities,
        nodes,
    };
    let (tx, changes) = mpsc::unbounded();
    let driver = async move {
        while let Some(change) = merged.next().await {
            if tx.unbounded_send(change).is_err() {
                return; // nobody listens any more
            }
        }
    };
    (caches, changes, driver)
}
