//! Frames captured with tcpdump from real Linux senders on a veth (kernel 6.x,
//! ndisc6 1.0.5, arping 2.23), checked against our parsers and `decide`. They pin the
//! codecs to what real clients send, not to what our own builders produce.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::addr::MacAddr;
use super::arp::{ArpFrame, ArpOp};
use super::decide::decide;
use super::ndp::{NeighborAdvertisement, NeighborSolicitation};
use super::verdict::Verdict;

/// `ndisc6 2001:db8::10 cap0` from fe80::fcb3:4ff:fee1:6604 (note the non-zero flow label).
pub(super) const NDISC6_NS: &str = "3333ff000010feb304e1660486dd6001ad3000203afffe80000000000000fcb3\
                         04fffee16604ff0200000000000000000001ff00001087007d12000000002001\
                         0db80000000000000000000000100101feb304e16604";

/// The kernel's own duplicate address detection probe for its link-local address:
/// source ::, and a nonce option (RFC 7527, type 14) instead of a link-layer option.
pub(super) const KERNEL_DAD_NS: &str = "3333ff4ccd3f56d87d4ccd3f86dd6000000000203aff00000000000000000000\
                             000000000000ff0200000000000000000001ff4ccd3f8700376e00000000fe80\
                             00000000000054d87dfffe4ccd3f0e01995396459b26";

/// `arping -I cap0 192.0.2.10` from 192.0.2.1, padded by arping to 58 octets.
pub(super) const ARPING_REQUEST: &str = "fffffffffffffeb304e1660408060001080006040001feb304e16604c0000201\
                              000000000000c000020a00000000000000000000000000000000";

pub(super) fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|c| match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => c - b'A' + 10,
        })
        .collect();
    digits.chunks_exact(2).map(|p| p[0] << 4 | p[1]).collect()
}

const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);

#[test]
fn ndisc6_solicitation_passes_every_check() {
    let ns = NeighborSolicitation::parse(&hex(NDISC6_NS)).expect("real NS is valid");
    assert_eq!(
        ns.target,
        "2001:db8::10".parse::<Ipv6Addr>().expect("literal")
    );
    assert_eq!(
        ns.source_lla,
        Some(MacAddr([0xfe, 0xb3, 0x04, 0xe1, 0x66, 0x04]))
    );
}

#[test]
fn ndisc6_solicitation_for_an_announced_ip_is_answered_to_its_link_local_source() {
    let vip: Ipv6Addr = "2001:db8::10".parse().expect("literal");
    let announced: BTreeSet<IpAddr> = [IpAddr::V6(vip)].into_iter().collect();
    let Verdict::Reply(bytes) = decide(&hex(NDISC6_NS), OUR_MAC, &announced) else {
        panic!("expected a reply");
    };
    let na = NeighborAdvertisement::parse(&bytes).expect("NA parses");
    assert_eq!(
        na.dst,
        "fe80::fcb3:4ff:fee1:6604"
            .parse::<Ipv6Addr>()
            .expect("literal")
    );
    assert!(na.is_solicited && na.is_override);
}

#[test]
fn kernel_dad_probe_with_a_nonce_option_passes_every_check() {
    let ns = NeighborSolicitation::parse(&hex(KERNEL_DAD_NS)).expect("real DAD probe is valid");
    assert!(ns.is_dad());
    assert_eq!(ns.source_lla, None);
}

#[test]
fn arping_request_parses_with_its_padding() {
    let bytes = hex(ARPING_REQUEST);
    assert_eq!(bytes.len(), 58);
    let arp = ArpFrame::parse_request(&bytes).expect("real request is valid");
    assert_eq!(arp.op, ArpOp::Request);
    assert_eq!(arp.sender_ip, Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(arp.target_ip, Ipv4Addr::new(192, 0, 2, 10));
}
