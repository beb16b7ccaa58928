//! One tokio task per BGP peer: owns the TCP connection(s) and the timers, turns reads and
//! expiries into [`Input`]s for the pure [`Session`], and carries out its [`Output`]s. It decides
//! nothing itself; route changes arrive over a channel and leave as packed UPDATEs.
//!
//! ```text
//!   speaker ──Command (SetRoutes, Incoming(stream), Stop, StopForRestart)──▶ ┌───────────┐
//!   speaker ◀──────────Event (Up, Down, RoutesSent)───────────────────────── │ peer task │
//!   speaker ◀──────────PeerStats (atomics, read any time)─────────────────── └───────────┘
//!           dial task ──Dialed(stream | error)──▶ peer task
//!   reader task per conn ──Frame / BadFrame / Closed (bounded)──▶ peer task
//!   peer task ──WriteQueue (byte-capped)──▶ writer task per conn ──▶ socket
//! ```
//!
//! What a peer sends cannot make this task fragile ([`conn`] has the mechanics):
//! - a peer that sends faster than we decode is slowed by TCP: readers stop reading while
//!   [`conn::READ_QUEUE`] frames wait;
//! - a peer that does not read costs at most [`PeerConfig::write_queue_limit`] bytes: a
//!   ROUTE-REFRESH while a re-advertisement waits unsent is merged into it, and a batch that
//!   would go over the limit resets the session with Cease / Out of Resources;
//! - an UPDATE we cannot parse is counted and ignored (we keep no RIB); only a framing error
//!   (marker, length, type) ends the connection, with the NOTIFICATION the framer chose;
//! - prefixes are counted per family, never stored; [`PeerConfig::max_prefixes`] ends the
//!   session with Cease / Maximum Number of Prefixes Reached.
//!
//! Nothing here panics on network data, and a failure on one connection never ends the task.

mod config;
mod conn;
mod routes;
mod stats;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use self::config::{
    DEFAULT_DEAD_PEER_TIMEOUT, DEFAULT_WRITE_QUEUE_LIMIT, PeerConfig, random_jitter_percent,
};
use self::conn::{Conn, ConnEvent, READ_QUEUE, connect};
pub use self::stats::{PeerStats, StatsSnapshot};
use super::fsm::{ConnId, DownReason, Input, Output, Session, TimerKind};
use super::notification::{Notification, code, header};
use super::open::{MAX_MESSAGE_LEN, Negotiated};
use super::packet::{
    FrameError, Received, decode, encode_keepalive, encode_notification, encode_open, msg_type,
};
use super::packing::{PeerEncoding, RouteSet};
use super::received::{PrefixGuard, count};
pub use super::sockopt::{DeviceName, DeviceNameError};
use super::sockopt::{set_dead_peer_timeout, set_min_ttl, set_ttl};
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
    /// Clean shutdown: the peer drops our routes (Cease / Administrative Shutdown, as a Hard
    /// Reset with RFC 8538), then the task ends.
    Stop,
    /// Shutdown before a planned restart of this process: with Graceful Restart negotiated
    /// the peer keeps our routes and goes on forwarding to us until we are back (a TCP close
    /// without NOTIFICATION, or Cease / Administrative Reset when both sides set the N bit);
    /// without GR, as `Stop`. Then the task ends.
    StopForRestart,
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

/// A running peer task and its ends.
#[derive(Debug)]
pub struct PeerHandle {
    /// Commands to the task; dropping it stops the task like [`Command::Stop`].
    pub commands: mpsc::Sender<Command>,
    /// Session events.
    pub events: mpsc::Receiver<Event>,
    /// Counters of what the peer sent and what waits for it.
    pub stats: Arc<PeerStats>,
    /// The task.
    pub task: JoinHandle<()>,
}

/// Starts a peer task.
pub fn start(config: PeerConfig) -> PeerHandle {
    let (commands, cmd_rx) = mpsc::channel(16);
    let (event_tx, events) = mpsc::channel(64);
    let stats = Arc::new(PeerStats::default());
    let task = tokio::spawn(run(config, cmd_rx, event_tx, Arc::clone(&stats)));
    PeerHandle {
        commands,
        events,
        stats,
        task,
    }
}

/// Starts a peer task without a look at its counters. Dropping the command sender stops it
/// like [`Command::Stop`].
pub fn spawn(config: PeerConfig) -> (mpsc::Sender<Command>, mpsc::Receiver<Event>, JoinHandle<()>) {
    let h = start(config);
    (h.commands, h.events, h.task)
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
    /// Writers of closed connections still flushing; awaited (bounded) before the task ends,
    /// so that a last NOTIFICATION leaves before the process does.
    closing: Vec<JoinHandle<()>>,
    /// Outgoing routes: the desired table, what the peer has, End-of-RIB, refresh merging.
    routes: routes::Routes,
    /// An input the driver itself raised while carrying out outputs (AutomaticStop), fed
    /// after them.
    deferred: Option<Input>,
    conn_tx: mpsc::Sender<ConnEvent>,
    events: mpsc::Sender<Event>,
    stats: Arc<PeerStats>,
    /// The max-prefix guard of the current session.
    guard: PrefixGuard,
    /// An unreadable UPDATE was logged on this session (later ones are only counted).
    has_logged_unreadable: bool,
    /// Largest message the readers accept: 4096 until Extended Messages are negotiated, so a
    /// bad length is refused from the header, before its body is buffered.
    frame_limit: Arc<AtomicUsize>,
}

/// The peer task: loops until stopped.
pub async fn run(
    config: PeerConfig,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    stats: Arc<PeerStats>,
) {
    let (conn_tx, mut conn_rx) = mpsc::channel(READ_QUEUE);
    let mut peer = Peer {
        config,
        session: Session::new(config.session),
        conns: HashMap::new(),
        next_conn: 1,
        dial: None,
        dial_generation: 0,
        deadlines: [None; 3],
        closing: Vec::new(),
        routes: routes::Routes::new(&config),
        deferred: None,
        conn_tx,
        events,
        stats,
        guard: PrefixGuard::new(config.max_prefixes),
        has_logged_unreadable: false,
        frame_limit: Arc::new(AtomicUsize::new(MAX_MESSAGE_LEN)),
    };
    let start = if config.is_passive {
        Input::ManualStartPassive
    } else {
        Input::ManualStart
    };
    // Routes handed over right after `start` are encoded before the first dial, so that the
    // initial table leaves the moment the session is up.
    let mut pending = None;
    while let Ok(cmd) = commands.try_recv() {
        if let Command::SetRoutes(routes) = cmd {
            peer.routes.set_desired(routes);
        } else {
            pending = Some(cmd);
            break;
        }
    }
    peer.routes.prepack();
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
            () = sleep_until(retry) => peer.feed(Input::ConnectRetryTimerExpires).await,
            () = sleep_until(hold) => peer.feed(Input::HoldTimerExpires).await,
            () = sleep_until(keepalive) => peer.feed(Input::KeepaliveTimerExpires).await,
        }
    }
    if let Some((_, dial)) = peer.dial.take() {
        dial.abort();
    }
    peer.conns.clear();
    for writer in std::mem::take(&mut peer.closing) {
        let _ = writer.await;
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
                self.routes.set_desired(routes);
                if self.routes.established().is_none() {
                    self.routes.prepack();
                } else {
                    self.send_routes(routes::Send::Changes).await;
                    if let Some(input) = self.deferred.take() {
                        self.feed(input).await;
                    }
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
            Some(Command::StopForRestart) => {
                self.feed(Input::ManualStopForRestart).await;
                false
            }
        }
    }

    /// Steps the session with `input`, carries out its outputs, then feeds what carrying them
    /// out raised.
    async fn feed(&mut self, input: Input) {
        let mut next = Some(input);
        while let Some(input) = next.take() {
            let now = Instant::now();
            for output in self.session.step(now.into_std(), input) {
                self.carry_out(output).await;
            }
            next = self.deferred.take();
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
            Output::CloseConnection(id) => self.close(id),
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
            Output::SessionUp(id, negotiated) => self.on_session_up(id, negotiated).await,
            Output::SessionDown(reason) => {
                self.frame_limit.store(MAX_MESSAGE_LEN, Ordering::Relaxed);
                tracing::info!(peer = %self.config.peer_addr, reason = reason.reason(), "session down");
                self.routes.on_session_down();
                self.guard.clear();
                let _ = self.events.send(Event::Down(reason)).await;
                self.routes.prepack();
            }
            Output::ReadvertiseRoutes(id) => {
                let is_merged = self
                    .conns
                    .get(&id)
                    .is_some_and(|c| self.routes.is_refresh_waiting(&c.queue));
                self.stats.on_route_refresh(is_merged);
                if !is_merged {
                    self.send_routes(routes::Send::Refresh).await;
                }
            }
        }
    }

    async fn on_session_up(&mut self, id: ConnId, negotiated: Negotiated) {
        tracing::info!(peer = %self.config.peer_addr, ?negotiated, "session established");
        let encoding = PeerEncoding::new(self.config.session.local.local_as, &negotiated);
        self.routes.on_session_up(id, encoding);
        self.guard.clear();
        self.has_logged_unreadable = false;
        self.frame_limit
            .store(negotiated.max_message_len(), Ordering::Relaxed);
        if negotiated.hold_time.is_zero() {
            // RFC 4271 §4.2: no KEEPALIVEs and no hold timer; let TCP notice a silent peer.
            let socket = self.conns.get(&id).and_then(|c| c.socket.as_ref());
            let result = socket.map(|s| {
                set_dead_peer_timeout(socket2::SockRef::from(s), self.config.dead_peer_timeout)
            });
            if let Some(Err(e)) = result {
                tracing::warn!(peer = %self.config.peer_addr, error = %e, "cannot set TCP keepalive for hold time 0");
            }
        }
        let _ = self.events.send(Event::Up(negotiated)).await;
        // RFC 4724 §4.1: after a restart the initial table is the speaker's, then EoR.
        if self.routes.has_desired() || !self.config.session.is_restarting {
            self.send_routes(routes::Send::Initial).await;
        }
    }

    fn close(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.remove(&id) {
            // Dropping the conn lets its writer flush what is queued (bounded), then shut down.
            self.closing.retain(|w| !w.is_finished());
            self.closing.extend(conn.into_writer());
        }
        self.routes.on_close(id);
    }

    fn send(&mut self, id: ConnId, bytes: Bytes) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.queue.push_control(bytes);
        }
    }

    /// Packs and queues UPDATEs for the Established connection; a batch the writer queue
    /// cannot take resets the session (AutomaticStop, Cease / Out of Resources).
    async fn send_routes(&mut self, kind: routes::Send) {
        let Some((id, _)) = self.routes.established() else {
            return;
        };
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let Some(sent) = self.routes.send(kind, &mut conn.queue) else {
            return;
        };
        let (updates, skipped) = match sent {
            Ok(counts) => counts,
            Err(overflow) => {
                tracing::warn!(
                    peer = %self.config.peer_addr,
                    queued = overflow.queued,
                    batch = overflow.batch,
                    limit = self.config.write_queue_limit,
                    "the peer does not read what we must send: resetting the session"
                );
                self.stats.on_overflow();
                self.deferred = Some(Input::AutomaticStop(Notification::out_of_resources()));
                return;
            }
        };
        // Let the writer start on a single-threaded runtime before the bookkeeping.
        tokio::task::yield_now().await;
        self.routes.mark_sent();
        let _ = self
            .events
            .send(Event::RoutesSent { updates, skipped })
            .await;
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
            let _ = tx.send(ConnEvent::Dialed(generation, result)).await;
        });
        self.dial = Some((generation, task));
    }

    fn add_conn(&mut self, stream: TcpStream) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        let _ = stream.set_nodelay(true);
        // Connections the peer opened get our TTL and GTSM too (dials have them from the start).
        let is_v6 = stream.local_addr().is_ok_and(|a| a.is_ipv6());
        if let Err(e) = set_ttl(socket2::SockRef::from(&stream), is_v6, self.config.ttl()) {
            tracing::warn!(peer = %self.config.peer_addr, error = %e, "cannot set TTL");
        }
        if let Some(min) = self.config.min_ttl()
            && let Err(e) = set_min_ttl(&stream, is_v6, min)
        {
            tracing::warn!(peer = %self.config.peer_addr, error = %e, "cannot set the minimum TTL (GTSM)");
        }
        let conn = Conn::start(
            id,
            stream,
            Arc::clone(&self.frame_limit),
            self.conn_tx.clone(),
            Arc::clone(&self.stats),
            self.config.write_queue_limit,
        );
        self.conns.insert(id, conn);
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
                if let Some(input) = self.input_for_frame(id, &frame) {
                    self.feed(input).await;
                }
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

    /// Decodes a frame with what this session negotiated, into the FSM input it is; `None`
    /// for a ROUTE-REFRESH we cannot parse (ignored, as an unreadable UPDATE is).
    fn input_for_frame(&mut self, id: ConnId, frame: &[u8]) -> Option<Input> {
        let negotiated = self.session.negotiated();
        let limit = negotiated.map_or(MAX_MESSAGE_LEN, Negotiated::max_message_len);
        if frame.len() > limit {
            let len = u16::try_from(frame.len()).unwrap_or(u16::MAX);
            let n = Notification::with_data(
                code::MESSAGE_HEADER,
                header::BAD_MESSAGE_LENGTH,
                len.to_be_bytes(),
            );
            return Some(Input::BgpHeaderErr(id, n));
        }
        let four_octet_as = negotiated.is_some_and(|n| n.four_octet_as);
        let is_established = self.routes.established().is_some_and(|(c, _)| c == id);
        let input = match decode(frame, four_octet_as) {
            Ok(Received::Open(open)) => Input::BgpOpen(id, open),
            Ok(Received::Update(update)) => {
                if is_established {
                    self.stats.on_update(Some(&count(&update)));
                    if let Err(exceeded) = self.guard.apply(&update) {
                        tracing::warn!(peer = %self.config.peer_addr, family = exceeded.family.label(), limit = exceeded.limit, "the peer sent more prefixes than allowed");
                        return Some(Input::AutomaticStop(exceeded.notification()));
                    }
                }
                Input::UpdateMsg(id)
            }
            Ok(Received::Notification(n)) => Input::NotifMsg(id, n),
            Ok(Received::KeepAlive) => Input::KeepAliveMsg(id),
            Ok(Received::RouteRefresh) => Input::RouteRefreshMsg(id),
            Err(FrameError::Update(n)) if frame.get(18) == Some(&msg_type::UPDATE) => {
                // RFC 7606's spirit: we keep no RIB, so an UPDATE we cannot parse changes
                // nothing here; count it and keep the session.
                if is_established {
                    self.stats.on_update(None);
                }
                if !std::mem::replace(&mut self.has_logged_unreadable, true) {
                    tracing::warn!(peer = %self.config.peer_addr, notification = %n, "ignoring an UPDATE we cannot parse (later ones are only counted)");
                }
                Input::UpdateMsg(id)
            }
            Err(FrameError::Update(_)) if frame.get(18) == Some(&msg_type::ROUTE_REFRESH) => {
                return None;
            }
            Err(err) => input_for_error(id, err),
        };
        Some(input)
    }
}

fn input_for_error(id: ConnId, err: FrameError) -> Input {
    match err {
        FrameError::Header(n) => Input::BgpHeaderErr(id, n),
        FrameError::Open(n) => Input::BgpOpenMsgErr(id, n),
        FrameError::Update(n) => Input::UpdateMsgErr(id, n),
    }
}
