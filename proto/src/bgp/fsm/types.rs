//! The vocabulary of the session state machine: what can happen ([`Input`]), what to do
//! ([`Output`]), the states, timers and configuration. Plain values, no behaviour.

use std::time::{Duration, Instant};

use super::super::notification::Notification;
use super::super::open::{LocalSpeaker, MAX_RESTART_TIME_SECS, Negotiated, Open};

/// Identifies one TCP connection; chosen by the driver, unique for the session's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Who opened a TCP connection; decides which one survives a collision (§6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We dialled the peer.
    Outgoing,
    /// The peer dialled us.
    Incoming,
}

/// RFC 4271 §8.1 states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Refusing connections; waiting for a start or the restart delay.
    Idle,
    /// Dialling the peer.
    Connect,
    /// Listening for the peer (after a failed dial, or passive).
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the first KEEPALIVE.
    OpenConfirm,
    /// Session up.
    Established,
}

/// The three timers of §8; the driver keeps at most one deadline per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// ConnectRetryTimer; also the restart delay while Idle.
    ConnectRetry,
    /// HoldTimer.
    Hold,
    /// KeepaliveTimer.
    Keepalive,
}

/// Session configuration that does not change while the session lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// What we send in OPEN and how we judge the peer's.
    pub local: LocalSpeaker,
    /// First ConnectRetry delay (RFC 4271 suggests 120 s; we start fast and back off).
    pub connect_retry_initial: Duration,
    /// Cap of the doubling ConnectRetry delay.
    pub connect_retry_max: Duration,
    /// Share of each ConnectRetry delay cut off (RFC 4271 §10 jitter), 0..=25; the driver draws
    /// it at random when it creates the session so that speakers do not retry in lockstep.
    pub jitter_percent: u8,
    /// Hold timer while waiting for the peer's OPEN (RFC 4271 suggests 4 minutes).
    pub open_hold_time: Duration,
    /// Time between our KEEPALIVEs (MetalLB's `keepaliveTime`); `None`: a third of the
    /// negotiated hold time. Never more than that third, never under 1 s
    /// ([`super::super::open::keepalive_interval`]).
    pub keepalive_time: Option<Duration>,
    /// This process has just restarted and peers may still hold our routes as stale (RFC 4724
    /// §4.1): OPENs carry the Restart State (R) bit until the session first reaches
    /// Established. The speaker knows it (for example from a marker it keeps across restarts)
    /// and passes it in; nothing here guesses it. Only sent when `local.graceful_restart` is set.
    pub is_restarting: bool,
    /// The nodes kept forwarding traffic to our routes while this process was down: GR lists
    /// every family with the Forwarding State (F) bit. RFC 4724 §4.2: a peer drops our stale
    /// routes of a family at once when F is clear, so clear it only when forwarding stopped.
    pub is_forwarding_preserved: bool,
}

impl Config {
    /// Defaults: ConnectRetry 1 s doubling to 60 s, no jitter, 240 s OpenSent hold, keepalive
    /// a third of the hold time, not restarting, forwarding preserved.
    pub fn new(local: LocalSpeaker) -> Self {
        Self {
            local,
            connect_retry_initial: Duration::from_secs(1),
            connect_retry_max: Duration::from_secs(60),
            jitter_percent: 0,
            open_hold_time: Duration::from_secs(240),
            keepalive_time: None,
            is_restarting: false,
            is_forwarding_preserved: true,
        }
    }

    /// Checks the values a user can set (through `BGPPeer`) against the RFCs' rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let hold_secs = self.local.hold_time.as_secs();
        // RFC 4271 §4.2: "the Hold Time MUST be either zero or at least three seconds".
        if matches!(hold_secs, 1 | 2) {
            return Err(ConfigError::HoldTime { hold_secs });
        }
        if let Some(keepalive) = self.keepalive_time {
            let keepalive_secs = keepalive.as_secs();
            // §4.4: no more than one KEEPALIVE per second; MetalLB: not above the hold time.
            if (keepalive_secs == 0 && hold_secs != 0) || keepalive_secs > hold_secs {
                return Err(ConfigError::KeepaliveTime {
                    keepalive_secs,
                    hold_secs,
                });
            }
        }
        if let Some(restart) = self.local.graceful_restart
            && restart.as_secs() > MAX_RESTART_TIME_SECS
        {
            return Err(ConfigError::RestartTime {
                restart_secs: restart.as_secs(),
            });
        }
        if self.local.router_id.is_unspecified() {
            return Err(ConfigError::RouterId);
        }
        Ok(())
    }
}

/// A session configuration the RFCs do not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// RFC 4271 §4.2: zero or at least 3 s.
    #[error("hold time {hold_secs} s: must be 0 or at least 3 s")]
    HoldTime {
        /// The configured hold time.
        hold_secs: u64,
    },
    /// RFC 4271 §4.4 and MetalLB: at least 1 s (unless the hold time is 0), at most the hold time.
    #[error(
        "keepalive time {keepalive_secs} s: must be at least 1 s and at most the hold time ({hold_secs} s)"
    )]
    KeepaliveTime {
        /// The configured keepalive time.
        keepalive_secs: u64,
        /// The configured hold time.
        hold_secs: u64,
    },
    /// RFC 4724 §3: a 12-bit field.
    #[error("graceful restart time {restart_secs} s: at most 4095 s")]
    RestartTime {
        /// The configured restart time.
        restart_secs: u64,
    },
    /// RFC 6286: a non-zero identifier.
    #[error("router id 0.0.0.0")]
    RouterId,
}

impl ConfigError {
    /// A stable CamelCase name for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            ConfigError::HoldTime { .. } => "InvalidHoldTime",
            ConfigError::KeepaliveTime { .. } => "InvalidKeepaliveTime",
            ConfigError::RestartTime { .. } => "InvalidRestartTime",
            ConfigError::RouterId => "InvalidRouterId",
        }
    }
}

/// What happened. RFC 4271 §8.1 event numbers in comments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Event 1: ManualStart.
    ManualStart,
    /// Event 2: ManualStop (clean shutdown, CEASE 6/2; a Hard Reset with RFC 8538) — the peer
    /// drops our routes.
    ManualStop,
    /// Event 2 before a planned restart of this process: with Graceful Restart negotiated the
    /// peer keeps our routes (a bare TCP close, or Cease / Administrative Reset with RFC 8538's
    /// N bit); otherwise as ManualStop.
    ManualStopForRestart,
    /// Event 8: AutomaticStop — the driver ends the session with this Cease (maximum prefixes,
    /// out of resources). Restarts after the ConnectRetry delay, as after any error.
    AutomaticStop(Notification),
    /// Event 4: ManualStart_with_PassiveTcpEstablishment (we never dial).
    ManualStartPassive,
    /// Event 9: ConnectRetryTimer_Expires.
    ConnectRetryTimerExpires,
    /// Event 10: HoldTimer_Expires.
    HoldTimerExpires,
    /// Event 11: KeepaliveTimer_Expires.
    KeepaliveTimerExpires,
    /// Event 16: Tcp_CR_Acked — our dial succeeded.
    TcpConnectionAcknowledged(ConnId),
    /// Event 17: TcpConnectionConfirmed — the peer dialled us and we accepted.
    TcpConnectionConfirmed(ConnId),
    /// Event 18: TcpConnectionFails (the connection closed or a dial failed).
    TcpConnectionFails(Option<ConnId>),
    /// Event 19: BGPOpen — a valid OPEN arrived (contents checked here, not by the decoder).
    BgpOpen(ConnId, Open),
    /// Event 21: BGPHeaderErr — the decoder rejected a header; send this NOTIFICATION.
    BgpHeaderErr(ConnId, Notification),
    /// Event 22: BGPOpenMsgErr — the decoder rejected an OPEN; send this NOTIFICATION.
    BgpOpenMsgErr(ConnId, Notification),
    /// Events 24/25: NotifMsgVerErr / NotifMsg — the peer sent a NOTIFICATION.
    NotifMsg(ConnId, Notification),
    /// Event 26: KeepAliveMsg.
    KeepAliveMsg(ConnId),
    /// Event 27: UpdateMsg.
    UpdateMsg(ConnId),
    /// Event 28: UpdateMsgErr — the decoder rejected an UPDATE; send this NOTIFICATION.
    UpdateMsgErr(ConnId, Notification),
    /// RFC 2918 ROUTE-REFRESH received (not an RFC 4271 event).
    RouteRefreshMsg(ConnId),
}

/// Why an Established session went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// ManualStop.
    AdminStop,
    /// ManualStopForRestart with Graceful Restart negotiated: the peer keeps our routes.
    PlannedRestart,
    /// The peer sent this NOTIFICATION.
    PeerNotification(Notification),
    /// We sent this NOTIFICATION (hold timer, malformed message, FSM error).
    LocalNotification(Notification),
    /// The TCP connection closed or failed.
    ConnectionLost,
}

impl DownReason {
    /// A stable CamelCase name for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            DownReason::AdminStop => "AdminStop",
            DownReason::PlannedRestart => "PlannedRestart",
            DownReason::PeerNotification(_) => "PeerNotification",
            DownReason::LocalNotification(n) => n.reason(),
            DownReason::ConnectionLost => "ConnectionLost",
        }
    }
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Drop any dial in progress and dial the peer; report `TcpConnectionAcknowledged` or
    /// `TcpConnectionFails(None)`.
    Connect,
    /// Drop any dial in progress.
    CancelConnect,
    /// Close this connection (after flushing what was queued on it).
    CloseConnection(ConnId),
    /// Send this OPEN on the connection.
    SendOpen(ConnId, Open),
    /// Send a KEEPALIVE.
    SendKeepalive(ConnId),
    /// Send a NOTIFICATION.
    SendNotification(ConnId, Notification),
    /// (Re)arm the timer of this kind to fire at the deadline.
    ArmTimer(TimerKind, Instant),
    /// Stop the timer of this kind.
    CancelTimer(TimerKind),
    /// Established: UPDATEs may flow on this connection, encoded per `Negotiated`.
    SessionUp(ConnId, Negotiated),
    /// The Established session ended; withdraw nothing, the peer drops our routes itself.
    SessionDown(DownReason),
    /// The peer asked for a ROUTE-REFRESH: send every route again.
    ReadvertiseRoutes(ConnId),
}
