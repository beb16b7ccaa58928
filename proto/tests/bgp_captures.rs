//! Messages captured from real routers (FRR 8.4, BIRD 2.0.12, GoBGP 3.10 on Debian bookworm),
//! sent to a FerroLB test client over a veth pair in the lab addresses. Each must decode through
//! our framer and netgauze into what the router was configured to send.
//!
//! Captured with a scratch client that sent our OPEN and a KEEPALIVE and printed every frame.
//! Router setup: AS 64513, id 192.0.2.2, peer 192.0.2.1 AS 64512; FRR exports 203.0.113.0/24 and
//! 2001:db8:100::/48 with community 64513:100 and large community 64513:1:2; BIRD exports
//! 198.51.100.0/24 and 2001:db8:200::/48; GoBGP 203.0.113.128/25 (community 64513:7) and
//! 2001:db8:300::/48.

use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::BytesMut;
use ferrolb_proto::bgp::open::{
    Capabilities, Families, GracefulRestart, LocalSpeaker, Open, PeerAs, negotiate,
};
use ferrolb_proto::bgp::packet::{Received, decode, split_frame};
use netgauze_bgp_pkt::path_attribute::{MpReach, PathAttributeValue};
use netgauze_iana::address_family::AddressType;

const FRR_OPEN: &str = "ffffffffffffffffffffffffffffffff00700104fc0100b4c00002025302060104000100010206010400020001020280000202020002024600020641040000fc0102020600020a450800010101000201010205490301720002044002c0780210470e0001018000000000020180000000";
const FRR_UPDATE4: &str = "ffffffffffffffffffffffffffffffff004d0200000032400101005002000602010000fc01400304c000020280040400000000c00804fc010064c0200c0000fc01000000010000000218cb0071";
const FRR_UPDATE6: &str = "ffffffffffffffffffffffffffffffff0062020000004b900e001c0002011000000000000000000000ffffc0000202003020010db80100400101005002000602010000fc0180040400000000c00804fc010064c0200c0000fc010000000100000002";
const BIRD_OPEN: &str = "ffffffffffffffffffffffffffffffff003b0104fc0100f0c00002021e021c01040001000101040002000102004002007841040000fc0146004700";
const BIRD_UPDATE4: &str = "ffffffffffffffffffffffffffffffff002f02000000144001010040020602010000fc01400304c000020218c63364";
const BIRD_EOR4: &str = "ffffffffffffffffffffffffffffffff00170200000000";
const BIRD_UPDATE6: &str = "ffffffffffffffffffffffffffffffff0054020000003d900e002c0002012020010db8000000000000000000000002fe8000000000000040f37ffffe36bb2f003020010db802004001010040020602010000fc01";
const BIRD_EOR6: &str = "ffffffffffffffffffffffffffffffff001d0200000006800f03000201";
const GOBGP_OPEN: &str = "ffffffffffffffffffffffffffffffff00410104fc010009c00002022402220200490402766d0001040001000101040002000141040000fc010506000100010002";
const GOBGP_UPDATE4: &str = "ffffffffffffffffffffffffffffffff0037020000001b4001010240020602010000fc01400304c0000202c00804fc01000719cb007180";
const GOBGP_UPDATE6: &str = "ffffffffffffffffffffffffffffffff0043020000002c4001010240020602010000fc01800e1c0002011000000000000000000000ffffc0000202003020010db80300";

fn bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Frames one captured message with our framer and decodes it.
fn receive(hex: &str) -> Received {
    let mut buf = BytesMut::from(&bytes(hex)[..]);
    let frame = split_frame(&mut buf, 4096)
        .expect("valid header")
        .expect("whole message");
    assert!(buf.is_empty(), "one message per capture");
    decode(&frame, true).expect("decodes")
}

fn open(hex: &str) -> Open {
    match receive(hex) {
        Received::Open(o) => o,
        other => panic!("not an OPEN: {other:?}"),
    }
}

fn router_open(hold_time_secs: u16, caps: Capabilities) -> Open {
    Open {
        version: 4,
        my_as: 64513,
        hold_time_secs,
        bgp_id: Ipv4Addr::new(192, 0, 2, 2),
        capabilities: caps,
    }
}

/// (IPv4 NLRI, MP_REACH IPv6 NLRI, End-of-RIB family) of an UPDATE, as text.
fn update_summary(hex: &str) -> (Vec<String>, Vec<String>, Option<AddressType>) {
    let Received::Update(u) = receive(hex) else {
        panic!("not an UPDATE")
    };
    let v4 = u
        .nlri()
        .iter()
        .map(|n| n.network().address().to_string())
        .collect();
    let v6 = u
        .path_attributes()
        .iter()
        .filter_map(|a| match a.value() {
            PathAttributeValue::MpReach(MpReach::Ipv6Unicast { nlri, .. }) => Some(
                nlri.iter()
                    .map(|n| n.network().address().to_string())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    (v4, v6, u.end_of_rib())
}

#[test]
fn frr_open_and_updates_decode() {
    let expected = router_open(
        180,
        Capabilities {
            families: Families::DUAL,
            four_octet_as: Some(64513),
            route_refresh: true,
            graceful_restart: Some(GracefulRestart {
                restart_time: Duration::from_secs(120),
                is_restarting: true,
                is_notification: true,
                families: Families::default(),
                forwarding: Families::default(),
            }),
            extended_message: true,
        },
    );
    assert_eq!(open(FRR_OPEN), expected);
    assert_eq!(
        update_summary(FRR_UPDATE4),
        (vec!["203.0.113.0/24".into()], vec![], None)
    );
    assert_eq!(
        update_summary(FRR_UPDATE6),
        (vec![], vec!["2001:db8:100::/48".into()], None)
    );
}

#[test]
fn bird_open_updates_and_end_of_rib_decode() {
    let expected = router_open(
        240,
        Capabilities {
            families: Families::DUAL,
            four_octet_as: Some(64513),
            route_refresh: true,
            graceful_restart: Some(GracefulRestart {
                restart_time: Duration::from_secs(120),
                is_restarting: false,
                is_notification: false,
                families: Families::default(),
                forwarding: Families::default(),
            }),
            extended_message: false,
        },
    );
    assert_eq!(open(BIRD_OPEN), expected);
    assert_eq!(
        update_summary(BIRD_UPDATE4),
        (vec!["198.51.100.0/24".into()], vec![], None)
    );
    assert_eq!(
        update_summary(BIRD_UPDATE6),
        (vec![], vec!["2001:db8:200::/48".into()], None)
    );
    assert_eq!(
        update_summary(BIRD_EOR4),
        (vec![], vec![], Some(AddressType::Ipv4Unicast))
    );
    assert_eq!(
        update_summary(BIRD_EOR6),
        (vec![], vec![], Some(AddressType::Ipv6Unicast))
    );
}

#[test]
fn gobgp_open_and_updates_decode() {
    let expected = router_open(
        9,
        Capabilities {
            families: Families::DUAL,
            four_octet_as: Some(64513),
            route_refresh: true,
            graceful_restart: None,
            extended_message: false,
        },
    );
    assert_eq!(open(GOBGP_OPEN), expected);
    assert_eq!(
        update_summary(GOBGP_UPDATE4),
        (vec!["203.0.113.128/25".into()], vec![], None)
    );
    assert_eq!(
        update_summary(GOBGP_UPDATE6),
        (vec![], vec!["2001:db8:300::/48".into()], None)
    );
}

#[test]
fn each_router_open_negotiates_with_our_speaker() {
    let local = LocalSpeaker {
        local_as: 64512,
        peer_as: PeerAs::Fixed(64513),
        router_id: Ipv4Addr::new(192, 0, 2, 1),
        hold_time: Duration::from_secs(90),
        families: Families::DUAL,
        graceful_restart: None,
        extended_message: true,
    };
    let holds: Vec<(u64, bool)> = [FRR_OPEN, BIRD_OPEN, GOBGP_OPEN]
        .iter()
        .map(|o| negotiate(&local, &open(o)).expect("acceptable"))
        .map(|n| (n.hold_time.as_secs(), n.extended_message))
        .collect();
    assert_eq!(holds, vec![(90, true), (90, false), (9, false)]);
}
