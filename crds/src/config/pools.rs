//! IPAddressPools resolved for allocation: their ranges parsed and checked against every older
//! pool, so that no address belongs to two pools. No I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Bound;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

use super::{Objects, Source};
use crate::addr::{Family, IpRange};
use crate::error::{ConfigError, Kind, Problem};
use crate::selector::Labels;
use crate::validate;

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

pub(super) fn build_pools(
    objects: &Source<'_>,
    problems: &mut Vec<ConfigError>,
) -> BTreeMap<String, Pool> {
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

/// The pool entry as the user wrote it, for messages.
pub(super) fn range_text(objects: &Objects, pool: &str, index: usize, range: &IpRange) -> String {
    objects
        .pools
        .iter()
        .find(|p| p.name_any() == pool)
        .and_then(|p| p.spec.addresses.get(index))
        .cloned()
        .unwrap_or_else(|| range.to_string())
}
