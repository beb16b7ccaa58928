//! Update packing: from the routes one peer should have and the routes it has, the UPDATE
//! messages to send (RFC 4271 §4.3, §9.2; RFC 4760 for IPv6; RFC 6793 for AS numbers).
//!
//! Prefixes with identical attributes share UPDATEs, as many per message as the negotiated size
//! limit allows; sizes are measured with the codec, not estimated. IPv6 goes in MP_REACH_NLRI /
//! MP_UNREACH_NLRI, many prefixes per message. Pure: values in, encoded bytes out; no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use ipnet::IpNet;
use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::community::{Community, LargeCommunity as WireLargeCommunity};
use netgauze_bgp_pkt::nlri::{Ipv4Unicast, Ipv4UnicastAddress, Ipv6Unicast, Ipv6UnicastAddress};
use netgauze_bgp_pkt::path_attribute::{
    As2PathSegment, As4Path, As4PathSegment, AsPath, AsPathSegmentType, Communities,
    LargeCommunities, LocalPreference, MpReach, MpUnreach, NextHop as WireNextHop, Origin,
    PathAttribute, PathAttributeValue,
};
use netgauze_bgp_pkt::update::BgpUpdateMessage;
use netgauze_parse_utils::WritablePdu;

use super::open::{AS_TRANS, Families, Negotiated};
use super::packet::{EncodeError, encode};

/// LOCAL_PREF sent to iBGP peers when the advertisement sets none (RFC 4271 §5.1.5 requires one).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// The next hop of a route; its family must match the prefix's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NextHop {
    /// NEXT_HOP attribute for IPv4 prefixes.
    V4(Ipv4Addr),
    /// MP_REACH_NLRI next hop for IPv6 prefixes: global, plus link-local when the peer is on-link.
    V6 {
        /// Global address.
        global: Ipv6Addr,
        /// Link-local address (RFC 2545), sent as the second half of a 32-byte next hop.
        link_local: Option<Ipv6Addr>,
    },
}

/// A large community (RFC 8092).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    /// Global Administrator (an AS number).
    pub global_admin: u32,
    /// Local Data Part 1.
    pub local_data1: u32,
    /// Local Data Part 2.
    pub local_data2: u32,
}

/// The attributes of one route we originate. Two routes with equal attributes share UPDATEs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteAttrs {
    /// Where the peer sends traffic (this node).
    pub next_hop: NextHop,
    /// COMMUNITIES (RFC 1997), as 32-bit values; order and duplicates do not matter.
    pub communities: BTreeSet<u32>,
    /// LARGE_COMMUNITY (RFC 8092).
    pub large_communities: BTreeSet<LargeCommunity>,
    /// LOCAL_PREF, sent to iBGP peers only ([`DEFAULT_LOCAL_PREF`] when unset).
    pub local_pref: Option<u32>,
}

/// Routes of one peer, by prefix.
pub type RouteSet = BTreeMap<IpNet, RouteAttrs>;

/// How UPDATEs for one peer are encoded: our AS and what the session negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerEncoding {
    /// Our AS number, prepended to AS_PATH for eBGP.
    pub local_as: u32,
    /// iBGP: empty AS_PATH and a LOCAL_PREF.
    pub is_ibgp: bool,
    /// AS_PATH with 4-octet numbers; else 2-octet plus AS4_PATH when our AS needs it.
    pub four_octet_as: bool,
    /// Largest message: 4096, or 65535 with Extended Messages.
    pub max_message_len: usize,
    /// Families the peer accepts.
    pub families: Families,
}

impl PeerEncoding {
    /// The encoding for an Established session.
    pub fn new(local_as: u32, negotiated: &Negotiated) -> Self {
        Self {
            local_as,
            is_ibgp: negotiated.is_ibgp,
            four_octet_as: negotiated.four_octet_as,
            max_message_len: negotiated.max_message_len(),
            families: negotiated.families,
        }
    }
}

/// Why a route was left out of the UPDATEs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SkipReason {
    /// The session did not negotiate the prefix's family.
    #[error("address family not negotiated with the peer")]
    FamilyNotNegotiated,
    /// An IPv4 prefix with an IPv6 next hop or the reverse.
    #[error("next hop family differs from the prefix family")]
    NextHopFamilyMismatch,
    /// A multicast or broadcast prefix.
    #[error("not a unicast prefix")]
    NotUnicast,
}

impl SkipReason {
    /// A stable CamelCase name for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            SkipReason::FamilyNotNegotiated => "FamilyNotNegotiated",
            SkipReason::NextHopFamilyMismatch => "NextHopFamilyMismatch",
            SkipReason::NotUnicast => "NotUnicast",
        }
    }
}

/// Failure to pack: only a message that could not be encoded at all.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The codec refused a message or it exceeded the limit (a bug in packing).
    #[error("encoding an UPDATE failed: {0}")]
    Encode(#[from] EncodeError),
    /// The attributes alone leave no room for a single prefix.
    #[error("attributes take {attrs_len} bytes, leaving no room under the {limit} byte limit")]
    AttributesTooLong {
        /// Size of the UPDATE with no prefix.
        attrs_len: usize,
        /// The message limit.
        limit: usize,
    },
    /// netgauze refused an attribute's flags (a bug in packing).
    #[error("invalid path attribute: {0}")]
    InvalidAttribute(String),
}

impl PackError {
    /// A stable CamelCase name for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            PackError::Encode(e) => e.reason(),
            PackError::AttributesTooLong { .. } => "AttributesTooLong",
            PackError::InvalidAttribute(_) => "InvalidAttribute",
        }
    }
}

/// The UPDATEs to send, in order, and the routes that could not be sent.
#[derive(Debug, Clone, Default)]
pub struct Packed {
    /// Encoded UPDATE messages (header included): withdrawals first, then announcements.
    pub messages: Vec<Bytes>,
    /// Routes left out, with why.
    pub skipped: Vec<(IpNet, SkipReason)>,
}

/// The UPDATEs that turn `advertised` into `desired` at the peer.
///
/// Withdraws prefixes no longer desired, announces new prefixes and prefixes whose attributes
/// changed (an announcement replaces the old route, no withdrawal needed).
pub fn pack(
    enc: &PeerEncoding,
    desired: &RouteSet,
    advertised: &RouteSet,
) -> Result<Packed, PackError> {
    let mut packed = Packed::default();
    let mut withdraw4 = Vec::new();
    let mut withdraw6 = Vec::new();
    for prefix in advertised.keys().filter(|p| !desired.contains_key(*p)) {
        match prefix {
            IpNet::V4(net) if enc.families.ipv4_unicast => {
                if let Ok(n) = Ipv4Unicast::from_net(*net) {
                    withdraw4.push(Ipv4UnicastAddress::new_no_path_id(n));
                }
            }
            IpNet::V6(net) if enc.families.ipv6_unicast => {
                if let Ok(n) = Ipv6Unicast::from_net(*net) {
                    withdraw6.push(Ipv6UnicastAddress::new(None, n));
                }
            }
            _ => {}
        }
    }
    pack_withdrawals4(enc, withdraw4, &mut packed.messages)?;
    pack_withdrawals6(enc, withdraw6, &mut packed.messages)?;

    let mut groups4: BTreeMap<&RouteAttrs, Vec<Ipv4UnicastAddress>> = BTreeMap::new();
    let mut groups6: BTreeMap<&RouteAttrs, Vec<Ipv6UnicastAddress>> = BTreeMap::new();
    for (prefix, attrs) in desired {
        if advertised.get(prefix) == Some(attrs) {
            continue;
        }
        match classify(enc, prefix, attrs) {
            Ok(Nlri::V4(n)) => groups4.entry(attrs).or_default().push(n),
            Ok(Nlri::V6(n)) => groups6.entry(attrs).or_default().push(n),
            Err(reason) => packed.skipped.push((*prefix, reason)),
        }
    }
    for (attrs, nlri) in groups4 {
        pack_announcements4(enc, attrs, nlri, &mut packed.messages)?;
    }
    for (attrs, nlri) in groups6 {
        pack_announcements6(enc, attrs, nlri, &mut packed.messages)?;
    }
    Ok(packed)
}

/// End-of-RIB markers (RFC 4724 §2) for every negotiated family, sent after the initial table.
pub fn end_of_rib(enc: &PeerEncoding) -> Result<Vec<Bytes>, PackError> {
    let mut out = Vec::new();
    if enc.families.ipv4_unicast {
        let msg = BgpUpdateMessage::new(vec![], vec![], vec![]);
        out.push(encode(&BgpMessage::Update(msg), enc.max_message_len)?);
    }
    if enc.families.ipv6_unicast {
        let attr = mp_unreach(Vec::new())?;
        let msg = BgpUpdateMessage::new(vec![], vec![attr], vec![]);
        out.push(encode(&BgpMessage::Update(msg), enc.max_message_len)?);
    }
    Ok(out)
}

enum Nlri {
    V4(Ipv4UnicastAddress),
    V6(Ipv6UnicastAddress),
}

fn classify(enc: &PeerEncoding, prefix: &IpNet, attrs: &RouteAttrs) -> Result<Nlri, SkipReason> {
    match (prefix, attrs.next_hop) {
        (IpNet::V4(_), _) if !enc.families.ipv4_unicast => Err(SkipReason::FamilyNotNegotiated),
        (IpNet::V6(_), _) if !enc.families.ipv6_unicast => Err(SkipReason::FamilyNotNegotiated),
        (IpNet::V4(net), NextHop::V4(_)) => Ipv4Unicast::from_net(net.trunc())
            .map(|n| Nlri::V4(Ipv4UnicastAddress::new_no_path_id(n)))
            .map_err(|_| SkipReason::NotUnicast),
        (IpNet::V6(net), NextHop::V6 { .. }) => Ipv6Unicast::from_net(net.trunc())
            .map(|n| Nlri::V6(Ipv6UnicastAddress::new(None, n)))
            .map_err(|_| SkipReason::NotUnicast),
        _ => Err(SkipReason::NextHopFamilyMismatch),
    }
}

/// Splits `items` into consecutive runs whose sizes, added to `base`, stay within `limit`.
fn chunks<T>(
    base: usize,
    limit: usize,
    items: Vec<T>,
    size: impl Fn(&T) -> usize,
) -> Result<Vec<Vec<T>>, PackError> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut len = base;
    for item in items {
        let n = size(&item);
        if base + n > limit {
            return Err(PackError::AttributesTooLong {
                attrs_len: base,
                limit,
            });
        }
        if len + n > limit {
            out.push(std::mem::take(&mut current));
            len = base;
        }
        len += n;
        current.push(item);
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

fn update_len(msg: BgpUpdateMessage) -> (usize, BgpMessage) {
    let msg = BgpMessage::Update(msg);
    (msg.len(), msg)
}

fn pack_withdrawals4(
    enc: &PeerEncoding,
    nlri: Vec<Ipv4UnicastAddress>,
    out: &mut Vec<Bytes>,
) -> Result<(), PackError> {
    if nlri.is_empty() {
        return Ok(());
    }
    let (base, _) = update_len(BgpUpdateMessage::new(vec![], vec![], vec![]));
    for chunk in chunks(base, enc.max_message_len, nlri, |n| n.len())? {
        let msg = BgpUpdateMessage::new(chunk, vec![], vec![]);
        out.push(encode(&BgpMessage::Update(msg), enc.max_message_len)?);
    }
    Ok(())
}

fn pack_withdrawals6(
    enc: &PeerEncoding,
    nlri: Vec<Ipv6UnicastAddress>,
    out: &mut Vec<Bytes>,
) -> Result<(), PackError> {
    if nlri.is_empty() {
        return Ok(());
    }
    let (base, _) = update_len(BgpUpdateMessage::new(
        vec![],
        vec![mp_unreach(vec![])?],
        vec![],
    ));
    for chunk in chunks(base, enc.max_message_len, nlri, |n| n.len())? {
        let msg = BgpUpdateMessage::new(vec![], vec![mp_unreach(chunk)?], vec![]);
        out.push(encode(&BgpMessage::Update(msg), enc.max_message_len)?);
    }
    Ok(())
}

fn pack_announcements4(
    enc: &PeerEncoding,
    attrs: &RouteAttrs,
    nlri: Vec<Ipv4UnicastAddress>,
    out: &mut Vec<Bytes>,
) -> Result<(), PackError> {
    let NextHop::V4(next_hop) = attrs.next_hop else {
        return Ok(());
    };
    let mut path_attrs = common_attributes(enc, attrs)?;
    path_attrs.push(attr(
        PathAttributeValue::NextHop(WireNextHop::new(next_hop)),
        false,
    )?);
    sort_by_type(&mut path_attrs);
    let (base, _) = update_len(BgpUpdateMessage::new(vec![], path_attrs.clone(), vec![]));
    for chunk in chunks(base, enc.max_message_len, nlri, |n| n.len())? {
        let msg = BgpUpdateMessage::new(vec![], path_attrs.clone(), chunk);
        out.push(encode(&BgpMessage::Update(msg), enc.max_message_len)?);
    }
    Ok(())
}

fn pack_announcements6(
    enc: &PeerEncoding,
    attrs: &RouteAttrs,
    nlri: Vec<Ipv6UnicastAddress>,
    out: &mut Vec<Bytes>,
) -> Result<(), PackError> {
    let NextHop::V6 { global, link_local } = attrs.next_hop else {
        return Ok(());
    };
    let common = common_attributes(enc, attrs)?;
    let with_reach = |nlri: Vec<Ipv6UnicastAddress>| {
        let reach = MpReach::Ipv6Unicast {
            next_hop_global: global,
            next_hop_local: link_local,
            nlri: nlri.into(),
        };
        let mut all = common.clone();
        all.push(attr(PathAttributeValue::MpReach(reach), true)?);
        sort_by_type(&mut all);
        Ok::<_, PackError>(all)
    };
    let (base, _) = update_len(BgpUpdateMessage::new(vec![], with_reach(vec![])?, vec![]));
    for chunk in chunks(base, enc.max_message_len, nlri, |n| n.len())? {
        let msg = BgpUpdateMessage::new(vec![], with_reach(chunk)?, vec![]);
        out.push(encode(&BgpMessage::Update(msg), enc.max_message_len)?);
    }
    Ok(())
}

/// ORIGIN, AS_PATH (and AS4_PATH), LOCAL_PREF, COMMUNITIES, LARGE_COMMUNITY.
fn common_attributes(
    enc: &PeerEncoding,
    attrs: &RouteAttrs,
) -> Result<Vec<PathAttribute>, PackError> {
    let mut out = vec![attr(PathAttributeValue::Origin(Origin::IGP), false)?];
    let ours: Vec<u32> = if enc.is_ibgp {
        vec![]
    } else {
        vec![enc.local_as]
    };
    let as_path = if enc.four_octet_as {
        let segments: Vec<As4PathSegment> = if ours.is_empty() {
            vec![]
        } else {
            vec![As4PathSegment::new(
                AsPathSegmentType::AsSequence,
                ours.clone(),
            )]
        };
        AsPath::As4PathSegments(segments.into())
    } else {
        let two: Vec<u16> = ours
            .iter()
            .map(|asn| u16::try_from(*asn).unwrap_or(AS_TRANS))
            .collect();
        let segments: Vec<As2PathSegment> = if two.is_empty() {
            vec![]
        } else {
            vec![As2PathSegment::new(AsPathSegmentType::AsSequence, two)]
        };
        AsPath::As2PathSegments(segments.into())
    };
    out.push(attr(PathAttributeValue::AsPath(as_path), false)?);
    // RFC 6793 §4.2.2: a 2-octet speaker that cannot carry our AS gets AS4_PATH beside AS_TRANS.
    if !enc.four_octet_as && ours.iter().any(|asn| *asn > u32::from(u16::MAX)) {
        let seg = As4PathSegment::new(AsPathSegmentType::AsSequence, ours);
        out.push(attr(
            PathAttributeValue::As4Path(As4Path::new(vec![seg])),
            false,
        )?);
    }
    if enc.is_ibgp {
        let pref = attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF);
        out.push(attr(
            PathAttributeValue::LocalPreference(LocalPreference::new(pref)),
            false,
        )?);
    }
    if !attrs.communities.is_empty() {
        let list: Vec<Community> = attrs
            .communities
            .iter()
            .map(|c| Community::new(*c))
            .collect();
        let is_long = list.len() * 4 > 255;
        let value = PathAttributeValue::Communities(Communities::new(list));
        out.push(attr(value, is_long)?);
    }
    if !attrs.large_communities.is_empty() {
        let list: Vec<WireLargeCommunity> = attrs
            .large_communities
            .iter()
            .map(|c| WireLargeCommunity::new(c.global_admin, c.local_data1, c.local_data2))
            .collect();
        let is_long = list.len() * 12 > 255;
        let value = PathAttributeValue::LargeCommunities(LargeCommunities::new(list));
        out.push(attr(value, is_long)?);
    }
    Ok(out)
}

fn mp_unreach(nlri: Vec<Ipv6UnicastAddress>) -> Result<PathAttribute, PackError> {
    let value = PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast { nlri: nlri.into() });
    attr(value, true)
}

/// RFC 4271 §5: attributes ordered by type code.
fn sort_by_type(attrs: &mut [PathAttribute]) {
    attrs.sort_by_key(|a| match a.path_attribute_type() {
        Ok(t) => u8::from(t),
        Err(code) => code,
    });
}

/// An attribute with the flags its type requires (netgauze knows them); `extended` selects a
/// 2-octet length (MP_REACH/MP_UNREACH and long community lists).
fn attr(value: PathAttributeValue, extended: bool) -> Result<PathAttribute, PackError> {
    let optional = value.can_be_optional().unwrap_or(true);
    let transitive = value.can_be_transitive().unwrap_or(true);
    PathAttribute::from(optional, transitive, false, extended, value)
        .map_err(|(_, e)| PackError::InvalidAttribute(e.to_string()))
}
