//! `cache`: the controller's watches and what they keep, shared by the reconciler (which plans
//! from them) and the webhook (which judges from them instead of listing per request).
//!
//! ```text
//!  Services ──────────► ServiceViews (compact, see view) ─┐
//!  IPAddressPools, Namespaces, L2/BGP advertisements,      ├─► Caches ─► reconciler, webhook
//!  BGPPeers, BFDProfiles, Communities ─► reflector stores  │
//!  Nodes (metadata only) ──────────────► reflector store ──┘
//!  every event ──► Changes (coalesced: which Services, pools or namespaces, lists done) ──► reconciler
//! ```
//! Stored objects lose their `managedFields` (and Nodes everything but name and labels): they
//! are most of an object's size and nothing here reads them. Decides nothing.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ferrolb_api::config::Objects;
use ferrolb_api::types::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use futures::{Stream, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use tokio::sync::Notify;

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

/// What one watch event means for the reconciler, once its cache is updated.
#[derive(Debug)]
struct Change {
    /// The cache it updated.
    source: Source,
    /// `namespace/name` of the objects it touched.
    keys: Vec<String>,
    /// It completed a (re)list.
    synced: bool,
}

/// What the watches noted since the reconciler last looked. Coalesced: a Service that changed
/// ten times while the reconciler was busy is one key, so a burst costs memory per Service,
/// not per event.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Noted {
    /// Services that changed, appeared or went away.
    pub services: BTreeSet<String>,
    /// Pools or namespaces changed (or were listed again).
    pub config: bool,
    /// Sources that finished a (re)list, by [`Source`] index.
    pub synced: [bool; SOURCES],
}

impl Noted {
    fn is_empty(&self) -> bool {
        *self == Noted::default()
    }

    fn add(&mut self, change: Change) {
        if change.synced {
            self.synced[change.source as usize] = true;
        }
        match change.source {
            Source::Services => self.services.extend(change.keys),
            Source::Pools | Source::Namespaces if !change.keys.is_empty() || change.synced => {
                self.config = true;
            }
            // Only the webhook reads the other kinds.
            _ => {}
        }
    }
}

/// The watches' side of the hand-over to the reconciler.
#[derive(Debug, Default)]
pub struct Changes {
    noted: Mutex<Noted>,
    /// Set when something was noted (a permit is kept if nobody waits).
    wake: Notify,
    /// The watches ended (they never do on their own).
    ended: AtomicBool,
}

impl Changes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Noted> {
        self.noted.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn note(&self, change: Change) {
        self.lock().add(change);
        self.wake.notify_one();
    }

    /// Everything noted since the last call, once there is something; `None` once the watches
    /// have ended.
    pub async fn next(&self) -> Option<Noted> {
        loop {
            let noted = std::mem::take(&mut *self.lock());
            if !noted.is_empty() {
                return Some(noted);
            }
            if self.ended.load(Ordering::Acquire) {
                return None;
            }
            self.wake.notified().await;
        }
    }
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

/// Every watch, merged.
type Merged = std::pin::Pin<Box<dyn Stream<Item = WatchResult> + Send>>;

/// What each watch yields: a change, or an error the watcher retries after by itself.
type WatchResult = Result<Change, watcher::Error>;

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

/// The caches, what the watches note for the reconciler, and the future that runs the watches
/// (each retrying with backoff): spawn it for as long as the caches are used. It runs on its
/// own, so the caches stay current while the reconciler is busy writing. `our_class` is the
/// `loadBalancerClass` served, which each Service's view records.
pub fn start(
    client: &Client,
    namespace: &str,
    our_class: Option<String>,
) -> (
    Caches,
    Arc<Changes>,
    impl Future<Output = ()> + Send + use<>,
) {
    let (services, service_events) = service_watch(client, our_class);
    let (namespaces, namespace_events) = cluster_wide::<Namespace>(client, Source::Namespaces);
    let (nodes, node_events) = node_watch(client);
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
    let changes = Arc::new(Changes::default());
    let noted = Arc::clone(&changes);
    let driver = async move {
        while let Some(change) = merged.next().await {
            match change {
                Ok(change) => noted.note(change),
                // The watcher retries with backoff by itself; the caches keep their contents.
                Err(error) => tracing::warn!(%error, "watch failed; retrying"),
            }
        }
        noted.ended.store(true, Ordering::Release);
        noted.wake.notify_one();
    };
    (caches, changes, driver)
}

/// The Services as the allocator's compact views, and their watch.
fn service_watch(
    client: &Client,
    our_class: Option<String>,
) -> (ServiceViews, impl Stream<Item = WatchResult> + Send + use<>) {
    let services = ServiceViews::default();
    let views = services.clone();
    let events = watcher(Api::<Service>::all(client.clone()), watch_config())
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
    (services, events)
}

/// A store of every object of a cluster-scoped kind, and its watch.
fn cluster_wide<K>(
    client: &Client,
    source: Source,
) -> (Store<K>, impl Stream<Item = WatchResult> + Send + use<K>)
where
    K: Resource<Scope = k8s_openapi::ClusterResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let events = reflector::reflector(
        writer,
        watcher(Api::<K>::all(client.clone()), watch_config())
            .default_backoff()
            .modify(|o| o.meta_mut().managed_fields = None),
    )
    .map(move |r| r.map(|e| Change::of(source, &e)));
    (store, events)
}

/// The Nodes' metadata only (the webhook checks node selectors), and its watch.
fn node_watch(
    client: &Client,
) -> (
    Store<PartialObjectMeta<Node>>,
    impl Stream<Item = WatchResult> + Send + use<>,
) {
    let (nodes, writer) = reflector::store();
    let events = reflector::reflector(
        writer,
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
    (nodes, events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(source: Source, keys: &[&str], synced: bool) -> Change {
        Change {
            source,
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            synced,
        }
    }

    #[tokio::test]
    async fn a_burst_is_handed_over_as_one_key_per_service() {
        let changes = Changes::default();
        for _ in 0..1000 {
            changes.note(change(Source::Services, &["shop/web"], false));
        }
        changes.note(change(Source::Services, &["shop/db"], false));
        changes.note(change(Source::BgpPeers, &["ferrolb-system/router"], false));
        changes.note(change(Source::Pools, &[], true));
        let noted = changes.next().await.expect("noted");
        assert_eq!(
            noted.services.into_iter().collect::<Vec<_>>(),
            ["shop/db", "shop/web"]
        );
        assert!(noted.config, "a pool list re-plans every Service");
        assert!(noted.synced[Source::Pools as usize]);
        assert!(!noted.synced[Source::Services as usize]);
    }

    #[tokio::test]
    async fn the_reader_waits_for_a_change_and_hears_when_the_watches_end() {
        let changes = Arc::new(Changes::default());
        let reader = tokio::spawn({
            let changes = Arc::clone(&changes);
            async move { changes.next().await }
        });
        tokio::task::yield_now().await;
        assert!(!reader.is_finished(), "nothing noted yet");
        changes.note(change(Source::Namespaces, &["/shop"], false));
        let noted = reader.await.expect("joined").expect("noted");
        assert!(noted.config);
        // A webhook-only kind changes nothing the reconciler plans.
        changes.note(change(Source::Communities, &["ferrolb-system/c"], false));
        changes.ended.store(true, Ordering::Release);
        changes.wake.notify_one();
        assert_eq!(changes.next().await, None);
    }
}
