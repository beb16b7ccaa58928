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
//!  Lease watch ──► observe() ──► next_step() ──► create / replace (resourceVersion) ──► leading: watch<bool>
//!  timers (renew, expiry) ──┘                                                           └─► reconcile task
//! ```
//! [`next_step`] is pure (time enters as `now`); [`run`] is the driver that owns the API calls.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tokio::sync::watch;
use tokio::time::Instant;

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
}

impl Timing {
    /// client-go's proportions (15 s / 10 s / 2 s), renewing 4 times per duration.
    pub fn for_duration(duration: Duration) -> Self {
        Timing {
            duration,
            renew_every: duration / 4,
            renew_deadline: duration * 2 / 3,
            retry: duration / 8,
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

/// The record fields whose change restarts a standby's wait.
fn record(lease: &Lease) -> (Option<String>, Option<i32>, Option<String>, Option<i32>) {
    let spec = lease.spec.clone().unwrap_or_default();
    (
        spec.holder_identity,
        spec.lease_duration_seconds,
        spec.renew_time.map(|t| t.0.to_string()),
        spec.lease_transitions,
    )
}

/// The driver's state.
struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    timing: Timing,
    /// The last version of the Lease we read or wrote: its resourceVersion guards our writes.
    current: Option<Lease>,
    seen: Option<Seen>,
    /// When our last write succeeded; `Some` exactly while we lead.
    last_renewed: Option<Instant>,
    /// No write before this instant (after a failure).
    hold_off: Option<Instant>,
    leading: watch::Sender<bool>,
}

impl Elector {
    fn observe(&mut self, lease: Option<Lease>, now: Instant) {
        let Some(lease) = lease else {
            self.current = None;
            self.seen = None;
            return;
        };
        let newer = |old: &Lease| {
            let rv = |l: &Lease| l.resource_version().and_then(|v| v.parse::<u64>().ok());
            match (rv(old), rv(&lease)) {
                (Some(old), Some(new)) => new >= old,
                _ => true,
            }
        };
        if self.current.as_ref().is_some_and(|old| !newer(old)) {
            return; // an event older than what our own write returned
        }
        let changed = self.current.as_ref().map(record) != Some(record(&lease));
        let spec = lease.spec.clone().unwrap_or_default();
        if changed || self.seen.is_none() {
            self.seen = Some(Seen {
                holder: spec.holder_identity.clone(),
                duration: Duration::from_secs(
                    u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
                ),
                since: now,
            });
        }
        let ours = spec.holder_identity.as_deref() == Some(self.settings.identity.as_str());
        if !ours && self.last_renewed.is_some() {
            tracing::warn!(
                holder = spec.holder_identity,
                "another replica holds the Lease; no longer leading"
            );
            self.set_leading(None);
        }
        self.current = Some(lease);
    }

    fn set_leading(&mut self, last_renewed: Option<Instant>) {
        self.last_renewed = last_renewed;
        let leading = last_renewed.is_some();
        self.leading.send_if_modified(|old| {
            let changed = *old != leading;
            *old = leading;
            changed
        });
    }

    /// The Lease as it should be after taking or renewing it.
    fn desired(&self, step: Step) -> Lease {
        let now = MicroTime(Timestamp::now());
        let mut lease = self.current.clone().unwrap_or_else(|| Lease {
            metadata: ObjectMeta {
                name: Some(self.settings.name.clone()),
                namespace: Some(self.settings.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: None,
        });
        let mut spec = lease.spec.take().unwrap_or_default();
        if step == Step::Acquire {
            let had_holder = spec
                .holder_identity
                .as_deref()
                .is_some_and(|h| !h.is_empty());
            if had_holder || spec.lease_transitions.is_some() {
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.holder_identity = Some(self.settings.identity.clone());
            spec.acquire_time = Some(now.clone());
        }
        spec.renew_time = Some(now);
        spec.lease_duration_seconds =
            Some(i32::try_from(self.timing.duration.as_secs().max(1)).unwrap_or(i32::MAX));
        lease.spec = Some(spec);
        lease
    }

    /// One create or replace; `Ok(None)` when another writer got there first.
    async fn write(&self, lease: &Lease) -> Result<Option<Lease>, kube::Error> {
        let result = if self.current.is_some() {
            self.api
                .replace(&self.settings.name, &PostParams::default(), lease)
                .await
        } else {
            self.api.create(&PostParams::default(), lease).await
        };
        match result {
            Ok(lease) => Ok(Some(lease)),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn take_step(&mut self, step: Step) {
        let lease = self.desired(step);
        match self.write(&lease).await {
            Ok(Some(written)) => {
                let now = Instant::now();
                if self.last_renewed.is_none() {
                    tracing::info!(
                        identity = self.settings.identity,
                        "acquired the Lease; leading"
                    );
                }
                self.observe(Some(written), now);
                self.hold_off = None;
                self.set_leading(Some(now));
            }
            Ok(None) => {
                tracing::debug!("Lease write lost a race; reading it again");
                self.reread().await;
                self.hold_off = Some(Instant::now() + self.timing.retry);
            }
            Err(error) => {
                tracing::warn!(%error, "Lease write failed; retrying");
                self.hold_off = Some(Instant::now() + self.timing.retry);
            }
        }
    }

    async fn reread(&mut self) {
        match self.api.get_opt(&self.settings.name).await {
            Ok(lease) => {
                // A fresh read is authoritative: drop what we had so an older rv cannot win.
                self.current = None;
                self.observe(lease, Instant::now());
            }
            Err(error) => tracing::warn!(%error, "reading the Lease failed"),
        }
    }

    /// Empties `holderIdentity` so a standby takes over at once.
    async fn release(&mut self) {
        if self.last_renewed.is_none() {
            return;
        }
        self.set_leading(None);
        let Some(mut lease) = self.current.clone() else {
            return;
        };
        let mut spec = lease.spec.take().unwrap_or_default();
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        lease.spec = Some(spec);
        match self.write(&lease).await {
            Ok(Some(_)) => tracing::info!("released the Lease"),
            Ok(None) => tracing::info!("the Lease changed hands before release"),
            Err(error) => tracing::warn!(%error, "releasing the Lease failed"),
        }
    }
}

/// Runs the election until `shutdown` completes, publishing whether we lead on `leading`. On
/// shutdown the Lease is released if we hold it; callers stop writing before that.
pub async fn run(
    api: Api<Lease>,
    settings: LeaseSettings,
    leading: watch::Sender<bool>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), LeaseError> {
    let timing = Timing::for_duration(settings.duration);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", settings.name));
    let mut events = Box::pin(watcher(api.clone(), config).default_backoff());
    let mut elector = Elector {
        api,
        settings,
        timing,
        current: None,
        seen: None,
        last_renewed: None,
        hold_off: None,
        leading,
    };
    // Read once before deciding, so a live holder is never overwritten on start.
    let mut have_read = false;
    tokio::pin!(shutdown);
    loop {
        let now = Instant::now();
        if let Some(renewed) = elector.last_renewed
            && now >= renewed + timing.renew_deadline
        {
            tracing::warn!("could not renew the Lease in time; no longer leading");
            elector.set_leading(None);
        }
        let step = if have_read {
            next_step(
                now,
                &elector.settings.identity,
                elector.seen.as_ref(),
                elector.last_renewed,
                &timing,
            )
        } else {
            Step::WaitUntil(now + timing.retry)
        };
        let held_off = elector.hold_off.filter(|t| now < *t);
        let wake = match (step, held_off) {
            (Step::Acquire | Step::Renew, None) => {
                elector.take_step(step).await;
                continue;
            }
            (Step::Acquire | Step::Renew, Some(until)) => until,
            (Step::WaitUntil(at), _) => at,
        };
        let wake = match elector.last_renewed {
            Some(renewed) => wake.min(renewed + timing.renew_deadline),
            None => wake,
        };
        tokio::select! {
            biased;
            () = &mut shutdown => {
                elector.release().await;
                return Ok(());
            }
            event = events.next() => match event {
                Some(Ok(watcher::Event::Apply(lease) | watcher::Event::InitApply(lease))) => {
                    elector.observe(Some(lease), Instant::now());
                }
                Some(Ok(watcher::Event::Delete(_))) => elector.observe(None, Instant::now()),
                Some(Ok(watcher::Event::Init)) => {}
                Some(Ok(watcher::Event::InitDone)) => {
                    if !have_read {
                        have_read = true;
                        if elector.current.is_none() {
                            elector.observe(None, Instant::now());
                        }
                    }
                }
                Some(Err(error)) => tracing::warn!(%error, "Lease watch failed; retrying"),
                None => return Err(LeaseError::WatchEnded),
            },
            () = tokio::time::sleep_until(wake) => {}
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
    use super::*;

    const TIMING: Timing = Timing {
        duration: Duration::from_secs(15),
        renew_every: Duration::from_secs(4),
        renew_deadline: Duration::from_secs(10),
        retry: Duration::from_secs(2),
    };

    fn seen(holder: Option<&str>, since: Instant) -> Seen {
        Seen {
            holder: holder.map(str::to_owned),
            duration: Duration::from_secs(15),
            since,
        }
    }

    #[test]
    fn a_missing_or_released_lease_is_taken_at_once() {
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

    #[test]
    fn a_standby_waits_the_full_duration_after_the_last_change_it_saw() {
        let t0 = Instant::now();
        let other = seen(Some("b"), t0);
        let expiry = t0 + Duration::from_secs(15);
        assert_eq!(
            next_step(
                t0 + Duration::from_secs(14),
                "a",
                Some(&other),
                None,
                &TIMING
            ),
            Step::WaitUntil(expiry)
        );
        assert_eq!(
            next_step(expiry, "a", Some(&other), None, &TIMING),
            Step::Acquire
        );
    }

    #[test]
    fn the_leader_renews_on_schedule() {
        let t0 = Instant::now();
        let mine = seen(Some("a"), t0);
        assert_eq!(
            next_step(t0, "a", Some(&mine), Some(t0), &TIMING),
            Step::WaitUntil(t0 + Duration::from_secs(4))
        );
        assert_eq!(
            next_step(
                t0 + Duration::from_secs(4),
                "a",
                Some(&mine),
                Some(t0),
                &TIMING
            ),
            Step::Renew
        );
    }

    #[test]
    fn a_restarted_holder_with_the_same_identity_renews_without_waiting_out_its_lease() {
        let t0 = Instant::now();
        let mine = seen(Some("a"), t0);
        assert_eq!(next_step(t0, "a", Some(&mine), None, &TIMING), Step::Renew);
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
}
