//! One tokio task per BGP peer: owns the TCP connection(s) and the timers, turns reads and
//! expiries into [`Input`]s for the pure [`Session`], and carries out its [`Output`]s. It decides
//! nothing itself; route changes arrive over a channel and leave as packed UPDATEs.
//!
//! ```text
//!   speaker ──Command (SetRoutes, Incoming(stream), Stop)──▶ ┌───────────┐
//!   speaker ◀──────────Event (Up, Down)───────────────────── │ peer task │ owns Session + timers
//!                                                            └───────────┘
//!           dial task ──Dialed(stream | error)──▶ peer task
//!   reader task per conn ──Frame / BadFrame / Closed──▶ peer task   (length-checked framer)
//!   peer task ──Bytes──▶ writer task per conn ──▶ TcpStream write half (flush, then shutdown)
//! ```
//!
//! A malformed frame ends that connection with the NOTIFICATION the framer chose; nothing here
//! panics on network data, and a failure on one connection never ends the task.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::fsm::{Config, ConnId, DownReason, Input, Output, Session, TimerKind};
use super::md5::{self, Md5Key};
use super::notification::{Notification, code, header};
use super::open::{MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN, Negotiated, PeerAs};
use super::packet::{
    FrameError, Received, decode, encode_keepalive, encode_notification, encode_open, split_frame,
};
use super::packing::{Packed, PeerEncoding, RouteSet, end_of_rib, pack};
use super::sockopt::set_ttl;
pub use super::sockopt::{DeviceName, DeviceNameError};
use crate::time::sleep_until;

/// What the speaker tells a peer task.
#[derive(Debug)]
pub enum Command {
    /// The routes this peer should have from now on (replaces the previous set).
    ///
    /// The first one also completes our initial table: when the session's config says
    /// `is_restarting` (RFC 4724), End-of-RIB waits for it, because the peer drops whatever
    /// stale route of ours the initial table lacks when End-of-RIB arrives. Send it (even
    /// empty) once the speaker knows the routes.
    SetRoutes(RouteSet),
    /// The shared listener accepted a connection from this peer's address.
    Incoming(TcpStream),
    /// Clean shutdown: CEASE 6/2 on the session, then the task ends.
    Stop,
}

/// What a peer task tells the speaker.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The session reached Established.
    Up(Negotiated),
    /// The Established session ended.
    Down(DownReason),
    /// UPDATEs were sent: how many messages, and how many routes had to be left out.
    RoutesSent {
        /// Messages written.
        updates: usize,
        /// Routes the peer cannot take (family not negotiated, bad next hop).
        skipped: usize,
    },
}

/// How to reach one peer.
#[derive(Debug, Clone, Copy)]
pub struct PeerConfig {
    /// The session's configuration.
    pub session: Config,
    /// Where to dial (port 179 in production).
    pub peer_addr: SocketAddr,
    /// Never dial; only take connections passed in with [`Command::Incoming`].
    pub is_passive: bool,
    /// Source address of our dials (MetalLB's `BGPPeer.spec.sourceAddress`); `None` lets the
    /// kernel choose by route.
    pub local_addr: Option<IpAddr>,
    /// TCP MD5 key (RFC 2385) for our dials. Connections the peer opens arrive on the
    /// speaker's listener, which needs the same key set with [`md5::set_key_on_listener`].
    pub md5_key: Option<Md5Key>,
    /// MetalLB's `ebgpMultiHop`: an eBGP peer more than one hop away. Without it, eBGP packets
    /// leave with TTL (hop limit) 1, as FRR and MetalLB do, so a peer that is not directly
    /// connected is never reached; iBGP and multihop eBGP use 255. See [`PeerConfig::ttl`].
    pub ebgp_multihop: bool,
    /// MetalLB's `vrf`: the VRF device our dials are bound to (SO_BINDTODEVICE), so that they
    /// route by the VRF's table. `None`: the default VRF. Connections the peer opens arrive on
    /// the speaker's listener, which must be bound to the same device.
    pub vrf: Option<DeviceName>,
}

impl PeerConfig {
    /// An active peer dialled at `peer_addr` from the address the kernel chooses, directly
    /// connected for eBGP, in the default VRF.
    pub fn new(session: Config, peer_addr: SocketAddr) -> Self {
        Self {
            session,
            peer_addr,
            is_passive: false,
            local_addr: None,
            md5_key: None,
            ebgp_multihop: false,
            vrf: None,
        }
    }

    /// The IP TTL (IPv6 hop limit) of our packets on this session: 1 for eBGP without
    /// multihop (the peer must be on-link), else 255.
    pub fn ttl(&self) -> u8 {
        if self.is_ebgp() && !self.ebgp_multihop {
            1
        } else {
            255
        }
    }
}

impl PeerConfig {
    /// Whether the configured peer AS makes this an eBGP session.
    fn is_ebgp(&self) -> bool {
        let local = &self.session.local;
        match local.peer_as {
            PeerAs::Fixed(asn) => asn != local.local_as,
            PeerAs::Internal => false,
            PeerAs::External => true,
        }
    }
}

/// A jitter share for [`Config::jitter_percent`] (0..=25), drawn from the OS-seeded hasher.
pub fn random_jitter_percent() -> u8 {
    let mut h = RandomState::new().build_hasher();
    h.write_u8(0);
    (h.finish() % 26) as u8
}

/// Starts a peer task. Dropping the command sender stops it like [`Command::Stop`].
pub fn spawn(config: PeerConfig) -> (mpsc::Sender<Command>, mpsc::Receiver<Event>, JoinHandle<()>) {
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let (event_tx, event_rx) = mpsc::channel(64);
    let task = tokio::spawn(run(config, cmd_rx, event_tx));
    (cmd_tx, event_rx, task)
}

/// What the per-connection and dial tasks report.
#[derive(Debug)]
enum ConnEvent {
    Dialed(u64, std::io::Result<TcpStream>),
    Frame(ConnId, Bytes),
    BadFrame(ConnId, FrameError),
    Closed(ConnId),
}

/// One live TCP connection: its writer queue and its reader task.
#[derive(Debug)]
struct Conn {
    writer: mpsc::UnboundedSender<Bytes>,
    reader: JoinHandle<()>,
}

/// The peer task's state; each field is owned here and nowhere else.
#[derive(Debug)]
struct Peer {
    config: PeerConfig,
    session: Session,
    conns: HashMap<ConnId, Conn>,
    next_conn: u64,
    /// The dial in flight and its generation (stale results are dropped).
    dial: Option<(u64, JoinHandle<()>)>,
    dial_generation: u64,
    deadlines: [Option<Instant>; 3],
    /// The connection UPDATEs go to and its encoding, while Established.
    established: Option<(ConnId, PeerEncoding)>,
    /// Shared with `advertised` once sent: a 100k-route table is then held once, and marking it
    /// advertised costs nothing (a deep copy took 15 ms, during which the writer stalled).
    desired: Arc<RouteSet>,
    /// A `SetRoutes` arrived: `desired` is the speaker's table, not a placeholder.
    has_desired: bool,
    /// End-of-RIB went out on the current Established session.
    is_eor_sent: bool,
    /// The whole desired table encoded ahead, while no session is up, for each encoding the
    /// next session is likely to negotiate: the initial UPDATEs then leave the moment it is
    /// Established instead of after packing (tens of ms for 100k routes).
    prepacked: Vec<(PeerEncoding, Packed)>,
    /// The encoding of the last Established session: the best guess for the next one.
    last_encoding: Option<PeerEncoding>,
    advertised: Arc<RouteSet>,
    conn_tx: mpsc::UnboundedSender<ConnEvent>,
    events: mpsc::Sender<Event>,
    /// Largest message the readers accept: 4096 until Extended Messages are negotiated, so a
    /// bad length is refused from the header, before its body is buffered.
    frame_limit: Arc<AtomicUsize>,
}

/// The peer task: loops until stopped.
pub async fn run(
    config: PeerConfig,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
) {
    let (conn_tx, mut conn_rx) = mpsc::unbounded_channel();
    let mut peer = Peer {
        config,
        session: Session::new(config.session),
        conns: HashMap::new(),
        next_conn: 1,
        dial: None,
        dial_generation: 0,
        deadlines: [None; 3],
        established: None,
        desired: Arc::default(),
        has_desired: false,
        is_eor_sent: false,
        prepacked: Vec::new(),
        last_encoding: None,
        advertised: Arc::default(),
        conn_tx,
        events,
        frame_limit: Arc::new(AtomicUsize::new(MAX_MESSAGE_LEN)),
    };
    let start = if config.is_passive {
        Input::ManualStartPassive
    } else {
        Input::ManualStart
    };
    // Routes handed over right after `spawn` are encoded before the first dial, so that the
    // initial table leaves the moment the session is up.
    let mut pending = None;
    while let Ok(cmd) = commands.try_recv() {
        if let Command::SetRoutes(routes) = cmd {
            peer.desired = Arc::new(routes);
            peer.has_desired = true;
        } else {
            pending = Some(cmd);
            break;
        }
    }
    peer.prepack();
    peer.feed(start).await;
    let mut is_running = match pending {
        Some(cmd) => peer.on_command(Some(cmd)).await,
        None => true,
    };
    while is_running {
        let [retry, hold, keepalive] = peer.deadlines;
        tokio::select! {
            cmd = commands.recv() => is_running = peer.on_command(cmd).await,
            Some(ev) = conn_rx.recv() => peer.on_conn_event(ev).await,
            _ = sleep_until(retry), if retry.is_some() => peer.feed(Input::ConnectRetryTimerExpires).await,
            _ = sleep_until(hold), if hold.is_some() => peer.feed(Input::HoldTimerExpires).await,
            _ = sleep_until(keepalive), if keepalive.is_some() => peer.feed(Input::KeepaliveTimerExpires).await,
        }
    }
    if let Some((_, dial)) = peer.dial.take() {
        dial.abort();
    }
}

fn timer_index(kind: TimerKind) -> usize {
    match kind {
        TimerKind::ConnectRetry => 0,
        TimerKind::Hold => 1,
        TimerKind::Keepalive => 2,
    }
}

impl Peer {
    /// Carries out one command; false once the task must end.
    async fn on_command(&mut self, cmd: Option<Command>) -> bool {
        match cmd {
            Some(Command::SetRoutes(routes)) => {
                self.desired = Arc::new(routes);
                self.has_desired = true;
                if self.established.is_none() {
                    self.prepack();
                } else {
                    let is_initial = !self.is_eor_sent;
                    self.send_routes(is_initial).await;
                }
                true
            }
            Some(Command::Incoming(stream)) => {
                let id = self.add_conn(stream);
                self.feed(Input::TcpConnectionConfirmed(id)).await;
                true
            }
            Some(Command::Stop) | None => {
                self.feed(Input::ManualStop).await;
                false
            }
        }
    }

    async fn feed(&mut self, input: Input) {
        let now = Instant::now();
        let outputs = self.session.step(now.into_std(), input);
        for output in outputs {
            self.carry_out(output).await;
        }
    }

    async fn carry_out(&mut self, output: Output) {
        match output {
            Output::Connect => self.dial(),
            Output::CancelConnect => {
                if let Some((_, dial)) = self.dial.take() {
                    dial.abort();
                }
            }
            Output::CloseConnection(id) => {
                if let Some(conn) = self.conns.remove(&id) {
                    // Dropping the queue lets the writer flush what is queued, then shut down.
                    conn.reader.abort();
                }
                if self.established.is_some_and(|(c, _)| c == id) {
                    self.established = None;
                    self.advertised = Arc::default();
                }
            }
            Output::SendOpen(id, open) => match encode_open(&open) {
                Ok(bytes) => self.send(id, bytes),
                Err(e) => tracing::error!(reason = e.reason(), error = %e, "cannot encode OPEN"),
            },
            Output::SendKeepalive(id) => self.send(id, encode_keepalive()),
            Output::SendNotification(id, n) => {
                tracing::info!(peer = %self.config.peer_addr, notification = %n, "sending NOTIFICATION");
                self.send(id, encode_notification(&n));
            }
            Output::ArmTimer(kind, at) => {
                self.deadlines[timer_index(kind)] = Some(Instant::from_std(at))
            }
            Output::CancelTimer(kind) => self.deadlines[timer_index(kind)] = None,
            Output::SessionUp(id, negotiated) => {
                tracing::info!(peer = %self.config.peer_addr, ?negotiated, "session established");
                let encoding = PeerEncoding::new(self.config.session.local.local_as, &negotiated);
                self.established = Some((id, encoding));
                self.last_encoding = Some(encoding);
                self.frame_limit
                    .store(negotiated.max_message_len(), Ordering::Relaxed);
                self.advertised = Arc::default();
                self.is_eor_sent = false;
                let _ = self.events.send(Event::Up(negotiated)).await;
                // RFC 4724 §4.1: after a restart the initial table is the speaker's, then EoR.
                if self.has_desired || !self.config.session.is_restarting {
                    self.send_routes(true).await;
                }
            }
            Output::SessionDown(reason) => {
                self.frame_limit.store(MAX_MESSAGE_LEN, Ordering::Relaxed);
                tracing::info!(peer = %self.config.peer_addr, reason = reason.reason(), "session down");
                self.established = None;
                self.advertised = Arc::default();
                let _ = self.events.send(Event::Down(reason)).await;
                self.prepack();
            }
            Output::ReadvertiseRoutes(_) => {
                self.advertised = Arc::default();
                self.send_routes(false).await;
            }
        }
    }

    fn send(&self, id: ConnId, bytes: Bytes) {
        if let Some(conn) = self.conns.get(&id) {
            let _ = conn.writer.send(bytes);
        }
    }

    /// Sends the difference between desired and advertised; the End-of-RIB markers after the
    /// initial table.
    async fn send_routes(&mut self, is_initial: bool) {
        let Some((id, enc)) = self.established else {
            return;
        };
        let ready = match self.prepacked.iter().position(|(e, _)| *e == enc) {
            Some(i) if self.advertised.is_empty() => Some(self.prepacked.swap_remove(i).1),
            _ => None,
        };
        self.prepacked.clear();
        let packed = match ready.map_or_else(|| pack(&enc, &self.desired, &self.advertised), Ok) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(reason = e.reason(), error = %e, "cannot pack UPDATEs");
                return;
            }
        };
        let mut updates = packed.messages.len();
        for m in packed.messages {
            self.send(id, m);
        }
        if is_initial {
            self.is_eor_sent = true;
            match end_of_rib(&enc) {
                Ok(markers) => {
                    updates += markers.len();
                    for m in markers {
                        self.send(id, m);
                    }
                }
                Err(e) => {
                    tracing::error!(reason = e.reason(), error = %e, "cannot encode End-of-RIB")
                }
            }
        }
        // Let the writer start on a single-threaded runtime before the bookkeeping below.
        tokio::task::yield_now().await;
        self.advertised = Arc::clone(&self.desired);
        if !packed.skipped.is_empty() {
            let advertised = Arc::make_mut(&mut self.advertised);
            for (prefix, _) in &packed.skipped {
                advertised.remove(prefix);
            }
        }
        let skipped = packed.skipped.len();
        let _ = self
            .events
            .send(Event::RoutesSent { updates, skipped })
            .await;
    }

    /// Encodes the desired table ahead for the encodings the next session may negotiate: the
    /// last session's, or before any session the one our OPEN asks for, with and without
    /// Extended Messages. Only while no session is up.
    fn prepack(&mut self) {
        self.prepacked.clear();
        if self.established.is_some() || self.desired.is_empty() {
            return;
        }
        let local = &self.config.session.local;
        let expected: Vec<PeerEncoding> = match self.last_encoding {
            Some(enc) => vec![enc],
            None => {
                let guess = |max_message_len| PeerEncoding {
                    local_as: local.local_as,
                    is_ibgp: !self.config.is_ebgp(),
                    four_octet_as: true,
                    max_message_len,
                    families: local.families,
                };
                let mut v = vec![guess(MAX_MESSAGE_LEN)];
                if local.extended_message {
                    v.push(guess(MAX_EXTENDED_MESSAGE_LEN));
                }
                v
            }
        };
        for enc in expected {
            match pack(&enc, &self.desired, &RouteSet::new()) {
                Ok(p) => self.prepacked.push((enc, p)),
                Err(e) => tracing::error!(reason = e.reason(), error = %e, "cannot pack UPDATEs"),
            }
        }
    }

    fn dial(&mut self) {
        if let Some((_, old)) = self.dial.take() {
            old.abort();
        }
        self.dial_generation += 1;
        let generation = self.dial_generation;
        let config = self.config;
        let tx = self.conn_tx.clone();
        let task = tokio::spawn(async move {
            let result = connect(&config).await;
            let _ = tx.send(ConnEvent::Dialed(generation, result));
        });
        self.dial = Some((generation, task));
    }

    fn add_conn(&mut self, stream: TcpStream) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        let _ = stream.set_nodelay(true);
        // Connections the peer opened get our TTL too (dials have it from the start).
        let is_v6 = stream.local_addr().is_ok_and(|a| a.is_ipv6());
        if let Err(e) = set_ttl(socket2::SockRef::from(&stream), is_v6, self.config.ttl()) {
            tracing::warn!(peer = %self.config.peer_addr, error = %e, "cannot set TTL");
        }
        let (read, write) = stream.into_split();
        let (writer, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(write, queue));
        let limit = Arc::clone(&self.frame_limit);
        let reader = tokio::spawn(read_loop(id, read, limit, self.conn_tx.clone()));
        self.conns.insert(id, Conn { writer, reader });
        id
    }

    async fn on_conn_event(&mut self, ev: ConnEvent) {
        match ev {
            ConnEvent::Dialed(generation, result) => {
                if self.dial.as_ref().map(|(g, _)| *g) != Some(generation) {
                    return;
                }
                self.dial = None;
                match result {
                    Ok(stream) => {
                        let id = self.add_conn(stream);
                        self.feed(Input::TcpConnectionAcknowledged(id)).await;
                    }
                    Err(e) => {
                        tracing::debug!(peer = %self.config.peer_addr, error = %e, "dial failed");
                        self.feed(Input::TcpConnectionFails(None)).await;
                    }
                }
            }
            ConnEvent::Frame(id, frame) if self.conns.contains_key(&id) => {
                let input = self.input_for_frame(id, &frame);
                self.feed(input).await;
            }
            ConnEvent::BadFrame(id, err) if self.conns.contains_key(&id) => {
                tracing::info!(peer = %self.config.peer_addr, notification = %err.notification(), "bad frame");
                self.feed(input_for_error(id, err)).await;
            }
            ConnEvent::Closed(id) if self.conns.contains_key(&id) => {
                self.feed(Input::TcpConnectionFails(Some(id))).await;
            }
            _ => {}
        }
    }

    /// Decodes a frame with what this session negotiated, into the FSM input it is.
    fn input_for_frame(&self, id: ConnId, frame: &[u8]) -> Input {
        let negotiated = self.session.negotiated();
        let limit = negotiated.map_or(MAX_MESSAGE_LEN, Negotiated::max_message_len);
        if frame.len() > limit {
            let len = u16::try_from(frame.len()).unwrap_or(u16::MAX);
            let n = Notification::with_data(
                code::MESSAGE_HEADER,
                header::BAD_MESSAGE_LENGTH,
                len.to_be_bytes(),
            );
            return Input::BgpHeaderErr(id, n);
        }
        let four_octet_as = negotiated.is_some_and(|n| n.four_octet_as);
        match decode(frame, four_octet_as) {
            Ok(Received::Open(open)) => Input::BgpOpen(id, open),
            Ok(Received::Update(_)) => Input::UpdateMsg(id),
            Ok(Received::Notification(n)) => Input::NotifMsg(id, n),
            Ok(Received::KeepAlive) => Input::KeepAliveMsg(id),
            Ok(Received::RouteRefresh) => Input::RouteRefreshMsg(id),
            Err(err) => input_for_error(id, err),
        }
    }
}

fn input_for_error(id: ConnId, err: FrameError) -> Input {
    match err {
        FrameError::Header(n) => Input::BgpHeaderErr(id, n),
        FrameError::Open(n) => Input::BgpOpenMsgErr(id, n),
        FrameError::Update(n) => Input::UpdateMsgErr(id, n),
    }
}

/// Dials the peer from the configured source address, VRF and TTL.
async fn connect(config: &PeerConfig) -> std::io::Result<TcpStream> {
    let socket = match config.peer_addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(vrf) = &config.vrf {
        socket.bind_device(Some(vrf.as_bytes()))?;
    }
    set_ttl(
        socket2::SockRef::from(&socket),
        config.peer_addr.is_ipv6(),
        config.ttl(),
    )?;
    if let Some(ip) = config.local_addr {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    if let Some(key) = &config.md5_key {
        md5::set_key_on_socket(&socket, config.peer_addr.ip(), Some(key))?;
    }
    socket.connect(config.peer_addr).await
}

/// Reads, frames (length-checked before any body is buffered) and forwards whole messages.
async fn read_loop(
    id: ConnId,
    mut read: OwnedReadHalf,
    limit: Arc<AtomicUsize>,
    tx: mpsc::UnboundedSender<ConnEvent>,
) {
    let mut buf = BytesMut::with_capacity(8192);
    loop {
        loop {
            match split_frame(&mut buf, limit.load(Ordering::Relaxed)) {
                Ok(Some(frame)) => {
                    if tx.send(ConnEvent::Frame(id, frame)).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    let _ = tx.send(ConnEvent::BadFrame(id, err));
                    return;
                }
            }
        }
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = tx.send(ConnEvent::Closed(id));
                return;
            }
            Ok(_) => {}
        }
    }
}

/// Most bytes one write takes from the queue: a table of UPDATEs leaves in a few large
/// writes, not one syscall per message (424 writes for 100k IPv6 routes doubled the time
/// BIRD took to hold them all).
const WRITE_BATCH: usize = 256 * 1024;

/// Writes queued messages in order, joining what is already queued into one write; when the
/// queue is dropped, flushes and shuts down.
async fn write_loop(mut write: OwnedWriteHalf, mut queue: mpsc::UnboundedReceiver<Bytes>) {
    while let Some(first) = queue.recv().await {
        let batch = join_queued(first, &mut queue, WRITE_BATCH);
        if write.write_all(&batch).await.is_err() {
            return;
        }
    }
    let _ = write.shutdown().await;
}

/// `first` followed by whatever the queue holds now, up to about `limit` bytes (one message
/// may cross it). A lone message is returned as is, without a copy.
fn join_queued(first: Bytes, queue: &mut mpsc::UnboundedReceiver<Bytes>, limit: usize) -> Bytes {
    let mut joined: Option<BytesMut> = None;
    let mut len = first.len();
    while len < limit {
        let Ok(next) = queue.try_recv() else { break };
        len += next.len();
        joined
            .get_or_insert_with(|| BytesMut::from(&first[..]))
            .extend_from_slice(&next);
    }
    joined.map_or(first, BytesMut::freeze)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue_of(messages: &[&'static [u8]]) -> mpsc::UnboundedReceiver<Bytes> {
        let (tx, rx) = mpsc::unbounded_channel();
        for m in messages {
            tx.send(Bytes::from_static(m)).expect("receiver alive");
        }
        rx
    }

    #[test]
    fn queued_messages_are_joined_in_order_up_to_the_limit() {
        let mut queue = queue_of(&[b"bb", b"ccc", b"dddd", b"e"]);
        let batch = join_queued(Bytes::from_static(b"a"), &mut queue, 6);
        assert_eq!(&batch[..], b"abbccc");
        let rest = join_queued(queue.try_recv().expect("queued"), &mut queue, 100);
        assert_eq!(&rest[..], b"dddde");
    }

    #[test]
    fn a_lone_message_is_written_without_a_copy() {
        let first = Bytes::from_static(b"keepalive");
        let pointer = first.as_ptr();
        let batch = join_queued(first, &mut queue_of(&[]), WRITE_BATCH);
        assert_eq!(batch.as_ptr(), pointer);
    }
}
