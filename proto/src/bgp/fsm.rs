//! The BGP session state machine of RFC 4271 §8 as a pure value.
//!
//! [`Session::step`] takes what happened ([`Input`]) and returns what the driver must do
//! ([`Output`]), in order. No I/O, no clock, no randomness: time enters as `now`, timers leave as
//! deadlines, jitter enters as a configured value.
//!
//! One session may briefly own two TCP connections to the same peer (ours and theirs); the
//! collision is resolved by BGP identifier (RFC 4271 §6.8) as soon as an OPEN tells us the peer's.
//!
//! Deviations from the RFC text, on purpose:
//! - `ManualStartPassive` never dials (like FRR's `neighbor passive`); it only accepts.
//! - After an error in OpenSent or later the session goes to Idle and restarts by itself once the
//!   ConnectRetry timer (used as the idle hold timer) fires; the delay doubles from
//!   `connect_retry_initial` up to `connect_retry_max` and resets when Established is reached.
//! - Timer expiries that arrive after their timer was cancelled or re-armed are ignored.
//! - A stop before a planned restart leaves the peer holding our routes (`stop`).

use std::time::{Duration, Instant};

use super::notification::{Notification, code, fsm as fsm_sub};
use super::open::{Families, Negotiated, Open, keepalive_interval, negotiate};

mod stop;
mod types;

pub use types::{
    Config, ConfigError, ConnId, Direction, DownReason, Input, Output, State, TimerKind,
};

/// A connection we sent OPEN on and that has not yet won or lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Conn {
    id: ConnId,
    direction: Direction,
}

/// The session: state, the live connection(s), timers and the backoff counter.
#[derive(Debug, Clone)]
pub struct Session {
    config: Config,
    state: State,
    /// Set by ManualStart*, cleared by ManualStop: whether Idle restarts by itself.
    is_started: bool,
    /// Never dial (ManualStartPassive).
    is_passive: bool,
    /// The connection the state refers to (OpenSent and later).
    main: Option<Conn>,
    /// A second connection in OpenSent waiting for collision resolution (§6.8).
    other: Option<Conn>,
    /// Parameters agreed with the peer on `main` (OpenConfirm and Established).
    negotiated: Option<Negotiated>,
    /// Consecutive failures since the last Established; doubles the ConnectRetry delay.
    failures: u32,
    /// Reached Established at least once: from then on our OPENs no longer carry the GR
    /// Restart State bit (the restart it announced is over).
    has_been_established: bool,
    /// Deadlines we asked for, to ignore stale expiries.
    connect_retry_at: Option<Instant>,
    hold_at: Option<Instant>,
    keepalive_at: Option<Instant>,
}

impl Session {
    /// A stopped session in Idle.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            state: State::Idle,
            is_started: false,
            is_passive: false,
            main: None,
            other: None,
            negotiated: None,
            failures: 0,
            has_been_established: false,
            connect_retry_at: None,
            hold_at: None,
            keepalive_at: None,
        }
    }

    /// The current RFC 4271 state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The session parameters, once OPENs were exchanged.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The configuration this session was made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The OPEN we send now: the configured one, with the Graceful Restart R bit while this
    /// process's restart is not over (RFC 4724 §4.1) and F bits if forwarding was preserved.
    pub fn our_open(&self) -> Open {
        let mut open = self.config.local.open();
        if let Some(gr) = open.capabilities.graceful_restart.as_mut() {
            gr.is_restarting = self.config.is_restarting && !self.has_been_established;
            if !self.config.is_forwarding_preserved {
                gr.forwarding = Families::default();
            }
        }
        open
    }

    /// The ConnectRetry delay for the current failure count: doubling, capped, minus jitter.
    pub fn connect_retry_delay(&self) -> Duration {
        let base = self.config.connect_retry_initial;
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        let delay = base
            .saturating_mul(factor)
            .min(self.config.connect_retry_max);
        let cut = u32::from(self.config.jitter_percent.min(25));
        delay - delay * cut / 100
    }

    /// Feeds one input; returns what the driver must do, in order.
    pub fn step(&mut self, now: Instant, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::ManualStart => self.on_manual_start(now, false, &mut out),
            Input::ManualStartPassive => self.on_manual_start(now, true, &mut out),
            Input::ManualStop => self.on_manual_stop(false, &mut out),
            Input::ManualStopForRestart => self.on_manual_stop(true, &mut out),
            Input::AutomaticStop(n) => self.on_automatic_stop(now, n, &mut out),
            Input::ConnectRetryTimerExpires => {
                if is_due(self.connect_retry_at, now) {
                    self.connect_retry_at = None;
                    self.on_connect_retry_expires(now, &mut out);
                }
            }
            Input::HoldTimerExpires => {
                if is_due(self.hold_at, now) {
                    self.hold_at = None;
                    self.on_hold_timer_expires(now, &mut out);
                }
            }
            Input::KeepaliveTimerExpires => {
                if is_due(self.keepalive_at, now) {
                    self.keepalive_at = None;
                    self.on_keepalive_timer_expires(now, &mut out);
                }
            }
            Input::TcpConnectionAcknowledged(id) => self.on_tcp_connection(
                now,
                Conn {
                    id,
                    direction: Direction::Outgoing,
                },
                &mut out,
            ),
            Input::TcpConnectionConfirmed(id) => self.on_tcp_connection(
                now,
                Conn {
                    id,
                    direction: Direction::Incoming,
                },
                &mut out,
            ),
            Input::TcpConnectionFails(id) => self.on_tcp_connection_fails(now, id, &mut out),
            Input::BgpOpen(id, open) => self.on_bgp_open(now, id, &open, &mut out),
            Input::BgpHeaderErr(id, n)
            | Input::BgpOpenMsgErr(id, n)
            | Input::UpdateMsgErr(id, n) => self.on_message_error(now, id, n, &mut out),
            Input::NotifMsg(id, n) => self.on_notif_msg(now, id, n, &mut out),
            Input::KeepAliveMsg(id) => self.on_keepalive_msg(now, id, &mut out),
            Input::UpdateMsg(id) => self.on_update_msg(now, id, false, &mut out),
            Input::RouteRefreshMsg(id) => self.on_update_msg(now, id, true, &mut out),
        }
        out
    }

    fn on_manual_start(&mut self, now: Instant, is_passive: bool, out: &mut Vec<Output>) {
        if self.state != State::Idle {
            return;
        }
        self.is_started = true;
        self.is_passive = is_passive;
        self.failures = 0;
        self.cancel(TimerKind::ConnectRetry, out);
        self.start_connecting(now, out);
    }

    /// Idle → Connect (dial) or Active (passive: listen only).
    fn start_connecting(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.is_passive {
            self.state = State::Active;
        } else {
            self.state = State::Connect;
            out.push(Output::Connect);
            self.arm(
                TimerKind::ConnectRetry,
                now + self.connect_retry_delay(),
                out,
            );
        }
    }

    fn on_connect_retry_expires(&mut self, now: Instant, out: &mut Vec<Output>) {
        match self.state {
            State::Idle if self.is_started => self.start_connecting(now, out),
            State::Connect | State::Active if !self.is_passive => {
                self.failures = self.failures.saturating_add(1);
                self.state = State::Connect;
                out.push(Output::Connect);
                self.arm(
                    TimerKind::ConnectRetry,
                    now + self.connect_retry_delay(),
                    out,
                );
            }
            _ => {}
        }
    }

    fn on_hold_timer_expires(&mut self, now: Instant, out: &mut Vec<Output>) {
        let is_open = matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        );
        if let Some(conn) = self.main.filter(|_| is_open) {
            let n = Notification::hold_timer_expired();
            self.fail_main(now, conn.id, Some(n), None, out);
        }
    }

    fn on_keepalive_timer_expires(&mut self, now: Instant, out: &mut Vec<Output>) {
        let (Some(conn), Some(neg)) = (self.main, self.negotiated) else {
            return;
        };
        if matches!(self.state, State::OpenConfirm | State::Established) && !neg.keepalive.is_zero()
        {
            out.push(Output::SendKeepalive(conn.id));
            self.arm(TimerKind::Keepalive, now + neg.keepalive, out);
        }
    }

    fn on_tcp_connection(&mut self, now: Instant, conn: Conn, out: &mut Vec<Output>) {
        if self.is_main(conn.id) || self.is_other(conn.id) {
            // The same connection reported twice: nothing new happened.
            return;
        }
        match self.state {
            State::Idle => out.push(Output::CloseConnection(conn.id)),
            State::Connect | State::Active => {
                // A dial still in flight may land later; it then becomes the collision peer.
                self.cancel(TimerKind::ConnectRetry, out);
                self.main = Some(conn);
                self.state = State::OpenSent;
                out.push(Output::SendOpen(conn.id, self.our_open()));
                self.arm(TimerKind::Hold, now + self.config.open_hold_time, out);
            }
            State::OpenSent | State::OpenConfirm => {
                let is_duplicate = self.other.is_some()
                    || self.main.is_some_and(|m| m.direction == conn.direction);
                if is_duplicate {
                    out.push(Output::SendNotification(
                        conn.id,
                        Notification::collision_resolution(),
                    ));
                    out.push(Output::CloseConnection(conn.id));
                } else {
                    self.other = Some(conn);
                    out.push(Output::SendOpen(conn.id, self.our_open()));
                }
            }
            // §6.8: a collision with an Established session closes the new connection.
            State::Established => {
                out.push(Output::SendNotification(
                    conn.id,
                    Notification::collision_resolution(),
                ));
                out.push(Output::CloseConnection(conn.id));
            }
        }
    }

    fn on_tcp_connection_fails(&mut self, now: Instant, id: Option<ConnId>, out: &mut Vec<Output>) {
        match id {
            None => {
                // Our dial failed (§8.2.2 Connect, event 18): listen and retry later.
                if self.state == State::Connect {
                    self.failures = self.failures.saturating_add(1);
                    self.state = State::Active;
                    self.arm(
                        TimerKind::ConnectRetry,
                        now + self.connect_retry_delay(),
                        out,
                    );
                }
            }
            Some(id) if self.is_other(id) => {
                self.other = None;
                out.push(Output::CloseConnection(id));
            }
            Some(id) if self.is_main(id) => {
                if self.state == State::OpenSent {
                    // §8.2.2 OpenSent, event 18: close, restart ConnectRetry, go Active.
                    self.main = None;
                    out.push(Output::CloseConnection(id));
                    self.cancel(TimerKind::Hold, out);
                    self.promote_other_or(now, out, |s, now, out| {
                        s.failures = s.failures.saturating_add(1);
                        s.state = State::Active;
                        if !s.is_passive {
                            s.arm(TimerKind::ConnectRetry, now + s.connect_retry_delay(), out);
                        }
                    });
                } else {
                    self.fail_main(now, id, None, Some(DownReason::ConnectionLost), out);
                }
            }
            Some(_) => {}
        }
    }

    fn on_bgp_open(&mut self, now: Instant, id: ConnId, open: &Open, out: &mut Vec<Output>) {
        let is_main = self.is_main(id);
        let is_other = self.is_other(id);
        if !is_main && !is_other {
            return;
        }
        if is_main && self.state != State::OpenSent {
            let subcode = unexpected_subcode(self.state);
            self.fail_main(
                now,
                id,
                Some(Notification::new(code::FSM, subcode)),
                None,
                out,
            );
            return;
        }
        let negotiated = match negotiate(&self.config.local, open) {
            Ok(mut n) => {
                n.keepalive = keepalive_interval(n.hold_time, self.config.keepalive_time);
                n
            }
            Err(notification) => {
                if is_main {
                    self.fail_main(now, id, Some(notification), None, out);
                } else {
                    self.other = None;
                    out.push(Output::SendNotification(id, notification));
                    out.push(Output::CloseConnection(id));
                }
                return;
            }
        };
        // §6.8: with two connections, the one opened by the side with the higher identifier wins.
        if let (Some(main), Some(other)) = (self.main, self.other) {
            let ours_wins = u32::from(self.config.local.router_id) > u32::from(negotiated.peer_id);
            let winner_dir = if ours_wins {
                Direction::Outgoing
            } else {
                Direction::Incoming
            };
            let (keep, drop) = if main.direction == winner_dir {
                (main, other)
            } else {
                (other, main)
            };
            out.push(Output::SendNotification(
                drop.id,
                Notification::collision_resolution(),
            ));
            out.push(Output::CloseConnection(drop.id));
            self.other = None;
            if keep.id != main.id {
                // The winner replaces main; whatever main had agreed is void.
                self.main = Some(keep);
                self.negotiated = None;
                self.cancel(TimerKind::Keepalive, out);
                self.state = State::OpenSent;
                if keep.id != id {
                    // Still waiting for the winner's OPEN.
                    self.arm(TimerKind::Hold, now + self.config.open_hold_time, out);
                }
            }
            if keep.id != id {
                return;
            }
        } else if is_other {
            // Unreachable: a second connection only exists beside a main one.
            return;
        }
        self.enter_open_confirm(now, id, negotiated, out);
    }

    fn enter_open_confirm(
        &mut self,
        now: Instant,
        id: ConnId,
        neg: Negotiated,
        out: &mut Vec<Output>,
    ) {
        out.push(Output::SendKeepalive(id));
        if neg.hold_time.is_zero() {
            self.cancel(TimerKind::Hold, out);
            self.cancel(TimerKind::Keepalive, out);
        } else {
            self.arm(TimerKind::Hold, now + neg.hold_time, out);
            self.arm(TimerKind::Keepalive, now + neg.keepalive, out);
        }
        self.negotiated = Some(neg);
        self.state = State::OpenConfirm;
    }

    fn on_message_error(
        &mut self,
        now: Instant,
        id: ConnId,
        n: Notification,
        out: &mut Vec<Output>,
    ) {
        if self.is_other(id) {
            self.other = None;
            out.push(Output::SendNotification(id, n));
            out.push(Output::CloseConnection(id));
        } else if self.is_main(id) {
            self.fail_main(now, id, Some(n), None, out);
        }
    }

    fn on_notif_msg(&mut self, now: Instant, id: ConnId, n: Notification, out: &mut Vec<Output>) {
        if self.is_other(id) {
            self.other = None;
            out.push(Output::CloseConnection(id));
        } else if self.is_main(id) {
            self.fail_main(now, id, None, Some(DownReason::PeerNotification(n)), out);
        }
    }

    fn on_keepalive_msg(&mut self, now: Instant, id: ConnId, out: &mut Vec<Output>) {
        if self.is_other(id) {
            // Only OPEN is legal on a connection still in OpenSent.
            self.other = None;
            let n = Notification::new(code::FSM, fsm_sub::UNEXPECTED_IN_OPEN_SENT);
            out.push(Output::SendNotification(id, n));
            out.push(Output::CloseConnection(id));
            return;
        }
        if !self.is_main(id) {
            return;
        }
        match self.state {
            State::OpenConfirm => {
                let Some(neg) = self.negotiated else { return };
                self.restart_hold(now, out);
                if let Some(other) = self.other.take() {
                    out.push(Output::SendNotification(
                        other.id,
                        Notification::collision_resolution(),
                    ));
                    out.push(Output::CloseConnection(other.id));
                }
                self.failures = 0;
                self.has_been_established = true;
                self.state = State::Established;
                out.push(Output::SessionUp(id, neg));
            }
            State::Established => self.restart_hold(now, out),
            _ => {
                let n = Notification::new(code::FSM, unexpected_subcode(self.state));
                self.fail_main(now, id, Some(n), None, out);
            }
        }
    }

    fn on_update_msg(&mut self, now: Instant, id: ConnId, is_refresh: bool, out: &mut Vec<Output>) {
        if self.is_other(id) {
            self.other = None;
            let n = Notification::new(code::FSM, fsm_sub::UNEXPECTED_IN_OPEN_SENT);
            out.push(Output::SendNotification(id, n));
            out.push(Output::CloseConnection(id));
            return;
        }
        if !self.is_main(id) {
            return;
        }
        if self.state == State::Established {
            self.restart_hold(now, out);
            if is_refresh {
                out.push(Output::ReadvertiseRoutes(id));
            }
        } else {
            let n = Notification::new(code::FSM, unexpected_subcode(self.state));
            self.fail_main(now, id, Some(n), None, out);
        }
    }

    /// Ends the main connection: optional NOTIFICATION, close, SessionDown if it was up, then
    /// Idle with the restart delay armed (§8.2.2: every error path goes to Idle).
    fn fail_main(
        &mut self,
        now: Instant,
        id: ConnId,
        sent: Option<Notification>,
        reason: Option<DownReason>,
        out: &mut Vec<Output>,
    ) {
        let was_established = self.state == State::Established;
        if let Some(n) = &sent {
            out.push(Output::SendNotification(id, n.clone()));
        }
        out.push(Output::CloseConnection(id));
        if let Some(other) = self.other.take() {
            out.push(Output::CloseConnection(other.id));
        }
        self.main = None;
        self.negotiated = None;
        self.cancel(TimerKind::Hold, out);
        self.cancel(TimerKind::Keepalive, out);
        if was_established {
            let reason = match (reason, sent) {
                (Some(r), _) => r,
                (None, Some(n)) => DownReason::LocalNotification(n),
                (None, None) => DownReason::ConnectionLost,
            };
            out.push(Output::SessionDown(reason));
        }
        self.failures = self.failures.saturating_add(1);
        self.state = State::Idle;
        if self.is_started {
            self.arm(
                TimerKind::ConnectRetry,
                now + self.connect_retry_delay(),
                out,
            );
        }
    }

    /// When main went away in OpenSent and a second connection waits, it becomes main.
    fn promote_other_or(
        &mut self,
        now: Instant,
        out: &mut Vec<Output>,
        otherwise: impl FnOnce(&mut Self, Instant, &mut Vec<Output>),
    ) {
        match self.other.take() {
            Some(other) => {
                self.main = Some(other);
                self.state = State::OpenSent;
                self.arm(TimerKind::Hold, now + self.config.open_hold_time, out);
            }
            None => otherwise(self, now, out),
        }
    }

    fn restart_hold(&mut self, now: Instant, out: &mut Vec<Output>) {
        if let Some(neg) = self.negotiated.filter(|n| !n.hold_time.is_zero()) {
            self.arm(TimerKind::Hold, now + neg.hold_time, out);
        }
    }

    fn is_main(&self, id: ConnId) -> bool {
        self.main.is_some_and(|c| c.id == id)
    }

    fn is_other(&self, id: ConnId) -> bool {
        self.other.is_some_and(|c| c.id == id)
    }

    fn arm(&mut self, kind: TimerKind, at: Instant, out: &mut Vec<Output>) {
        *self.deadline_mut(kind) = Some(at);
        out.push(Output::ArmTimer(kind, at));
    }

    fn cancel(&mut self, kind: TimerKind, out: &mut Vec<Output>) {
        if self.deadline_mut(kind).take().is_some() {
            out.push(Output::CancelTimer(kind));
        }
    }

    fn deadline_mut(&mut self, kind: TimerKind) -> &mut Option<Instant> {
        match kind {
            TimerKind::ConnectRetry => &mut self.connect_retry_at,
            TimerKind::Hold => &mut self.hold_at,
            TimerKind::Keepalive => &mut self.keepalive_at,
        }
    }
}

/// Whether an expiry at `now` matches a deadline still armed.
fn is_due(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|at| now >= at)
}

/// RFC 6608 subcode for an unexpected message in `state`.
fn unexpected_subcode(state: State) -> u8 {
    match state {
        State::OpenSent => fsm_sub::UNEXPECTED_IN_OPEN_SENT,
        State::OpenConfirm => fsm_sub::UNEXPECTED_IN_OPEN_CONFIRM,
        State::Established => fsm_sub::UNEXPECTED_IN_ESTABLISHED,
        _ => 0,
    }
}
