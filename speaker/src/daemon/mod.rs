//! The speaker daemon: the shell around the pure modules. It feeds watches, membership and link
//! changes in, and carries their decisions out through the L2 responder, the BGP sessions and a
//! few API writes.
//!
//! ```text
//!  watches (Watch) ─────┐                      ┌─► Responder: announce / withdraw (ARP, NDP)
//!  members: live set  ──┤                      ├─► BGP peer tasks: SetRoutes / Stop
//!  members: lapse ──────┼─► daemon task ───────┼─► status task: wanted ServiceL2/BGPStatus
//!  rtnetlink links ─────┤   plan → diff        ├─► ConfigurationState task: wanted state
//!  BFD status changes ──┤                      ├─► BFD task: add / update / remove sessions
//!  ticks (join, stats) ─┘                      └─► Event queue: Events on Services and config
//!  members task ─── beat() ──► Responder heartbeat (gossip off: a timer task beats instead)
//! ```
//! When to plan is [`crate::schedule`]'s call, who is alive [`crate::liveness`]'s, what to
//! announce [`crate::plan`]'s, when to leave the membership [`crate::carrier`]'s, which Events
//! to publish [`crate::events`]'s, which sessions to run [`crate::apply::bgp`]'s, which BFD
//! sessions guard them and when BFD holds one down [`crate::apply::bfd`]'s, how SIGTERM ends
//! them [`crate::apply::stop`]'s. This module
//! must not decide any of that: it reads inputs, calls them and does what they say.
//!
//! - `replan`: one plan, carried out. - `gossip`: starting and joining the membership.
//! - `housekeeping`: metrics copies and memory trims. - `watch`: the reflector stores.
//! - `bgp`: the session tasks. - `bfd`: the BFD sessions guarding them.
//! - `writer`, `statuses`, `config_state`: API writes.

pub mod bfd;
pub mod bgp;
pub mod config_state;
mod gossip;
mod housekeeping;
mod replan;
pub mod statuses;
pub mod watch;
pub mod writer;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferrolb_api::config::Objects;
use ferrolb_api::config_state::ConfigState;
use ferrolb_proto::bfd::{DriverConfig, SessionKey};
use ferrolb_proto::l2::counters::{Family, FamilySnapshot};
use ferrolb_proto::l2::error::L2Error;
use ferrolb_proto::l2::link::{LinkEvent, LinkWatcher};
use ferrolb_proto::l2::{Responder, ResponderConfig};
use ferrolb_proto::time::sleep_until;
use futures::StreamExt;
use futures::stream::BoxStream;
use kube::Client;
use tokio::sync::watch as tokio_watch;
use tokio::time::Instant;

use crate::apply::bfd as bfd_apply;
use crate::apply::l2::L2State;
use crate::apply::stop::{self, StopPolicy};
use crate::inputs::ServiceInputs;
use crate::interfaces::InterfaceFilter;
use crate::links::Links;
use crate::liveness::QuorumRule;
use crate::members::{Counters, Keys, Lapse, Members};
use crate::metrics::Metrics;
use crate::plan::Announcements;
use crate::schedule::{self, Schedule};
use bfd::BfdSessions;
use bgp::Sessions;
use watch::{Change, InputEvent, Stores};
use writer::{PodRef, Writer};

/// How often speakers known from Node objects but missing from the membership are asked to join.
const JOIN_INTERVAL: Duration = Duration::from_secs(2);
/// How often the L2 counters are copied into the metrics, and free memory is handed back
/// after large plans.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(5);
/// A plan taking this long means a large cluster or a burst of changes: worth a trim after.
const BUSY_PLAN: Duration = Duration::from_millis(10);

/// How long a leaving speaker waits for the API server to delete its `ConfigurationState`.
const LEAVE_API_TIMEOUT: Duration = Duration::from_secs(1);

/// Gossip membership settings.
#[derive(Debug, Clone)]
pub struct MembersSettings {
    /// Address to gossip on; `None`: the Node's first InternalIP and `port`.
    pub bind: Option<SocketAddr>,
    /// The gossip port of every speaker.
    pub port: u16,
    /// The keys authenticating every datagram: one seals, any opens (see [`Keys`]).
    pub keys: Keys,
}

/// The speaker's BGP settings (MetalLB's `BGPPeer` has no field for them).
#[derive(Debug, Clone, Default)]
pub struct BgpSettings {
    /// GTSM (RFC 5082) on directly connected eBGP sessions; routers must do the same.
    pub gtsm: bool,
    /// The most prefixes per family a peer may send us; `None`: no limit (we store none).
    pub max_prefixes: Option<u32>,
    /// What SIGTERM does to the sessions.
    pub stop_policy: StopPolicy,
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
    /// Whether L2 needs a majority of the speakers in the gossip view (see
    /// [`crate::liveness::QuorumRule`]).
    pub quorum_rule: QuorumRule,
    /// Next hops and router ID source; empty: the Node's addresses.
    pub node_addresses: Vec<IpAddr>,
    /// Gratuitous ARP / unsolicited NA rounds.
    pub responder: ResponderConfig,
    /// The speaker's Pod, owner of the objects it writes; `None` outside a Pod.
    pub pod: Option<PodRef>,
    /// BGP session settings.
    pub bgp: BgpSettings,
    /// The BFD task's ports and timer slack (the RFC ports in production).
    pub bfd: DriverConfig,
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
/// and closes the BFD and BGP sessions as [`crate::apply::stop`] decides: as before a restart
/// (routers keep our routes where graceful restart was negotiated), or for good when the node
/// is going away.
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let (stores, changes) = watch::start(
        &client,
        &settings.namespace,
        &settings.node,
        settings.lb_class.clone(),
    );
    let links = LinkWatcher::open().map_err(DaemonError::Links)?;
    // The task handle lives as long as the responder is used.
    let (responder, _responder_task) = Responder::start(settings.responder.clone())
        .await
        .map_err(DaemonError::Responder)?;
    metrics
        .gossip_enabled
        .set(i64::from(settings.members.is_some()));
    // Without gossip nothing proves this speaker alive to others; a timer keeps its responder
    // answering while the runtime runs.
    let _beats = match settings.members {
        Some(_) => None,
        None => {
            tracing::warn!(
                "gossip is off (no --members-key-file or --members-key-dir): an IP moves off a failed node only once its Node turns NotReady (about 40 s with the kubelet's defaults), and nothing detects a network partition, so two nodes may answer one IP"
            );
            gossip::beat_without_gossip(responder.heartbeat())
        }
    };
    let mut daemon = Daemon::new(client, settings, metrics, ready, stores, responder);
    daemon.serve(changes, links, shutdown).await?;
    daemon.stop().await;
    Ok(())
}

/// Resolves when the membership lapses, never when there is none (or it lapsed already and
/// is being replaced).
async fn wait_lapse(lapse: &mut Option<tokio_watch::Receiver<Option<Lapse>>>) -> Lapse {
    if let Some(receiver) = lapse
        && let Ok(seen) = receiver.wait_for(Option::is_some).await
        && let Some(lapse) = *seen
    {
        return lapse;
    }
    std::future::pending().await
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
    /// The BFD sessions guarding BGP sessions.
    bfd: BfdSessions,
    /// `BGPPeer` name → the BFD session guarding it, as the last plan decided.
    bfd_guards: BTreeMap<String, SessionKey>,
    /// `BGPPeer`s whose BGP session BFD holds down.
    held: BTreeSet<String>,
    /// Served at `/readyz`: set once a plan has been carried out, cleared on the way out.
    ready: Arc<AtomicBool>,
    /// This node's links.
    links: Links,
    /// What the responder answers for now.
    l2: L2State,
    /// The configuration objects last known valid (kept while an edit breaks them).
    last_good: Objects,
    /// The previous plan, to tell what changed.
    last: Announcements,
    /// Config problems already reported with an Event.
    reported_problems: BTreeSet<String>,
    /// BGP peers already logged as impossible to start (by the error's text).
    refused_peers: BTreeSet<String>,
    /// IPs already reported as impossible to announce here.
    announce_failed: BTreeSet<IpAddr>,
    /// The gossip membership, while this node is in it.
    members: Option<Members>,
    /// The membership's live set (the last one seen after leaving).
    live: Option<tokio_watch::Receiver<BTreeSet<String>>>,
    /// Set when the membership lapses (see [`crate::members::pulse`]); `None` without one.
    lapse: Option<tokio_watch::Receiver<Option<Lapse>>>,
    /// Datagram counters of every membership this daemon ran.
    members_counters: Arc<Counters>,
    /// Their drop counts already copied into the metrics, by reason.
    members_dropped: BTreeMap<&'static str, u64>,
    /// Whether the last plan held quorum (to log each change once); `None` before the first.
    had_quorum: Option<bool>,
    /// When to plan next.
    schedule: Schedule,
    /// Last L2 counter values copied into the metrics.
    l2_counters: BTreeMap<(String, Family), FamilySnapshot>,
    /// The status task's wish list.
    statuses: tokio_watch::Sender<Option<statuses::Wanted>>,
    /// What this node's `ConfigurationState` should say.
    config_state: tokio_watch::Sender<Option<ConfigState>>,
    /// Interfaces whose loss of carrier made this node leave the membership (so another node
    /// answers); it rejoins when they all have carrier again.
    stepped_down: BTreeSet<String>,
    /// A BGP plan with our Node known has been carried out (sessions started after it are not
    /// restarts).
    bgp_started: bool,
    /// A large plan ran since the allocator last handed free memory back.
    busy_since_trim: bool,
}

impl Daemon {
    /// The daemon with its writer tasks started and nothing planned yet.
    fn new(
        client: Client,
        settings: Settings,
        metrics: Metrics,
        ready: Arc<AtomicBool>,
        stores: Stores,
        responder: Responder,
    ) -> Self {
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
        let schedule = Schedule::new(settings.members.is_some());
        let mut sessions = Sessions::new(metrics.clone());
        sessions.set_gtsm(settings.bgp.gtsm);
        sessions.set_max_prefixes(settings.bgp.max_prefixes);
        Daemon {
            sessions,
            bfd: BfdSessions::new(metrics.clone(), settings.bfd),
            bfd_guards: BTreeMap::new(),
            held: BTreeSet::new(),
            settings,
            stores,
            inputs: ServiceInputs::default(),
            writer,
            metrics,
            responder,
            ready,
            links: Links::default(),
            l2: L2State::new(),
            last_good: Objects::default(),
            last: Announcements::default(),
            reported_problems: BTreeSet::new(),
            refused_peers: BTreeSet::new(),
            announce_failed: BTreeSet::new(),
            members: None,
            live: None,
            lapse: None,
            members_counters: Arc::default(),
            members_dropped: BTreeMap::new(),
            had_quorum: None,
            schedule,
            l2_counters: BTreeMap::new(),
            statuses,
            config_state,
            stepped_down: BTreeSet::new(),
            bgp_started: false,
            busy_since_trim: false,
        }
    }

    /// The loop: takes what happened, tells the schedule, plans when it says so, until
    /// `shutdown`.
    async fn serve(
        &mut self,
        mut changes: BoxStream<'static, Change>,
        mut links: LinkWatcher,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), DaemonError> {
        let mut join_tick = tokio::time::interval(JOIN_INTERVAL);
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING_INTERVAL);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                change = changes.next() => self.on_watch(change.ok_or(DaemonError::WatchEnded)?),
                () = sleep_until(self.schedule.next_deadline()) => self.on_time(),
                changed = wait_live(&mut self.live) => {
                    if changed {
                        self.schedule.on_membership_changed(Instant::now());
                    }
                }
                lapse = wait_lapse(&mut self.lapse) => self.on_lapse(lapse).await?,
                event = links.next() => self.on_link(event.map_err(DaemonError::Links)?),
                change = self.bfd.next_change() => self.on_bfd(change),
                _ = join_tick.tick() => self.join_missing().await,
                _ = housekeeping.tick() => self.housekeeping().await,
            }
            if let Some(plan) = self.schedule.take_plan() {
                self.plan(plan).await?;
            }
        }
    }

    /// Takes a watch event: Services and EndpointSlices into the plan's inputs (the other
    /// watches fill their stores themselves), then tells the schedule.
    fn on_watch(&mut self, change: Change) {
        let inputs_changed = match change.input {
            Some(InputEvent::Service(input)) => self.inputs.on_service(input),
            Some(InputEvent::Slice(input)) => self.inputs.on_slice(input),
            None => false,
        };
        self.schedule
            .on_watch(Instant::now(), change.watch, change.synced, inputs_changed);
    }

    /// A deadline of the schedule passed.
    fn on_time(&mut self) {
        if self.schedule.on_time(Instant::now()) {
            // Wake the status task to compare its objects with the same wish again.
            self.statuses.send_modify(|_| {});
        }
    }

    fn on_link(&mut self, event: LinkEvent) {
        self.links.on_event(event);
        self.schedule.on_link_changed();
    }

    /// A BFD session changed state: BGP sessions whose BFD went down close at once; those it
    /// allows again start with the next plan, which is asked for now.
    fn on_bfd(&mut self, change: bfd::Change) {
        if !self.bfd.on_change(change) {
            return;
        }
        let held = bfd_apply::held(&self.bfd_guards, &self.bfd.gates());
        let newly: BTreeSet<String> = held.difference(&self.held).cloned().collect();
        self.sessions.hold(&newly);
        if self.held.difference(&held).next().is_some() {
            tracing::info!(peers = ?self.held.difference(&held).collect::<Vec<_>>(), "BFD up again: starting the BGP sessions");
            self.schedule.on_bfd_up();
        }
        self.held = held;
    }

    /// Plans now: starts gossip first if the schedule says so.
    async fn plan(&mut self, plan: schedule::Plan) -> Result<(), DaemonError> {
        if plan.start_gossip {
            self.start_members().await?;
        }
        let started = Instant::now();
        self.replan(plan.membership_changed_at).await;
        let took = started.elapsed();
        self.schedule.on_planned(took);
        self.busy_since_trim |= took >= BUSY_PLAN;
        Ok(())
    }

    /// Leaves the membership first, so the others take over while we still answer, then stops
    /// answering and closes the BFD and BGP sessions as [`stop::stop_mode`] says.
    async fn stop(mut self) {
        self.ready.store(false, Ordering::Relaxed);
        self.lapse = None;
        self.leave_speaker_set().await;
        if let Some(members) = self.members.take() {
            members.leave().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        for ip in std::mem::take(&mut self.l2).into_keys() {
            let _ = self.responder.withdraw(ip).await;
        }
        let node = self.stores.node(&self.settings.node);
        let (mode, reason) = stop::stop_mode(
            self.settings.bgp.stop_policy,
            node.as_deref(),
            self.settings.ignore_exclude_lb,
        );
        tracing::info!(?mode, reason, policy = ?self.settings.bgp.stop_policy, "closing the BGP sessions");
        // AdminDown first: a peer must not take our exit for a path failure (RFC 5882 §3.2).
        self.bfd.remove_all().await;
        self.sessions.stop_all(mode).await;
        tracing::info!("speaker stopped");
    }

    /// Takes this node out of the others' speaker set before leaving the gossip, so their
    /// quorum no longer counts it: in a two-node cluster the other node keeps answering through
    /// a rolling update. Its `ConfigurationState` is the set's record; the config state task
    /// is stopped first so it cannot write the object back. Bounded: with the API server away,
    /// the others count this node out when its Pod is deleted.
    async fn leave_speaker_set(&mut self) {
        self.config_state = tokio_watch::channel(None).0;
        match tokio::time::timeout(LEAVE_API_TIMEOUT, self.writer.delete_config_state()).await {
            Ok(Ok(())) => tracing::info!("left the speaker set (ConfigurationState deleted)"),
            Ok(Err(error)) => tracing::warn!(%error, "ConfigurationState not deleted on leaving"),
            Err(_) => tracing::warn!("ConfigurationState not deleted on leaving: API timeout"),
        }
    }
}
