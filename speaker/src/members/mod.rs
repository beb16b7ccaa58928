//! `members`: which speakers are alive, learnt by SWIM gossip (`foca`) over authenticated UDP.
//! The live set feeds the L2 election, so a dead node loses its IPs in well under a second
//! without asking the API server.
//!
//! ```text
//!  join / leave ─────────► ┌──────────────┐ ──► live: watch<BTreeSet<node>>
//!  UDP datagrams (HMAC) ─► │ members task │ ──► UDP datagrams (HMAC)
//!  timer deadlines ──────► └──────────────┘ ──► dropped-datagram counters
//! ```
//! The task owns the socket, the clock and the random generator; foca decides everything else.
//!
//! - `auth`: the HMAC framing. - `identity`: a speaker's gossip identity. - `timers`: foca's
//!   pending timers.

pub mod auth;
pub mod identity;
pub mod timers;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferrolb_proto::time::sleep_until;
use foca::{Foca, Notification, PostcardCodec, Runtime, Timer};
use rand::rngs::StdRng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use auth::Key;
pub use identity::SpeakerId;
use timers::Timers;

/// Largest datagram we send or accept (foca packs to fit; leaves room for the tag on a 1500 MTU).
const MAX_DATAGRAM: usize = 1400;

/// How fast failures are detected.
#[derive(Debug, Clone)]
pub enum Budget {
    /// A LAN of up to a few hundred nodes: a crashed speaker is declared dead everywhere in about
    /// 0.3 s (probe every 100 ms, 30 ms to answer, 150 ms of suspicion, news gossiped to three
    /// members every 50 ms and at once on every change).
    Lan,
    /// Anything else, as foca's own configuration.
    Custom(foca::Config),
}

impl Budget {
    fn foca_config(&self) -> foca::Config {
        match self {
            Budget::Lan => {
                let mut config =
                    foca::Config::new_lan(NonZeroU32::new(64).unwrap_or(NonZeroU32::MIN));
                config.probe_period = Duration::from_millis(100);
                config.probe_rtt = Duration::from_millis(30);
                config.suspect_to_down_after = Duration::from_millis(150);
                config.max_packet_size =
                    NonZeroUsize::new(MAX_DATAGRAM - auth::TAG_LEN).unwrap_or(NonZeroUsize::MIN);
                config.periodic_gossip = Some(foca::PeriodicParams {
                    frequency: Duration::from_millis(50),
                    num_members: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
                });
                config
            }
            Budget::Custom(config) => config.clone(),
        }
    }
}

/// Counters of what the task saw.
#[derive(Debug, Default)]
pub struct Counters {
    /// Datagrams accepted.
    pub received: AtomicU64,
    /// Datagrams dropped: short or failing authentication.
    pub dropped_auth: AtomicU64,
    /// Authentic datagrams foca could not use.
    pub dropped_protocol: AtomicU64,
    /// Datagrams sent.
    pub sent: AtomicU64,
}

enum Command {
    Join(Vec<SocketAddr>),
    Leave(oneshot::Sender<()>),
}

/// A running membership.
#[derive(Debug)]
pub struct Members {
    commands: mpsc::Sender<Command>,
    live: watch::Receiver<BTreeSet<String>>,
    local_addr: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

/// What foca asked for during one call, carried out by the task afterwards.
#[derive(Default)]
struct Effects {
    sends: Vec<(SpeakerId, Vec<u8>)>,
    timers: Vec<(Timer<SpeakerId>, Duration)>,
    membership_changed: bool,
}

impl Runtime<SpeakerId> for Effects {
    fn notify(&mut self, notification: Notification<'_, SpeakerId>) {
        if matches!(
            notification,
            Notification::MemberUp(_) | Notification::MemberDown(_) | Notification::Rename(..)
        ) {
            self.membership_changed = true;
        }
    }

    fn send_to(&mut self, to: SpeakerId, data: &[u8]) {
        self.sends.push((to, data.to_vec()));
    }

    fn submit_after(&mut self, event: Timer<SpeakerId>, after: Duration) {
        self.timers.push((event, after));
    }
}

impl Members {
    /// Starts gossiping on `socket` as `me`.
    pub fn start(
        me: SpeakerId,
        socket: UdpSocket,
        key: Key,
        budget: &Budget,
    ) -> std::io::Result<Members> {
        let local_addr = socket.local_addr()?;
        let (commands, command_rx) = mpsc::channel(16);
        let (live_tx, live) = watch::channel(BTreeSet::from([me.node.clone()]));
        let counters = Arc::new(Counters::default());
        // Randomness (which member to probe) enters here, from the OS.
        let rng: StdRng = rand::make_rng();
        let foca = Foca::new(me, budget.foca_config(), rng, PostcardCodec);
        let task = Task {
            foca,
            socket,
            key,
            timers: Timers::default(),
            live: live_tx,
            counters: counters.clone(),
        };
        let task = tokio::spawn(task.run(command_rx));
        Ok(Members {
            commands,
            live,
            local_addr,
            counters,
            task,
        })
    }

    /// Node names of the speakers alive now (this one included), updated as they change.
    pub fn live(&self) -> watch::Receiver<BTreeSet<String>> {
        self.live.clone()
    }

    /// Where this speaker gossips.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Counters of datagrams seen.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Asks the speakers at `seeds` to let us in (repeat it: joining is idempotent).
    pub async fn join(&self, seeds: Vec<SocketAddr>) {
        // The task only stops when told to; a send failure means it already did.
        let _ = self.commands.send(Command::Join(seeds)).await;
    }

    /// Leaves the group so the others take over at once, then stops.
    pub async fn leave(self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Leave(done)).await.is_ok() {
            let _ = wait.await;
        }
        self.task.abort();
    }

    /// Stops without a word to the others, as a crash would.
    pub fn crash(self) {
        self.task.abort();
    }
}

/// The task's state.
struct Task {
    foca: Foca<SpeakerId, PostcardCodec, StdRng, foca::NoCustomBroadcast>,
    socket: UdpSocket,
    key: Key,
    /// Pending foca timers.
    timers: Timers<Timer<SpeakerId>>,
    live: watch::Sender<BTreeSet<String>>,
    counters: Arc<Counters>,
}

impl Task {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; MAX_DATAGRAM + 64];
        loop {
            let next = self.timers.next_deadline();
            let mut effects = Effects::default();
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => {
                    let Ok((len, _from)) = received else { continue };
                    match self.key.open(&buf[..len]) {
                        Ok(payload) => {
                            self.counters.received.fetch_add(1, Ordering::Relaxed);
                            if let Err(error) = self.foca.handle_data(payload, &mut effects) {
                                self.counters.dropped_protocol.fetch_add(1, Ordering::Relaxed);
                                tracing::debug!(%error, "gossip datagram not understood");
                            }
                        }
                        Err(error) => {
                            self.counters.dropped_auth.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(reason = error.reason(), "gossip datagram dropped");
                        }
                    }
                }
                () = sleep_until(next) => {
                    for timer in self.timers.take_due(Instant::now()) {
                        if let Err(error) = self.foca.handle_timer(timer, &mut effects) {
                            tracing::debug!(%error, "gossip timer failed");
                        }
                    }
                }
                command = commands.recv() => match command {
                    Some(Command::Join(seeds)) => {
                        for addr in seeds {
                            // The name is learnt from the reply; only the address is used to send.
                            let seed = SpeakerId { node: String::new(), addr, generation: 0 };
                            if let Err(error) = self.foca.announce(seed, &mut effects) {
                                tracing::debug!(%error, "gossip announce failed");
                            }
                        }
                    }
                    Some(Command::Leave(done)) => {
                        if let Err(error) = self.foca.leave_cluster(&mut effects) {
                            tracing::debug!(%error, "gossip leave failed");
                        }
                        self.apply(effects).await;
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
            }
            self.apply(effects).await;
        }
    }

    async fn apply(&mut self, mut effects: Effects) {
        if effects.membership_changed {
            // Spread the news now rather than at the next periodic gossip.
            let mut more = Effects::default();
            if let Err(error) = self.foca.gossip(&mut more) {
                tracing::debug!(%error, "gossip failed");
            }
            effects.sends.append(&mut more.sends);
            effects.timers.append(&mut more.timers);
        }
        for (to, data) in effects.sends {
            let packet = self.key.seal(&data);
            if self.socket.send_to(&packet, to.addr).await.is_ok() {
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        let now = Instant::now();
        for (timer, after) in effects.timers {
            self.timers.arm(now, after, timer);
        }
        if effects.membership_changed {
            let mut live: BTreeSet<String> = self
                .foca
                .iter_members()
                .map(|m| m.id().node.clone())
                .filter(|n| !n.is_empty())
                .collect();
            live.insert(self.foca.identity().node.clone());
            self.live.send_if_modified(|current| {
                let changed = *current != live;
                *current = live;
                changed
            });
        }
    }
}
