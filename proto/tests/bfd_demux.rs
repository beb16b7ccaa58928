//! Demultiplexing (RFC 5880 §6.8.6), the TTL rules (RFC 5881 §5, RFC 5883 §5), and the
//! discriminators and source ports a session table hands out.

use std::collections::HashSet;
use std::net::IpAddr;

use ferrolb_proto::bfd::demux::{Demux, RxMeta, SOURCE_PORTS, SessionKey};
use ferrolb_proto::bfd::error::DropReason;
use ferrolb_proto::bfd::packet::{ControlPacket, Diag, State};
use proptest::prelude::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn key(peer: &str, local: Option<&str>, is_multihop: bool) -> SessionKey {
    SessionKey {
        peer: ip(peer),
        local: local.map(ip),
        is_multihop,
        interface: None,
    }
}

fn packet(your_discr: u32, state: State) -> ControlPacket {
    ControlPacket {
        diag: Diag::None,
        state,
        poll: false,
        is_final: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discr: 99,
        your_discr,
        desired_min_tx_us: 300_000,
        required_min_rx_us: 300_000,
        required_min_echo_rx_us: 0,
    }
}

fn meta(source: &str, dest: &str, ttl: Option<u8>, is_multihop_port: bool) -> RxMeta {
    RxMeta {
        source: ip(source),
        dest: Some(ip(dest)),
        ifindex: Some(2),
        ttl,
        is_multihop_port,
    }
}

/// Sessions: 10 single hop to 192.0.2.254 from 192.0.2.1 on ifindex 2; 11 multihop to
/// 198.51.100.1 (minimum TTL 254); 12 single hop to 2001:db8::fe from any local address.
fn table() -> Demux {
    let mut d = Demux::new();
    d.insert(
        10,
        key("192.0.2.254", Some("192.0.2.1"), false),
        Some(2),
        254,
        50000,
    );
    d.insert(
        11,
        key("198.51.100.1", Some("192.0.2.1"), true),
        None,
        254,
        50001,
    );
    d.insert(12, key("2001:db8::fe", None, false), None, 254, 50002);
    d
}

#[test]
fn packets_find_their_session_or_are_dropped_for_a_reason() {
    let d = table();
    let rows: Vec<(&str, RxMeta, ControlPacket, Result<u32, DropReason>)> = vec![
        (
            "Your Discriminator selects the session",
            meta("192.0.2.254", "192.0.2.1", Some(255), false),
            packet(10, State::Up),
            Ok(10),
        ),
        (
            "Your Discriminator 0 in Down: selected by source and destination",
            meta("192.0.2.254", "192.0.2.1", Some(255), false),
            packet(0, State::Down),
            Ok(10),
        ),
        (
            "a session without local address matches any destination",
            meta("2001:db8::fe", "2001:db8::1", Some(255), false),
            packet(0, State::Down),
            Ok(12),
        ),
        (
            "an unknown Your Discriminator",
            meta("192.0.2.254", "192.0.2.1", Some(255), false),
            packet(77, State::Up),
            Err(DropReason::UnknownDiscriminator),
        ),
        (
            "Your Discriminator 0 from an address with no session",
            meta("192.0.2.200", "192.0.2.1", Some(255), false),
            packet(0, State::Down),
            Err(DropReason::NoSessionForAddress),
        ),
        (
            "the right discriminator from another source",
            meta("192.0.2.200", "192.0.2.1", Some(255), false),
            packet(10, State::Up),
            Err(DropReason::AddressMismatch),
        ),
        (
            "to another local address than the session's",
            meta("192.0.2.254", "192.0.2.9", Some(255), false),
            packet(10, State::Up),
            Err(DropReason::AddressMismatch),
        ),
        (
            "through another interface than the session's",
            RxMeta {
                ifindex: Some(3),
                ..meta("192.0.2.254", "192.0.2.1", Some(255), false)
            },
            packet(10, State::Up),
            Err(DropReason::AddressMismatch),
        ),
        (
            "a single-hop session's packet on the multihop port",
            meta("192.0.2.254", "192.0.2.1", Some(255), true),
            packet(10, State::Up),
            Err(DropReason::WrongPort),
        ),
        (
            "RFC 5881 §5: single hop with TTL 254 (routed once)",
            meta("192.0.2.254", "192.0.2.1", Some(254), false),
            packet(10, State::Up),
            Err(DropReason::TtlNot255),
        ),
        (
            "RFC 5883: multihop with TTL 254 meets the minimum of 254",
            meta("198.51.100.1", "192.0.2.1", Some(254), true),
            packet(11, State::Up),
            Ok(11),
        ),
        (
            "RFC 5883: multihop with TTL 253 is under the minimum",
            meta("198.51.100.1", "192.0.2.1", Some(253), true),
            packet(11, State::Up),
            Err(DropReason::TtlBelowMinimum),
        ),
        (
            "no TTL from the kernel: the rules cannot be checked",
            meta("192.0.2.254", "192.0.2.1", None, false),
            packet(10, State::Up),
            Err(DropReason::NoTtl),
        ),
    ];
    for (sentence, meta, packet, expected) in rows {
        assert_eq!(d.select(&meta, &packet), expected, "{sentence}");
    }
}

#[test]
fn a_profile_change_moves_the_multihop_minimum_ttl() {
    let mut d = table();
    let m = meta("198.51.100.1", "192.0.2.1", Some(250), true);
    assert_eq!(
        d.select(&m, &packet(11, State::Up)),
        Err(DropReason::TtlBelowMinimum)
    );
    d.set_minimum_ttl(11, 250);
    assert_eq!(d.select(&m, &packet(11, State::Up)), Ok(11));
}

#[test]
fn a_removed_session_frees_its_discriminator_its_port_and_its_address() {
    let mut d = table();
    d.remove(10);
    assert_eq!(d.find(&key("192.0.2.254", Some("192.0.2.1"), false)), None);
    assert_eq!(d.free_discriminator(10), 10);
    assert_eq!(d.free_ports(50000).next(), Some(50000));
    let m = meta("192.0.2.254", "192.0.2.1", Some(255), false);
    assert_eq!(
        d.select(&m, &packet(0, State::Down)),
        Err(DropReason::NoSessionForAddress)
    );
    assert_eq!(d.len(), 2);
}

#[test]
fn discriminators_skip_zero_and_those_in_use() {
    let d = table();
    assert_eq!(d.free_discriminator(0), 1);
    assert_eq!(d.free_discriminator(10), 13, "10, 11, 12 are taken");
    let mut full = Demux::new();
    full.insert(u32::MAX, key("192.0.2.9", None, false), None, 254, 50000);
    assert_eq!(full.free_discriminator(u32::MAX), 1, "wraps past 0");
}

proptest! {
    // Each case walks all 16384 ports once.
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn free_ports_stay_in_the_rfc_range_and_skip_those_in_use(start: u16, used in prop::collection::vec(49152u16..=65535, 0..50)) {
        let mut d = Demux::new();
        for (i, port) in used.iter().enumerate() {
            d.insert(i as u32 + 1, key(&format!("192.0.2.{}", i % 250 + 1), None, i >= 250), None, 254, *port);
        }
        let in_use: HashSet<u16> = used.iter().copied().collect();
        let free: Vec<u16> = d.free_ports(start).take(100).collect();
        prop_assert_eq!(free.len(), 100);
        for p in &free {
            prop_assert!(SOURCE_PORTS.contains(p) && !in_use.contains(p));
        }
        let all: HashSet<u16> = d.free_ports(start).collect();
        prop_assert_eq!(all.len(), 16384 - in_use.len(), "every free port exactly once");
    }
}
