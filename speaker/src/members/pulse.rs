//! The heartbeat the gossip task gives the L2 responder, and when it must stop for good.
//!
//! The responder answers only while beaten within its timeout (see
//! `ferrolb_proto::l2::heartbeat`). The gossip task beats every [`Pulse::interval`], so "the
//! others see this speaker alive" and "it answers" go together: a frozen process (SIGSTOP, a
//! hung runtime, a paused VM) stops both. When the task finds that it has not beaten for longer
//! than the timeout, the responder has already fallen silent and the others may since have
//! declared this speaker dead and taken its IPs over: resuming the beat would make it answer for
//! IPs that are no longer its own. So the pulse lapses instead, for good: the daemon withdraws
//! everything and starts a new membership, and the election decides again. Being told by the
//! gossip that we were declared dead lapses it too.
//!
//! Pure: the time comes in as a value.

use std::time::Duration;

use tokio::time::Instant;

/// What the gossip task does at a pulse tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Beat the responder.
    Now,
    /// The pulse has just lapsed: tell the daemon, never beat again.
    Lapsed(Lapse),
    /// It lapsed before: nothing.
    Silent,
}

/// Why a pulse lapsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lapse {
    /// The task did not run for this long (more than the timeout): the process was frozen.
    Frozen(Duration),
    /// The other speakers declared this one dead (it was unreachable, or frozen).
    DeclaredDead,
}

impl Lapse {
    /// Stable reason for logs.
    pub fn reason(self) -> &'static str {
        match self {
            Lapse::Frozen(_) => "Frozen",
            Lapse::DeclaredDead => "DeclaredDead",
        }
    }
}

/// The pulse of one membership.
#[derive(Debug, Clone)]
pub struct Pulse {
    /// The responder's heartbeat timeout.
    timeout: Duration,
    /// When we last beat.
    last_beat: Option<Instant>,
    /// It lapsed: never beat again.
    has_lapsed: bool,
}

impl Pulse {
    /// A pulse for a responder that stops answering `timeout` after the last beat.
    pub fn new(timeout: Duration) -> Self {
        Pulse {
            timeout,
            last_beat: None,
            has_lapsed: false,
        }
    }

    /// How often to tick: four beats per timeout, so three late ticks in a row (a busy
    /// machine) still keep the responder answering.
    pub fn interval(&self) -> Duration {
        (self.timeout / 4).max(Duration::from_millis(1))
    }

    /// A tick at `now`.
    pub fn on_tick(&mut self, now: Instant) -> Beat {
        if self.has_lapsed {
            return Beat::Silent;
        }
        if let Some(last) = self.last_beat {
            let gap = now.saturating_duration_since(last);
            if gap > self.timeout {
                self.has_lapsed = true;
                return Beat::Lapsed(Lapse::Frozen(gap));
            }
        }
        self.last_beat = Some(now);
        Beat::Now
    }

    /// The gossip says the others declared us dead; `true` when this lapses the pulse now.
    pub fn on_declared_dead(&mut self) -> bool {
        !std::mem::replace(&mut self.has_lapsed, true)
    }

    /// It lapsed.
    pub fn has_lapsed(&self) -> bool {
        self.has_lapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn ticks_within_the_timeout_beat_and_a_longer_gap_lapses_for_good() {
        let t0 = Instant::now();
        let mut pulse = Pulse::new(ms(100));
        assert_eq!(pulse.interval(), ms(25));
        assert_eq!(pulse.on_tick(t0), Beat::Now);
        assert_eq!(pulse.on_tick(t0 + ms(25)), Beat::Now);
        assert_eq!(
            pulse.on_tick(t0 + ms(125)),
            Beat::Now,
            "100 ms late: the responder is still answering"
        );
        assert_eq!(
            pulse.on_tick(t0 + ms(400)),
            Beat::Lapsed(Lapse::Frozen(ms(275)))
        );
        assert!(pulse.has_lapsed());
        assert_eq!(pulse.on_tick(t0 + ms(425)), Beat::Silent, "never again");
    }

    #[test]
    fn being_declared_dead_lapses_the_pulse_once() {
        let t0 = Instant::now();
        let mut pulse = Pulse::new(ms(100));
        assert_eq!(pulse.on_tick(t0), Beat::Now);
        assert!(pulse.on_declared_dead());
        assert!(!pulse.on_declared_dead(), "already lapsed");
        assert_eq!(pulse.on_tick(t0 + ms(25)), Beat::Silent);
    }
}
