//! The deadlines of every session's timers in one queue, so that the driver sleeps once for
//! all of them.
//!
//! Pure data: deadlines are values, nothing here reads a clock. A re-armed timer whose queued
//! entry is earlier than its new deadline keeps that entry (it is re-queued when it comes due),
//! so that the Detect timer, re-armed by every received packet, costs a heap push per Detection
//! Time rather than per packet.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::time::Instant;

/// Armed deadlines by key, and a min-heap of queued wake-ups.
#[derive(Debug)]
pub struct TimerQueue<K: Ord + Hash + Copy> {
    heap: BinaryHeap<Reverse<(Instant, K)>>,
    /// The armed deadline of each key, and the earliest wake-up queued for it.
    armed: HashMap<K, Armed>,
}

#[derive(Debug, Clone, Copy)]
struct Armed {
    deadline: Instant,
    queued: Instant,
}

impl<K: Ord + Hash + Copy> Default for TimerQueue<K> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            armed: HashMap::new(),
        }
    }
}

impl<K: Ord + Hash + Copy> TimerQueue<K> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms (or re-arms) `key` at `at`.
    pub fn arm(&mut self, key: K, at: Instant) {
        match self.armed.get_mut(&key) {
            Some(a) if a.queued <= at => a.deadline = at,
            _ => {
                self.armed.insert(
                    key,
                    Armed {
                        deadline: at,
                        queued: at,
                    },
                );
                self.heap.push(Reverse((at, key)));
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
            armed.queued = armed.deadline;
            self.heap.push(Reverse((armed.deadline, key)));
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
    use std::time::Duration;

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
    fn a_cancelled_key_never_comes_due() {
        let t = Instant::now();
        let mut q = TimerQueue::new();
        q.arm(1, ms(t, 10));
        q.cancel(1);
        assert_eq!(q.pop_due(ms(t, 100)), None);
        assert_eq!(q.queued(), 0);
    }
}
