//! The BFD Control packet codec: rows checked both ways (bytes decode to the value, the value
//! encodes to the bytes), every RFC 5880 §6.8.6 discard case with its `DropReason`, and
//! properties over arbitrary bytes and values.

use ferrolb_proto::bfd::error::DropReason;
use ferrolb_proto::bfd::packet::{CONTROL_LEN, ControlPacket, Diag, State, decode, encode};
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn base() -> ControlPacket {
    ControlPacket {
        diag: Diag::None,
        state: State::Down,
        poll: false,
        is_final: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discr: 0x0102_0304,
        your_discr: 0,
        desired_min_tx_us: 1_000_000,
        required_min_rx_us: 300_000,
        required_min_echo_rx_us: 0,
    }
}

#[test]
fn valid_packets_decode_to_their_value_and_encode_back_to_the_same_bytes() {
    let rows: Vec<(&str, &str, ControlPacket)> = vec![
        (
            "a first Down packet: Your Discriminator 0, slow 1 s",
            "20 40 03 18 01020304 00000000 000f4240 000493e0 00000000",
            base(),
        ),
        (
            "Init naming the peer",
            "20 80 03 18 01020304 0a0b0c0d 000f4240 000493e0 00000000",
            ControlPacket {
                state: State::Init,
                your_discr: 0x0a0b_0c0d,
                ..base()
            },
        ),
        (
            "Up with the Poll bit and new intervals",
            "20 e0 05 18 01020304 0a0b0c0d 000186a0 000186a0 00000000",
            ControlPacket {
                state: State::Up,
                poll: true,
                detect_mult: 5,
                your_discr: 0x0a0b_0c0d,
                desired_min_tx_us: 100_000,
                required_min_rx_us: 100_000,
                ..base()
            },
        ),
        (
            "Up with the Final bit",
            "20 d0 03 18 01020304 0a0b0c0d 000493e0 000493e0 00000000",
            ControlPacket {
                state: State::Up,
                is_final: true,
                your_discr: 0x0a0b_0c0d,
                desired_min_tx_us: 300_000,
                ..base()
            },
        ),
        (
            "AdminDown with diag 7 (Your Discriminator may be 0)",
            "27 00 03 18 01020304 00000000 000f4240 000493e0 00000000",
            ControlPacket {
                state: State::AdminDown,
                diag: Diag::AdministrativelyDown,
                ..base()
            },
        ),
        (
            "Down after a detection timeout, diag 1",
            "21 40 03 18 01020304 00000000 000f4240 000493e0 00000000",
            ControlPacket {
                diag: Diag::ControlDetectionTimeExpired,
                ..base()
            },
        ),
        (
            "a reserved diag is kept, C and D bits are read, echo interval is kept",
            "3f ca 01 18 01020304 0a0b0c0d ffffffff 00000000 0000c350",
            ControlPacket {
                diag: Diag::Reserved(31),
                state: State::Up,
                control_plane_independent: true,
                demand: true,
                detect_mult: 1,
                your_discr: 0x0a0b_0c0d,
                desired_min_tx_us: u32::MAX,
                required_min_rx_us: 0,
                required_min_echo_rx_us: 50_000,
                ..base()
            },
        ),
    ];
    for (sentence, bytes, value) in rows {
        let bytes = hex(bytes);
        assert_eq!(decode(&bytes), Ok(value), "{sentence}: decode");
        assert_eq!(encode(&value).to_vec(), bytes, "{sentence}: encode");
    }
}

#[test]
fn every_discard_case_of_rfc5880_6_8_6_has_its_reason() {
    let rows: Vec<(&str, &str, DropReason)> = vec![
        ("three bytes", "20 40 03", DropReason::Truncated),
        (
            "version 0",
            "00 40 03 18 01020304 00000000 000f4240 000493e0 00000000",
            DropReason::BadVersion,
        ),
        (
            "version 2",
            "40 40 03 18 01020304 00000000 000f4240 000493e0 00000000",
            DropReason::BadVersion,
        ),
        (
            "Length 23 without authentication",
            "20 40 03 17 01020304 00000000 000f4240 000493e0 00000000",
            DropReason::LengthBelowMinimum,
        ),
        (
            "Length 24 with the A bit (26 needed)",
            "20 44 03 18 01020304 00000000 000f4240 000493e0 00000000",
            DropReason::LengthBelowMinimum,
        ),
        (
            "Length 24 in a 20-byte payload",
            "20 40 03 18 01020304 00000000 000f4240 000493e0",
            DropReason::LengthOverPayload,
        ),
        (
            "Length 30 in a 24-byte payload",
            "20 40 03 1e 01020304 00000000 000f4240 000493e0 00000000",
            DropReason::LengthOverPayload,
        ),
        (
            "Detect Mult 0",
            "20 40 00 18 01020304 00000000 000f4240 000493e0 00000000",
            DropReason::ZeroDetectMult,
        ),
        (
            "the Multipoint bit",
            "20 41 03 18 01020304 00000000 000f4240 000493e0 00000000",
            DropReason::Multipoint,
        ),
        (
            "My Discriminator 0",
            "20 40 03 18 00000000 00000000 000f4240 000493e0 00000000",
            DropReason::ZeroMyDiscriminator,
        ),
        (
            "Your Discriminator 0 in Init",
            "20 80 03 18 01020304 00000000 000f4240 000493e0 00000000",
            DropReason::ZeroYourDiscriminator,
        ),
        (
            "Your Discriminator 0 in Up",
            "20 c0 03 18 01020304 00000000 000f4240 000493e0 00000000",
            DropReason::ZeroYourDiscriminator,
        ),
        (
            "the A bit with a whole simple-password section: we run no authentication",
            "20 44 03 1d 01020304 00000000 000f4240 000493e0 00000000 01 05 01 61 62",
            DropReason::AuthenticationNotInUse,
        ),
        (
            "the first failed check wins: bad version and Detect Mult 0",
            "00 40 00 18 01020304 00000000 000f4240 000493e0 00000000",
            DropReason::BadVersion,
        ),
    ];
    for (sentence, bytes, reason) in rows {
        assert_eq!(decode(&hex(bytes)), Err(reason), "{sentence}");
    }
}

fn valid_packet() -> impl Strategy<Value = ControlPacket> {
    (
        (
            0u8..32,
            0u8..4,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
        (
            1u8..=255,
            1u32..,
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
        ),
    )
        .prop_map(
            |((diag, state, poll, fin, cpi, demand), (mult, my, your, tx, rx, echo))| {
                let state = State::from_wire(state);
                let your = if matches!(state, State::Up | State::Init) {
                    your.max(1)
                } else {
                    your
                };
                ControlPacket {
                    diag: Diag::from_wire(diag),
                    state,
                    poll,
                    is_final: fin,
                    control_plane_independent: cpi,
                    demand,
                    detect_mult: mult,
                    my_discr: my,
                    your_discr: your,
                    desired_min_tx_us: tx,
                    required_min_rx_us: rx,
                    required_min_echo_rx_us: echo,
                }
            },
        )
}

proptest! {
    #[test]
    fn any_valid_value_survives_encode_then_decode(p in valid_packet()) {
        let bytes = encode(&p);
        prop_assert_eq!(bytes.len(), CONTROL_LEN);
        prop_assert_eq!(decode(&bytes), Ok(p));
    }

    #[test]
    fn any_bytes_decode_without_panic_and_what_decodes_re_encodes_to_its_first_24_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..64)
    ) {
        if let Ok(p) = decode(&bytes) {
            let again = encode(&p);
            // Only the Length byte may differ (a longer declared Length is accepted).
            prop_assert_eq!(&again[..3], &bytes[..3]);
            prop_assert_eq!(&again[4..], &bytes[4..24]);
            prop_assert!(p.my_discr != 0 && p.detect_mult != 0);
        }
    }
}
