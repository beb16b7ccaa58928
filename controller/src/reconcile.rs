//! `reconcile`: the controller's shell around [`crate::alloc`] and [`crate::plan`]. It decides
//! nothing: it feeds watch events in, carries plans out, and retries what the API server refused.
//!
//! ```text
//!  Services ─────────┐
//!  Namespaces ───────┼─ watch + reflector stores ─► reconcile task ──► Service status + annotation
//!  IPAddressPools ───┘   (retried with backoff)     owns Allocator,  ──► Events on Services
//!                                                    last good pools ──► IPAddressPool status
//! ```
//! Nothing is allocated until every store has finished its first list and the allocator has
//! been rebuilt from the IPs already in Service statuses, so a restart never moves an IP.
//! Only the replica holding the Lease writes ([`crate::lease`]); a standby keeps its stores warm,
//! and on taking over rebuilds its allocator from a fresh list before its first write.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_api::config::{self, Objects};
use ferrolb_api::config_state::{COMPONENT_LABEL, ConfigState, POOL_RECONCILER_CONDITION};
use ferrolb_api::selector::Labels;
use ferrolb_api::service::{self, IP_ALLOCATED_FROM_POOL};
use ferrolb_api::types::{ConfigurationState, IPAddressPool, IPAddressPoolStatus};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType as KubeEventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::watch;

use crate::alloc::Allocator;
use crate::metrics::{Health, Metrics};
use crate::plan::{self, EventType, Plan};

/// Name of the controller's `ConfigurationState`, as MetalLB names it.
pub const CONFIGURATION_STATE_NAME: &str = "controller";

/// How the controller is set up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Namespace FerroLB's configuration lives in.
    pub namespace: String,
    /// The `loadBalancerClass` served; `None` serves Services without one.
    pub lb_class: Option<String>,
    /// This replica's name, for Events.
    pub instance: String,
}

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A watch stream ended, which kube-runtime's watchers never do on their own.
    #[error("the {0} watch ended")]
    WatchEnded(&'static str),
}

/// Which store a watch event updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Services = 0,
    Pools = 1,
    Namespaces = 2,
}

/// What a watch event means for the task, once its store is updated.
#[derive(Debug)]
struct Change {
    source: Source,
    /// `namespace/name` of the objects it touched.
    keys: Vec<String>,
    /// It completed a (re)list.
    synced: bool,
}

impl Change {
    fn of<K: Resource>(source: Source, event: &watcher::Event<K>) -> Self {
        let (keys, synced) = touched(event);
        Change {
            source,
            keys,
            synced,
        }
    }
}

/// Keys a watch event touches, and whether it completed a (re)list.
fn touched<K: Resource>(event: &watcher::Event<K>) -> (Vec<String>, bool) {
    let key = |o: &K| ferrolb_api::key::of(o.meta());
    match event {
        watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o) => {
            (vec![key(o)], false)
        }
        watcher::Event::Init => (Vec::new(), false),
        watcher::Event::InitDone => (Vec::new(), true),
    }
}

/// What the reconcile task shares with the rest of the process.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Flags behind `/readyz`.
    pub health: Arc<Health>,
    /// Whether this replica holds the Lease (always `true` without leader election).
    pub leading: watch::Receiver<bool>,
}

/// Runs the controller until `shutdown` completes.
pub async fn run(
    client: Client,
    settings: Settings,
    shared: Shared,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ReconcileError> {
    let services_api: Api<Service> = Api::all(client.clone());
    let pools_api: Api<IPAddressPool> = Api::namespaced(client.clone(), &settings.namespace);
    let namespaces_api: Api<Namespace> = Api::all(client.clone());
    let (services, services_writer) = reflector::store();
    let (pools, pools_writer) = reflector::store();
    let (namespaces, namespaces_writer) = reflector::store();
    let service_events = reflector::reflector(
        services_writer,
        watcher(services_api, watcher::Config::default()).default_backoff(),
    )
    .map(|r| r.map(|e| Change::of(Source::Services, &e)));
    let pool_events = reflector::reflector(
        pools_writer,
        watcher(pools_api, watcher::Config::default()).default_backoff(),
    )
    .map(|r| r.map(|e| Change::of(Source::Pools, &e)));
    let namespace_events = reflector::reflector(
        namespaces_writer,
        watcher(namespaces_api, watcher::Config::default()).default_backoff(),
    )
    .map(|r| r.map(|e| Change::of(Source::Namespaces, &e)));
    let mut events = Box::pin(futures::stream::select(
        futures::stream::select(service_events, pool_events),
        namespace_events,
    ));

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "ferrolb-controller".into(),
            instance: Some(settings.instance.clone()),
        },
    );
    let mut leading = shared.leading.clone();
    let mut task = Task {
        client,
        settings,
        shared,
        recorder,
        services,
        pools,
        namespaces,
        synced: [false; 3],
        allocator: None,
        last_good: Objects::default(),
        dirty: BTreeSet::new(),
        config_dirty: true,
        retry: BTreeSet::new(),
        rebuild_failed: false,
        written_state: None,
        exported_pools: BTreeSet::new(),
        config_input: None,
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            changed = leading.changed() => {
                if changed.is_err() {
                    // The elector is gone (shutting down): stop writing.
                    return Ok(());
                }
                let now_leading = *leading.borrow_and_update();
                task.leadership_changed(now_leading);
                task.work().await;
            }
            change = events.next() => {
                let Some(change) = change else { return Err(ReconcileError::WatchEnded("configuration")) };
                task.note(change);
                // Take every event already waiting before working, so a burst is one pass.
                while let Some(Some(change)) = events.now_or_never_ready() {
                    task.note(change);
                }
                task.work().await;
            }
            () = tokio::time::sleep(Duration::from_secs(1)), if !task.retry.is_empty() || task.rebuild_failed => {
                let retry = std::mem::take(&mut task.retry);
                task.dirty.extend(retry);
                task.work().await;
            }
        }
    }
}

/// Polls a stream once without waiting.
trait NowOrNever: futures::Stream + Unpin {
    fn now_or_never_ready(&mut self) -> Option<Option<Self::Item>> {
        futures::FutureExt::now_or_never(self.next())
    }
}

impl<S: futures::Stream + Unpin> NowOrNever for S {}

/// The reconcile task's state.
struct Task {
    client: Client,
    settings: Settings,
    shared: Shared,
    recorder: Recorder,
    services: Store<Service>,
    pools: Store<IPAddressPool>,
    namespaces: Store<Namespace>,
    /// Services, pools, namespaces: finished their first list.
    synced: [bool; 3],
    /// Built once every store has synced, rebuilt from Service statuses.
    allocator: Option<Allocator>,
    /// The last valid version of every pool, kept when an edit breaks one.
    last_good: Objects,
    /// Services to plan.
    dirty: BTreeSet<String>,
    /// Pools or namespaces changed.
    config_dirty: bool,
    /// Services whose writes failed, planned again shortly.
    retry: BTreeSet<String>,
    /// The list behind a rebuild failed; try again shortly.
    rebuild_failed: bool,
    /// The ConfigurationState status last written or read, to write only changes.
    written_state: Option<ConfigState>,
    /// Pools whose metrics are exported, to drop the series of a deleted or broken pool.
    exported_pools: BTreeSet<String>,
    /// What the current configuration was built from (see [`config_input`]).
    config_input: Option<String>,
}

/// The parts of pools and namespaces that allocation reads, as one comparable text: pool
/// names, labels, creation times (older wins an overlap) and specs, and namespace labels.
fn config_input(
    pools: &[Arc<IPAddressPool>],
    namespace_labels: &BTreeMap<String, Labels>,
) -> String {
    let mut pools: Vec<_> = pools
        .iter()
        .map(|p| {
            json!([
                p.name_any(),
                p.metadata.labels,
                p.metadata.creation_timestamp,
                p.spec
            ])
        })
        .collect();
    pools.sort_by_key(|p| p[0].as_str().map(str::to_owned));
    json!([pools, namespace_labels]).to_string()
}

impl Task {
    fn is_leading(&self) -> bool {
        *self.shared.leading.borrow()
    }

    /// A new leader starts from scratch: its allocator is rebuilt from a fresh list of Services
    /// before it writes, and a replica that stops leading forgets its allocator.
    fn leadership_changed(&mut self, leading: bool) {
        tracing::info!(leading, "leadership changed");
        self.shared.health.set_leading(leading);
        self.shared.health.set_rebuilt(false);
        self.shared.metrics.leader.set(i64::from(leading));
        self.allocator = None;
        self.written_state = None;
        self.config_dirty = true;
    }

    fn note(&mut self, change: Result<Change, watcher::Error>) {
        let change = match change {
            Ok(change) => change,
            Err(error) => {
                // The watcher retries with backoff by itself; the stores keep their contents.
                tracing::warn!(%error, "watch failed; retrying");
                return;
            }
        };
        if change.synced {
            self.synced[change.source as usize] = true;
        }
        if change.source == Source::Services {
            self.dirty.extend(change.keys);
        } else if !change.keys.is_empty() || change.synced {
            self.config_dirty = true;
        }
    }

    fn namespace_labels(&self) -> BTreeMap<String, Labels> {
        self.namespaces
            .state()
            .iter()
            .map(|n| (n.name_any(), n.labels().clone()))
            .collect()
    }

    async fn work(&mut self) {
        if !self.synced.iter().all(|s| *s) {
            return;
        }
        self.shared.health.set_synced(true);
        if !self.is_leading() {
            // A standby only keeps its stores; the leader plans everything once it takes over.
            self.dirty.clear();
            self.retry.clear();
            return;
        }
        let namespace_labels = self.namespace_labels();
        let mut input = None;
        if self.config_dirty && self.allocator.is_some() {
            // Our own pool status writes come back as pool events; only a change to what
            // selection reads (specs, labels, ages, namespace labels) re-plans every Service.
            let fingerprint = config_input(&self.pools.state(), &namespace_labels);
            if self.config_input.as_ref() == Some(&fingerprint) {
                self.config_dirty = false;
            }
            input = Some(fingerprint);
        }
        if self.config_dirty || self.allocator.is_none() {
            let objects = Objects {
                pools: self.pools.state().iter().map(|p| (**p).clone()).collect(),
                ..Objects::default()
            };
            self.config_input =
                Some(input.unwrap_or_else(|| config_input(&self.pools.state(), &namespace_labels)));
            let (built, last_good) = config::build_keeping_last_good(&objects, &self.last_good);
            for problem in &built.problems {
                tracing::warn!(reason = problem.reason(), "{problem}");
            }
            let state = ConfigState::from_problems(POOL_RECONCILER_CONDITION, &built.problems);
            let metrics = &self.shared.metrics;
            metrics.config_updates.inc();
            if state.is_invalid() {
                metrics.config_update_errors.inc();
            }
            metrics.config_loaded.set(1);
            metrics.config_stale.set(i64::from(state.is_invalid()));
            self.write_configuration_state(state).await;
            self.last_good = last_good;
            match &mut self.allocator {
                Some(allocator) => allocator.set_pools(&built.config.pools),
                None => {
                    let Some(allocator) =
                        self.rebuild(&built.config.pools, &namespace_labels).await
                    else {
                        return;
                    };
                    self.allocator = Some(allocator);
                    self.shared.health.set_rebuilt(true);
                }
            }
            self.config_dirty = false;
            self.dirty
                .extend(self.services.state().iter().map(|s| plan::service_key(s)));
        }
        let dirty = std::mem::take(&mut self.dirty);
        let pending: Vec<Pending> = dirty
            .iter()
            .filter_map(|key| self.plan_one(key, &namespace_labels))
            .collect();
        if !self.is_leading() {
            return;
        }
        let (client, recorder) = (&self.client, &self.recorder);
        let results: Vec<_> = futures::stream::iter(
            pending
                .into_iter()
                .map(|pending| carry_out(client, recorder, pending)),
        )
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await;
        for result in results {
            self.shared.metrics.count_write(result.is_ok());
            if let Err((key, error)) = result {
                tracing::warn!(service = key, %error, "writing the service failed; retrying");
                self.retry.insert(key);
            }
        }
        self.write_pool_status().await;
    }

    /// An allocator holding what Service statuses show, read with a fresh list rather than from
    /// the store: after a takeover the store may not yet show the old leader's last writes.
    async fn rebuild(
        &mut self,
        pools: &BTreeMap<String, ferrolb_api::config::Pool>,
        namespace_labels: &BTreeMap<String, Labels>,
    ) -> Option<Allocator> {
        let api: Api<Service> = Api::all(self.client.clone());
        let listed = match api.list(&ListParams::default()).await {
            Ok(listed) => listed,
            Err(error) => {
                tracing::warn!(%error, "listing Services for the rebuild failed; retrying");
                self.rebuild_failed = true;
                return None;
            }
        };
        self.rebuild_failed = false;
        let mut allocator = Allocator::new(pools);
        let failed = plan::rebuild(
            listed.items.iter(),
            self.settings.lb_class.as_deref(),
            namespace_labels,
            &mut allocator,
        );
        tracing::info!(
            restored = allocator.service_count(),
            not_restored = failed.len(),
            "allocator rebuilt from Service statuses"
        );
        Some(allocator)
    }

    /// Writes the `ConfigurationState` status when it differs from what is there.
    async fn write_configuration_state(&mut self, state: ConfigState) {
        let api: Api<ConfigurationState> =
            Api::namespaced(self.client.clone(), &self.settings.namespace);
        if self.written_state.is_none() {
            match api.get_opt(CONFIGURATION_STATE_NAME).await {
                Ok(Some(existing)) => {
                    self.written_state = existing
                        .status
                        .as_ref()
                        .map(|s| ConfigState::of(POOL_RECONCILER_CONDITION, s));
                }
                Ok(None) => {
                    let object = json!({
                        "apiVersion": "metallb.io/v1beta1",
                        "kind": "ConfigurationState",
                        "metadata": {
                            "name": CONFIGURATION_STATE_NAME,
                            "labels": {COMPONENT_LABEL: "controller"},
                        },
                        "spec": {},
                    });
                    let created = match serde_json::from_value::<ConfigurationState>(object) {
                        Ok(object) => api.create(&PostParams::default(), &object).await,
                        Err(error) => {
                            tracing::warn!(%error, "building the ConfigurationState failed");
                            return;
                        }
                    };
                    if let Err(error) = created {
                        tracing::debug!(%error, "ConfigurationState not created");
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "ConfigurationState not read");
                    return;
                }
            }
        }
        if self.written_state.as_ref() == Some(&state) {
            return;
        }
        let patch = state.status_patch(k8s_openapi::jiff::Timestamp::now());
        let result = api
            .patch_status(
                CONFIGURATION_STATE_NAME,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await;
        self.shared.metrics.count_write(result.is_ok());
        match result {
            Ok(_) => self.written_state = Some(state),
            Err(error) => tracing::debug!(%error, "ConfigurationState not written"),
        }
    }

    /// Plans one Service, updating the allocator; the writes it needs, if any.
    fn plan_one(
        &mut self,
        key: &str,
        namespace_labels: &BTreeMap<String, Labels>,
    ) -> Option<Pending> {
        let allocator = self.allocator.as_mut()?;
        let (namespace, name) = key.split_once('/').unwrap_or(("", key));
        let Some(service) = self.services.get(&ObjectRef::new(name).within(namespace)) else {
            allocator.release(key);
            return None;
        };
        let empty = Labels::new();
        let plan = plan::plan(
            &service,
            self.settings.lb_class.as_deref(),
            namespace_labels.get(namespace).unwrap_or(&empty),
            allocator,
        );
        let Plan::Set { ips, pool, events } = plan else {
            return None;
        };
        let unchanged = plan::current_ips(&service) == ips
            && plan::current_pool(&service) == pool
            && events.is_empty();
        (!unchanged).then(|| Pending {
            key: key.to_owned(),
            service,
            ips,
            pool,
            events,
        })
    }
}

/// Writes one planned Service needs. The allocator decided them in order; carrying them out
/// touches distinct objects, so they run concurrently.
struct Pending {
    key: String,
    service: Arc<Service>,
    ips: Vec<std::net::IpAddr>,
    pool: Option<String>,
    events: Vec<plan::PlannedEvent>,
}

/// How many Services are written at once: enough to hide API round trips under a burst.
const WRITE_CONCURRENCY: usize = 32;

/// Patches the status and the annotation where they differ from the plan, then records the
/// Events. Returns the key and the error of a failed write.
async fn carry_out(
    client: &Client,
    recorder: &Recorder,
    pending: Pending,
) -> Result<(), (String, kube::Error)> {
    let service = &pending.service;
    let api: Api<Service> =
        Api::namespaced(client.clone(), &service.namespace().unwrap_or_default());
    let name = service.name_any();
    let fail = |error| (pending.key.clone(), error);
    if plan::current_ips(service) != pending.ips {
        let ingress: Vec<_> = pending
            .ips
            .iter()
            .map(|ip| json!({"ip": ip.to_string(), "ipMode": "VIP"}))
            .collect();
        let patch = json!({"status": {"loadBalancer": {"ingress": ingress}}});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(fail)?;
    }
    if plan::current_pool(service) != pending.pool {
        let annotation = service::annotation_key(IP_ALLOCATED_FROM_POOL);
        let patch = json!({"metadata": {"annotations": {annotation: pending.pool}}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(fail)?;
    }
    if pending.events.is_empty() {
        return Ok(());
    }
    // Events explain a change already written; recording them off the write path keeps the
    // next Services' EXTERNAL-IPs from waiting on them.
    let recorder = recorder.clone();
    let reference = service.object_ref(&());
    let key = pending.key;
    tokio::spawn(async move {
        for planned in pending.events {
            let event = Event {
                type_: match planned.type_ {
                    EventType::Normal => KubeEventType::Normal,
                    EventType::Warning => KubeEventType::Warning,
                },
                reason: planned.reason.to_owned(),
                note: Some(planned.message),
                action: "Allocate".into(),
                secondary: None,
            };
            if let Err(error) = recorder.publish(&event, &reference).await {
                tracing::debug!(service = key, %error, "event not recorded");
            }
        }
    });
    Ok(())
}

impl Task {
    /// Keeps every pool's counters current; writes only what changed.
    async fn write_pool_status(&mut self) {
        let Some(allocator) = &self.allocator else {
            return;
        };
        let api: Api<IPAddressPool> =
            Api::namespaced(self.client.clone(), &self.settings.namespace);
        let clamp = |n: u128| i64::try_from(n).unwrap_or(i64::MAX);
        let mut exported = BTreeSet::new();
        for pool in self.pools.state() {
            let Some(usage) = allocator.usage(&pool.name_any()) else {
                continue;
            };
            self.shared.metrics.set_pool(&pool.name_any(), &usage);
            exported.insert(pool.name_any());
            let want = IPAddressPoolStatus {
                assigned_ipv4: clamp(usage.assigned_v4),
                assigned_ipv6: clamp(usage.assigned_v6),
                available_ipv4: clamp(usage.available_v4),
                available_ipv6: clamp(usage.available_v6),
            };
            if pool.status.as_ref() == Some(&want) {
                continue;
            }
            let patch = json!({"status": want});
            if let Err(error) = api
                .patch_status(
                    &pool.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                tracing::debug!(pool = pool.name_any(), %error, "pool status not written");
            }
        }
        for gone in self.exported_pools.difference(&exported) {
            self.shared.metrics.remove_pool(gone);
        }
        self.exported_pools = exported;
    }
}
