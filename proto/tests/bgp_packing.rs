//! Update packing: what we encode decodes back (with netgauze) into exactly the intended routes,
//! few UPDATEs carry many prefixes, and no message exceeds the negotiated limit.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::BytesMut;
use ferrolb_proto::bgp::open::Families;
use ferrolb_proto::bgp::packet::{Received, decode, split_frame};
use ferrolb_proto::bgp::packing::{
    LargeCommunity, NextHop, PeerEncoding, RouteAttrs, RouteSet, SkipReason, end_of_rib, pack,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netgauze_bgp_pkt::path_attribute::{AsPath, MpReach, MpUnreach, Origin, PathAttributeValue};
use netgauze_iana::address_family::AddressType;
use proptest::prelude::*;

const LOCAL_AS: u32 = 64512;
const NH4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const NH6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 10);
const LL6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 10);

fn ebgp() -> PeerEncoding {
    PeerEncoding {
        local_as: LOCAL_AS,
        is_ibgp: false,
        four_octet_as: true,
        max_message_len: 4096,
        families: Families::DUAL,
    }
}

fn attrs4() -> RouteAttrs {
    RouteAttrs {
        next_hop: NextHop::V4(NH4),
        communities: BTreeSet::new(),
        large_communities: BTreeSet::new(),
        local_pref: None,
    }
}

fn attrs6(link_local: Option<Ipv6Addr>) -> RouteAttrs {
    RouteAttrs {
        next_hop: NextHop::V6 {
            global: NH6,
            link_local,
        },
        ..attrs4()
    }
}

fn v4(i: u32, len: u8) -> IpNet {
    // 203.0.113.0/24 and upwards in the 100.64.0.0/10 space for large sets.
    let base = if i < 256 {
        u32::from(Ipv4Addr::new(203, 0, 113, 0))
    } else {
        0x6440_0000
    };
    IpNet::V4(
        Ipv4Net::new(Ipv4Addr::from(base + i), len)
            .map(|n| n.trunc())
            .unwrap_or_default(),
    )
}

fn v6(i: u32, len: u8) -> IpNet {
    let base = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0));
    IpNet::V6(
        Ipv6Net::new(Ipv6Addr::from(base + u128::from(i)), len)
            .map(|n| n.trunc())
            .unwrap_or_default(),
    )
}

/// What a peer learns from our UPDATEs: the routes and, per route, the AS path it saw.
#[derive(Debug, Default)]
struct PeerView {
    routes: RouteSet,
    as_paths: BTreeSet<(Vec<u32>, Option<Vec<u32>>)>,
    updates: usize,
    end_of_rib: Vec<AddressType>,
}

/// Feeds encoded messages through our framer and netgauze's decoder into a peer's view.
fn receive(view: &mut PeerView, messages: &[bytes::Bytes], enc: &PeerEncoding) {
    let mut buf = BytesMut::new();
    for m in messages {
        assert!(
            m.len() <= enc.max_message_len,
            "message of {} bytes over the limit",
            m.len()
        );
        buf.extend_from_slice(m);
    }
    while let Some(frame) = split_frame(&mut buf, enc.max_message_len).expect("valid header") {
        let Received::Update(update) = decode(&frame, enc.four_octet_as).expect("decodes") else {
            panic!("not an UPDATE");
        };
        view.updates += 1;
        if let Some(afi) = update.end_of_rib() {
            view.end_of_rib.push(afi);
            continue;
        }
        for w in update.withdraw_routes() {
            view.routes.remove(&IpNet::V4(w.network().address()));
        }
        let mut attrs = attrs4();
        let mut as_path = Vec::new();
        let mut as4_path = None;
        let mut origin = None;
        let mut reach6 = Vec::new();
        for a in update.path_attributes() {
            match a.value() {
                PathAttributeValue::Origin(o) => origin = Some(*o),
                PathAttributeValue::AsPath(p) => as_path = Vec::<u32>::from(p.clone()),
                PathAttributeValue::As4Path(p) => {
                    as4_path = Some(
                        p.segments()
                            .iter()
                            .flat_map(|s| s.as_numbers().to_vec())
                            .collect(),
                    )
                }
                PathAttributeValue::NextHop(nh) => attrs.next_hop = NextHop::V4(nh.next_hop()),
                PathAttributeValue::LocalPreference(lp) => attrs.local_pref = Some(lp.metric()),
                PathAttributeValue::Communities(c) => {
                    attrs.communities = c.communities().iter().map(|c| c.value()).collect()
                }
                PathAttributeValue::LargeCommunities(c) => {
                    attrs.large_communities = c
                        .communities()
                        .iter()
                        .map(|c| LargeCommunity {
                            global_admin: c.global_admin(),
                            local_data1: c.local_data1(),
                            local_data2: c.local_data2(),
                        })
                        .collect()
                }
                PathAttributeValue::MpReach(MpReach::Ipv6Unicast {
                    next_hop_global,
                    next_hop_local,
                    nlri,
                }) => {
                    attrs.next_hop = NextHop::V6 {
                        global: *next_hop_global,
                        link_local: *next_hop_local,
                    };
                    reach6 = nlri
                        .iter()
                        .map(|n| IpNet::V6(n.network().address()))
                        .collect();
                }
                PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast { nlri }) => {
                    for n in nlri.iter() {
                        view.routes.remove(&IpNet::V6(n.network().address()));
                    }
                }
                other => panic!("unexpected attribute {other:?}"),
            }
        }
        let announced: Vec<IpNet> = update
            .nlri()
            .iter()
            .map(|n| IpNet::V4(n.network().address()))
            .chain(reach6)
            .collect();
        if !announced.is_empty() {
            assert_eq!(origin, Some(Origin::IGP));
            view.as_paths.insert((as_path, as4_path));
        }
        for p in announced {
            view.routes.insert(p, attrs.clone());
        }
    }
    assert!(buf.is_empty(), "trailing bytes");
}

#[test]
fn ipv4_routes_with_communities_decode_back_exactly() {
    let mut a = attrs4();
    a.communities = [0xfde8_0001, 0xfde8_0002].into();
    a.large_communities = [LargeCommunity {
        global_admin: 64512,
        local_data1: 1,
        local_data2: 2,
    }]
    .into();
    let mut desired = RouteSet::new();
    desired.insert(v4(1, 32), a.clone());
    desired.insert(v4(2, 32), a);
    desired.insert(v4(3, 32), attrs4());
    let packed = pack(&ebgp(), &desired, &RouteSet::new()).expect("packs");
    assert!(packed.skipped.is_empty());
    assert_eq!(packed.messages.len(), 2, "one UPDATE per attribute set");
    let mut view = PeerView::default();
    receive(&mut view, &packed.messages, &ebgp());
    assert_eq!(view.routes, desired);
    assert_eq!(view.as_paths, [(vec![LOCAL_AS], None)].into());
}

#[test]
fn ibgp_routes_carry_an_empty_as_path_and_a_local_preference() {
    let enc = PeerEncoding {
        is_ibgp: true,
        ..ebgp()
    };
    let mut preferred = attrs4();
    preferred.local_pref = Some(200);
    let mut desired = RouteSet::new();
    desired.insert(v4(1, 32), preferred);
    desired.insert(v4(2, 32), attrs4());
    let packed = pack(&enc, &desired, &RouteSet::new()).expect("packs");
    let mut view = PeerView::default();
    receive(&mut view, &packed.messages, &enc);
    let mut expected = desired.clone();
    if let Some(r) = expected.get_mut(&v4(2, 32)) {
        r.local_pref = Some(100);
    }
    assert_eq!(view.routes, expected);
    assert_eq!(view.as_paths, [(vec![], None)].into());
}

#[test]
fn ebgp_local_preference_is_never_sent() {
    let mut a = attrs4();
    a.local_pref = Some(300);
    let desired: RouteSet = [(v4(1, 32), a)].into();
    let packed = pack(&ebgp(), &desired, &RouteSet::new()).expect("packs");
    let mut view = PeerView::default();
    receive(&mut view, &packed.messages, &ebgp());
    assert_eq!(view.routes.get(&v4(1, 32)).and_then(|r| r.local_pref), None);
}

#[test]
fn a_two_octet_peer_sees_as_trans_and_our_four_octet_as_in_as4_path() {
    let enc = PeerEncoding {
        local_as: 4_200_000_001,
        four_octet_as: false,
        ..ebgp()
    };
    let desired: RouteSet = [(v4(1, 32), attrs4())].into();
    let packed = pack(&enc, &desired, &RouteSet::new()).expect("packs");
    let mut view = PeerView::default();
    receive(&mut view, &packed.messages, &enc);
    assert_eq!(view.routes, desired);
    assert_eq!(
        view.as_paths,
        [(vec![23456], Some(vec![4_200_000_001]))].into()
    );

    let enc = PeerEncoding {
        four_octet_as: false,
        ..ebgp()
    };
    let packed = pack(&enc, &desired, &RouteSet::new()).expect("packs");
    let mut view = PeerView::default();
    receive(&mut view, &packed.messages, &enc);
    assert_eq!(
        view.as_paths,
        [(vec![LOCAL_AS], None)].into(),
        "a 2-octet AS needs no AS4_PATH"
    );
}

#[test]
fn ipv6_routes_go_in_mp_reach_with_global_and_link_local_next_hops() {
    let desired: RouteSet = [
        (v6(1, 128), attrs6(Some(LL6))),
        (v6(2, 128), attrs6(Some(LL6))),
        (v6(0x100, 120), attrs6(None)),
    ]
    .into();
    let packed = pack(&ebgp(), &desired, &RouteSet::new()).expect("packs");
    assert_eq!(packed.messages.len(), 2);
    let mut view = PeerView::default();
    receive(&mut view, &packed.messages, &ebgp());
    assert_eq!(view.routes, desired);
}

#[test]
fn only_the_difference_is_sent_withdrawals_first() {
    let mut changed = attrs4();
    changed.communities = [1].into();
    let advertised: RouteSet = [
        (v4(1, 32), attrs4()),
        (v4(2, 32), attrs4()),
        (v4(3, 32), attrs4()),
        (v6(1, 128), attrs6(None)),
        (v6(2, 128), attrs6(None)),
    ]
    .into();
    let desired: RouteSet = [
        (v4(1, 32), attrs4()),
        (v4(2, 32), changed),
        (v6(1, 128), attrs6(None)),
        (v6(3, 128), attrs6(None)),
    ]
    .into();
    let packed = pack(&ebgp(), &desired, &advertised).expect("packs");
    // v4 withdraw, v6 withdraw, v4 changed, v6 new.
    assert_eq!(packed.messages.len(), 4);
    let mut view = PeerView {
        routes: advertised.clone(),
        ..PeerView::default()
    };
    receive(&mut view, &packed.messages, &ebgp());
    assert_eq!(view.routes, desired);
    assert!(
        pack(&ebgp(), &desired, &desired)
            .expect("packs")
            .messages
            .is_empty()
    );
}

#[test]
fn end_of_rib_markers_are_recognised_for_both_families() {
    let markers = end_of_rib(&ebgp()).expect("encodes");
    let mut view = PeerView::default();
    receive(&mut view, &markers, &ebgp());
    assert_eq!(
        view.end_of_rib,
        vec![AddressType::Ipv4Unicast, AddressType::Ipv6Unicast]
    );
    assert_eq!(markers[0].len(), 23);
}

#[test]
fn routes_the_peer_cannot_take_are_skipped_with_a_reason() {
    let enc = PeerEncoding {
        families: Families {
            ipv4_unicast: true,
            ipv6_unicast: false,
        },
        ..ebgp()
    };
    let desired: RouteSet = [
        (v4(1, 32), attrs4()),
        (v6(1, 128), attrs6(None)),
        (v4(2, 32), attrs6(None)),
        (
            IpNet::V4(Ipv4Net::new(Ipv4Addr::new(224, 0, 0, 1), 32).unwrap_or_default()),
            attrs4(),
        ),
    ]
    .into();
    let packed = pack(&enc, &desired, &RouteSet::new()).expect("packs");
    let reasons: Vec<SkipReason> = packed.skipped.iter().map(|(_, r)| *r).collect();
    assert_eq!(
        reasons,
        vec![
            SkipReason::NextHopFamilyMismatch,
            SkipReason::NotUnicast,
            SkipReason::FamilyNotNegotiated
        ]
    );
    assert_eq!(packed.messages.len(), 1);
}

/// 100k host routes of one family, all with the same attributes.
fn host_routes(n: u32, is_v6: bool) -> RouteSet {
    (0..n)
        .map(|i| {
            if is_v6 {
                (v6(i, 128), attrs6(Some(LL6)))
            } else {
                (v4(i + 256, 32), attrs4())
            }
        })
        .collect()
}

fn pack_many(enc: &PeerEncoding, routes: &RouteSet) -> usize {
    let packed = pack(enc, routes, &RouteSet::new()).expect("packs");
    assert!(
        packed
            .messages
            .iter()
            .all(|m| m.len() <= enc.max_message_len)
    );
    let mut view = PeerView::default();
    receive(&mut view, &packed.messages, enc);
    assert_eq!(&view.routes, routes);
    let withdrawn = pack(enc, &RouteSet::new(), routes).expect("packs");
    assert!(
        withdrawn
            .messages
            .iter()
            .all(|m| m.len() <= enc.max_message_len)
    );
    receive(&mut view, &withdrawn.messages, enc);
    assert!(view.routes.is_empty());
    eprintln!(
        "{} routes, limit {}: {} UPDATEs ({} bytes) to announce, {} to withdraw",
        routes.len(),
        enc.max_message_len,
        packed.messages.len(),
        packed.messages.iter().map(|m| m.len()).sum::<usize>(),
        withdrawn.messages.len()
    );
    packed.messages.len()
}

#[test]
fn hundred_thousand_ipv4_host_routes_fit_in_few_updates() {
    let routes = host_routes(100_000, false);
    // 5 bytes per /32 under 4096: at most ~4050/5 = 810 per message.
    assert!(pack_many(&ebgp(), &routes) <= 125);
    let extended = PeerEncoding {
        max_message_len: 65535,
        ..ebgp()
    };
    assert!(pack_many(&extended, &routes) <= 8);
}

#[test]
fn hundred_thousand_ipv6_host_routes_fit_in_few_updates() {
    let routes = host_routes(100_000, true);
    // 17 bytes per /128: about 236 per 4096-byte message (GoBGP sends one per UPDATE).
    assert!(pack_many(&ebgp(), &routes) <= 430);
    let extended = PeerEncoding {
        max_message_len: 65535,
        ..ebgp()
    };
    assert!(pack_many(&extended, &routes) <= 27);
}

#[test]
fn many_communities_use_an_extended_length_attribute() {
    let mut a = attrs4();
    a.communities = (0..200u32).collect();
    a.large_communities = (0..40u32)
        .map(|i| LargeCommunity {
            global_admin: 64512,
            local_data1: i,
            local_data2: i,
        })
        .collect();
    let desired: RouteSet = [(v4(1, 32), a)].into();
    let packed = pack(&ebgp(), &desired, &RouteSet::new()).expect("packs");
    let mut view = PeerView::default();
    receive(&mut view, &packed.messages, &ebgp());
    assert_eq!(view.routes, desired);
}

fn arb_attrs(is_v6: bool) -> impl Strategy<Value = RouteAttrs> {
    (
        0u8..3,
        proptest::collection::btree_set(0u32..4, 0..3),
        any::<bool>(),
        proptest::option::of(0u32..3),
    )
        .prop_map(move |(nh, communities, has_large, local_pref)| RouteAttrs {
            next_hop: if is_v6 {
                NextHop::V6 {
                    global: NH6,
                    link_local: (nh == 1).then_some(LL6),
                }
            } else {
                NextHop::V4(Ipv4Addr::new(192, 0, 2, nh))
            },
            communities,
            large_communities: if has_large {
                [LargeCommunity {
                    global_admin: 1,
                    local_data1: 2,
                    local_data2: 3,
                }]
                .into()
            } else {
                BTreeSet::new()
            },
            local_pref,
        })
}

fn arb_routes() -> impl Strategy<Value = RouteSet> {
    let route = prop_oneof![
        ((0u32..64), (24u8..=32), arb_attrs(false)).prop_map(|(i, l, a)| (v4(i, l), a)),
        ((0u32..64), (100u8..=128), arb_attrs(true)).prop_map(|(i, l, a)| (v6(i, l), a)),
    ];
    proptest::collection::vec(route, 0..80).prop_map(|v| v.into_iter().collect())
}

proptest! {
    /// From any advertised set, the UPDATEs bring the peer exactly to any desired set, within the
    /// limit, for iBGP and eBGP, with and without 4-octet AS numbers.
    #[test]
    fn updates_turn_any_advertised_set_into_the_desired_set(
        advertised in arb_routes(),
        desired in arb_routes(),
        is_ibgp in any::<bool>(),
        four_octet_as in any::<bool>(),
        is_small in any::<bool>(),
    ) {
        let enc = PeerEncoding {
            is_ibgp,
            four_octet_as,
            // A tiny limit forces splitting even for small sets.
            max_message_len: if is_small { 160 } else { 4096 },
            ..ebgp()
        };
        let mut view = PeerView::default();
        receive(&mut view, &pack(&enc, &advertised, &RouteSet::new()).expect("packs").messages, &enc);
        let packed = pack(&enc, &desired, &advertised).expect("packs");
        receive(&mut view, &packed.messages, &enc);
        let mut expected = desired.clone();
        for attrs in expected.values_mut() {
            attrs.local_pref = if is_ibgp { Some(attrs.local_pref.unwrap_or(100)) } else { None };
        }
        prop_assert_eq!(view.routes, expected);
    }
}

#[test]
fn as_path_type_is_what_netgauze_reads() {
    // Guards the test decoder: netgauze turns AS_PATH into a flat list of AS numbers.
    let p = AsPath::As4PathSegments(vec![].into());
    assert!(Vec::<u32>::from(p).is_empty());
}
