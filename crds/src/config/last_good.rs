//! Keeping what works: when an edit breaks an object, the build uses the object's last valid
//! version instead, so a bad edit never withdraws what was announced or allocated. No I/O.

use std::collections::BTreeSet;

use kube::ResourceExt;

use super::{Built, Objects, Source, build_from};
use crate::error::{ConfigError, Kind};

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
