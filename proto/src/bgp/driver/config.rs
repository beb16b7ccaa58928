//! How to reach one peer and how much of it to bear: the driver's configuration beside the
//! session's, and the rules derived from it (TTL, GTSM, the dead-peer bound). Values only.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::super::fsm::Config;
use super::super::md5::Md5Key;
use super::super::open::PeerAs;
use super::super::sockopt::DeviceName;

/// Default byte cap of one connection's writer queue ([`PeerConfig::write_queue_limit`]).
pub const DEFAULT_WRITE_QUEUE_LIMIT: usize = 32 * 1024 * 1024;

/// Default bound to notice a silent peer when hold time 0 was negotiated and we proposed 0
/// ourselves: MetalLB's default hold time.
pub const DEFAULT_DEAD_PEER_TIMEOUT: Duration = Duration::from_secs(90);

/// How to reach one peer.
#[derive(Debug, Clone, Copy)]
pub struct PeerConfig {
    /// The session's configuration.
    pub session: Config,
    /// Where to dial (port 179 in production).
    pub peer_addr: SocketAddr,
    /// Never dial; only take connections passed in with
    /// [`Command::Incoming`](super::Command::Incoming).
    pub is_passive: bool,
    /// Source address of our dials (MetalLB's `BGPPeer.spec.sourceAddress`); `None` lets the
    /// kernel choose by route.
    pub local_addr: Option<IpAddr>,
    /// TCP MD5 key (RFC 2385) for our dials. Connections the peer opens arrive on the
    /// speaker's listener, which needs the same key set with
    /// [`md5::set_key_on_listener`](super::super::md5::set_key_on_listener).
    pub md5_key: Option<Md5Key>,
    /// MetalLB's `ebgpMultiHop`: an eBGP peer more than one hop away. Without it, eBGP packets
    /// leave with TTL (hop limit) 1, as FRR and MetalLB do, so a peer that is not directly
    /// connected is never reached; iBGP and multihop eBGP use 255. See [`PeerConfig::ttl`].
    pub ebgp_multihop: bool,
    /// MetalLB's `vrf`: the VRF device our dials are bound to (SO_BINDTODEVICE), so that they
    /// route by the VRF's table. `None`: the default VRF. Connections the peer opens arrive on
    /// the speaker's listener, which must be bound to the same device.
    pub vrf: Option<DeviceName>,
    /// GTSM (RFC 5082) on a single-hop eBGP session: we send with TTL 255 and the kernel drops
    /// every segment that arrives with less, so nothing from beyond the link can reach the
    /// session. The router must do the same (FRR: `neighbor X ttl-security hops 1`). Ignored
    /// for iBGP and multihop eBGP, where the hop count is not known. Off by default.
    pub gtsm: bool,
    /// The most prefixes per family the peer may have announced (RFC 4486 Cease subcode 1);
    /// `None` (the default) turns the guard off. We keep no received route either way; with
    /// the guard on, memory for at most this many prefixes per family is held to count them.
    pub max_prefixes: Option<u32>,
    /// Bytes that may wait in one connection's writer queue (not yet handed to the socket).
    /// Refreshes are merged, so a peer that stops reading costs at most a table being written
    /// and one more; a batch of UPDATEs that would take the queue over this limit resets the
    /// session with Cease / Out of Resources (6/8) instead of growing memory. It must exceed
    /// twice the encoded table: a table above it can never be sent.
    pub write_queue_limit: usize,
    /// When the negotiated hold time is 0 no BGP timer notices a peer that went silent; TCP
    /// keepalive and `TCP_USER_TIMEOUT` then end the connection within about this long.
    pub dead_peer_timeout: Duration,
}

impl PeerConfig {
    /// An active peer dialled at `peer_addr` from the address the kernel chooses, directly
    /// connected for eBGP, in the default VRF, without GTSM or a prefix limit. A silent peer
    /// with hold time 0 is noticed within our own proposed hold time (90 s if that is 0 too).
    pub fn new(session: Config, peer_addr: SocketAddr) -> Self {
        let hold = session.local.hold_time;
        Self {
            session,
            peer_addr,
            is_passive: false,
            local_addr: None,
            md5_key: None,
            ebgp_multihop: false,
            vrf: None,
            gtsm: false,
            max_prefixes: None,
            write_queue_limit: DEFAULT_WRITE_QUEUE_LIMIT,
            dead_peer_timeout: if hold.is_zero() {
                DEFAULT_DEAD_PEER_TIMEOUT
            } else {
                hold
            },
        }
    }

    /// The IP TTL (IPv6 hop limit) of our packets on this session: 1 for eBGP without
    /// multihop (the peer must be on-link) unless GTSM is on, else 255.
    pub fn ttl(&self) -> u8 {
        if self.is_ebgp() && !self.ebgp_multihop && !self.gtsm {
            1
        } else {
            255
        }
    }

    /// The lowest TTL we accept (GTSM): 255 on a single-hop eBGP session with `gtsm`, else
    /// none.
    pub fn min_ttl(&self) -> Option<u8> {
        (self.gtsm && self.is_ebgp() && !self.ebgp_multihop).then_some(255)
    }

    /// Whether the configured peer AS makes this an eBGP session.
    pub(super) fn is_ebgp(&self) -> bool {
        let local = &self.session.local;
        match local.peer_as {
            PeerAs::Fixed(asn) => asn != local.local_as,
            PeerAs::Internal => false,
            PeerAs::External => true,
        }
    }
}

/// A jitter share for [`Config::jitter_percent`] (0..=25), drawn from the OS-seeded hasher.
pub fn random_jitter_percent() -> u8 {
    let mut h = RandomState::new().build_hasher();
    h.write_u8(0);
    (h.finish() % 26) as u8
}
