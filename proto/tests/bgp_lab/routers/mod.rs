//! The three routers of the lab (FRR bgpd+zebra, BIRD 2, GoBGP), each started by the test in
//! the router namespace with its own configuration, and read back through its own control
//! channel: FRR's vty socket and BIRD's control socket directly, GoBGP's CLI with JSON output.
//! Every router's RIB is reduced to the same [`RibPath`] so that one test body checks all three.

use std::net::IpAddr;
use std::time::Duration;

use ferrolb_proto::bgp::open::Families;

use super::{DEADLINE, poll};

mod bird;
mod frr;
mod gobgp;

// Each test binary uses some of the three.
#[allow(unused_imports)]
pub(crate) use bird::Bird;
#[allow(unused_imports)]
pub(crate) use frr::Frr;
#[allow(unused_imports)]
pub(crate) use gobgp::Gobgp;

/// The router's AS in every lab.
pub(crate) const ROUTER_AS: u32 = 64600;

/// One BGP neighbor in a router's configuration.
#[derive(Debug, Clone)]
pub(crate) struct Neighbor {
    pub(crate) addr: IpAddr,
    pub(crate) remote_as: u32,
    pub(crate) families: Families,
    /// TCP MD5 password (RFC 2385).
    pub(crate) password: Option<String>,
    /// Hold time the router proposes (its default when `None`); keepalives every third of it.
    pub(crate) hold_time_secs: Option<u16>,
    /// The router only accepts (true) or also dials, retrying every second (false).
    pub(crate) is_passive: bool,
    /// eBGP neighbor this many hops away (FRR only: `ebgp-multihop N`).
    pub(crate) ebgp_multihop: Option<u8>,
}

impl Neighbor {
    pub(crate) fn new(addr: IpAddr, remote_as: u32, families: Families) -> Neighbor {
        Neighbor {
            addr,
            remote_as,
            families,
            password: None,
            hold_time_secs: None,
            is_passive: true,
            ebgp_multihop: None,
        }
    }
}

/// One path of a prefix in a router's RIB, in a form all three routers can be reduced to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RibPath {
    /// The BGP next hop (global address).
    pub(crate) next_hop: IpAddr,
    /// AS numbers of AS_PATH in order (empty for iBGP).
    pub(crate) as_path: Vec<u32>,
    /// "high:low", sorted.
    pub(crate) communities: Vec<String>,
    /// "global:data1:data2", sorted.
    pub(crate) large_communities: Vec<String>,
    /// LOCAL_PREF when the router shows one for this path (iBGP only is checked).
    pub(crate) local_pref: Option<u32>,
}

/// What the tests ask a router.
pub(crate) trait Router {
    /// A short name for messages.
    fn name(&self) -> &'static str;
    /// `Ok` once the session with `neighbor` is Established, else what the router says.
    fn session_state(&self, neighbor: IpAddr) -> Result<(), String>;
    /// Every path the router holds for `prefix` (empty when it has none).
    fn paths(&self, prefix: &str) -> Result<Vec<RibPath>, String>;
    /// How many prefixes (all families) the router accepted from `neighbor`.
    fn accepted(&self, neighbor: IpAddr) -> Result<u64, String>;

    /// Waits until the session with `neighbor` is Established.
    fn wait_established(&self, neighbor: IpAddr) {
        poll(
            &format!("{} session with {neighbor} Established", self.name()),
            DEADLINE,
            Duration::from_millis(200),
            || self.session_state(neighbor),
        );
    }

    /// Waits until the router's paths for `prefix` are exactly `want` (in any order).
    fn wait_paths(&self, prefix: &str, mut want: Vec<RibPath>) {
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
        );
    }
}

pub(super) fn family_of(prefix: &str) -> &'static str {
    if prefix.contains(':') { "ipv6" } else { "ipv4" }
}

pub(super) fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}
