//! The elector's driver: owns the Lease watch, the API calls and the timers, turns them into
//! [`super::next_step`] questions and publishes the answer as [`Lead`]. Decides nothing itself.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tokio::time::Instant;

use super::{Lead, LeadPublisher, LeaseError, LeaseSettings, Seen, Step, Timing, next_step};

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

/// Why a Lease call did not complete.
#[derive(Debug, thiserror::Error)]
enum CallError {
    /// The API server answered with an error, or could not be reached.
    #[error(transparent)]
    Api(kube::Error),
    /// No answer within the call timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
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
    /// The first list is done: a live holder is never overwritten on start.
    have_read: bool,
    leading: LeadPublisher,
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
        self.leading.publish(match last_renewed {
            Some(renewed) => Lead::Until(renewed + self.timing.renew_deadline),
            None => Lead::No,
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
    /// One create or replace, cut off after the call timeout; `Ok(None)` when another writer
    /// got there first.
    async fn write(&self, lease: &Lease) -> Result<Option<Lease>, CallError> {
        let call = async {
            if self.current.is_some() {
                self.api
                    .replace(&self.settings.name, &PostParams::default(), lease)
                    .await
            } else {
                self.api.create(&PostParams::default(), lease).await
            }
        };
        match tokio::time::timeout(self.timing.call_timeout, call).await {
            Ok(Ok(lease)) => Ok(Some(lease)),
            Ok(Err(kube::Error::Api(status))) if status.code == 409 => Ok(None),
            Ok(Err(error)) => Err(CallError::Api(error)),
            Err(_) => Err(CallError::Timeout(self.timing.call_timeout)),
        }
    }

    async fn take_step(&mut self, step: Step) {
        let lease = self.desired(step);
        // The Lease is ours from when the write left, not from when its answer came back: a
        // standby counts from the change it sees, which can be no earlier than the send.
        let sent = Instant::now();
        match self.write(&lease).await {
            Ok(Some(written)) => {
                if self.last_renewed.is_none() {
                    tracing::info!(
                        identity = self.settings.identity,
                        "acquired the Lease; leading"
                    );
                }
                self.observe(Some(written), Instant::now());
                self.hold_off = None;
                self.set_leading(Some(sent));
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
        let read = tokio::time::timeout(
            self.timing.call_timeout,
            self.api.get_opt(&self.settings.name),
        );
        match read.await {
            Ok(Ok(lease)) => {
                // A fresh read is authoritative: drop what we had so an older rv cannot win.
                self.current = None;
                self.observe(lease, Instant::now());
            }
            Ok(Err(error)) => tracing::warn!(%error, "reading the Lease failed"),
            Err(_) => tracing::warn!("reading the Lease timed out"),
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

impl Elector {
    /// Steps down when renewing took too long; then the write to make now (`Ok`), or when to
    /// look again (`Err`).
    fn decide(&mut self, now: Instant) -> Result<Step, Instant> {
        let timing = self.timing;
        if let Some(renewed) = self.last_renewed
            && now >= renewed + timing.renew_deadline
        {
            tracing::warn!("could not renew the Lease in time; no longer leading");
            self.set_leading(None);
        }
        let step = if self.have_read {
            next_step(
                now,
                &self.settings.identity,
                self.seen.as_ref(),
                self.last_renewed,
                &timing,
            )
        } else {
            Step::WaitUntil(now + timing.retry)
        };
        let held_off = self.hold_off.filter(|t| now < *t);
        let wake = match (step, held_off) {
            (Step::Acquire | Step::Renew, None) => return Ok(step),
            (Step::Acquire | Step::Renew, Some(until)) => until,
            (Step::WaitUntil(at), _) => at,
        };
        Err(match self.last_renewed {
            Some(renewed) => wake.min(renewed + timing.renew_deadline),
            None => wake,
        })
    }

    /// Takes one event of the Lease watch.
    fn on_event(
        &mut self,
        event: Option<Result<watcher::Event<Lease>, watcher::Error>>,
    ) -> Result<(), LeaseError> {
        match event {
            Some(Ok(watcher::Event::Apply(lease) | watcher::Event::InitApply(lease))) => {
                self.observe(Some(lease), Instant::now());
            }
            Some(Ok(watcher::Event::Delete(_))) => self.observe(None, Instant::now()),
            Some(Ok(watcher::Event::Init)) => {}
            Some(Ok(watcher::Event::InitDone)) => {
                if !self.have_read {
                    self.have_read = true;
                    if self.current.is_none() {
                        self.observe(None, Instant::now());
                    }
                }
            }
            Some(Err(error)) => tracing::warn!(%error, "Lease watch failed; retrying"),
            None => return Err(LeaseError::WatchEnded),
        }
        Ok(())
    }
}

/// Runs the election until `shutdown` completes, publishing whether we lead on `leading`. On
/// shutdown the Lease is released if we hold it; callers stop writing before that.
pub async fn run(
    api: Api<Lease>,
    settings: LeaseSettings,
    leading: LeadPublisher,
    shutdown: impl Future<Output = ()>,
) -> Result<(), LeaseError> {
    let timing = Timing::for_duration(settings.duration);
    let config = crate::client::watch_config().fields(&format!("metadata.name={}", settings.name));
    let mut events = Box::pin(watcher(api.clone(), config).default_backoff());
    let mut elector = Elector {
        api,
        settings,
        timing,
        current: None,
        seen: None,
        last_renewed: None,
        hold_off: None,
        have_read: false,
        leading,
    };
    tokio::pin!(shutdown);
    loop {
        let wake = match elector.decide(Instant::now()) {
            Ok(step) => {
                elector.take_step(step).await;
                continue;
            }
            Err(wake) => wake,
        };
        tokio::select! {
            biased;
            () = &mut shutdown => {
                elector.release().await;
                return Ok(());
            }
            event = events.next() => elector.on_event(event)?,
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}
