//! Neighbour discovery for IPv6 over Ethernet (RFC 4861): validate a neighbour
//! solicitation as §7.1.1 requires and build neighbour advertisements (§7.2.4, §7.2.6).
//!
//! Neighbour solicitation (ICMPv6 type 135), after the Ethernet and IPv6 headers:
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Type (135)  |   Code (0)    |          Checksum             |
//! +---------------+---------------+-------------------------------+
//! |                           Reserved                            |
//! +---------------------------------------------------------------+
//! |                                                               |
//! +                  Target Address (16 octets)                   +
//! |                                                               |
//! +---------------------------------------------------------------+
//! |   Options ...
//! +-+-+-+-+-+-+-+-+-+-+-+-
//! ```
//! Neighbour advertisement (type 136): the same, but the reserved word starts with the
//! flags `R` (router), `S` (solicited) and `O` (override):
//! ```text
//! +---------------+---------------+-------------------------------+
//! |   Type (136)  |   Code (0)    |          Checksum             |
//! +-+-+-+---------+---------------+-------------------------------+
//! |R|S|O|                     Reserved                            |
//! +-+-+-+---------------------------------------------------------+
//! |                  Target Address (16 octets)                   |
//! +---------------------------------------------------------------+
//! |   Options ...
//! ```
//! Each option is type (1 octet), length in units of 8 octets (1 octet), value. The
//! link-layer address options (source = 1, target = 2) on Ethernet have length 1:
//! ```text
//! +---------------+---------------+-------------------------------+
//! |  Type (1|2)   |  Length (1)   |                               |
//! +---------------+---------------+                               +
//! |                 Link-Layer Address (6 octets)                 |
//! +---------------------------------------------------------------+
//! ```
//! Pure: no I/O, never panics.

use std::net::Ipv6Addr;

use super::addr::{self, MacAddr};
use super::checksum;
use super::ethernet::{ETHERTYPE_IPV6, EthernetHeader, array_at, u8_at};
use super::ipv6::{self, Ipv6Header, NEXT_HEADER_ICMPV6};
use super::verdict::DropReason;

/// ICMPv6 type of a neighbour solicitation.
pub const TYPE_NEIGHBOR_SOLICITATION: u8 = 135;
/// ICMPv6 type of a neighbour advertisement.
pub const TYPE_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// RFC 4861 §7.1.1: "The IP Hop Limit field has a value of 255".
pub const HOP_LIMIT: u8 = 255;
/// RFC 4861 §7.1.1: "ICMP length (derived from the IP length) is 24 or more octets".
pub const MIN_ICMP_LEN: usize = 24;
/// Octets of the ICMPv6 part of an advertisement we send (fixed part + one option).
const NA_ICMP_LEN: usize = MIN_ICMP_LEN + 8;

const OPT_SOURCE_LLA: u8 = 1;
const OPT_TARGET_LLA: u8 = 2;
const FLAG_ROUTER: u8 = 0x80;
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

/// A neighbour solicitation that passed every check of RFC 4861 §7.1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborSolicitation {
    /// The Ethernet header it came with.
    pub eth: EthernetHeader,
    /// IPv6 source (:: for duplicate address detection) and destination.
    pub src: Ipv6Addr,
    /// The solicited-node group of `target`, or `target` itself (unicast reachability check).
    pub dst: Ipv6Addr,
    /// The address whose link-layer address is asked for.
    pub target: Ipv6Addr,
    /// The asker's MAC from the source link-layer address option, if present.
    pub source_lla: Option<MacAddr>,
}

/// A neighbour advertisement, with its Ethernet and IPv6 addressing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborAdvertisement {
    /// Ethernet header (destination: the asker, or 33:33:00:00:00:01).
    pub eth: EthernetHeader,
    /// IPv6 source: the target address itself.
    pub src: Ipv6Addr,
    /// IPv6 destination: the asker, or ff02::1.
    pub dst: Ipv6Addr,
    /// R: the sender is a router. Always false for us.
    pub is_router: bool,
    /// S: an answer to a solicitation (false for unsolicited and DAD answers).
    pub is_solicited: bool,
    /// O: replace an existing cache entry.
    pub is_override: bool,
    /// The address being advertised.
    pub target: Ipv6Addr,
    /// The MAC that owns `target` (target link-layer address option).
    pub target_lla: Option<MacAddr>,
}

/// An Ethernet/IPv6/ICMPv6 frame split into its parts; the ICMPv6 part is cut to the
/// IPv6 payload length.
struct IcmpFrame<'a> {
    eth: EthernetHeader,
    ip: Ipv6Header,
    icmp: &'a [u8],
}

/// Reads the Ethernet and IPv6 headers and checks the ICMPv6 type.
fn split_icmp(frame: &[u8], icmp_type: u8) -> Result<IcmpFrame<'_>, DropReason> {
    let (eth, packet) = EthernetHeader::parse(frame).ok_or(DropReason::Truncated)?;
    if eth.ethertype != ETHERTYPE_IPV6 {
        return Err(DropReason::UnsupportedEtherType);
    }
    let (ip, icmp) = Ipv6Header::parse(packet)?;
    if ip.next_header != NEXT_HEADER_ICMPV6 {
        return Err(DropReason::NotIcmpv6);
    }
    if u8_at(icmp, 0).ok_or(DropReason::NdpTooShort)? != icmp_type {
        return Err(DropReason::NotNeighborSolicitation);
    }
    Ok(IcmpFrame { eth, ip, icmp })
}

/// The common checks of RFC 4861 §7.1.1 and §7.1.2 (hop limit, code, length, checksum).
fn check_icmp(f: &IcmpFrame<'_>) -> Result<(), DropReason> {
    if f.ip.hop_limit != HOP_LIMIT {
        return Err(DropReason::NdpBadHopLimit);
    }
    if u8_at(f.icmp, 1) != Some(0) {
        return Err(DropReason::NdpBadIcmpCode);
    }
    if f.icmp.len() < MIN_ICMP_LEN {
        return Err(DropReason::NdpTooShort);
    }
    if checksum::icmpv6(f.ip.src, f.ip.dst, f.icmp) != 0 {
        return Err(DropReason::NdpBadChecksum);
    }
    Ok(())
}

/// What the options of a message said about one link-layer address option type.
struct LinkLayerOption {
    /// An option of the wanted type was present (whatever its length).
    is_present: bool,
    /// Its address, when it had the Ethernet length (1).
    mac: Option<MacAddr>,
}

/// Walks the options after the fixed 24 octets; every option must have a length > 0
/// and end inside the message.
fn link_layer_option(icmp: &[u8], wanted: u8) -> Result<LinkLayerOption, DropReason> {
    let mut found = LinkLayerOption {
        is_present: false,
        mac: None,
    };
    let mut at = MIN_ICMP_LEN;
    while at < icmp.len() {
        let kind = u8_at(icmp, at).ok_or(DropReason::NdpTruncatedOption)?;
        let units = u8_at(icmp, at + 1).ok_or(DropReason::NdpTruncatedOption)?;
        if units == 0 {
            return Err(DropReason::NdpZeroLengthOption);
        }
        let end = at + usize::from(units) * 8;
        if end > icmp.len() {
            return Err(DropReason::NdpTruncatedOption);
        }
        if kind == wanted && !found.is_present {
            found.is_present = true;
            if units == 1 {
                found.mac = array_at::<6>(icmp, at + 2).map(MacAddr);
            }
        }
        at = end;
    }
    Ok(found)
}

/// The 16-octet address at octet 8 of a neighbour discovery message.
fn target_of(icmp: &[u8]) -> Result<Ipv6Addr, DropReason> {
    array_at::<16>(icmp, 8)
        .map(Ipv6Addr::from)
        .ok_or(DropReason::NdpTooShort)
}

impl NeighborSolicitation {
    /// Parses a whole Ethernet frame and applies RFC 4861 §7.1.1, checksum included.
    pub fn parse(frame: &[u8]) -> Result<NeighborSolicitation, DropReason> {
        let f = split_icmp(frame, TYPE_NEIGHBOR_SOLICITATION)?;
        check_icmp(&f)?;
        let target = target_of(f.icmp)?;
        if target.is_multicast() {
            return Err(DropReason::NdpMulticastTarget);
        }
        let slla = link_layer_option(f.icmp, OPT_SOURCE_LLA)?;
        if f.ip.src.is_multicast() {
            return Err(DropReason::NdpMulticastSource);
        }
        let solicited_group = addr::solicited_node(target);
        if f.ip.src.is_unspecified() {
            if slla.is_present {
                return Err(DropReason::NdpUnspecifiedSourceWithLinkLayerOption);
            }
            if f.ip.dst != solicited_group {
                return Err(DropReason::NdpUnspecifiedSourceBadDestination);
            }
        }
        if f.ip.dst != solicited_group && f.ip.dst != target {
            return Err(DropReason::NdpBadDestination);
        }
        // A DAD probe is answered to all-nodes by design; anything else goes back to the
        // asker's link-layer address, which must name one host.
        let reply_to = slla.mac.unwrap_or(f.eth.src);
        if !f.ip.src.is_unspecified() && (reply_to.is_multicast() || reply_to.is_zero()) {
            return Err(DropReason::NdpBadSourceLinkLayerAddress);
        }
        Ok(NeighborSolicitation {
            eth: f.eth,
            src: f.ip.src,
            dst: f.ip.dst,
            target,
            source_lla: slla.mac,
        })
    }

    /// Duplicate address detection: the asker has no address yet (source ::).
    pub fn is_dad(&self) -> bool {
        self.src.is_unspecified()
    }

    /// The frame (hop limit 255, correct checksum, a source link-layer address option
    /// when `source_lla` is set). Used by tests, fuzz seeds and benchmarks.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut icmp = vec![TYPE_NEIGHBOR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&self.target.octets());
        if let Some(mac) = self.source_lla {
            icmp.extend_from_slice(&[OPT_SOURCE_LLA, 1]);
            icmp.extend_from_slice(&mac.0);
        }
        frame(self.eth, self.src, self.dst, icmp)
    }
}

impl NeighborAdvertisement {
    /// Parses a neighbour advertisement frame (RFC 4861 §7.1.2 checks); `None` for
    /// anything else. Used by tests and diagnostics, not on the receive path.
    pub fn parse(frame: &[u8]) -> Option<NeighborAdvertisement> {
        let f = split_icmp(frame, TYPE_NEIGHBOR_ADVERTISEMENT).ok()?;
        check_icmp(&f).ok()?;
        let flags = u8_at(f.icmp, 4)?;
        let target = target_of(f.icmp).ok()?;
        let tlla = link_layer_option(f.icmp, OPT_TARGET_LLA).ok()?;
        Some(NeighborAdvertisement {
            eth: f.eth,
            src: f.ip.src,
            dst: f.ip.dst,
            is_router: flags & FLAG_ROUTER != 0,
            is_solicited: flags & FLAG_SOLICITED != 0,
            is_override: flags & FLAG_OVERRIDE != 0,
            target,
            target_lla: tlla.mac,
        })
    }

    /// The frame, with hop limit 255 and a correct ICMPv6 checksum.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut flags = 0;
        if self.is_router {
            flags |= FLAG_ROUTER;
        }
        if self.is_solicited {
            flags |= FLAG_SOLICITED;
        }
        if self.is_override {
            flags |= FLAG_OVERRIDE;
        }
        let mut icmp = Vec::with_capacity(NA_ICMP_LEN);
        icmp.extend_from_slice(&[TYPE_NEIGHBOR_ADVERTISEMENT, 0, 0, 0, flags, 0, 0, 0]);
        icmp.extend_from_slice(&self.target.octets());
        if let Some(mac) = self.target_lla {
            icmp.extend_from_slice(&[OPT_TARGET_LLA, 1]);
            icmp.extend_from_slice(&mac.0);
        }
        frame(self.eth, self.src, self.dst, icmp)
    }
}

/// Wraps an ICMPv6 message (checksum field zero) in IPv6 and Ethernet, filling in the
/// checksum.
fn frame(eth: EthernetHeader, src: Ipv6Addr, dst: Ipv6Addr, mut icmp: Vec<u8>) -> Vec<u8> {
    let sum = checksum::icmpv6(src, dst, &icmp);
    if let Some(field) = icmp.get_mut(2..4) {
        field.copy_from_slice(&sum.to_be_bytes());
    }
    let ip = Ipv6Header {
        next_header: NEXT_HEADER_ICMPV6,
        hop_limit: HOP_LIMIT,
        src,
        dst,
    };
    let mut out = Vec::with_capacity(super::ethernet::HEADER_LEN + ipv6::HEADER_LEN + icmp.len());
    EthernetHeader {
        ethertype: ETHERTYPE_IPV6,
        ..eth
    }
    .write(&mut out);
    ip.write(u16::try_from(icmp.len()).unwrap_or(u16::MAX), &mut out);
    out.extend_from_slice(&icmp);
    out
}

/// The answer to `ns` for the address we own (RFC 4861 §7.2.4): a solicited advertisement
/// (S=1, O=1) sent unicast to the asker, or for duplicate address detection (source ::)
/// an advertisement with S=0 to all-nodes ff02::1. Always carries our MAC as the target
/// link-layer address.
pub fn advertisement_for(ns: &NeighborSolicitation, our_mac: MacAddr) -> NeighborAdvertisement {
    let (eth_dst, ip_dst) = if ns.is_dad() {
        (addr::multicast_mac(addr::ALL_NODES), addr::ALL_NODES)
    } else {
        (ns.source_lla.unwrap_or(ns.eth.src), ns.src)
    };
    NeighborAdvertisement {
        eth: EthernetHeader {
            dst: eth_dst,
            src: our_mac,
            ethertype: ETHERTYPE_IPV6,
        },
        src: ns.target,
        dst: ip_dst,
        is_router: false,
        is_solicited: !ns.is_dad(),
        is_override: true,
        target: ns.target,
        target_lla: Some(our_mac),
    }
}

/// An unsolicited advertisement of `ip` at `our_mac` to all-nodes (RFC 4861 §7.2.6):
/// S=0, O=1, so that neighbours replace a stale entry after a failover.
pub fn unsolicited_advertisement(ip: Ipv6Addr, our_mac: MacAddr) -> NeighborAdvertisement {
    NeighborAdvertisement {
        eth: EthernetHeader {
            dst: addr::multicast_mac(addr::ALL_NODES),
            src: our_mac,
            ethertype: ETHERTYPE_IPV6,
        },
        src: ip,
        dst: addr::ALL_NODES,
        is_router: false,
        is_solicited: false,
        is_override: true,
        target: ip,
        target_lla: Some(our_mac),
    }
}

#[cfg(test)]
mod tests;
