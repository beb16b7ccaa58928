//! Rules of `arp.rs`, one per test, on hand-written frames.

use super::*;

const ASKER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);

/// A broadcast "who has 192.0.2.10? tell 192.0.2.1" written octet by octet.
fn request_bytes() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&ASKER_MAC);
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&ASKER_MAC);
    f.extend_from_slice(&[192, 0, 2, 1]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[192, 0, 2, 10]);
    f
}

#[test]
fn well_formed_request_parses_to_its_fields() {
    let arp = ArpFrame::parse_request(&request_bytes()).expect("valid request");
    assert_eq!(arp.op, ArpOp::Request);
    assert_eq!(arp.eth.dst, MacAddr::BROADCAST);
    assert_eq!(arp.sender_mac, MacAddr(ASKER_MAC));
    assert_eq!(arp.sender_ip, Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(arp.target_ip, Ipv4Addr::new(192, 0, 2, 10));
}

#[test]
fn request_serialises_back_to_the_same_octets() {
    let bytes = request_bytes();
    let arp = ArpFrame::parse(&bytes).expect("valid");
    assert_eq!(arp.to_bytes(), bytes);
}

#[test]
fn ethernet_padding_after_the_arp_body_is_ignored() {
    let mut bytes = request_bytes();
    bytes.resize(60, 0);
    assert!(ArpFrame::parse_request(&bytes).is_ok());
}

#[test]
fn request_truncated_at_every_length_is_dropped_as_truncated() {
    let bytes = request_bytes();
    for len in 0..bytes.len() {
        assert_eq!(
            ArpFrame::parse(&bytes[..len]),
            Err(DropReason::Truncated),
            "len {len}"
        );
    }
}

#[test]
fn ipv4_ethertype_is_dropped_as_unsupported() {
    let mut bytes = request_bytes();
    bytes[12..14].copy_from_slice(&[0x08, 0x00]);
    assert_eq!(
        ArpFrame::parse(&bytes),
        Err(DropReason::UnsupportedEtherType)
    );
}

#[test]
fn hardware_type_other_than_ethernet_is_dropped() {
    let mut bytes = request_bytes();
    bytes[15] = 6; // IEEE 802
    assert_eq!(ArpFrame::parse(&bytes), Err(DropReason::ArpBadHardwareType));
}

#[test]
fn protocol_type_other_than_ipv4_is_dropped() {
    let mut bytes = request_bytes();
    bytes[16..18].copy_from_slice(&[0x86, 0xdd]);
    assert_eq!(ArpFrame::parse(&bytes), Err(DropReason::ArpBadProtocolType));
}

#[test]
fn hardware_length_other_than_6_is_dropped() {
    let mut bytes = request_bytes();
    bytes[18] = 8;
    assert_eq!(
        ArpFrame::parse(&bytes),
        Err(DropReason::ArpBadAddressLength)
    );
}

#[test]
fn protocol_length_other_than_4_is_dropped() {
    let mut bytes = request_bytes();
    bytes[19] = 16;
    assert_eq!(
        ArpFrame::parse(&bytes),
        Err(DropReason::ArpBadAddressLength)
    );
}

#[test]
fn arp_reply_is_not_a_question() {
    let mut bytes = request_bytes();
    bytes[21] = 2;
    assert_eq!(
        ArpFrame::parse_request(&bytes),
        Err(DropReason::ArpNotRequest)
    );
}

#[test]
fn rarp_operation_is_not_a_question() {
    let mut bytes = request_bytes();
    bytes[21] = 3;
    assert_eq!(ArpFrame::parse(&bytes).map(|a| a.op), Ok(ArpOp::Other(3)));
    assert_eq!(
        ArpFrame::parse_request(&bytes),
        Err(DropReason::ArpNotRequest)
    );
}

#[test]
fn request_from_a_multicast_sender_mac_is_dropped() {
    let mut bytes = request_bytes();
    bytes[22] = 0x01;
    assert_eq!(
        ArpFrame::parse_request(&bytes),
        Err(DropReason::ArpBadSenderMac)
    );
}

#[test]
fn request_from_a_zero_sender_mac_is_dropped() {
    let mut bytes = request_bytes();
    bytes[22..28].copy_from_slice(&[0; 6]);
    assert_eq!(
        ArpFrame::parse_request(&bytes),
        Err(DropReason::ArpBadSenderMac)
    );
}

#[test]
fn someone_elses_gratuitous_arp_is_not_a_question() {
    let mut bytes = request_bytes();
    bytes[28..32].copy_from_slice(&[192, 0, 2, 10]);
    assert_eq!(
        ArpFrame::parse_request(&bytes),
        Err(DropReason::ArpGratuitous)
    );
}

#[test]
fn rfc5227_probe_with_zero_sender_ip_is_a_question() {
    let mut bytes = request_bytes();
    bytes[28..32].copy_from_slice(&[0; 4]);
    let arp = ArpFrame::parse_request(&bytes).expect("probe is a request");
    let r = reply(&arp, OUR_MAC);
    assert_eq!(r.target_ip, Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.eth.dst, MacAddr(ASKER_MAC));
}

#[test]
fn reply_swaps_sender_and_target_and_names_our_mac() {
    let arp = ArpFrame::parse_request(&request_bytes()).expect("valid");
    let bytes = reply(&arp, OUR_MAC).to_bytes();
    let mut want = ASKER_MAC.to_vec();
    want.extend_from_slice(&OUR_MAC.0);
    want.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    want.extend_from_slice(&OUR_MAC.0);
    want.extend_from_slice(&[192, 0, 2, 10]);
    want.extend_from_slice(&ASKER_MAC);
    want.extend_from_slice(&[192, 0, 2, 1]);
    assert_eq!(bytes, want);
}

#[test]
fn gratuitous_request_is_broadcast_with_sender_and_target_the_vip() {
    let ip = Ipv4Addr::new(192, 0, 2, 10);
    let g = ArpFrame::parse(&gratuitous_request(ip, OUR_MAC).to_bytes()).expect("valid");
    assert_eq!(g.eth.dst, MacAddr::BROADCAST);
    assert_eq!(g.eth.src, OUR_MAC);
    assert_eq!(g.op, ArpOp::Request);
    assert_eq!((g.sender_ip, g.target_ip), (ip, ip));
    assert_eq!(g.sender_mac, OUR_MAC);
    assert_eq!(g.target_mac, MacAddr::ZERO);
}

#[test]
fn gratuitous_reply_is_broadcast_with_sender_and_target_the_vip() {
    let ip = Ipv4Addr::new(192, 0, 2, 10);
    let g = ArpFrame::parse(&gratuitous_reply(ip, OUR_MAC).to_bytes()).expect("valid");
    assert_eq!(g.eth.dst, MacAddr::BROADCAST);
    assert_eq!(g.op, ArpOp::Reply);
    assert_eq!((g.sender_ip, g.target_ip), (ip, ip));
    assert_eq!(g.sender_mac, OUR_MAC);
}

#[test]
fn our_own_gratuitous_request_is_not_answered_by_us() {
    let ip = Ipv4Addr::new(192, 0, 2, 10);
    let bytes = gratuitous_request(ip, OUR_MAC).to_bytes();
    assert_eq!(
        ArpFrame::parse_request(&bytes),
        Err(DropReason::ArpGratuitous)
    );
}
