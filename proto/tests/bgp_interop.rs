//! FerroLB's BGP peer driver against real routers in network namespaces (needs root and the
//! routers; see `bgp_lab`). Without them each test prints why and passes, unless CI=true.
//!
//! One router daemon per test serves every sub-case, each on its own session (its own source
//! address on node 1): eBGP with a 2-octet AS, iBGP, eBGP with a 4-octet AS, and eBGP over IPv6
//! transport; node 2 adds a second eBGP session for the ECMP case. The router's own RIB must show
//! each prefix with our next hop, AS path, communities, large communities and (iBGP) LOCAL_PREF,
//! and lose it on withdraw.

mod bgp_lab;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bgp_lab::{
    Bird, DEADLINE, Frr, Gobgp, Lab, Neighbor, Peer, ROUTER_AS, ROUTER4, ROUTER6, RibPath, Router,
    can_run, dial, neighbor, poll, session,
};
use ferrolb_proto::bgp::open::Families;
use ferrolb_proto::bgp::packing::{LargeCommunity, NextHop, RouteAttrs, RouteSet};
use ipnet::IpNet;

/// Our eBGP AS with 2 octets, and one that needs 4 octets (RFC 6793).
const AS2: u32 = 64512;
const AS4: u32 = 4_200_000_001;

const V4_ONLY: Families = Families {
    ipv4_unicast: true,
    ipv6_unicast: false,
};
const V6_ONLY: Families = Families {
    ipv4_unicast: false,
    ipv6_unicast: true,
};

/// The prefix both nodes announce, for ECMP.
const ECMP4: &str = "203.0.113.100/32";
const ECMP6: &str = "2001:db8:ff::100/128";

/// One session of the lab and what it announces.
struct Case {
    what: &'static str,
    node: usize,
    local: IpAddr,
    local_as: u32,
    families: Families,
    router_id: Ipv4Addr,
    /// (prefix, attributes we send)
    routes: Vec<(&'static str, RouteAttrs)>,
}

impl Case {
    fn neighbor(&self) -> Neighbor {
        neighbor(self.local, self.local_as, self.families)
    }

    fn is_ibgp(&self) -> bool {
        self.local_as == ROUTER_AS
    }

    fn route_set(&self) -> RouteSet {
        self.routes
            .iter()
            .map(|(p, a)| (p.parse::<IpNet>().expect("prefix"), a.clone()))
            .collect()
    }

    /// What the router must hold for a prefix of this case.
    fn expected(&self, attrs: &RouteAttrs) -> RibPath {
        let next_hop = match attrs.next_hop {
            NextHop::V4(a) => IpAddr::V4(a),
            NextHop::V6 { global, .. } => IpAddr::V6(global),
        };
        let community = |c: &u32| format!("{}:{}", c >> 16, c & 0xffff);
        let large =
            |l: &LargeCommunity| format!("{}:{}:{}", l.global_admin, l.local_data1, l.local_data2);
        RibPath {
            next_hop,
            as_path: if self.is_ibgp() {
                Vec::new()
            } else {
                vec![self.local_as]
            },
            communities: attrs.communities.iter().map(community).collect(),
            large_communities: attrs.large_communities.iter().map(large).collect(),
            local_pref: attrs.local_pref.filter(|_| self.is_ibgp()),
        }
    }
}

fn attrs(next_hop: IpAddr, communities: &[(u16, u16)], large: &[(u32, u32, u32)]) -> RouteAttrs {
    RouteAttrs {
        next_hop: match next_hop {
            IpAddr::V4(a) => NextHop::V4(a),
            IpAddr::V6(global) => NextHop::V6 {
                global,
                link_local: None,
            },
        },
        communities: communities
            .iter()
            .map(|(h, l)| u32::from(*h) << 16 | u32::from(*l))
            .collect(),
        large_communities: large
            .iter()
            .map(|&(global_admin, local_data1, local_data2)| LargeCommunity {
                global_admin,
                local_data1,
                local_data2,
            })
            .collect::<BTreeSet<_>>(),
        local_pref: None,
    }
}

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse::<Ipv4Addr>().expect("IPv4"))
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().expect("IPv6"))
}

/// The sessions every router test runs; node 1 gets the extra source addresses they need.
fn cases() -> Vec<Case> {
    let n1 = v4("192.0.2.1");
    let n1_6 = v6("2001:db8:1::1");
    let ibgp = v4("192.0.2.11");
    let ibgp6 = v6("2001:db8:1::11");
    let asn4 = v4("192.0.2.21");
    let n2 = v4("192.0.2.2");
    let n2_6 = v6("2001:db8:1::2");
    let ibgp_attrs = |nh| RouteAttrs {
        local_pref: Some(250),
        ..attrs(nh, &[(64600, 7)], &[(ROUTER_AS, 9, 9)])
    };
    vec![
        Case {
            what: "eBGP, 2-octet AS, IPv4 transport, both families",
            node: 1,
            local: n1,
            local_as: AS2,
            families: Families::DUAL,
            router_id: Ipv4Addr::new(192, 0, 2, 1),
            routes: vec![
                (
                    "203.0.113.1/32",
                    attrs(n1, &[(64512, 100), (64512, 200)], &[(AS2, 1, 2)]),
                ),
                (
                    "2001:db8:ff::1/128",
                    attrs(n1_6, &[(64512, 100)], &[(AS2, 3, 4)]),
                ),
                (ECMP4, attrs(n1, &[], &[])),
                (ECMP6, attrs(n1_6, &[], &[])),
            ],
        },
        Case {
            what: "iBGP, LOCAL_PREF 250, both families",
            node: 1,
            local: ibgp,
            local_as: ROUTER_AS,
            families: Families::DUAL,
            router_id: Ipv4Addr::new(192, 0, 2, 11),
            routes: vec![
                ("203.0.113.2/32", ibgp_attrs(ibgp)),
                ("2001:db8:ff::2/128", ibgp_attrs(ibgp6)),
            ],
        },
        Case {
            what: "eBGP, 4-octet AS",
            node: 1,
            local: asn4,
            local_as: AS4,
            families: V4_ONLY,
            router_id: Ipv4Addr::new(192, 0, 2, 21),
            routes: vec![("203.0.113.3/32", attrs(asn4, &[(65000, 1)], &[(AS4, 7, 8)]))],
        },
        Case {
            what: "eBGP over IPv6 transport",
            node: 1,
            local: n1_6,
            local_as: AS2,
            families: V6_ONLY,
            router_id: Ipv4Addr::new(192, 0, 2, 31),
            routes: vec![(
                "2001:db8:ff::4/128",
                attrs(n1_6, &[(64512, 4)], &[(AS2, 5, 6)]),
            )],
        },
        Case {
            what: "eBGP from node 2 (ECMP)",
            node: 2,
            local: n2,
            local_as: AS2,
            families: Families::DUAL,
            router_id: Ipv4Addr::new(192, 0, 2, 2),
            routes: vec![(ECMP4, attrs(n2, &[], &[])), (ECMP6, attrs(n2_6, &[], &[]))],
        },
    ]
}

/// A lab with two nodes and the extra source addresses the cases use.
fn lab() -> Lab {
    let lab = Lab::new(2);
    for cidr in ["192.0.2.11/24", "192.0.2.21/24", "2001:db8:1::11/64"] {
        lab.add_addr(1, cidr);
    }
    lab
}

/// Brings every case's session up, checks the router's RIB, withdraws, checks again.
/// `between` runs router-specific checks while every route is in place (the peers in case order).
fn announce_check_withdraw(
    lab: &Lab,
    router: &dyn Router,
    cases: &[Case],
    between: impl Fn(&[Peer]),
) {
    let mut peers: Vec<Peer> = cases
        .iter()
        .map(|c| {
            let remote = if c.local.is_ipv4() {
                IpAddr::V4(ROUTER4)
            } else {
                IpAddr::V6(ROUTER6)
            };
            lab.node(c.node).peer(dial(
                session(c.local_as, ROUTER_AS, c.router_id),
                remote,
                c.local,
            ))
        })
        .collect();
    for (case, peer) in cases.iter().zip(&mut peers) {
        let negotiated = peer.wait_up();
        assert_eq!(negotiated.peer_as, ROUTER_AS, "{}", case.what);
        assert_eq!(negotiated.is_ibgp, case.is_ibgp(), "{}", case.what);
        assert!(negotiated.four_octet_as, "{}", case.what);
        assert_eq!(negotiated.families, case.families, "{}", case.what);
        router
            .wait_established(case.local)
            .expect("router session Established");
    }
    for (case, peer) in cases.iter().zip(&peers) {
        peer.set_routes(case.route_set());
    }
    // Every prefix, with the paths of every case that announces it.
    let mut prefixes: Vec<&str> = cases
        .iter()
        .flat_map(|c| c.routes.iter().map(|r| r.0))
        .collect();
    prefixes.sort();
    prefixes.dedup();
    for prefix in &prefixes {
        let want: Vec<RibPath> = cases
            .iter()
            .flat_map(|c| {
                c.routes
                    .iter()
                    .filter(|r| r.0 == *prefix)
                    .map(|r| c.expected(&r.1))
            })
            .collect();
        router
            .wait_paths(prefix, want)
            .expect("router RIB as expected");
    }
    between(&peers);
    for peer in &peers {
        peer.set_routes(RouteSet::new());
    }
    for prefix in &prefixes {
        router
            .wait_paths(prefix, Vec::new())
            .expect("router RIB as expected");
    }
    for (case, peer) in cases.iter().zip(&mut peers) {
        assert!(!peer.went_down(), "{}: session went down", case.what);
    }
}

fn neighbors(cases: &[Case]) -> Vec<Neighbor> {
    cases.iter().map(Case::neighbor).collect()
}

#[test]
fn frr_learns_our_routes_on_every_kind_of_session_and_installs_ecmp_in_the_kernel() {
    if !can_run(&["ip", Frr::ZEBRA, Frr::BGPD]) {
        return;
    }
    let mut lab = lab();
    let cases = cases();
    let frr = lab.frr(&neighbors(&cases));
    announce_check_withdraw(&lab, &frr, &cases, |peers| {
        // Both nodes' next hops in the router's kernel table (zebra, `maximum-paths`).
        for (prefix, hops) in [
            (ECMP4, ["192.0.2.1", "192.0.2.2"]),
            (ECMP6, ["2001:db8:1::1", "2001:db8:1::2"]),
        ] {
            poll(
                &format!("kernel ECMP route for {prefix}"),
                DEADLINE,
                std::time::Duration::from_millis(200),
                || {
                    let table = lab.router_kernel_route(prefix);
                    let is_ecmp = hops
                        .iter()
                        .all(|h| table.contains(&format!("nexthop via {h} ")));
                    if is_ecmp { Ok(()) } else { Err(table) }
                },
            );
        }
        // A ROUTE-REFRESH (RFC 2918) from FRR makes node 1 send its table again.
        let node1 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let stats = |key: &str| {
            let v = frr
                .json(&format!("show bgp neighbors {node1} json"))
                .expect("neighbor");
            v[node1.to_string()]["messageStats"][key]
                .as_u64()
                .unwrap_or(0)
        };
        let (refreshes, updates) = (stats("routeRefreshSent"), stats("updatesRecv"));
        frr.vty_enable(&format!("clear bgp ipv4 unicast {node1} soft in"))
            .expect("clear soft in");
        poll(
            "FRR sent ROUTE-REFRESH and got our routes again",
            DEADLINE,
            std::time::Duration::from_millis(100),
            || {
                let now = (stats("routeRefreshSent"), stats("updatesRecv"));
                if now.0 > refreshes && now.1 > updates {
                    Ok(())
                } else {
                    Err(format!(
                        "(refreshes, updates) {now:?}, before {:?}",
                        (refreshes, updates)
                    ))
                }
            },
        );
        // Node 2 withdraws: one next hop is left.
        let ecmp_peer = peers.last().expect("node 2's peer");
        ecmp_peer.set_routes(RouteSet::new());
        poll(
            "kernel route for the ECMP prefix with node 1 only",
            DEADLINE,
            std::time::Duration::from_millis(200),
            || {
                let table = lab.router_kernel_route(ECMP4);
                if table.contains("via 192.0.2.1 ") && !table.contains("192.0.2.2") {
                    Ok(())
                } else {
                    Err(table)
                }
            },
        );
    });
    poll(
        "withdrawn ECMP route leaves the kernel",
        DEADLINE,
        std::time::Duration::from_millis(200),
        || {
            let table = lab.router_kernel_route(ECMP4);
            if table.is_empty() { Ok(()) } else { Err(table) }
        },
    );
}

#[test]
fn bird_learns_our_routes_on_every_kind_of_session() {
    if !can_run(&["ip", Bird::BIRD]) {
        return;
    }
    let mut lab = lab();
    let cases = cases();
    let bird = lab.bird(&neighbors(&cases));
    announce_check_withdraw(&lab, &bird, &cases, |_| {});
}

#[test]
fn gobgp_learns_our_routes_on_every_kind_of_session() {
    if !can_run(&["ip", Gobgp::GOBGPD, "gobgp"]) {
        return;
    }
    let mut lab = lab();
    let cases = cases();
    let gobgp = lab.gobgp(&neighbors(&cases));
    announce_check_withdraw(&lab, &gobgp, &cases, |_| {});
}
