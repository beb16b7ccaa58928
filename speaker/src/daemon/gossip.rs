//! Starting, joining and reading the gossip membership, and replacing it when it lapses. Who to
//! ask and where to bind is [`crate::liveness`]'s call; this opens the socket and sends the
//! requests. The membership beats the responder's heartbeat; without gossip a timer does.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ferrolb_proto::l2::heartbeat::Heartbeat;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::{Daemon, DaemonError};
use crate::cluster;
use crate::liveness::{self, NodeHealth};
use crate::members::pulse::Pulse;
use crate::members::{Budget, Heart, Lapse, Members, Setup, SpeakerId};

/// The timer task beating the responder when there is no gossip; stops when dropped.
#[derive(Debug)]
pub(super) struct TimerBeats(JoinHandle<()>);

impl Drop for TimerBeats {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Beats `heartbeat` from a timer task as often as a membership would; `None` when the
/// responder needs no heartbeat.
pub(super) fn beat_without_gossip(heartbeat: &Heartbeat) -> Option<TimerBeats> {
    let timeout = heartbeat.timeout()?;
    let heartbeat = heartbeat.clone();
    heartbeat.beat();
    let mut ticks = tokio::time::interval(Pulse::new(timeout).interval());
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    Some(TimerBeats(tokio::spawn(async move {
        loop {
            ticks.tick().await;
            heartbeat.beat();
        }
    })))
}

impl Daemon {
    /// Opens the gossip socket and joins the speakers of the other Nodes.
    pub(super) async fn start_members(&mut self) -> Result<(), DaemonError> {
        let Some(members) = &self.settings.members else {
            return Ok(());
        };
        let addr = liveness::gossip_address(members.bind, members.port, &self.own_addresses())
            .ok_or_else(|| DaemonError::NoMembersAddress(self.settings.node.clone()))?;
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|source| DaemonError::Members { addr, source })?;
        // A new generation each start tells the others this is a new incarnation.
        let generation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        let me = SpeakerId {
            node: self.settings.node.clone(),
            addr,
            generation,
        };
        let heartbeat = self.responder.heartbeat();
        let heart = heartbeat.timeout().map(|timeout| {
            let heartbeat = heartbeat.clone();
            Heart {
                timeout,
                beat: Arc::new(move || heartbeat.beat()),
            }
        });
        let setup = Setup {
            keys: members.keys.clone(),
            budget: Budget::Lan,
            heart,
            counters: self.members_counters.clone(),
        };
        let started = Members::start_with(me, socket, setup)
            .map_err(|source| DaemonError::Members { addr, source })?;
        tracing::info!(%addr, keys = members.keys.accepted_count(), "gossip membership started");
        self.live = Some(started.live());
        self.lapse = Some(started.lapse());
        self.members = Some(started);
        self.schedule.on_gossip_started(Instant::now());
        self.join_missing().await;
        Ok(())
    }

    /// The membership lapsed: this speaker was frozen past its heartbeat, or the others declared
    /// it dead, so they may have taken its IPs over. Its responder is silent already; withdraw
    /// everything before anything beats again, then join as a new member: the settle hold and
    /// the quorum keep it from claiming until it sees the others, and the election decides.
    pub(super) async fn on_lapse(&mut self, lapse: Lapse) -> Result<(), DaemonError> {
        self.metrics
            .members_lapses
            .with_label_values(&[lapse.reason()])
            .inc();
        if let Some(members) = self.members.take() {
            members.stop().await;
        }
        self.lapse = None;
        let answered: Vec<_> = self.l2.keys().copied().collect();
        for ip in &answered {
            match self.responder.withdraw(*ip).await {
                Ok(()) => {
                    self.l2.remove(ip);
                }
                // Kept in `l2`: the next plan withdraws it again.
                Err(error) => tracing::warn!(%ip, %error, "withdraw failed"),
            }
        }
        tracing::warn!(
            reason = lapse.reason(),
            withdrawn = answered.len() - self.l2.len(),
            "stopped answering every IP; rejoining the membership as a new member"
        );
        self.start_members().await?;
        self.schedule.on_membership_changed(Instant::now());
        Ok(())
    }

    /// Asks the speakers of Nodes missing from the membership to let us in.
    pub(super) async fn join_missing(&self) {
        let (Some(settings), Some(members)) = (&self.settings.members, &self.members) else {
            return;
        };
        let live = members.live().borrow().clone();
        let health = self.node_health();
        let seeds = liveness::join_seeds(&self.settings.node, &live, &health, settings.port);
        if !seeds.is_empty() {
            members.join(seeds).await;
        }
    }

    /// The gossip's live set now; `None` without gossip.
    pub(super) fn gossip_view(&self) -> Option<BTreeSet<String>> {
        self.live.as_ref().map(|live| live.borrow().clone())
    }

    /// Every Node as liveness reads it.
    pub(super) fn node_health(&self) -> Vec<NodeHealth> {
        self.stores
            .nodes
            .state()
            .iter()
            .map(|n| cluster::node_health(n))
            .collect()
    }

    /// This node's own addresses: `--node-address`, else its Node's.
    pub(super) fn own_addresses(&self) -> Vec<std::net::IpAddr> {
        let node = self.stores.node(&self.settings.node);
        cluster::own_addresses(&self.settings.node_addresses, node.as_deref())
    }
}
