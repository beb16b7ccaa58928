//! What the responder does with one received frame: answer it or drop it, and why.
//!
//! A `DropReason` is not an error: it names a frame we do not answer (malformed,
//! not a question, or not about an address we announce), so that each reason can be
//! counted. Pure: no I/O.

/// The outcome of looking at one received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send these bytes (a whole Ethernet frame) on the interface the question came in on.
    Reply(Vec<u8>),
    /// Do not answer; count the reason.
    Drop(DropReason),
}

/// Why a frame was not answered. `reason()` is its stable metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Shorter than the headers it claims to carry.
    Truncated,
    /// The EtherType is neither ARP (0x0806) nor IPv6 (0x86dd).
    UnsupportedEtherType,
    /// The Ethernet destination is neither broadcast, our MAC, nor the group asked about.
    NotForUs,
    /// The frame was sent by the interface itself.
    OwnFrame,
    /// ARP hardware type other than Ethernet (1).
    ArpBadHardwareType,
    /// ARP protocol type other than IPv4 (0x0800).
    ArpBadProtocolType,
    /// ARP hardware length other than 6 or protocol length other than 4.
    ArpBadAddressLength,
    /// ARP operation other than request (1); replies are not questions.
    ArpNotRequest,
    /// The ARP sender hardware address is multicast or zero.
    ArpBadSenderMac,
    /// Sender IP equals target IP: someone announces the address; nothing to answer.
    ArpGratuitous,
    /// The IPv6 version field is not 6.
    Ipv6BadVersion,
    /// The IPv6 payload length exceeds the bytes received.
    Ipv6BadPayloadLength,
    /// The IPv6 next header is not ICMPv6 (extension headers are not followed).
    NotIcmpv6,
    /// The ICMPv6 type is not neighbour solicitation (135).
    NotNeighborSolicitation,
    /// RFC 4861 §7.1.1: the IP hop limit is not 255 (the packet was routed).
    NdpBadHopLimit,
    /// RFC 4861 §7.1.1: the ICMP code is not 0.
    NdpBadIcmpCode,
    /// RFC 4861 §7.1.1: the ICMP length is under 24 octets.
    NdpTooShort,
    /// The ICMPv6 checksum does not match.
    NdpBadChecksum,
    /// RFC 4861 §7.1.1: the target address is multicast.
    NdpMulticastTarget,
    /// RFC 4861 §7.1.1: an option has length 0.
    NdpZeroLengthOption,
    /// An option runs past the end of the message.
    NdpTruncatedOption,
    /// RFC 4861 §7.1.1: the source is :: but a source link-layer address option is present.
    NdpUnspecifiedSourceWithLinkLayerOption,
    /// RFC 4861 §7.1.1: the source is :: but the destination is not a solicited-node group.
    NdpUnspecifiedSourceBadDestination,
    /// The IPv6 source is a multicast address.
    NdpMulticastSource,
    /// The IPv6 destination is neither the target nor its solicited-node group.
    NdpBadDestination,
    /// The answer would go to a multicast, broadcast or zero link-layer address (the
    /// source link-layer option's, else the frame's source): answering would reflect
    /// one forged question to every host of the segment.
    NdpBadSourceLinkLayerAddress,
    /// The question is about an address we do not announce on this interface.
    UnknownTarget,
    /// The speaker's heartbeat is older than its bound: the process may be frozen while
    /// another node has taken its addresses over, so this node must not answer.
    SpeakerStalled,
}

impl DropReason {
    /// Every reason, in declaration order (for metric initialisation and dense counters).
    pub const ALL: [DropReason; 28] = [
        DropReason::Truncated,
        DropReason::UnsupportedEtherType,
        DropReason::NotForUs,
        DropReason::OwnFrame,
        DropReason::ArpBadHardwareType,
        DropReason::ArpBadProtocolType,
        DropReason::ArpBadAddressLength,
        DropReason::ArpNotRequest,
        DropReason::ArpBadSenderMac,
        DropReason::ArpGratuitous,
        DropReason::Ipv6BadVersion,
        DropReason::Ipv6BadPayloadLength,
        DropReason::NotIcmpv6,
        DropReason::NotNeighborSolicitation,
        DropReason::NdpBadHopLimit,
        DropReason::NdpBadIcmpCode,
        DropReason::NdpTooShort,
        DropReason::NdpBadChecksum,
        DropReason::NdpMulticastTarget,
        DropReason::NdpZeroLengthOption,
        DropReason::NdpTruncatedOption,
        DropReason::NdpUnspecifiedSourceWithLinkLayerOption,
        DropReason::NdpUnspecifiedSourceBadDestination,
        DropReason::NdpMulticastSource,
        DropReason::NdpBadDestination,
        DropReason::NdpBadSourceLinkLayerAddress,
        DropReason::UnknownTarget,
        DropReason::SpeakerStalled,
    ];

    /// Stable CamelCase label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            DropReason::Truncated => "Truncated",
            DropReason::UnsupportedEtherType => "UnsupportedEtherType",
            DropReason::NotForUs => "NotForUs",
            DropReason::OwnFrame => "OwnFrame",
            DropReason::ArpBadHardwareType => "ArpBadHardwareType",
            DropReason::ArpBadProtocolType => "ArpBadProtocolType",
            DropReason::ArpBadAddressLength => "ArpBadAddressLength",
            DropReason::ArpNotRequest => "ArpNotRequest",
            DropReason::ArpBadSenderMac => "ArpBadSenderMac",
            DropReason::ArpGratuitous => "ArpGratuitous",
            DropReason::Ipv6BadVersion => "Ipv6BadVersion",
            DropReason::Ipv6BadPayloadLength => "Ipv6BadPayloadLength",
            DropReason::NotIcmpv6 => "NotIcmpv6",
            DropReason::NotNeighborSolicitation => "NotNeighborSolicitation",
            DropReason::NdpBadHopLimit => "NdpBadHopLimit",
            DropReason::NdpBadIcmpCode => "NdpBadIcmpCode",
            DropReason::NdpTooShort => "NdpTooShort",
            DropReason::NdpBadChecksum => "NdpBadChecksum",
            DropReason::NdpMulticastTarget => "NdpMulticastTarget",
            DropReason::NdpZeroLengthOption => "NdpZeroLengthOption",
            DropReason::NdpTruncatedOption => "NdpTruncatedOption",
            DropReason::NdpUnspecifiedSourceWithLinkLayerOption => {
                "NdpUnspecifiedSourceWithLinkLayerOption"
            }
            DropReason::NdpUnspecifiedSourceBadDestination => "NdpUnspecifiedSourceBadDestination",
            DropReason::NdpMulticastSource => "NdpMulticastSource",
            DropReason::NdpBadDestination => "NdpBadDestination",
            DropReason::NdpBadSourceLinkLayerAddress => "NdpBadSourceLinkLayerAddress",
            DropReason::UnknownTarget => "UnknownTarget",
            DropReason::SpeakerStalled => "SpeakerStalled",
        }
    }

    /// Position in `ALL`, for dense per-reason counters.
    pub fn index(&self) -> usize {
        *self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_reason_is_listed_once_at_its_own_index() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
    }

    #[test]
    fn reason_labels_are_unique_camel_case_and_match_the_variant_name() {
        let mut seen = BTreeSet::new();
        for r in DropReason::ALL {
            let label = r.reason();
            assert!(seen.insert(label), "duplicate label {label}");
            assert!(label.chars().all(|c| c.is_ascii_alphanumeric()), "{label}");
            assert!(
                label.starts_with(|c: char| c.is_ascii_uppercase()),
                "{label}"
            );
            assert_eq!(format!("{r:?}"), label);
        }
    }
}
