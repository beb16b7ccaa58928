//! BGP framing and decoding of bytes from the network, as the peer driver does it: the
//! length-checked framer over a byte stream, then `decode` of every frame with either AS width;
//! and, to reach the message bodies without first guessing a valid header, each message type's
//! decoder behind a correct header. Checks the framer's guarantees and that NOTIFICATION and
//! OPEN values the decoder returns are usable (re-encoding, negotiation) without panicking.
#![no_main]

use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::BytesMut;
use ferrolb_proto::bgp::open::{Families, LocalSpeaker, PeerAs, negotiate};
use ferrolb_proto::bgp::packet::{HEADER_LEN, Received, decode, encode_notification, split_frame};
use libfuzzer_sys::fuzz_target;

fn check_decoded(frame: &[u8], four_octet_as: bool) {
    match decode(frame, four_octet_as) {
        Ok(Received::Notification(n)) => {
            if n.data.len() <= 4096 - HEADER_LEN - 2 {
                let again = decode(&encode_notification(&n), four_octet_as);
                assert_eq!(again, Ok(Received::Notification(n)));
            }
        }
        Ok(Received::Open(open)) => {
            for peer_as in [PeerAs::External, PeerAs::Internal, PeerAs::Fixed(64512)] {
                let local = LocalSpeaker {
                    local_as: 64512,
                    peer_as,
                    router_id: Ipv4Addr::new(192, 0, 2, 1),
                    hold_time: Duration::from_secs(90),
                    families: Families::DUAL,
                    graceful_restart: Some(Duration::from_secs(120)),
                    extended_message: true,
                };
                if let Ok(n) = negotiate(&local, &open) {
                    assert!(n.hold_time <= Duration::from_secs(90));
                    assert!(n.hold_time.is_zero() || n.hold_time >= Duration::from_secs(3));
                }
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    // 1. A byte stream through the framer, with and without Extended Messages.
    for limit in [4096usize, 65535] {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(frame)) = split_frame(&mut buf, limit) {
            assert!(frame.len() >= HEADER_LEN && frame.len() <= limit);
            assert_eq!(
                usize::from(u16::from_be_bytes([frame[16], frame[17]])),
                frame.len()
            );
            check_decoded(&frame, false);
            check_decoded(&frame, true);
        }
    }
    // 2. One body behind a correct header: byte 0 picks the type (1..=5, or any) and AS width.
    if let [selector, body @ ..] = data {
        let kind = match selector % 8 {
            k @ 1..=5 => k,
            _ => selector / 8,
        };
        let len = HEADER_LEN + body.len();
        if len <= 65535 {
            let mut frame = vec![0xff; 16];
            frame.extend_from_slice(&(len as u16).to_be_bytes());
            frame.push(kind);
            frame.extend_from_slice(body);
            check_decoded(&frame, selector & 0x80 != 0);
        }
    }
});
