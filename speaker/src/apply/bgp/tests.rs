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

fn announcements_for(peers: &[&str]) -> Announcements {
    Announcements {
        bgp_peers: peers.iter().map(|p| (*p).to_owned()).collect(),
        ..Announcements::default()
    }
}

#[test]
fn every_peer_the_plan_selected_gets_a_session_with_its_routes_or_none() {
    let mut unnumbered = crate::plan::tests::peer("unnumbered", 64512, 64513);
    unnumbered.endpoint = PeerEndpoint::Interface("eth0".into());
    let config = Config {
        peers: [
            ("tor".to_owned(), peer()),
            (
                "quiet".to_owned(),
                crate::plan::tests::peer("quiet", 64512, 64600),
            ),
            ("unnumbered".to_owned(), unnumbered),
            (
                "elsewhere".to_owned(),
                crate::plan::tests::peer("elsewhere", 64512, 64700),
            ),
        ]
        .into(),
        ..Config::default()
    };
    let mut announcements = announcements_for(&["quiet", "tor", "unnumbered"]);
    announcements.bgp.insert(
        "tor".into(),
        [
            (
                "203.0.113.5/32".parse::<IpNetwork>().expect("net"),
                RouteAttributes::default(),
            ),
            (
                "2001:db8:5::/64".parse().expect("net"),
                RouteAttributes::default(),
            ),
        ]
        .into(),
    );
    let v4_only = NodeAddresses::from_list(&["198.51.100.11".parse().expect("ip")]);
    let wanted = wanted(&config, &announcements, "node-a", v4_only);
    assert_eq!(
        wanted.sessions.keys().collect::<Vec<_>>(),
        ["quiet", "tor"],
        "not a peer the plan did not select; not one that cannot run"
    );
    assert_eq!(wanted.sessions["tor"].1.len(), 1, "the IPv4 route");
    assert!(
        wanted.sessions["quiet"].1.is_empty(),
        "a session without routes"
    );
    assert_eq!(
        wanted.refused,
        vec![SessionError::Unnumbered {
            peer: "unnumbered".into()
        }]
    );
    assert_eq!(
        wanted.without_next_hop,
        BTreeMap::from([(
            "tor".to_owned(),
            vec!["2001:db8:5::/64".parse::<IpNetwork>().expect("net")]
        )])
    );
}

#[test]
fn a_session_is_stopped_when_its_peer_goes_or_its_spec_changes_not_for_new_routes() {
    let spec = session_spec(&peer(), "node-a", node()).expect("session");
    let mut changed = spec.clone();
    changed.local.hold_time = Duration::from_secs(30);
    let running: BTreeMap<String, SessionSpec> = [
        ("same".to_owned(), spec.clone()),
        ("changed".to_owned(), spec.clone()),
        ("gone".to_owned(), spec.clone()),
    ]
    .into();
    let mut routes = RouteSet::new();
    routes.insert(
        "203.0.113.5/32".parse().expect("net"),
        RouteAttrs {
            next_hop: NextHop::V4(Ipv4Addr::new(198, 51, 100, 11)),
            communities: Default::default(),
            large_communities: Default::default(),
            local_pref: None,
        },
    );
    let wanted: BTreeMap<String, (SessionSpec, RouteSet)> = [
        ("same".to_owned(), (spec.clone(), routes)),
        ("changed".to_owned(), (changed, RouteSet::new())),
        ("new".to_owned(), (spec, RouteSet::new())),
    ]
    .into();
    assert_eq!(to_stop(&running, &wanted), ["changed", "gone"]);
}

#[test]
fn only_the_first_plan_after_a_run_that_left_statuses_is_a_graceful_restart() {
    assert!(follows_restart(true, true));
    assert!(
        !follows_restart(true, false),
        "nothing advertised before: a first start"
    );
    assert!(
        !follows_restart(false, true),
        "a session started later is a plain start"
    );
    assert!(!follows_restart(false, false));
}

#[test]
fn the_restart_bit_is_set_only_on_sessions_with_graceful_restart() {
    let mut with_gr = peer();
    with_gr.graceful_restart = true;
    let spec = session_spec(&with_gr, "node-a", node()).expect("session");
    assert!(
        peer_config(&spec, true, 7)
            .expect("config")
            .session
            .is_restarting
    );
    assert!(
        !peer_config(&spec, false, 7)
            .expect("config")
            .session
            .is_restarting
    );
    let plain = session_spec(&peer(), "node-a", node()).expect("session");
    assert!(
        !peer_config(&plain, true, 7)
            .expect("config")
            .session
            .is_restarting,
        "a peer without graceful restart keeps no stale routes to mark"
    );
}

#[test]
fn the_peer_task_gets_every_field_of_the_spec() {
    let mut p = peer();
    p.password = PeerPassword::Known("s3cret".into());
    p.source_address = Some("198.51.100.50".parse().expect("ip"));
    p.ebgp_multihop = true;
    p.vrf = Some("red".into());
    p.timers.connect_time = Some(Duration::from_secs(3));
    p.timers.keepalive_time = Some(Duration::from_secs(10));
    let spec = session_spec(&p, "node-a", node()).expect("session");
    let config = peer_config(&spec, false, 13).expect("config");
    assert_eq!(config.peer_addr, spec.peer_addr);
    assert_eq!(config.local_addr, spec.source_address);
    assert!(config.md5_key.is_some());
    assert!(config.ebgp_multihop);
    assert_eq!(config.vrf, Some(DeviceName::new("red").expect("name")));
    assert_eq!(config.session.jitter_percent, 13);
    assert_eq!(config.session.connect_retry_initial, Duration::from_secs(3));
    assert_eq!(config.session.keepalive_time, Some(Duration::from_secs(10)));
}

#[test]
fn a_spec_that_cannot_run_is_refused_with_the_field() {
    let mut long_password = peer();
    long_password.password = PeerPassword::Known("x".repeat(100));
    let spec = session_spec(&long_password, "node-a", node()).expect("session");
    let error = peer_config(&spec, false, 0).expect_err("too long for TCP MD5");
    assert!(error.to_string().starts_with("spec.password: "), "{error}");
    let mut bad_vrf = peer();
    bad_vrf.vrf = Some("not a device".into());
    let spec = session_spec(&bad_vrf, "node-a", node()).expect("session");
    let error = peer_config(&spec, false, 0).expect_err("not a device name");
    assert!(error.to_string().starts_with("spec.vrf: "), "{error}");
    assert_eq!(error.reason(), "InvalidVrf");
    let mut short_hold = peer();
    short_hold.timers.hold_time = Some(Duration::from_secs(2));
    let spec = session_spec(&short_hold, "node-a", node()).expect("session");
    let error = peer_config(&spec, false, 0).expect_err("RFC 4271 forbids 2 s");
    assert!(error.to_string().contains("hold time"), "{error}");
}
