//! The resolved configuration: every valid object, with references followed, defaults applied and
//! cross-object rules checked. Controller and speaker consume a [`Config`], never the raw objects.
//!
//! A bad object is reported and left out; it never takes the good ones with it. Where two objects
//! clash (overlapping pools, duplicate aliases, conflicting advertisements), the older one stays —
//! by `creationTimestamp`, then name — so that adding an object cannot break one that works.
//! No I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Bound;
use std::str::FromStr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{Resource, ResourceExt};

use crate::addr::{Family, IpRange};
use crate::community::{BgpCommunity, CommunityError};
use crate::error::{ConfigError, Kind, Problem};
use crate::selector::{self, Labels};
use crate::types::{self, DynamicAsnMode};
use crate::validate;

/// Every object the configuration is built from. `secrets` and `nodes` are `None` when unknown
/// (offline validation): references to Secrets are then not checked, and node selectors are taken
/// to possibly select the same nodes.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// `IPAddressPool`s.
    pub pools: Vec<types::IPAddressPool>,
    /// `L2Advertisement`s.
    pub l2_advertisements: Vec<types::L2Advertisement>,
    /// `BGPAdvertisement`s.
    pub bgp_advertisements: Vec<types::BGPAdvertisement>,
    /// `BGPPeer`s (v1beta1 ones converted up).
    pub bgp_peers: Vec<types::BGPPeer>,
    /// `BFDProfile`s.
    pub bfd_profiles: Vec<types::BFDProfile>,
    /// `Community` alias sets.
    pub communities: Vec<types::Community>,
    /// Secrets in FerroLB's namespace, for peer passwords.
    pub secrets: Option<Vec<Secret>>,
    /// The cluster's nodes, for rules about which nodes objects select.
    pub nodes: Option<Vec<Node>>,
}

/// A pool ready for allocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// `metadata.name`.
    pub name: String,
    /// Labels, matched by advertisements' `ipAddressPoolSelectors`.
    pub labels: Labels,
    /// Disjoint ranges in `spec.addresses` order.
    pub ranges: Vec<IpRange>,
    /// Taken part in automatic allocation.
    pub auto_assign: bool,
    /// Skip IPv4 .0 and .255.
    pub avoid_buggy_ips: bool,
    /// `serviceAllocation`, if the pool is restricted.
    pub allocation: Option<Allocation>,
}

/// A resolved `serviceAllocation`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Allocation {
    /// Lower positive first; 0 after all positive ones.
    pub priority: i64,
    /// Allowed namespaces by name.
    pub namespaces: Vec<String>,
    /// Allowed namespaces by labels.
    pub namespace_selectors: Vec<LabelSelector>,
    /// Allowed Services by labels.
    pub service_selectors: Vec<LabelSelector>,
}

impl Pool {
    /// Whether the pool holds addresses of `family`.
    pub fn has_family(&self, family: Family) -> bool {
        self.ranges.iter().any(|r| r.family() == family)
    }

    /// The range holding `ip`, if the pool contains it.
    pub fn range_of(&self, ip: IpAddr) -> Option<&IpRange> {
        self.ranges.iter().find(|r| r.contains(ip))
    }

    /// Usable addresses of `family`, honouring `avoidBuggyIPs`.
    pub fn capacity(&self, family: Family) -> u128 {
        self.ranges
            .iter()
            .filter(|r| r.family() == family)
            .fold(0u128, |sum, r| {
                sum.saturating_add(r.usable_size(self.avoid_buggy_ips))
            })
    }
}

/// An L2Advertisement with its pools resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct L2Advertisement {
    /// `metadata.name`.
    pub name: String,
    /// Names of the valid pools it announces.
    pub pools: BTreeSet<String>,
    /// Nodes that may answer; empty = all.
    pub node_selectors: Vec<LabelSelector>,
    /// Interfaces to answer on; empty = all eligible.
    pub interfaces: Vec<String>,
    /// Services it applies to; empty = all.
    pub service_selectors: Vec<LabelSelector>,
    /// `(weight, preference)` pairs biasing the owner choice.
    pub preferred_node_selectors: Vec<(i32, LabelSelector)>,
}

/// A BGPAdvertisement with pools and communities resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct BgpAdvertisement {
    /// `metadata.name`.
    pub name: String,
    /// Names of the valid pools it announces.
    pub pools: BTreeSet<String>,
    /// IPv4 prefix length announced.
    pub aggregation_length_v4: u8,
    /// IPv6 prefix length announced.
    pub aggregation_length_v6: u8,
    /// LOCAL_PREF for iBGP peers.
    pub local_pref: Option<u32>,
    /// Sorted, distinct communities (aliases resolved).
    pub communities: Vec<BgpCommunity>,
    /// Nodes that may be next hops; empty = all.
    pub node_selectors: Vec<LabelSelector>,
    /// Peer names; empty = every peer.
    pub peers: Vec<String>,
    /// Services it applies to; empty = all.
    pub service_selectors: Vec<LabelSelector>,
}

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

/// A BFD profile with the defaults of unset fields applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdProfile {
    /// `metadata.name`.
    pub name: String,
    /// Required minimum receive interval.
    pub receive_interval: Duration,
    /// Desired minimum transmit interval.
    pub transmit_interval: Duration,
    /// Detection multiplier.
    pub detect_multiplier: u8,
    /// Required minimum echo receive interval.
    pub echo_interval: Duration,
    /// Echo function on.
    pub echo_mode: bool,
    /// Wait for the peer to start.
    pub passive_mode: bool,
    /// Lowest TTL accepted (multihop).
    pub minimum_ttl: u8,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// Pools by name.
    pub pools: BTreeMap<String, Pool>,
    /// L2 advertisements, by name order.
    pub l2_advertisements: Vec<L2Advertisement>,
    /// BGP advertisements, by name order.
    pub bgp_advertisements: Vec<BgpAdvertisement>,
    /// Peers by name.
    pub peers: BTreeMap<String, Peer>,
    /// BFD profiles by name.
    pub bfd_profiles: BTreeMap<String, BfdProfile>,
    /// Community aliases by name.
    pub community_aliases: BTreeMap<String, BgpCommunity>,
}

/// A [`Config`] and the problems of the objects left out of it.
#[derive(Debug, Clone, Default)]
pub struct Built {
    /// What is valid.
    pub config: Config,
    /// What is not, in a stable order.
    pub problems: Vec<ConfigError>,
    /// Objects whose current version is invalid and whose last valid version was used instead
    /// (see [`build_keeping_last_good`]).
    pub kept_last_good: Vec<(Kind, String)>,
}

impl Built {
    /// Whether any problem is a real error (not a reference that may still resolve).
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| !p.is_transient())
    }
}

/// Objects sorted oldest first, so that in a clash the object that was there first is kept. An
/// object without `creationTimestamp` has not been created yet (a manifest being applied, an object
/// under admission) and counts as the newest.
/// The objects a build reads, and which of them were accepted by the previous build unchanged.
/// Objects are taken oldest first (a newer object conflicting with an older one is the one left
/// out, as in MetalLB); creationTimestamp has one-second resolution, and among objects of the
/// same second an accepted one comes first, so a new object never displaces a working one.
struct Source<'a> {
    objects: &'a Objects,
    accepted: &'a BTreeSet<(Kind, String)>,
}

impl<'a> Source<'a> {
    fn oldest_first<K: Resource>(&self, list: &'a [K], kind: Kind) -> Vec<&'a K> {
        let mut sorted: Vec<&K> = list.iter().collect();
        sorted.sort_by_cached_key(|o| {
            let created = o.meta().creation_timestamp.as_ref().map(|t| t.0);
            let name = o.name_any();
            let is_new = !self.accepted.contains(&(kind, name.clone()));
            (created.is_none(), created, is_new, name)
        });
        sorted
    }
}

impl std::ops::Deref for Source<'_> {
    type Target = Objects;

    fn deref(&self) -> &Objects {
        self.objects
    }
}

/// Builds the configuration from all objects; never fails as a whole.
pub fn build(objects: &Objects) -> Built {
    build_from(&Source {
        objects,
        accepted: &BTreeSet::new(),
    })
}

fn build_from(objects: &Source<'_>) -> Built {
    let mut problems = Vec::new();
    let pools = build_pools(objects, &mut problems);
    let community_aliases = build_aliases(objects, &mut problems);
    let bfd_profiles = build_bfd_profiles(objects, &mut problems);
    let peers = build_peers(objects, &bfd_profiles, &mut problems);
    let l2_advertisements = build_l2_advertisements(objects, &pools, &mut problems);
    let bgp = BgpContext {
        objects,
        pools: &pools,
        aliases: &community_aliases,
        peers: &peers,
        bfd: &bfd_profiles,
    };
    let bgp_advertisements = bgp.build(&mut problems);
    Built {
        config: Config {
            pools,
            l2_advertisements,
            bgp_advertisements,
            peers,
            bfd_profiles,
            community_aliases,
        },
        problems,
        kept_last_good: Vec::new(),
    }
}

/// Like [`build`], but an object whose current version is left out keeps its last valid version
/// from `last_good`, so that a bad edit never withdraws what works: an invalid pool edit does not
/// release the addresses Services hold, a broken advertisement does not stop announcements.
/// MetalLB keeps its whole last good configuration for the same reason; this keeps it per object.
///
/// Returns the configuration and the next `last_good`: every object that is in it.
pub fn build_keeping_last_good(objects: &Objects, last_good: &Objects) -> (Built, Objects) {
    let accepted = unchanged_since(objects, last_good);
    let build = |objects: &Objects| {
        build_from(&Source {
            objects,
            accepted: &accepted,
        })
    };
    let first = build(objects);
    let mut working = objects.clone();
    let mut kept: BTreeSet<(Kind, String)> = BTreeSet::new();
    let mut built = first.clone();
    // Each round substitutes at least one object, and never the same one twice.
    loop {
        let failing: BTreeSet<(Kind, String)> = built
            .problems
            .iter()
            .map(|p| (p.kind, p.name.clone()))
            .collect();
        let mut substituted = false;
        let fresh: Vec<(Kind, String)> = failing.difference(&kept).cloned().collect();
        for (kind, name) in &fresh {
            if let Some(previous) = last_good.get(*kind, name) {
                working.remove(*kind, name);
                working.add(previous);
                kept.insert((*kind, name.clone()));
                substituted = true;
            }
        }
        if !substituted {
            break;
        }
        built = build(&working);
    }
    let failing: BTreeSet<(Kind, String)> = built
        .problems
        .iter()
        .map(|p| (p.kind, p.name.clone()))
        .collect();
    let mut next = working;
    for (kind, name) in &failing {
        next.remove(*kind, name);
    }
    // Say why each substituted object was not taken, from its current version.
    let current_problems = first
        .problems
        .into_iter()
        .filter(|p| kept.contains(&(p.kind, p.name.clone())));
    let mut problems: Vec<ConfigError> = current_problems.chain(built.problems).collect();
    problems.dedup();
    built.problems = problems;
    built.kept_last_good = kept.into_iter().filter(|k| !failing.contains(k)).collect();
    (built, next)
}

/// The FerroLB objects present in `last_good` exactly as they are now.
fn unchanged_since(objects: &Objects, last_good: &Objects) -> BTreeSet<(Kind, String)> {
    fn add_same<K: ResourceExt + PartialEq>(
        out: &mut BTreeSet<(Kind, String)>,
        kind: Kind,
        now: &[K],
        before: &[K],
    ) {
        out.extend(
            now.iter()
                .filter(|o| before.contains(o))
                .map(|o| (kind, o.name_any())),
        );
    }
    let (now, before) = (objects, last_good);
    let mut out = BTreeSet::new();
    add_same(&mut out, Kind::IPAddressPool, &now.pools, &before.pools);
    add_same(
        &mut out,
        Kind::L2Advertisement,
        &now.l2_advertisements,
        &before.l2_advertisements,
    );
    add_same(
        &mut out,
        Kind::BGPAdvertisement,
        &now.bgp_advertisements,
        &before.bgp_advertisements,
    );
    add_same(&mut out, Kind::BGPPeer, &now.bgp_peers, &before.bgp_peers);
    add_same(
        &mut out,
        Kind::BFDProfile,
        &now.bfd_profiles,
        &before.bfd_profiles,
    );
    add_same(
        &mut out,
        Kind::Community,
        &now.communities,
        &before.communities,
    );
    out
}

fn build_pools(objects: &Source<'_>, problems: &mut Vec<ConfigError>) -> BTreeMap<String, Pool> {
    let mut pools = BTreeMap::new();
    // Accepted ranges keyed by (family, start): disjoint, so one neighbour lookup finds a clash.
    let mut taken: BTreeMap<(Family, IpAddr), (IpRange, String, usize)> = BTreeMap::new();
    for object in objects.oldest_first(&objects.pools, Kind::IPAddressPool) {
        let name = object.name_any();
        let ranges = match validate::pool(object) {
            Ok(ranges) => ranges,
            Err(errors) => {
                problems.extend(errors);
                continue;
            }
        };
        let mut clashes = Vec::new();
        for (i, range) in ranges.iter().enumerate() {
            let key = (range.family(), range.start());
            let before = taken.range(..=key).next_back();
            let after = taken.range((Bound::Excluded(key), Bound::Unbounded)).next();
            for (_, (other, other_pool, other_index)) in before.into_iter().chain(after) {
                if other.overlaps(range) {
                    let other_entry = range_text(objects, other_pool, *other_index, other);
                    clashes.push(ConfigError::new(
                        Kind::IPAddressPool,
                        &name,
                        format!("spec.addresses[{i}]"),
                        Problem::Overlap {
                            value: object.spec.addresses[i].clone(),
                            other: format!("IPAddressPool/{other_pool} spec.addresses[{other_index}] {other_entry:?}"),
                        },
                    ));
                }
            }
        }
        if !clashes.is_empty() {
            problems.extend(clashes);
            continue;
        }
        for (i, range) in ranges.iter().enumerate() {
            taken.insert((range.family(), range.start()), (*range, name.clone(), i));
        }
        let spec = &object.spec;
        let allocation = spec.service_allocation.as_ref().map(|a| Allocation {
            priority: a.priority.unwrap_or(0),
            namespaces: a.namespaces.clone(),
            namespace_selectors: a.namespace_selectors.clone(),
            service_selectors: a.service_selectors.clone(),
        });
        pools.insert(
            name.clone(),
            Pool {
                name,
                labels: object.labels().clone(),
                ranges,
                auto_assign: spec.is_auto_assign(),
                avoid_buggy_ips: spec.is_avoid_buggy_ips(),
                allocation,
            },
        );
    }
    pools
}

fn build_aliases(
    objects: &Source<'_>,
    problems: &mut Vec<ConfigError>,
) -> BTreeMap<String, BgpCommunity> {
    let mut aliases: BTreeMap<String, BgpCommunity> = BTreeMap::new();
    let mut defined_by: BTreeMap<String, String> = BTreeMap::new();
    for object in objects.oldest_first(&objects.communities, Kind::Community) {
        let name = object.name_any();
        let entries = match validate::community(object) {
            Ok(entries) => entries,
            Err(errors) => {
                problems.extend(errors);
                continue;
            }
        };
        let clashes: Vec<ConfigError> = entries
            .iter()
            .enumerate()
            .filter_map(|(i, (alias, _))| {
                defined_by.get(alias).map(|other| {
                    ConfigError::new(
                        Kind::Community,
                        &name,
                        format!("spec.communities[{i}].name"),
                        Problem::DuplicateAlias {
                            alias: alias.clone(),
                            other: format!("Community/{other}"),
                        },
                    )
                })
            })
            .collect();
        if !clashes.is_empty() {
            problems.extend(clashes);
            continue;
        }
        for (alias, value) in entries {
            defined_by.insert(alias.clone(), name.clone());
            aliases.insert(alias, value);
        }
    }
    aliases
}

fn build_bfd_profiles(
    objects: &Source<'_>,
    problems: &mut Vec<ConfigError>,
) -> BTreeMap<String, BfdProfile> {
    let ms = |v: Option<u32>, default: u64| Duration::from_millis(v.map_or(default, u64::from));
    let mut profiles = BTreeMap::new();
    for object in objects.oldest_first(&objects.bfd_profiles, Kind::BFDProfile) {
        if let Err(errors) = validate::bfd_profile(object) {
            problems.extend(errors);
            continue;
        }
        let spec = &object.spec;
        let name = object.name_any();
        profiles.insert(
            name.clone(),
            BfdProfile {
                name,
                receive_interval: ms(spec.receive_interval, 300),
                transmit_interval: ms(spec.transmit_interval, 300),
                detect_multiplier: spec
                    .detect_multiplier
                    .and_then(|m| u8::try_from(m).ok())
                    .unwrap_or(3),
                echo_interval: ms(spec.echo_interval, 50),
                echo_mode: spec.echo_mode.unwrap_or(false),
                passive_mode: spec.passive_mode.unwrap_or(false),
                minimum_ttl: spec
                    .minimum_ttl
                    .and_then(|t| u8::try_from(t).ok())
                    .unwrap_or(254),
            },
        );
    }
    profiles
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

/// Nodes selected by a selector list, or `None` when nodes are unknown.
fn selected_nodes(objects: &Objects, selectors: &[LabelSelector]) -> Option<BTreeSet<String>> {
    let nodes = objects.nodes.as_ref()?;
    let empty = Labels::new();
    Some(
        nodes
            .iter()
            .filter(|n| {
                selector::matches_any(selectors, n.metadata.labels.as_ref().unwrap_or(&empty))
            })
            .map(ResourceExt::name_any)
            .collect(),
    )
}

/// Whether two selector lists may pick a common node (always, when nodes are unknown).
fn may_share_a_node(objects: &Objects, a: &[LabelSelector], b: &[LabelSelector]) -> bool {
    match (selected_nodes(objects, a), selected_nodes(objects, b)) {
        (Some(a), Some(b)) => !a.is_disjoint(&b),
        _ => true,
    }
}

fn build_peers(
    objects: &Source<'_>,
    bfd_profiles: &BTreeMap<String, BfdProfile>,
    problems: &mut Vec<ConfigError>,
) -> BTreeMap<String, Peer> {
    let mut peers: BTreeMap<String, Peer> = BTreeMap::new();
    for object in objects.oldest_first(&objects.bgp_peers, Kind::BGPPeer) {
        let name = object.name_any();
        let timers = match validate::bgp_peer(object) {
            Ok(timers) => timers,
            Err(errors) => {
                problems.extend(errors);
                continue;
            }
        };
        let spec = &object.spec;
        let error = |field: &str, problem| ConfigError::new(Kind::BGPPeer, &name, field, problem);
        let password = match (&spec.password, &spec.password_secret) {
            (Some(p), _) if !p.is_empty() => PeerPassword::Known(p.clone()),
            (_, Some(secret)) => {
                let secret_name = secret.name.clone().unwrap_or_default();
                match secret_password(objects, &secret_name) {
                    Ok(Some(password)) => PeerPassword::Known(password),
                    Ok(None) => PeerPassword::FromSecret { name: secret_name },
                    Err(problem) => {
                        problems.push(error("spec.passwordSecret", problem));
                        continue;
                    }
                }
            }
            _ => PeerPassword::None,
        };
        let bfd_profile = spec.bfd_profile.clone().filter(|p| !p.is_empty());
        if let Some(profile) = &bfd_profile
            && !bfd_profiles.contains_key(profile)
        {
            problems.push(error(
                "spec.bfdProfile",
                Problem::MissingReference {
                    kind: "BFDProfile",
                    name: profile.clone(),
                },
            ));
            continue;
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
        let peer = Peer {
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
        };
        let duplicate = peers.values().find(|other| {
            other.identifier() == peer.identifier()
                && may_share_a_node(objects, &other.node_selectors, &peer.node_selectors)
        });
        if let Some(other) = duplicate {
            let field = if matches!(peer.endpoint, PeerEndpoint::Address(_)) {
                "spec.peerAddress"
            } else {
                "spec.interface"
            };
            problems.push(error(
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

/// Pools an advertisement covers: named ones (unknown names ignored, as MetalLB does) plus those
/// its selectors match; both lists empty means every pool.
fn advertised_pools(
    pools: &BTreeMap<String, Pool>,
    names: &[String],
    selectors: &[LabelSelector],
) -> BTreeSet<String> {
    if names.is_empty() && selectors.is_empty() {
        return pools.keys().cloned().collect();
    }
    let by_name = names.iter().filter(|n| pools.contains_key(*n)).cloned();
    let by_label = pools
        .values()
        .filter(|p| selectors.iter().any(|s| selector::matches(s, &p.labels)))
        .map(|p| p.name.clone());
    by_name.chain(by_label).collect()
}

fn build_l2_advertisements(
    objects: &Source<'_>,
    pools: &BTreeMap<String, Pool>,
    problems: &mut Vec<ConfigError>,
) -> Vec<L2Advertisement> {
    let mut ads = Vec::new();
    for object in objects.oldest_first(&objects.l2_advertisements, Kind::L2Advertisement) {
        if let Err(errors) = validate::l2_advertisement(object) {
            problems.extend(errors);
            continue;
        }
        let spec = &object.spec;
        ads.push(L2Advertisement {
            name: object.name_any(),
            pools: advertised_pools(
                pools,
                &spec.ip_address_pools,
                &spec.ip_address_pool_selectors,
            ),
            node_selectors: spec.node_selectors.clone(),
            interfaces: spec.interfaces.clone(),
            service_selectors: spec.service_selectors.clone(),
            preferred_node_selectors: spec
                .preferred_node_selectors
                .iter()
                .map(|p| (p.weight, p.preference.clone()))
                .collect(),
        });
    }
    ads.sort_by(|a, b| a.name.cmp(&b.name));
    ads
}

/// What BGPAdvertisements are checked against.
struct BgpContext<'a> {
    objects: &'a Source<'a>,
    pools: &'a BTreeMap<String, Pool>,
    aliases: &'a BTreeMap<String, BgpCommunity>,
    peers: &'a BTreeMap<String, Peer>,
    bfd: &'a BTreeMap<String, BfdProfile>,
}

impl BgpContext<'_> {
    fn build(&self, problems: &mut Vec<ConfigError>) -> Vec<BgpAdvertisement> {
        let mut accepted: Vec<BgpAdvertisement> = Vec::new();
        for object in self
            .objects
            .oldest_first(&self.objects.bgp_advertisements, Kind::BGPAdvertisement)
        {
            if let Err(errors) = validate::bgp_advertisement(object) {
                problems.extend(errors);
                continue;
            }
            match self.resolve(object, &accepted) {
                Ok(ad) => accepted.push(ad),
                Err(errors) => problems.extend(errors),
            }
        }
        accepted.sort_by(|a, b| a.name.cmp(&b.name));
        accepted
    }

    fn resolve(
        &self,
        object: &types::BGPAdvertisement,
        accepted: &[BgpAdvertisement],
    ) -> Result<BgpAdvertisement, Vec<ConfigError>> {
        let name = object.name_any();
        let spec = &object.spec;
        let error = |field: String, problem| {
            ConfigError::new(Kind::BGPAdvertisement, &name, field, problem)
        };
        let mut errors = Vec::new();

        let mut communities = BTreeSet::new();
        for (i, text) in spec.communities.iter().enumerate() {
            match self
                .aliases
                .get(text)
                .copied()
                .map_or_else(|| BgpCommunity::parse(text), Ok)
            {
                Ok(value) => {
                    communities.insert(value);
                }
                Err(CommunityError::UnknownAlias(alias)) => {
                    errors.push(error(
                        format!("spec.communities[{i}]"),
                        CommunityError::UnknownAlias(alias).into(),
                    ));
                }
                // Malformed literals were reported by validate::bgp_advertisement.
                Err(_) => {}
            }
        }

        // validate::bgp_advertisement bounds both lengths to their family width.
        let v4 = u8::try_from(spec.aggregation_length_v4()).unwrap_or(32);
        let v6 = u8::try_from(spec.aggregation_length_v6()).unwrap_or(128);
        let pools = advertised_pools(
            self.pools,
            &spec.ip_address_pools,
            &spec.ip_address_pool_selectors,
        );
        for pool in pools.iter().filter_map(|p| self.pools.get(p)) {
            for (entry, range) in pool.ranges.iter().enumerate() {
                let (field, length) = match range.family() {
                    Family::V4 => ("spec.aggregationLength", v4),
                    Family::V6 => ("spec.aggregationLengthV6", v6),
                };
                let shortest = range.shortest_prefix();
                if length < shortest {
                    errors.push(error(
                        field.to_owned(),
                        Problem::AggregationTooShort {
                            length: length.into(),
                            shortest,
                            pool: pool.name.clone(),
                            entry: range_text(self.objects, &pool.name, entry, range),
                        },
                    ));
                }
            }
        }

        let targets: Vec<&Peer> = if spec.peers.is_empty() {
            self.peers.values().collect()
        } else {
            spec.peers
                .iter()
                .filter_map(|p| self.peers.get(p))
                .collect()
        };
        for pool in pools
            .iter()
            .filter_map(|p| self.pools.get(p))
            .filter(|p| p.has_family(Family::V6))
        {
            for peer in &targets {
                if let Some(profile) = peer.bfd_profile.as_ref().and_then(|p| self.bfd.get(p))
                    && profile.echo_mode
                {
                    errors.push(error(
                        "spec.peers".to_owned(),
                        Problem::BfdEchoWithIpv6 {
                            peer: peer.name.clone(),
                            profile: profile.name.clone(),
                            pool: pool.name.clone(),
                        },
                    ));
                }
            }
        }

        let ad = BgpAdvertisement {
            name: name.clone(),
            pools,
            aggregation_length_v4: v4,
            aggregation_length_v6: v6,
            local_pref: spec.local_pref,
            communities: communities.into_iter().collect(),
            node_selectors: spec.node_selectors.clone(),
            peers: spec.peers.clone(),
            service_selectors: spec.service_selectors.clone(),
        };
        for other in accepted {
            if let Some(problem) = self.local_pref_conflict(&ad, other) {
                errors.push(error("spec.localPref".to_owned(), problem));
            }
        }
        if errors.is_empty() {
            Ok(ad)
        } else {
            Err(errors)
        }
    }

    /// MetalLB's rule: two advertisements of one pool without serviceSelectors may differ in
    /// LOCAL_PREF only if they can never announce the same prefix to the same peer from one node.
    fn local_pref_conflict(
        &self,
        ad: &BgpAdvertisement,
        other: &BgpAdvertisement,
    ) -> Option<Problem> {
        let ours = ad.local_pref.unwrap_or(0);
        let theirs = other.local_pref.unwrap_or(0);
        if ours == theirs || !ad.service_selectors.is_empty() || !other.service_selectors.is_empty()
        {
            return None;
        }
        let disjoint_peers = !ad.peers.is_empty()
            && !other.peers.is_empty()
            && ad.peers.iter().all(|p| !other.peers.contains(p));
        if disjoint_peers {
            return None;
        }
        let nodes_known = self.objects.nodes.is_some();
        if !may_share_a_node(self.objects, &ad.node_selectors, &other.node_selectors) {
            return None;
        }
        let pool = ad.pools.intersection(&other.pools).find_map(|name| {
            let pool = self.pools.get(name)?;
            let lengths_differ = |family| match family {
                Family::V4 => ad.aggregation_length_v4 != other.aggregation_length_v4,
                Family::V6 => ad.aggregation_length_v6 != other.aggregation_length_v6,
            };
            let clash = [Family::V4, Family::V6]
                .into_iter()
                .any(|f| pool.has_family(f) && !lengths_differ(f));
            clash.then(|| name.clone())
        })?;
        Some(Problem::LocalPrefConflict {
            ours,
            theirs,
            other: format!("BGPAdvertisement/{}", other.name),
            pool,
            hint: if nodes_known {
                ""
            } else {
                " (no Nodes given to show that their nodeSelectors select different nodes)"
            },
        })
    }
}

/// The pool entry as the user wrote it, for messages.
fn range_text(objects: &Objects, pool: &str, index: usize, range: &IpRange) -> String {
    objects
        .pools
        .iter()
        .find(|p| p.name_any() == pool)
        .and_then(|p| p.spec.addresses.get(index))
        .cloned()
        .unwrap_or_else(|| range.to_string())
}
