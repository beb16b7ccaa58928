//! Counters of the BFD task: per session (packets, state changes) and per drop reason.
//!
//! Lock-free atomics written by the driver and read by whoever exports metrics, owned by the
//! driver and handed out in `Arc`s (no statics). A snapshot is a plain value. The per-session
//! ones map onto MetalLB's BFD metric names ([`SessionSnapshot::metallb`]).

use std::sync::atomic::{AtomicU64, Ordering};

use super::error::DropReason;

/// Counters of one session.
#[derive(Debug, Default)]
pub struct SessionCounters {
    control_in: AtomicU64,
    control_out: AtomicU64,
    send_errors: AtomicU64,
    up_events: AtomicU64,
    down_events: AtomicU64,
}

/// The counters of one session at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionSnapshot {
    /// Control packets accepted for this session.
    pub control_in: u64,
    /// Control packets sent.
    pub control_out: u64,
    /// Control packets the kernel refused to send.
    pub send_errors: u64,
    /// Transitions into Up.
    pub up_events: u64,
    /// Transitions out of Up.
    pub down_events: u64,
}

impl SessionSnapshot {
    /// MetalLB's per-peer BFD counter names (FRR mode's `frr-metrics`; label `peer` is the
    /// peer address) with these values. Echo counters stay 0 (no echo function);
    /// `metallb_bfd_zebra_notifications` has no meaning without zebra and is not listed.
    pub fn metallb(&self) -> [(&'static str, u64); 6] {
        [
            ("metallb_bfd_control_packet_input", self.control_in),
            ("metallb_bfd_control_packet_output", self.control_out),
            ("metallb_bfd_echo_packet_input", 0),
            ("metallb_bfd_echo_packet_output", 0),
            ("metallb_bfd_session_up_events", self.up_events),
            ("metallb_bfd_session_down_events", self.down_events),
        ]
    }
}

/// MetalLB's gauge of a session being Up (1) or not (0); label `peer` is the peer address.
pub const METALLB_SESSION_UP: &str = "metallb_bfd_session_up";

impl SessionCounters {
    /// A packet was accepted for this session.
    pub fn received(&self) {
        self.control_in.fetch_add(1, Ordering::Relaxed);
    }

    /// A packet left.
    pub fn sent(&self) {
        self.control_out.fetch_add(1, Ordering::Relaxed);
    }

    /// The kernel refused a packet.
    pub fn send_failed(&self) {
        self.send_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The session reached Up.
    pub fn went_up(&self) {
        self.up_events.fetch_add(1, Ordering::Relaxed);
    }

    /// The session left Up.
    pub fn went_down(&self) {
        self.down_events.fetch_add(1, Ordering::Relaxed);
    }

    /// The values now.
    pub fn snapshot(&self) -> SessionSnapshot {
        SessionSnapshot {
            control_in: self.control_in.load(Ordering::Relaxed),
            control_out: self.control_out.load(Ordering::Relaxed),
            send_errors: self.send_errors.load(Ordering::Relaxed),
            up_events: self.up_events.load(Ordering::Relaxed),
            down_events: self.down_events.load(Ordering::Relaxed),
        }
    }
}

/// Received datagrams discarded, by reason (all sessions).
#[derive(Debug, Default)]
pub struct DropCounters {
    dropped: [AtomicU64; DropReason::ALL.len()],
}

impl DropCounters {
    /// One datagram was discarded for `reason`.
    pub fn count(&self, reason: DropReason) {
        self.dropped[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Every reason with its count, zeros included (so metrics exist before the first drop).
    pub fn snapshot(&self) -> Vec<(DropReason, u64)> {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.dropped[r.index()].load(Ordering::Relaxed)))
            .collect()
    }

    /// The count of one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()].load(Ordering::Relaxed)
    }
}
