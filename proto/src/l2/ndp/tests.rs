//! Rules of RFC 4861 §7.1.1 as `ndp.rs` applies them, one per test, on hand-written frames.

use super::*;

const ASKER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);

fn ip(s: &str) -> Ipv6Addr {
    s.parse().expect("literal")
}

fn target() -> Ipv6Addr {
    ip("2001:db8::10")
}

/// Recomputes the ICMPv6 checksum of a frame built by `ns_bytes` after an edit, so a
/// test checks the rule it names and not the checksum.
fn fix_checksum(frame: &mut [u8]) {
    frame[56..58].copy_from_slice(&[0, 0]);
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[22..38]).expect("16"));
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[38..54]).expect("16"));
    let len = usize::from(u16::from_be_bytes([frame[18], frame[19]]));
    let sum = checksum::icmpv6(src, dst, &frame[54..54 + len]);
    frame[56..58].copy_from_slice(&sum.to_be_bytes());
}

/// "Who has 2001:db8::10? I am 2001:db8::1 at 02:00:00:00:00:aa", written octet by octet,
/// to the solicited-node group ff02::1:ff00:10.
fn ns_bytes() -> Vec<u8> {
    let mut f = vec![0x33, 0x33, 0xff, 0, 0, 0x10];
    f.extend_from_slice(&ASKER_MAC);
    f.extend_from_slice(&[0x86, 0xdd]);
    f.extend_from_slice(&[0x60, 0, 0, 0, 0, 32, 58, 255]);
    f.extend_from_slice(&ip("2001:db8::1").octets());
    f.extend_from_slice(&ip("ff02::1:ff00:10").octets());
    f.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&target().octets());
    f.extend_from_slice(&[1, 1]);
    f.extend_from_slice(&ASKER_MAC);
    fix_checksum(&mut f);
    f
}

/// The same question during duplicate address detection: source ::, no option.
fn dad_bytes() -> Vec<u8> {
    let mut f = ns_bytes();
    f[22..38].copy_from_slice(&Ipv6Addr::UNSPECIFIED.octets());
    f.truncate(54 + 24);
    f[19] = 24;
    fix_checksum(&mut f);
    f
}

#[test]
fn well_formed_solicitation_parses_to_its_fields() {
    let ns = NeighborSolicitation::parse(&ns_bytes()).expect("valid");
    assert_eq!(ns.target, target());
    assert_eq!(ns.src, ip("2001:db8::1"));
    assert_eq!(ns.dst, ip("ff02::1:ff00:10"));
    assert_eq!(ns.source_lla, Some(MacAddr(ASKER_MAC)));
    assert!(!ns.is_dad());
}

#[test]
fn solicitation_serialises_back_to_the_same_octets() {
    let bytes = ns_bytes();
    let ns = NeighborSolicitation::parse(&bytes).expect("valid");
    assert_eq!(ns.to_bytes(), bytes);
}

#[test]
fn solicitation_truncated_at_every_length_is_dropped() {
    let bytes = ns_bytes();
    for len in 0..bytes.len() {
        assert!(
            NeighborSolicitation::parse(&bytes[..len]).is_err(),
            "len {len} was accepted"
        );
    }
}

#[test]
fn ethernet_padding_after_the_ipv6_payload_is_ignored() {
    let mut bytes = dad_bytes();
    bytes.extend_from_slice(&[0xee; 8]);
    assert!(NeighborSolicitation::parse(&bytes).is_ok());
}

#[test]
fn ns_with_hop_limit_254_is_dropped() {
    let mut bytes = ns_bytes();
    bytes[21] = 254;
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::NdpBadHopLimit)
    );
}

#[test]
fn ns_with_hop_limit_1_is_dropped() {
    let mut bytes = ns_bytes();
    bytes[21] = 1;
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::NdpBadHopLimit)
    );
}

#[test]
fn ns_with_icmp_code_1_is_dropped() {
    let mut bytes = ns_bytes();
    bytes[55] = 1;
    fix_checksum(&mut bytes);
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::NdpBadIcmpCode)
    );
}

#[test]
fn ns_with_icmp_length_23_is_dropped() {
    let mut bytes = ns_bytes();
    bytes.truncate(54 + 23);
    bytes[19] = 23;
    fix_checksum(&mut bytes);
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::NdpTooShort)
    );
}

#[test]
fn ns_whose_payload_length_exceeds_the_frame_is_dropped() {
    let mut bytes = ns_bytes();
    bytes[19] = 40;
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::Ipv6BadPayloadLength)
    );
}

#[test]
fn ns_with_a_flipped_bit_fails_the_checksum() {
    let mut bytes = ns_bytes();
    bytes[60] ^= 0x01; // inside the reserved word
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::NdpBadChecksum)
    );
}

#[test]
fn ns_with_a_zero_checksum_is_dropped() {
    let mut bytes = ns_bytes();
    bytes[56..58].copy_from_slice(&[0, 0]);
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::NdpBadChecksum)
    );
}

#[test]
fn ns_for_a_multicast_target_is_dropped() {
    let mut bytes = ns_bytes();
    bytes[62..78].copy_from_slice(&ip("ff02::1").octets());
    fix_checksum(&mut bytes);
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::NdpMulticastTarget)
    );
}

#[test]
fn ns_with_an_option_of_length_0_is_dropped() {
    let mut bytes = ns_bytes();
    bytes[79] = 0;
    fix_checksum(&mut bytes);
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::NdpZeroLengthOption)
    );
}

#[test]
fn ns_with_an_unknown_option_of_length_0_is_dropped() {
    let mut bytes = ns_bytes();
    bytes.extend_from_slice(&[14, 0, 0, 0, 0, 0, 0, 0]);
    bytes[19] = 40;
    fix_checksum(&mut bytes);
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::NdpZeroLengthOption)
    );
}

#[test]
fn ns_with_an_option_running_past_the_end_is_dropped() {
    let mut bytes = ns_bytes();
    bytes[79] = 2;
    fix_checksum(&mut bytes);
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::NdpTruncatedOption)
    );
}

#[test]
fn ns_with_a_lone_option_type_octet_is_dropped() {
    let mut bytes = dad_bytes();
    bytes.push(1);
    bytes[19] = 25;
    fix_checksum(&mut bytes);
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::NdpTruncatedOption)
    );
}

#[test]
fn unknown_options_are_skipped() {
    let mut bytes = ns_bytes();
    bytes.extend_from_slice(&[200, 1, 9, 9, 9, 9, 9, 9]);
    bytes[19] = 40;
    fix_checksum(&mut bytes);
    let ns = NeighborSolicitation::parse(&bytes).expect("unknown options are ignored");
    assert_eq!(ns.source_lla, Some(MacAddr(ASKER_MAC)));
}

#[test]
fn dad_probe_from_the_unspecified_address_is_accepted() {
    let ns = NeighborSolicitation::parse(&dad_bytes()).expect("valid DAD probe");
    assert!(ns.is_dad());
    assert_eq!(ns.source_lla, None);
}

#[test]
fn dad_probe_with_a_source_link_layer_option_is_dropped() {
    let mut bytes = ns_bytes();
    bytes[22..38].copy_from_slice(&Ipv6Addr::UNSPECIFIED.octets());
    fix_checksum(&mut bytes);
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::NdpUnspecifiedSourceWithLinkLayerOption)
    );
}

#[test]
fn dad_probe_sent_to_the_target_itself_is_dropped() {
    let mut bytes = dad_bytes();
    bytes[38..54].copy_from_slice(&target().octets());
    fix_checksum(&mut bytes);
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::NdpUnspecifiedSourceBadDestination)
    );
}

#[test]
fn unicast_solicitation_to_the_target_itself_is_accepted() {
    let mut bytes = ns_bytes();
    bytes[38..54].copy_from_slice(&target().octets());
    fix_checksum(&mut bytes);
    let ns = NeighborSolicitation::parse(&bytes).expect("unicast NS is valid");
    assert_eq!(ns.dst, target());
}

#[test]
fn solicitation_to_all_nodes_is_dropped() {
    let mut bytes = ns_bytes();
    bytes[38..54].copy_from_slice(&addr::ALL_NODES.octets());
    fix_checksum(&mut bytes);
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::NdpBadDestination)
    );
}

#[test]
fn solicitation_to_another_addresss_solicited_node_group_is_dropped() {
    let mut bytes = ns_bytes();
    bytes[38..54].copy_from_slice(&ip("ff02::1:ff00:11").octets());
    fix_checksum(&mut bytes);
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::NdpBadDestination)
    );
}

#[test]
fn solicitation_from_a_multicast_source_is_dropped() {
    let mut bytes = ns_bytes();
    bytes[22..38].copy_from_slice(&ip("ff02::2").octets());
    fix_checksum(&mut bytes);
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::NdpMulticastSource)
    );
}

#[test]
fn udp_over_ipv6_is_not_icmpv6() {
    let mut bytes = ns_bytes();
    bytes[20] = 17;
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::NotIcmpv6)
    );
}

#[test]
fn hop_by_hop_extension_header_is_not_followed() {
    let mut bytes = ns_bytes();
    bytes[20] = 0;
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::NotIcmpv6)
    );
}

#[test]
fn router_solicitation_is_not_a_neighbour_solicitation() {
    let mut bytes = ns_bytes();
    bytes[54] = 133;
    fix_checksum(&mut bytes);
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::NotNeighborSolicitation)
    );
}

#[test]
fn ipv6_with_empty_payload_is_dropped_as_too_short() {
    let mut bytes = ns_bytes();
    bytes.truncate(54);
    bytes[19] = 0;
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::NdpTooShort)
    );
}

#[test]
fn arp_ethertype_is_not_ipv6() {
    let mut bytes = ns_bytes();
    bytes[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(
        NeighborSolicitation::parse(&bytes),
        Err(DropReason::UnsupportedEtherType)
    );
}

#[test]
fn answer_to_a_solicitation_is_a_solicited_override_na_to_the_asker() {
    let ns = NeighborSolicitation::parse(&ns_bytes()).expect("valid");
    let na = advertisement_for(&ns, OUR_MAC);
    let parsed = NeighborAdvertisement::parse(&na.to_bytes()).expect("our NA parses");
    assert_eq!(parsed, na);
    assert_eq!(na.eth.dst, MacAddr(ASKER_MAC));
    assert_eq!(na.eth.src, OUR_MAC);
    assert_eq!(na.dst, ip("2001:db8::1"));
    assert_eq!(na.src, target());
    assert!(na.is_solicited && na.is_override && !na.is_router);
    assert_eq!(na.target, target());
    assert_eq!(na.target_lla, Some(OUR_MAC));
}

#[test]
fn answer_without_a_source_option_goes_to_the_ethernet_source() {
    let mut bytes = ns_bytes();
    bytes.truncate(54 + 24);
    bytes[19] = 24;
    bytes[38..54].copy_from_slice(&target().octets());
    bytes[0..6].copy_from_slice(&OUR_MAC.0);
    fix_checksum(&mut bytes);
    let ns = NeighborSolicitation::parse(&bytes).expect("valid unicast NS");
    assert_eq!(advertisement_for(&ns, OUR_MAC).eth.dst, MacAddr(ASKER_MAC));
}

#[test]
fn answer_to_a_dad_probe_goes_to_all_nodes_with_s_clear() {
    let ns = NeighborSolicitation::parse(&dad_bytes()).expect("valid");
    let na = advertisement_for(&ns, OUR_MAC);
    assert_eq!(na.dst, addr::ALL_NODES);
    assert_eq!(na.eth.dst, MacAddr([0x33, 0x33, 0, 0, 0, 1]));
    assert!(!na.is_solicited);
    assert!(na.is_override);
    assert_eq!(NeighborAdvertisement::parse(&na.to_bytes()), Some(na));
}

#[test]
fn unsolicited_na_has_o_set_s_clear_and_a_valid_checksum() {
    let na = unsolicited_advertisement(target(), OUR_MAC);
    let bytes = na.to_bytes();
    assert_eq!(bytes.len(), 14 + 40 + 32);
    assert_eq!(bytes[21], 255, "hop limit");
    assert_eq!(bytes[58], FLAG_OVERRIDE, "flags: O only");
    assert_eq!(checksum::icmpv6(na.src, na.dst, &bytes[54..]), 0);
    let parsed = NeighborAdvertisement::parse(&bytes).expect("parses");
    assert_eq!(parsed.dst, addr::ALL_NODES);
    assert!(!parsed.is_solicited && parsed.is_override);
    assert_eq!(parsed.target_lla, Some(OUR_MAC));
}

#[test]
fn a_solicitation_is_not_an_advertisement() {
    assert_eq!(NeighborAdvertisement::parse(&ns_bytes()), None);
}

/// A question whose answer would go to many hosts (or none) is never answered: a forged
/// solicitation must not make us flood the segment.
#[test]
fn a_source_link_layer_option_naming_a_group_or_nobody_is_dropped() {
    for slla in [
        [0xff; 6],                   // broadcast
        [0x33, 0x33, 0, 0, 0, 1],    // IPv6 all-nodes
        [0x01, 0x00, 0x5e, 0, 0, 1], // IPv4 multicast
        [0, 0, 0, 0, 0, 0],          // nobody
    ] {
        let mut bytes = ns_bytes();
        bytes[80..86].copy_from_slice(&slla);
        fix_checksum(&mut bytes);
        assert_eq!(
            NeighborSolicitation::parse(&bytes).map(|_| ()),
            Err(DropReason::NdpBadSourceLinkLayerAddress),
            "{slla:02x?}"
        );
    }
}

#[test]
fn without_the_option_a_multicast_frame_source_is_dropped_too() {
    let mut bytes = ns_bytes();
    bytes.truncate(54 + 24);
    bytes[19] = 24;
    bytes[6..12].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    fix_checksum(&mut bytes);
    assert_eq!(
        NeighborSolicitation::parse(&bytes).map(|_| ()),
        Err(DropReason::NdpBadSourceLinkLayerAddress)
    );
}

#[test]
fn a_dad_probe_from_a_multicast_frame_source_is_still_answered_to_all_nodes() {
    let mut bytes = dad_bytes();
    bytes[6..12].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    assert!(NeighborSolicitation::parse(&bytes).is_ok_and(|ns| ns.is_dad()));
}
