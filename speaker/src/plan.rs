//! What this node announces: a pure function of the cluster state and the live speakers. Every
//! speaker computes the same answer from the same inputs, so L2 ownership needs no API writes.
//!
//! Follows MetalLB's speaker: a Service is announced when its IPs lie in one pool and an
//! advertisement applies; the L2 owner is the first eligible live node ordered by
//! `preferredNodeSelectors` weight, then SHA-256(node + "#" + first IP), so a cluster moving from
//! MetalLB keeps the same owners; every eligible node advertises over BGP. No I/O, no clock.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_api::addr::Family;
use ferrolb_api::community::BgpCommunity;
use ferrolb_api::config::{BgpAdvertisement, Config, L2Advertisement, Peer, Pool};
use ferrolb_api::selector::{self, Labels};
use ipnetwork::IpNetwork;
use sha2::{Digest, Sha256};

/// The label that keeps a node out of external load balancing (unless told to ignore it).
pub const EXCLUDE_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// A node as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: Labels,
    /// Condition `NetworkUnavailable` is True.
    pub network_unavailable: bool,
}

/// One endpoint of a Service (from its EndpointSlices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The node hosting it, when known.
    pub node: Option<String>,
    /// MetalLB's reading: `ready` unset or true, or `serving` true.
    pub serving: bool,
}

/// A LoadBalancer Service with its IPs, as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// `namespace/name`.
    pub key: String,
    /// `status.loadBalancer.ingress` IPs, in order (the first one drives the L2 election).
    pub ips: Vec<IpAddr>,
    /// Labels, for advertisements' `serviceSelectors`.
    pub labels: Labels,
    /// `allow-shared-ip` is set.
    pub is_shared: bool,
    /// `externalTrafficPolicy: Local`.
    pub traffic_policy_local: bool,
    /// Its endpoints.
    pub endpoints: Vec<Endpoint>,
}

impl ServiceInfo {
    fn has_serving_endpoint(&self) -> bool {
        self.endpoints.iter().any(|e| e.serving)
    }

    fn serves_on(&self, node: &str) -> bool {
        self.endpoints
            .iter()
            .any(|e| e.serving && e.node.as_deref() == Some(node))
    }
}

/// Everything the plan reads.
#[derive(Debug, Clone, Copy)]
pub struct ClusterState<'a> {
    /// The resolved configuration.
    pub config: &'a Config,
    /// Every node.
    pub nodes: &'a [NodeInfo],
    /// LoadBalancer Services of our class that have IPs.
    pub services: &'a [ServiceInfo],
    /// `--ignore-exclude-lb`: announce from nodes carrying [`EXCLUDE_LB_LABEL`] too.
    pub ignore_exclude_lb: bool,
}

/// Where an L2 IP is answered on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interfaces {
    /// Every eligible interface (an advertisement without `interfaces` applies).
    All,
    /// Only these.
    Only(BTreeSet<String>),
}

/// One IP this node answers ARP/NDP for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Announcement {
    /// The Services on the IP.
    pub services: BTreeSet<String>,
    /// Where to answer.
    pub interfaces: Interfaces,
}

/// Attributes of one announced prefix.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteAttributes {
    /// Communities, sorted, from every advertisement producing the prefix.
    pub communities: BTreeSet<BgpCommunity>,
    /// LOCAL_PREF (iBGP peers only).
    pub local_pref: Option<u32>,
}

/// Why a Service is not announced from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Skip {
    /// Its IPs are not all in one pool of the configuration.
    NotInOnePool,
    /// No endpoint can serve anywhere.
    NoServingEndpoint,
    /// Shared IP with an advertisement using serviceSelectors: owners could disagree.
    SharedIpWithServiceSelector,
    /// Another node owns it in L2.
    NotOwner,
    /// No advertisement selects this node (or the node is excluded).
    NodeNotSelected,
}

impl Skip {
    /// Stable reason for logs and metrics (MetalLB's wording where it has one).
    pub fn reason(self) -> &'static str {
        match self {
            Skip::NotInOnePool => "notInOnePool",
            Skip::NoServingEndpoint => "noServingEndpoint",
            Skip::SharedIpWithServiceSelector => "sharedIPWithServiceSelector",
            Skip::NotOwner => "notOwner",
            Skip::NodeNotSelected => "nodeNotSelected",
        }
    }
}

/// What this node announces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Announcements {
    /// IP → how to answer for it.
    pub l2: BTreeMap<IpAddr, L2Announcement>,
    /// Peer name → prefix → attributes; peers with nothing to advertise are absent.
    pub bgp: BTreeMap<String, BTreeMap<IpNetwork, RouteAttributes>>,
    /// Every peer whose node selectors select this node: it keeps a session with each, routes
    /// or not (see [`crate::apply::bgp::wanted`]).
    pub bgp_peers: BTreeSet<String>,
    /// Services this node does not announce in L2, and why.
    pub l2_skipped: BTreeMap<String, Skip>,
    /// The L2 owner of every Service that has one, this node or another.
    pub l2_owners: BTreeMap<String, String>,
    /// Service → peers this node hands its prefixes to, sorted, without duplicates (a `Vec`:
    /// most Services have one or two peers, and a `BTreeSet` allocates a whole node per
    /// Service, 3 MB at 10k Services).
    pub bgp_peers_by_service: BTreeMap<String, Vec<String>>,
}

/// The node's announcements, given the speakers known alive (`live`: node names).
pub fn plan(me: &str, state: &ClusterState<'_>, live: &BTreeSet<String>) -> Announcements {
    let mut out = Announcements::default();
    let Some(node) = state.nodes.iter().find(|n| n.name == me) else {
        return out;
    };
    let peers: Vec<&Peer> = state
        .config
        .peers
        .values()
        .filter(|p| selector::matches_any(&p.node_selectors, &node.labels))
        .collect();
    out.bgp_peers = peers.iter().map(|p| p.name.clone()).collect();
    for service in state.services {
        let Some(pool) = pool_of(state.config, &service.ips) else {
            out.l2_skipped
                .insert(service.key.clone(), Skip::NotInOnePool);
            continue;
        };
        plan_l2(node, state, live, service, pool, &mut out);
        plan_bgp(node, state, &peers, service, pool, &mut out);
    }
    out
}

/// The pool holding every IP of the Service, if one does.
fn pool_of<'c>(config: &'c Config, ips: &[IpAddr]) -> Option<&'c Pool> {
    let first = ips.first()?;
    let pool = config
        .pools
        .values()
        .find(|p| p.range_of(*first).is_some())?;
    ips.iter()
        .all(|ip| pool.range_of(*ip).is_some())
        .then_some(pool)
}

fn is_excluded(node: &NodeInfo, ignore_exclude_lb: bool) -> bool {
    node.network_unavailable || (!ignore_exclude_lb && node.labels.contains_key(EXCLUDE_LB_LABEL))
}

fn l2_ads_for<'c>(
    config: &'c Config,
    pool: &Pool,
    service: &ServiceInfo,
) -> Vec<&'c L2Advertisement> {
    config
        .l2_advertisements
        .iter()
        .filter(|ad| {
            ad.pools.contains(&pool.name)
                && selector::matches_any(&ad.service_selectors, &service.labels)
        })
        .collect()
}

/// The node that answers for `service` in L2: the first eligible live node by preference weight,
/// then by SHA-256(node + "#" + first IP). `None` when no node may.
pub fn l2_owner<'n>(
    state: &ClusterState<'n>,
    live: &BTreeSet<String>,
    service: &ServiceInfo,
) -> Result<&'n str, Skip> {
    let pool = pool_of(state.config, &service.ips).ok_or(Skip::NotInOnePool)?;
    let ads = l2_ads_for(state.config, pool, service);
    owner_among(state, live, service, &ads)
}

fn owner_among<'n>(
    state: &ClusterState<'n>,
    live: &BTreeSet<String>,
    service: &ServiceInfo,
    ads: &[&L2Advertisement],
) -> Result<&'n str, Skip> {
    if !service.has_serving_endpoint() {
        return Err(Skip::NoServingEndpoint);
    }
    if service.is_shared && ads.iter().any(|ad| !ad.service_selectors.is_empty()) {
        return Err(Skip::SharedIpWithServiceSelector);
    }
    let first_ip = service
        .ips
        .first()
        .map(ToString::to_string)
        .unwrap_or_default();
    let candidates = state.nodes.iter().filter(|n| {
        live.contains(&n.name)
            && !is_excluded(n, state.ignore_exclude_lb)
            && ads
                .iter()
                .any(|ad| selector::matches_any(&ad.node_selectors, &n.labels))
            && (!service.traffic_policy_local || service.serves_on(&n.name))
    });
    let ranked = candidates.map(|n| {
        let weight: i64 = ads
            .iter()
            .filter(|ad| selector::matches_any(&ad.node_selectors, &n.labels))
            .flat_map(|ad| &ad.preferred_node_selectors)
            .filter(|(_, preference)| selector::matches(preference, &n.labels))
            .map(|(w, _)| i64::from(*w))
            .sum();
        let hash: [u8; 32] = Sha256::digest(format!("{}#{first_ip}", n.name).as_bytes()).into();
        (std::cmp::Reverse(weight), hash, n.name.as_str())
    });
    ranked
        .min()
        .map(|(_, _, name)| name)
        .ok_or(Skip::NodeNotSelected)
}

fn plan_l2(
    node: &NodeInfo,
    state: &ClusterState<'_>,
    live: &BTreeSet<String>,
    service: &ServiceInfo,
    pool: &Pool,
    out: &mut Announcements,
) {
    let ads = l2_ads_for(state.config, pool, service);
    if ads.is_empty() {
        return;
    }
    let mine: Vec<&&L2Advertisement> = ads
        .iter()
        .filter(|ad| selector::matches_any(&ad.node_selectors, &node.labels))
        .collect();
    let owner = owner_among(state, live, service, &ads);
    if let Ok(owner) = owner {
        out.l2_owners.insert(service.key.clone(), owner.to_owned());
    }
    let skip = match owner {
        Ok(owner) if owner == node.name && !mine.is_empty() => None,
        Ok(_) if mine.is_empty() => Some(Skip::NodeNotSelected),
        Ok(_) => Some(Skip::NotOwner),
        Err(skip) => Some(skip),
    };
    if let Some(skip) = skip {
        out.l2_skipped.insert(service.key.clone(), skip);
        return;
    }
    let interfaces = if mine.iter().any(|ad| ad.interfaces.is_empty()) {
        Interfaces::All
    } else {
        Interfaces::Only(
            mine.iter()
                .flat_map(|ad| ad.interfaces.iter().cloned())
                .collect(),
        )
    };
    for ip in &service.ips {
        let entry = out.l2.entry(*ip).or_insert_with(|| L2Announcement {
            services: BTreeSet::new(),
            interfaces: interfaces.clone(),
        });
        entry.services.insert(service.key.clone());
        entry.interfaces = merge_interfaces(&entry.interfaces, &interfaces);
    }
}

fn merge_interfaces(a: &Interfaces, b: &Interfaces) -> Interfaces {
    match (a, b) {
        (Interfaces::Only(x), Interfaces::Only(y)) => {
            Interfaces::Only(x.union(y).cloned().collect())
        }
        _ => Interfaces::All,
    }
}

fn plan_bgp(
    node: &NodeInfo,
    state: &ClusterState<'_>,
    peers: &[&Peer],
    service: &ServiceInfo,
    pool: &Pool,
    out: &mut Announcements,
) {
    if is_excluded(node, state.ignore_exclude_lb) {
        return;
    }
    let has_endpoint = if service.traffic_policy_local {
        service.serves_on(&node.name)
    } else {
        service.has_serving_endpoint()
    };
    if !has_endpoint {
        return;
    }
    let ads = state
        .config
        .bgp_advertisements
        .iter()
        .filter(|ad: &&BgpAdvertisement| {
            ad.pools.contains(&pool.name)
                && selector::matches_any(&ad.node_selectors, &node.labels)
                && selector::matches_any(&ad.service_selectors, &service.labels)
        });
    for ad in ads {
        for ip in &service.ips {
            let length = match Family::of(*ip) {
                Family::V4 => ad.aggregation_length_v4,
                Family::V6 => ad.aggregation_length_v6,
            };
            // Lengths are validated against the family's width, so this cannot fail.
            let Ok(prefix) =
                IpNetwork::new(*ip, length).and_then(|n| IpNetwork::new(n.network(), length))
            else {
                continue;
            };
            for peer in peers
                .iter()
                .filter(|p| ad.peers.is_empty() || ad.peers.contains(&p.name))
            {
                let service_peers = out
                    .bgp_peers_by_service
                    .entry(service.key.clone())
                    .or_default();
                if let Err(at) = service_peers.binary_search(&peer.name) {
                    service_peers.insert(at, peer.name.clone());
                }
                let attributes = out
                    .bgp
                    .entry(peer.name.clone())
                    .or_default()
                    .entry(prefix)
                    .or_default();
                attributes
                    .communities
                    .extend(ad.communities.iter().copied());
                if peer.is_ibgp() {
                    let local_pref = ad.local_pref.unwrap_or(0);
                    attributes.local_pref = Some(
                        attributes
                            .local_pref
                            .map_or(local_pref, |lp| lp.max(local_pref)),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
