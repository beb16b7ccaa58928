//! Ethernet II framing (IEEE 802.3 with an EtherType) and bounds-checked byte reads.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  Destination MAC (6 octets)                   |
//! +                               +-------------------------------+
//! |                               |                               |
//! +-------------------------------+                               +
//! |                     Source MAC (6 octets)                     |
//! +-------------------------------+-------------------------------+
//! |       EtherType (2)           |  payload ...
//! +-------------------------------+
//! ```
//! The frame check sequence is not present in frames read from a packet socket.
//! Pure: no I/O; every read is bounds-checked and never panics.

use super::addr::MacAddr;

/// ARP (RFC 826).
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// IPv6 (RFC 2464).
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Octets in an Ethernet II header.
pub const HEADER_LEN: usize = 14;

/// The 14-octet Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetHeader {
    /// Where the frame goes.
    pub dst: MacAddr,
    /// Who sent it.
    pub src: MacAddr,
    /// What the payload is.
    pub ethertype: u16,
}

impl EthernetHeader {
    /// Splits `frame` into its header and payload; `None` when it is shorter than 14 octets.
    pub fn parse(frame: &[u8]) -> Option<(EthernetHeader, &[u8])> {
        let header = EthernetHeader {
            dst: MacAddr(array_at(frame, 0)?),
            src: MacAddr(array_at(frame, 6)?),
            ethertype: u16_at(frame, 12)?,
        };
        Some((header, frame.get(HEADER_LEN..)?))
    }

    /// Appends the 14 header octets to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.dst.0);
        out.extend_from_slice(&self.src.0);
        out.extend_from_slice(&self.ethertype.to_be_bytes());
    }
}

/// The `N` octets of `data` starting at `at`, or `None` if they are not all there.
pub(crate) fn array_at<const N: usize>(data: &[u8], at: usize) -> Option<[u8; N]> {
    let end = at.checked_add(N)?;
    data.get(at..end)?.try_into().ok()
}

/// The big-endian `u16` at `at`.
pub(crate) fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    array_at::<2>(data, at).map(u16::from_be_bytes)
}

/// The octet at `at`.
pub(crate) fn u8_at(data: &[u8], at: usize) -> Option<u8> {
    data.get(at).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = EthernetHeader {
            dst: MacAddr::BROADCAST,
            src: MacAddr([2, 0, 0, 0, 0, 1]),
            ethertype: ETHERTYPE_ARP,
        };
        let mut out = Vec::new();
        h.write(&mut out);
        out.push(0xaa);
        assert_eq!(EthernetHeader::parse(&out), Some((h, &[0xaa][..])));
    }

    #[test]
    fn header_shorter_than_14_octets_is_refused_at_every_length() {
        let full = [0u8; HEADER_LEN];
        for len in 0..HEADER_LEN {
            assert_eq!(EthernetHeader::parse(&full[..len]), None, "len {len}");
        }
        assert!(EthernetHeader::parse(&full).is_some());
    }

    #[test]
    fn reads_past_the_end_return_none() {
        assert_eq!(u16_at(&[1], 0), None);
        assert_eq!(u8_at(&[], 0), None);
        assert_eq!(array_at::<4>(&[1, 2, 3, 4], usize::MAX), None);
    }
}
