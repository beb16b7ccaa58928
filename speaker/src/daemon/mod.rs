//! The speaker daemon: the shell around [`crate::plan`]. It feeds watches, membership and link
//! changes in, and carries the plan out through the L2 responder, the BGP sessions and a few
//! API writes. It decides nothing the pure modules do not.
//!
//! ```text
//!  watches (12 stores) ─┐                      ┌─► Responder: announce / withdraw (ARP, NDP)
//!  members: live set  ──┼─► daemon task ───────┼─► BGP peer tasks: SetRoutes / Stop
//!  rtnetlink links ─────┤   plan → diff        ├─► ServiceL2Status / ServiceBGPStatus writes
//!  ticks (join, stats) ─┘                      └─► Events on Services and config objects
//! ```
//! Nothing is planned until every watch has listed once and, with gossip on, the membership has
//! settled, so a restarted speaker never claims IPs it would give back a moment later.
//!
//! - `watch`: the reflector stores. - `bgp`: the session tasks. - `writer`: API writes.

pub mod bgp;
pub mod config_state;
pub mod statuses;
pub mod watch;
pub mod writer;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrolb_api::config::{self, Config, Objects};
use ferrolb_api::config_state::{CONFIG_RECONCILER_CONDITION, ConfigState};
use ferrolb_api::selector;
use ferrolb_proto::l2::counters::{Family, FamilySnapshot};
use ferrolb_proto::l2::error::L2Error;
use ferrolb_proto::l2::link::{LinkEvent, LinkInfo, LinkWatcher};
use ferrolb_proto::l2::{Responder, ResponderConfig};
use ferrolb_proto::time::sleep_until;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use tokio::net::UdpSocket;
use tokio::sync::watch as tokio_watch;
use tokio::time::Instant;

use crate::apply::bgp::{NodeAddresses, session_spec};
use crate::apply::l2::{self as l2_diff, L2State};
use crate::cluster;
use crate::inputs::ServiceInputs;
use crate::interfaces::{self, InterfaceFilter};
use crate::members::{Budget, Key, Members, SpeakerId};
use crate::metrics::{Metrics, Series};
use crate::plan::{self, Announcements, ClusterState};
use crate::status::{self, StatusView};
use bgp::Sessions;
use watch::{InputEvent, Source, Stores, WATCHES, read_statuses};
use writer::{PodRef, Writer};

/// How long a new speaker waits for the membership to show every Ready node before planning L2
/// anyway (nodes without a running speaker never show up).
const MEMBERS_SETTLE: Duration = Duration::from_secs(2);
/// How often speakers known from Node objects but missing from the membership are asked to join.
const JOIN_INTERVAL: Duration = Duration::from_secs(2);
/// How often the L2 counters are copied into the metrics, and free memory is handed back
/// after large plans.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(5);
/// A plan taking this long means a large cluster or a burst of changes: worth a trim after.
const BUSY_PLAN: Duration = Duration::from_millis(10);
/// Watch events arriving within this window share one plan (a status write of ours, a burst of
/// EndpointSlice updates). Membership and link changes are planned at once.
const WATCH_DEBOUNCE: Duration = Duration::from_millis(20);
/// Our status objects changed on the API server (mostly our own writes coming back): the status
/// task compares them with the plan again after this pause. They do not change the plan.
const STATUS_RECHECK: Duration = Duration::from_secs(1);

/// Gossip membership settings.
#[derive(Debug, Clone)]
pub struct MembersSettings {
    /// Address to gossip on; `None`: the Node's first InternalIP and `port`.
    pub bind: Option<SocketAddr>,
    /// The gossip port of every speaker.
    pub port: u16,
    /// Shared key authenticating every datagram.
    pub key: Key,
}

/// How the speaker is set up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's name.
    pub node: String,
    /// Namespace of FerroLB's configuration and status objects.
    pub namespace: String,
    /// The `loadBalancerClass` served; `None` serves Services without one.
    pub lb_class: Option<String>,
    /// Announce from nodes labelled to be excluded from external load balancers too.
    pub ignore_exclude_lb: bool,
    /// Interfaces never used unless named.
    pub interface_filter: InterfaceFilter,
    /// Gossip; `None` takes every Node not NotReady as alive (MetalLB without memberlist).
    pub members: Option<MembersSettings>,
    /// Next hops and router ID source; empty: the Node's addresses.
    pub node_addresses: Vec<IpAddr>,
    /// Gratuitous ARP / unsolicited NA rounds.
    pub responder: ResponderConfig,
    /// The speaker's Pod, owner of the objects it writes; `None` outside a Pod.
    pub pod: Option<PodRef>,
}

/// Why the daemon stopped.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The L2 responder could not start (it needs CAP_NET_RAW) or stopped.
    #[error("L2 responder: {0}")]
    Responder(#[source] L2Error),
    /// The link watch failed.
    #[error("link watch: {0}")]
    Links(#[source] L2Error),
    /// The gossip socket could not be opened.
    #[error("membership on {addr}: {source}")]
    Members {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Our Node has no address to gossip on.
    #[error("node {0} has no InternalIP to gossip on; pass --members-bind")]
    NoMembersAddress(String),
    /// The watch streams ended, which kube-runtime's watchers never do on their own.
    #[error("the watches ended")]
    WatchEnded,
}

/// Runs the speaker until `shutdown` completes, then leaves the membership, stops answering
/// and closes BGP sessions as before a restart (routers keep our routes where graceful restart
/// was negotiated).
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let (stores, mut changes) = watch::start(
        &client,
        &settings.namespace,
        &settings.node,
        settings.lb_class.clone(),
    );
    let mut links = LinkWatcher::open().map_err(DaemonError::Links)?;
    let (responder, _responder_task) = Responder::start(settings.responder.clone())
        .await
        .map_err(DaemonError::Responder)?;
    let writer = Writer::new(
        client,
        settings.namespace.clone(),
        settings.node.clone(),
        settings.pod.clone(),
        metrics.clone(),
    );
    let config_state = config_state::spawn(writer.clone());
    let statuses = statuses::spawn(
        writer.clone(),
        stores.l2_statuses.clone(),
        stores.bgp_statuses.clone(),
    );
    let mut daemon = Daemon {
        sessions: Sessions::new(metrics.clone()),
        settings,
        stores,
        inputs: ServiceInputs::default(),
        writer,
        metrics,
        responder,
        ready,
        links: BTreeMap::new(),
        link_names: HashMap::new(),
        l2: L2State::new(),
        last_good: Objects::default(),
        last: Announcements::default(),
        reported_problems: BTreeSet::new(),
        announce_failed: BTreeSet::new(),
        members: None,
        live: None,
        members_started: None,
        live_changed_at: None,
        l2_counters: BTreeMap::new(),
        statuses,
        config_state,
        stepped_down: BTreeSet::new(),
        bgp_started: false,
        last_replan_took: Duration::ZERO,
        busy_since_trim: false,
    };
    let mut synced: BTreeSet<usize> = BTreeSet::new();
    let mut join_tick = tokio::time::interval(JOIN_INTERVAL);
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    // When the membership has had time to settle: plan then even if nothing else changed.
    // An Option, not a `Sleep`: an elapsed `Sleep` is ready at every poll, which made the
    // loop plan back to back forever.
    let mut settle_at: Option<Instant> = None;
    let mut replan_at: Option<Instant> = None;
    let mut recheck_statuses_at: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let mut dirty = false;
        tokio::select! {
            () = &mut shutdown => break,
            change = changes.next() => {
                let Some((index, change)) = change else {
                    return Err(DaemonError::WatchEnded);
                };
                if change.synced {
                    synced.insert(index);
                }
                let changes_plan = match change.input {
                    Some(input) => daemon.take_input(input),
                    None => change.source != Source::Statuses,
                };
                if change.source == Source::Statuses {
                    recheck_statuses_at.get_or_insert_with(|| Instant::now() + STATUS_RECHECK);
                }
                if changes_plan || change.synced {
                    let wait = WATCH_DEBOUNCE.max(daemon.last_replan_took);
                    replan_at.get_or_insert_with(|| Instant::now() + wait);
                }
            }
            () = sleep_until(replan_at) => dirty = true,
            () = sleep_until(recheck_statuses_at) => {
                recheck_statuses_at = None;
                daemon.statuses.send_modify(|_| {});
            }
            changed = wait_live(&mut daemon.live) => {
                if changed {
                    daemon.live_changed_at = Some(Instant::now());
                    dirty = true;
                }
            }
            event = links.next() => {
                daemon.on_link(event.map_err(DaemonError::Links)?);
                dirty = true;
            }
            () = sleep_until(settle_at) => {
                settle_at = None;
                dirty = true;
            }
            _ = join_tick.tick() => daemon.join_missing().await,
            _ = housekeeping.tick() => {
                daemon.copy_l2_counters().await;
                if std::mem::take(&mut daemon.busy_since_trim) {
                    crate::memory::trim();
                }
            }
        }
        if synced.len() < WATCHES || !dirty {
            continue;
        }
        replan_at = None;
        if daemon.members_started.is_none() && daemon.settings.members.is_some() {
            daemon.start_members().await?;
            settle_at = Some(Instant::now() + MEMBERS_SETTLE);
        }
        let started = Instant::now();
        daemon.replan().await;
        daemon.last_replan_took = started.elapsed();
        daemon.busy_since_trim |= daemon.last_replan_took >= BUSY_PLAN;
    }
    daemon.stop().await;
    Ok(())
}

/// Resolves when the live set changes (`true`), never when there is no membership.
async fn wait_live(live: &mut Option<tokio_watch::Receiver<BTreeSet<String>>>) -> bool {
    match live {
        Some(receiver) => match receiver.changed().await {
            Ok(()) => true,
            // The membership stopped (we left it): nothing more will change.
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// The daemon task's state; each field is owned here and nowhere else.
struct Daemon {
    settings: Settings,
    stores: Stores,
    /// Services and their endpoints, as the plan reads them.
    inputs: ServiceInputs,
    writer: Writer,
    metrics: Metrics,
    responder: Responder,
    sessions: Sessions,
    ready: Arc<AtomicBool>,
    /// Links by name, and names by index (removals only carry the index).
    links: BTreeMap<String, LinkInfo>,
    link_names: HashMap<u32, String>,
    /// What the responder answers for now.
    l2: L2State,
    /// The configuration objects last known valid (kept while an edit breaks them).
    last_good: Objects,
    /// The previous plan, to tell what changed.
    last: Announcements,
    /// Config problems already reported with an Event.
    reported_problems: BTreeSet<String>,
    /// IPs already reported as impossible to announce here.
    announce_failed: BTreeSet<IpAddr>,
    members: Option<Members>,
    live: Option<tokio_watch::Receiver<BTreeSet<String>>>,
    members_started: Option<Instant>,
    /// When the live set last changed, until the next plan has used it.
    live_changed_at: Option<Instant>,
    /// Last L2 counter values copied into the metrics.
    l2_counters: BTreeMap<(String, Family), FamilySnapshot>,
    /// The status task's wish list.
    statuses: tokio_watch::Sender<Option<statuses::Wanted>>,
    /// What this node's `ConfigurationState` should say.
    config_state: tokio_watch::Sender<Option<ConfigState>>,
    /// Interfaces whose loss of carrier made this node leave the membership (so another node
    /// answers); it rejoins when they all have carrier again.
    stepped_down: BTreeSet<String>,
    /// The first BGP plan has been applied (sessions started after it are not restarts).
    bgp_started: bool,
    /// How long the last plan took: watch-driven plans wait at least that long, so a large
    /// cluster's event stream never keeps the speaker planning back to back.
    last_replan_took: Duration,
    /// A large plan ran since the allocator last handed free memory back.
    busy_since_trim: bool,
}

impl Daemon {
    /// Takes a Services or EndpointSlices event; returns whether the plan's inputs changed.
    fn take_input(&mut self, input: InputEvent) -> bool {
        match input {
            InputEvent::Service(input) => self.inputs.on_service(input),
            InputEvent::Slice(input) => self.inputs.on_slice(input),
        }
    }

    fn on_link(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Changed(link) => {
                if let Some(old) = self.link_names.insert(link.index, link.name.clone())
                    && old != link.name
                {
                    self.links.remove(&old);
                }
                self.links.insert(link.name.clone(), link);
            }
            LinkEvent::Removed { index, name } => {
                if let Some(name) = self.link_names.remove(&index).or(name) {
                    self.links.remove(&name);
                }
            }
            LinkEvent::Synced => {}
        }
    }

    fn my_node(&self) -> Option<Arc<Node>> {
        self.stores
            .nodes
            .state()
            .into_iter()
            .find(|n| n.metadata.name.as_deref() == Some(self.settings.node.as_str()))
    }

    fn node_addresses(&self) -> Vec<IpAddr> {
        if !self.settings.node_addresses.is_empty() {
            return self.settings.node_addresses.clone();
        }
        self.my_node()
            .map(|n| cluster::node_addresses(&n))
            .unwrap_or_default()
    }

    async fn start_members(&mut self) -> Result<(), DaemonError> {
        let Some(members) = &self.settings.members else {
            return Ok(());
        };
        let addr = match members.bind {
            Some(addr) => addr,
            None => {
                let ip = self
                    .node_addresses()
                    .first()
                    .copied()
                    .ok_or_else(|| DaemonError::NoMembersAddress(self.settings.node.clone()))?;
                SocketAddr::new(ip, members.port)
            }
        };
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|source| DaemonError::Members { addr, source })?;
        let generation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        let me = SpeakerId {
            node: self.settings.node.clone(),
            addr,
            generation,
        };
        let started = Members::start(me, socket, members.key.clone(), &Budget::Lan)
            .map_err(|source| DaemonError::Members { addr, source })?;
        tracing::info!(%addr, "gossip membership started");
        self.live = Some(started.live());
        self.members = Some(started);
        self.members_started = Some(Instant::now());
        self.join_missing().await;
        Ok(())
    }

    /// Asks the speakers of Nodes missing from the membership to let us in.
    async fn join_missing(&self) {
        let (Some(members), Some(settings)) = (&self.members, &self.settings.members) else {
            return;
        };
        let live = members.live().borrow().clone();
        let seeds: Vec<SocketAddr> = self
            .stores
            .nodes
            .state()
            .iter()
            .filter(|n| {
                let name = n.name_any();
                name != self.settings.node && !live.contains(&name)
            })
            .filter_map(|n| cluster::node_addresses(n).first().copied())
            .map(|ip| SocketAddr::new(ip, settings.port))
            .collect();
        if !seeds.is_empty() {
            members.join(seeds).await;
        }
    }

    /// The nodes taken as alive: the gossip's view (or every Node without gossip), minus Nodes
    /// the kubelet reports NotReady.
    fn live_nodes(&self, nodes: &[Arc<Node>]) -> BTreeSet<String> {
        let base: BTreeSet<String> = match &self.live {
            Some(live) => live.borrow().clone(),
            None => nodes.iter().map(|n| n.name_any()).collect(),
        };
        let not_ready: BTreeSet<String> = nodes
            .iter()
            .filter(|n| cluster::is_ready(n) == Some(false))
            .map(|n| n.name_any())
            .collect();
        let mut live: BTreeSet<String> = base.difference(&not_ready).cloned().collect();
        if !self.stepped_down.is_empty() {
            live.remove(&self.settings.node);
        }
        live
    }

    fn is_stepped_down(&self) -> bool {
        !self.stepped_down.is_empty()
    }

    /// Leaves the membership when an announcing interface lost carrier and nothing else can
    /// answer for the IP, so the others elect a new owner; rejoins once carrier is back.
    async fn follow_carrier(&mut self, announcements: &Announcements) {
        if self.settings.members.is_none() {
            return;
        }
        if self.stepped_down.is_empty() {
            let lost: BTreeSet<String> = announcements
                .l2
                .values()
                .flat_map(|a| {
                    interfaces::lost_carrier(
                        &a.interfaces,
                        &self.links,
                        &self.settings.interface_filter,
                    )
                })
                .collect();
            if lost.is_empty() {
                return;
            }
            tracing::warn!(interfaces = ?lost, "carrier lost; leaving the membership so another node answers");
            self.stepped_down = lost;
            if let Some(members) = self.members.take() {
                members.leave().await;
            }
            self.live_changed_at = Some(Instant::now());
        } else if self
            .stepped_down
            .iter()
            .all(|name| self.links.get(name).is_none_or(|l| l.has_carrier))
        {
            tracing::info!(interfaces = ?self.stepped_down, "carrier back; rejoining the membership");
            self.stepped_down.clear();
            if let Err(error) = self.start_members().await {
                tracing::error!(%error, "cannot rejoin the membership");
            }
        }
    }

    /// Gossip has had time to show who is alive.
    fn membership_settled(&self, nodes: &[Arc<Node>], live: &BTreeSet<String>) -> bool {
        let Some(started) = self.members_started else {
            return true;
        };
        let everyone = nodes
            .iter()
            .filter(|n| cluster::is_ready(n) != Some(false))
            .all(|n| live.contains(&n.name_any()));
        everyone || started.elapsed() >= MEMBERS_SETTLE
    }

    fn objects(&self, nodes: &[Arc<Node>]) -> Objects {
        fn owned<K: Clone + Resource + 'static>(store: &Store<K>) -> Vec<K>
        where
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            store.state().iter().map(|o| (**o).clone()).collect()
        }
        Objects {
            pools: owned(&self.stores.pools),
            l2_advertisements: owned(&self.stores.l2_advertisements),
            bgp_advertisements: owned(&self.stores.bgp_advertisements),
            bgp_peers: owned(&self.stores.peers),
            bfd_profiles: owned(&self.stores.bfd_profiles),
            communities: owned(&self.stores.communities),
            secrets: Some(owned(&self.stores.secrets)),
            nodes: Some(nodes.iter().map(|n| (**n).clone()).collect()),
        }
    }

    /// Builds the configuration, keeping the last good version of objects an edit broke, and
    /// reports each new problem once with a Warning Event on the object.
    fn configuration(&mut self, nodes: &[Arc<Node>]) -> Config {
        let objects = self.objects(nodes);
        let (built, good) = config::build_keeping_last_good(&objects, &self.last_good);
        self.last_good = good;
        self.metrics.config_loaded.set(1);
        self.metrics
            .config_stale
            .set(i64::from(!built.problems.is_empty()));
        self.metrics
            .config_updates
            .with_label_values(&[] as &[&str])
            .inc();
        let now: BTreeSet<String> = built.problems.iter().map(ToString::to_string).collect();
        for problem in &built.problems {
            let text = problem.to_string();
            if self.reported_problems.contains(&text) {
                continue;
            }
            tracing::warn!(problem = text, "configuration object ignored");
            let reference = ObjectReference {
                api_version: Some("metallb.io/v1beta1".into()),
                kind: Some(problem.kind.to_string()),
                name: Some(problem.name.clone()),
                namespace: Some(self.settings.namespace.clone()),
                ..ObjectReference::default()
            };
            self.writer.event(
                &reference,
                true,
                "ConfigurationError",
                format!("ignored by the speaker on {}: {text}", self.settings.node),
            );
        }
        self.reported_problems = now;
        let state = ConfigState::from_problems(CONFIG_RECONCILER_CONDITION, &built.problems);
        statuses::publish_wish(&self.config_state, state);
        built.config
    }

    async fn replan(&mut self) {
        let nodes = self.stores.nodes.state();
        let live = self.live_nodes(&nodes);
        self.metrics
            .members_live
            .set(i64::try_from(live.len()).unwrap_or(i64::MAX));
        let config = self.configuration(&nodes);
        let node_infos: Vec<_> = nodes.iter().map(|n| cluster::node_info(n)).collect();
        // Borrowed by the plan while `follow_carrier` needs `self`; put back below.
        let inputs = std::mem::take(&mut self.inputs);
        let state = ClusterState {
            config: &config,
            nodes: &node_infos,
            services: inputs.services(),
            ignore_exclude_lb: self.settings.ignore_exclude_lb,
        };
        let mut announcements = plan::plan(&self.settings.node, &state, &live);
        let was_stepped_down = self.is_stepped_down();
        self.follow_carrier(&announcements).await;
        if was_stepped_down != self.is_stepped_down() {
            let live = self.live_nodes(&nodes);
            announcements = plan::plan(&self.settings.node, &state, &live);
        }
        self.inputs = inputs;
        if !self.membership_settled(&nodes, &live) {
            // Keep what we answer for; claim nothing new until gossip has shown who is alive.
            announcements.l2.retain(|ip, _| self.l2.contains_key(ip));
        }
        self.apply_l2(&announcements).await;
        self.apply_bgp(&config, &announcements).await;
        self.set_announced_metric(&announcements);
        self.publish_statuses(&announcements);
        self.last = announcements;
        self.live_changed_at = None;
        self.ready.store(true, Ordering::Relaxed);
    }

    async fn apply_l2(&mut self, announcements: &Announcements) {
        let wanted: L2State = announcements
            .l2
            .iter()
            .map(|(ip, a)| {
                (
                    *ip,
                    interfaces::resolve(
                        &a.interfaces,
                        &self.links,
                        &self.settings.interface_filter,
                    ),
                )
            })
            .collect();
        for (ip, interfaces) in &wanted {
            if interfaces.is_empty() && self.announce_failed.insert(*ip) {
                let services = announcements
                    .l2
                    .get(ip)
                    .map(|a| a.services.clone())
                    .unwrap_or_default();
                for service in services {
                    let note = format!(
                        "node {} has no usable interface to announce {ip} on",
                        self.settings.node
                    );
                    tracing::warn!(%ip, service, "{note}");
                    self.service_event(&service, true, "announceFailed", note);
                }
            }
        }
        self.announce_failed
            .retain(|ip| wanted.get(ip).is_some_and(BTreeSet::is_empty));
        let changes = l2_diff::diff(&self.l2, &wanted);
        for ip in &changes.withdraw {
            match self.responder.withdraw(*ip).await {
                Ok(()) => {
                    self.l2.remove(ip);
                    tracing::info!(%ip, "stopped announcing");
                }
                Err(error) => tracing::warn!(%ip, %error, "withdraw failed"),
            }
        }
        let mut taken_over: BTreeSet<String> = BTreeSet::new();
        for (ip, interfaces) in changes.announce {
            match self
                .responder
                .announce(ip, interfaces.iter().cloned())
                .await
            {
                Ok(()) => {
                    tracing::info!(%ip, ?interfaces, "announcing");
                    self.l2.insert(ip, interfaces);
                    if let Some(a) = announcements.l2.get(&ip) {
                        taken_over.extend(a.services.iter().cloned());
                    }
                }
                Err(error) => tracing::warn!(%ip, %error, "announce failed"),
            }
        }
        let with_status = if taken_over.is_empty() {
            BTreeSet::new()
        } else {
            read_statuses(&self.stores.l2_statuses, StatusView::services)
        };
        for service in taken_over {
            let previous = self.last.l2_owners.get(&service).cloned();
            let had_status = with_status.contains(&service);
            if previous.as_deref() == Some(self.settings.node.as_str())
                || (previous.is_none() && had_status)
            {
                continue;
            }
            let mut note = format!(
                "announcing from node \"{}\" with protocol \"layer2\"",
                self.settings.node
            );
            if let Some(previous) = &previous {
                let why = if is_live(&self.live, previous) {
                    "is no longer eligible"
                } else {
                    "left the speaker membership"
                };
                note.push_str(&format!(": previous node \"{previous}\" {why}"));
                if let Some(at) = self.live_changed_at {
                    let took = at.elapsed();
                    self.metrics.takeover_seconds.observe(took.as_secs_f64());
                    note.push_str(&format!(
                        "; announced {} ms after the membership change",
                        took.as_millis()
                    ));
                }
            }
            self.service_event(&service, false, "nodeAssigned", note);
        }
    }

    async fn apply_bgp(&mut self, config: &Config, announcements: &Announcements) {
        let Some(node) = self.my_node() else {
            self.sessions.apply(BTreeMap::new()).await;
            return;
        };
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let addresses = NodeAddresses::from_list(&self.node_addresses());
        let empty = BTreeMap::new();
        let mut wanted = BTreeMap::new();
        for peer in config.peers.values() {
            if !selector::matches_any(&peer.node_selectors, &labels) {
                continue;
            }
            let spec = match session_spec(peer, &self.settings.node, addresses) {
                Ok(spec) => spec,
                Err(error) => {
                    if self.reported_problems.insert(error.to_string()) {
                        tracing::warn!(%error, reason = error.reason(), "BGP peer not started");
                    }
                    continue;
                }
            };
            let planned = announcements.bgp.get(&peer.name).unwrap_or(&empty);
            let (routes, without_next_hop) = crate::apply::bgp::routes(planned, spec.next_hops);
            if !without_next_hop.is_empty() {
                tracing::warn!(peer = peer.name, prefixes = ?without_next_hop, "no next hop of that family on this node");
            }
            wanted.insert(peer.name.clone(), (spec, routes));
        }
        if !self.bgp_started {
            // A previous run of this speaker advertised if it left status objects behind.
            let advertised_before = !read_statuses(&self.stores.bgp_statuses, StatusView::is_empty);
            self.sessions.set_restarting(advertised_before);
        }
        let newly: Vec<String> = announcements
            .bgp_peers_by_service
            .keys()
            .filter(|s| !self.last.bgp_peers_by_service.contains_key(*s))
            .cloned()
            .collect();
        self.sessions.apply(wanted).await;
        if !self.bgp_started {
            self.bgp_started = true;
            self.sessions.set_restarting(false);
        }
        let with_status = if newly.is_empty() {
            BTreeSet::new()
        } else {
            read_statuses(&self.stores.bgp_statuses, StatusView::services)
        };
        for service in newly {
            if with_status.contains(&service) {
                continue;
            }
            let note = format!(
                "announcing from node \"{}\" with protocol \"bgp\"",
                self.settings.node
            );
            self.service_event(&service, false, "nodeAssigned", note);
        }
    }

    /// Keeps `metallb_speaker_announced` in step with what is announced.
    fn set_announced_metric(&self, announcements: &Announcements) {
        let node = &self.settings.node;
        let mut now: BTreeSet<Series> = BTreeSet::new();
        for (ip, a) in &announcements.l2 {
            for service in &a.services {
                now.insert([
                    service.clone(),
                    "layer2".into(),
                    node.clone(),
                    ip.to_string(),
                ]);
            }
        }
        for service in announcements.bgp_peers_by_service.keys() {
            now.insert([service.clone(), "bgp".into(), node.clone(), String::new()]);
        }
        self.metrics.announced.set(now);
    }

    fn publish_statuses(&self, announcements: &Announcements) {
        let node = &self.settings.node;
        let wanted = statuses::Wanted {
            l2: status::wanted_l2(node, announcements),
            bgp: status::wanted_bgp(node, announcements),
        };
        statuses::publish_wish(&self.statuses, wanted);
    }

    fn service_event(&self, service: &str, warning: bool, reason: &str, note: String) {
        let (namespace, name) = service.split_once('/').unwrap_or(("", service));
        let uid = self.inputs.uid(service).map(str::to_owned);
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            uid,
            ..ObjectReference::default()
        };
        self.writer.event(&reference, warning, reason, note);
    }

    /// Copies the responder's counters into the metrics (as increments since the last copy).
    async fn copy_l2_counters(&mut self) {
        let Ok(now) = self.responder.counters().await else {
            return;
        };
        for ((interface, family), snapshot) in &now {
            let before = self.l2_counters.get(&(interface.clone(), *family));
            let delta =
                |f: fn(&FamilySnapshot) -> u64| f(snapshot).saturating_sub(before.map_or(0, f));
            let labels = [interface.as_str(), family.protocol()];
            self.metrics
                .l2_requests
                .with_label_values(&labels)
                .inc_by(delta(|s| s.requests_seen));
            self.metrics
                .l2_responses
                .with_label_values(&labels)
                .inc_by(delta(|s| s.replies_sent));
            self.metrics
                .l2_gratuitous
                .with_label_values(&labels)
                .inc_by(delta(|s| s.announcements_sent));
            self.metrics
                .l2_dropped
                .with_label_values(&labels)
                .inc_by(delta(|s| s.dropped.values().sum()));
            self.metrics
                .l2_in_kernel
                .with_label_values(&labels)
                .inc_by(delta(|s| s.fast_path_replies));
        }
        self.l2_counters = now;
        if let Ok(paths) = self.responder.answer_paths().await {
            self.metrics.l2_answer_path.reset();
            for (interface, path) in &paths {
                self.metrics
                    .l2_answer_path
                    .with_label_values(&[interface.as_str(), path.label()])
                    .set(1);
            }
        }
    }

    /// Leaves the membership first, so the others take over while we still answer, then stops
    /// answering and closes the BGP sessions.
    async fn stop(mut self) {
        self.ready.store(false, Ordering::Relaxed);
        if let Some(members) = self.members.take() {
            members.leave().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        for ip in std::mem::take(&mut self.l2).into_keys() {
            let _ = self.responder.withdraw(ip).await;
        }
        self.sessions.stop_all_for_restart().await;
        tracing::info!("speaker stopped");
    }
}

fn is_live(live: &Option<tokio_watch::Receiver<BTreeSet<String>>>, node: &str) -> bool {
    live.as_ref().is_some_and(|l| l.borrow().contains(node))
}
