//! What a running component gets from [`build_keeping_last_good`] when an object refers to a
//! BFDProfile, Secret or Community alias that does not exist: the object is left out, its last
//! valid version stays, and the problem names object and field and makes the state Invalid.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Secret;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;
use crate::config_state::{CONFIG_RECONCILER_CONDITION, ConfigState};
use crate::types;

fn typed<T: DeserializeOwned>(api_version: &str, kind: &str, name: &str, spec: Value) -> T {
    serde_json::from_value(json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"name": name, "namespace": "ferrolb-system"}, "spec": spec
    }))
    .expect("fixture")
}

fn pool() -> types::IPAddressPool {
    typed(
        "metallb.io/v1beta1",
        "IPAddressPool",
        "bgp",
        json!({"addresses": ["203.0.113.0/28"]}),
    )
}

fn peer(extra: Value) -> types::BGPPeer {
    let mut spec = json!({"myASN": 64513, "peerASN": 64512, "peerAddress": "192.0.2.254"});
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    typed("metallb.io/v1beta2", "BGPPeer", "tor", spec)
}

fn advertisement(communities: &[&str]) -> types::BGPAdvertisement {
    typed(
        "metallb.io/v1beta1",
        "BGPAdvertisement",
        "ad",
        json!({"ipAddressPools": ["bgp"], "communities": communities}),
    )
}

fn bfd_profile(name: &str) -> types::BFDProfile {
    typed("metallb.io/v1beta1", "BFDProfile", name, json!({}))
}

fn community(name: &str, alias: &str, value: &str) -> types::Community {
    typed(
        "metallb.io/v1beta1",
        "Community",
        name,
        json!({"communities": [{"name": alias, "value": value}]}),
    )
}

fn secret(name: &str, password: &str) -> Secret {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "ferrolb-system"},
        "type": "kubernetes.io/basic-auth", "stringData": {"password": password}
    }))
    .expect("fixture")
}

/// Objects as a speaker sees them: Secrets and Nodes known.
fn cluster() -> Objects {
    Objects {
        pools: vec![pool()],
        secrets: Some(Vec::new()),
        nodes: Some(Vec::new()),
        ..Objects::default()
    }
}

fn lines(built: &Built) -> Vec<String> {
    built.problems.iter().map(ToString::to_string).collect()
}

fn state(built: &Built) -> ConfigState {
    ConfigState::from_problems(CONFIG_RECONCILER_CONDITION, &built.problems)
}

fn kept(built: &Built) -> BTreeSet<(Kind, &str)> {
    built
        .kept_last_good
        .iter()
        .map(|(kind, name)| (*kind, name.as_str()))
        .collect()
}

fn echo_profile(name: &str) -> types::BFDProfile {
    typed(
        "metallb.io/v1beta1",
        "BFDProfile",
        name,
        json!({"echoMode": true, "transmitInterval": 100}),
    )
}

#[test]
fn a_profile_edited_to_echo_mode_is_invalid_and_its_last_version_stays_in_force() {
    let before = Objects {
        bfd_profiles: vec![bfd_profile("fast")],
        bgp_peers: vec![peer(json!({"bfdProfile": "fast"}))],
        ..cluster()
    };
    let (built, good) = build_keeping_last_good(&before, &Objects::default());
    assert_eq!(lines(&built), Vec::<String>::new());

    let edited = Objects {
        bfd_profiles: vec![echo_profile("fast")],
        ..before
    };
    let (built, _) = build_keeping_last_good(&edited, &good);
    let expected = "BFDProfile/fast: spec.echoMode: echo mode is not supported by FerroLB's BFD";
    let found = lines(&built);
    // The peer's own version is unchanged; it is reported because what it names is invalid.
    let peer_line = r#"BGPPeer/tor: spec.bfdProfile: BFDProfile "fast" is invalid"#;
    assert!(
        found.len() == 2 && found[0].starts_with(expected) && found[1] == peer_line,
        "{found:?}"
    );
    assert_eq!(built.problems[0].reason(), "BFDEchoModeUnsupported");
    let profile = &built.config.bfd_profiles["fast"];
    assert!(!profile.echo_mode, "the last version: {profile:?}");
    assert_eq!(
        profile.transmit_interval,
        std::time::Duration::from_millis(300)
    );
    assert_eq!(
        built.config.peers["tor"].bfd_profile.as_deref(),
        Some("fast"),
        "the peer keeps its session guard"
    );
    assert_eq!(
        kept(&built),
        BTreeSet::from([(Kind::BFDProfile, "fast"), (Kind::BGPPeer, "tor")])
    );
    let invalid = state(&built);
    assert!(invalid.is_invalid());
    assert!(
        invalid.error_summary.contains("spec.echoMode"),
        "{invalid:?}"
    );
}

#[test]
fn a_new_peer_naming_an_invalid_profile_is_told_the_profile_is_invalid_not_missing() {
    let objects = Objects {
        bfd_profiles: vec![echo_profile("echo")],
        bgp_peers: vec![peer(json!({"bfdProfile": "echo"}))],
        ..cluster()
    };
    let (built, _) = build_keeping_last_good(&objects, &Objects::default());
    let found = lines(&built);
    assert!(
        found.contains(&r#"BGPPeer/tor: spec.bfdProfile: BFDProfile "echo" is invalid"#.to_owned()),
        "{found:?}"
    );
    assert!(built.config.peers.is_empty() && built.config.bfd_profiles.is_empty());
    let peer_problem = built
        .problems
        .iter()
        .find(|p| p.kind == Kind::BGPPeer)
        .expect("the peer's problem");
    assert!(
        peer_problem.is_transient(),
        "it resolves when the profile is fixed, as a missing one does"
    );
}

#[test]
fn a_peer_edited_to_a_missing_bfd_profile_keeps_its_last_version_until_the_profile_exists() {
    let before = Objects {
        bgp_peers: vec![peer(json!({}))],
        ..cluster()
    };
    let (built, good) = build_keeping_last_good(&before, &Objects::default());
    assert_eq!(lines(&built), Vec::<String>::new());

    let edited = Objects {
        bgp_peers: vec![peer(json!({"bfdProfile": "fast"}))],
        ..cluster()
    };
    let (built, good) = build_keeping_last_good(&edited, &good);
    let expected = r#"BGPPeer/tor: spec.bfdProfile: BFDProfile "fast" does not exist"#;
    assert_eq!(lines(&built), [expected]);
    assert_eq!(
        built.config.peers["tor"].bfd_profile, None,
        "the last version"
    );
    assert_eq!(kept(&built), BTreeSet::from([(Kind::BGPPeer, "tor")]));
    let invalid = state(&built);
    assert!(invalid.is_invalid());
    assert_eq!(invalid.error_summary, expected);

    let fixed = Objects {
        bfd_profiles: vec![bfd_profile("fast")],
        ..edited
    };
    let (built, _) = build_keeping_last_good(&fixed, &good);
    assert_eq!(lines(&built), Vec::<String>::new());
    assert_eq!(
        built.config.peers["tor"].bfd_profile.as_deref(),
        Some("fast")
    );
    assert!(!state(&built).is_invalid());
}

#[test]
fn an_advertisement_edited_to_an_unknown_alias_keeps_announcing_its_last_communities() {
    let before = Objects {
        bgp_advertisements: vec![advertisement(&["64512:100"])],
        ..cluster()
    };
    let (_, good) = build_keeping_last_good(&before, &Objects::default());
    let edited = Objects {
        bgp_advertisements: vec![advertisement(&["gold"])],
        ..cluster()
    };
    let (built, good) = build_keeping_last_good(&edited, &good);
    assert_eq!(
        lines(&built),
        [
            r#"BGPAdvertisement/ad: spec.communities[0]: "gold" is neither a community value (A:B, large:A:B:C) nor a known Community alias"#
        ]
    );
    assert_eq!(
        built.config.bgp_advertisements[0].communities,
        [BgpCommunity::Standard(64512, 100)]
    );
    assert!(state(&built).is_invalid());

    let fixed = Objects {
        communities: vec![community("aliases", "gold", "64512:200")],
        ..edited
    };
    let (built, _) = build_keeping_last_good(&fixed, &good);
    assert_eq!(lines(&built), Vec::<String>::new());
    assert_eq!(
        built.config.bgp_advertisements[0].communities,
        [BgpCommunity::Standard(64512, 200)]
    );
}

#[test]
fn a_peer_edited_to_a_missing_password_secret_keeps_its_last_password() {
    let before = Objects {
        bgp_peers: vec![peer(json!({"password": "old"}))],
        ..cluster()
    };
    let (_, good) = build_keeping_last_good(&before, &Objects::default());
    let edited = Objects {
        bgp_peers: vec![peer(json!({"passwordSecret": {"name": "bgp-auth"}}))],
        ..cluster()
    };
    let (built, _) = build_keeping_last_good(&edited, &good);
    assert_eq!(
        lines(&built),
        [r#"BGPPeer/tor: spec.passwordSecret: Secret "bgp-auth" does not exist"#]
    );
    assert_eq!(
        built.config.peers["tor"].password,
        PeerPassword::Known("old".into())
    );
    assert!(state(&built).is_invalid());
}

#[test]
fn a_new_peer_with_a_missing_bfd_profile_is_left_out_and_brings_no_deleted_profile_back() {
    let before = Objects {
        bfd_profiles: vec![bfd_profile("fast")],
        ..cluster()
    };
    let (_, good) = build_keeping_last_good(&before, &Objects::default());
    let now = Objects {
        bgp_peers: vec![peer(json!({"bfdProfile": "fast"}))],
        ..cluster()
    };
    let (built, next) = build_keeping_last_good(&now, &good);
    assert_eq!(
        lines(&built),
        [r#"BGPPeer/tor: spec.bfdProfile: BFDProfile "fast" does not exist"#]
    );
    assert!(built.config.peers.is_empty());
    assert!(built.config.bfd_profiles.is_empty());
    assert!(built.kept_last_good.is_empty());
    assert!(next.bfd_profiles.is_empty() && next.bgp_peers.is_empty());
    assert!(state(&built).is_invalid());
}

#[test]
fn objects_deleted_under_a_working_peer_and_advertisement_stay_until_nothing_needs_them() {
    let working = Objects {
        bgp_peers: vec![peer(
            json!({"bfdProfile": "fast", "passwordSecret": {"name": "bgp-auth"}}),
        )],
        bgp_advertisements: vec![advertisement(&["gold"])],
        bfd_profiles: vec![bfd_profile("fast")],
        communities: vec![community("aliases", "gold", "64512:200")],
        secrets: Some(vec![secret("bgp-auth", "s3cret")]),
        ..cluster()
    };
    let (built, good) = build_keeping_last_good(&working, &Objects::default());
    assert_eq!(lines(&built), Vec::<String>::new());
    let deleted = Objects {
        bgp_peers: working.bgp_peers.clone(),
        bgp_advertisements: working.bgp_advertisements.clone(),
        ..cluster()
    };
    let (built, good) = build_keeping_last_good(&deleted, &good);
    assert_eq!(
        lines(&built),
        [
            r#"BGPPeer/tor: spec.passwordSecret: Secret "bgp-auth" does not exist"#,
            r#"BGPAdvertisement/ad: spec.communities[0]: "gold" is neither a community value (A:B, large:A:B:C) nor a known Community alias"#,
        ]
    );
    let tor = &built.config.peers["tor"];
    assert_eq!(tor.password, PeerPassword::Known("s3cret".into()));
    assert_eq!(tor.bfd_profile.as_deref(), Some("fast"));
    assert!(built.config.bfd_profiles.contains_key("fast"));
    assert_eq!(
        built.config.bgp_advertisements[0].communities,
        [BgpCommunity::Standard(64512, 200)]
    );
    assert_eq!(
        kept(&built),
        BTreeSet::from([
            (Kind::BGPPeer, "tor"),
            (Kind::BGPAdvertisement, "ad"),
            (Kind::BFDProfile, "fast"),
            (Kind::Community, "aliases"),
        ])
    );
    assert!(state(&built).is_invalid());

    // The same input again: still kept, from the next last_good.
    let (again, good) = build_keeping_last_good(&deleted, &good);
    assert_eq!(again.config, built.config);

    // Once the peer and advertisement stop referring to them, they are gone.
    let moved_on = Objects {
        bgp_peers: vec![peer(json!({}))],
        bgp_advertisements: vec![advertisement(&["64512:300"])],
        ..cluster()
    };
    let (built, next) = build_keeping_last_good(&moved_on, &good);
    assert_eq!(lines(&built), Vec::<String>::new());
    assert!(built.config.bfd_profiles.is_empty());
    assert!(built.config.community_aliases.is_empty());
    assert!(next.bfd_profiles.is_empty() && next.communities.is_empty());
    assert_eq!(next.secrets, Some(Vec::new()));
}
