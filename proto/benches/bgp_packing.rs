//! Update packing figures: time and message count to pack 100k host routes per family and
//! message limit. Stable Rust, default harness, so it runs as a test of the bench target:
//! `cargo test -p ferrolb-proto --release --bench bgp_packing -- --nocapture`.
//! It prints figures rather than asserting on them.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use ferrolb_proto::bgp::open::Families;
use ferrolb_proto::bgp::packing::{NextHop, PeerEncoding, RouteAttrs, RouteSet, pack};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

fn routes(n: u32, is_v6: bool) -> RouteSet {
    let attrs = |next_hop| RouteAttrs {
        next_hop,
        communities: BTreeSet::new(),
        large_communities: BTreeSet::new(),
        local_pref: None,
    };
    let base6 = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0));
    (0..n)
        .filter_map(|i| {
            if is_v6 {
                let net = Ipv6Net::new(Ipv6Addr::from(base6 + u128::from(i)), 128).ok()?;
                let nh = NextHop::V6 {
                    global: Ipv6Addr::from(base6 + 1),
                    link_local: None,
                };
                Some((IpNet::V6(net), attrs(nh)))
            } else {
                let net = Ipv4Net::new(Ipv4Addr::from(0x6440_0000 + i), 32).ok()?;
                Some((
                    IpNet::V4(net),
                    attrs(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))),
                ))
            }
        })
        .collect()
}

#[test]
fn packing_100k_host_routes() {
    for is_v6 in [false, true] {
        let desired = routes(100_000, is_v6);
        for limit in [4096, 65535] {
            let enc = PeerEncoding {
                local_as: 64512,
                is_ibgp: false,
                four_octet_as: true,
                max_message_len: limit,
                families: Families::DUAL,
            };
            let started = Instant::now();
            let packed = pack(&enc, &desired, &RouteSet::new()).expect("packs");
            let took = started.elapsed();
            let bytes: usize = packed.messages.iter().map(|m| m.len()).sum();
            println!(
                "{} 100k host routes, limit {limit}: {} UPDATEs, {bytes} bytes, packed in {took:?}",
                if is_v6 { "IPv6" } else { "IPv4" },
                packed.messages.len(),
            );
        }
    }
}
