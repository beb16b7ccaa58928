//! L2 and BGP advertisements with their pools resolved; for BGP also communities (aliases
//! followed), aggregation lengths that fit every pool, and MetalLB's cross-advertisement rules
//! (one LOCAL_PREF per prefix and peer). MetalLB's rule against BFD echo towards IPv6 pools
//! never applies: a BFDProfile with echo mode is refused on its own (`validate::bfd_profile`).
//! No I/O.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

use super::Source;
use super::pools::{Pool, range_text};
use crate::addr::Family;
use crate::community::{BgpCommunity, CommunityError};
use crate::error::{ConfigError, Kind, Problem};
use crate::selector;
use crate::types;
use crate::validate;

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

pub(super) fn build_l2_advertisements(
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
pub(super) struct BgpContext<'a> {
    pub(super) objects: &'a Source<'a>,
    pub(super) pools: &'a BTreeMap<String, Pool>,
    pub(super) aliases: &'a BTreeMap<String, BgpCommunity>,
}

impl BgpContext<'_> {
    pub(super) fn build(&self, problems: &mut Vec<ConfigError>) -> Vec<BgpAdvertisement> {
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
        let communities = self.communities(&spec.communities, &error, &mut errors);
        // validate::bgp_advertisement bounds both lengths to their family width.
        let v4 = u8::try_from(spec.aggregation_length_v4()).unwrap_or(32);
        let v6 = u8::try_from(spec.aggregation_length_v6()).unwrap_or(128);
        let pools = advertised_pools(
            self.pools,
            &spec.ip_address_pools,
            &spec.ip_address_pool_selectors,
        );
        for (field, problem) in self.aggregation_problems(&pools, v4, v6) {
            errors.push(error(field.to_owned(), problem));
        }
        let ad = BgpAdvertisement {
            name: name.clone(),
            pools,
            aggregation_length_v4: v4,
            aggregation_length_v6: v6,
            local_pref: spec.local_pref,
            communities,
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

    /// The sorted, distinct values of `spec.communities`, aliases followed.
    fn communities(
        &self,
        texts: &[String],
        error: &dyn Fn(String, Problem) -> ConfigError,
        errors: &mut Vec<ConfigError>,
    ) -> Vec<BgpCommunity> {
        let mut communities = BTreeSet::new();
        for (i, text) in texts.iter().enumerate() {
            match BgpCommunity::resolve(text, |alias| self.aliases.get(alias).copied()) {
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
        communities.into_iter().collect()
    }

    /// Aggregation lengths shorter than a block of a pool: they would announce addresses
    /// outside it.
    fn aggregation_problems(
        &self,
        pools: &BTreeSet<String>,
        v4: u8,
        v6: u8,
    ) -> Vec<(&'static str, Problem)> {
        let mut problems = Vec::new();
        for pool in pools.iter().filter_map(|p| self.pools.get(p)) {
            for (entry, range) in pool.ranges.iter().enumerate() {
                let (field, length) = match range.family() {
                    Family::V4 => ("spec.aggregationLength", v4),
                    Family::V6 => ("spec.aggregationLengthV6", v6),
                };
                let shortest = range.shortest_prefix();
                if length < shortest {
                    problems.push((
                        field,
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
        problems
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
        if !self
            .objects
            .may_share_a_node(&ad.node_selectors, &other.node_selectors)
        {
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
