//! Fuzz target: the ARP decoder and `decide` on arbitrary frames must never panic, and
//! any ARP frame that parses must serialise back to its first 42 octets.
#![no_main]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use ferrolb_proto::l2::arp::{ArpFrame, FRAME_LEN};
use ferrolb_proto::l2::{MacAddr, decide};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    if let Ok(arp) = ArpFrame::parse(frame) {
        assert_eq!(Some(&arp.to_bytes()[..]), frame.get(..FRAME_LEN));
    }
    let _ = ArpFrame::parse_request(frame);
    // Announce the target the frame asks about, so the reply path runs too.
    let mut announced = BTreeSet::new();
    announced.insert(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)));
    if let Some(t) = frame.get(38..42).and_then(|t| <[u8; 4]>::try_from(t).ok()) {
        announced.insert(IpAddr::V4(Ipv4Addr::from(t)));
    }
    let _ = decide(frame, MacAddr([2, 0, 0, 0, 0, 1]), &announced);
});
