//! Fuzz target: the neighbour solicitation and advertisement decoders and `decide` on
//! arbitrary frames must never panic; an accepted solicitation's answer must parse.
//! Each input is tried twice: as it is, and with its ICMPv6 checksum made valid, so
//! that mutations also reach the checks behind the checksum (options, destination).
#![no_main]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr};

use ferrolb_proto::l2::checksum;
use ferrolb_proto::l2::ndp::{self, NeighborAdvertisement, NeighborSolicitation};
use ferrolb_proto::l2::{MacAddr, decide};
use libfuzzer_sys::fuzz_target;

const OUR_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

fn addr_at(frame: &[u8], at: usize) -> Option<Ipv6Addr> {
    let octets: [u8; 16] = frame.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(octets))
}

/// `frame` with the checksum of its ICMPv6 part (as the IPv6 payload length bounds it)
/// recomputed; `None` when the frame is too short to hold one.
fn with_valid_checksum(frame: &[u8]) -> Option<Vec<u8>> {
    let len = usize::from(u16::from_be_bytes(frame.get(18..20)?.try_into().ok()?));
    let (src, dst) = (addr_at(frame, 22)?, addr_at(frame, 38)?);
    let mut fixed = frame.to_vec();
    fixed.get_mut(56..58)?.copy_from_slice(&[0, 0]);
    let sum = checksum::icmpv6(src, dst, fixed.get(54..54 + len)?);
    fixed.get_mut(56..58)?.copy_from_slice(&sum.to_be_bytes());
    Some(fixed)
}

fn check(frame: &[u8]) {
    let _ = NeighborAdvertisement::parse(frame);
    let mut announced = BTreeSet::new();
    if let Ok(ns) = NeighborSolicitation::parse(frame) {
        let na = ndp::advertisement_for(&ns, OUR_MAC);
        assert_eq!(NeighborAdvertisement::parse(&na.to_bytes()), Some(na));
        announced.insert(IpAddr::V6(ns.target));
    }
    // The target field of an NS inside an untagged Ethernet frame.
    if let Some(t) = addr_at(frame, 62) {
        announced.insert(IpAddr::V6(t));
    }
    let _ = decide(frame, OUR_MAC, &announced);
}

fuzz_target!(|frame: &[u8]| {
    check(frame);
    if let Some(fixed) = with_valid_checksum(frame) {
        check(&fixed);
    }
});
