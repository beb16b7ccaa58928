//! The resolved configuration: every valid object, with references followed, defaults applied and
//! cross-object rules checked. Controller and speaker consume a [`Config`], never the raw objects.
//!
//! A bad object is reported and left out; it never takes the good ones with it. Where two objects
//! clash (overlapping pools, duplicate aliases, conflicting advertisements), the older one stays —
//! by `creationTimestamp`, then name — so that adding an object cannot break one that works.
//! No I/O.
//!
//! - `objects`: the input, [`Objects`].
//! - `pools`, `communities`, `bfd`, `peers`, `advertisements`: one kind each, built in that
//!   order because each may refer to the ones before.
//! - `last_good`: [`build_keeping_last_good`], what the running components call.
//! - `references`: names that point nowhere ([`unresolved_names`], [`absent_kind`]), for
//!   `validate --strict`.

mod advertisements;
mod bfd;
mod communities;
mod last_good;
mod objects;
mod peers;
mod pools;
mod references;

use std::collections::{BTreeMap, BTreeSet};

use kube::{Resource, ResourceExt};

pub use advertisements::{BgpAdvertisement, L2Advertisement};
pub use bfd::BfdProfile;
pub use last_good::build_keeping_last_good;
pub use objects::Objects;
pub use peers::{Peer, PeerAsn, PeerEndpoint, PeerPassword};
pub use pools::{Allocation, Pool};
pub use references::{absent_kind, unresolved_names};

use crate::community::BgpCommunity;
use crate::error::{ConfigError, Kind};

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

/// The objects a build reads, and which of them were accepted by the previous build unchanged.
/// Objects are taken oldest first (a newer object conflicting with an older one is the one left
/// out, as in MetalLB). An object without `creationTimestamp` has not been created yet (a manifest
/// being applied, an object under admission) and counts as the newest. `creationTimestamp` has
/// one-second resolution, and among objects of the same second an accepted one comes first, so a
/// new object never displaces a working one.
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
    let pools = pools::build_pools(objects, &mut problems);
    let community_aliases = communities::build_aliases(objects, &mut problems);
    let bfd_profiles = bfd::build_bfd_profiles(objects, &mut problems);
    let peers = peers::build_peers(objects, &bfd_profiles, &mut problems);
    let l2_advertisements = advertisements::build_l2_advertisements(objects, &pools, &mut problems);
    let bgp = advertisements::BgpContext {
        objects,
        pools: &pools,
        aliases: &community_aliases,
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

#[cfg(test)]
mod tests;
