//! FerroLB's responder beside the kernel, for ARP and NDP, in one run: reply latency,
//! sustained answers at the highest rate one flooder reaches, the highest offered rate
//! answered without a single drop, and the cost of the fast path while iperf3 loads
//! the same interface with unrelated traffic. Three answerers per family: the kernel,
//! a Responder with the in-kernel fast path (the default), and a Responder with
//! sockets only. Needs root (and iperf3 for the last part); without root it prints
//! why and exits 0.
//!
//! ```text
//!   [fl-l2k-<pid>-0-cli]                             [fl-l2k-<pid>-0-spk]
//!   prober / flooder ─ cli0 ───── veth ───── spk0    192.0.2.10, 2001:db8::10: Responder, fast path
//!   iperf3 client                                    iperf3 server on 192.0.2.2, ::2
//!   prober / flooder ─ cli1 ───── veth ───── spk1    198.51.100.2, 2001:db8:1::2: kernel
//!   prober / flooder ─ cli2 ───── veth ───── spk2    203.0.113.10, 2001:db8:2::10: Responder, sockets
//!   iperf3 client                                    iperf3 server on 203.0.113.2, 2001:db8:2::2
//! ```
//! Each answerer sits on its own identical veth so its questions never wake the
//! others; iperf3 runs over both Responders' veths, with and without the program.
//! `cargo bench -p ferrolb-proto --bench l2_vs_kernel`
// Namespaces, raw sockets and thread ids need libc calls with no safe wrapper here.
#![allow(unsafe_code)]

mod cpu;
mod lab;
mod wire;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::mpsc;
use std::time::Duration;

use ferrolb_proto::l2::counters::Family;
use ferrolb_proto::l2::{AnswerPath, Responder, ResponderConfig};

use lab::Lab;

const PROBES: usize = 2000;
const PROBE_GAP: Duration = Duration::from_micros(500);
const STEP: Duration = Duration::from_secs(1);
const RATES: [u64; 7] = [25_000, 50_000, 100_000, 150_000, 200_000, 250_000, 300_000];

/// Answerers per family, in row order: kernel, fast path, sockets only.
const ANSWERERS: usize = 3;

/// One row of the comparison: who answers which address.
struct Target {
    family: Family,
    who: &'static str,
    ip: IpAddr,
    /// Client interface the questions leave from.
    dev: &'static str,
    /// Which Responder answers (index into the responders), and on which interface;
    /// `None` for the kernel.
    responder: Option<(usize, &'static str)>,
}

fn targets() -> [Target; 2 * ANSWERERS] {
    let t = |family, who, ip: &str, dev, responder| Target {
        family,
        who,
        ip: ip.parse().expect("literal"),
        dev,
        responder,
    };
    [
        t(Family::V4, "kernel", "198.51.100.2", "cli1", None),
        t(
            Family::V4,
            "fast path",
            "192.0.2.10",
            "cli0",
            Some((0, "spk0")),
        ),
        t(
            Family::V4,
            "sockets",
            "203.0.113.10",
            "cli2",
            Some((1, "spk2")),
        ),
        t(Family::V6, "kernel", "2001:db8:1::2", "cli1", None),
        t(
            Family::V6,
            "fast path",
            "2001:db8::10",
            "cli0",
            Some((0, "spk0")),
        ),
        t(
            Family::V6,
            "sockets",
            "2001:db8:2::10",
            "cli2",
            Some((1, "spk2")),
        ),
    ]
}

/// The client end of one veth pair.
#[derive(Clone, Copy)]
struct Client {
    index: u32,
    mac: ferrolb_proto::l2::MacAddr,
}

/// Client interfaces by name.
struct Clients {
    cli0: Client,
    cli1: Client,
    cli2: Client,
}

impl Clients {
    fn of(&self, t: &Target) -> Client {
        match t.dev {
            "cli0" => self.cli0,
            "cli1" => self.cli1,
            _ => self.cli2,
        }
    }
}

/// What one flood step showed.
struct Step {
    offered: Option<u64>,
    sent: u64,
    answered: u64,
}

impl Step {
    fn is_lossless(&self) -> bool {
        self.answered >= self.sent
    }
}

#[derive(Default)]
struct Figures {
    p50: f64,
    p99: f64,
    max_answered: f64,
    lossless: Option<u64>,
}

fn main() {
    if !ferrolb_netlab::can_run(&[]) {
        return;
    }
    let lab = Lab::new();
    let client = |dev| Client {
        index: lab.client_ifindex(dev),
        mac: lab.client_mac(dev),
    };
    let clients = Clients {
        cli0: client("cli0"),
        cli1: client("cli1"),
        cli2: client("cli2"),
    };

    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let spk = lab.spk.clone();
    let speaker = std::thread::spawn(move || {
        lab::enter(&spk);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let mut responders = Vec::new();
            for (fast_path, dev, vips) in [
                (true, "spk0", ["192.0.2.10", "2001:db8::10"]),
                (false, "spk2", ["203.0.113.10", "2001:db8:2::10"]),
            ] {
                let config = ResponderConfig {
                    announce_repeats: 1,
                    announce_interval: Duration::from_millis(1),
                    fast_path,
                    ..ResponderConfig::default()
                };
                let (r, task) = Responder::start(config).await.expect("responder");
                for vip in vips {
                    let vip: IpAddr = vip.parse().expect("literal");
                    r.announce(vip, [dev.to_owned()]).await.expect("announce");
                }
                responders.push((r, task));
            }
            let handles: Vec<Responder> = responders.iter().map(|(r, _)| r.clone()).collect();
            ready_tx.send(handles).expect("ready");
            let _ = stop_rx.await;
        });
    });
    let responders = ready_rx.recv().expect("responders ready");
    lab::enter(&lab.cli);
    lab::raise_priority();
    let bench_threads: BTreeSet<i32> = [lab::gettid()].into();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    std::thread::sleep(Duration::from_millis(300));

    let sections =
        std::env::var("FERROLB_L2_BENCH").unwrap_or_else(|_| "latency,rate,iperf3".into());
    println!("FerroLB Responder vs the kernel on identical veth pairs, same run");
    let loadavg = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", loadavg().trim());
    for r in &responders {
        let paths = rt.block_on(r.answer_paths()).expect("paths");
        let paths: Vec<String> = paths
            .iter()
            .map(|(dev, p): (&String, &AnswerPath)| format!("{dev}: {}", p.label()))
            .collect();
        println!("responder answers on {}", paths.join(", "));
    }
    let mut figures: Vec<Figures> = targets().iter().map(|_| Figures::default()).collect();
    if sections.contains("latency") {
        latency(&clients, &mut figures);
    }
    if sections.contains("rate") {
        rate(&rt, &responders, &clients, &bench_threads, &mut figures);
    }
    println!(
        "\nsummary (targets: p99 <= 2x kernel; max answered/s >= 50% of kernel's; \
         lossless up to that rate)"
    );
    println!(
        "{:<5} {:<10} {:>8} {:>8} {:>10} {:>12} {:>8} {:>10}",
        "proto", "answerer", "p50 µs", "p99 µs", "p99 / k", "max ans/s", "% of k", "lossless"
    );
    for (t, f) in targets().iter().zip(&figures) {
        let k = &figures[if t.family == Family::V4 { 0 } else { ANSWERERS }];
        println!(
            "{:<5} {:<10} {:>8.1} {:>8.1} {:>9.2}x {:>12.0} {:>7.0}% {:>10}",
            t.family.protocol(),
            t.who,
            f.p50,
            f.p99,
            f.p99 / k.p99,
            f.max_answered,
            100.0 * f.max_answered / k.max_answered,
            f.lossless.map_or("none".into(), |r| r.to_string()),
        );
    }

    let has_iperf3 = std::process::Command::new("sh")
        .args(["-c", "command -v iperf3"])
        .output()
        .is_ok_and(|o| o.status.success());
    let wants_iperf3 = sections.contains("iperf3");
    if wants_iperf3 && has_iperf3 {
        println!(
            "\nunrelated load: iperf3 cli -> spk over spk0 (fast path program on every \
             received frame) and over spk2 (sockets only, no program), alternating; \
             'prog' = the kernel's timing of our program in softirq (kernel.bpf_stats_enabled \
             on for this part): runs, ns per run, total as % of one core; 'cpu' = the \
             Responders' threads"
        );
        println!(
            "{:<26} {:<5} {:>9} {:>10} {:>12} {:>10} {:>8} {:>7}",
            "load", "dev", "Mbit/s", "prog runs", "prog ns/run", "prog %core", "cpu", "wakeups"
        );
        let _stats = cpu::BpfStats::enable();
        let loads = [
            (
                "TCP over IPv4, unlimited",
                ["192.0.2.2", "203.0.113.2"],
                vec![],
            ),
            (
                "TCP over IPv4, -b 1G",
                ["192.0.2.2", "203.0.113.2"],
                vec!["-b", "1G"],
            ),
            (
                "TCP over IPv6, -b 1G",
                ["2001:db8::2", "2001:db8:2::2"],
                vec!["-b", "1G"],
            ),
            (
                "UDP over IPv6, 1G, 1400 B",
                ["2001:db8::2", "2001:db8:2::2"],
                vec!["-u", "-b", "1G", "-l", "1400"],
            ),
        ];
        for (name, servers, args) in loads {
            for (dev, server) in ["spk0", "spk2"].into_iter().zip(servers) {
                match cpu::iperf3(name, &lab.cli, &lab.spk, server, &args, 5, &bench_threads) {
                    Some(l) => println!(
                        "{:<26} {:<5} {:>9.0} {:>10} {:>12.1} {:>9.3}% {:>7.3}% {:>7}",
                        l.name,
                        dev,
                        l.mbit_per_s,
                        l.program_runs,
                        l.program_ns as f64 / l.program_runs.max(1) as f64,
                        100.0 * l.program_ns as f64 / (l.seconds * 1e9),
                        l.cpu_percent,
                        l.wakeups
                    ),
                    None => println!("{name:<26} {dev:<5} iperf3 failed to run"),
                }
            }
        }
    } else if wants_iperf3 {
        println!("\nSKIPPED iperf3 load: iperf3 not installed (apt-get install -y iperf3)");
    }

    println!("\nload average at end: {}", loadavg().trim());
    let _ = stop_tx.send(());
    let _ = speaker.join();
}

/// Latency rows, kernel and Responder interleaved in blocks of `BLOCK` questions so
/// that both see the same background load.
fn latency(clients: &Clients, figures: &mut [Figures]) {
    const BLOCK: usize = 100;
    println!(
        "\nlatency: {PROBES} questions per row, one at a time, {PROBE_GAP:?} apart, kernel and \
         ferrolb alternating every {BLOCK}; RTT = kernel rx timestamp of the answer at the client veth - \
         clock before send, µs"
    );
    println!(
        "{:<5} {:<10} {:>8} {:>8} {:>8} {:>8} {:>5}",
        "proto", "answerer", "p50", "p90", "p99", "max", "lost"
    );
    let all = targets();
    for first in [0, ANSWERERS] {
        let rows = first..first + ANSWERERS;
        let mut rtts: [wire::Rtts; ANSWERERS] = Default::default();
        for _ in 0..PROBES / BLOCK {
            for (t, r) in all[rows.clone()].iter().zip(&mut rtts) {
                let c = clients.of(t);
                wire::probe(c.index, c.mac, t.ip, BLOCK, PROBE_GAP, r);
            }
        }
        for ((t, r), fig) in all[rows.clone()]
            .iter()
            .zip(&rtts)
            .zip(&mut figures[first..])
        {
            println!(
                "{:<5} {:<10} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>5}",
                t.family.protocol(),
                t.who,
                r.pct(0.5),
                r.pct(0.9),
                r.pct(0.99),
                r.pct(1.0),
                r.lost
            );
            fig.p50 = r.pct(0.5);
            fig.p99 = r.pct(0.99);
        }
    }
}

/// Rate rows: each offered rate for the kernel, then each Responder, then the next.
fn rate(
    rt: &tokio::runtime::Runtime,
    responders: &[Responder],
    clients: &Clients,
    bench_threads: &BTreeSet<i32>,
    figures: &mut [Figures],
) {
    println!(
        "\nrate: {STEP:?} per step from one raw socket (sendmmsg), kernel and ferrolb \
         alternating; answers counted at the client veth; 'seen' = questions the Responder counted \
         (read by its sockets or answered in the kernel); 'qdrop' = lost in its full socket queue; 'cpu' = \
         both Responders' threads, % of one core (the fast path's work is softirq, not counted here)"
    );
    println!(
        "{:<5} {:<10} {:>9} {:>9} {:>10} {:>8} {:>9} {:>7} {:>6}",
        "proto",
        "answerer",
        "offered/s",
        "sent/s",
        "answered/s",
        "answered",
        "seen",
        "qdrop",
        "cpu"
    );
    let all = targets();
    let secs = STEP.as_secs_f64();
    for first in [0, ANSWERERS] {
        let mut lost_below = [false; ANSWERERS];
        for offered in RATES.iter().map(|r| Some(*r)).chain([None]) {
            for (i, t) in all[first..first + ANSWERERS].iter().enumerate() {
                // FERROLB_L2_ONLY=ferrolb (or kernel) runs one side, for profiling.
                if std::env::var("FERROLB_L2_ONLY").is_ok_and(|only| only != t.who) {
                    continue;
                }
                let seen_before = seen(rt, responders, t);
                let (rx_before, _) = lab::dev_packets(t.dev);
                let (cpu_before, _) = cpu::responder_cpu(bench_threads);
                let c = clients.of(t);
                let sent = wire::flood(c.index, c.mac, t.ip, offered, STEP);
                let (cpu_after, _) = cpu::responder_cpu(bench_threads);
                std::thread::sleep(Duration::from_millis(200));
                let answered = lab::dev_packets(t.dev).0 - rx_before;
                let seen_after = seen(rt, responders, t);
                let (seen, qdrop) = (seen_after.0 - seen_before.0, seen_after.1 - seen_before.1);
                let step = Step {
                    offered,
                    sent,
                    answered,
                };
                println!(
                    "{:<5} {:<10} {:>9} {:>9.0} {:>10.0} {:>7.1}% {:>9} {:>7} {:>5.1}%",
                    t.family.protocol(),
                    t.who,
                    offered.map_or("max".to_owned(), |r| r.to_string()),
                    sent as f64 / secs,
                    answered as f64 / secs,
                    100.0 * answered as f64 / sent.max(1) as f64,
                    if t.who == "kernel" {
                        "-".to_owned()
                    } else {
                        seen.to_string()
                    },
                    if t.who == "kernel" {
                        "-".to_owned()
                    } else {
                        qdrop.to_string()
                    },
                    100.0 * (cpu_after - cpu_before) as f64 / (secs * 1e9),
                );
                let fig = &mut figures[first + i];
                // The highest rate actually sent at a paced step that was answered in
                // full, with every lower step also answered in full.
                if step.offered.is_some() {
                    if step.is_lossless() && !lost_below[i] {
                        fig.lossless = Some(fig.lossless.map_or(sent, |l: u64| l.max(sent)));
                    } else {
                        lost_below[i] = true;
                    }
                } else {
                    fig.max_answered = answered as f64 / secs;
                }
            }
        }
    }
}

/// Questions `t`'s Responder has counted on its interface for `t`'s family, and
/// those the kernel dropped from its full receive queue; zeros for the kernel.
fn seen(rt: &tokio::runtime::Runtime, responders: &[Responder], t: &Target) -> (u64, u64) {
    let Some((r, dev)) = t
        .responder
        .and_then(|(i, dev)| Some((responders.get(i)?, dev)))
    else {
        return (0, 0);
    };
    let all = rt.block_on(r.counters()).expect("counters");
    all.get(&(dev.to_owned(), t.family)).map_or((0, 0), |c| {
        let overflow = c.dropped.get("QueueOverflow").copied().unwrap_or(0);
        (c.requests_seen, overflow)
    })
}
