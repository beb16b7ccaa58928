//! The framer and the netgauze glue: codec rows checked both ways, and no input panics.

use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::BytesMut;
use ferrolb_proto::bgp::notification::Notification;
use ferrolb_proto::bgp::open::{Capabilities, Families, GracefulRestart, Open};
use ferrolb_proto::bgp::packet::{
    FrameError, Received, decode, encode_keepalive, encode_notification, encode_open, split_frame,
};
use proptest::prelude::*;

fn header(len: u16, kind: u8) -> Vec<u8> {
    let mut b = vec![0xff; 16];
    b.extend_from_slice(&len.to_be_bytes());
    b.push(kind);
    b
}

fn our_open() -> Open {
    Open {
        version: 4,
        my_as: 23456,
        hold_time_secs: 90,
        bgp_id: Ipv4Addr::new(192, 0, 2, 10),
        capabilities: Capabilities {
            families: Families::DUAL,
            four_octet_as: Some(4_200_000_001),
            route_refresh: true,
            graceful_restart: Some(GracefulRestart {
                restart_time: Duration::from_secs(120),
                is_restarting: false,
                is_notification: true,
                families: Families::DUAL,
                forwarding: Families::DUAL,
            }),
            extended_message: true,
        },
    }
}

/// (sentence, bytes, frame length or the error).
type Row = (&'static str, Vec<u8>, Result<Option<usize>, FrameError>);

#[test]
fn bad_headers_are_answered_with_message_header_errors() {
    let header_err =
        |sub: u8, data: Vec<u8>| Err(FrameError::Header(Notification::with_data(1, sub, data)));
    let mut not_synced = header(19, 4);
    not_synced[3] = 0;
    let rows: Vec<Row> = vec![
        (
            "a marker that is not all ones",
            not_synced,
            Err(FrameError::Header(Notification::new(1, 1))),
        ),
        (
            "a length below 19",
            header(18, 4),
            header_err(2, vec![0, 18]),
        ),
        (
            "a KEEPALIVE longer than 19",
            header(20, 4),
            header_err(2, vec![0, 20]),
        ),
        (
            "an OPEN over 4096",
            header(4097, 1),
            header_err(2, vec![0x10, 0x01]),
        ),
        (
            "an UPDATE over 4096 without extended messages",
            header(5000, 2),
            header_err(2, vec![0x13, 0x88]),
        ),
        (
            "an unknown message type",
            header(19, 9),
            header_err(3, vec![9]),
        ),
        (
            "an UPDATE shorter than its fixed part",
            header(22, 2),
            header_err(2, vec![0, 22]),
        ),
        (
            "a header alone waits for the body",
            header(100, 2),
            Ok(None),
        ),
        ("fewer than 19 bytes wait", vec![0xff; 10], Ok(None)),
        (
            "a whole KEEPALIVE is one frame",
            header(19, 4),
            Ok(Some(19)),
        ),
    ];
    for (sentence, bytes, expected) in rows {
        let mut buf = BytesMut::from(&bytes[..]);
        let got = split_frame(&mut buf, 4096).map(|f| f.map(|f| f.len()));
        assert_eq!(got, expected, "{sentence}");
    }
}

#[test]
fn an_update_over_4096_is_accepted_once_extended_messages_are_negotiated() {
    let mut bytes = header(5000, 2);
    bytes.resize(5000, 0);
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(
        split_frame(&mut buf, 65535).map(|f| f.map(|f| f.len())),
        Ok(Some(5000))
    );
}

#[test]
fn our_open_decodes_back_to_the_same_summary() {
    let bytes = encode_open(&our_open()).expect("encodes");
    let mut buf = BytesMut::from(&bytes[..]);
    let frame = split_frame(&mut buf, 4096).expect("valid").expect("whole");
    assert_eq!(decode(&frame, false), Ok(Received::Open(our_open())));
}

#[test]
fn an_open_without_multiprotocol_capabilities_means_ipv4_unicast() {
    let mut open = our_open();
    open.capabilities.families = Families::default();
    let bytes = encode_open(&open).expect("encodes");
    let Ok(Received::Open(got)) = decode(&bytes, false) else {
        panic!("not an OPEN")
    };
    assert_eq!(
        got.capabilities.families,
        Families {
            ipv4_unicast: true,
            ipv6_unicast: false
        }
    );
}

#[test]
fn an_open_with_version_3_is_an_open_message_error() {
    let mut bytes = encode_open(&our_open()).expect("encodes").to_vec();
    bytes[19] = 3;
    assert_eq!(
        decode(&bytes, false),
        Err(FrameError::Open(Notification::with_data(2, 1, vec![0, 4])))
    );
}

#[test]
fn notifications_with_any_subcode_round_trip() {
    for n in [
        Notification::new(6, 2),
        Notification::with_data(6, 99, b"bye".to_vec()),
        Notification::with_data(2, 2, vec![0xfd, 0xe8]),
    ] {
        let bytes = encode_notification(&n);
        assert_eq!(decode(&bytes, true), Ok(Received::Notification(n)));
    }
}

#[test]
fn keepalive_is_a_bare_header() {
    assert_eq!(encode_keepalive().to_vec(), header(19, 4));
    assert_eq!(decode(&header(19, 4), true), Ok(Received::KeepAlive));
}

#[test]
fn a_truncated_update_is_an_update_message_error() {
    // Withdrawn length claims 10 bytes that are not there.
    let mut bytes = header(23, 2);
    bytes.extend_from_slice(&[0, 10, 0, 0]);
    let got = decode(&bytes, true);
    assert!(
        matches!(got, Err(FrameError::Update(ref n)) | Err(FrameError::Header(ref n)) if n.code == 3 || n.code == 1),
        "{got:?}"
    );
}

proptest! {
    /// Whatever arrives, the framer and decoder return a value or a NOTIFICATION, never panic.
    #[test]
    fn no_byte_sequence_panics_the_framer_or_decoder(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        kind in 0u8..7,
        four_octet_as in any::<bool>(),
    ) {
        let mut bytes = header((19 + body.len()) as u16, kind);
        bytes.extend_from_slice(&body);
        let mut buf = BytesMut::from(&bytes[..]);
        if let Ok(Some(frame)) = split_frame(&mut buf, 4096) {
            let _ = decode(&frame, four_octet_as);
        }
        let mut raw = BytesMut::from(&body[..]);
        let _ = split_frame(&mut raw, 65535);
        let _ = decode(&body, four_octet_as);
    }
}
