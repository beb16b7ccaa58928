//! Keeping what works: when an edit breaks an object, the build uses the object's last valid
//! version instead, so a bad edit never withdraws what was announced or allocated. No I/O.

use std::collections::BTreeSet;

use kube::ResourceExt;

use k8s_openapi::api::core::v1::Secret;

use super::{Built, Objects, Source, build_from};
use crate::community::CommunityError;
use crate::error::{ConfigError, Kind, Problem};
use crate::manifest::Object;

/// Like [`build`](super::build), but an object whose current version is left out keeps its last
/// valid version from `last_good`, so that a bad edit never withdraws what works: an invalid pool
/// edit does not release the addresses Services hold, a broken advertisement does not stop
/// announcements. MetalLB keeps its whole last good configuration for the same reason; this keeps
/// it per object. A kept version may refer to a BFDProfile, Secret or Community deleted since;
/// those are kept from `last_good` too, as long as a kept object needs them.
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
    // Each round adds at least one object of `last_good`, and never the same one twice.
    loop {
        // `built` was built with exactly `kept` substituted: restore what those versions need.
        let restored = deleted_references(&built.problems, &kept, &working, last_good);
        let mut changed = !restored.is_empty();
        for object in restored {
            if let Some(identity) = object.identity() {
                kept.insert(identity);
            }
            working.add(object);
        }
        let failing = failing(&built);
        let fresh: Vec<(Kind, String)> = failing.difference(&kept).cloned().collect();
        for (kind, name) in &fresh {
            if let Some(previous) = last_good.get(*kind, name) {
                working.remove(*kind, name);
                working.add(previous);
                kept.insert((*kind, name.clone()));
                changed = true;
            }
        }
        if !changed {
            break;
        }
        built = build(&working);
    }
    let failing = failing(&built);
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

fn failing(built: &Built) -> BTreeSet<(Kind, String)> {
    built
        .problems
        .iter()
        .map(|p| (p.kind, p.name.clone()))
        .collect()
}

/// Objects deleted since `last_good` that the kept objects' problems say they refer to.
fn deleted_references(
    problems: &[ConfigError],
    kept: &BTreeSet<(Kind, String)>,
    working: &Objects,
    last_good: &Objects,
) -> Vec<Object> {
    let mut restored: Vec<Object> = Vec::new();
    for problem in problems
        .iter()
        .filter(|p| kept.contains(&(p.kind, p.name.clone())))
    {
        let object = match &problem.problem {
            Problem::MissingReference {
                kind: "BFDProfile",
                name,
            } if working.get(Kind::BFDProfile, name).is_none() => {
                last_good.get(Kind::BFDProfile, name)
            }
            Problem::MissingReference {
                kind: "Secret",
                name,
            } => {
                let find = |secrets: &Option<Vec<Secret>>| {
                    secrets
                        .iter()
                        .flatten()
                        .find(|s| s.name_any() == *name)
                        .cloned()
                };
                match find(&working.secrets) {
                    Some(_) => None,
                    None => find(&last_good.secrets).map(Object::Secret),
                }
            }
            Problem::Community(CommunityError::UnknownAlias(alias)) => last_good
                .communities
                .iter()
                .filter(|c| working.get(Kind::Community, &c.name_any()).is_none())
                .find(|c| c.spec.communities.iter().any(|a| a.name == *alias))
                .cloned()
                .map(Object::Community),
            _ => None,
        };
        if let Some(object) = object
            && !restored.iter().any(|r| same_object(r, &object))
        {
            restored.push(object);
        }
    }
    restored
}

/// Whether two objects are the same object (kind and name; Secrets by name).
fn same_object(a: &Object, b: &Object) -> bool {
    match (a, b) {
        (Object::Secret(a), Object::Secret(b)) => a.name_any() == b.name_any(),
        _ => a.identity().is_some() && a.identity() == b.identity(),
    }
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
