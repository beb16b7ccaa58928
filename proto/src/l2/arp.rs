//! ARP for IPv4 over Ethernet (RFC 826): parse a request, build a reply and the two
//! forms of gratuitous ARP (RFC 5227 §3).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Ethernet II header, EtherType 0x0806 (14 octets, ethernet.rs)|
//! +-------------------------------+-------------------------------+
//! |   Hardware type (1 = Ether)   |  Protocol type (0x0800 IPv4)  |
//! +---------------+---------------+-------------------------------+
//! | HW len (6)    | Proto len (4) |  Operation (1 req, 2 reply)   |
//! +---------------+---------------+-------------------------------+
//! |            Sender hardware address (6 octets)                 |
//! +                               +-------------------------------+
//! |                               |  Sender protocol address (4)  |
//! +-------------------------------+                               +
//! |                               |                               |
//! +-------------------------------+                               +
//! |            Target hardware address (6 octets)                 |
//! +-------------------------------+-------------------------------+
//! |              Target protocol address (4 octets)               |
//! +-------------------------------+-------------------------------+
//! ```
//! 42 octets in all; trailing Ethernet padding is ignored. Pure: no I/O, never panics.

use std::net::Ipv4Addr;

use super::addr::MacAddr;
use super::ethernet::{ETHERTYPE_ARP, EthernetHeader, array_at, u8_at, u16_at};
use super::verdict::DropReason;

/// Octets of the ARP body for Ethernet/IPv4.
pub const ARP_LEN: usize = 28;
/// Octets of a whole ARP frame without padding.
pub const FRAME_LEN: usize = super::ethernet::HEADER_LEN + ARP_LEN;

const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;

/// The ARP operation field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    /// 1: who has `target_ip`?
    Request,
    /// 2: `sender_ip` is at `sender_mac`.
    Reply,
    /// Anything else (RARP and friends); never answered.
    Other(u16),
}

impl ArpOp {
    fn code(self) -> u16 {
        match self {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
            ArpOp::Other(c) => c,
        }
    }

    fn from_code(c: u16) -> ArpOp {
        match c {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            other => ArpOp::Other(other),
        }
    }
}

/// An Ethernet/IPv4 ARP frame, header included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpFrame {
    /// The Ethernet header it came in (or goes out) with.
    pub eth: EthernetHeader,
    /// Request, reply or other.
    pub op: ArpOp,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender protocol address (0.0.0.0 in an RFC 5227 probe).
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (ignored in requests).
    pub target_mac: MacAddr,
    /// Target protocol address: what is asked about.
    pub target_ip: Ipv4Addr,
}

impl ArpFrame {
    /// Parses any well-formed Ethernet/IPv4 ARP frame (request or reply).
    pub fn parse(frame: &[u8]) -> Result<ArpFrame, DropReason> {
        let (eth, body) = EthernetHeader::parse(frame).ok_or(DropReason::Truncated)?;
        if eth.ethertype != ETHERTYPE_ARP {
            return Err(DropReason::UnsupportedEtherType);
        }
        if body.len() < ARP_LEN {
            return Err(DropReason::Truncated);
        }
        let field16 = |at| u16_at(body, at).ok_or(DropReason::Truncated);
        let field8 = |at| u8_at(body, at).ok_or(DropReason::Truncated);
        let mac = |at| {
            array_at::<6>(body, at)
                .map(MacAddr)
                .ok_or(DropReason::Truncated)
        };
        let ip = |at| {
            array_at::<4>(body, at)
                .map(Ipv4Addr::from)
                .ok_or(DropReason::Truncated)
        };
        if field16(0)? != HTYPE_ETHERNET {
            return Err(DropReason::ArpBadHardwareType);
        }
        if field16(2)? != PTYPE_IPV4 {
            return Err(DropReason::ArpBadProtocolType);
        }
        if field8(4)? != 6 || field8(5)? != 4 {
            return Err(DropReason::ArpBadAddressLength);
        }
        Ok(ArpFrame {
            eth,
            op: ArpOp::from_code(field16(6)?),
            sender_mac: mac(8)?,
            sender_ip: ip(14)?,
            target_mac: mac(18)?,
            target_ip: ip(24)?,
        })
    }

    /// Parses a frame and keeps it only if it is a question we could answer: an ARP
    /// request from a unicast sender that is not itself an announcement.
    pub fn parse_request(frame: &[u8]) -> Result<ArpFrame, DropReason> {
        let arp = ArpFrame::parse(frame)?;
        if arp.op != ArpOp::Request {
            return Err(DropReason::ArpNotRequest);
        }
        if arp.sender_mac.is_multicast() || arp.sender_mac.is_zero() {
            return Err(DropReason::ArpBadSenderMac);
        }
        if arp.sender_ip == arp.target_ip {
            return Err(DropReason::ArpGratuitous);
        }
        Ok(arp)
    }

    /// The 42-octet frame.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FRAME_LEN);
        self.eth.write(&mut out);
        out.extend_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        out.extend_from_slice(&PTYPE_IPV4.to_be_bytes());
        out.extend_from_slice(&[6, 4]);
        out.extend_from_slice(&self.op.code().to_be_bytes());
        out.extend_from_slice(&self.sender_mac.0);
        out.extend_from_slice(&self.sender_ip.octets());
        out.extend_from_slice(&self.target_mac.0);
        out.extend_from_slice(&self.target_ip.octets());
        out
    }
}

/// The reply to `request`: `request.target_ip` is at `our_mac`, sent unicast to the asker
/// (RFC 826 "swap sender and target, put in our addresses, set opcode to reply").
pub fn reply(request: &ArpFrame, our_mac: MacAddr) -> ArpFrame {
    ArpFrame {
        eth: EthernetHeader {
            dst: request.sender_mac,
            src: our_mac,
            ethertype: ETHERTYPE_ARP,
        },
        op: ArpOp::Reply,
        sender_mac: our_mac,
        sender_ip: request.target_ip,
        target_mac: request.sender_mac,
        target_ip: request.sender_ip,
    }
}

/// Gratuitous ARP, request form (RFC 5227 §3 "ARP Announcement"): broadcast, sender and
/// target IP both `ip`, target MAC zero. Updates every neighbour's cache entry for `ip`.
pub fn gratuitous_request(ip: Ipv4Addr, our_mac: MacAddr) -> ArpFrame {
    ArpFrame {
        eth: EthernetHeader {
            dst: MacAddr::BROADCAST,
            src: our_mac,
            ethertype: ETHERTYPE_ARP,
        },
        op: ArpOp::Request,
        sender_mac: our_mac,
        sender_ip: ip,
        target_mac: MacAddr::ZERO,
        target_ip: ip,
    }
}

/// Gratuitous ARP, reply form: broadcast, sender and target IP both `ip`, target MAC
/// broadcast. Some hosts only update their caches from replies, so both forms are sent.
pub fn gratuitous_reply(ip: Ipv4Addr, our_mac: MacAddr) -> ArpFrame {
    ArpFrame {
        op: ArpOp::Reply,
        target_mac: MacAddr::BROADCAST,
        ..gratuitous_request(ip, our_mac)
    }
}

#[cfg(test)]
mod tests;
