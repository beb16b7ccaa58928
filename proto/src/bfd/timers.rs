//! The deadlines of every session's timers in one queue, so that the driver sleeps once for
//! all of them.
//!
//! Pure data: deadlines are values, nothing here reads a clock. A re-armed timer whose queued
//! entry is earlier than its new deadline keeps that entry (it is re-queued when it comes due),
//! so that the Detect timer, re-armed by every received packet, costs a heap push per Detection
//! Time rather than per packet.
//!
//! With a slack, wake-ups fall on a grid of that step: a deadline is served at the first grid
//! point at or after it, never before. A thousand sessions then share a few hundred wake-ups a
//! second instead of one per packet, and their packets leave (and reach a peer using the same
//! grid) in bursts that one socket read drains.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::fasthash::FastMap;

/// Armed deadlines by key, and a min-heap of queued wake-ups.
#[derive(Debug)]
pub struct TimerQueue<K: Ord + Hash + Copy> {
    heap: BinaryHeap<Reverse<(Instant, K)>>,
    /// The armed deadline of each key, and the earliest wake-up queued for it.
    armed: FastMap<K, Armed>,
    /// Step of the wake-up grid; zero wakes at each deadline.
    slack: Duration,
    /// Origin of the grid: the first deadline ever armed.
    epoch: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Armed {
    deadline: Instant,
    queued: Instant,
}

impl<K: Ord + Hash + Copy> Default for TimerQueue<K> {
    fn default() -> Self {
        Self::with_slack(Duration::ZERO)
    }
}

impl<K: Ord + Hash + Copy> TimerQueue<K> {
    /// An empty queue that wakes at each deadline.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty queue whose wake-ups fall on a grid of `slack`: each deadline is served up to
    /// `slack` late, never early.
    pub fn with_slack(slack: Duration) -> Self {
        Self {
            heap: BinaryHeap::new(),
            armed: FastMap::default(),
            slack,
            epoch: None,
        }
    }

    /// The grid point at or after `at`.
    fn wake_for(&mut self, at: Instant) -> Instant {
        if self.slack.is_zero() {
            return at;
        }
        let epoch = *self.epoch.get_or_insert(at);
        let since = at.saturating_duration_since(epoch).as_nanos();
        let step = self.slack.as_nanos();
        let steps = since.div_ceil(step);
        let offset = u64::try_from(steps * step).unwrap_or(u64::MAX);
        epoch + Duration::from_nanos(offset)
    }

    /// Arms (or re-arms) `key` at `at`.
    pub fn arm(&mut self, key: K, at: Instant) {
        let wake = self.wake_for(at);
        match self.armed.get_mut(&key) {
            Some(a) if a.queued <= wake => a.deadline = at,
            _ => {
                self.armed.insert(
                    key,
                    Armed {
                        deadline: at,
                        queued: wake,
                    },
                );
                self.heap.push(Reverse((wake, key)));
            }
        }
    }

    /// Disarms `key`; its queued entries are skipped when they come due.
    pub fn cancel(&mut self, key: K) {
        self.armed.remove(&key);
    }

    /// When the driver should wake next (possibly early, for an entry it will skip).
    pub fn next_wake(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// One key whose deadline has passed at `now`, disarmed; `None` when none is due.
    pub fn pop_due(&mut self, now: Instant) -> Option<K> {
        while let Some(Reverse((at, key))) = self.heap.peek().copied() {
            if at > now {
                return None;
            }
            self.heap.pop();
            let Some(armed) = self.armed.get_mut(&key) else {
                continue;
            };
            if armed.queued != at {
                // A stale entry of an earlier arming; a later one is queued.
                continue;
            }
            if armed.deadline <= now {
                self.armed.remove(&key);
                return Some(key);
            }
            let deadline = armed.deadline;
            let wake = self.wake_for(deadline);
            if let Some(armed) = self.armed.get_mut(&key) {
                armed.queued = wake;
            }
            self.heap.push(Reverse((wake, key)));
        }
        None
    }

    /// How many entries the heap holds (armed or stale).
    pub fn queued(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(base: Instant, n: u64) -> Instant {
        base + Duration::from_millis(n)
    }

    #[test]
    fn keys_come_due_in_deadline_order() {
        let t = Instant::now();
        let mut q = TimerQueue::new();
        q.arm(2, ms(t, 20));
        q.arm(1, ms(t, 10));
        assert_eq!(q.next_wake(), Some(ms(t, 10)));
        assert_eq!(q.pop_due(ms(t, 5)), None);
        assert_eq!(q.pop_due(ms(t, 30)), Some(1));
        assert_eq!(q.pop_due(ms(t, 30)), Some(2));
        assert_eq!(q.pop_due(ms(t, 30)), None);
    }

    #[test]
    fn a_later_rearm_fires_at_the_new_deadline_without_a_new_entry() {
        let t = Instant::now();
        let mut q = TimerQueue::new();
        q.arm(1, ms(t, 10));
        q.arm(1, ms(t, 50));
        assert_eq!(q.queued(), 1);
        assert_eq!(q.pop_due(ms(t, 10)), None, "re-queued at 50");
        assert_eq!(q.next_wake(), Some(ms(t, 50)));
        assert_eq!(q.pop_due(ms(t, 50)), Some(1));
    }

    #[test]
    fn an_earlier_rearm_fires_early_and_the_old_entry_is_skipped() {
        let t = Instant::now();
        let mut q = TimerQueue::new();
        q.arm(1, ms(t, 50));
        q.arm(1, ms(t, 10));
        assert_eq!(q.pop_due(ms(t, 10)), Some(1));
        assert_eq!(q.pop_due(ms(t, 60)), None);
    }

    #[test]
    fn with_slack_deadlines_are_served_on_the_grid_never_early() {
        let t = Instant::now();
        let mut q = TimerQueue::with_slack(Duration::from_millis(5));
        q.arm(1, ms(t, 0));
        q.arm(2, ms(t, 1));
        q.arm(3, ms(t, 4));
        q.arm(4, ms(t, 5));
        q.arm(5, ms(t, 6));
        assert_eq!(q.next_wake(), Some(ms(t, 0)));
        assert_eq!(q.pop_due(ms(t, 0)), Some(1));
        assert_eq!(
            q.next_wake(),
            Some(ms(t, 5)),
            "1 and 4 ms wait for the 5 ms point"
        );
        assert_eq!(q.pop_due(ms(t, 4)), None);
        let mut due: Vec<i32> = std::iter::from_fn(|| q.pop_due(ms(t, 5))).collect();
        due.sort();
        assert_eq!(due, vec![2, 3, 4]);
        assert_eq!(q.next_wake(), Some(ms(t, 10)));
        assert_eq!(q.pop_due(ms(t, 10)), Some(5));
    }

    #[test]
    fn with_slack_a_later_rearm_is_served_on_its_own_grid_point() {
        let t = Instant::now();
        let mut q = TimerQueue::with_slack(Duration::from_millis(5));
        q.arm(9, ms(t, 0));
        assert_eq!(q.pop_due(ms(t, 0)), Some(9));
        q.arm(1, ms(t, 3));
        q.arm(1, ms(t, 12));
        assert_eq!(q.pop_due(ms(t, 5)), None, "re-queued");
        assert_eq!(q.next_wake(), Some(ms(t, 15)));
        assert_eq!(q.pop_due(ms(t, 15)), Some(1));
    }

    #[test]
    fn a_cancelled_key_never_comes_due() {
        let t = Instant::now();
        let mut q = TimerQueue::new();
        q.arm(1, ms(t, 10));
        q.cancel(1);
        assert_eq!(q.pop_due(ms(t, 100)), None);
        assert_eq!(q.queued(), 0);
    }
}
