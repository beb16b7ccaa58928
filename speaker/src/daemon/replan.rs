//! One plan, carried out: read the stores, ask the pure modules, then announce and withdraw,
//! update the BGP sessions, publish the wished statuses and the Events they name.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ferrolb_api::config::{self, Config};
use ferrolb_api::config_state::{CONFIG_RECONCILER_CONDITION, ConfigState};
use ferrolb_proto::bgp::packing::RouteSet;
use k8s_openapi::api::core::v1::Node;
use tokio::time::Instant;

use super::watch::read_statuses;
use super::{Daemon, statuses};
use crate::apply::bfd as bfd_apply;
use crate::apply::bgp::{self as bgp_apply, NodeAddresses, SessionSpec};
use crate::apply::l2::{self as l2_diff, L2State};
use crate::carrier::{self, Decision};
use crate::cluster;
use crate::events::{self, Event, L2Taken, Regarding};
use crate::interfaces;
use crate::liveness::{self, NodeHealth, Quorum, Verdict, View};
use crate::metrics;
use crate::plan::{self, Announcements, ClusterState, NodeInfo};
use crate::status::{self, StatusView};

/// BGP sessions by `BGPPeer` name, with their routes.
type BgpSessions = BTreeMap<String, (SessionSpec, RouteSet)>;

impl Daemon {
    /// Plans from what is known now and carries the plan out. `membership_changed_at`: the
    /// membership change this plan follows, if any (takeovers are timed from it).
    pub(super) async fn replan(&mut self, membership_changed_at: Option<Instant>) {
        let nodes = self.stores.nodes.state();
        let health: Vec<NodeHealth> = nodes.iter().map(|n| cluster::node_health(n)).collect();
        let node_infos: Vec<NodeInfo> = nodes.iter().map(|n| cluster::node_info(n)).collect();
        let config = self.configuration(&nodes);
        let mut verdict = self.judge(&health);
        let mut announcements = self.plan_with(&config, &node_infos, &verdict.live);
        if self.follow_carrier(&announcements).await {
            // Stepping down or rejoining changed who is alive: this node in particular.
            verdict = self.judge(&health);
            announcements = self.plan_with(&config, &node_infos, &verdict.live);
        }
        self.metrics
            .members_live
            .set(i64::try_from(verdict.live.len()).unwrap_or(i64::MAX));
        self.report_quorum(verdict.quorum);
        liveness::restrain(verdict.claims, &mut announcements.l2, &self.l2);
        self.apply_l2(&announcements, membership_changed_at).await;
        self.apply_bgp(&config, &announcements).await;
        self.metrics
            .announced
            .set(metrics::series(&self.settings.node, &announcements));
        self.publish_statuses(&announcements);
        self.last = announcements;
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Who is alive and whether new L2 claims may be made, now.
    fn judge(&self, health: &[NodeHealth]) -> Verdict {
        let gossip = self.gossip_view();
        let speakers = self.stores.speaker_nodes();
        liveness::judge(&View {
            me: &self.settings.node,
            gossip: gossip.as_ref(),
            nodes: health,
            speakers: &speakers,
            quorum_rule: self.settings.quorum_rule,
            is_stepped_down: !self.stepped_down.is_empty(),
            settles_at: self.schedule.settles_at(),
            now: Instant::now(),
        })
    }

    /// Sets the quorum metrics, and logs each change of quorum.
    fn report_quorum(&mut self, quorum: Option<Quorum>) {
        let has_quorum = quorum.is_none_or(|q| q.has_majority);
        self.metrics.members_quorum.set(i64::from(has_quorum));
        let Some(q) = quorum else {
            self.had_quorum = Some(true);
            return;
        };
        self.metrics
            .members_speakers
            .set(i64::try_from(q.speakers).unwrap_or(i64::MAX));
        if self.had_quorum == Some(has_quorum) {
            return;
        }
        if has_quorum {
            tracing::info!(
                seen = q.seen,
                speakers = q.speakers,
                "gossip quorum held: answering L2"
            );
        } else {
            tracing::warn!(
                seen = q.seen,
                speakers = q.speakers,
                "gossip quorum lost: this speaker sees too few of the others (blocked UDP, another key, a partition), so it answers no L2 IP until it sees a majority"
            );
        }
        self.had_quorum = Some(has_quorum);
    }

    fn plan_with(
        &self,
        config: &Config,
        nodes: &[NodeInfo],
        live: &BTreeSet<String>,
    ) -> Announcements {
        let state = ClusterState {
            config,
            nodes,
            services: self.inputs.services(),
            ignore_exclude_lb: self.settings.ignore_exclude_lb,
        };
        plan::plan(&self.settings.node, &state, live)
    }

    /// Leaves or rejoins the membership as [`carrier::decide`] says; returns whether it did.
    async fn follow_carrier(&mut self, announcements: &Announcements) -> bool {
        let decision = carrier::decide(&carrier::Inputs {
            has_gossip: self.settings.members.is_some(),
            stepped_down: &self.stepped_down,
            planned: &announcements.l2,
            links: self.links.by_name(),
            filter: &self.settings.interface_filter,
        });
        match decision {
            Decision::Nothing => false,
            Decision::StepDown { interfaces } => {
                tracing::warn!(
                    ?interfaces,
                    "carrier lost; leaving the membership so another node answers"
                );
                self.stepped_down = interfaces;
                // Leaving on purpose is no lapse.
                self.lapse = None;
                if let Some(members) = self.members.take() {
                    members.leave().await;
                }
                true
            }
            Decision::Rejoin => {
                tracing::info!(interfaces = ?self.stepped_down, "carrier back; rejoining the membership");
                self.stepped_down.clear();
                if let Err(error) = self.start_members().await {
                    tracing::error!(%error, "cannot rejoin the membership");
                }
                true
            }
        }
    }

    /// Builds the configuration, keeping the last good version of objects an edit broke;
    /// reports each new problem once with a Warning Event on the object, and publishes this
    /// node's `ConfigurationState`.
    fn configuration(&mut self, nodes: &[Arc<Node>]) -> Config {
        let objects = self.stores.objects(nodes);
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
        let reports = events::config_problems(
            &self.settings.node,
            &built.problems,
            &self.reported_problems,
        );
        for event in reports.events {
            tracing::warn!(problem = event.note, "configuration object ignored");
            self.publish(event);
        }
        self.reported_problems = reports.reported;
        let state = ConfigState::from_problems(CONFIG_RECONCILER_CONDITION, &built.problems);
        statuses::publish_wish(&self.config_state, state);
        built.config
    }

    /// Makes the responder answer for what the plan says, and reports what it could not and
    /// what it took over.
    async fn apply_l2(
        &mut self,
        announcements: &Announcements,
        membership_changed_at: Option<Instant>,
    ) {
        let filter = &self.settings.interface_filter;
        let wanted = interfaces::resolve_plan(&announcements.l2, self.links.by_name(), filter);
        let failed = events::announce_failed(
            &self.settings.node,
            &announcements.l2,
            &wanted,
            &self.announce_failed,
        );
        for event in failed.events {
            tracing::warn!(regarding = ?event.regarding, "{}", event.note);
            self.publish(event);
        }
        self.announce_failed = failed.reported;
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
        let announced = self.announce(changes.announce).await;
        let since_change = membership_changed_at.map(|at| at.elapsed());
        self.report_takeovers(announcements, &announced, since_change);
    }

    /// Starts answering for each IP on its interfaces; returns the IPs now answered for.
    async fn announce(&mut self, announce: L2State) -> Vec<IpAddr> {
        let mut announced = Vec::new();
        for (ip, interfaces) in announce {
            match self
                .responder
                .announce(ip, interfaces.iter().cloned())
                .await
            {
                Ok(()) => {
                    tracing::info!(%ip, ?interfaces, "announcing");
                    self.l2.insert(ip, interfaces);
                    announced.push(ip);
                }
                Err(error) => tracing::warn!(%ip, %error, "announce failed"),
            }
        }
        announced
    }

    /// Publishes `nodeAssigned` for the Services on `announced` and records takeover times.
    fn report_takeovers(
        &self,
        announcements: &Announcements,
        announced: &[IpAddr],
        since_change: Option<Duration>,
    ) {
        let services = events::services_on(&announcements.l2, announced);
        if services.is_empty() {
            return;
        }
        let with_status = read_statuses(&self.stores.l2_statuses, StatusView::services);
        let gossip = self.gossip_view();
        let assigned = events::l2_assigned(&L2Taken {
            node: &self.settings.node,
            services: &services,
            previous_owners: &self.last.l2_owners,
            with_status: &with_status,
            gossip: gossip.as_ref(),
            since_change,
        });
        for took in assigned.takeover_times {
            self.metrics.takeover_seconds.observe(took.as_secs_f64());
        }
        for event in assigned.events {
            self.publish(event);
        }
    }

    /// Runs the sessions [`bgp_apply::wanted`] names, and publishes `nodeAssigned` for
    /// Services newly advertised.
    async fn apply_bgp(&mut self, config: &Config, announcements: &Announcements) {
        if self.stores.node(&self.settings.node).is_none() {
            // Not even our Node is known: no sessions, and the first real plan is still ahead.
            self.bfd.apply(&bfd_apply::Wanted::default()).await;
            self.bfd_guards.clear();
            self.sessions.apply(BTreeMap::new(), false).await;
            return;
        }
        let addresses = NodeAddresses::from_list(&self.own_addresses());
        let wanted = bgp_apply::wanted(config, announcements, &self.settings.node, addresses);
        self.log_refused(&wanted.refused);
        for (peer, prefixes) in &wanted.without_next_hop {
            tracing::warn!(peer, ?prefixes, "no next hop of that family on this node");
        }
        let is_first = !self.bgp_started;
        let has_leftovers =
            is_first && !read_statuses(&self.stores.bgp_statuses, StatusView::is_empty);
        let is_restart = bgp_apply::follows_restart(is_first, has_leftovers);
        let mut sessions = wanted.sessions;
        self.guard_with_bfd(config, &mut sessions).await;
        self.sessions.apply(sessions, is_restart).await;
        self.bgp_started = true;
        let newly = events::newly_advertised(
            &self.last.bgp_peers_by_service,
            &announcements.bgp_peers_by_service,
        );
        if newly.is_empty() {
            return;
        }
        let with_status = read_statuses(&self.stores.bgp_statuses, StatusView::services);
        for event in events::bgp_assigned(&self.settings.node, &newly, &with_status) {
            self.publish(event);
        }
    }

    /// Starts, renegotiates and stops the BFD sessions guarding `sessions`, and takes out the
    /// ones BFD holds down (closing them if they run).
    async fn guard_with_bfd(&mut self, config: &Config, sessions: &mut BgpSessions) {
        let needs_bfd = sessions.keys().any(|name| {
            config
                .peers
                .get(name)
                .is_some_and(|p| p.bfd_profile.is_some())
        });
        let connected = if needs_bfd {
            super::bfd::connected_networks()
        } else {
            Vec::new()
        };
        let wanted = bfd_apply::wanted(config, sessions, &connected);
        self.bfd.apply(&wanted).await;
        let held = bfd_apply::held(&wanted.guards, &self.bfd.gates());
        self.sessions.hold(&held);
        sessions.retain(|name, _| !held.contains(name));
        self.bfd_guards = wanted.guards;
        self.held = held;
    }

    /// Logs each peer that cannot have a session, once while it lasts.
    fn log_refused(&mut self, refused: &[bgp_apply::SessionError]) {
        let now: BTreeSet<String> = refused.iter().map(ToString::to_string).collect();
        for error in refused {
            if !self.refused_peers.contains(&error.to_string()) {
                tracing::warn!(%error, reason = error.reason(), "BGP peer not started");
            }
        }
        self.refused_peers = now;
    }

    fn publish_statuses(&self, announcements: &Announcements) {
        let node = &self.settings.node;
        let wanted = statuses::Wanted {
            l2: status::wanted_l2(node, announcements),
            bgp: status::wanted_bgp(node, announcements),
        };
        statuses::publish_wish(&self.statuses, wanted);
    }

    /// Queues `event` (with the Service's UID when it is about one).
    fn publish(&self, event: Event) {
        let uid = match &event.regarding {
            Regarding::Service(key) => self.inputs.uid(key).map(str::to_owned),
            Regarding::Config { .. } => None,
        };
        let reference = event.regarding.reference(&self.settings.namespace, uid);
        self.writer
            .event(&reference, event.is_warning, event.reason, event.note);
    }
}
