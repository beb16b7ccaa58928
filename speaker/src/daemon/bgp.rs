//! The BGP sessions of this node: one `ferrolb-proto` peer task per selected `BGPPeer`,
//! restarted only when its session spec changes, handed only route changes otherwise. Which
//! sessions, with what configuration and whether they follow a restart is decided in
//! [`crate::apply::bgp`]; this module starts, stops and feeds them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ferrolb_proto::bgp::driver::{self, Command, Event, PeerStats};
use ferrolb_proto::bgp::packing::RouteSet;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::apply::bgp::{self, SessionSpec, StartError};
use crate::apply::stop::StopMode;
use crate::metrics::Metrics;

/// How long a stopping session may take to say goodbye (its NOTIFICATION) before its task is
/// left behind.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// One running session.
#[derive(Debug)]
struct Running {
    spec: SessionSpec,
    commands: mpsc::Sender<Command>,
    /// Routes handed to the session; `None` until the first `SetRoutes` (which is always sent:
    /// after a graceful restart it is what releases End-of-RIB).
    routes: Option<RouteSet>,
    /// What the peer sends us (unreadable UPDATEs, prefixes, refreshes) and what waits for it.
    stats: Arc<PeerStats>,
    /// `stats` as last copied into the metrics.
    reported: driver::StatsSnapshot,
    task: JoinHandle<()>,
    events: JoinHandle<()>,
}

/// Every session of this node, by `BGPPeer` name.
#[derive(Debug)]
pub struct Sessions {
    running: BTreeMap<String, Running>,
    metrics: Metrics,
    /// GTSM (RFC 5082) on every directly connected eBGP session of this node; MetalLB's
    /// `BGPPeer` has no field for it, so it is the speaker's setting.
    gtsm: bool,
    /// The most prefixes per family a peer may send us (RFC 4486 Cease 1); `None`: no guard.
    max_prefixes: Option<u32>,
}

impl Sessions {
    /// No sessions yet.
    pub fn new(metrics: Metrics) -> Self {
        Self {
            running: BTreeMap::new(),
            metrics,
            gtsm: false,
            max_prefixes: None,
        }
    }

    /// The max-prefix guard of sessions started from now on; `None` (the default) turns it
    /// off. We keep no received route either way.
    pub fn set_max_prefixes(&mut self, max_prefixes: Option<u32>) {
        self.max_prefixes = max_prefixes;
    }

    /// Whether sessions started from now on use GTSM (single-hop eBGP only: TTL 255 out,
    /// nothing accepted below 255). The routers must do the same (FRR: `neighbor X
    /// ttl-security hops 1`), or those sessions never come up.
    pub fn set_gtsm(&mut self, gtsm: bool) {
        self.gtsm = gtsm;
    }

    /// Copies every session's counters into the metrics (as increments since the last copy).
    pub fn copy_stats(&mut self) {
        for running in self.running.values_mut() {
            running.reported = copy_stats(&self.metrics, running);
        }
    }

    /// Makes the sessions and their routes match `wanted` (peer name → spec and routes).
    /// `is_restarting`: sessions started now follow a restart of this speaker (see
    /// [`bgp::follows_restart`]).
    pub async fn apply(
        &mut self,
        wanted: BTreeMap<String, (SessionSpec, RouteSet)>,
        is_restarting: bool,
    ) {
        let running = self.running.iter().map(|(name, r)| (name, &r.spec));
        for name in bgp::to_stop(running, &wanted) {
            if let Some(running) = self.running.remove(&name) {
                tracing::info!(peer = name, addr = %running.spec.peer_addr, "stopping BGP session");
                self.stop(running).await;
            }
        }
        for (name, (spec, routes)) in wanted {
            if !self.running.contains_key(&name) {
                match self.spawn(&name, spec, is_restarting) {
                    Ok(running) => {
                        self.running.insert(name.clone(), running);
                    }
                    Err(error) => {
                        tracing::warn!(peer = name, %error, reason = error.reason(), "cannot start BGP session");
                        continue;
                    }
                }
            }
            let Some(running) = self.running.get_mut(&name) else {
                continue;
            };
            if running.routes.as_ref() != Some(&routes) {
                let label = running.spec.peer_addr.to_string();
                self.metrics
                    .bgp_announced_prefixes
                    .with_label_values(&[label.as_str()])
                    .set(i64::try_from(routes.len()).unwrap_or(i64::MAX));
                running.routes = Some(routes.clone());
                if running
                    .commands
                    .send(Command::SetRoutes(routes))
                    .await
                    .is_err()
                {
                    tracing::warn!(peer = name, "BGP session task ended");
                }
            }
        }
    }

    /// Ends the sessions `names` at once because their BFD session went down: the router drops
    /// our routes (a CEASE, as a Hard Reset where RFC 8538 was negotiated) if it did not already
    /// through its own BFD. Nothing waits for the goodbye: the path may be gone.
    pub fn hold(&mut self, names: &BTreeSet<String>) {
        for name in names {
            let Some(running) = self.running.remove(name) else {
                continue;
            };
            tracing::warn!(peer = name, addr = %running.spec.peer_addr, "BFD down: closing the BGP session until BFD is up again");
            self.finish(&running);
            tokio::spawn(async move {
                let _ = running.commands.send(Command::Stop).await;
                let _ = tokio::time::timeout(STOP_WAIT, running.task).await;
                running.events.abort();
            });
        }
    }

    /// Ends every session as SIGTERM asks (see [`crate::apply::stop`]): before a restart,
    /// routers that negotiated graceful restart keep our routes and go on forwarding to this
    /// node until the next process is up (RFC 4724; with RFC 8538's N bit, Cease /
    /// Administrative Reset, else no NOTIFICATION); to withdraw, or where GR was not
    /// negotiated, a CEASE (a Hard Reset with RFC 8538) makes them drop our routes at once.
    pub async fn stop_all(&mut self, mode: StopMode) {
        let all = std::mem::take(&mut self.running);
        for running in all.into_values() {
            let command = match mode {
                StopMode::Restart => Command::StopForRestart,
                StopMode::Withdraw => Command::Stop,
            };
            self.stop_with(running, command).await;
        }
    }

    /// Ends a session whose peer is gone from the configuration: the router drops our routes
    /// (a CEASE, as a Hard Reset where RFC 8538 was negotiated).
    async fn stop(&self, running: Running) {
        self.stop_with(running, Command::Stop).await;
    }

    async fn stop_with(&self, running: Running, command: Command) {
        self.finish(&running);
        let _ = running.commands.send(command).await;
        let _ = tokio::time::timeout(STOP_WAIT, running.task).await;
        running.events.abort();
    }

    /// The last counters and the session gauge of a session being stopped.
    fn finish(&self, running: &Running) {
        copy_stats(&self.metrics, running);
        let label = running.spec.peer_addr.to_string();
        self.metrics
            .bgp_session_up
            .with_label_values(&[label.as_str()])
            .set(0);
    }

    fn spawn(
        &self,
        name: &str,
        spec: SessionSpec,
        is_restarting: bool,
    ) -> Result<Running, StartError> {
        let jitter = driver::random_jitter_percent();
        let mut config = bgp::peer_config(&spec, is_restarting, jitter)?;
        config.gtsm = self.gtsm;
        config.max_prefixes = self.max_prefixes;
        tracing::info!(peer = name, addr = %spec.peer_addr, "starting BGP session");
        let driver::PeerHandle {
            commands,
            events,
            stats,
            task,
        } = driver::start(config);
        let events = tokio::spawn(forward_events(
            name.to_owned(),
            spec.peer_addr.to_string(),
            events,
            self.metrics.clone(),
        ));
        Ok(Running {
            spec,
            commands,
            routes: None,
            stats,
            reported: driver::StatsSnapshot::default(),
            task,
            events,
        })
    }
}

/// Adds what `running` counted since its last copy to the metrics; returns the counters now.
fn copy_stats(metrics: &Metrics, running: &Running) -> driver::StatsSnapshot {
    let now = running.stats.snapshot();
    let label = running.spec.peer_addr.to_string();
    metrics.bgp_stats.add(&label, &running.reported, &now);
    now
}

/// Logs session events and keeps the session metrics.
async fn forward_events(
    name: String,
    label: String,
    mut events: mpsc::Receiver<Event>,
    metrics: Metrics,
) {
    let up = metrics.bgp_session_up.with_label_values(&[label.as_str()]);
    let updates = metrics.bgp_updates.with_label_values(&[label.as_str()]);
    up.set(0);
    while let Some(event) = events.recv().await {
        match event {
            Event::Up(negotiated) => {
                up.set(1);
                tracing::info!(
                    peer = name,
                    addr = label,
                    ?negotiated,
                    "BGP session established"
                );
            }
            Event::Down(reason) => {
                up.set(0);
                tracing::warn!(
                    peer = name,
                    addr = label,
                    reason = reason.reason(),
                    "BGP session down"
                );
            }
            Event::RoutesSent {
                updates: sent,
                skipped,
            } => {
                updates.inc_by(sent as u64);
                if skipped > 0 {
                    tracing::warn!(
                        peer = name,
                        skipped,
                        "routes the peer cannot take were left out"
                    );
                }
            }
        }
    }
}
