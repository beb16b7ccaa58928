//! Properties of the codecs over generated input: no byte string makes a parser or
//! `decide` panic, and every frame we build parses back to what was built.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::addr::{self, MacAddr};
use super::arp::{self, ArpFrame, ArpOp};
use super::decide::decide;
use super::ethernet::{ETHERTYPE_IPV6, EthernetHeader};
use super::ndp::{self, NeighborAdvertisement, NeighborSolicitation};
use super::verdict::Verdict;

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}

/// A unicast MAC that is not zero (what a real asker has).
fn unicast_mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(|mut m| {
        m[0] &= 0xfe;
        m[5] |= 0x01;
        MacAddr(m)
    })
}

fn v4() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

/// A unicast IPv6 address (first octet not 0xff).
fn unicast_v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(|mut o| {
        if o[0] == 0xff {
            o[0] = 0x20;
        }
        Ipv6Addr::from(o)
    })
}

/// An NS frame template that `decide` might answer, so mutations start near valid input.
fn valid_ns() -> impl Strategy<Value = Vec<u8>> {
    (unicast_mac(), unicast_v6(), unicast_v6()).prop_map(|(m, src, target)| {
        NeighborSolicitation {
            eth: EthernetHeader {
                dst: addr::solicited_node_mac(target),
                src: m,
                ethertype: ETHERTYPE_IPV6,
            },
            src,
            dst: addr::solicited_node(target),
            target,
            source_lla: Some(m),
        }
        .to_bytes()
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_any_parser(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        let _ = ArpFrame::parse(&bytes);
        let _ = ArpFrame::parse_request(&bytes);
        let _ = NeighborSolicitation::parse(&bytes);
        let _ = NeighborAdvertisement::parse(&bytes);
        let announced: BTreeSet<IpAddr> = BTreeSet::new();
        let _ = decide(&bytes, MacAddr([2, 0, 0, 0, 0, 1]), &announced);
    }

    #[test]
    fn mutated_solicitations_never_panic(
        frame in valid_ns(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let mut frame = frame;
        for (at, value) in edits {
            let len = frame.len();
            if let Some(b) = frame.get_mut(at % len) {
                *b = value;
            }
        }
        frame.truncate(cut % (frame.len() + 1));
        let _ = NeighborSolicitation::parse(&frame);
        let _ = decide(&frame, MacAddr([2, 0, 0, 0, 0, 1]), &BTreeSet::<IpAddr>::new());
    }

    #[test]
    fn arp_frames_round_trip(
        dst in mac(), src in mac(), op in any::<u16>(),
        sender_mac in mac(), sender_ip in v4(), target_mac in mac(), target_ip in v4(),
    ) {
        let op = match op { 1 => ArpOp::Request, 2 => ArpOp::Reply, o => ArpOp::Other(o) };
        let frame = ArpFrame {
            eth: EthernetHeader { dst, src, ethertype: super::ethernet::ETHERTYPE_ARP },
            op, sender_mac, sender_ip, target_mac, target_ip,
        };
        prop_assert_eq!(ArpFrame::parse(&frame.to_bytes()), Ok(frame));
    }

    #[test]
    fn gratuitous_arp_of_both_forms_round_trips(ip in v4(), our in unicast_mac()) {
        for g in [arp::gratuitous_request(ip, our), arp::gratuitous_reply(ip, our)] {
            prop_assert_eq!(ArpFrame::parse(&g.to_bytes()), Ok(g));
        }
    }

    #[test]
    fn solicitations_round_trip(frame in valid_ns()) {
        let ns = NeighborSolicitation::parse(&frame);
        prop_assert!(ns.is_ok(), "{:?}", ns);
        prop_assert_eq!(ns.map(|n| n.to_bytes()), Ok(frame));
    }

    #[test]
    fn advertisements_we_build_round_trip(
        frame in valid_ns(), our in unicast_mac(), vip in unicast_v6(),
    ) {
        let ns = NeighborSolicitation::parse(&frame);
        prop_assert!(ns.is_ok());
        if let Ok(ns) = ns {
            let na = ndp::advertisement_for(&ns, our);
            prop_assert_eq!(NeighborAdvertisement::parse(&na.to_bytes()), Some(na));
        }
        let u = ndp::unsolicited_advertisement(vip, our);
        prop_assert_eq!(NeighborAdvertisement::parse(&u.to_bytes()), Some(u));
    }

    #[test]
    fn an_announced_target_is_always_answered_with_our_mac(frame in valid_ns(), our in unicast_mac()) {
        let ns = NeighborSolicitation::parse(&frame);
        prop_assert!(ns.is_ok());
        if let Ok(ns) = ns {
            prop_assume!(ns.eth.src != our);
            let announced: BTreeSet<IpAddr> = [IpAddr::V6(ns.target)].into_iter().collect();
            match decide(&frame, our, &announced) {
                Verdict::Reply(bytes) => {
                    let na = NeighborAdvertisement::parse(&bytes);
                    prop_assert_eq!(na.and_then(|n| n.target_lla), Some(our));
                }
                Verdict::Drop(reason) => prop_assert!(false, "dropped: {:?}", reason),
            }
        }
    }
}
