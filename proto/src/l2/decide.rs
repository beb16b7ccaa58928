//! The responder's one decision: given a received frame, the interface's MAC and the
//! addresses announced on that interface, the reply to send or the reason not to.
//!
//! Pure: no I/O, no clock; the socket driver calls it for every frame it reads.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;

use super::addr::{self, MacAddr};
use super::arp::{self, ArpFrame};
use super::ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV6, EthernetHeader};
use super::ndp::{self, NeighborSolicitation};
use super::verdict::{DropReason, Verdict};

/// The set of addresses announced on one interface.
pub trait Announced {
    /// Whether we answer for `ip` on this interface.
    fn is_announced(&self, ip: IpAddr) -> bool;
}

impl Announced for BTreeSet<IpAddr> {
    fn is_announced(&self, ip: IpAddr) -> bool {
        self.contains(&ip)
    }
}

impl Announced for HashSet<IpAddr> {
    fn is_announced(&self, ip: IpAddr) -> bool {
        self.contains(&ip)
    }
}

/// Answers an ARP request or a neighbour solicitation for an announced address.
pub fn decide(frame: &[u8], our_mac: MacAddr, announced: &impl Announced) -> Verdict {
    match answer(frame, our_mac, announced) {
        Ok(reply) => Verdict::Reply(reply),
        Err(reason) => Verdict::Drop(reason),
    }
}

fn answer(
    frame: &[u8],
    our_mac: MacAddr,
    announced: &impl Announced,
) -> Result<Vec<u8>, DropReason> {
    let (eth, _) = EthernetHeader::parse(frame).ok_or(DropReason::Truncated)?;
    if eth.src == our_mac {
        return Err(DropReason::OwnFrame);
    }
    match eth.ethertype {
        ETHERTYPE_ARP => answer_arp(frame, our_mac, announced),
        ETHERTYPE_IPV6 => answer_ndp(frame, our_mac, announced),
        _ => Err(DropReason::UnsupportedEtherType),
    }
}

fn answer_arp(
    frame: &[u8],
    our_mac: MacAddr,
    announced: &impl Announced,
) -> Result<Vec<u8>, DropReason> {
    let request = ArpFrame::parse_request(frame)?;
    if request.eth.dst != MacAddr::BROADCAST && request.eth.dst != our_mac {
        return Err(DropReason::NotForUs);
    }
    if !announced.is_announced(IpAddr::V4(request.target_ip)) {
        return Err(DropReason::UnknownTarget);
    }
    Ok(arp::reply(&request, our_mac).to_bytes())
}

fn answer_ndp(
    frame: &[u8],
    our_mac: MacAddr,
    announced: &impl Announced,
) -> Result<Vec<u8>, DropReason> {
    let ns = NeighborSolicitation::parse(frame)?;
    let is_group_mac = ns.dst.is_multicast() && ns.eth.dst == addr::multicast_mac(ns.dst);
    if ns.eth.dst != our_mac && !is_group_mac {
        return Err(DropReason::NotForUs);
    }
    if !announced.is_announced(IpAddr::V6(ns.target)) {
        return Err(DropReason::UnknownTarget);
    }
    Ok(ndp::advertisement_for(&ns, our_mac).to_bytes())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::l2::ndp::NeighborAdvertisement;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    /// The MAC of the host asking, in every test question.
    pub(crate) const ASKER: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xaa]);

    fn vip4() -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, 10)
    }

    fn vip6() -> Ipv6Addr {
        "2001:db8::10".parse().expect("literal")
    }

    fn announced() -> BTreeSet<IpAddr> {
        [IpAddr::V4(vip4()), IpAddr::V6(vip6())]
            .into_iter()
            .collect()
    }

    /// An ARP request for `ip` from 192.0.2.1 ([`ASKER`]).
    pub(crate) fn who_has(ip: Ipv4Addr) -> ArpFrame {
        let mut req = arp::gratuitous_request(ip, ASKER);
        req.sender_ip = Ipv4Addr::new(192, 0, 2, 1);
        req
    }

    /// A multicast neighbour solicitation for `target` from 2001:db8::1 ([`ASKER`]).
    pub(crate) fn ns_for(target: Ipv6Addr) -> NeighborSolicitation {
        NeighborSolicitation {
            eth: EthernetHeader {
                dst: addr::solicited_node_mac(target),
                src: ASKER,
                ethertype: ETHERTYPE_IPV6,
            },
            src: "2001:db8::1".parse().expect("literal"),
            dst: addr::solicited_node(target),
            target,
            source_lla: Some(ASKER),
        }
    }

    #[test]
    fn arp_request_for_an_announced_ip_gets_a_reply_with_our_mac() {
        let Verdict::Reply(bytes) = decide(&who_has(vip4()).to_bytes(), OUR_MAC, &announced())
        else {
            panic!("expected a reply");
        };
        let reply = ArpFrame::parse(&bytes).expect("reply parses");
        assert_eq!(reply.op, arp::ArpOp::Reply);
        assert_eq!(reply.sender_mac, OUR_MAC);
        assert_eq!(reply.sender_ip, vip4());
        assert_eq!(reply.eth.dst, ASKER);
    }

    #[test]
    fn arp_request_for_another_ip_is_dropped_as_unknown_target() {
        let frame = who_has(Ipv4Addr::new(192, 0, 2, 99)).to_bytes();
        assert_eq!(
            decide(&frame, OUR_MAC, &announced()),
            Verdict::Drop(DropReason::UnknownTarget)
        );
    }

    #[test]
    fn arp_request_unicast_to_another_mac_is_not_for_us() {
        let mut req = who_has(vip4());
        req.eth.dst = MacAddr([0x02, 0, 0, 0, 0, 0x55]);
        assert_eq!(
            decide(&req.to_bytes(), OUR_MAC, &announced()),
            Verdict::Drop(DropReason::NotForUs)
        );
    }

    #[test]
    fn arp_request_unicast_to_our_mac_is_answered() {
        let mut req = who_has(vip4());
        req.eth.dst = OUR_MAC;
        assert!(matches!(
            decide(&req.to_bytes(), OUR_MAC, &announced()),
            Verdict::Reply(_)
        ));
    }

    #[test]
    fn a_frame_we_sent_is_dropped_as_our_own() {
        let frame = arp::gratuitous_request(vip4(), OUR_MAC).to_bytes();
        assert_eq!(
            decide(&frame, OUR_MAC, &announced()),
            Verdict::Drop(DropReason::OwnFrame)
        );
    }

    #[test]
    fn nothing_is_answered_when_nothing_is_announced() {
        let none = BTreeSet::new();
        let arp = who_has(vip4()).to_bytes();
        let ns = ns_for(vip6()).to_bytes();
        for frame in [arp, ns] {
            assert_eq!(
                decide(&frame, OUR_MAC, &none),
                Verdict::Drop(DropReason::UnknownTarget)
            );
        }
    }

    #[test]
    fn solicitation_for_an_announced_ip_gets_a_solicited_na() {
        let Verdict::Reply(bytes) = decide(&ns_for(vip6()).to_bytes(), OUR_MAC, &announced())
        else {
            panic!("expected a reply");
        };
        let na = NeighborAdvertisement::parse(&bytes).expect("NA parses");
        assert_eq!(na.target, vip6());
        assert_eq!(na.target_lla, Some(OUR_MAC));
        assert!(na.is_solicited);
    }

    #[test]
    fn solicitation_for_another_ip_is_dropped_as_unknown_target() {
        let frame = ns_for("2001:db8::99".parse().expect("literal")).to_bytes();
        assert_eq!(
            decide(&frame, OUR_MAC, &announced()),
            Verdict::Drop(DropReason::UnknownTarget)
        );
    }

    #[test]
    fn solicitation_to_a_group_mac_not_matching_its_ip_is_not_for_us() {
        let mut ns = ns_for(vip6());
        ns.eth.dst = MacAddr([0x33, 0x33, 0xff, 0, 0, 0x99]);
        assert_eq!(
            decide(&ns.to_bytes(), OUR_MAC, &announced()),
            Verdict::Drop(DropReason::NotForUs)
        );
    }

    #[test]
    fn ipv4_frame_is_an_unsupported_ethertype() {
        let mut frame = who_has(vip4()).to_bytes();
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(
            decide(&frame, OUR_MAC, &announced()),
            Verdict::Drop(DropReason::UnsupportedEtherType)
        );
    }

    #[test]
    fn runt_frame_is_truncated() {
        assert_eq!(
            decide(&[1, 2, 3], OUR_MAC, &announced()),
            Verdict::Drop(DropReason::Truncated)
        );
    }
}
