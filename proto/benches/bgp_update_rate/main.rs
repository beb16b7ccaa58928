//! Update rate to real routers: how long after Established each receiver (BIRD 2, FRR 8.4,
//! GoBGP 3.10) holds every route, for two senders in the same run:
//! - `ferrolb`: our peer driver, as its own process (so its CPU time and peak RSS are its own);
//! - `packed`: a minimal sender that writes pre-encoded, fully packed UPDATEs in one write right
//!   after the handshake: the receiver's own limit.
//!
//! The clock starts when the sender's session is Established, as the sender itself sees it (our
//! driver's Up event, printed by the child with the wall clock; the packed sender's own
//! handshake), and stops when the receiver's control socket (BIRD, FRR) or CLI (GoBGP, 0.1 s
//! resolution) counts every prefix. The two senders alternate `FBGP_BENCH_ROUNDS` times
//! (default 5; 3 for GoBGP) per family, each going first in every other round; medians and
//! ranges are printed.
//!
//! Routes: 100 000 IPv4 /32 from 198.18.0.0/15 and 100 000 IPv6 /128 from 2001:db8:100::/48
//! (`FBGP_ROUTES=N` changes the count). 198.18.0.0/15 may only live in the receiver's RIB: BIRD
//! has no kernel protocol, GoBGP no zebra, and FRR's bgpd hands nothing to zebra (`table-map`
//! with a deny route-map); the bench fails if the receiver's kernel table ever holds one.
//!
//! ```text
//!   [n1] ferrolb process ──┐
//!                          ├─ switch ── [r] receiver: BIRD, FRR or GoBGP (AS 64513)
//!   [n2] packed sender ────┘
//! ```
//! `cargo bench -p ferrolb-proto --bench bgp_update_rate` (`-- bird frr gobgp` to choose).
//! Needs root, FRR, BIRD and GoBGP; without them prints why and exits 0 (fails under CI=true).

mod senders;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

use ferrolb_netlab::counters::{cpu_time, memory_kib};
use ferrolb_netlab::routers::{Bird, Families, Frr, Gobgp, Local, Neighbor, Router, frr};
use ferrolb_netlab::{Netlab, NsRuntime, can_run, poll};
use senders::{
    Family, OUR_AS, PackedRun, ROUTER_AS, ROUTER4, ROUTER6, encoded, from_unix_nanos, negotiated,
    packed_sender, route_count, routes, speaker_child,
};

const RUN_DEADLINE: Duration = Duration::from_secs(300);
const FERROLB_NODE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PACKED_NODE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// One measured run.
#[derive(Debug, Clone)]
struct Figure {
    sender: &'static str,
    family: Family,
    /// Established → the receiver holds all.
    took: Duration,
    updates: usize,
    bytes: usize,
    /// Our process only: CPU time and peak RSS (KiB).
    cpu_rss: Option<(Duration, u64)>,
}

/// The receiver's namespace, the two senders' namespaces, and the receiver.
struct Bench {
    lab: Netlab,
    router: Box<dyn Router>,
    packed: NsRuntime,
}

/// FRR's bgpd configuration with nothing handed to zebra: routes stay in bgpd's RIB.
fn frr_without_fib(local: &Local, neighbors: &[Neighbor]) -> String {
    let conf = frr::config(local, neighbors);
    let conf = conf.replace(
        " unicast\n  maximum-paths 4\n",
        " unicast\n  table-map NOFIB\n  maximum-paths 4\n",
    );
    assert_eq!(conf.matches("table-map NOFIB").count(), 2, "{conf}");
    conf + "route-map NOFIB deny 10\n!\n"
}

fn start(which: &str) -> Bench {
    let mut lab = Netlab::new("bgp-rate").expect("lab");
    lab.add_host("r", "eth0", &["192.0.2.254/24", "2001:db8:1::fe/64"])
        .expect("receiver");
    for i in 1..=2 {
        let v4 = format!("192.0.2.{i}/24");
        let v6 = format!("2001:db8:1::{i}/64");
        lab.add_host(&format!("n{i}"), "eth0", &[&v4, &v6])
            .expect("sender");
    }
    let local = Local {
        asn: ROUTER_AS,
        v4: ROUTER4,
        v6: ROUTER6,
    };
    let neighbors: Vec<Neighbor> = [FERROLB_NODE, PACKED_NODE]
        .into_iter()
        .map(|a| Neighbor::new(IpAddr::V4(a), OUR_AS, Families::DUAL))
        .collect();
    let router: Box<dyn Router> = match which {
        "bird" => Box::new(Bird::start(&mut lab, "r", &local, &neighbors).expect("BIRD")),
        "frr" => {
            Box::new(Frr::start(&mut lab, "r", &frr_without_fib(&local, &neighbors)).expect("FRR"))
        }
        _ => Box::new(Gobgp::start(&mut lab, "r", &local, &neighbors).expect("GoBGP")),
    };
    let packed = NsRuntime::start(&lab.ns("n2")).expect("runtime in n2");
    Bench {
        lab,
        router,
        packed,
    }
}

impl Bench {
    fn poll_interval(&self) -> Duration {
        // GoBGP's CLI costs ~160 ms of CPU per call: polling it fast would starve gobgpd on
        // two cores. The control sockets of BIRD and FRR are cheap.
        if self.router.name() == "GoBGP" {
            Duration::from_millis(100)
        } else {
            Duration::from_millis(2)
        }
    }

    /// When the receiver first counts `want` prefixes from `from`.
    fn wait_count(&self, from: Ipv4Addr, want: u64) -> SystemTime {
        let router = self.router.as_ref();
        poll(
            &format!("{} accepts {want} from {from}", router.name()),
            RUN_DEADLINE,
            self.poll_interval(),
            || match router.accepted(IpAddr::V4(from))? {
                n if n >= want => Ok(SystemTime::now()),
                n => Err(format!("{n}")),
            },
        )
        .expect("the receiver holds every route")
    }

    /// After a sender stopped: its session is down and its routes are gone from the receiver,
    /// so that withdrawals do not overlap the next run.
    fn wait_gone(&self, from: Ipv4Addr, family: Family) {
        let router = self.router.as_ref();
        poll(
            &format!("{} session with {from} down", router.name()),
            RUN_DEADLINE,
            Duration::from_millis(50),
            || match router.session_state(IpAddr::V4(from)) {
                Ok(()) => Err("up".into()),
                Err(_) => Ok(()),
            },
        )
        .expect("session down");
        let sample = match family {
            Family::V4 => "198.18.0.7/32",
            Family::V6 => "2001:db8:100::7/128",
        };
        poll(
            &format!("{} flushed {sample}", router.name()),
            RUN_DEADLINE,
            Duration::from_millis(100),
            || match router.paths(sample)?.is_empty() {
                true => Ok(()),
                false => Err("still there".into()),
            },
        )
        .expect("routes flushed");
        if router.name() == "GoBGP" {
            // gobgpd refuses the neighbor's connections while its FSM is Idle (about 5 s after
            // each session): start the next run once it is Active again.
            poll(
                &format!("GoBGP accepts {from} again"),
                RUN_DEADLINE,
                Duration::from_millis(200),
                || match router.session_state(IpAddr::V4(from)) {
                    Err(e) if e.to_lowercase().contains("active") || e.ends_with(" 3") => Ok(()),
                    Err(e) => Err(e),
                    Ok(()) => Err("Established".into()),
                },
            )
            .expect("GoBGP's neighbor Active");
        }
    }

    /// 198.18.0.0/15 must never reach a kernel table.
    fn assert_no_kernel_routes(&self) {
        let out = self
            .lab
            .exec_ok("r", &["ip", "-4", "route", "show", "root", "198.18.0.0/15"])
            .expect("ip route");
        assert!(
            out.trim().is_empty(),
            "198.18.0.0/15 in the receiver's kernel table: {out}"
        );
    }

    fn run_ferrolb(&mut self, family: Family, tag: &str) -> Figure {
        let exe = std::env::current_exe().expect("bench binary");
        let exe = exe.to_str().expect("utf-8 path");
        let name = format!("ferrolb-{tag}");
        let log = self.lab.path(&format!("{name}.log"));
        let envs = [("FBGP_BENCH_SPEAK", family.name())];
        let pid = self
            .lab
            .spawn(&name, "n1", &[exe], &envs, &log)
            .expect("ferrolb process");
        let done = self.wait_count(FERROLB_NODE, u64::from(route_count()));
        self.assert_no_kernel_routes();
        let cpu = cpu_time(pid).unwrap_or_default();
        let peak_kib = memory_kib(pid).map_or(0, |(_, hwm)| hwm);
        let said = poll(
            "the FerroLB process reports Established",
            RUN_DEADLINE,
            Duration::from_millis(10),
            || {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                match text.lines().find_map(|l| l.strip_prefix("FBGP up ")) {
                    Some(line) => Ok(line.to_owned()),
                    None => Err(text),
                }
            },
        )
        .expect("Established");
        let f: Vec<&str> = said.split_whitespace().collect();
        let up = from_unix_nanos(f[2].parse().expect("nanos"));
        let (updates, bytes) = encoded(&routes(family, 1), &negotiated(f[0] == "1", f[1] == "1"));
        self.lab.processes().stop(pid);
        self.lab.reap(pid);
        self.wait_gone(FERROLB_NODE, family);
        Figure {
            sender: "ferrolb",
            family,
            took: done.duration_since(up).unwrap_or_default(),
            updates,
            bytes: bytes.len(),
            cpu_rss: Some((cpu, peak_kib)),
        }
    }

    fn run_packed(&mut self, family: Family) -> Figure {
        let set = routes(family, 2);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (report_tx, report_rx) = std::sync::mpsc::channel();
        self.packed.spawn(packed_sender(set, stop_rx, report_tx));
        let done = self.wait_count(PACKED_NODE, u64::from(route_count()));
        self.assert_no_kernel_routes();
        let run: PackedRun = report_rx
            .recv_timeout(RUN_DEADLINE)
            .expect("the packed sender reports");
        let _ = stop_tx.send(());
        self.wait_gone(PACKED_NODE, family);
        Figure {
            sender: "packed",
            family,
            took: done.duration_since(run.established).unwrap_or_default(),
            updates: run.updates,
            bytes: run.bytes,
            cpu_rss: None,
        }
    }
}

/// Rounds of each sender: `FBGP_BENCH_ROUNDS`, else 5 (3 for GoBGP, whose receiving takes a
/// second or more per run).
fn rounds(which: &str) -> usize {
    std::env::var("FBGP_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if which == "gobgp" { 3 } else { 5 })
}

/// Median, fastest and slowest time of a sender's runs; its largest CPU time and peak RSS.
struct Summary {
    median: Figure,
    min: Duration,
    max: Duration,
}

fn summarize(mut runs: Vec<Figure>) -> Summary {
    let cpu = runs.iter().filter_map(|f| f.cpu_rss.map(|c| c.0)).max();
    let rss = runs.iter().filter_map(|f| f.cpu_rss.map(|c| c.1)).max();
    runs.sort_by_key(|f| f.took);
    let (min, max) = (runs[0].took, runs[runs.len() - 1].took);
    let mut median = runs.swap_remove(runs.len() / 2);
    median.cpu_rss = cpu.zip(rss);
    Summary { median, min, max }
}

fn print_summary(receiver: &str, s: &Summary) {
    let f = &s.median;
    let ours = f
        .cpu_rss
        .map(|(cpu, kib)| {
            format!(
                "  cpu ≤ {:.2} s  peak RSS ≤ {:.1} MiB",
                cpu.as_secs_f64(),
                kib as f64 / 1024.0
            )
        })
        .unwrap_or_default();
    println!(
        "{receiver:<6} {} {:>6} routes  {:<8} median {:>7.3} s  range {:.3}–{:.3} s  \
         {:>5} UPDATEs {:>8} B{ours}",
        f.family.name(),
        route_count(),
        f.sender,
        f.took.as_secs_f64(),
        s.min.as_secs_f64(),
        s.max.as_secs_f64(),
        f.updates,
        f.bytes,
    );
}

/// Every round against one receiver; (family, ferrolb, packed) per family.
fn bench_receiver(which: &str) -> Vec<(Family, Summary, Summary)> {
    let mut bench = start(which);
    let name = bench.router.name();
    let mut out = Vec::new();
    for family in [Family::V4, Family::V6] {
        let (mut ours, mut packed) = (Vec::new(), Vec::new());
        // Alternating, and each sender first in every other round: whatever the receiver
        // still does after the previous run weighs on both alike.
        for round in 0..rounds(which) {
            let tag = format!("{which}-{}-{round}", family.name());
            if round % 2 == 0 {
                ours.push(bench.run_ferrolb(family, &tag));
                packed.push(bench.run_packed(family));
            } else {
                packed.push(bench.run_packed(family));
                ours.push(bench.run_ferrolb(family, &tag));
            }
        }
        for f in ours.iter().chain(&packed) {
            println!(
                "  {name} {} {:<8} {:.3} s",
                f.family.name(),
                f.sender,
                f.took.as_secs_f64()
            );
        }
        let (ours, packed) = (summarize(ours), summarize(packed));
        print_summary(name, &ours);
        print_summary(name, &packed);
        out.push((family, ours, packed));
    }
    out
}

fn main() {
    if let Ok(family) = std::env::var("FBGP_BENCH_SPEAK") {
        speaker_child(&family);
        return;
    }
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| ["bird", "frr", "gobgp"].contains(&a.as_str()))
        .collect();
    let wanted = if wanted.is_empty() {
        vec!["bird".to_owned(), "frr".to_owned(), "gobgp".to_owned()]
    } else {
        wanted
    };
    if !can_run(&[
        "ip",
        Bird::BIRD,
        Frr::ZEBRA,
        Frr::BGPD,
        Gobgp::GOBGPD,
        "gobgp",
    ]) {
        return;
    }
    let mut all = Vec::new();
    for which in &wanted {
        all.push((which.clone(), bench_receiver(which)));
    }
    println!("\nferrolb median / packed median (target ≤ 1.2):");
    for (which, rows) in &all {
        for (family, ours, packed) in rows {
            let (o, p) = (
                ours.median.took.as_secs_f64(),
                packed.median.took.as_secs_f64(),
            );
            println!(
                "{which:<6} {}  {:.3} s / {:.3} s = {:.2}x",
                family.name(),
                o,
                p,
                o / p.max(1e-6)
            );
        }
    }
}
