//! The heartbeat the gossip task gives the L2 responder, and when it must stop for good.
//!
//! The responder answers only while beaten within its timeout (see
//! `ferrolb_proto::l2::heartbeat`). The gossip task beats every [`Pulse::interval`] while it
//! runs and hears the others, so "the others see this speaker alive" and "it answers" go
//! together:
//! - a frozen process (SIGSTOP, a hung runtime, a paused VM) does not tick, so it stops beating;
//! - a speaker cut off from the others (UDP 7946 blocked) stops hearing them: with other members
//!   known and no authentic datagram for longer than the timeout it does not beat. A connected
//!   speaker hears something every ~50 ms (its probes' acks, the others' probes and gossip), and
//!   the others need at least ~250 ms to declare it dead, so it falls silent (after at most two
//!   timeouts) before anyone takes over, and before its own view loses anyone (which could make
//!   it claim a live node's IPs).
//!
//! Once no beat happened for twice the timeout, the responder has been silent for a while and
//! the others may soon declare this speaker dead (they need at least ~250 ms from the moment
//! they stop hearing it, so the timeout must stay below half of that) and take its IPs over:
//! resuming the beat could make it answer for IPs no longer its own. So the pulse lapses
//! instead, for good: the daemon withdraws everything and starts a new membership, and the
//! election decides again. A shorter silence (a busy machine) just resumes: nobody can have
//! taken over yet. Being told by the gossip that we were declared dead lapses it too.
//!
//! Pure: the time and what was heard come in as values.

use std::time::Duration;

use tokio::time::Instant;

/// What the gossip task does at a pulse tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Beat the responder.
    Now,
    /// Do not beat: nothing heard from the others lately.
    Deaf,
    /// The pulse has just lapsed: tell the daemon, never beat again.
    Lapsed(Lapse),
    /// It lapsed before: nothing.
    Silent,
}

/// Why a pulse lapsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lapse {
    /// The task did not run for this long (more than twice the timeout): the process was
    /// frozen.
    Frozen(Duration),
    /// Nothing was heard from the other speakers for long enough that no beat happened for
    /// twice the timeout: this speaker is cut off (or they all are gone, which the membership
    /// will say shortly).
    Deaf,
    /// The other speakers declared this one dead (it was unreachable, or frozen).
    DeclaredDead,
}

impl Lapse {
    /// Stable reason for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Lapse::Frozen(_) => "Frozen",
            Lapse::Deaf => "Deaf",
            Lapse::DeclaredDead => "DeclaredDead",
        }
    }
}

/// What the task knows about the others at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hearing {
    /// The membership lists other speakers as alive.
    pub has_others: bool,
    /// When an authentic datagram last arrived.
    pub last_heard: Option<Instant>,
}

/// The pulse of one membership.
#[derive(Debug, Clone)]
pub struct Pulse {
    /// The responder's heartbeat timeout.
    timeout: Duration,
    /// When we last beat.
    last_beat: Option<Instant>,
    /// When the last tick ran.
    last_tick: Option<Instant>,
    /// It lapsed: never beat again.
    has_lapsed: bool,
}

impl Pulse {
    /// A pulse for a responder that stops answering `timeout` after the last beat.
    pub fn new(timeout: Duration) -> Self {
        Pulse {
            timeout,
            last_beat: None,
            last_tick: None,
            has_lapsed: false,
        }
    }

    /// How often to tick: four beats per timeout, so three late ticks in a row (a busy
    /// machine) still keep the responder answering.
    pub fn interval(&self) -> Duration {
        (self.timeout / 4).max(Duration::from_millis(1))
    }

    /// A tick at `now`, having heard what `hearing` says.
    pub fn on_tick(&mut self, now: Instant, hearing: Hearing) -> Beat {
        if self.has_lapsed {
            return Beat::Silent;
        }
        let lapse_after = self.timeout.saturating_mul(2);
        let since_tick = self.last_tick.map(|t| now.saturating_duration_since(t));
        self.last_tick = Some(now);
        let is_overdue = self
            .last_beat
            .is_some_and(|t| now.saturating_duration_since(t) > lapse_after);
        if is_overdue {
            self.has_lapsed = true;
            return Beat::Lapsed(match since_tick {
                Some(gap) if gap > lapse_after => Lapse::Frozen(gap),
                _ => Lapse::Deaf,
            });
        }
        let is_deaf = hearing.has_others
            && hearing
                .last_heard
                .is_none_or(|t| now.saturating_duration_since(t) > self.timeout);
        if is_deaf {
            return Beat::Deaf;
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

    fn alone() -> Hearing {
        Hearing {
            has_others: false,
            last_heard: None,
        }
    }

    fn heard_at(at: Instant) -> Hearing {
        Hearing {
            has_others: true,
            last_heard: Some(at),
        }
    }

    #[test]
    fn ticks_within_the_timeout_beat_and_a_longer_gap_lapses_for_good() {
        let t0 = Instant::now();
        let mut pulse = Pulse::new(ms(100));
        assert_eq!(pulse.interval(), ms(25));
        assert_eq!(pulse.on_tick(t0, alone()), Beat::Now);
        assert_eq!(pulse.on_tick(t0 + ms(25), alone()), Beat::Now);
        assert_eq!(
            pulse.on_tick(t0 + ms(125), alone()),
            Beat::Now,
            "100 ms late: the responder is still answering"
        );
        assert_eq!(
            pulse.on_tick(t0 + ms(300), alone()),
            Beat::Now,
            "silent for 75 ms (a busy machine): nobody can have taken over yet, so it resumes"
        );
        assert_eq!(
            pulse.on_tick(t0 + ms(550), alone()),
            Beat::Lapsed(Lapse::Frozen(ms(250)))
        );
        assert!(pulse.has_lapsed());
        assert_eq!(
            pulse.on_tick(t0 + ms(425), alone()),
            Beat::Silent,
            "never again"
        );
    }

    #[test]
    fn a_speaker_that_hears_nobody_stops_beating_then_lapses() {
        let t0 = Instant::now();
        let mut pulse = Pulse::new(ms(100));
        assert_eq!(pulse.on_tick(t0, heard_at(t0)), Beat::Now);
        assert_eq!(
            pulse.on_tick(t0 + ms(100), heard_at(t0)),
            Beat::Now,
            "heard 100 ms ago: still connected"
        );
        assert_eq!(pulse.on_tick(t0 + ms(125), heard_at(t0)), Beat::Deaf);
        assert_eq!(
            pulse.on_tick(t0 + ms(150), heard_at(t0 + ms(140))),
            Beat::Now,
            "heard again within twice the timeout: beats again"
        );
        let heard = heard_at(t0 + ms(140));
        for at in (175..=425).step_by(25) {
            let want = if at <= 240 { Beat::Now } else { Beat::Deaf };
            assert_eq!(pulse.on_tick(t0 + ms(at), heard), want, "at {at} ms");
        }
        assert_eq!(
            pulse.on_tick(t0 + ms(450), heard_at(t0 + ms(445))),
            Beat::Lapsed(Lapse::Deaf),
            "no beat for over twice the timeout: hearing again does not undo it"
        );
    }

    #[test]
    fn a_speaker_alone_in_its_membership_beats_without_hearing_anyone() {
        let t0 = Instant::now();
        let mut pulse = Pulse::new(ms(100));
        for i in 0..20 {
            assert_eq!(pulse.on_tick(t0 + ms(25 * i), alone()), Beat::Now);
        }
    }

    #[test]
    fn being_declared_dead_lapses_the_pulse_once() {
        let t0 = Instant::now();
        let mut pulse = Pulse::new(ms(100));
        assert_eq!(pulse.on_tick(t0, alone()), Beat::Now);
        assert!(pulse.on_declared_dead());
        assert!(!pulse.on_declared_dead(), "already lapsed");
        assert_eq!(pulse.on_tick(t0 + ms(25), alone()), Beat::Silent);
    }

    #[test]
    fn a_cut_off_speaker_is_silent_within_two_timeouts_of_the_last_datagram() {
        let t0 = Instant::now();
        let mut pulse = Pulse::new(ms(100));
        let mut last_beat = None;
        let mut tick = 0;
        loop {
            let now = t0 + ms(25 * tick);
            match pulse.on_tick(now, heard_at(t0)) {
                Beat::Now => last_beat = Some(now),
                Beat::Deaf => {}
                Beat::Lapsed(_) | Beat::Silent => break,
            }
            tick += 1;
        }
        let silent_at = last_beat.expect("beat once") + ms(100);
        assert!(
            silent_at <= t0 + ms(200),
            "silent {:?} after",
            silent_at - t0
        );
    }
}
