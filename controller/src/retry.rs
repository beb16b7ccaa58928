//! `retry`: when to try a failed Service again. Per key, the wait doubles with each failure in a
//! row (from [`Backoff::first`] up to [`Backoff::max`]), and the deadline is stored, so that a
//! stream of unrelated watch events never postpones a retry. Pure: time enters as `now`.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tokio::time::Instant;

/// The waits between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// After the first failure.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Backoff {
    /// 0.5 s, 1 s, 2 s... up to 1 minute: quick for a passing conflict, gentle on an API server
    /// that keeps refusing.
    pub const DEFAULT: Backoff = Backoff {
        first: Duration::from_millis(500),
        max: Duration::from_secs(60),
    };

    /// The wait after `failures` failures in a row (1 for the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.first.saturating_mul(1 << doublings).min(self.max)
    }
}

/// Keys waiting for a retry, with their deadlines and failure counts.
#[derive(Debug)]
pub struct Retries {
    backoff: Backoff,
    /// Failures in a row per key; kept after the retry is due, so the next failure waits longer.
    failures: HashMap<String, u32>,
    /// Keys by deadline.
    due: BTreeSet<(Instant, String)>,
    /// Each waiting key's deadline, to find it in `due`.
    deadline_of: HashMap<String, Instant>,
}

impl Retries {
    /// No key waiting.
    pub fn new(backoff: Backoff) -> Self {
        Retries {
            backoff,
            failures: HashMap::new(),
            due: BTreeSet::new(),
            deadline_of: HashMap::new(),
        }
    }

    /// Records a failure of `key` at `now`; returns when to try again. A key already waiting
    /// keeps the earlier of its two deadlines.
    pub fn failed(&mut self, key: &str, now: Instant) -> Instant {
        let failures = self.failures.entry(key.to_owned()).or_insert(0);
        *failures = failures.saturating_add(1);
        let mut deadline = now + self.backoff.delay(*failures);
        if let Some(old) = self.deadline_of.get(key).copied() {
            deadline = deadline.min(old);
            self.due.remove(&(old, key.to_owned()));
        }
        self.due.insert((deadline, key.to_owned()));
        self.deadline_of.insert(key.to_owned(), deadline);
        deadline
    }

    /// Forgets `key`: it was written, deleted, or is no longer ours to write.
    pub fn succeeded(&mut self, key: &str) {
        self.failures.remove(key);
        if let Some(deadline) = self.deadline_of.remove(key) {
            self.due.remove(&(deadline, key.to_owned()));
        }
    }

    /// Forgets every key (leadership changed: everything is planned afresh).
    pub fn clear(&mut self) {
        self.failures.clear();
        self.due.clear();
        self.deadline_of.clear();
    }

    /// The earliest deadline, if any key waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.due.first().map(|(deadline, _)| *deadline)
    }

    /// Takes the keys whose deadline is at or before `now`.
    pub fn take_due(&mut self, now: Instant) -> Vec<String> {
        let mut keys = Vec::new();
        while let Some((deadline, _)) = self.due.first()
            && *deadline <= now
        {
            if let Some((_, key)) = self.due.pop_first() {
                self.deadline_of.remove(&key);
                keys.push(key);
            }
        }
        keys
    }

    /// Failures in a row of `key`.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures.get(key).copied().unwrap_or(0)
    }

    /// How many keys wait.
    pub fn waiting(&self) -> usize {
        self.due.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_wait_doubles_with_each_failure_up_to_the_maximum() {
        let backoff = Backoff::DEFAULT;
        let waits: Vec<Duration> = (1..=9).map(|n| backoff.delay(n)).collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000].map(|ms| ms * MS)
        );
        assert_eq!(backoff.delay(u32::MAX), backoff.max);
    }

    #[test]
    fn a_failed_key_is_due_at_its_stored_deadline_and_not_before() {
        let t0 = Instant::now();
        let mut retries = Retries::new(Backoff::DEFAULT);
        assert_eq!(retries.failed("shop/web", t0), t0 + 500 * MS);
        assert_eq!(retries.next_deadline(), Some(t0 + 500 * MS));
        assert!(retries.take_due(t0 + 499 * MS).is_empty());
        assert_eq!(retries.take_due(t0 + 500 * MS), ["shop/web"]);
        assert_eq!(retries.next_deadline(), None);
    }

    #[test]
    fn a_key_that_fails_again_waits_longer_until_it_succeeds() {
        let t0 = Instant::now();
        let mut retries = Retries::new(Backoff::DEFAULT);
        retries.failed("a", t0);
        retries.take_due(t0 + 500 * MS);
        let second = retries.failed("a", t0 + 500 * MS);
        assert_eq!(second, t0 + 1500 * MS);
        retries.take_due(second);
        retries.succeeded("a");
        assert_eq!(retries.failed("a", second), second + 500 * MS);
    }

    #[test]
    fn keys_come_due_in_deadline_order_and_each_once() {
        let t0 = Instant::now();
        let mut retries = Retries::new(Backoff::DEFAULT);
        retries.failed("late", t0 + 100 * MS);
        retries.failed("early", t0);
        assert_eq!(retries.waiting(), 2);
        assert_eq!(retries.take_due(t0 + 10_000 * MS), ["early", "late"]);
        assert!(retries.take_due(t0 + 20_000 * MS).is_empty());
    }

    #[test]
    fn failing_again_before_the_retry_keeps_the_earlier_deadline() {
        let t0 = Instant::now();
        let mut retries = Retries::new(Backoff::DEFAULT);
        retries.failed("a", t0);
        // A watch event replanned it and it failed once more before its retry was due.
        assert_eq!(retries.failed("a", t0 + 100 * MS), t0 + 500 * MS);
        assert_eq!(retries.waiting(), 1);
        assert_eq!(retries.failures("a"), 2);
    }

    #[test]
    fn success_and_clear_forget_keys() {
        let t0 = Instant::now();
        let mut retries = Retries::new(Backoff::DEFAULT);
        retries.failed("a", t0);
        retries.failed("b", t0);
        retries.succeeded("a");
        assert_eq!(retries.take_due(t0 + 60_000 * MS), ["b"]);
        retries.failed("c", t0);
        retries.clear();
        assert_eq!((retries.next_deadline(), retries.failures("b")), (None, 0));
    }
}
