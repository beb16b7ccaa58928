//! Link-layer addresses and the IPv6 multicast groups the responder listens on.
//!
//! Owns `MacAddr` and the mapping of an IPv6 address to its solicited-node group
//! (RFC 4291 §2.7.1) and of an IPv6 multicast group to its Ethernet MAC (RFC 2464 §7).
//! Pure: no I/O.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// An IEEE 802 MAC address (six octets, transmission order).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff, where ARP requests and gratuitous ARP go.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00, the "unknown" target hardware address of an ARP request.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The group bit (least significant bit of the first octet) is set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// All six octets are zero.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// The six octets in transmission order.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a text MAC address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {text:?}: expected six hex octets separated by ':'")]
pub struct ParseMacError {
    /// The text that was given.
    pub text: String,
}

impl FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseMacError { text: s.to_owned() };
        let mut out = [0u8; 6];
        let mut parts = s.trim().split(':');
        for slot in &mut out {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || part.len() > 2 {
                return Err(err());
            }
            *slot = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

/// ff02::1, the link-local all-nodes group (RFC 4291 §2.7.1): where unsolicited
/// advertisements and answers to duplicate address detection go.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The solicited-node multicast address of `ip`: ff02::1:ff00:0/104 followed by the
/// low 24 bits of `ip` (RFC 4291 §2.7.1). A neighbour solicitation for `ip` is sent there.
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet MAC of an IPv6 multicast group: 33:33 followed by the low 32 bits of
/// the group (RFC 2464 §7).
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// 33:33:ff:XX:XX:XX, the MAC a neighbour solicitation for `ip` is sent to; the
/// responder joins it (packet membership) for every IPv6 address it announces.
pub fn solicited_node_mac(ip: Ipv6Addr) -> MacAddr {
    multicast_mac(solicited_node(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solicited_node_keeps_the_low_24_bits() {
        let ip: Ipv6Addr = "2001:db8::1:2345:6789".parse().expect("literal");
        let want: Ipv6Addr = "ff02::1:ff45:6789".parse().expect("literal");
        assert_eq!(solicited_node(ip), want);
    }

    #[test]
    fn solicited_node_mac_is_33_33_ff_and_the_low_24_bits() {
        let ip: Ipv6Addr = "2001:db8::aa:bbcc:ddee".parse().expect("literal");
        assert_eq!(
            solicited_node_mac(ip),
            MacAddr([0x33, 0x33, 0xff, 0xcc, 0xdd, 0xee])
        );
    }

    #[test]
    fn all_nodes_maps_to_33_33_0_0_0_1() {
        assert_eq!(multicast_mac(ALL_NODES), MacAddr([0x33, 0x33, 0, 0, 0, 1]));
    }

    #[test]
    fn mac_round_trips_through_text() {
        let mac = MacAddr([0x02, 0xab, 0, 0x10, 0xff, 0x7]);
        assert_eq!(mac.to_string(), "02:ab:00:10:ff:07");
        assert_eq!("02:ab:00:10:ff:07".parse::<MacAddr>(), Ok(mac));
    }

    #[test]
    fn mac_text_with_wrong_octet_count_is_refused() {
        assert!("02:ab:00:10:ff".parse::<MacAddr>().is_err());
        assert!("02:ab:00:10:ff:07:08".parse::<MacAddr>().is_err());
        assert!("02:ab:00:10:ff:zz".parse::<MacAddr>().is_err());
        assert!("02:ab:00:10:ff:".parse::<MacAddr>().is_err());
        assert!("002:ab:00:10:ff:01".parse::<MacAddr>().is_err());
    }

    #[test]
    fn group_bit_marks_multicast() {
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x33, 0x33, 0, 0, 0, 1]).is_multicast());
        assert!(!MacAddr([0x02, 0, 0, 0, 0, 1]).is_multicast());
    }
}
