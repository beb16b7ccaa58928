//! The three BGP routers of the lab — FRR (zebra + bgpd), BIRD 2 and GoBGP — each started inside
//! a namespace with a configuration made from a [`Local`] identity and a list of [`Neighbor`]s
//! (FRR's bfdd and BIRD's BFD beside them when a neighbor asks, see [`bfdd`]),
//! and read back through its own control channel: FRR's vty socket and BIRD's control socket
//! directly, GoBGP's CLI with JSON output inside the namespace. Every router's RIB is reduced to
//! the same [`RibPath`], so that one test body checks all three.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::error::LabError;
use crate::poll::poll;

pub mod bfdd;
pub mod bird;
pub mod frr;
pub mod gobgp;

pub use bfdd::{BfdPeer, BirdBfdSession};
pub use bird::Bird;
pub use frr::Frr;
pub use gobgp::Gobgp;

/// How long a router may take to start or to reach a state, on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The router's own identity: its AS and its addresses on the lab segment (the IPv4 one is also
/// its router ID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local {
    /// The router's AS.
    pub asn: u32,
    /// Its IPv4 address on the segment; its router ID.
    pub v4: Ipv4Addr,
    /// Its IPv6 address on the segment.
    pub v6: Ipv6Addr,
}

/// Address families a neighbor exchanges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Families {
    /// IPv4 unicast (AFI 1, SAFI 1).
    pub ipv4_unicast: bool,
    /// IPv6 unicast (AFI 2, SAFI 1).
    pub ipv6_unicast: bool,
}

impl Families {
    /// Both unicast families.
    pub const DUAL: Families = Families {
        ipv4_unicast: true,
        ipv6_unicast: true,
    };
}

/// One BGP neighbor in a router's configuration.
#[derive(Debug, Clone)]
pub struct Neighbor {
    /// The neighbor's address.
    pub addr: IpAddr,
    /// Its AS.
    pub remote_as: u32,
    /// What it exchanges.
    pub families: Families,
    /// TCP MD5 password (RFC 2385).
    pub password: Option<String>,
    /// Hold time the router proposes (its default when `None`); keepalives every third of it.
    pub hold_time_secs: Option<u16>,
    /// The router only accepts (true) or also dials, retrying every second (false; FRR only).
    pub is_passive: bool,
    /// eBGP neighbor this many hops away (FRR only: `ebgp-multihop N`).
    pub ebgp_multihop: Option<u8>,
    /// A BFD session guards the session (FRR: `neighbor X bfd` at 300 ms × 3, with bfdd
    /// started; BIRD: `bfd on` with its `protocol bfd`).
    pub bfd: bool,
}

impl Neighbor {
    /// A passive neighbor with the router's defaults.
    pub fn new(addr: IpAddr, remote_as: u32, families: Families) -> Neighbor {
        Neighbor {
            addr,
            remote_as,
            families,
            password: None,
            hold_time_secs: None,
            is_passive: true,
            ebgp_multihop: None,
            bfd: false,
        }
    }
}

/// One path of a prefix in a router's RIB, in a form all three routers can be reduced to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RibPath {
    /// The BGP next hop (global address).
    pub next_hop: IpAddr,
    /// AS numbers of AS_PATH in order (empty for iBGP).
    pub as_path: Vec<u32>,
    /// "high:low", sorted.
    pub communities: Vec<String>,
    /// "global:data1:data2", sorted.
    pub large_communities: Vec<String>,
    /// LOCAL_PREF when the router shows one for this path (iBGP only is checked).
    pub local_pref: Option<u32>,
}

/// What tests ask a router. Queries return what the router said when it is not (yet) what was
/// asked for, so that a poll can report it.
pub trait Router {
    /// A short name for messages.
    fn name(&self) -> &'static str;
    /// `Ok` once the session with `neighbor` is Established, else what the router says.
    fn session_state(&self, neighbor: IpAddr) -> Result<(), String>;
    /// Every path the router holds for `prefix` (empty when it has none).
    fn paths(&self, prefix: &str) -> Result<Vec<RibPath>, String>;
    /// How many prefixes (all families) the router accepted from `neighbor`.
    fn accepted(&self, neighbor: IpAddr) -> Result<u64, String>;

    /// Waits until the session with `neighbor` is Established.
    fn wait_established(&self, neighbor: IpAddr) -> Result<(), LabError> {
        poll(
            &format!("{} session with {neighbor} Established", self.name()),
            DEADLINE,
            Duration::from_millis(200),
            || self.session_state(neighbor),
        )
    }

    /// Waits until the router's paths for `prefix` are exactly `want` (in any order).
    fn wait_paths(&self, prefix: &str, mut want: Vec<RibPath>) -> Result<(), LabError> {
        want.sort();
        poll(
            &format!("{} RIB for {prefix}", self.name()),
            DEADLINE,
            Duration::from_millis(200),
            || {
                let mut got = self.paths(prefix)?;
                got.sort();
                if got == want {
                    Ok(())
                } else {
                    Err(format!("{got:?}, want {want:?}"))
                }
            },
        )
    }
}

/// "ipv6" for an IPv6 prefix, else "ipv4".
fn family_of(prefix: &str) -> &'static str {
    if prefix.contains(':') { "ipv6" } else { "ipv4" }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}
