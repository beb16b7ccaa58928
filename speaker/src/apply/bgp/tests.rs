//! Sessions and routes from BGPPeers and the plan.

use std::collections::BTreeSet;

use ferrolb_api::config::{PeerAsn, PeerEndpoint, PeerPassword};

use super::*;

fn peer() -> Peer {
    crate::plan::tests::peer("tor", 64512, 64513)
}

fn node() -> NodeAddresses {
    NodeAddresses::from_list(&[
        "198.51.100.11".parse().expect("ip"),
        "2001:db8::11".parse().expect("ip"),
        "198.51.100.99".parse().expect("ip"),
    ])
}

#[test]
fn a_peer_becomes_a_session_with_metallb_defaults() {
    let spec = session_spec(&peer(), "node-a", node()).expect("session");
    assert_eq!(spec.peer_addr, "198.51.100.1:179".parse().expect("addr"));
    assert_eq!(spec.local.local_as, 64512);
    assert_eq!(spec.local.peer_as, PeerAs::Fixed(64513));
    assert_eq!(
        spec.local.router_id,
        Ipv4Addr::new(198, 51, 100, 11),
        "the node's first IPv4"
    );
    assert_eq!(spec.local.hold_time, DEFAULT_HOLD_TIME);
    assert!(spec.local.families.ipv4_unicast && !spec.local.families.ipv6_unicast);
    assert_eq!(spec.local.graceful_restart, None);
    assert_eq!(spec.password, None);
}

#[test]
fn peer_fields_reach_the_session() {
    let mut p = peer();
    p.local_asn = Some(4_200_000_001);
    p.peer_asn = PeerAsn::External;
    p.router_id = Some(Ipv4Addr::new(10, 0, 0, 1));
    p.source_address = Some("198.51.100.50".parse().expect("ip"));
    p.password = PeerPassword::Known("s3cret".into());
    p.graceful_restart = true;
    p.dual_stack_address_family = true;
    p.port = 1179;
    p.timers.hold_time = Some(Duration::from_secs(9));
    p.timers.keepalive_time = Some(Duration::from_secs(2));
    p.ebgp_multihop = true;
    p.vrf = Some("red".into());
    let spec = session_spec(&p, "node-a", node()).expect("session");
    assert_eq!(spec.keepalive_time, Some(Duration::from_secs(2)));
    assert!(spec.ebgp_multihop);
    assert_eq!(spec.vrf.as_deref(), Some("red"));
    assert_eq!(
        spec.local.local_as, 4_200_000_001,
        "localASN replaces myASN on the wire"
    );
    assert_eq!(spec.local.peer_as, PeerAs::External);
    assert_eq!(spec.local.router_id, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(
        spec.next_hops.v4,
        Some(Ipv4Addr::new(198, 51, 100, 50)),
        "sourceAddress is the next hop"
    );
    assert_eq!(spec.password.as_deref(), Some("s3cret"));
    assert_eq!(spec.local.graceful_restart, Some(GRACEFUL_RESTART_TIME));
    assert!(spec.local.families.ipv4_unicast && spec.local.families.ipv6_unicast);
    assert_eq!(spec.peer_addr.port(), 1179);
    assert_eq!(spec.local.hold_time, Duration::from_secs(9));
}

#[test]
fn unusable_peers_are_refused_with_the_field() {
    let mut p = peer();
    p.endpoint = PeerEndpoint::Interface("eth0".into());
    let error = session_spec(&p, "n", node()).expect_err("unnumbered");
    assert!(error.to_string().contains("spec.interface"), "{error}");
    let mut p = peer();
    p.password = PeerPassword::FromSecret {
        name: "bgp-pass".into(),
    };
    let error = session_spec(&p, "n", node()).expect_err("secret missing");
    assert!(error.to_string().contains("spec.passwordSecret"), "{error}");
}

#[test]
fn a_node_without_ipv4_still_has_a_stable_router_id() {
    let v6_only = NodeAddresses::from_list(&["2001:db8::11".parse().expect("ip")]);
    let a = session_spec(&peer(), "node-a", v6_only).expect("session");
    let again = session_spec(&peer(), "node-a", v6_only).expect("session");
    let b = session_spec(&peer(), "node-b", v6_only).expect("session");
    assert_eq!(a.local.router_id, again.local.router_id);
    assert_ne!(a.local.router_id, b.local.router_id);
    assert_ne!(a.local.router_id, Ipv4Addr::UNSPECIFIED);
}

#[test]
fn routes_carry_next_hops_and_communities() {
    let mut planned = BTreeMap::new();
    planned.insert(
        "203.0.113.5/32".parse::<IpNetwork>().expect("net"),
        RouteAttributes {
            communities: BTreeSet::from([
                BgpCommunity::Standard(64512, 7),
                BgpCommunity::Large(1, 2, 3),
            ]),
            local_pref: Some(150),
        },
    );
    planned.insert(
        "2001:db8:5::/64".parse().expect("net"),
        RouteAttributes::default(),
    );
    let (set, skipped) = routes(&planned, node());
    assert!(skipped.is_empty());
    let v4 = set
        .get(&"203.0.113.5/32".parse().expect("net"))
        .expect("v4 route");
    assert_eq!(v4.next_hop, NextHop::V4(Ipv4Addr::new(198, 51, 100, 11)));
    assert_eq!(v4.communities, BTreeSet::from([64512u32 << 16 | 7]));
    assert_eq!(v4.large_communities.len(), 1);
    assert_eq!(v4.local_pref, Some(150));
    let v6 = set
        .get(&"2001:db8:5::/64".parse().expect("net"))
        .expect("v6 route");
    assert!(
        matches!(v6.next_hop, NextHop::V6 { global, .. } if global == "2001:db8::11".parse::<Ipv6Addr>().expect("ip"))
    );

    let v4_only = NodeAddresses::from_list(&["198.51.100.11".parse().expect("ip")]);
    let (set, skipped) = routes(&planned, v4_only);
    assert_eq!(set.len(), 1);
    assert_eq!(
        skipped,
        vec!["2001:db8:5::/64".parse::<IpNetwork>().expect("net")]
    );
}
