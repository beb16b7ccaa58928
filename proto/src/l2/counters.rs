//! Per-interface, per-family counters of the responder: frames seen, replies and
//! announcements sent, send failures, and drops by `DropReason`.
//!
//! Lock-free atomics written by the socket tasks and read by whoever exports metrics.
//! Owned by the `Responder` (no statics); a snapshot is a plain value.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use super::verdict::DropReason;

/// Address family of a counter set: ARP serves IPv4, NDP serves IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// ARP.
    V4,
    /// Neighbour discovery.
    V6,
}

impl Family {
    /// "ARP" or "NDP", the protocol label.
    pub fn protocol(&self) -> &'static str {
        match self {
            Family::V4 => "ARP",
            Family::V6 => "NDP",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.protocol())
    }
}

/// Counters of one family on one interface.
#[derive(Debug, Default)]
pub struct FamilyCounters {
    requests_seen: AtomicU64,
    replies_sent: AtomicU64,
    announcements_sent: AtomicU64,
    send_errors: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    /// Questions the kernel dropped before we read them (receive queue full).
    queue_overflows: AtomicU64,
    /// Questions the in-kernel fast path looked at.
    fast_path_seen: AtomicU64,
    /// Questions the in-kernel fast path answered.
    fast_path_replies: AtomicU64,
}

/// Label in `FamilySnapshot::dropped` of questions lost in the socket's receive queue
/// before the responder read them (not a `DropReason`: no frame was looked at).
pub const QUEUE_OVERFLOW: &str = "QueueOverflow";

impl FamilyCounters {
    /// One frame read from the socket (before deciding).
    pub fn saw_request(&self) {
        self.requests_seen.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` frames read in one batch.
    pub fn saw_requests(&self, n: u64) {
        self.requests_seen.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` replies sent in one batch.
    pub fn sent_replies(&self, n: u64) {
        self.replies_sent.fetch_add(n, Ordering::Relaxed);
    }

    /// One reply sent.
    pub fn sent_reply(&self) {
        self.replies_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// The in-kernel fast path looked at `seen` questions and answered `answered` of
    /// them. The answered ones never reach the sockets, so they count here as seen and
    /// as replies sent; the others went on to the sockets, which count them.
    pub fn answered_in_kernel(&self, seen: u64, answered: u64) {
        self.fast_path_seen.fetch_add(seen, Ordering::Relaxed);
        self.fast_path_replies
            .fetch_add(answered, Ordering::Relaxed);
        self.requests_seen.fetch_add(answered, Ordering::Relaxed);
        self.replies_sent.fetch_add(answered, Ordering::Relaxed);
    }

    /// One gratuitous ARP or unsolicited NA sent.
    pub fn sent_announcement(&self) {
        self.announcements_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// One send failed.
    pub fn send_failed(&self) {
        self.send_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// One frame not answered, for `reason`.
    pub fn dropped(&self, reason: DropReason) {
        if let Some(c) = self.dropped.get(reason.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `n` questions lost in the receive queue (from the socket's statistics).
    pub fn overflowed(&self, n: u64) {
        self.queue_overflows.fetch_add(n, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> FamilySnapshot {
        let dropped = DropReason::ALL
            .iter()
            .zip(&self.dropped)
            .map(|(r, c)| (r.reason(), c.load(Ordering::Relaxed)))
            .chain([(QUEUE_OVERFLOW, self.queue_overflows.load(Ordering::Relaxed))])
            .filter(|(_, n)| *n > 0)
            .collect();
        FamilySnapshot {
            requests_seen: self.requests_seen.load(Ordering::Relaxed),
            replies_sent: self.replies_sent.load(Ordering::Relaxed),
            announcements_sent: self.announcements_sent.load(Ordering::Relaxed),
            send_errors: self.send_errors.load(Ordering::Relaxed),
            dropped,
            fast_path_seen: self.fast_path_seen.load(Ordering::Relaxed),
            fast_path_replies: self.fast_path_replies.load(Ordering::Relaxed),
        }
    }
}

/// Counters of both families on one interface.
#[derive(Debug, Default)]
pub struct InterfaceCounters {
    /// ARP.
    pub v4: FamilyCounters,
    /// NDP.
    pub v6: FamilyCounters,
}

impl InterfaceCounters {
    /// The counters of `family`.
    pub fn family(&self, family: Family) -> &FamilyCounters {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }
}

/// The values of one family's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilySnapshot {
    /// Questions seen: frames the sockets read (they passed the kernel filter) plus
    /// questions the in-kernel fast path answered.
    pub requests_seen: u64,
    /// Replies sent, by either path.
    pub replies_sent: u64,
    /// Gratuitous ARP / unsolicited NA sent.
    pub announcements_sent: u64,
    /// Sends that failed.
    pub send_errors: u64,
    /// Frames not answered, by `DropReason::reason()`, plus `QUEUE_OVERFLOW` for
    /// questions the kernel dropped before we could read them; reasons never seen
    /// are absent.
    pub dropped: BTreeMap<&'static str, u64>,
    /// Frames of this family the in-kernel fast path looked at (ARP frames, or
    /// neighbour solicitations); those it did not answer went on to the sockets.
    pub fast_path_seen: u64,
    /// Replies the in-kernel fast path sent (included in `replies_sent`).
    pub fast_path_replies: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_counted_under_their_reason_label() {
        let c = FamilyCounters::default();
        c.saw_request();
        c.saw_request();
        c.dropped(DropReason::UnknownTarget);
        c.dropped(DropReason::UnknownTarget);
        c.sent_reply();
        let s = c.snapshot();
        assert_eq!(s.requests_seen, 2);
        assert_eq!(s.replies_sent, 1);
        assert_eq!(s.dropped.get("UnknownTarget"), Some(&2));
        assert_eq!(s.dropped.len(), 1);
    }

    #[test]
    fn queue_overflows_appear_under_their_own_label() {
        let c = FamilyCounters::default();
        assert_eq!(c.snapshot().dropped.get(QUEUE_OVERFLOW), None);
        c.overflowed(3);
        assert_eq!(c.snapshot().dropped.get(QUEUE_OVERFLOW), Some(&3));
    }

    #[test]
    fn answers_from_the_kernel_count_as_seen_and_sent() {
        let c = FamilyCounters::default();
        c.saw_requests(2);
        c.sent_replies(1);
        c.answered_in_kernel(5, 3);
        let s = c.snapshot();
        assert_eq!(s.requests_seen, 5);
        assert_eq!(s.replies_sent, 4);
        assert_eq!((s.fast_path_seen, s.fast_path_replies), (5, 3));
    }

    #[test]
    fn families_are_counted_apart() {
        let c = InterfaceCounters::default();
        c.family(Family::V6).sent_announcement();
        assert_eq!(c.v6.snapshot().announcements_sent, 1);
        assert_eq!(c.v4.snapshot().announcements_sent, 0);
    }
}
