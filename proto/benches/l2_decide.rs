//! Cost of `decide` per frame (parse, validate, build the reply), without sockets.
//!
//! `cargo bench -p ferrolb-proto --bench l2_decide` prints ns/frame and frames/s for an
//! answered ARP request, an answered neighbour solicitation (checksum verified and
//! computed), a solicitation for an unknown target, and a runt.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ferrolb_proto::l2::addr;
use ferrolb_proto::l2::arp;
use ferrolb_proto::l2::ethernet::{ETHERTYPE_IPV6, EthernetHeader};
use ferrolb_proto::l2::ndp::NeighborSolicitation;
use ferrolb_proto::l2::{MacAddr, Verdict, decide};

const OUR_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const ASKER: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xaa]);

fn ns_for(target: Ipv6Addr) -> Vec<u8> {
    NeighborSolicitation {
        eth: EthernetHeader {
            dst: addr::solicited_node_mac(target),
            src: ASKER,
            ethertype: ETHERTYPE_IPV6,
        },
        src: "2001:db8::1".parse().expect("literal"),
        dst: addr::solicited_node(target),
        target,
        source_lla: Some(ASKER),
    }
    .to_bytes()
}

/// Runs `decide` on `frame` for about `budget`; returns ns per call.
fn measure(frame: &[u8], announced: &BTreeSet<IpAddr>, budget: Duration) -> f64 {
    let mut calls = 0u64;
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..1000 {
            black_box(decide(black_box(frame), OUR_MAC, announced));
        }
        calls += 1000;
    }
    start.elapsed().as_nanos() as f64 / calls as f64
}

fn main() {
    // 1000 announced addresses of each family: a large node.
    let mut announced = BTreeSet::new();
    for i in 0..1000u32 {
        announced.insert(IpAddr::V4(Ipv4Addr::from(
            0xc000_0200 + (i % 256) + (i / 256) * 0x1_0000,
        )));
        announced.insert(IpAddr::V6(Ipv6Addr::from(
            0x2001_0db8_u128 << 96 | u128::from(i),
        )));
    }
    let vip4 = Ipv4Addr::new(192, 0, 2, 10);
    let vip6 = Ipv6Addr::from(0x2001_0db8_u128 << 96 | 10);
    let mut who_has = arp::gratuitous_request(vip4, ASKER);
    who_has.sender_ip = Ipv4Addr::new(192, 0, 2, 1);
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("ARP request, answered", who_has.to_bytes(), true),
        ("NS, answered", ns_for(vip6), true),
        (
            "NS, unknown target",
            ns_for("2001:db8:ffff::1".parse().expect("literal")),
            false,
        ),
        ("runt (10 octets)", vec![0; 10], false),
    ];
    let budget = Duration::from_millis(500);
    println!("{:<28} {:>10} {:>14}", "case", "ns/frame", "frames/s");
    for (name, frame, answered) in cases {
        assert_eq!(
            matches!(decide(&frame, OUR_MAC, &announced), Verdict::Reply(_)),
            answered,
            "{name}"
        );
        let ns = measure(&frame, &announced, budget);
        println!("{name:<28} {ns:>10.1} {:>14.0}", 1e9 / ns);
    }
}
