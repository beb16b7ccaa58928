//! The reconciler's watches: Services, IPAddressPools and Namespaces into reflector stores, and
//! one merged stream saying what each event touched. Decides nothing.

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};

use ferrolb_api::types::IPAddressPool;

/// Which store a watch event updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Services, all namespaces.
    Services = 0,
    /// IPAddressPools in FerroLB's namespace.
    Pools = 1,
    /// Namespaces (their labels restrict pools).
    Namespaces = 2,
}

/// How many sources there are.
pub const SOURCES: usize = 3;

/// What a watch event means for the reconciler, once its store is updated.
#[derive(Debug)]
pub struct Change {
    /// The store it updated.
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

/// The stores the watches fill.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Every Service.
    pub services: Store<Service>,
    /// FerroLB's pools.
    pub pools: Store<IPAddressPool>,
    /// Every Namespace.
    pub namespaces: Store<Namespace>,
}

/// Starts the watches (they run as the returned stream is polled; each retries with backoff).
pub fn start(
    client: &Client,
    namespace: &str,
) -> (
    Stores,
    impl Stream<Item = Result<Change, watcher::Error>> + Send + Unpin + use<>,
) {
    let (services, services_writer) = reflector::store();
    let (pools, pools_writer) = reflector::store();
    let (namespaces, namespaces_writer) = reflector::store();
    let service_events = reflector::reflector(
        services_writer,
        watcher(
            Api::<Service>::all(client.clone()),
            crate::client::watch_config(),
        )
        .default_backoff(),
    )
    .map(|r| r.map(|e| Change::of(Source::Services, &e)));
    let pool_events = reflector::reflector(
        pools_writer,
        watcher(
            Api::<IPAddressPool>::namespaced(client.clone(), namespace),
            crate::client::watch_config(),
        )
        .default_backoff(),
    )
    .map(|r| r.map(|e| Change::of(Source::Pools, &e)));
    let namespace_events = reflector::reflector(
        namespaces_writer,
        watcher(
            Api::<Namespace>::all(client.clone()),
            crate::client::watch_config(),
        )
        .default_backoff(),
    )
    .map(|r| r.map(|e| Change::of(Source::Namespaces, &e)));
    let changes = Box::pin(futures::stream::select(
        futures::stream::select(service_events, pool_events),
        namespace_events,
    ));
    (
        Stores {
            services,
            pools,
            namespaces,
        },
        changes,
    )
}
