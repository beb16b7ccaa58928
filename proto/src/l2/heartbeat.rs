//! The speaker's heartbeat: the responder answers only while it is fresh.
//!
//! A speaker that is frozen (SIGSTOP, a hung runtime, a VM paused for migration) stops
//! gossiping, so after the detection time another node owns its addresses. Its kernel
//! program and reader threads would still answer: two MACs for one IP. With a heartbeat,
//! whoever proves the speaker alive (its gossip task) calls [`Heartbeat::beat`] often;
//! each beat moves a deadline `timeout` ahead, and once CLOCK_MONOTONIC passes it both
//! answer paths fall silent: the kernel program passes frames on, the reader threads drop
//! them as `DropReason::SpeakerStalled`. Pick `timeout` well below the gossip's detection
//! time, so the frozen node is silent before the new owner speaks.
//!
//! Without a timeout (`ResponderConfig::heartbeat_timeout = None`) the deadline never
//! passes and beats change nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::fast_path::AddressMap;
use super::sys::monotonic_ns;

/// The deadline `timeout` after `now_ns`; never with no timeout.
pub fn deadline_after(now_ns: u64, timeout: Option<Duration>) -> u64 {
    match timeout {
        Some(timeout) => {
            now_ns.saturating_add(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX))
        }
        None => u64::MAX,
    }
}

/// Handle to one responder's heartbeat; cheap to clone, beats from any thread.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    timeout: Option<Duration>,
    /// CLOCK_MONOTONIC ns after which the reader threads drop questions.
    deadline_ns: AtomicU64,
    /// The fast path's maps, whose deadline the kernel program reads.
    kernel: Option<Arc<AddressMap>>,
}

impl Heartbeat {
    /// A heartbeat whose first deadline is `timeout` from now.
    pub(crate) fn new(timeout: Option<Duration>, kernel: Option<Arc<AddressMap>>) -> Heartbeat {
        let heartbeat = Heartbeat {
            inner: Arc::new(Inner {
                timeout,
                deadline_ns: AtomicU64::new(u64::MAX),
                kernel,
            }),
        };
        heartbeat.beat();
        heartbeat
    }

    /// The speaker is alive: answer for another `timeout`.
    pub fn beat(&self) {
        let deadline = deadline_after(monotonic_ns(), self.inner.timeout);
        self.inner.deadline_ns.store(deadline, Ordering::Relaxed);
        if let Some(kernel) = &self.inner.kernel
            && let Err(error) = kernel.set_deadline(deadline)
        {
            tracing::warn!(%error, "l2 fast path heartbeat not written; the kernel will stop answering");
        }
    }

    /// The deadline has not passed: the reader threads may answer.
    pub fn is_fresh(&self) -> bool {
        monotonic_ns() <= self.inner.deadline_ns.load(Ordering::Relaxed)
    }

    /// The bound between beats; `None`: no heartbeat is required.
    pub fn timeout(&self) -> Option<Duration> {
        self.inner.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_is_the_timeout_after_now() {
        assert_eq!(deadline_after(1_000, Some(Duration::from_micros(5))), 6_000);
    }

    #[test]
    fn without_a_timeout_the_deadline_never_passes() {
        assert_eq!(deadline_after(u64::MAX - 1, None), u64::MAX);
        assert_eq!(
            deadline_after(u64::MAX - 1, Some(Duration::from_secs(1))),
            u64::MAX
        );
    }

    #[test]
    fn a_heartbeat_goes_stale_after_its_timeout_and_a_beat_refreshes_it() {
        let heartbeat = Heartbeat::new(Some(Duration::from_millis(30)), None);
        assert!(heartbeat.is_fresh());
        std::thread::sleep(Duration::from_millis(60));
        assert!(!heartbeat.is_fresh(), "30 ms without a beat");
        heartbeat.beat();
        assert!(heartbeat.is_fresh());
    }

    #[test]
    fn a_heartbeat_without_timeout_never_goes_stale() {
        let heartbeat = Heartbeat::new(None, None);
        std::thread::sleep(Duration::from_millis(5));
        assert!(heartbeat.is_fresh());
    }
}
