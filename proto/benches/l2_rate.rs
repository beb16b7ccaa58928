//! Answer rate of the userspace responder beside the kernel's, for ARP and NDP: a
//! flooder in the client namespace sends questions as fast as one packet socket can for
//! one second per target; replies are counted on the speaker's interface
//! (`/proc/net/dev` tx packets). Needs root; without it prints why and exits 0.
//!
//! ```text
//!   [fl-l2r-<pid>-0-cli] cli0 ──veth── spk0 [fl-l2r-<pid>-0-spk]
//!   flooder (PacketSocket)          192.0.2.2, 2001:db8::2    answered by the kernel
//!                                   192.0.2.10, 2001:db8::10  answered by the Responder
//! ```
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ferrolb_netlab::counters::link_packets;
use ferrolb_netlab::{Netlab, NsRuntime, can_run, netns};
use ferrolb_proto::l2::counters::Family;
use ferrolb_proto::l2::ethernet::{ETHERTYPE_IPV6, EthernetHeader};
use ferrolb_proto::l2::ndp::NeighborSolicitation;
use ferrolb_proto::l2::socket::PacketSocket;
use ferrolb_proto::l2::{MacAddr, Responder, ResponderConfig, addr, arp};

const FLOOD: Duration = Duration::from_secs(1);

/// Transmitted packets of `dev` in namespace `ns`.
fn tx_packets(ns: &str, dev: &str) -> u64 {
    link_packets(ns, dev).expect("/proc/net/dev").1
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
    if !can_run(&[]) {
        return;
    }
    let mut lab = Netlab::new("l2r").expect("lab");
    for role in ["cli", "spk"] {
        lab.add_namespace(role).expect("namespace");
    }
    lab.link(
        ("cli", "cli0", &["192.0.2.1/24", "2001:db8::1/64"]),
        ("spk", "spk0", &["192.0.2.2/24", "2001:db8::2/64"]),
    )
    .expect("veth");
    let cli_mac: MacAddr = lab.mac("cli", "cli0").expect("MAC").parse().expect("a MAC");
    let cli_index = lab.ifindex("cli", "cli0").expect("index");
    let spk = lab.ns("spk");
    let speaker = NsRuntime::start(&spk).expect("speaker runtime");
    let responder = speaker.block_on(async {
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
        r
    });
    std::thread::sleep(Duration::from_millis(200));

    netns::enter(&lab.ns("cli")).expect("client namespace");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("flooding each target for {FLOOD:?} from one packet socket");
    println!(
        "{:<36} {:>10} {:>10} {:>10} {:>8}",
        "target", "sent/s", "answered/s", "seen", "answered%"
    );
    for (name, target) in targets() {
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
}

/// The four targets: the kernel's and the Responder's address, for ARP and NDP.
fn targets() -> [(&'static str, IpAddr); 4] {
    [
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
    ]
}

/// (requests seen, replies sent) of the responder on spk0 for `family`.
fn counters(rt: &tokio::runtime::Runtime, r: &Responder, family: Family) -> (u64, u64) {
    let all = rt.block_on(r.counters()).expect("counters");
    all.get(&("spk0".to_owned(), family))
        .map_or((0, 0), |c| (c.requests_seen, c.replies_sent))
}
