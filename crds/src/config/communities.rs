//! Community aliases: the names BGPAdvertisements may use instead of community values, each
//! defined once across all Community objects. No I/O.

use std::collections::BTreeMap;

use kube::ResourceExt;

use super::Source;
use crate::community::BgpCommunity;
use crate::error::{ConfigError, Kind, Problem};
use crate::validate;

pub(super) fn build_aliases(
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
