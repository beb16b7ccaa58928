//! BGPPeers resolved for sessions: timers defaulted, the password read from its Secret, the BFD
//! profile checked, and no two peers opening the same session from one node. No I/O.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

use super::bfd::BfdProfile;
use super::{Objects, Source};
use crate::error::{ConfigError, Kind, Problem};
use crate::types::{self, DynamicAsnMode};
use crate::validate;

/// The AS a peer must present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAsn {
    /// Exactly this AS.
    Fixed(u32),
    /// Whatever it is, as long as it equals our AS.
    Internal,
    /// Whatever it is, as long as it differs from our AS.
    External,
}

/// Where the session goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEndpoint {
    /// Dial this address.
    Address(IpAddr),
    /// Unnumbered peering over this interface.
    Interface(String),
}

/// The TCP MD5 password of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerPassword {
    /// No authentication.
    None,
    /// The password, from the peer or its Secret.
    Known(String),
    /// A Secret that could not be read here (offline validation).
    FromSecret {
        /// Secret name.
        name: String,
    },
}

/// A peer ready for a session.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    /// `metadata.name`.
    pub name: String,
    /// Our AS.
    pub my_asn: u32,
    /// The AS we expect.
    pub peer_asn: PeerAsn,
    /// The AS we present instead of `my_asn`.
    pub local_asn: Option<u32>,
    /// Where to connect.
    pub endpoint: PeerEndpoint,
    /// Local address to connect from.
    pub source_address: Option<IpAddr>,
    /// TCP port.
    pub port: u16,
    /// Timers after defaulting.
    pub timers: validate::PeerTimers,
    /// BGP identifier to send.
    pub router_id: Option<Ipv4Addr>,
    /// Nodes that hold this session; empty = all.
    pub node_selectors: Vec<LabelSelector>,
    /// TCP MD5.
    pub password: PeerPassword,
    /// Name of a valid BFD profile.
    pub bfd_profile: Option<String>,
    /// Advertise graceful restart.
    pub graceful_restart: bool,
    /// eBGP multihop.
    pub ebgp_multihop: bool,
    /// Host VRF.
    pub vrf: Option<String>,
    /// Both families on this session.
    pub dual_stack_address_family: bool,
}

impl Peer {
    /// Whether the session is iBGP (or may only be, for a dynamic internal peer).
    pub fn is_ibgp(&self) -> bool {
        match self.peer_asn {
            PeerAsn::Fixed(asn) => asn == self.my_asn,
            PeerAsn::Internal => true,
            PeerAsn::External => false,
        }
    }

    fn identifier(&self) -> String {
        let target = match &self.endpoint {
            PeerEndpoint::Address(ip) => ip.to_string(),
            PeerEndpoint::Interface(name) => format!("interface {name}"),
        };
        match &self.vrf {
            Some(vrf) => format!("{target}-{vrf}"),
            None => target,
        }
    }
}

pub(super) fn build_peers(
    objects: &Source<'_>,
    bfd_profiles: &BTreeMap<String, BfdProfile>,
    problems: &mut Vec<ConfigError>,
) -> BTreeMap<String, Peer> {
    let mut peers: BTreeMap<String, Peer> = BTreeMap::new();
    for object in objects.oldest_first(&objects.bgp_peers, Kind::BGPPeer) {
        let name = object.name_any();
        let peer = match resolve(objects, object, bfd_profiles) {
            Ok(peer) => peer,
            Err(errors) => {
                problems.extend(errors);
                continue;
            }
        };
        let duplicate = peers.values().find(|other| {
            other.identifier() == peer.identifier()
                && objects.may_share_a_node(&other.node_selectors, &peer.node_selectors)
        });
        if let Some(other) = duplicate {
            let field = if matches!(peer.endpoint, PeerEndpoint::Address(_)) {
                "spec.peerAddress"
            } else {
                "spec.interface"
            };
            problems.push(ConfigError::new(
                Kind::BGPPeer,
                &name,
                field,
                Problem::DuplicatePeer {
                    other: format!("BGPPeer/{}", other.name),
                    identifier: peer.identifier(),
                },
            ));
            continue;
        }
        peers.insert(name, peer);
    }
    peers
}

/// One peer on its own: valid fields, a readable password, an existing BFD profile.
fn resolve(
    objects: &Objects,
    object: &types::BGPPeer,
    bfd_profiles: &BTreeMap<String, BfdProfile>,
) -> Result<Peer, Vec<ConfigError>> {
    let name = object.name_any();
    let timers = validate::bgp_peer(object)?;
    let spec = &object.spec;
    let error = |field: &str, problem| vec![ConfigError::new(Kind::BGPPeer, &name, field, problem)];
    let password = match (&spec.password, &spec.password_secret) {
        (Some(p), _) if !p.is_empty() => PeerPassword::Known(p.clone()),
        (_, Some(secret)) => {
            let secret_name = secret.name.clone().unwrap_or_default();
            match secret_password(objects, &secret_name) {
                Ok(Some(password)) => PeerPassword::Known(password),
                Ok(None) => PeerPassword::FromSecret { name: secret_name },
                Err(problem) => return Err(error("spec.passwordSecret", problem)),
            }
        }
        _ => PeerPassword::None,
    };
    let bfd_profile = spec.bfd_profile.clone().filter(|p| !p.is_empty());
    if let Some(profile) = &bfd_profile
        && !bfd_profiles.contains_key(profile)
    {
        let name = profile.clone();
        // The profile's own problem says what is wrong with it; "does not exist" would mislead.
        let problem = if objects.get(Kind::BFDProfile, profile).is_some() {
            Problem::InvalidReference {
                kind: "BFDProfile",
                name,
            }
        } else {
            Problem::MissingReference {
                kind: "BFDProfile",
                name,
            }
        };
        return Err(error("spec.bfdProfile", problem));
    }
    // validate::bgp_peer guarantees exactly one of each pair and parseable addresses.
    let endpoint = match spec
        .peer_address
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(IpAddr::from_str)
    {
        Some(Ok(ip)) => PeerEndpoint::Address(ip),
        _ => PeerEndpoint::Interface(spec.interface.clone().unwrap_or_default()),
    };
    let peer_asn = match (spec.peer_asn.filter(|a| *a != 0), spec.dynamic_asn) {
        (Some(asn), _) => PeerAsn::Fixed(asn),
        (None, Some(DynamicAsnMode::Internal)) => PeerAsn::Internal,
        (None, _) => PeerAsn::External,
    };
    Ok(Peer {
        name: name.clone(),
        my_asn: spec.my_asn,
        peer_asn,
        local_asn: spec.local_asn,
        endpoint,
        source_address: spec
            .source_address
            .as_deref()
            .and_then(|a| IpAddr::from_str(a).ok()),
        port: spec.port(),
        timers,
        router_id: spec
            .router_id
            .as_deref()
            .and_then(|r| Ipv4Addr::from_str(r).ok()),
        node_selectors: spec.node_selectors.clone(),
        password,
        bfd_profile,
        graceful_restart: spec.enable_graceful_restart.unwrap_or(false),
        ebgp_multihop: spec.ebgp_multi_hop.unwrap_or(false),
        vrf: spec.vrf.clone().filter(|v| !v.is_empty()),
        dual_stack_address_family: spec.dual_stack_address_family.unwrap_or(false),
    })
}

/// Resolves a password Secret: `Ok(None)` when Secrets are unknown here.
fn secret_password(objects: &Objects, name: &str) -> Result<Option<String>, Problem> {
    let Some(secrets) = &objects.secrets else {
        return Ok(None);
    };
    let secret = secrets
        .iter()
        .find(|s| s.name_any() == name)
        .ok_or_else(|| Problem::MissingReference {
            kind: "Secret",
            name: name.to_owned(),
        })?;
    let found = secret.type_.clone().unwrap_or_else(|| "Opaque".to_owned());
    if found != "kubernetes.io/basic-auth" {
        return Err(Problem::SecretWrongType {
            name: name.to_owned(),
            found,
        });
    }
    let from_data = secret
        .data
        .as_ref()
        .and_then(|d| d.get("password"))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned());
    let from_string = secret
        .string_data
        .as_ref()
        .and_then(|d| d.get("password"))
        .cloned();
    from_data
        .or(from_string)
        .map(Some)
        .ok_or_else(|| Problem::SecretMissingPassword(name.to_owned()))
}
