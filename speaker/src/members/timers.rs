//! foca's timers as the members task keeps them: each armed timer fires once, at its deadline,
//! in order of deadline and then of arming. Pure: the time comes in as a value; the task
//! sleeps until [`Timers::next_deadline`].

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

/// Pending timers.
#[derive(Debug)]
pub struct Timers<T> {
    /// By deadline; the sequence number keeps equal deadlines apart, in arming order.
    queue: BTreeMap<(Instant, u64), T>,
    next_seq: u64,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Self {
            queue: BTreeMap::new(),
            next_seq: 0,
        }
    }
}

impl<T> Timers<T> {
    /// Arms `timer` to fire `after` from `now`.
    pub fn arm(&mut self, now: Instant, after: Duration, timer: T) {
        self.queue.insert((now + after, self.next_seq), timer);
        self.next_seq += 1;
    }

    /// The earliest deadline; `None` when nothing is armed.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.keys().next().map(|(at, _)| *at)
    }

    /// Removes and returns every timer due at `now`, in firing order.
    pub fn take_due(&mut self, now: Instant) -> Vec<T> {
        let mut due = Vec::new();
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn timers_fire_by_deadline_and_equal_deadlines_in_arming_order() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.arm(t0, ms(30), "suspect");
        timers.arm(t0, ms(10), "probe");
        timers.arm(t0 + ms(20), ms(10), "gossip");
        timers.arm(t0, ms(100), "later");
        assert_eq!(timers.next_deadline(), Some(t0 + ms(10)));
        assert!(timers.take_due(t0 + ms(5)).is_empty(), "nothing is due yet");
        assert_eq!(timers.take_due(t0 + ms(30)), ["probe", "suspect", "gossip"]);
        assert_eq!(timers.next_deadline(), Some(t0 + ms(100)));
        assert_eq!(timers.take_due(t0 + ms(100)), ["later"]);
        assert_eq!(timers.next_deadline(), None);
    }

    proptest! {
        /// Every armed timer fires exactly once, never before its deadline, and after
        /// `take_due(now)` nothing due at `now` is left.
        #[test]
        fn every_timer_fires_once_and_never_early(
            arms in proptest::collection::vec((0u64..1000, 0u64..1000), 0..40),
            checks in proptest::collection::vec(0u64..2500, 1..20),
        ) {
            let t0 = Instant::now();
            let mut timers = Timers::default();
            for (i, (at, after)) in arms.iter().enumerate() {
                timers.arm(t0 + ms(*at), ms(*after), (i, t0 + ms(at + after)));
            }
            let mut checks = checks;
            checks.sort_unstable();
            checks.push(2500);
            let mut fired = Vec::new();
            for check in checks {
                let now = t0 + ms(check);
                for (i, deadline) in timers.take_due(now) {
                    prop_assert!(deadline <= now);
                    fired.push(i);
                }
                prop_assert!(timers.next_deadline().is_none_or(|at| at > now));
            }
            fired.sort_unstable();
            prop_assert_eq!(fired, (0..arms.len()).collect::<Vec<_>>());
        }
    }
}
