//! References by name that point nowhere, for checking a complete configuration offline.
//!
//! The build reports a missing BFDProfile, Secret or Community alias because the object cannot
//! be used without it. Pool and peer names in advertisements are different: MetalLB ignores a
//! name that matches nothing, and so does the build, but an operator checking a configuration
//! wants to hear about them. No I/O.

use kube::ResourceExt;

use super::Objects;
use crate::community::CommunityError;
use crate::error::{ConfigError, Kind, Problem};

/// Pool and peer names in advertisements that no object in `objects` has.
pub fn unresolved_names(objects: &Objects) -> Vec<ConfigError> {
    let pools: Vec<String> = objects.pools.iter().map(ResourceExt::name_any).collect();
    let peers: Vec<String> = objects
        .bgp_peers
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    let mut found = Vec::new();
    for ad in &objects.l2_advertisements {
        let names = Names {
            kind: Kind::L2Advertisement,
            name: ad.name_any(),
        };
        found.extend(names.missing(
            "spec.ipAddressPools",
            &ad.spec.ip_address_pools,
            "IPAddressPool",
            &pools,
        ));
    }
    for ad in &objects.bgp_advertisements {
        let names = Names {
            kind: Kind::BGPAdvertisement,
            name: ad.name_any(),
        };
        found.extend(names.missing(
            "spec.ipAddressPools",
            &ad.spec.ip_address_pools,
            "IPAddressPool",
            &pools,
        ));
        found.extend(names.missing("spec.peers", &ad.spec.peers, "BGPPeer", &peers));
    }
    found
}

/// The object whose name lists are checked.
struct Names {
    kind: Kind,
    name: String,
}

impl Names {
    /// One problem per entry of the list at `field` that is not among `known` objects of `kind`.
    fn missing(
        &self,
        field: &str,
        wanted: &[String],
        kind: &'static str,
        known: &[String],
    ) -> Vec<ConfigError> {
        wanted
            .iter()
            .enumerate()
            .filter(|(_, name)| !known.contains(name))
            .map(|(i, name)| {
                ConfigError::new(
                    self.kind,
                    &self.name,
                    format!("{field}[{i}]"),
                    Problem::MissingReference {
                        kind,
                        name: name.clone(),
                    },
                )
            })
            .collect()
    }
}

/// The kind a dangling reference points at, when `objects` hold no object of that kind at all
/// (a file left out of the input, rather than a misspelt name).
pub fn absent_kind(objects: &Objects, problem: &Problem) -> Option<&'static str> {
    let kind = match problem {
        Problem::MissingReference { kind, .. } => *kind,
        Problem::Community(CommunityError::UnknownAlias(_)) => "Community",
        _ => return None,
    };
    let none = match kind {
        "BFDProfile" => objects.bfd_profiles.is_empty(),
        "Community" => objects.communities.is_empty(),
        "Secret" => objects.secrets.as_ref().is_none_or(Vec::is_empty),
        "IPAddressPool" => objects.pools.is_empty(),
        "BGPPeer" => objects.bgp_peers.is_empty(),
        _ => false,
    };
    none.then_some(kind)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::types;

    fn objects(documents: serde_json::Value) -> Objects {
        let mut objects = Objects::default();
        for document in documents.as_array().into_iter().flatten() {
            let kind = document["kind"].as_str().unwrap_or_default();
            let value = document.clone();
            match kind {
                "IPAddressPool" => objects
                    .pools
                    .push(serde_json::from_value(value).expect("pool")),
                "BGPPeer" => objects
                    .bgp_peers
                    .push(serde_json::from_value(value).expect("peer")),
                "L2Advertisement" => objects
                    .l2_advertisements
                    .push(serde_json::from_value::<types::L2Advertisement>(value).expect("l2")),
                "BGPAdvertisement" => objects
                    .bgp_advertisements
                    .push(serde_json::from_value::<types::BGPAdvertisement>(value).expect("bgp")),
                other => panic!("fixture kind {other}"),
            }
        }
        objects
    }

    fn object(kind: &str, name: &str, spec: serde_json::Value) -> serde_json::Value {
        let version = if kind == "BGPPeer" {
            "v1beta2"
        } else {
            "v1beta1"
        };
        json!({"apiVersion": format!("metallb.io/{version}"), "kind": kind, "metadata": {"name": name}, "spec": spec})
    }

    #[test]
    fn pool_and_peer_names_that_match_no_object_are_listed_by_field() {
        let input = objects(json!([
            object(
                "IPAddressPool",
                "public",
                json!({"addresses": ["203.0.113.0/28"]})
            ),
            object(
                "BGPPeer",
                "tor-a",
                json!({"myASN": 1, "peerASN": 2, "peerAddress": "192.0.2.1"})
            ),
            object(
                "L2Advertisement",
                "l2",
                json!({"ipAddressPools": ["public", "privat"]})
            ),
            object(
                "BGPAdvertisement",
                "bgp",
                json!({"ipAddressPools": ["public"], "peers": ["tor-a", "tor-b"]})
            ),
        ]));
        let lines: Vec<String> = unresolved_names(&input)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                r#"L2Advertisement/l2: spec.ipAddressPools[1]: IPAddressPool "privat" does not exist"#,
                r#"BGPAdvertisement/bgp: spec.peers[1]: BGPPeer "tor-b" does not exist"#,
            ]
        );
        assert!(
            unresolved_names(&input)
                .iter()
                .all(ConfigError::is_transient)
        );
    }

    #[test]
    fn a_kind_is_absent_only_when_the_input_has_none_of_it() {
        let missing = |kind| Problem::MissingReference {
            kind,
            name: "x".into(),
        };
        let alias = Problem::Community(CommunityError::UnknownAlias("gold".into()));
        let empty = Objects::default();
        for (problem, kind) in [
            (missing("BFDProfile"), "BFDProfile"),
            (missing("Secret"), "Secret"),
            (missing("IPAddressPool"), "IPAddressPool"),
            (missing("BGPPeer"), "BGPPeer"),
            (alias.clone(), "Community"),
        ] {
            assert_eq!(absent_kind(&empty, &problem), Some(kind));
        }
        let with_some = objects(json!([
            object(
                "IPAddressPool",
                "public",
                json!({"addresses": ["203.0.113.0/28"]})
            ),
            object(
                "BGPPeer",
                "tor-a",
                json!({"myASN": 1, "peerASN": 2, "peerAddress": "192.0.2.1"})
            ),
        ]));
        assert_eq!(absent_kind(&with_some, &missing("IPAddressPool")), None);
        assert_eq!(absent_kind(&with_some, &missing("BGPPeer")), None);
        assert_eq!(absent_kind(&with_some, &alias), Some("Community"));
        assert_eq!(absent_kind(&with_some, &Problem::Required), None);
    }
}
