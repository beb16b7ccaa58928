//! The chaos suite: one cluster — two controller replicas with leader election, three speakers,
//! FRR with a client behind it, a client on the L2 segment — with LoadBalancer Services in L2
//! and BGP mode, and two clients probing an L2 Service and a BGP Service every 10 ms while the
//! faults of [`Fault::ALL`] hit it one after another (a round; rounds repeat with another
//! watched L2 IP, so another node is hit).
//!
//! After each fault, and after its recovery, the suite judges: at most one MAC answers each L2
//! IP (ARP asked from two hosts at once), no IP is held by two Services, every LoadBalancer
//! Service has its IPs, no assignment changed — across controller restarts too. Per fault it
//! records the longest client gap (L2 and BGP) and those counts ([`Figures`]); any count
//! above zero fails the run.
//!
//! What is reported but does not fail: while a recovered node takes its IPs back, the new
//! owner claims and the interim owner withdraws on the same membership change, each on its
//! own; a request in between may get both answers ("hand-back overlaps").
//!
//! - this module: the run, rounds and probers;
//! - [`lab`]: the cluster and what the suite observes in it;
//! - [`faults`]: each fault and its recovery;
//! - [`judge`]: the invariants, judged from observations (pure);
//! - [`figures`]: the faults' names, figures and the table (pure).

pub mod faults;
pub mod figures;
pub mod judge;
pub mod lab;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ferrolb_netlab::LabError;

pub use figures::{Fault, Figures};
use lab::ChaosLab;

use crate::cluster::probe::{self, Prober};
use crate::cluster::{Binaries, HTTP_PORT};

/// How often the clients probe, and when a probe counts as lost.
const PROBE_EVERY: Duration = Duration::from_millis(10);
const PROBE_TIMEOUT: Duration = Duration::from_millis(200);

/// What to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The daemons (the controller is required).
    pub binaries: Binaries,
    /// How many times every fault is injected.
    pub rounds: usize,
}

/// What a run saw.
#[derive(Debug)]
pub struct Report {
    /// One record per fault and round.
    pub figures: Vec<Figures>,
    /// Building the cluster until everything was served.
    pub setup: Duration,
    /// The whole run.
    pub total: Duration,
    /// The lab's logs, kept when an invariant broke.
    pub logs: Option<String>,
}

impl Report {
    /// Every broken invariant, one line each.
    pub fn failures(&self) -> Vec<String> {
        self.figures.iter().flat_map(Figures::failures).collect()
    }

    /// The figures table and the run's times.
    pub fn render(&self) -> String {
        format!(
            "chaos suite: {} faults in {:.1} s (cluster built in {:.1} s)\n\n{}",
            self.figures.len(),
            self.total.as_secs_f64(),
            self.setup.as_secs_f64(),
            figures::table(&self.figures)
        )
    }
}

/// A run that could not go on: a fault's recovery never came, a process died, a command failed.
#[derive(Debug)]
pub struct Aborted {
    pub error: LabError,
    /// What the faults before it recorded (the failed one last).
    pub figures: Vec<Figures>,
    pub logs: String,
}

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the chaos run stopped: {}\n\n{}\n{}",
            self.error,
            figures::table(&self.figures),
            self.logs
        )
    }
}

/// The two probing clients of a round.
struct Probers {
    l2: Prober,
    bgp: Prober,
}

impl Probers {
    fn start(cx: &ChaosLab, l2: Ipv4Addr, bgp: IpAddr) -> Probers {
        let start = |role: &str, ip: IpAddr| {
            let ns = cx.lab.net.ns(role);
            let target = SocketAddr::new(ip, HTTP_PORT);
            Prober::start(&ns, target, PROBE_EVERY, PROBE_TIMEOUT)
        };
        Probers {
            l2: start("client", l2.into()),
            bgp: start("outside", bgp),
        }
    }

    /// Longest gaps and lost probes of each client among the probes sent in `[from, to)`.
    fn judge(&self, from: Instant, to: Instant, f: &mut Figures) {
        let (l2, bgp) = (self.l2.so_far(), self.bgp.so_far());
        f.l2_gap = probe::longest_outage(&l2, from, to);
        f.bgp_gap = probe::longest_outage(&bgp, from, to);
        let lost = |probes: &[probe::Probe]| {
            probes
                .iter()
                .filter(|p| p.sent >= from && p.sent < to && p.answered_by.is_none())
                .count()
        };
        f.lost_probes = (lost(&l2), lost(&bgp));
        f.l2_served_by = probe::served_by(&l2, from, to);
    }
}

/// Builds the cluster and runs `settings.rounds` rounds of every fault.
pub async fn run(settings: Settings) -> Result<Report, Aborted> {
    let started = Instant::now();
    let mut cx = ChaosLab::start(settings.binaries)
        .await
        .map_err(|error| Aborted {
            error,
            figures: Vec::new(),
            logs: String::new(),
        })?;
    let setup = started.elapsed();
    let mut all = Vec::new();
    for round in 1..=settings.rounds {
        if let Err(error) = run_round(&mut cx, round, &mut all).await {
            let logs = cx.logs();
            return Err(Aborted {
                error,
                figures: all,
                logs,
            });
        }
    }
    let mut report = Report {
        figures: all,
        setup,
        total: started.elapsed(),
        logs: None,
    };
    if !report.failures().is_empty() {
        report.logs = Some(cx.logs());
    }
    Ok(report)
}

/// One round: every fault, on the owner of this round's watched L2 IP.
async fn run_round(
    cx: &mut ChaosLab,
    round: usize,
    all: &mut Vec<Figures>,
) -> Result<(), LabError> {
    let watched = cx.l2_ips[(round - 1) % cx.l2_ips.len()];
    let target = cx.owners[&watched].clone();
    let bgp = *cx.bgp_ips.first().ok_or_else(|| LabError::Missing {
        what: "a BGP Service IP".into(),
        detail: "none assigned".into(),
    })?;
    let probers = Probers::start(cx, watched, bgp);
    // Both clients are answered before the first fault.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut outcome = Ok(());
    for fault in Fault::ALL {
        let mut f = Figures::new(round, fault);
        f.target = target.clone();
        let before = cx.assignments().await?;
        let from = Instant::now();
        outcome = match faults::inject(cx, fault, &target, &mut f).await {
            Ok(()) => after_fault(cx, &before, &mut f).await,
            Err(e) => Err(e),
        };
        f.took = from.elapsed();
        // The probes sent until now have ended (answered or timed out).
        tokio::time::sleep(PROBE_TIMEOUT + Duration::from_millis(50)).await;
        probers.judge(from, from + f.took, &mut f);
        all.push(f);
        if outcome.is_err() {
            break;
        }
    }
    let _ = probers.l2.finish();
    let _ = probers.bgp.finish();
    outcome
}

/// The checks after every fault's recovery: every daemon still runs, the router routes every
/// BGP IP over every node again, and the Services are judged against `before`.
async fn after_fault(
    cx: &mut ChaosLab,
    before: &crate::cluster::objects::Assignments,
    f: &mut Figures,
) -> Result<(), LabError> {
    cx.check_processes()?;
    cx.routes_over(cx.lab.nodes.len()).await?;
    cx.judge_services(before, f).await.map(|_| ())
}
