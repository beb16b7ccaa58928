//! The fixed IPv6 header (RFC 8200 §3), enough to carry neighbour discovery.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Traffic Class |           Flow Label                  |
//! +-------+-------+-------+-------+---------------+---------------+
//! |         Payload Length        |  Next Header  |   Hop Limit   |
//! +-------------------------------+---------------+---------------+
//! |                                                               |
//! +                  Source Address (16 octets)                   +
//! |                                                               |
//! +---------------------------------------------------------------+
//! |                                                               |
//! +               Destination Address (16 octets)                 +
//! |                                                               |
//! +---------------------------------------------------------------+
//! ```
//! Extension headers are not followed: neighbour discovery messages carry none.
//! Pure: no I/O, never panics.

use std::net::Ipv6Addr;

use super::ethernet::{array_at, u8_at, u16_at};
use super::verdict::DropReason;

/// Octets in the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// Next-header value of ICMPv6.
pub const NEXT_HEADER_ICMPV6: u8 = 58;

/// The fields of the fixed header the responder reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Header {
    /// Protocol of the payload (58 for ICMPv6).
    pub next_header: u8,
    /// Remaining hops; neighbour discovery requires 255 (never routed).
    pub hop_limit: u8,
    /// Sender (:: during duplicate address detection).
    pub src: Ipv6Addr,
    /// Receiver (unicast, or a multicast group).
    pub dst: Ipv6Addr,
}

impl Ipv6Header {
    /// Splits `packet` into its header and exactly `payload length` octets of payload
    /// (Ethernet padding after it is cut off).
    pub fn parse(packet: &[u8]) -> Result<(Ipv6Header, &[u8]), DropReason> {
        let first = u8_at(packet, 0).ok_or(DropReason::Truncated)?;
        if packet.len() < HEADER_LEN {
            return Err(DropReason::Truncated);
        }
        if first >> 4 != 6 {
            return Err(DropReason::Ipv6BadVersion);
        }
        let payload_len = usize::from(u16_at(packet, 4).ok_or(DropReason::Truncated)?);
        let header = Ipv6Header {
            next_header: u8_at(packet, 6).ok_or(DropReason::Truncated)?,
            hop_limit: u8_at(packet, 7).ok_or(DropReason::Truncated)?,
            src: array_at::<16>(packet, 8)
                .map(Ipv6Addr::from)
                .ok_or(DropReason::Truncated)?,
            dst: array_at::<16>(packet, 24)
                .map(Ipv6Addr::from)
                .ok_or(DropReason::Truncated)?,
        };
        let payload = packet
            .get(HEADER_LEN..HEADER_LEN + payload_len)
            .ok_or(DropReason::Ipv6BadPayloadLength)?;
        Ok((header, payload))
    }

    /// Appends the 40 header octets for a payload of `payload_len` octets (traffic class
    /// and flow label zero).
    pub fn write(&self, payload_len: u16, out: &mut Vec<u8>) {
        out.extend_from_slice(&[0x60, 0, 0, 0]);
        out.extend_from_slice(&payload_len.to_be_bytes());
        out.push(self.next_header);
        out.push(self.hop_limit);
        out.extend_from_slice(&self.src.octets());
        out.extend_from_slice(&self.dst.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Ipv6Header {
        Ipv6Header {
            next_header: NEXT_HEADER_ICMPV6,
            hop_limit: 255,
            src: "2001:db8::1".parse().expect("literal"),
            dst: "ff02::1".parse().expect("literal"),
        }
    }

    #[test]
    fn header_round_trips_and_cuts_padding() {
        let mut out = Vec::new();
        header().write(3, &mut out);
        out.extend_from_slice(&[1, 2, 3, 0, 0]);
        assert_eq!(Ipv6Header::parse(&out), Ok((header(), &[1, 2, 3][..])));
    }

    #[test]
    fn payload_length_beyond_the_data_is_dropped() {
        let mut out = Vec::new();
        header().write(4, &mut out);
        out.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            Ipv6Header::parse(&out),
            Err(DropReason::Ipv6BadPayloadLength)
        );
    }

    #[test]
    fn version_4_is_dropped() {
        let mut out = Vec::new();
        header().write(0, &mut out);
        out[0] = 0x45;
        assert_eq!(Ipv6Header::parse(&out), Err(DropReason::Ipv6BadVersion));
    }

    #[test]
    fn header_truncated_at_every_length_is_dropped_as_truncated() {
        let mut out = Vec::new();
        header().write(0, &mut out);
        for len in 0..HEADER_LEN {
            assert_eq!(
                Ipv6Header::parse(&out[..len]),
                Err(DropReason::Truncated),
                "{len}"
            );
        }
    }
}
