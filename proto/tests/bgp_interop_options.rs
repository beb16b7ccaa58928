//! Session options of MetalLB's `BGPPeer` against FRR in network namespaces (needs root and
//! FRR; see `bgp_lab`):
//! - `ebgpMultiHop`: single-hop eBGP leaves with TTL 1, so its SYNs die at a router one hop
//!   away (the hop counts them); with multihop the same session comes up;
//! - `vrf`: a node whose uplink is enslaved to a VRF reaches FRR only when the session is bound
//!   to the VRF device.

mod bgp_lab;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bgp_lab::{
    DEADLINE, Frr, Lab, Neighbor, ROUTER_AS, ROUTER4, RibPath, Router, can_run, dial, must,
    neighbor, poll, run, session,
};
use ferrolb_proto::bgp::driver::{Command, DeviceName, Event, PeerConfig};
use ferrolb_proto::bgp::open::Families;
use ferrolb_proto::bgp::packing::{NextHop, RouteAttrs, RouteSet};

const OUR_AS: u32 = 64512;

fn one_route(prefix: &str, next_hop: Ipv4Addr) -> RouteSet {
    let attrs = RouteAttrs {
        next_hop: NextHop::V4(next_hop),
        communities: BTreeSet::new(),
        large_communities: BTreeSet::new(),
        local_pref: None,
    };
    [(prefix.parse().expect("prefix"), attrs)].into()
}

/// Asserts the driver reported no Established session so far.
fn assert_never_up(peer: &mut bgp_lab::Peer) {
    while let Ok(ev) = peer.events.try_recv() {
        assert!(
            !matches!(ev, Event::Up(_)),
            "{}: came up: {ev:?}",
            peer.name
        );
    }
}

#[test]
fn single_hop_ebgp_dies_at_the_first_router_and_multihop_reaches_frr_behind_it() {
    if !can_run(&["ip", Frr::ZEBRA, Frr::BGPD]) {
        return;
    }
    let mut lab = Lab::new(1);
    let far = lab.add_far_node(1);
    let local = Ipv4Addr::new(198, 51, 100, 1);
    let frr = lab.frr(&[Neighbor {
        ebgp_multihop: Some(2),
        ..neighbor(IpAddr::V4(local), OUR_AS, Families::DUAL)
    }]);
    let config = dial(
        session(OUR_AS, ROUTER_AS, local),
        IpAddr::V4(ROUTER4),
        IpAddr::V4(local),
    );
    assert_eq!(config.ttl(), 1, "eBGP without multihop");

    // TTL 1: node 1 forwards nothing of it; every SYN is an IP header error there.
    let hop = lab.ns("n1");
    let before = lab.snmp(&hop, "Ip", "InHdrErrors");
    let mut single_hop = lab.node(far).peer(config);
    let died = poll(
        "SYNs with TTL 1 die at the hop",
        DEADLINE,
        Duration::from_millis(50),
        || match lab.snmp(&hop, "Ip", "InHdrErrors") - before {
            n if n >= 3 => Ok(n),
            n => Err(format!("{n} header errors")),
        },
    );
    assert!(frr.session_state(IpAddr::V4(local)).is_err());
    assert_never_up(&mut single_hop);
    single_hop
        .cmd
        .blocking_send(Command::Stop)
        .expect("peer task alive");
    println!("single-hop eBGP: {died} packets died at the hop (TTL 1)");

    // ebgpMultiHop: TTL 255, the session comes up across the hop and carries routes.
    let config = PeerConfig {
        ebgp_multihop: true,
        ..config
    };
    assert_eq!(config.ttl(), 255);
    let mut multihop = lab.node(far).peer(config);
    multihop.wait_up();
    frr.wait_established(IpAddr::V4(local))
        .expect("router session Established");
    multihop.set_routes(one_route("203.0.113.60/32", local));
    frr.wait_paths(
        "203.0.113.60/32",
        vec![RibPath {
            next_hop: IpAddr::V4(local),
            as_path: vec![OUR_AS],
            communities: Vec::new(),
            large_communities: Vec::new(),
            local_pref: None,
        }],
    )
    .expect("router RIB as expected");
}

/// Moves node 1's uplink into VRF `vrf-x` (table 10); false when the kernel has no VRF support
/// (CONFIG_NET_VRF), as on some CI VMs.
fn enslave_uplink_to_a_vrf(ns: &str) -> bool {
    let add = run(&[
        "ip", "-n", ns, "link", "add", "vrf-x", "type", "vrf", "table", "10",
    ]);
    if !add.status.success() {
        let why = String::from_utf8_lossy(&add.stderr);
        assert!(why.contains("Unknown device type"), "{why}");
        return false;
    }
    must(&["ip", "-n", ns, "link", "set", "vrf-x", "up"]);
    must(&["ip", "-n", ns, "link", "set", "eth0", "master", "vrf-x"]);
    let router = ROUTER4.to_string();
    let main = run(&["ip", "-n", ns, "route", "get", &router]);
    assert!(!main.status.success(), "no route to FRR outside the VRF");
    must(&["ip", "-n", ns, "route", "get", &router, "vrf", "vrf-x"]);
    true
}

/// With VRF support: node 1's uplink is in VRF `vrf-x`; a session bound to `vrf-x` comes up,
/// an unbound one cannot route to FRR. Without it (the kernel has no VRF driver) the same
/// SO_BINDTODEVICE is shown with plain devices: bound to `lo` no dial gets out, bound to
/// `eth0` the session comes up.
#[test]
fn a_session_bound_to_its_vrf_device_reaches_frr_and_one_bound_elsewhere_cannot() {
    if !can_run(&["ip", Frr::ZEBRA, Frr::BGPD]) {
        return;
    }
    let mut lab = Lab::new(1);
    let node = Ipv4Addr::new(192, 0, 2, 1);
    let ns = lab.ns("n1");
    let has_vrf = enslave_uplink_to_a_vrf(&ns);
    let frr = lab.frr(&[neighbor(IpAddr::V4(node), OUR_AS, Families::DUAL)]);
    let config = dial(
        session(OUR_AS, ROUTER_AS, node),
        IpAddr::V4(ROUTER4),
        IpAddr::V4(node),
    );
    let device = |name: &str| Some(DeviceName::new(name).expect("device name"));
    let (wrong, right) = if has_vrf {
        (None, device("vrf-x"))
    } else {
        println!("no VRF driver in this kernel: binding to plain devices instead");
        (device("lo"), device("eth0"))
    };

    // Wrong device (or none): every dial fails; watch several retries.
    let mut wrong = lab.node(1).peer(PeerConfig {
        vrf: wrong,
        ..config
    });
    let window = Instant::now() + Duration::from_secs(3);
    while Instant::now() < window {
        assert!(frr.session_state(IpAddr::V4(node)).is_err());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_never_up(&mut wrong);
    wrong
        .cmd
        .blocking_send(Command::Stop)
        .expect("peer task alive");

    let mut bound = lab.node(1).peer(PeerConfig {
        vrf: right,
        ..config
    });
    bound.wait_up();
    frr.wait_established(IpAddr::V4(node))
        .expect("router session Established");
    bound.set_routes(one_route("203.0.113.61/32", node));
    frr.wait_paths(
        "203.0.113.61/32",
        vec![RibPath {
            next_hop: IpAddr::V4(node),
            as_path: vec![OUR_AS],
            communities: Vec::new(),
            large_communities: Vec::new(),
            local_pref: None,
        }],
    )
    .expect("router RIB as expected");
}
