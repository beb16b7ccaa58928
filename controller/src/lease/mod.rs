//! `lease`: leader election on a `coordination.k8s.io/v1` Lease, so that of two replicas only one
//! writes. The rules are the ones client-go's `leaderelection` follows:
//! - a Lease held by someone else is free once `leaseDurationSeconds` have passed on *our* clock
//!   since we last saw its record change (no trust in the other node's clock);
//! - every write is a create or a replace carrying the `resourceVersion` we read, so two
//!   candidates can never both win (the loser gets 409 and reads again);
//! - the leader renews several times per duration and stops leading by itself when it could not
//!   renew for `renew_deadline` (< duration), before anyone else may take over;
//! - on shutdown the leader empties `holderIdentity`, so a standby watching the Lease takes over
//!   at once instead of after the duration.
//!
//! ```text
//!  Lease watch ──► observe() ──► next_step() ──► create / replace (resourceVersion) ──► Leadership
//!  timers (renew, expiry) ──┘                                                           └─► reconcile task
//! ```
//! [`next_step`] is pure (time enters as `now`); [`driver`] owns the API calls and timers;
//! [`Leadership`] is what the writers consult.

mod driver;

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

pub use driver::run;

/// Where the Lease is and who we are.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// `metadata.name` of the Lease.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Our `holderIdentity`; must differ between replicas (the pod name).
    pub identity: String,
    /// `leaseDurationSeconds`: how long a standby waits after the last renewal it saw.
    pub duration: Duration,
}

/// The intervals derived from the lease duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a holder's record stays valid after it was last seen to change.
    pub duration: Duration,
    /// How often the leader renews.
    pub renew_every: Duration,
    /// The leader stops leading when it could not renew for this long (< `duration`, so it
    /// stops before a standby may start).
    pub renew_deadline: Duration,
    /// Wait after a failed write before trying again.
    pub retry: Duration,
    /// The longest a Lease call may take: a call the API server never answers must not keep
    /// the elector from stepping down or trying again.
    pub call_timeout: Duration,
}

impl Timing {
    /// client-go's proportions (15 s / 10 s / 2 s), renewing 4 times per duration; a call
    /// gets as long as the wait between renewals, so two tries fit before the renew deadline.
    pub fn for_duration(duration: Duration) -> Self {
        Timing {
            duration,
            renew_every: duration / 4,
            renew_deadline: duration * 2 / 3,
            retry: duration / 8,
            call_timeout: duration / 4,
        }
    }
}

/// What we last saw of the Lease's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `holderIdentity`; `None` (or empty) when released.
    pub holder: Option<String>,
    /// `leaseDurationSeconds` the holder asked for.
    pub duration: Duration,
    /// When the record last changed, on our clock.
    pub since: Instant,
}

/// What the elector does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Take the Lease: it does not exist, was released, or its holder's time ran out.
    Acquire,
    /// We hold it and it is time to renew.
    Renew,
    /// Nothing to do before this instant (or before the Lease changes).
    WaitUntil(Instant),
}

/// Decides the next step. `last_renewed` is when our last write succeeded while leading.
pub fn next_step(
    now: Instant,
    me: &str,
    seen: Option<&Seen>,
    last_renewed: Option<Instant>,
    timing: &Timing,
) -> Step {
    let Some(seen) = seen else {
        return Step::Acquire;
    };
    match seen.holder.as_deref() {
        None | Some("") => Step::Acquire,
        Some(holder) if holder == me => {
            // Not leading yet: a restart under the same name (a container restart keeps the
            // pod name) picks its own Lease up at once.
            let Some(renewed) = last_renewed else {
                return Step::Renew;
            };
            let due = renewed + timing.renew_every;
            if now >= due {
                Step::Renew
            } else {
                Step::WaitUntil(due)
            }
        }
        Some(_) => {
            let expiry = seen.since + seen.duration;
            if now >= expiry {
                Step::Acquire
            } else {
                Step::WaitUntil(expiry)
            }
        }
    }
}

/// Whether this replica may write, as the elector last decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lead {
    /// Not leading.
    No,
    /// Leading; the last renewal keeps us leader until this instant unless renewed again.
    Until(Instant),
    /// No election (one replica): always leading.
    Always,
}

impl Lead {
    /// Leading at `now`: the last renewal's validity (counted from when it was sent) has not
    /// run out, even if the elector has not said so yet (it may be waiting on a call).
    pub fn is_leading_at(self, now: Instant) -> bool {
        match self {
            Lead::No => false,
            Lead::Until(end) => now < end,
            Lead::Always => true,
        }
    }
}

/// What the writers consult before writing: a receiver of the elector's [`Lead`].
#[derive(Debug, Clone)]
pub struct Leadership {
    lead: watch::Receiver<Lead>,
    /// Leading as last reported by [`Leadership::flipped`].
    reported: bool,
}

/// The elector's end of [`Leadership`]: dropping it tells the writers to stop.
#[derive(Debug)]
pub struct LeadPublisher(watch::Sender<Lead>);

impl Leadership {
    /// A leadership channel; `always` for a controller without election.
    pub fn channel(always: bool) -> (Leadership, LeadPublisher) {
        let (tx, rx) = watch::channel(if always { Lead::Always } else { Lead::No });
        let leadership = Leadership {
            lead: rx,
            reported: always,
        };
        (leadership, LeadPublisher(tx))
    }

    /// The elector's last word.
    pub fn lead(&self) -> Lead {
        *self.lead.borrow()
    }

    /// Whether we may write now: checked before every write, so a batch stops at the instant
    /// the lead runs out.
    pub fn is_leading(&self) -> bool {
        self.lead().is_leading_at(Instant::now())
    }

    /// Waits until leading starts or stops (a mere renewal does not count) and says which;
    /// the end of the last renewal's validity counts as stopping. `Err` once the elector is
    /// gone.
    pub async fn flipped(&mut self) -> Result<bool, watch::error::RecvError> {
        loop {
            let lead = *self.lead.borrow_and_update();
            let leading = lead.is_leading_at(Instant::now());
            if leading != self.reported {
                self.reported = leading;
                return Ok(leading);
            }
            let expiry = match lead {
                Lead::Until(end) if leading => Some(end),
                _ => None,
            };
            tokio::select! {
                changed = self.lead.changed() => changed?,
                () = ferrolb_proto::time::sleep_until(expiry) => {}
            }
        }
    }
}

impl LeadPublisher {
    /// Publishes `lead`; wakes the writers only when something changed.
    pub fn publish(&self, lead: Lead) {
        self.0.send_if_modified(|old| {
            let changed = *old != lead;
            *old = lead;
            changed
        });
    }

    /// The last published value.
    pub fn lead(&self) -> Lead {
        *self.0.borrow()
    }
}

/// Why the elector stopped.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The Lease watch ended, which kube-runtime's watchers never do on their own.
    #[error("the Lease watch ended")]
    WatchEnded,
}

impl LeaseError {
    /// Stable CamelCase for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            LeaseError::WatchEnded => "WatchEnded",
        }
    }
}

/// This replica's default identity: `$POD_NAME`, else the host name (the pod name in a pod).
pub fn default_identity() -> String {
    if let Ok(name) = std::env::var("POD_NAME")
        && !name.is_empty()
    {
        return name;
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ferrolb-controller".to_owned())
}

#[cfg(test)]
mod tests {
    //! On paused tokio time: `Instant::now()` moves only with `advance`, so each step below
    //! happens at exactly the instant it names.

    use tokio::time::advance;

    use super::*;

    const TIMING: Timing = Timing {
        duration: Duration::from_secs(15),
        renew_every: Duration::from_secs(4),
        renew_deadline: Duration::from_secs(10),
        retry: Duration::from_secs(2),
        call_timeout: Duration::from_secs(4),
    };
    const SECOND: Duration = Duration::from_secs(1);

    fn seen(holder: Option<&str>, since: Instant) -> Seen {
        Seen {
            holder: holder.map(str::to_owned),
            duration: Duration::from_secs(15),
            since,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_or_released_lease_is_taken_at_once() {
        let now = Instant::now();
        assert_eq!(next_step(now, "a", None, None, &TIMING), Step::Acquire);
        assert_eq!(
            next_step(now, "a", Some(&seen(None, now)), None, &TIMING),
            Step::Acquire
        );
        assert_eq!(
            next_step(now, "a", Some(&seen(Some(""), now)), None, &TIMING),
            Step::Acquire
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_standby_waits_the_full_duration_after_the_last_change_it_saw() {
        let t0 = Instant::now();
        let other = seen(Some("b"), t0);
        let expiry = t0 + 15 * SECOND;
        advance(14 * SECOND).await;
        assert_eq!(
            next_step(Instant::now(), "a", Some(&other), None, &TIMING),
            Step::WaitUntil(expiry)
        );
        tokio::time::sleep_until(expiry).await;
        assert_eq!(
            next_step(Instant::now(), "a", Some(&other), None, &TIMING),
            Step::Acquire
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_leader_renews_on_schedule() {
        let t0 = Instant::now();
        let mine = seen(Some("a"), t0);
        assert_eq!(
            next_step(Instant::now(), "a", Some(&mine), Some(t0), &TIMING),
            Step::WaitUntil(t0 + 4 * SECOND)
        );
        advance(4 * SECOND).await;
        assert_eq!(
            next_step(Instant::now(), "a", Some(&mine), Some(t0), &TIMING),
            Step::Renew
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarted_holder_with_the_same_identity_renews_without_waiting_out_its_lease() {
        let t0 = Instant::now();
        let mine = seen(Some("a"), t0);
        advance(SECOND).await;
        assert_eq!(
            next_step(Instant::now(), "a", Some(&mine), None, &TIMING),
            Step::Renew
        );
    }

    #[test]
    fn the_leader_steps_down_before_a_standby_may_take_over() {
        let t = Timing::for_duration(Duration::from_secs(15));
        assert!(t.renew_deadline < t.duration);
        assert!(
            t.renew_every * 2 < t.renew_deadline,
            "at least two renewals fit"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn writers_hear_of_leading_starting_and_stopping_but_not_of_renewals() {
        let (mut leadership, publisher) = Leadership::channel(false);
        assert!(!leadership.is_leading());
        publisher.publish(Lead::Until(Instant::now() + 10 * SECOND));
        assert_eq!(leadership.flipped().await.ok(), Some(true));
        publisher.publish(Lead::Until(Instant::now() + 14 * SECOND));
        let renewal = tokio::time::timeout(SECOND, leadership.flipped()).await;
        assert!(leadership.is_leading());
        assert!(renewal.is_err(), "a renewal is not a flip");
        publisher.publish(Lead::No);
        assert_eq!(leadership.flipped().await.ok(), Some(false));
        // A lead that runs out without a word from the elector (stuck on a call) ends too.
        publisher.publish(Lead::Until(Instant::now() + 10 * SECOND));
        assert_eq!(leadership.flipped().await.ok(), Some(true));
        let start = Instant::now();
        assert_eq!(leadership.flipped().await.ok(), Some(false));
        assert_eq!(Instant::now() - start, 10 * SECOND);
        assert!(!leadership.is_leading());
        drop(publisher);
        assert!(leadership.flipped().await.is_err(), "the elector is gone");
    }
}
