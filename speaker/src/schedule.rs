//! When the daemon plans. Pure: what happened comes in (a watch event, a membership or link
//! change, the time), deadlines and "plan now" go out; the daemon owns the timers.
//!
//! Rules:
//! - Nothing is planned until every [`Watch`] has finished a first list, so a restarted speaker
//!   never plans from half a cluster.
//! - Watch events arriving within [`WATCH_DEBOUNCE`] (or the last plan's duration, if longer)
//!   share one plan: a status write of ours, a burst of EndpointSlice updates. Membership and
//!   link changes are planned at once.
//! - Events about our own status objects change no plan; the status task compares them with the
//!   wish again [`STATUS_RECHECK`] after the first of them.
//! - Gossip starts with the first plan; new L2 claims may wait until [`MEMBERS_SETTLE`] after it
//!   started (see [`crate::liveness`]), and a plan runs at that moment.
//!
//! Must not: read the clock (time comes in as `now`), sleep, or know what a plan does.

use std::time::Duration;

use tokio::time::Instant;

/// Watch events arriving within this window share one plan.
pub const WATCH_DEBOUNCE: Duration = Duration::from_millis(20);
/// Our status objects changed on the API server (mostly our own writes coming back): the status
/// task compares them with the plan again after this pause.
pub const STATUS_RECHECK: Duration = Duration::from_secs(1);
/// How long a new speaker waits for the membership to show every Ready node before claiming new
/// L2 IPs anyway (nodes without a running speaker never show up).
pub const MEMBERS_SETTLE: Duration = Duration::from_secs(2);

/// Every watch the speaker opens. A watch event names its watch, and [`Synced`] has a flag per
/// variant, so adding a watch cannot leave the first-list count behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Watch {
    /// Services (kept as plan inputs, not objects).
    Services,
    /// EndpointSlices (kept as plan inputs, not objects).
    EndpointSlices,
    /// Nodes.
    Nodes,
    /// `IPAddressPool`s.
    Pools,
    /// `L2Advertisement`s.
    L2Advertisements,
    /// `BGPAdvertisement`s.
    BgpAdvertisements,
    /// `BGPPeer`s.
    Peers,
    /// `Community` alias sets.
    Communities,
    /// `BFDProfile`s.
    BfdProfiles,
    /// Secrets in FerroLB's namespace (BGP passwords).
    Secrets,
    /// This node's `ServiceL2Status` objects.
    L2Statuses,
    /// This node's `ServiceBGPStatus` objects.
    BgpStatuses,
    /// Every speaker's `ConfigurationState` (who runs a speaker: the quorum's set).
    ConfigStates,
}

impl Watch {
    /// Whether its events become the plan's inputs one at a time ([`crate::inputs`]) rather
    /// than filling a store.
    pub fn is_input(self) -> bool {
        matches!(self, Watch::Services | Watch::EndpointSlices)
    }

    /// Whether the watch holds our own status objects, which are written from the plan and never
    /// feed it.
    pub fn is_status(self) -> bool {
        matches!(self, Watch::L2Statuses | Watch::BgpStatuses)
    }
}

/// Which watches have finished a first list. One flag per [`Watch`]: `flag` and
/// [`Synced::is_complete`] name every one without a wildcard, so the compiler checks both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    services: bool,
    endpoint_slices: bool,
    nodes: bool,
    pools: bool,
    l2_advertisements: bool,
    bgp_advertisements: bool,
    peers: bool,
    communities: bool,
    bfd_profiles: bool,
    secrets: bool,
    l2_statuses: bool,
    bgp_statuses: bool,
    config_states: bool,
}

impl Synced {
    /// `watch` finished a (re)list.
    pub fn mark(&mut self, watch: Watch) {
        *self.flag(watch) = true;
    }

    fn flag(&mut self, watch: Watch) -> &mut bool {
        match watch {
            Watch::Services => &mut self.services,
            Watch::EndpointSlices => &mut self.endpoint_slices,
            Watch::Nodes => &mut self.nodes,
            Watch::Pools => &mut self.pools,
            Watch::L2Advertisements => &mut self.l2_advertisements,
            Watch::BgpAdvertisements => &mut self.bgp_advertisements,
            Watch::Peers => &mut self.peers,
            Watch::Communities => &mut self.communities,
            Watch::BfdProfiles => &mut self.bfd_profiles,
            Watch::Secrets => &mut self.secrets,
            Watch::L2Statuses => &mut self.l2_statuses,
            Watch::BgpStatuses => &mut self.bgp_statuses,
            Watch::ConfigStates => &mut self.config_states,
        }
    }

    /// Every watch has listed once.
    pub fn is_complete(&self) -> bool {
        let Synced {
            services,
            endpoint_slices,
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
            config_states,
        } = *self;
        services
            && endpoint_slices
            && nodes
            && pools
            && l2_advertisements
            && bgp_advertisements
            && peers
            && communities
            && bfd_profiles
            && secrets
            && l2_statuses
            && bgp_statuses
            && config_states
    }
}

/// What the daemon must do now, from [`Schedule::take_plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Gossip is configured and not started yet: start it before this (first) plan.
    pub start_gossip: bool,
    /// The membership changed at this time and no plan has used it yet (the takeover time is
    /// measured from it).
    pub membership_changed_at: Option<Instant>,
}

/// The planning timetable of one daemon.
#[derive(Debug, Clone)]
pub struct Schedule {
    synced: Synced,
    /// Gossip is configured (`--members-key-file`).
    has_gossip: bool,
    /// When gossip last started; `None` before (or without gossip).
    gossip_started_at: Option<Instant>,
    /// Debounced plan after watch events.
    replan_at: Option<Instant>,
    /// The status task should compare again.
    recheck_statuses_at: Option<Instant>,
    /// One plan when the membership has had time to settle.
    settle_at: Option<Instant>,
    /// Something asked for a plan since the loop last looked; dropped while the watches are
    /// still listing (their last first list asks again).
    is_due: bool,
    /// See [`Plan::membership_changed_at`].
    membership_changed_at: Option<Instant>,
    /// How long the last plan took: watch-driven plans wait at least that long, so a large
    /// cluster's event stream never keeps the speaker planning back to back.
    last_plan_took: Duration,
}

impl Schedule {
    /// Nothing listed yet; `has_gossip` when the speaker gossips.
    pub fn new(has_gossip: bool) -> Self {
        Self {
            synced: Synced::default(),
            has_gossip,
            gossip_started_at: None,
            replan_at: None,
            recheck_statuses_at: None,
            settle_at: None,
            is_due: false,
            membership_changed_at: None,
            last_plan_took: Duration::ZERO,
        }
    }

    /// A watch event was taken: `synced` when it ended a (re)list; `inputs_changed` when a
    /// Services or EndpointSlices event changed the plan's inputs (other watches fill stores:
    /// any of their events may change the plan, except our own status objects, which never do).
    pub fn on_watch(&mut self, now: Instant, watch: Watch, synced: bool, inputs_changed: bool) {
        let changes_plan = if watch.is_input() {
            inputs_changed
        } else {
            !watch.is_status()
        };
        if synced {
            self.synced.mark(watch);
        }
        if watch.is_status() {
            self.recheck_statuses_at.get_or_insert(now + STATUS_RECHECK);
        }
        if changes_plan || synced {
            let wait = WATCH_DEBOUNCE.max(self.last_plan_took);
            self.replan_at.get_or_insert(now + wait);
        }
    }

    /// The membership's live set changed: plan at once.
    pub fn on_membership_changed(&mut self, now: Instant) {
        self.membership_changed_at = Some(now);
        self.is_due = true;
    }

    /// A link changed: plan at once.
    pub fn on_link_changed(&mut self) {
        self.is_due = true;
    }

    /// A BFD session is Up again after a failure: plan at once (the plan starts the BGP
    /// sessions it held down).
    pub fn on_bfd_up(&mut self) {
        self.is_due = true;
    }

    /// Gossip (re)started: new claims wait for it to settle, and a plan runs when it has.
    pub fn on_gossip_started(&mut self, now: Instant) {
        self.gossip_started_at = Some(now);
        self.settle_at = Some(now + MEMBERS_SETTLE);
    }

    /// When new L2 claims stop waiting for the membership anyway; `None` when gossip never
    /// started (nothing to wait for).
    pub fn settles_at(&self) -> Option<Instant> {
        self.gossip_started_at.map(|at| at + MEMBERS_SETTLE)
    }

    /// The earliest armed deadline, for the daemon's one timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.replan_at, self.recheck_statuses_at, self.settle_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// The time is `now`: disarms every deadline that passed. Returns whether the status task
    /// should compare its objects with the wish again.
    pub fn on_time(&mut self, now: Instant) -> bool {
        let passed = |deadline: &mut Option<Instant>| {
            let is_past = deadline.is_some_and(|at| at <= now);
            if is_past {
                *deadline = None;
            }
            is_past
        };
        let replan = passed(&mut self.replan_at);
        let settled = passed(&mut self.settle_at);
        if replan || settled {
            self.is_due = true;
        }
        passed(&mut self.recheck_statuses_at)
    }

    /// Whether to plan now, and what to do first. A plan asked for while a watch is still on
    /// its first list is dropped: that list's end asks again.
    pub fn take_plan(&mut self) -> Option<Plan> {
        if !std::mem::take(&mut self.is_due) || !self.synced.is_complete() {
            return None;
        }
        self.replan_at = None;
        Some(Plan {
            start_gossip: self.has_gossip && self.gossip_started_at.is_none(),
            membership_changed_at: self.membership_changed_at.take(),
        })
    }

    /// A plan finished after `took`.
    pub fn on_planned(&mut self, took: Duration) {
        self.last_plan_took = took;
    }
}

#[cfg(test)]
mod tests;
