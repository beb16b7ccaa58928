//! BFDProfiles with FRR's defaults applied to unset fields. No I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::ResourceExt;

use super::Source;
use crate::error::{ConfigError, Kind};
use crate::validate;

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

pub(super) fn build_bfd_profiles(
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
