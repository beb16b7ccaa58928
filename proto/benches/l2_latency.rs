//! ARP response latency of the userspace responder beside the kernel's own, measured
//! on the wire by `arping` in a client namespace (needs root and arping).
//!
//! ```text
//!   [fl2b-<pid>-cli] cli0 ──veth── spk0 [fl2b-<pid>-spk]
//!                                   192.0.2.2  answered by the kernel
//!                                   192.0.2.10 answered by the Responder
//! ```
//! `cargo bench -p ferrolb-proto --bench l2_latency` prints p50/p90/p99 RTT for both
//! targets in the same run. Without root or arping it prints why and exits 0.
// Entering the namespace needs setns(2), which has no safe wrapper in our dependencies.
#![allow(unsafe_code)]

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use ferrolb_proto::l2::{Responder, ResponderConfig};

const REQUESTS: usize = 2000;

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Namespaces deleted on drop, also on panic.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

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
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let is_root = unsafe { libc::geteuid() } == 0;
    let has_arping = Command::new("sh")
        .args(["-c", "command -v arping"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !is_root || !has_arping {
        println!("SKIPPED l2_latency: needs root and arping (apt-get install -y arping)");
        return;
    }
    let prefix = format!("fl2b-{}-", std::process::id());
    let (cli, spk) = (format!("{prefix}cli"), format!("{prefix}spk"));
    let mut namespaces = Namespaces(Vec::new());
    for ns in [&cli, &spk] {
        ip(&["netns", "add", ns]);
        namespaces.0.push(ns.clone());
    }
    ip(&[
        "link", "add", "cli0", "netns", &cli, "type", "veth", "peer", "name", "spk0", "netns", &spk,
    ]);
    ip(&["-n", &cli, "addr", "add", "192.0.2.1/24", "dev", "cli0"]);
    ip(&["-n", &spk, "addr", "add", "192.0.2.2/24", "dev", "spk0"]);
    ip(&["-n", &cli, "link", "set", "cli0", "up"]);
    ip(&["-n", &spk, "link", "set", "spk0", "up"]);

    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let path = format!("/run/netns/{spk}");
    let speaker = std::thread::spawn(move || {
        let ns = File::open(&path).expect("namespace file");
        // SAFETY: `ns` is an open namespace file; setns(2) moves only this thread.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
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
            ready_tx.send(()).expect("ready");
            let _ = stop_rx.await;
        });
    });
    ready_rx.recv().expect("responder ready");

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
    let _ = stop_tx.send(());
    let _ = speaker.join();
}
