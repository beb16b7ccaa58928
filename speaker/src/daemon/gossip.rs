//! Starting, joining and reading the gossip membership. Who to ask and where to bind is
//! [`crate::liveness`]'s call; this opens the socket and sends the requests.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::{Daemon, DaemonError};
use crate::cluster;
use crate::liveness::{self, NodeHealth};
use crate::members::{Budget, Members, SpeakerId};

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
        let started = Members::start(me, socket, members.key.clone(), &Budget::Lan)
            .map_err(|source| DaemonError::Members { addr, source })?;
        tracing::info!(%addr, "gossip membership started");
        self.live = Some(started.live());
        self.members = Some(started);
        self.schedule.on_gossip_started(Instant::now());
        self.join_missing().await;
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
