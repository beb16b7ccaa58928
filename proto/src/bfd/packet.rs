//! The BFD Control packet of RFC 5880 §4.1: the value, its encoder and a decoder that refuses
//! every packet §6.8.6 says to discard before a session is looked at.
//!
//! Pure: bytes in, values out. Which session a packet belongs to, its TTL and whether the session
//! uses authentication are decided elsewhere (`demux`, `fsm`); FerroLB never uses authentication,
//! so a packet with the A bit set is refused here.

use std::fmt;

use super::error::DropReason;

/// Length of the mandatory section, and of every packet we send (no authentication section).
pub const CONTROL_LEN: usize = 24;

/// Minimum Length when the A bit is set: the mandatory section plus Auth Type and Auth Len.
const MIN_LEN_WITH_AUTH: usize = 26;

/// The only protocol version (RFC 5880 §4.1).
pub const VERSION: u8 = 1;

/// RFC 5880 §4.1 session states, with their wire values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// 0: held down by configuration (§6.8.16).
    AdminDown,
    /// 1: no session, or it failed.
    Down,
    /// 2: we hear the remote system; waiting for it to hear us.
    Init,
    /// 3: both systems hear each other.
    Up,
}

impl State {
    /// The 2-bit wire value.
    pub fn wire(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// From the 2-bit wire value (only the low two bits are read).
    pub fn from_wire(bits: u8) -> State {
        match bits & 0b11 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    /// Stable CamelCase label for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// RFC 5880 §4.1 diagnostic codes: the sender's reason for its last change of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diag {
    /// 0.
    None,
    /// 1: no packet from the peer within the Detection Time.
    ControlDetectionTimeExpired,
    /// 2.
    EchoFunctionFailed,
    /// 3: the peer said Down (or AdminDown).
    NeighborSignaledSessionDown,
    /// 4.
    ForwardingPlaneReset,
    /// 5.
    PathDown,
    /// 6.
    ConcatenatedPathDown,
    /// 7: we were held down by configuration.
    AdministrativelyDown,
    /// 8.
    ReverseConcatenatedPathDown,
    /// 9..=31: reserved, kept as received.
    Reserved(u8),
}

impl Diag {
    /// The 5-bit wire value.
    pub fn wire(self) -> u8 {
        match self {
            Diag::None => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledSessionDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Reserved(v) => v & 0x1f,
        }
    }

    /// From the 5-bit wire value (only the low five bits are read).
    pub fn from_wire(bits: u8) -> Diag {
        match bits & 0x1f {
            0 => Diag::None,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledSessionDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            v => Diag::Reserved(v),
        }
    }

    /// Stable CamelCase label for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Diag::None => "NoDiagnostic",
            Diag::ControlDetectionTimeExpired => "ControlDetectionTimeExpired",
            Diag::EchoFunctionFailed => "EchoFunctionFailed",
            Diag::NeighborSignaledSessionDown => "NeighborSignaledSessionDown",
            Diag::ForwardingPlaneReset => "ForwardingPlaneReset",
            Diag::PathDown => "PathDown",
            Diag::ConcatenatedPathDown => "ConcatenatedPathDown",
            Diag::AdministrativelyDown => "AdministrativelyDown",
            Diag::ReverseConcatenatedPathDown => "ReverseConcatenatedPathDown",
            Diag::Reserved(_) => "Reserved",
        }
    }
}

/// One Control packet without authentication, as sent and as accepted.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Vers|  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       My Discriminator                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      Your Discriminator                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    Desired Min TX Interval                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                   Required Min RX Interval                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                 Required Min Echo RX Interval                 |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
/// Intervals are in microseconds. The A (authentication) and M (multipoint) bits are always
/// clear in a value of this type: packets with either set are refused by [`decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlPacket {
    /// The sender's reason for its last state change.
    pub diag: Diag,
    /// The sender's state.
    pub state: State,
    /// P: the sender asks for a packet with F set (§6.5).
    pub poll: bool,
    /// F: the answer to a packet with P set.
    pub is_final: bool,
    /// C: the sender's BFD does not share fate with its control plane.
    pub control_plane_independent: bool,
    /// D: the sender wishes to run Demand mode (§6.6).
    pub demand: bool,
    /// Detection time multiplier (never 0).
    pub detect_mult: u8,
    /// The sender's discriminator (never 0).
    pub my_discr: u32,
    /// The discriminator the sender heard from us, or 0.
    pub your_discr: u32,
    /// Desired Min TX Interval, µs.
    pub desired_min_tx_us: u32,
    /// Required Min RX Interval, µs (0: send me no periodic packets).
    pub required_min_rx_us: u32,
    /// Required Min Echo RX Interval, µs (0: echo not supported).
    pub required_min_echo_rx_us: u32,
}

const FLAG_POLL: u8 = 0x20;
const FLAG_FINAL: u8 = 0x10;
const FLAG_CPI: u8 = 0x08;
const FLAG_AUTH: u8 = 0x04;
const FLAG_DEMAND: u8 = 0x02;
const FLAG_MULTIPOINT: u8 = 0x01;

/// Encodes `packet` as the 24 bytes of a Control packet without authentication.
pub fn encode(packet: &ControlPacket) -> [u8; CONTROL_LEN] {
    let mut b = [0u8; CONTROL_LEN];
    b[0] = (VERSION << 5) | packet.diag.wire();
    let mut flags = packet.state.wire() << 6;
    for (is_set, bit) in [
        (packet.poll, FLAG_POLL),
        (packet.is_final, FLAG_FINAL),
        (packet.control_plane_independent, FLAG_CPI),
        (packet.demand, FLAG_DEMAND),
    ] {
        if is_set {
            flags |= bit;
        }
    }
    b[1] = flags;
    b[2] = packet.detect_mult;
    b[3] = CONTROL_LEN as u8;
    b[4..8].copy_from_slice(&packet.my_discr.to_be_bytes());
    b[8..12].copy_from_slice(&packet.your_discr.to_be_bytes());
    b[12..16].copy_from_slice(&packet.desired_min_tx_us.to_be_bytes());
    b[16..20].copy_from_slice(&packet.required_min_rx_us.to_be_bytes());
    b[20..24].copy_from_slice(&packet.required_min_echo_rx_us.to_be_bytes());
    b
}

/// Decodes one UDP payload, applying the checks of RFC 5880 §6.8.6 that need no session, in
/// the RFC's order, and refusing the A bit (FerroLB runs no authentication, so "the A bit is
/// set and no authentication is in use" always holds).
///
/// Bytes after the Length the packet declares are ignored.
pub fn decode(payload: &[u8]) -> Result<ControlPacket, DropReason> {
    let [first, flags, detect_mult, length, ..] = *payload else {
        return Err(DropReason::Truncated);
    };
    if first >> 5 != VERSION {
        return Err(DropReason::BadVersion);
    }
    let length = usize::from(length);
    let is_auth = flags & FLAG_AUTH != 0;
    let min_len = if is_auth {
        MIN_LEN_WITH_AUTH
    } else {
        CONTROL_LEN
    };
    if length < min_len {
        return Err(DropReason::LengthBelowMinimum);
    }
    if length > payload.len() {
        return Err(DropReason::LengthOverPayload);
    }
    if detect_mult == 0 {
        return Err(DropReason::ZeroDetectMult);
    }
    if flags & FLAG_MULTIPOINT != 0 {
        return Err(DropReason::Multipoint);
    }
    let word = |at: usize| {
        u32::from_be_bytes([
            payload[at],
            payload[at + 1],
            payload[at + 2],
            payload[at + 3],
        ])
    };
    let my_discr = word(4);
    if my_discr == 0 {
        return Err(DropReason::ZeroMyDiscriminator);
    }
    let your_discr = word(8);
    let state = State::from_wire(flags >> 6);
    if your_discr == 0 && !matches!(state, State::Down | State::AdminDown) {
        return Err(DropReason::ZeroYourDiscriminator);
    }
    if is_auth {
        return Err(DropReason::AuthenticationNotInUse);
    }
    Ok(ControlPacket {
        diag: Diag::from_wire(first),
        state,
        poll: flags & FLAG_POLL != 0,
        is_final: flags & FLAG_FINAL != 0,
        control_plane_independent: flags & FLAG_CPI != 0,
        demand: flags & FLAG_DEMAND != 0,
        detect_mult,
        my_discr,
        your_discr,
        desired_min_tx_us: word(12),
        required_min_rx_us: word(16),
        required_min_echo_rx_us: word(20),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up() -> ControlPacket {
        ControlPacket {
            diag: Diag::None,
            state: State::Up,
            poll: false,
            is_final: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discr: 1,
            your_discr: 2,
            desired_min_tx_us: 300_000,
            required_min_rx_us: 300_000,
            required_min_echo_rx_us: 0,
        }
    }

    #[test]
    fn every_state_and_diag_survives_the_wire() {
        for bits in 0..4 {
            assert_eq!(State::from_wire(bits).wire(), bits);
        }
        for bits in 0..32 {
            assert_eq!(Diag::from_wire(bits).wire(), bits);
        }
    }

    #[test]
    fn poll_and_final_land_on_their_own_bits() {
        let bytes = encode(&ControlPacket { poll: true, ..up() });
        assert_eq!(bytes[1], 0xc0 | FLAG_POLL);
        let bytes = encode(&ControlPacket {
            is_final: true,
            ..up()
        });
        assert_eq!(bytes[1], 0xc0 | FLAG_FINAL);
    }

    #[test]
    fn trailing_bytes_after_the_declared_length_are_ignored() {
        let mut bytes = encode(&up()).to_vec();
        bytes.extend_from_slice(&[0xde, 0xad]);
        assert_eq!(decode(&bytes), Ok(up()));
    }
}
