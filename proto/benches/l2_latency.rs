//! ARP response latency of the userspace responder beside the kernel's own, measured
//! on the wire by `arping` in a client namespace (needs root and arping).
//!
//! ```text
//!   [fl-l2b-<pid>-0-cli] cli0 ──veth── spk0 [fl-l2b-<pid>-0-spk]
//!                                   192.0.2.2  answered by the kernel
//!                                   192.0.2.10 answered by the Responder
//! ```
//! `cargo bench -p ferrolb-proto --bench l2_latency` prints p50/p90/p99 RTT for both
//! targets in the same run. Without root or arping it prints why and exits 0 (the lab is
//! `ferrolb-netlab`'s).
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Duration;

use ferrolb_netlab::{Netlab, NsRuntime, can_run};
use ferrolb_proto::l2::{Responder, ResponderConfig};

const REQUESTS: usize = 2000;

/// RTTs in microseconds of `REQUESTS` arping probes to `target`.
fn arping_rtts(cli: &str, target: &str) -> Vec<f64> {
    let count = REQUESTS.to_string();
    let out = Command::new("ip")
        .args([
            "netns", "exec", cli, "arping", "-c", &count, "-W", "0.0005", "-I", "cli0", target,
        ])
        .output()
        .expect("arping runs");
    let mut rtts: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let t = l.split("time=").nth(1)?;
            let mut parts = t.split_whitespace();
            let value: f64 = parts.next()?.parse().ok()?;
            match parts.next()? {
                "usec" => Some(value),
                "msec" => Some(value * 1e3),
                "sec" => Some(value * 1e6),
                _ => None,
            }
        })
        .collect();
    rtts.sort_by(f64::total_cmp);
    rtts
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

fn main() {
    if !can_run(&["arping"]) {
        return;
    }
    let mut lab = Netlab::new("l2b").expect("lab");
    for role in ["cli", "spk"] {
        lab.add_namespace(role).expect("namespace");
    }
    lab.link(
        ("cli", "cli0", &["192.0.2.1/24"]),
        ("spk", "spk0", &["192.0.2.2/24"]),
    )
    .expect("veth");
    let cli = lab.ns("cli");
    let speaker = NsRuntime::start(&lab.ns("spk")).expect("speaker runtime");
    let _responder = speaker.block_on(async {
        let (r, _task) = Responder::start(ResponderConfig {
            announce_repeats: 1,
            announce_interval: Duration::from_millis(1),
            ..ResponderConfig::default()
        })
        .await
        .expect("responder");
        r.announce(
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
            ["spk0".to_owned()],
        )
        .await
        .expect("announce");
        r
    });

    println!("{REQUESTS} arping requests per target, RTT in microseconds");
    println!(
        "{:<34} {:>6} {:>8} {:>8} {:>8}",
        "responder", "n", "p50", "p90", "p99"
    );
    for (name, target) in [
        ("kernel (192.0.2.2)", "192.0.2.2"),
        ("ferrolb Responder (192.0.2.10)", "192.0.2.10"),
    ] {
        let rtts = arping_rtts(&cli, target);
        println!(
            "{name:<34} {:>6} {:>8.1} {:>8.1} {:>8.1}",
            rtts.len(),
            pct(&rtts, 0.5),
            pct(&rtts, 0.9),
            pct(&rtts, 0.99)
        );
    }
}
