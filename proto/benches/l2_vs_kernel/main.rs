//! FerroLB's responder beside the kernel, for ARP and NDP, in one run: reply latency,
//! sustained answers at the highest rate one flooder reaches, the highest offered rate
//! answered without a single drop, and the responder's CPU while iperf3 loads the
//! same interface with unrelated traffic. Needs root (and iperf3 for the last part);
//! without root it prints why and exits 0.
//!
//! ```text
//!   [fl2k-<pid>-cli] cli0 ───────── veth ───────── spk0 [fl2k-<pid>-spk]
//!   prober / flooder (raw socket)       192.0.2.2,  2001:db8::2   the kernel answers
//!   iperf3 client                       192.0.2.10, 2001:db8::10  the Responder answers
//!                                       iperf3 server on .2 / ::2
//! ```
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
use ferrolb_proto::l2::{Responder, ResponderConfig};

use lab::Lab;

const PROBES: usize = 2000;
const PROBE_GAP: Duration = Duration::from_micros(500);
const STEP: Duration = Duration::from_secs(1);
const RATES: [u64; 7] = [25_000, 50_000, 100_000, 150_000, 200_000, 250_000, 300_000];

/// One row of the comparison: who answers which address.
struct Target {
    family: Family,
    who: &'static str,
    ip: IpAddr,
}

fn targets() -> [Target; 4] {
    let t = |family, who, ip: &str| Target {
        family,
        who,
        ip: ip.parse().expect("literal"),
    };
    [
        t(Family::V4, "kernel", "192.0.2.2"),
        t(Family::V4, "ferrolb", "192.0.2.10"),
        t(Family::V6, "kernel", "2001:db8::2"),
        t(Family::V6, "ferrolb", "2001:db8::10"),
    ]
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
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIPPED l2_vs_kernel: needs root");
        return;
    }
    let lab = Lab::new();
    let cli_mac = lab.mac(&lab.cli, "cli0");
    let cli_index = lab.ifindex(&lab.cli, "cli0");

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
            let config = ResponderConfig {
                announce_repeats: 1,
                announce_interval: Duration::from_millis(1),
            };
            let (r, _task) = Responder::start(config).await.expect("responder");
            for vip in ["192.0.2.10", "2001:db8::10"] {
                let vip: IpAddr = vip.parse().expect("literal");
                r.announce(vip, ["spk0".to_owned()])
                    .await
                    .expect("announce");
            }
            ready_tx.send(r.clone()).expect("ready");
            let _ = stop_rx.await;
        });
    });
    let responder = ready_rx.recv().expect("responder ready");
    lab::enter(&lab.cli);
    let bench_threads: BTreeSet<i32> = [lab::gettid()].into();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    std::thread::sleep(Duration::from_millis(300));

    println!("FerroLB Responder vs the kernel on one veth pair, same run");
    println!(
        "\nlatency: {PROBES} questions per row, one at a time, {PROBE_GAP:?} apart; \
         RTT = kernel rx timestamp of the answer at cli0 - time before send, µs"
    );
    println!(
        "{:<5} {:<8} {:>8} {:>8} {:>8} {:>8} {:>5}",
        "proto", "answerer", "p50", "p90", "p99", "max", "lost"
    );
    let mut figures: Vec<Figures> = Vec::new();
    for t in targets() {
        let r = wire::probe(cli_index, cli_mac, t.ip, PROBES, PROBE_GAP);
        println!(
            "{:<5} {:<8} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>5}",
            t.family.protocol(),
            t.who,
            r.pct(0.5),
            r.pct(0.9),
            r.pct(0.99),
            r.pct(1.0),
            r.lost
        );
        figures.push(Figures {
            p50: r.pct(0.5),
            p99: r.pct(0.99),
            ..Figures::default()
        });
    }

    println!(
        "\nrate: {STEP:?} per step from one raw socket (sendmmsg); answers counted at cli0; \
         'seen' = frames the Responder read; 'cpu' = the Responder's threads, % of one core"
    );
    println!(
        "{:<5} {:<8} {:>9} {:>9} {:>10} {:>8} {:>9} {:>6}",
        "proto", "answerer", "offered/s", "sent/s", "answered/s", "answered", "seen", "cpu"
    );
    for (t, fig) in targets().iter().zip(&mut figures) {
        let steps = RATES.iter().map(|r| Some(*r)).chain([None]);
        let mut lost_below = false;
        for offered in steps {
            let seen_before = seen(&rt, &responder, t.family);
            let (rx_before, _) = lab::dev_packets("cli0");
            let (cpu_before, _) = cpu::responder_cpu(&bench_threads);
            let sent = wire::flood(cli_index, cli_mac, t.ip, offered, STEP);
            let (cpu_after, _) = cpu::responder_cpu(&bench_threads);
            std::thread::sleep(Duration::from_millis(200));
            let answered = lab::dev_packets("cli0").0 - rx_before;
            let seen = seen(&rt, &responder, t.family) - seen_before;
            let step = Step {
                offered,
                sent,
                answered,
            };
            let secs = STEP.as_secs_f64();
            println!(
                "{:<5} {:<8} {:>9} {:>9.0} {:>10.0} {:>7.1}% {:>9} {:>5.1}%",
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
                100.0 * (cpu_after - cpu_before) as f64 / (secs * 1e9),
            );
            // The highest paced rate answered in full, with every lower step also in full.
            if let Some(rate) = step.offered {
                if step.is_lossless() && !lost_below {
                    fig.lossless = Some(rate);
                } else {
                    lost_below = true;
                }
            }
            if step.offered.is_none() {
                fig.max_answered = answered as f64 / secs;
            }
        }
    }

    println!(
        "\nsummary (targets: p99 <= 2x kernel; max answered/s >= 50% of kernel's; \
         lossless up to that rate)"
    );
    println!(
        "{:<5} {:>12} {:>12} {:>14} {:>14} {:>17} {:>17}",
        "proto",
        "p50 k/ours",
        "p99 k/ours",
        "p99 ours/k",
        "max ans/s k",
        "max ans/s ours(%)",
        "lossless k/ours"
    );
    for (i, family) in [Family::V4, Family::V6].into_iter().enumerate() {
        let (k, o) = (&figures[2 * i], &figures[2 * i + 1]);
        println!(
            "{:<5} {:>5.1}/{:<6.1} {:>5.1}/{:<6.1} {:>13.1}x {:>14.0} {:>9.0}({:>4.0}%) {:>8}/{:<8}",
            family.protocol(),
            k.p50,
            o.p50,
            k.p99,
            o.p99,
            o.p99 / k.p99,
            k.max_answered,
            o.max_answered,
            100.0 * o.max_answered / k.max_answered,
            k.lossless.map_or("none".into(), |r| r.to_string()),
            o.lossless.map_or("none".into(), |r| r.to_string()),
        );
    }

    let has_iperf3 = std::process::Command::new("sh")
        .args(["-c", "command -v iperf3"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_iperf3 {
        println!(
            "\nunrelated load: iperf3 cli -> spk over cli0/spk0 (the Responder's interface); \
             CPU of the Responder's threads"
        );
        println!(
            "{:<28} {:>10} {:>8} {:>10} {:>9}",
            "load", "Mbit/s", "seconds", "cpu %core", "wakeups"
        );
        let loads = [
            ("TCP over IPv4, -b 1G", "192.0.2.2", vec!["-b", "1G"]),
            ("TCP over IPv6, -b 1G", "2001:db8::2", vec!["-b", "1G"]),
            (
                "UDP over IPv6, 1G, 1400 B",
                "2001:db8::2",
                vec!["-u", "-b", "1G", "-l", "1400"],
            ),
        ];
        for (name, server, args) in loads {
            match cpu::iperf3(name, &lab.cli, &lab.spk, server, &args, 5, &bench_threads) {
                Some(l) => println!(
                    "{:<28} {:>10.0} {:>8.1} {:>9.3}% {:>9}",
                    l.name, l.mbit_per_s, l.seconds, l.cpu_percent, l.wakeups
                ),
                None => println!("{name:<28} iperf3 failed to run"),
            }
        }
    } else {
        println!("\nSKIPPED iperf3 load: iperf3 not installed (apt-get install -y iperf3)");
    }

    let _ = stop_tx.send(());
    let _ = speaker.join();
}

/// Frames the Responder has read on spk0 for `family`.
fn seen(rt: &tokio::runtime::Runtime, r: &Responder, family: Family) -> u64 {
    let all = rt.block_on(r.counters()).expect("counters");
    all.get(&("spk0".to_owned(), family))
        .map_or(0, |c| c.requests_seen)
}
