//! The elector's driver against kubesim's API in memory, on paused tokio time: takeovers,
//! renewals and step-downs happen at the instants the rules name, checked exactly rather than
//! with wall-clock margins. Each elector's client has its own [`Tap`]: what that replica sent,
//! when, and the faults it meets.

mod support;

use std::time::Duration;

use ferrolb_controller::lease::{self, Lead, LeadPublisher, Leadership, LeaseSettings, Timing};
use ferrolb_controller::task::AbortOnDrop;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use support::memsim::MemSim;
use support::tap::{Fault, Tap};
use support::{NS, wait_for};
use tokio::sync::oneshot;
use tokio::time::Instant;

const DURATION: Duration = Duration::from_secs(3);
const MS: Duration = Duration::from_millis(1);

/// One candidate: its elector task, what it publishes, and its client's tap.
struct Candidate {
    identity: &'static str,
    leadership: Leadership,
    tap: Tap,
    stop: Option<oneshot::Sender<()>>,
    task: AbortOnDrop<Result<(), lease::LeaseError>>,
}

impl Candidate {
    fn start(sim: &MemSim, identity: &'static str) -> Candidate {
        let tap = Tap::default();
        let api: Api<Lease> = Api::namespaced(sim.client(&tap), NS);
        let settings = LeaseSettings {
            name: "ferrolb-controller".into(),
            namespace: NS.into(),
            identity: identity.into(),
            duration: DURATION,
        };
        let (leadership, publisher): (Leadership, LeadPublisher) = Leadership::channel(false);
        let (stop, stopped) = oneshot::channel();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = AbortOnDrop::spawn(lease::run(api, settings, publisher, shutdown));
        Candidate {
            identity,
            leadership,
            tap,
            stop: Some(stop),
            task,
        }
    }

    /// Waits (in virtual time) until it leads; returns when.
    async fn until_leading(&self, limit: Duration) -> Instant {
        let leadership = self.leadership.clone();
        wait_for(&format!("{} leading", self.identity), limit, MS, || {
            let leading = leadership.is_leading();
            async move { leading.then(Instant::now) }
        })
        .await
    }

    /// Waits until it no longer leads; returns when.
    async fn until_not_leading(&self, limit: Duration) -> Instant {
        let leadership = self.leadership.clone();
        wait_for(
            &format!("{} stepping down", self.identity),
            limit,
            MS,
            || {
                let leading = leadership.is_leading();
                async move { (!leading).then(Instant::now) }
            },
        )
        .await
    }

    /// When its Lease writes (create or replace) were sent.
    fn lease_writes(&self) -> Vec<Instant> {
        self.tap
            .log()
            .iter()
            .filter(|r| r.is_write() && r.touches("/leases"))
            .filter_map(|r| r.sent)
            .collect()
    }
}

async fn holder(sim: &MemSim) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(sim.client(&Tap::default()), NS);
    leases
        .get_opt("ferrolb-controller")
        .await
        .expect("get")
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

#[tokio::test(start_paused = true)]
async fn a_lone_candidate_takes_a_missing_lease_at_once_and_renews_on_schedule() {
    let sim = MemSim::start();
    let t0 = Instant::now();
    let a = Candidate::start(&sim, "a");
    let leading_at = a.until_leading(DURATION).await;
    let timing = Timing::for_duration(DURATION);
    // It reads first (one list), then creates: no timer stands in between.
    assert!(leading_at - t0 < 10 * MS, "took {:?}", leading_at - t0);
    assert_eq!(holder(&sim).await.as_deref(), Some("a"));
    tokio::time::sleep(timing.renew_every * 4 + timing.renew_every / 2).await;
    let writes = a.lease_writes();
    assert_eq!(writes.len(), 5, "one create and four renewals: {writes:?}");
    for pair in writes.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= timing.renew_every && gap < timing.renew_every + 10 * MS,
            "renewed after {gap:?}, every {:?} expected",
            timing.renew_every
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_standby_takes_over_one_duration_after_the_last_renewal_it_saw_and_not_before() {
    let sim = MemSim::start();
    let mut a = Candidate::start(&sim, "a");
    a.until_leading(DURATION).await;
    let b = Candidate::start(&sim, "b");
    tokio::time::sleep(DURATION * 2).await;
    assert!(
        !b.leadership.is_leading(),
        "b took a Lease a keeps renewing"
    );
    assert!(b.lease_writes().is_empty(), "the standby wrote the Lease");

    // a dies as under SIGKILL: no release.
    a.task.0.abort();
    let _ = (&mut a.task.0).await;
    let last_renewal = *a.lease_writes().last().expect("a renewed");
    let took_over = b.until_leading(DURATION * 2).await;
    let waited = took_over - last_renewal;
    assert!(
        waited >= DURATION && waited < DURATION + 10 * MS,
        "b took over {waited:?} after a's last renewal; the Lease lasts {DURATION:?}"
    );
    assert_eq!(holder(&sim).await.as_deref(), Some("b"));
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_renewals_fail_steps_down_at_the_renew_deadline() {
    let sim = MemSim::start();
    let a = Candidate::start(&sim, "a");
    a.until_leading(DURATION).await;
    let timing = Timing::for_duration(DURATION);
    a.tap.fault(Some("PUT"), "/leases/", Fault::Fail(500), None);
    let last_renewal = *a.lease_writes().last().expect("a wrote");
    let stepped_down = a.until_not_leading(DURATION * 2).await;
    let led_for = stepped_down - last_renewal;
    assert!(
        led_for >= timing.renew_deadline && led_for < timing.renew_deadline + 10 * MS,
        "stepped down {led_for:?} after the last renewal; the deadline is {:?}",
        timing.renew_deadline
    );
    assert!(
        timing.renew_deadline < DURATION,
        "before a standby may take over"
    );
}

#[tokio::test(start_paused = true)]
async fn a_leader_stopped_cleanly_releases_the_lease_for_an_immediate_takeover() {
    let sim = MemSim::start();
    let mut a = Candidate::start(&sim, "a");
    a.until_leading(DURATION).await;
    let b = Candidate::start(&sim, "b");
    tokio::time::sleep(DURATION).await;
    let released_at = Instant::now();
    if let Some(stop) = a.stop.take() {
        let _ = stop.send(());
    }
    (&mut a.task.0).await.expect("joined").expect("clean stop");
    let took_over = b.until_leading(DURATION).await;
    assert!(
        took_over - released_at < 10 * MS,
        "b waited {:?} after the release",
        took_over - released_at
    );
    assert_eq!(a.leadership.lead(), Lead::No);
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_renewals_hang_steps_down_at_the_renew_deadline_after_its_last_send() {
    let sim = MemSim::start();
    let a = Candidate::start(&sim, "a");
    a.until_leading(DURATION).await;
    let timing = Timing::for_duration(DURATION);
    // From now on the API server never answers a's Lease writes.
    a.tap.fault(Some("PUT"), "/leases/", Fault::Hang, None);
    let last_renewal = *a.lease_writes().last().expect("a wrote");
    let stepped_down = a.until_not_leading(DURATION * 3).await;
    let led_for = stepped_down - last_renewal;
    assert!(
        led_for >= timing.renew_deadline && led_for < timing.renew_deadline + 10 * MS,
        "stepped down {led_for:?} after the last renewal it sent; the deadline is {:?}",
        timing.renew_deadline
    );
    // It keeps trying, each try cut off by the call timeout instead of waiting forever.
    tokio::time::sleep(DURATION).await;
    let tries = a
        .tap
        .log()
        .iter()
        .filter(|r| r.method == "PUT" && r.touches("/leases/") && r.issued > last_renewal)
        .count();
    assert!(tries >= 2, "only {tries} Lease writes tried while hung");
}

#[tokio::test(start_paused = true)]
async fn a_renewal_keeps_the_lead_for_the_renew_deadline_from_its_send_not_its_answer() {
    let sim = MemSim::start();
    let a = Candidate::start(&sim, "a");
    a.until_leading(DURATION).await;
    let timing = Timing::for_duration(DURATION);
    // The next renewal is answered 300 ms late.
    a.tap.fault(Some("PUT"), "/leases/", Fault::Hang, Some(1));
    let writes_before = a.lease_writes().len();
    let tap = a.tap.clone();
    let released = tokio::spawn(async move {
        loop {
            let hung = tap
                .log()
                .iter()
                .any(|r| r.method == "PUT" && r.sent.is_none());
            if hung {
                tokio::time::sleep(300 * MS).await;
                tap.release();
                return;
            }
            tokio::time::sleep(MS).await;
        }
    });
    released.await.expect("released");
    let slow = wait_for("the slow renewal's answer", DURATION, MS, || {
        let log = a.tap.log();
        async move {
            log.iter()
                .filter(|r| r.method == "PUT" && r.touches("/leases/"))
                .nth(writes_before.saturating_sub(1))
                .filter(|r| r.status.is_some())
                .cloned()
        }
    })
    .await;
    tokio::time::sleep(MS).await;
    assert_eq!(
        a.leadership.lead(),
        Lead::Until(slow.issued + timing.renew_deadline),
        "validity counts from the send ({:?}), not from the answer 300 ms later",
        slow.issued
    );
}
