//! `members`: which speakers are alive, learnt by SWIM gossip (`foca`) over authenticated UDP.
//! The live set feeds the L2 election, so a dead node loses its IPs in well under a second
//! without asking the API server. The same task beats the L2 responder's heartbeat, so a
//! speaker answers ARP/NDP exactly while it keeps gossiping.
//!
//! ```text
//!  join / leave ─────────► ┌──────────────┐ ──► live: watch<BTreeSet<node>>
//!  UDP datagrams (HMAC) ─► │ members task │ ──► UDP datagrams (HMAC, send time)
//!  timer deadlines ──────► │              │ ──► heartbeat: beat() every timeout/4
//!  pulse ticks ──────────► └──────────────┘ ──► lapse: watch<Option<Lapse>>; drop counters
//! ```
//! The task owns the socket, the clocks and the random generator; foca decides the membership,
//! the pure modules the rest.
//!
//! - `auth`: the datagram format, its tag and the keys. - `replay`: the replay window and the
//!   duplicate memory. - `keys`: reading keys from a file or a mounted Secret. - `pulse`: when
//!   to beat, and when the beat must stop for good. - `identity`: a speaker's gossip identity.
//!   - `timers`: foca's pending timers. - `task`: the task itself.

pub mod auth;
pub mod identity;
pub mod keys;
pub mod pulse;
pub mod replay;
mod task;
pub mod timers;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use foca::{Foca, PostcardCodec};
use rand::rngs::StdRng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use auth::{AuthError, Key, Keys};
pub use identity::SpeakerId;
pub use pulse::Lapse;

/// Largest datagram we send or accept (foca packs to fit; leaves room for the header on a 1500
/// MTU).
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
                    NonZeroUsize::new(MAX_DATAGRAM - auth::HEADER_LEN).unwrap_or(NonZeroUsize::MIN);
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
    /// Of those, datagrams opened with an accepted key other than the primary (a key rotation
    /// is under way).
    pub received_secondary_key: AtomicU64,
    /// Datagrams dropped before foca saw them, whatever the reason.
    pub dropped_auth: AtomicU64,
    /// The same by reason, in the order of [`AuthError::REASONS`].
    dropped: [AtomicU64; AuthError::REASONS.len()],
    /// Authentic datagrams foca could not use.
    pub dropped_protocol: AtomicU64,
    /// Datagrams sent.
    pub sent: AtomicU64,
}

impl Counters {
    /// Datagrams dropped for `reason` (one of [`AuthError::REASONS`]).
    pub fn dropped(&self, reason: &str) -> u64 {
        AuthError::REASONS
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.dropped[i].load(Ordering::Relaxed))
    }

    fn count_drop(&self, error: AuthError) {
        self.dropped_auth.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = AuthError::REASONS.iter().position(|r| *r == error.reason()) {
            self.dropped[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The L2 responder's heartbeat, as the members task beats it.
#[derive(Clone)]
pub struct Heart {
    /// The responder stops answering this long after the last beat.
    pub timeout: Duration,
    /// Moves the responder's deadline `timeout` ahead.
    pub beat: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Heart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heart")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// How a membership runs.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Seal with the primary, open with any.
    pub keys: Keys,
    /// Detection speed.
    pub budget: Budget,
    /// The responder's heartbeat, beaten while this membership is alive.
    pub heart: Option<Heart>,
    /// Where to count datagrams (shared across the memberships of one daemon, for metrics).
    pub counters: Arc<Counters>,
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
    lapse: watch::Receiver<Option<Lapse>>,
    local_addr: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl Members {
    /// Starts gossiping on `socket` as `me`, beating nothing.
    pub fn start(
        me: SpeakerId,
        socket: UdpSocket,
        keys: impl Into<Keys>,
        budget: &Budget,
    ) -> std::io::Result<Members> {
        let setup = Setup {
            keys: keys.into(),
            budget: budget.clone(),
            heart: None,
            counters: Arc::default(),
        };
        Members::start_with(me, socket, setup)
    }

    /// Starts gossiping on `socket` as `me`, as `setup` says.
    pub fn start_with(me: SpeakerId, socket: UdpSocket, setup: Setup) -> std::io::Result<Members> {
        let local_addr = socket.local_addr()?;
        let (commands, command_rx) = mpsc::channel(16);
        let (live_tx, live) = watch::channel(BTreeSet::from([me.node.clone()]));
        let (lapse_tx, lapse) = watch::channel(None);
        // Randomness (which member to probe) enters here, from the OS.
        let rng: StdRng = rand::make_rng();
        let foca = Foca::new(me, setup.budget.foca_config(), rng, PostcardCodec);
        let counters = setup.counters;
        // Starting proves us alive: beat now, so what is announced right after (before the
        // task's first tick) is answered and announced.
        if let Some(heart) = &setup.heart {
            (heart.beat)();
        }
        let task = task::Task::new(task::Parts {
            foca,
            socket,
            keys: setup.keys,
            heart: setup.heart,
            live: live_tx,
            lapse: lapse_tx,
            counters: counters.clone(),
        });
        let task = tokio::spawn(task.run(command_rx));
        Ok(Members {
            commands,
            live,
            lapse,
            local_addr,
            counters,
            task,
        })
    }

    /// Node names of the speakers alive now (this one included), updated as they change.
    pub fn live(&self) -> watch::Receiver<BTreeSet<String>> {
        self.live.clone()
    }

    /// Set once this membership has lapsed (see [`pulse`]): it beats no more, and must be
    /// replaced after everything it answered for is withdrawn.
    pub fn lapse(&self) -> watch::Receiver<Option<Lapse>> {
        self.lapse.clone()
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

    /// Leaves the group so the others take over at once, then stops; the socket is closed
    /// when this returns.
    pub async fn leave(self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Leave(done)).await.is_ok() {
            let _ = wait.await;
        }
        self.stop().await;
    }

    /// Stops without a word to the others, as a crash would; the socket is closed when this
    /// returns, so a new membership can bind the same address.
    pub async fn stop(self) {
        self.task.abort();
        // A cancelled task's future (and its socket) is dropped before its handle resolves.
        let _ = self.task.await;
    }

    /// Stops without a word to the others, as a crash would, without waiting for the socket to
    /// close.
    pub fn crash(self) {
        self.task.abort();
    }
}
