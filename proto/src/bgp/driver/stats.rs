//! Counters of one peer task, for whoever exports them: what the peer sent us and how much we
//! hold for it. The task and its connection tasks write them; readers take a [`StatsSnapshot`].

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::super::received::{Family, UpdateCounts};

/// Live counters of one peer (all connections, all sessions since the task started).
#[derive(Debug, Default)]
pub struct PeerStats {
    updates_received: AtomicU64,
    updates_unreadable: AtomicU64,
    route_refreshes_received: AtomicU64,
    route_refreshes_merged: AtomicU64,
    prefixes_announced: [AtomicU64; 2],
    prefixes_withdrawn: [AtomicU64; 2],
    write_queue_bytes: AtomicUsize,
    write_queue_overflows: AtomicU64,
}

/// One reading of [`PeerStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// UPDATEs received on Established sessions, readable or not.
    pub updates_received: u64,
    /// UPDATEs we could not parse and ignored, keeping the session (RFC 7606's spirit: we keep
    /// no RIB, so there is nothing to treat as withdrawn).
    pub updates_unreadable: u64,
    /// ROUTE-REFRESH messages received.
    pub route_refreshes_received: u64,
    /// Of those, the ones answered by a re-advertisement already queued and not yet started.
    pub route_refreshes_merged: u64,
    /// Prefixes announced to us, per family ([`Family::index`]); never stored.
    pub prefixes_announced: [u64; 2],
    /// Prefixes withdrawn towards us, per family.
    pub prefixes_withdrawn: [u64; 2],
    /// Bytes queued for the peer and not yet handed to the socket, over all connections.
    pub write_queue_bytes: usize,
    /// Sessions reset because the writer queue would have gone over its limit.
    pub write_queue_overflows: u64,
}

impl PeerStats {
    /// The counters now (each read on its own; they may be a message apart).
    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            updates_received: load(&self.updates_received),
            updates_unreadable: load(&self.updates_unreadable),
            route_refreshes_received: load(&self.route_refreshes_received),
            route_refreshes_merged: load(&self.route_refreshes_merged),
            prefixes_announced: Family::ALL.map(|f| load(&self.prefixes_announced[f.index()])),
            prefixes_withdrawn: Family::ALL.map(|f| load(&self.prefixes_withdrawn[f.index()])),
            write_queue_bytes: self.write_queue_bytes.load(Ordering::Relaxed),
            write_queue_overflows: load(&self.write_queue_overflows),
        }
    }

    pub(super) fn on_update(&self, counts: Option<&UpdateCounts>) {
        self.updates_received.fetch_add(1, Ordering::Relaxed);
        let Some(counts) = counts else {
            self.updates_unreadable.fetch_add(1, Ordering::Relaxed);
            return;
        };
        for f in Family::ALL {
            let i = f.index();
            self.prefixes_announced[i].fetch_add(counts.announced[i], Ordering::Relaxed);
            self.prefixes_withdrawn[i].fetch_add(counts.withdrawn[i], Ordering::Relaxed);
        }
    }

    pub(super) fn on_route_refresh(&self, is_merged: bool) {
        self.route_refreshes_received
            .fetch_add(1, Ordering::Relaxed);
        if is_merged {
            self.route_refreshes_merged.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn on_overflow(&self) {
        self.write_queue_overflows.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn queued(&self, bytes: usize) {
        self.write_queue_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(super) fn unqueued(&self, bytes: usize) {
        self.write_queue_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}
