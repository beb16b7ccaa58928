//! BGP: the session each `BGPPeer` selecting this node needs, its routes in the session's
//! terms, and the peer task's configuration. Pure; `daemon::bgp` runs the sessions.
//!
//! A session is restarted only when its [`SessionSpec`] changes; a change of routes alone is a
//! `SetRoutes` on the running session, which sends just the difference.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ferrolb_api::community::BgpCommunity;
use ferrolb_api::config::{Config, Peer, PeerAsn, PeerEndpoint, PeerPassword};
use ferrolb_proto::bgp::driver::{DeviceName, DeviceNameError, PeerConfig};
use ferrolb_proto::bgp::fsm;
use ferrolb_proto::bgp::md5::{Md5Key, Md5KeyError};
use ferrolb_proto::bgp::open::{Families, LocalSpeaker, PeerAs};
use ferrolb_proto::bgp::packing::{LargeCommunity, NextHop, RouteAttrs, RouteSet};
use ipnet::IpNet;
use ipnetwork::IpNetwork;
use sha2::{Digest, Sha256};

use crate::plan::{Announcements, RouteAttributes};

/// MetalLB's default hold time.
pub const DEFAULT_HOLD_TIME: Duration = Duration::from_secs(90);
/// Restart time announced with graceful restart (FRR's default).
pub const GRACEFUL_RESTART_TIME: Duration = Duration::from_secs(120);

/// This node's own addresses: next hops and the default router ID.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeAddresses {
    /// The node's IPv4 address (next hop of IPv4 routes).
    pub v4: Option<Ipv4Addr>,
    /// The node's global IPv6 address (next hop of IPv6 routes).
    pub v6: Option<Ipv6Addr>,
}

impl NodeAddresses {
    /// The first address of each family.
    pub fn from_list(addresses: &[IpAddr]) -> Self {
        let mut out = Self::default();
        for address in addresses {
            match address {
                IpAddr::V4(a) if out.v4.is_none() => out.v4 = Some(*a),
                IpAddr::V6(a) if out.v6.is_none() => out.v6 = Some(*a),
                _ => {}
            }
        }
        out
    }
}

/// Everything that, when it changes, needs a new session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSpec {
    /// Where to dial.
    pub peer_addr: SocketAddr,
    /// Our side of the OPEN.
    pub local: LocalSpeaker,
    /// First wait between connection attempts (`connectTime`).
    pub connect_retry: Option<Duration>,
    /// Time between KEEPALIVEs (`keepaliveTime`); `None`: a third of the hold time.
    pub keepalive_time: Option<Duration>,
    /// The peer is more than one hop away (`ebgpMultiHop`); eBGP otherwise leaves with TTL 1.
    pub ebgp_multihop: bool,
    /// The VRF device to dial through (`vrf`).
    pub vrf: Option<String>,
    /// Source address of our dials.
    pub source_address: Option<IpAddr>,
    /// TCP MD5 password.
    pub password: Option<String>,
    /// Next hops for the routes of this session.
    pub next_hops: NodeAddresses,
}

/// Why a `BGPPeer` gets no session on this node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Unnumbered peering (`spec.interface`).
    #[error("BGPPeer/{peer}: spec.interface: unnumbered BGP peering is not supported yet")]
    Unnumbered {
        /// The peer.
        peer: String,
    },
    /// The password is in a Secret we could not read.
    #[error(
        "BGPPeer/{peer}: spec.passwordSecret: Secret {secret:?} not found or without a password"
    )]
    PasswordUnavailable {
        /// The peer.
        peer: String,
        /// The Secret.
        secret: String,
    },
}

impl SessionError {
    /// Stable reason for Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SessionError::Unnumbered { .. } => "unsupportedPeer",
            SessionError::PasswordUnavailable { .. } => "passwordUnavailable",
        }
    }
}

/// The session `peer` needs on node `node_name` with addresses `node`.
pub fn session_spec(
    peer: &Peer,
    node_name: &str,
    node: NodeAddresses,
) -> Result<SessionSpec, SessionError> {
    let PeerEndpoint::Address(address) = peer.endpoint else {
        return Err(SessionError::Unnumbered {
            peer: peer.name.clone(),
        });
    };
    let password = match &peer.password {
        PeerPassword::None => None,
        PeerPassword::Known(p) => Some(p.clone()),
        PeerPassword::FromSecret { name, .. } => {
            return Err(SessionError::PasswordUnavailable {
                peer: peer.name.clone(),
                secret: name.clone(),
            });
        }
    };
    let mut next_hops = node;
    match peer.source_address {
        Some(IpAddr::V4(a)) => next_hops.v4 = Some(a),
        Some(IpAddr::V6(a)) => next_hops.v6 = Some(a),
        None => {}
    }
    let families = Families {
        ipv4_unicast: address.is_ipv4() || peer.dual_stack_address_family,
        ipv6_unicast: address.is_ipv6() || peer.dual_stack_address_family,
    };
    let local = LocalSpeaker {
        local_as: peer.local_asn.unwrap_or(peer.my_asn),
        peer_as: match peer.peer_asn {
            PeerAsn::Fixed(asn) => PeerAs::Fixed(asn),
            PeerAsn::Internal => PeerAs::Internal,
            PeerAsn::External => PeerAs::External,
        },
        router_id: peer
            .router_id
            .or(next_hops.v4)
            .unwrap_or_else(|| router_id_from_name(node_name)),
        hold_time: peer.timers.hold_time.unwrap_or(DEFAULT_HOLD_TIME),
        families,
        graceful_restart: peer.graceful_restart.then_some(GRACEFUL_RESTART_TIME),
        extended_message: true,
    };
    Ok(SessionSpec {
        peer_addr: SocketAddr::new(address, peer.port),
        local,
        connect_retry: peer.timers.connect_time,
        keepalive_time: peer.timers.keepalive_time,
        ebgp_multihop: peer.ebgp_multihop,
        vrf: peer.vrf.clone().filter(|v| !v.is_empty()),
        source_address: peer.source_address,
        password,
        next_hops,
    })
}

/// A stable, non-zero router ID for a node without IPv4 (MetalLB hashes the node name too).
fn router_id_from_name(node_name: &str) -> Ipv4Addr {
    let digest = Sha256::digest(node_name.as_bytes());
    let id = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    Ipv4Addr::from(id.max(1))
}

/// The session's routes; prefixes of a family with no next hop on this node are left out and
/// returned, so the caller can say why.
pub fn routes(
    planned: &BTreeMap<IpNetwork, RouteAttributes>,
    next_hops: NodeAddresses,
) -> (RouteSet, Vec<IpNetwork>) {
    let mut set = RouteSet::new();
    let mut without_next_hop = Vec::new();
    for (prefix, attributes) in planned {
        let next_hop = match prefix {
            IpNetwork::V4(_) => next_hops.v4.map(NextHop::V4),
            IpNetwork::V6(_) => next_hops.v6.map(|global| NextHop::V6 {
                global,
                link_local: None,
            }),
        };
        let (Some(next_hop), Ok(net)) = (next_hop, IpNet::new(prefix.network(), prefix.prefix()))
        else {
            without_next_hop.push(*prefix);
            continue;
        };
        let mut attrs = RouteAttrs {
            next_hop,
            communities: Default::default(),
            large_communities: Default::default(),
            local_pref: attributes.local_pref,
        };
        for community in &attributes.communities {
            match *community {
                BgpCommunity::Standard(high, low) => {
                    attrs
                        .communities
                        .insert(u32::from(high) << 16 | u32::from(low));
                }
                BgpCommunity::Large(global_admin, local_data1, local_data2) => {
                    attrs.large_communities.insert(LargeCommunity {
                        global_admin,
                        local_data1,
                        local_data2,
                    });
                }
            }
        }
        set.insert(net, attrs);
    }
    (set, without_next_hop)
}

/// The sessions this node needs and what had to be left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Wanted {
    /// Peer name → its session and routes.
    pub sessions: BTreeMap<String, (SessionSpec, RouteSet)>,
    /// Peers selecting this node that cannot have a session.
    pub refused: Vec<SessionError>,
    /// Peer name → planned prefixes of a family this node has no next hop for.
    pub without_next_hop: BTreeMap<String, Vec<IpNetwork>>,
}

/// The session and routes of every peer the plan selected (`announcements.bgp_peers`), for
/// node `node_name` with addresses `addresses`.
pub fn wanted(
    config: &Config,
    announcements: &Announcements,
    node_name: &str,
    addresses: NodeAddresses,
) -> Wanted {
    let mut out = Wanted::default();
    let empty = BTreeMap::new();
    for peer in announcements
        .bgp_peers
        .iter()
        .filter_map(|name| config.peers.get(name))
    {
        let spec = match session_spec(peer, node_name, addresses) {
            Ok(spec) => spec,
            Err(error) => {
                out.refused.push(error);
                continue;
            }
        };
        let planned = announcements.bgp.get(&peer.name).unwrap_or(&empty);
        let (routes, without_next_hop) = routes(planned, spec.next_hops);
        if !without_next_hop.is_empty() {
            out.without_next_hop
                .insert(peer.name.clone(), without_next_hop);
        }
        out.sessions.insert(peer.name.clone(), (spec, routes));
    }
    out
}

/// The running sessions (peer name → spec) to stop: gone from `wanted`, or wanted with another
/// spec (they start again with the new one).
pub fn to_stop<'a>(
    running: impl IntoIterator<Item = (&'a String, &'a SessionSpec)>,
    wanted: &BTreeMap<String, (SessionSpec, RouteSet)>,
) -> Vec<String> {
    running
        .into_iter()
        .filter(|(name, spec)| wanted.get(*name).is_none_or(|(want, _)| want != *spec))
        .map(|(name, _)| name.clone())
        .collect()
}

/// Whether sessions started now follow a restart of this speaker, so that peers keep our routes
/// as stale until we are back (graceful restart's Restart State bit, RFC 4724 §4.2). Only the
/// sessions of the first BGP plan can: a previous run of this speaker on this node had
/// advertised if it left `ServiceBGPStatus` objects behind. Sessions started later (a new peer,
/// a changed spec) are plain starts.
pub fn follows_restart(is_first_plan: bool, has_leftover_statuses: bool) -> bool {
    is_first_plan && has_leftover_statuses
}

/// Why a [`SessionSpec`] cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The password is not a usable TCP MD5 key.
    #[error("spec.password: {}", .0.reason())]
    Password(Md5KeyError),
    /// Timers or identifiers the RFCs do not allow.
    #[error("{0}")]
    Session(fsm::ConfigError),
    /// Not a device name.
    #[error("spec.vrf: {0}")]
    Vrf(DeviceNameError),
}

impl StartError {
    /// Stable reason for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            StartError::Password(e) => e.reason(),
            StartError::Session(e) => e.reason(),
            StartError::Vrf(_) => "InvalidVrf",
        }
    }
}

/// The peer task's configuration for `spec`. `is_restarting`: see [`follows_restart`] (the bit
/// is set only when the session has graceful restart on); `jitter_percent`: the connect-retry
/// jitter, drawn by the caller.
pub fn peer_config(
    spec: &SessionSpec,
    is_restarting: bool,
    jitter_percent: u8,
) -> Result<PeerConfig, StartError> {
    let md5_key = spec
        .password
        .as_deref()
        .map(|p| Md5Key::new(p.as_bytes()))
        .transpose()
        .map_err(StartError::Password)?;
    let mut session = fsm::Config::new(spec.local);
    session.jitter_percent = jitter_percent;
    if let Some(connect) = spec.connect_retry {
        session.connect_retry_initial = connect;
    }
    session.keepalive_time = spec.keepalive_time;
    session.is_restarting = is_restarting && spec.local.graceful_restart.is_some();
    session.validate().map_err(StartError::Session)?;
    let mut config = PeerConfig::new(session, spec.peer_addr);
    config.local_addr = spec.source_address;
    config.md5_key = md5_key;
    config.ebgp_multihop = spec.ebgp_multihop;
    config.vrf = spec
        .vrf
        .as_deref()
        .map(DeviceName::new)
        .transpose()
        .map_err(StartError::Vrf)?;
    Ok(config)
}

#[cfg(test)]
mod tests;
