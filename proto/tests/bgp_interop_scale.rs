//! Scale against real routers in network namespaces (needs root and the routers; see `bgp_lab`):
//! one session announces 100 000 IPv6 host routes and every IPv4 prefix of 198.51.100.0/24 and
//! 203.0.113.0/24 (1 022: the lab's IPv4 space allows no more), the router must accept them all,
//! then lose them all on withdraw. Prints the times, from the command to the router's count.
//!
//! (100 000 IPv4 routes would need addresses outside the documentation ranges the lab may use.)

mod bgp_lab;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use bgp_lab::{
    Bird, Frr, Gobgp, Lab, Neighbor, ROUTER_AS, ROUTER4, Router, can_run, dial, neighbor, poll,
    session,
};
use ferrolb_proto::bgp::open::Families;
use ferrolb_proto::bgp::packing::{NextHop, RouteAttrs, RouteSet};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

const OUR_AS: u32 = 64512;
const V6_ROUTES: u32 = 100_000;
/// Generous: three routers may run at once on two loaded cores.
const SCALE_DEADLINE: Duration = Duration::from_secs(120);

/// Every prefix of 198.51.100.0/24 and 203.0.113.0/24 (lengths 24..=32), and `V6_ROUTES` /128s
/// in 2001:db8:100::/48.
fn routes() -> RouteSet {
    let node = Ipv4Addr::new(192, 0, 2, 1);
    let attrs4 = RouteAttrs {
        next_hop: NextHop::V4(node),
        communities: [64512 << 16 | 100].into(),
        large_communities: BTreeSet::new(),
        local_pref: None,
    };
    let attrs6 = RouteAttrs {
        next_hop: NextHop::V6 {
            global: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1),
            link_local: None,
        },
        ..attrs4.clone()
    };
    let mut set = RouteSet::new();
    for base in [
        Ipv4Addr::new(198, 51, 100, 0),
        Ipv4Addr::new(203, 0, 113, 0),
    ] {
        for len in 24u8..=32 {
            let step = 1u32 << (32 - len);
            for i in (0..256u32).step_by(step as usize) {
                let net = Ipv4Net::new(Ipv4Addr::from(u32::from(base) + i), len).expect("prefix");
                set.insert(IpNet::V4(net), attrs4.clone());
            }
        }
    }
    let base = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0));
    for i in 0..V6_ROUTES {
        let net = Ipv6Net::new(Ipv6Addr::from(base + u128::from(i)), 128).expect("prefix");
        set.insert(IpNet::V6(net), attrs6.clone());
    }
    set
}

fn announce_and_withdraw_at_scale(lab: &Lab, router: &dyn Router) {
    let node = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let mut peer = lab.node(1).peer(dial(
        session(OUR_AS, ROUTER_AS, Ipv4Addr::new(192, 0, 2, 1)),
        IpAddr::V4(ROUTER4),
        node,
    ));
    peer.wait_up();
    router
        .wait_established(node)
        .expect("router session Established");
    let routes = routes();
    let total = routes.len() as u64;
    assert_eq!(total, 1022 + u64::from(V6_ROUTES));

    let count_reaches = |want: u64, what: &str| {
        let start = Instant::now();
        poll(
            &format!("{} accepts {want} prefixes ({what})", router.name()),
            SCALE_DEADLINE,
            Duration::from_millis(100),
            || match router.accepted(node)? {
                n if n == want => Ok(()),
                n => Err(format!("{n}")),
            },
        );
        start.elapsed()
    };
    peer.set_routes(routes);
    let announced = count_reaches(total, "announce");
    peer.set_routes(RouteSet::new());
    let withdrawn = count_reaches(0, "withdraw");
    assert!(!peer.went_down(), "the session went down");
    println!(
        "{}: {total} prefixes accepted in {announced:.2?}, withdrawn in {withdrawn:.2?}",
        router.name()
    );
}

fn our_node() -> Vec<Neighbor> {
    vec![neighbor(
        "192.0.2.1".parse().expect("address"),
        OUR_AS,
        Families::DUAL,
    )]
}

#[test]
fn frr_accepts_and_drops_a_hundred_thousand_routes() {
    if !can_run(&["ip", Frr::ZEBRA, Frr::BGPD]) {
        return;
    }
    let mut lab = Lab::new(1);
    let frr = lab.frr(&our_node());
    announce_and_withdraw_at_scale(&lab, &frr);
}

#[test]
fn bird_accepts_and_drops_a_hundred_thousand_routes() {
    if !can_run(&["ip", Bird::BIRD]) {
        return;
    }
    let mut lab = Lab::new(1);
    let bird = lab.bird(&our_node());
    announce_and_withdraw_at_scale(&lab, &bird);
}

#[test]
fn gobgp_accepts_and_drops_a_hundred_thousand_routes() {
    if !can_run(&["ip", Gobgp::GOBGPD, "gobgp"]) {
        return;
    }
    let mut lab = Lab::new(1);
    let gobgp = lab.gobgp(&our_node());
    announce_and_withdraw_at_scale(&lab, &gobgp);
}
