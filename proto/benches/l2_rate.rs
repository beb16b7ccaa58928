//! Answer rate of the userspace responder beside the kernel's, for ARP and NDP: a
//! flooder in the client namespace sends questions as fast as one packet socket can for
//! one second per target; replies are counted on the speaker's interface
//! (`/proc/net/dev` tx packets). Needs root; without it prints why and exits 0.
//!
//! ```text
//!   [fl2r-<pid>-cli] cli0 ──veth── spk0 [fl2r-<pid>-spk]
//!   flooder (PacketSocket)          192.0.2.2, 2001:db8::2    answered by the kernel
//!                                   192.0.2.10, 2001:db8::10  answered by the Responder
//! ```
// Entering a namespace needs setns(2), which has no safe wrapper in our dependencies.
#![allow(unsafe_code)]

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferrolb_proto::l2::counters::Family;
use ferrolb_proto::l2::ethernet::{ETHERTYPE_IPV6, EthernetHeader};
use ferrolb_proto::l2::ndp::NeighborSolicitation;
use ferrolb_proto::l2::socket::PacketSocket;
use ferrolb_proto::l2::{MacAddr, Responder, ResponderConfig, addr, arp};

const FLOOD: Duration = Duration::from_secs(1);

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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

fn enter(ns: &str) {
    let file = File::open(format!("/run/netns/{ns}")).expect("namespace file");
    // SAFETY: `file` is an open namespace file; setns(2) moves only the calling thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// Transmitted packets of `dev` in namespace `ns`, from its /proc/net/dev.
fn tx_packets(ns: &str, dev: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/dev"])
        .output()
        .expect("cat runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            let (name, rest) = l.split_once(':')?;
            if name.trim() != dev {
                return None;
            }
            rest.split_whitespace().nth(9)?.parse().ok()
        })
        .expect("device in /proc/net/dev")
}

fn mac_of(ns: &str, dev: &str) -> MacAddr {
    ip(&["-n", ns, "-br", "link", "show", dev])
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .expect("a MAC")
}

fn ifindex_of(ns: &str, dev: &str) -> u32 {
    ip(&["-n", ns, "-o", "link", "show", dev])
        .split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .expect("an index")
}

fn who_has(target: IpAddr, mac: MacAddr) -> (Family, Vec<u8>) {
    match target {
        IpAddr::V4(v4) => {
            let mut req = arp::gratuitous_request(v4, mac);
            req.sender_ip = Ipv4Addr::new(192, 0, 2, 1);
            (Family::V4, req.to_bytes())
        }
        IpAddr::V6(v6) => {
            let ns = NeighborSolicitation {
                eth: EthernetHeader {
                    dst: addr::solicited_node_mac(v6),
                    src: mac,
                    ethertype: ETHERTYPE_IPV6,
                },
                src: "2001:db8::1".parse().expect("literal"),
                dst: addr::solicited_node(v6),
                target: v6,
                source_lla: Some(mac),
            };
            (Family::V6, ns.to_bytes())
        }
    }
}

fn main() {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIPPED l2_rate: needs root");
        return;
    }
    let prefix = format!("fl2r-{}-", std::process::id());
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
    ip(&[
        "-n",
        &cli,
        "addr",
        "add",
        "2001:db8::1/64",
        "dev",
        "cli0",
        "nodad",
    ]);
    ip(&["-n", &spk, "addr", "add", "192.0.2.2/24", "dev", "spk0"]);
    ip(&[
        "-n",
        &spk,
        "addr",
        "add",
        "2001:db8::2/64",
        "dev",
        "spk0",
        "nodad",
    ]);
    ip(&["-n", &cli, "link", "set", "cli0", "up"]);
    ip(&["-n", &spk, "link", "set", "spk0", "up"]);
    let cli_mac = mac_of(&cli, "cli0");
    let cli_index = ifindex_of(&cli, "cli0");

    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let spk_ns = spk.clone();
    let speaker = std::thread::spawn(move || {
        enter(&spk_ns);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let config = ResponderConfig {
                announce_repeats: 1,
                announce_interval: Duration::from_millis(1),
                ..ResponderConfig::default()
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
    std::thread::sleep(Duration::from_millis(200));

    enter(&cli);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("flooding each target for {FLOOD:?} from one packet socket");
    println!(
        "{:<36} {:>10} {:>10} {:>10} {:>8}",
        "target", "sent/s", "answered/s", "seen", "answered%"
    );
    let targets: [(&str, IpAddr); 4] = [
        (
            "kernel ARP 192.0.2.2",
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        ),
        (
            "Responder ARP 192.0.2.10",
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
        ),
        (
            "kernel NDP 2001:db8::2",
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
        ),
        (
            "Responder NDP 2001:db8::10",
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10)),
        ),
    ];
    for (name, target) in targets {
        let (family, frame) = who_has(target, cli_mac);
        let seen_before = counters(&rt, &responder, family).0;
        let tx_before = tx_packets(&spk, "spk0");
        let sent = rt.block_on(async {
            let socket = PacketSocket::open(cli_index, family).expect("flooder socket");
            let start = Instant::now();
            let mut sent = 0u64;
            while start.elapsed() < FLOOD {
                for _ in 0..64 {
                    if socket.send(&frame).is_ok() {
                        sent += 1;
                    }
                }
            }
            sent
        });
        std::thread::sleep(Duration::from_millis(300));
        let answered = tx_packets(&spk, "spk0") - tx_before;
        let seen = counters(&rt, &responder, family).0 - seen_before;
        let secs = FLOOD.as_secs_f64();
        println!(
            "{name:<36} {:>10.0} {:>10.0} {:>10} {:>7.1}%",
            sent as f64 / secs,
            answered as f64 / secs,
            if name.starts_with("Responder") {
                seen.to_string()
            } else {
                "-".into()
            },
            100.0 * answered as f64 / sent.max(1) as f64
        );
    }
    let _ = stop_tx.send(());
    let _ = speaker.join();
}

/// (requests seen, replies sent) of the responder on spk0 for `family`.
fn counters(rt: &tokio::runtime::Runtime, r: &Responder, family: Family) -> (u64, u64) {
    let all = rt.block_on(r.counters()).expect("counters");
    all.get(&("spk0".to_owned(), family))
        .map_or((0, 0), |c| (c.requests_seen, c.replies_sent))
}
