//! BFD: which BFD sessions this node needs to guard its BGP sessions, with what parameters,
//! what to change to get there, and whether a guarded BGP session may run. Pure; `daemon::bfd`
//! runs the sessions and `daemon::bgp` the BGP sessions.
//!
//! - A BGP session whose `BGPPeer` names a `bfdProfile` gets a BFD session to the same peer
//!   address, from the same source address. It is multihop (RFC 5883) when FRR would make it
//!   so: eBGP with `ebgpMultiHop`, or iBGP to a peer on no network this node is connected to;
//!   single hop (RFC 5881) otherwise.
//! - Two peers that need the same BFD session (same address, source and mode) share it; the
//!   first by name sets its profile.
//! - A profile change is applied to the running BFD session (a Poll Sequence, RFC 5880 §6.8.3),
//!   which never restarts the BGP session; neither does adding or removing the profile.
//! - The [`Gate`]: once its BFD session has been Up, a BGP session runs only while BFD is Up.
//!   Before BFD first comes up it runs as it would without BFD (as FRR does: a router that has
//!   no BFD for us must not cost the BGP session), and a peer that says AdminDown disarms the
//!   gate (RFC 5882 §3.2: that is no path failure).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_api::config::{BfdProfile, Config};
use ferrolb_proto::bfd::{Profile, ProfileError, SessionKey, State, Status};
use ferrolb_proto::bgp::open::PeerAs;
use ferrolb_proto::bgp::packing::RouteSet;
use ipnetwork::IpNetwork;

use super::bgp::SessionSpec;

/// The VRF label value of every BFD metric: FerroLB runs BFD in the default VRF only, which
/// FRR (and so MetalLB's `frr-metrics`) calls "default".
pub const DEFAULT_VRF: &str = "default";

/// One BFD session and the BGP sessions it guards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// Its timers (the profile of the first peer by name).
    pub profile: Profile,
    /// The profile's name, for logs.
    pub profile_name: String,
    /// The `BGPPeer`s it guards.
    pub peers: BTreeSet<String>,
}

/// Why a `BGPPeer`'s BFD profile is not run (its BGP session runs unguarded or, for a
/// conflict, guarded by the other peer's profile).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// BFD sockets are not bound to VRF devices yet.
    #[error(
        "BGPPeer/{peer}: spec.bfdProfile: BFD in a VRF ({vrf}) is not supported yet; the session runs without BFD"
    )]
    Vrf {
        /// The peer.
        peer: String,
        /// Its VRF.
        vrf: String,
    },
    /// The profile cannot be run (the configuration checks should have refused it).
    #[error("BGPPeer/{peer}: spec.bfdProfile: BFDProfile/{profile}: {error}")]
    Profile {
        /// The peer.
        peer: String,
        /// The profile.
        profile: String,
        /// Why.
        error: ProfileError,
    },
    /// Another peer needs the same BFD session with another profile.
    #[error(
        "BGPPeer/{peer}: spec.bfdProfile: the BFD session to {address} is shared with BGPPeer/{other}, whose BFDProfile/{used} applies instead of BFDProfile/{profile}"
    )]
    Conflict {
        /// The peer whose profile is not applied.
        peer: String,
        /// Its profile.
        profile: String,
        /// The peer address.
        address: IpAddr,
        /// The peer whose profile applies.
        other: String,
        /// That profile.
        used: String,
    },
}

impl Refusal {
    /// Stable reason for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Vrf { .. } => "BFDInVRFUnsupported",
            Refusal::Profile { error, .. } => error.reason(),
            Refusal::Conflict { .. } => "BFDProfileConflict",
        }
    }
}

/// The BFD sessions this node needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    /// Session key → what it runs with and whom it guards.
    pub sessions: BTreeMap<SessionKey, Guard>,
    /// `BGPPeer` name → the BFD session guarding it.
    pub guards: BTreeMap<String, SessionKey>,
    /// Profiles not run as asked.
    pub refused: Vec<Refusal>,
}

/// The BFD sessions guarding `bgp` (peer name → BGP session), for a node connected to
/// `connected` (its interfaces' networks, to tell single hop from multihop for iBGP).
pub fn wanted(
    config: &Config,
    bgp: &BTreeMap<String, (SessionSpec, RouteSet)>,
    connected: &[IpNetwork],
) -> Wanted {
    let mut out = Wanted::default();
    for (name, (spec, _)) in bgp {
        let Some(profile) = config
            .peers
            .get(name)
            .and_then(|p| p.bfd_profile.as_ref())
            .and_then(|p| config.bfd_profiles.get(p))
        else {
            continue;
        };
        if let Some(vrf) = &spec.vrf {
            out.refused.push(Refusal::Vrf {
                peer: name.clone(),
                vrf: vrf.clone(),
            });
            continue;
        }
        let timers = to_profile(profile);
        if let Err(error) = timers.params() {
            out.refused.push(Refusal::Profile {
                peer: name.clone(),
                profile: profile.name.clone(),
                error,
            });
            continue;
        }
        let key = session_key(spec, connected);
        let guard = out.sessions.entry(key.clone()).or_insert_with(|| Guard {
            profile: timers,
            profile_name: profile.name.clone(),
            peers: BTreeSet::new(),
        });
        if guard.profile != timers {
            let other = guard.peers.first().cloned().unwrap_or_default();
            out.refused.push(Refusal::Conflict {
                peer: name.clone(),
                profile: profile.name.clone(),
                address: key.peer,
                other,
                used: guard.profile_name.clone(),
            });
        }
        guard.peers.insert(name.clone());
        out.guards.insert(name.clone(), key);
    }
    out
}

/// The BFD session a BGP session needs: same peer and source address, multihop as FRR decides
/// (`bgp_bfd_is_peer_multihop`: iBGP to a peer on no shared network, or eBGP multihop).
pub fn session_key(spec: &SessionSpec, connected: &[IpNetwork]) -> SessionKey {
    let peer = spec.peer_addr.ip();
    let is_ibgp = match spec.local.peer_as {
        PeerAs::Fixed(asn) => asn == spec.local.local_as,
        PeerAs::Internal => true,
        PeerAs::External => false,
    };
    let is_on_link = connected.iter().any(|n| n.contains(peer));
    SessionKey {
        peer,
        local: spec.source_address,
        is_multihop: spec.ebgp_multihop || (is_ibgp && !is_on_link),
        interface: None,
    }
}

/// MetalLB's profile fields as the BFD task takes them.
pub fn to_profile(p: &BfdProfile) -> Profile {
    Profile {
        receive_interval: p.receive_interval,
        transmit_interval: p.transmit_interval,
        detect_multiplier: p.detect_multiplier,
        echo_interval: p.echo_interval,
        echo_mode: p.echo_mode,
        passive_mode: p.passive_mode,
        minimum_ttl: p.minimum_ttl,
    }
}

/// What to change so that the running BFD sessions are the wanted ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Sessions to start.
    pub add: Vec<(SessionKey, Profile)>,
    /// Running sessions whose profile changed: renegotiated in place.
    pub update: Vec<(SessionKey, Profile)>,
    /// Sessions no longer wanted.
    pub remove: Vec<SessionKey>,
}

/// The changes from `running` (key → profile) to `wanted`.
pub fn changes(running: &BTreeMap<SessionKey, Profile>, wanted: &Wanted) -> Changes {
    let mut out = Changes::default();
    for key in running.keys().filter(|k| !wanted.sessions.contains_key(*k)) {
        out.remove.push(key.clone());
    }
    for (key, guard) in &wanted.sessions {
        match running.get(key) {
            None => out.add.push((key.clone(), guard.profile)),
            Some(profile) if *profile != guard.profile => {
                out.update.push((key.clone(), guard.profile));
            }
            Some(_) => {}
        }
    }
    out
}

/// Whether the BGP sessions a BFD session guards may run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Gate {
    /// BFD has not been Up (or the peer disarmed it with AdminDown): BGP runs as without BFD.
    #[default]
    Unarmed,
    /// BFD is Up: BGP runs.
    Up,
    /// BFD left Up: the path failed, BGP must not run until BFD is Up again.
    Down,
}

impl Gate {
    /// The gate after the BFD session reported `status`.
    pub fn next(self, status: &Status) -> Gate {
        if status.state == State::Up {
            Gate::Up
        } else if status.remote_state == State::AdminDown {
            // RFC 5882 §3.2: a peer's AdminDown must not be taken for a path failure.
            Gate::Unarmed
        } else if self == Gate::Up {
            Gate::Down
        } else {
            self
        }
    }

    /// Whether the guarded BGP sessions may run.
    pub fn allows_bgp(self) -> bool {
        self != Gate::Down
    }
}

/// The `BGPPeer`s (of `guards`: peer name → BFD session) that BFD holds down now.
pub fn held(
    guards: &BTreeMap<String, SessionKey>,
    gates: &BTreeMap<SessionKey, Gate>,
) -> BTreeSet<String> {
    guards
        .iter()
        .filter(|(_, key)| gates.get(*key).is_some_and(|g| !g.allows_bgp()))
        .map(|(name, _)| name.clone())
        .collect()
}

#[cfg(test)]
mod tests;
