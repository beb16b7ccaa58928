//! The BFD task: one tokio task for every session of the node. It owns the sockets, the timer
//! queue and the sessions, turns datagrams, expiries and the speaker's requests into [`Input`]s
//! for the pure [`Session`]s, and carries out their [`Output`]s. It decides nothing itself:
//! decoding is `packet`'s, demultiplexing and TTL rules `demux`'s, behaviour `fsm`'s.
//!
//! ```text
//!   speaker ──Command (Add, Update, Remove) + reply──▶ ┌──────────┐ owns Session per discriminator,
//!   speaker ◀──── watch<Status> per session ────────── │ BFD task │ Demux, TimerQueue, sockets
//!   metrics ◀── Arc<SessionCounters>, Arc<DropCounters> └──────────┘
//!   listeners UDP 3784 / 4784, v4 / v6 ──datagram + TTL, dest, ifindex──▶ BFD task (read in it)
//!   BFD task ──24 bytes──▶ the session's own sender socket (source port 49152–65535, TTL 255)
//! ```
//!
//! Timers share wake-ups on a grid of [`DriverConfig::timer_slack`] (served late by at most
//! that, never early), and each session's socket is connected to its peer, so that a thousand
//! sessions cost a few hundred wake-ups a second (`benches/bfd_sessions.rs`).
//!
//! A bad datagram is counted by [`DropReason`] and forgotten; a failed send is counted on the
//! session; nothing here panics on network data, and no failure of one session ends the task.
//! When every [`Bfd`] handle is dropped, each session announces AdminDown once and the task ends.

use std::collections::hash_map::RandomState;
use std::future::poll_fn;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::counters::{DropCounters, SessionCounters};
use super::demux::{Demux, SessionKey};
use super::error::{BfdError, DropReason};
use super::fasthash::FastMap;
use super::fsm::{Input, Jitter, Output, Session, Status, TimerKind};
use super::packet::{State, decode, encode};
use super::profile::Profile;
use super::socket::{Listener, Sender, interface_index, open_sender, with_scope};
use super::timers::TimerQueue;
use crate::time::sleep_until;

/// UDP ports of the two encapsulations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// RFC 5881 single hop: 3784.
    pub single_hop: u16,
    /// RFC 5883 multihop: 4784.
    pub multihop: u16,
}

impl Ports {
    /// The RFC ports.
    pub const RFC: Ports = Ports {
        single_hop: 3784,
        multihop: 4784,
    };
}

/// Where the task listens and where it sends, and how precisely it keeps time. The RFC ports
/// both ways in production; two drivers in one network namespace (tests) listen on different
/// ports and send to each other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverConfig {
    /// Ports we listen on.
    pub listen: Ports,
    /// Ports of the peers.
    pub peer: Ports,
    /// How late a timer may be served so that timers share wake-ups (see `timers`): packets
    /// leave up to this much after their jittered time, and a failure is declared up to this
    /// much after the Detection Time.
    pub timer_slack: Duration,
}

/// The default [`DriverConfig::timer_slack`]: under 2 % of MetalLB's default 300 ms interval.
pub const TIMER_SLACK: Duration = Duration::from_millis(5);

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            listen: Ports::RFC,
            peer: Ports::RFC,
            timer_slack: TIMER_SLACK,
        }
    }
}

/// A session the speaker asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSpec {
    /// Peer, local address, hop mode, interface.
    pub key: SessionKey,
    /// Its timers.
    pub profile: Profile,
}

/// What the speaker holds for one session.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    /// The session's key.
    pub key: SessionKey,
    /// Our discriminator for it.
    pub local_discr: u32,
    /// Its state, intervals and the peer's view; changes are notified.
    pub status: watch::Receiver<Status>,
    /// Its packet and state-change counters.
    pub counters: Arc<SessionCounters>,
}

/// What the speaker asks of the task.
#[derive(Debug)]
enum Command {
    Add(
        SessionSpec,
        oneshot::Sender<Result<SessionHandle, BfdError>>,
    ),
    Update(SessionKey, Profile, oneshot::Sender<Result<(), BfdError>>),
    Remove(SessionKey, oneshot::Sender<Result<(), BfdError>>),
}

/// The speaker's handle on the BFD task; cheap to clone.
#[derive(Debug, Clone)]
pub struct Bfd {
    commands: mpsc::Sender<Command>,
    drops: Arc<DropCounters>,
}

impl Bfd {
    /// Starts a session; it begins in Down and sends at once unless passive.
    pub async fn add(&self, spec: SessionSpec) -> Result<SessionHandle, BfdError> {
        self.ask(|reply| Command::Add(spec, reply)).await
    }

    /// Applies a changed profile; intervals are renegotiated with a Poll Sequence, without
    /// leaving Up.
    pub async fn update(&self, key: &SessionKey, profile: Profile) -> Result<(), BfdError> {
        let key = key.clone();
        self.ask(|reply| Command::Update(key, profile, reply)).await
    }

    /// Removes a session: it announces AdminDown for a Detection Time (so the peer does not
    /// treat it as a failure), then is forgotten.
    pub async fn remove(&self, key: &SessionKey) -> Result<(), BfdError> {
        let key = key.clone();
        self.ask(|reply| Command::Remove(key, reply)).await
    }

    /// Datagrams discarded, by reason, over all sessions.
    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, BfdError>>) -> Command,
    ) -> Result<T, BfdError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| BfdError::Stopped)?;
        answer.await.map_err(|_| BfdError::Stopped)?
    }
}

/// Starts the BFD task on the current runtime (and network namespace).
pub fn spawn(config: DriverConfig) -> (Bfd, JoinHandle<()>) {
    let (commands, rx) = mpsc::channel(64);
    let drops = Arc::new(DropCounters::default());
    let task = tokio::spawn(run(config, rx, Arc::clone(&drops)));
    (Bfd { commands, drops }, task)
}

/// The largest datagram we read; Control packets are 24 bytes, 52 with the longest
/// authentication section.
const RX_BUF: usize = 512;

/// Datagrams read from one listener before the loop looks at timers and commands again.
const RX_BATCH: usize = 256;

/// One session with what the task needs to serve it.
#[derive(Debug)]
struct Slot {
    session: Session,
    key: SessionKey,
    /// Bound to the session's source port, connected to the peer when it has a route.
    sender: Sender,
    status: watch::Sender<Status>,
    /// What `status` holds, to publish only changes without taking its lock.
    published: Status,
    counters: Arc<SessionCounters>,
    /// Removal asked: AdminDown is being announced.
    is_retiring: bool,
}

/// The task's state; each field is owned here and nowhere else.
#[derive(Debug)]
struct Task {
    config: DriverConfig,
    demux: Demux,
    slots: FastMap<u32, Slot>,
    timers: TimerQueue<(u32, TimerKind)>,
    /// Opened on first use: [v4 single hop, v6 single hop, v4 multihop, v6 multihop].
    listeners: [Option<Arc<Listener>>; 4],
    rx_buf: Vec<u8>,
    cmsg: Vec<u8>,
    rng: SplitMix,
    drops: Arc<DropCounters>,
}

async fn run(
    config: DriverConfig,
    mut commands: mpsc::Receiver<Command>,
    drops: Arc<DropCounters>,
) {
    let mut task = Task {
        config,
        demux: Demux::new(),
        slots: FastMap::default(),
        timers: TimerQueue::with_slack(config.timer_slack),
        listeners: Default::default(),
        rx_buf: vec![0; RX_BUF],
        cmsg: Listener::cmsg_buffer(),
        rng: SplitMix::seeded(),
        drops,
    };
    loop {
        let wake = task.timers.next_wake().map(Instant::from_std);
        let listeners = task.listeners.clone();
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(cmd) => task.on_command(cmd),
                None => break,
            },
            i = any_readable(&listeners) => task.drain(i),
            _ = sleep_until(wake), if wake.is_some() => task.fire_timers(),
        }
    }
    task.shut_down();
}

/// The index of a listener with a datagram waiting.
async fn any_readable(listeners: &[Option<Arc<Listener>>; 4]) -> usize {
    poll_fn(|cx| {
        for (i, l) in listeners.iter().enumerate() {
            if l.as_ref().is_some_and(|l| l.poll_readable(cx).is_ready()) {
                return Poll::Ready(i);
            }
        }
        Poll::Pending
    })
    .await
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl Task {
    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Add(spec, reply) => {
                let _ = reply.send(self.add(spec));
            }
            Command::Update(key, profile, reply) => {
                let _ = reply.send(self.update(&key, profile));
            }
            Command::Remove(key, reply) => {
                let _ = reply.send(self.remove(&key));
            }
        }
    }

    fn add(&mut self, spec: SessionSpec) -> Result<SessionHandle, BfdError> {
        let params = spec.profile.params()?;
        let key = spec.key;
        check_addresses(&key)?;
        if let Some(d) = self.demux.find(&key) {
            if !self.slots.get(&d).is_some_and(|s| s.is_retiring) {
                return Err(BfdError::Duplicate { peer: key.peer });
            }
            self.forget(d);
        }
        let is_v6 = key.peer.is_ipv6();
        self.ensure_listener(is_v6, key.is_multihop)?;
        let ifindex = match &key.interface {
            Some(name) => Some(interface_index(name).map_err(|source| BfdError::Socket {
                what: format!("find interface {name}"),
                source,
            })?),
            None => None,
        };
        let discr = self.demux.free_discriminator(self.rng.next_u32());
        let peer_port = if key.is_multihop {
            self.config.peer.multihop
        } else {
            self.config.peer.single_hop
        };
        let dest = with_scope(SocketAddr::new(key.peer, peer_port), ifindex.unwrap_or(0));
        let (sender, port) = self.bind_sender(&key, ifindex, dest)?;
        let session = Session::new(discr, params);
        let published = session.status();
        let (status, status_rx) = watch::channel(published);
        let counters = Arc::new(SessionCounters::default());
        self.demux
            .insert(discr, key.clone(), ifindex, spec.profile.minimum_ttl, port);
        self.slots.insert(
            discr,
            Slot {
                session,
                key: key.clone(),
                sender,
                status,
                published,
                counters: Arc::clone(&counters),
                is_retiring: false,
            },
        );
        tracing::info!(peer = %key.peer, local = ?key.local, multihop = key.is_multihop, discr, source_port = port, "BFD session added");
        let jitter = self.jitter();
        self.feed(discr, Input::Start(jitter));
        Ok(SessionHandle {
            key,
            local_discr: discr,
            status: status_rx,
            counters,
        })
    }

    fn update(&mut self, key: &SessionKey, profile: Profile) -> Result<(), BfdError> {
        let params = profile.params()?;
        let discr = self.live(key)?;
        self.demux.set_minimum_ttl(discr, profile.minimum_ttl);
        self.feed(discr, Input::Reconfigure(params));
        Ok(())
    }

    fn remove(&mut self, key: &SessionKey) -> Result<(), BfdError> {
        let discr = match self.live(key) {
            Ok(d) => d,
            // A second removal of a session still announcing AdminDown.
            Err(_) if self.demux.find(key).is_some() => return Ok(()),
            Err(e) => return Err(e),
        };
        if let Some(slot) = self.slots.get_mut(&discr) {
            slot.is_retiring = true;
        }
        self.feed(discr, Input::Retire);
        Ok(())
    }

    /// The discriminator of a session that is not being removed.
    fn live(&self, key: &SessionKey) -> Result<u32, BfdError> {
        self.demux
            .find(key)
            .filter(|d| self.slots.get(d).is_some_and(|s| !s.is_retiring))
            .ok_or(BfdError::UnknownSession { peer: key.peer })
    }

    fn ensure_listener(&mut self, is_v6: bool, is_multihop: bool) -> Result<(), BfdError> {
        let i = usize::from(is_multihop) * 2 + usize::from(is_v6);
        if self.listeners[i].is_some() {
            return Ok(());
        }
        let port = if is_multihop {
            self.config.listen.multihop
        } else {
            self.config.listen.single_hop
        };
        let listener =
            Listener::open(is_v6, port, is_multihop).map_err(|source| BfdError::Socket {
                what: format!(
                    "listen on UDP port {port} ({})",
                    if is_v6 { "IPv6" } else { "IPv4" }
                ),
                source,
            })?;
        self.listeners[i] = Some(Arc::new(listener));
        Ok(())
    }

    /// The session's own socket, on the first free source port the kernel lets us bind.
    fn bind_sender(
        &mut self,
        key: &SessionKey,
        ifindex: Option<u32>,
        dest: SocketAddr,
    ) -> Result<(Sender, u16), BfdError> {
        let start = self.rng.next_u32() as u16;
        let device = if key.is_multihop {
            None
        } else {
            key.interface.as_deref()
        };
        for port in self.demux.free_ports(start) {
            match open_sender(key.local, port, device, ifindex.unwrap_or(0), dest) {
                Ok(socket) => return Ok((socket, port)),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(source) => {
                    return Err(BfdError::Socket {
                        what: format!("bind source port {port} for {}", key.peer),
                        source,
                    });
                }
            }
        }
        Err(BfdError::NoSourcePort { peer: key.peer })
    }

    /// Reads what one listener has queued, up to a batch.
    fn drain(&mut self, i: usize) {
        let Some(listener) = self.listeners[i].clone() else {
            return;
        };
        for _ in 0..RX_BATCH {
            match listener.try_recv(&mut self.rx_buf, &mut self.cmsg) {
                Ok((len, meta)) => {
                    let Some(bytes) = self.rx_buf.get(..len) else {
                        continue;
                    };
                    let routed = decode(bytes).and_then(|p| {
                        let discr = self.demux.select(&meta, &p)?;
                        Ok((discr, p))
                    });
                    match routed {
                        Ok((discr, packet)) => {
                            if let Some(slot) = self.slots.get(&discr) {
                                slot.counters.received();
                            }
                            self.feed(discr, Input::Received(packet));
                        }
                        Err(reason) => self.dropped(reason, &meta.source),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!(error = %e, "BFD receive failed");
                    return;
                }
            }
        }
    }

    fn dropped(&self, reason: DropReason, source: &IpAddr) {
        self.drops.count(reason);
        tracing::debug!(%source, reason = reason.reason(), "BFD packet dropped");
    }

    fn fire_timers(&mut self) {
        let now = now();
        while let Some((discr, kind)) = self.timers.pop_due(now) {
            let input = match kind {
                TimerKind::Transmit => Input::TransmitTimerExpired(self.jitter()),
                TimerKind::Detect => Input::DetectTimerExpired,
                TimerKind::Retire => Input::RetireTimerExpired,
            };
            self.feed(discr, input);
        }
    }

    /// Steps one session and carries out what it says.
    fn feed(&mut self, discr: u32, input: Input) {
        let Some(slot) = self.slots.get_mut(&discr) else {
            return;
        };
        let mut is_retired = false;
        for output in slot.session.step(now(), input) {
            match output {
                Output::Send(packet) => match slot.sender.send(&encode(&packet)) {
                    Ok(_) => slot.counters.sent(),
                    Err(e) => {
                        slot.counters.send_failed();
                        tracing::debug!(peer = %slot.key.peer, error = %e, "BFD send failed");
                    }
                },
                Output::ArmTimer(kind, at) => self.timers.arm((discr, kind), at),
                Output::CancelTimer(kind) => self.timers.cancel((discr, kind)),
                Output::StateChanged { from, to, diag } => {
                    if to == State::Up {
                        slot.counters.went_up();
                    } else if from == State::Up {
                        slot.counters.went_down();
                    }
                    tracing::info!(peer = %slot.key.peer, multihop = slot.key.is_multihop, %from, %to, diag = diag.reason(), "BFD session state");
                }
                Output::Retired => is_retired = true,
            }
        }
        let status = slot.session.status();
        if status != slot.published {
            slot.published = status;
            slot.status.send_replace(status);
        }
        if is_retired {
            self.forget(discr);
        }
    }

    fn forget(&mut self, discr: u32) {
        if let Some(slot) = self.slots.remove(&discr) {
            tracing::info!(peer = %slot.key.peer, discr, "BFD session removed");
        }
        self.demux.remove(discr);
        for kind in [TimerKind::Transmit, TimerKind::Detect, TimerKind::Retire] {
            self.timers.cancel((discr, kind));
        }
    }

    /// Every session says AdminDown once, so peers do not take our exit for a failure.
    fn shut_down(&mut self) {
        let discrs: Vec<u32> = self.slots.keys().copied().collect();
        for discr in discrs {
            self.feed(discr, Input::AdminDown);
        }
    }

    fn jitter(&mut self) -> Jitter {
        Jitter((self.rng.next_u64() >> 48) as u16)
    }
}

/// Refuses keys that cannot work: mixed families, an interface on a multihop session, a
/// link-local peer without its interface, a peer that is not a unicast address.
fn check_addresses(key: &SessionKey) -> Result<(), BfdError> {
    let bad = |problem| BfdError::BadAddress {
        peer: key.peer,
        problem,
    };
    if key.local.is_some_and(|l| l.is_ipv6() != key.peer.is_ipv6()) {
        return Err(bad("local and peer addresses are of different families"));
    }
    if key.peer.is_unspecified() || key.peer.is_multicast() {
        return Err(bad("the peer must be a unicast address"));
    }
    if key.is_multihop && key.interface.is_some() {
        return Err(bad("an interface applies to single-hop sessions only"));
    }
    let is_link_local = matches!(key.peer, IpAddr::V6(v6) if v6.is_unicast_link_local());
    if is_link_local && key.interface.is_none() {
        return Err(bad("a link-local peer needs an interface"));
    }
    Ok(())
}

/// SplitMix64: jitter and starting points for discriminators and ports. Seeded from the OS
/// (through the hasher's random keys), so no two speakers or restarts share a sequence.
#[derive(Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn seeded() -> Self {
        let mut h = RandomState::new().build_hasher();
        h.write_u8(0);
        Self(h.finish())
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}
