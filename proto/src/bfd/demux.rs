//! Which session a received packet belongs to, and the identifiers sessions own.
//!
//! Owns the session table of the driver as pure data: discriminators (RFC 5880 §6.3), the
//! address lookup for packets that carry no Your Discriminator yet (§6.8.6), the TTL rules of
//! RFC 5881 §5 (single hop: exactly 255) and RFC 5883 §5 (multihop: at least the profile's
//! minimum), and the UDP source ports in use (RFC 5881 §4: 49152–65535, one per session).
//! No I/O: the driver binds sockets and draws the random starting points.

use std::collections::HashSet;
use std::net::IpAddr;
use std::ops::RangeInclusive;

use super::error::DropReason;
use super::fasthash::FastMap;
use super::packet::ControlPacket;

/// RFC 5881 §4 / RFC 5883 §5: the source ports BFD Control packets must come from.
pub const SOURCE_PORTS: RangeInclusive<u16> = 49152..=65535;

/// RFC 5881 §5: the only TTL (hop limit) a single-hop packet may arrive with.
pub const SINGLE_HOP_TTL: u8 = 255;

/// What identifies a session: two sessions may not share one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    /// The peer's address; packets come from it and go to it.
    pub peer: IpAddr,
    /// Our address: packets leave from it and must be sent to it. `None`: the kernel picks the
    /// source by route, and packets to any of our addresses match.
    pub local: Option<IpAddr>,
    /// RFC 5883 multihop (UDP 4784, minimum TTL) instead of RFC 5881 single hop (3784, 255).
    pub is_multihop: bool,
    /// Single hop only: the interface the peer is on (required for an IPv6 link-local peer).
    pub interface: Option<String>,
}

/// What the socket layer knows about one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxMeta {
    /// Source address.
    pub source: IpAddr,
    /// Destination address (IP_PKTINFO / IPV6_PKTINFO), when the kernel gave it.
    pub dest: Option<IpAddr>,
    /// Receiving interface index, when the kernel gave it.
    pub ifindex: Option<u32>,
    /// IP TTL or IPv6 hop limit, when the kernel gave it.
    pub ttl: Option<u8>,
    /// Arrived on the multihop port (4784) rather than the single-hop one (3784).
    pub is_multihop_port: bool,
}

/// One session as the demultiplexer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    key: SessionKey,
    /// Index of `key.interface`, resolved by the driver.
    ifindex: Option<u32>,
    /// Multihop: the least TTL accepted.
    minimum_ttl: u8,
    source_port: u16,
}

/// The sessions of one driver, by discriminator and by peer address.
#[derive(Debug, Default)]
pub struct Demux {
    by_discr: FastMap<u32, Entry>,
    by_peer: FastMap<IpAddr, Vec<u32>>,
    ports: HashSet<u16>,
}

impl Demux {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many sessions are registered.
    pub fn len(&self) -> usize {
        self.by_discr.len()
    }

    /// Whether no session is registered.
    pub fn is_empty(&self) -> bool {
        self.by_discr.is_empty()
    }

    /// The discriminator of the session with `key`, if any.
    pub fn find(&self, key: &SessionKey) -> Option<u32> {
        self.by_peer
            .get(&key.peer)?
            .iter()
            .copied()
            .find(|d| self.by_discr.get(d).is_some_and(|e| e.key == *key))
    }

    /// A nonzero discriminator no session uses, starting the search at `random` (RFC 5880
    /// §6.3: unique; random so that a restarted speaker does not reuse its last ones).
    pub fn free_discriminator(&self, random: u32) -> u32 {
        let mut d = random;
        loop {
            if d != 0 && !self.by_discr.contains_key(&d) {
                return d;
            }
            d = d.wrapping_add(1);
        }
    }

    /// The source ports no session uses, in order from `start` (wrapping within
    /// [`SOURCE_PORTS`]); the driver binds the first one the kernel lets it have.
    pub fn free_ports(&self, start: u16) -> impl Iterator<Item = u16> + '_ {
        let (low, high) = (*SOURCE_PORTS.start(), *SOURCE_PORTS.end());
        let span = u32::from(high - low) + 1;
        let offset = u32::from(start.saturating_sub(low)) % span;
        (0..span)
            .map(move |i| low + ((offset + i) % span) as u16)
            .filter(|p| !self.ports.contains(p))
    }

    /// Registers a session under its discriminator.
    pub fn insert(
        &mut self,
        discr: u32,
        key: SessionKey,
        ifindex: Option<u32>,
        minimum_ttl: u8,
        source_port: u16,
    ) {
        self.by_peer.entry(key.peer).or_default().push(discr);
        self.ports.insert(source_port);
        self.by_discr.insert(
            discr,
            Entry {
                key,
                ifindex,
                minimum_ttl,
                source_port,
            },
        );
    }

    /// Changes the minimum TTL of a multihop session (a profile change).
    pub fn set_minimum_ttl(&mut self, discr: u32, minimum_ttl: u8) {
        if let Some(e) = self.by_discr.get_mut(&discr) {
            e.minimum_ttl = minimum_ttl;
        }
    }

    /// Forgets a session; its discriminator and source port become free.
    pub fn remove(&mut self, discr: u32) {
        let Some(entry) = self.by_discr.remove(&discr) else {
            return;
        };
        self.ports.remove(&entry.source_port);
        if let Some(list) = self.by_peer.get_mut(&entry.key.peer) {
            list.retain(|d| *d != discr);
            if list.is_empty() {
                self.by_peer.remove(&entry.key.peer);
            }
        }
    }

    /// The session a decoded packet belongs to (RFC 5880 §6.8.6), after the TTL rules of
    /// RFC 5881 §5 / RFC 5883 §5.
    pub fn select(&self, meta: &RxMeta, packet: &ControlPacket) -> Result<u32, DropReason> {
        let discr = if packet.your_discr != 0 {
            // "If the Your Discriminator field is nonzero, it MUST be used to select the
            // session with which this BFD packet is associated. If no session is found, the
            // packet MUST be discarded."
            let entry = self
                .by_discr
                .get(&packet.your_discr)
                .ok_or(DropReason::UnknownDiscriminator)?;
            matches(entry, meta)?;
            packet.your_discr
        } else {
            self.by_peer
                .get(&meta.source)
                .and_then(|list| {
                    list.iter().copied().find(|d| {
                        self.by_discr
                            .get(d)
                            .is_some_and(|e| matches(e, meta).is_ok())
                    })
                })
                .ok_or(DropReason::NoSessionForAddress)?
        };
        let entry = self
            .by_discr
            .get(&discr)
            .ok_or(DropReason::UnknownDiscriminator)?;
        let ttl = meta.ttl.ok_or(DropReason::NoTtl)?;
        if entry.key.is_multihop {
            if ttl < entry.minimum_ttl {
                return Err(DropReason::TtlBelowMinimum);
            }
        } else if ttl != SINGLE_HOP_TTL {
            return Err(DropReason::TtlNot255);
        }
        Ok(discr)
    }
}

/// Whether a packet with `meta` can belong to the session of `entry`.
fn matches(entry: &Entry, meta: &RxMeta) -> Result<(), DropReason> {
    if entry.key.is_multihop != meta.is_multihop_port {
        return Err(DropReason::WrongPort);
    }
    let is_other_local = matches!((entry.key.local, meta.dest), (Some(l), Some(d)) if l != d);
    let is_other_interface = matches!((entry.ifindex, meta.ifindex), (Some(a), Some(b)) if a != b);
    if entry.key.peer != meta.source || is_other_local || is_other_interface {
        return Err(DropReason::AddressMismatch);
    }
    Ok(())
}
