//! The BFD sessions of this node: one `ferrolb-proto` BFD task, started when a `BGPPeer` first
//! asks for BFD; sessions added, renegotiated in place and removed as [`crate::apply::bfd`]
//! says; each status change forwarded to the daemon loop, which re-gates the BGP sessions; the
//! counters copied into MetalLB's metrics. Which sessions and what their state allows is
//! decided in `apply::bfd`; this module only carries it out.
//!
//! ```text
//!   daemon ──apply(Wanted)──▶ BfdSessions ──add / update / remove──▶ BFD task (sockets, timers)
//!   BFD task ──watch<Status> per session──▶ forwarder task ──(key, generation, Status)──┐
//!   daemon loop ◀── next_change() ◀──────────────────────────────────────────────────────┘
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_proto::bfd::counters::SessionSnapshot;
use ferrolb_proto::bfd::{
    self, Bfd, BfdError, DriverConfig, Profile, SessionHandle, SessionKey, SessionSpec, State,
    Status,
};
use ipnetwork::IpNetwork;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::apply::bfd::{self as decide, DEFAULT_VRF, Gate, Wanted};
use crate::metrics::Metrics;

/// A status change of one session: its key, the generation of the session that reported it
/// (a session removed and added again under the same key is a new generation), the status.
#[derive(Debug, Clone)]
pub struct Change {
    key: SessionKey,
    generation: u64,
    status: Status,
}

/// One running session.
#[derive(Debug)]
struct Running {
    profile: Profile,
    handle: SessionHandle,
    generation: u64,
    gate: Gate,
    /// The last state seen, for logs.
    state: State,
    /// Counters already copied into the metrics.
    reported: SessionSnapshot,
    forwarder: JoinHandle<()>,
}

/// Every BFD session of this node.
#[derive(Debug)]
pub struct BfdSessions {
    config: DriverConfig,
    /// The BFD task's handle, once a session has been asked for.
    driver: Option<Bfd>,
    running: BTreeMap<SessionKey, Running>,
    changes_tx: mpsc::Sender<Change>,
    changes_rx: mpsc::Receiver<Change>,
    next_generation: u64,
    metrics: Metrics,
    /// Drop counts already copied into the metrics, by reason.
    dropped: BTreeMap<&'static str, u64>,
    /// Failures already logged (by text), so each is logged once while it lasts.
    logged: BTreeSet<String>,
}

impl BfdSessions {
    /// No sessions, no BFD task yet (it opens its sockets on first use).
    pub fn new(metrics: Metrics, config: DriverConfig) -> Self {
        let (changes_tx, changes_rx) = mpsc::channel(256);
        Self {
            config,
            driver: None,
            running: BTreeMap::new(),
            changes_tx,
            changes_rx,
            next_generation: 0,
            metrics,
            dropped: BTreeMap::new(),
            logged: BTreeSet::new(),
        }
    }

    /// The gate of every running session.
    pub fn gates(&self) -> BTreeMap<SessionKey, Gate> {
        self.running
            .iter()
            .map(|(key, r)| (key.clone(), r.gate))
            .collect()
    }

    /// Makes the running sessions the wanted ones. A session that cannot start is logged (once)
    /// and left out: its BGP sessions run unguarded.
    pub async fn apply(&mut self, wanted: &Wanted) {
        for refusal in &wanted.refused {
            self.log_once(refusal.to_string(), refusal.reason());
        }
        let running: BTreeMap<SessionKey, Profile> = self
            .running
            .iter()
            .map(|(key, r)| (key.clone(), r.profile))
            .collect();
        let changes = decide::changes(&running, wanted);
        for key in changes.remove {
            self.remove(&key).await;
        }
        for (key, profile) in changes.update {
            self.update(&key, profile).await;
        }
        let mut failed = BTreeSet::new();
        for (key, profile) in changes.add {
            if let Err(error) = self.add(key.clone(), profile).await {
                let text = format!("BFD session to {}: {error}", key.peer);
                failed.insert(text.clone());
                self.log_once(text, error.reason());
            }
        }
        // Failures that no longer happen may be logged again if they come back.
        let refused: BTreeSet<String> = wanted.refused.iter().map(ToString::to_string).collect();
        self.logged
            .retain(|text| failed.contains(text) || refused.contains(text));
    }

    /// Waits for the next status change of any session.
    pub async fn next_change(&mut self) -> Change {
        match self.changes_rx.recv().await {
            Some(change) => change,
            // We hold a sender ourselves: the channel never closes.
            None => std::future::pending().await,
        }
    }

    /// Takes a status change; returns whether the gate now allows BGP differently.
    pub fn on_change(&mut self, change: Change) -> bool {
        let Some(running) = self.running.get_mut(&change.key) else {
            return false;
        };
        if running.generation != change.generation {
            return false;
        }
        let status = change.status;
        let before = running.gate;
        running.gate = before.next(&status);
        if status.state != running.state {
            tracing::info!(
                peer = %change.key.peer,
                multihop = change.key.is_multihop,
                from = %running.state,
                to = %status.state,
                diag = status.diag.reason(),
                remote = %status.remote_state,
                remote_diag = status.remote_diag.reason(),
                "BFD session state"
            );
            running.state = status.state;
        }
        let after = running.gate;
        let peer = change.key.peer.to_string();
        self.metrics
            .bfd
            .session_up
            .with_label_values(&[peer.as_str(), DEFAULT_VRF])
            .set(i64::from(self.any_up(change.key.peer)));
        before.allows_bgp() != after.allows_bgp()
    }

    /// Copies every session's counters and the drop counts into the metrics.
    pub fn copy_counters(&mut self) {
        for (key, running) in &mut self.running {
            let now = running.handle.counters.snapshot();
            let peer = key.peer.to_string();
            self.metrics
                .bfd
                .add(&peer, DEFAULT_VRF, &running.reported, &now);
            running.reported = now;
        }
        let Some(driver) = &self.driver else {
            return;
        };
        for (reason, now) in driver.drops().snapshot() {
            let before = self.dropped.insert(reason.reason(), now).unwrap_or(0);
            self.metrics
                .bfd
                .dropped
                .with_label_values(&[reason.reason()])
                .inc_by(now.saturating_sub(before));
        }
    }

    /// Says AdminDown on every session (RFC 5880 §6.8.16: the peers must not take it for a
    /// path failure) and forgets them, before the process exits.
    pub async fn remove_all(&mut self) {
        let keys: Vec<SessionKey> = self.running.keys().cloned().collect();
        for key in keys {
            self.remove(&key).await;
        }
    }

    async fn add(&mut self, key: SessionKey, profile: Profile) -> Result<(), BfdError> {
        let driver = self
            .driver
            .get_or_insert_with(|| {
                tracing::info!("starting the BFD task");
                // The task ends when the last handle is dropped, with the daemon.
                let (driver, _task) = bfd::spawn(self.config);
                driver
            })
            .clone();
        let spec = SessionSpec {
            key: key.clone(),
            profile,
        };
        let handle = driver.add(spec).await?;
        self.next_generation += 1;
        let generation = self.next_generation;
        let forwarder = tokio::spawn(forward(
            key.clone(),
            generation,
            handle.status.clone(),
            self.changes_tx.clone(),
        ));
        tracing::info!(peer = %key.peer, local = ?key.local, multihop = key.is_multihop, ?profile, "BFD session started");
        let state = handle.status.borrow().state;
        self.running.insert(
            key,
            Running {
                profile,
                handle,
                generation,
                gate: Gate::default(),
                state,
                reported: SessionSnapshot::default(),
                forwarder,
            },
        );
        Ok(())
    }

    async fn update(&mut self, key: &SessionKey, profile: Profile) {
        let (Some(driver), Some(running)) = (&self.driver, self.running.get_mut(key)) else {
            return;
        };
        match driver.update(key, profile).await {
            Ok(()) => {
                tracing::info!(peer = %key.peer, ?profile, "BFD profile changed: renegotiating in place");
                running.profile = profile;
            }
            Err(error) => {
                tracing::warn!(peer = %key.peer, %error, reason = error.reason(), "BFD profile change refused");
            }
        }
    }

    async fn remove(&mut self, key: &SessionKey) {
        let Some(running) = self.running.remove(key) else {
            return;
        };
        running.forwarder.abort();
        self.copy_final_counters(key, &running);
        if let Some(driver) = &self.driver
            && let Err(error) = driver.remove(key).await
        {
            tracing::warn!(peer = %key.peer, %error, "BFD session removal failed");
        }
        tracing::info!(peer = %key.peer, multihop = key.is_multihop, "BFD session stopped");
        let peer = key.peer.to_string();
        let up = &self.metrics.bfd.session_up;
        if self.running.keys().any(|k| k.peer == key.peer) {
            up.with_label_values(&[peer.as_str(), DEFAULT_VRF])
                .set(i64::from(self.any_up(key.peer)));
        } else {
            let _ = up.remove_label_values(&[peer.as_str(), DEFAULT_VRF]);
        }
    }

    fn copy_final_counters(&self, key: &SessionKey, running: &Running) {
        let now = running.handle.counters.snapshot();
        let peer = key.peer.to_string();
        self.metrics
            .bfd
            .add(&peer, DEFAULT_VRF, &running.reported, &now);
    }

    /// Whether any session to `peer` is Up (sessions share the `peer` label).
    fn any_up(&self, peer: IpAddr) -> bool {
        self.running
            .iter()
            .any(|(k, r)| k.peer == peer && r.state == State::Up)
    }

    fn log_once(&mut self, text: String, reason: &'static str) {
        if self.logged.insert(text.clone()) {
            tracing::warn!(reason, "{text}");
        }
    }
}

/// Forwards every status change of one session (the first one included) until it is removed.
async fn forward(
    key: SessionKey,
    generation: u64,
    mut status: tokio::sync::watch::Receiver<Status>,
    changes: mpsc::Sender<Change>,
) {
    loop {
        let now = *status.borrow_and_update();
        let change = Change {
            key: key.clone(),
            generation,
            status: now,
        };
        if changes.send(change).await.is_err() || status.changed().await.is_err() {
            return;
        }
    }
}

/// The networks this node's interfaces are on (what FRR calls a shared network with a peer:
/// single-hop iBGP), read from the kernel. Host routes (/32, /128) connect nothing.
pub fn connected_networks() -> Vec<IpNetwork> {
    let Ok(addresses) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut networks = Vec::new();
    for a in addresses {
        let (Some(address), Some(mask)) = (a.address, a.netmask) else {
            continue;
        };
        let network = match (address.as_sockaddr_in(), mask.as_sockaddr_in()) {
            (Some(ip), Some(mask)) => {
                let prefix = u32::from(mask.ip()).leading_ones() as u8;
                ipnetwork::Ipv4Network::new(ip.ip(), prefix)
                    .ok()
                    .map(IpNetwork::V4)
            }
            _ => match (address.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
                (Some(ip), Some(mask)) => {
                    let prefix = u128::from(mask.ip()).leading_ones() as u8;
                    ipnetwork::Ipv6Network::new(ip.ip(), prefix)
                        .ok()
                        .map(IpNetwork::V6)
                }
                _ => None,
            },
        };
        if let Some(network) = network.filter(|n| n.prefix() < max_prefix(n)) {
            networks.push(network);
        }
    }
    networks
}

fn max_prefix(network: &IpNetwork) -> u8 {
    match network {
        IpNetwork::V4(_) => 32,
        IpNetwork::V6(_) => 128,
    }
}
