//! BFD sessions from BGPPeers and their profiles; the gate that holds a BGP session down.

use std::time::Duration;

use ferrolb_api::config::{Peer, PeerAsn};
use ferrolb_proto::bfd::Diag;

use super::*;
use crate::apply::bgp::{NodeAddresses, session_spec};

const NODE_NET: &str = "198.51.100.0/24";

fn peer(name: &str, address: &str, profile: Option<&str>) -> Peer {
    let mut p = crate::plan::tests::peer(name, 64512, 64513);
    p.endpoint = ferrolb_api::config::PeerEndpoint::Address(address.parse().expect("ip"));
    p.bfd_profile = profile.map(str::to_owned);
    p
}

fn profile(name: &str, transmit_ms: u64) -> BfdProfile {
    BfdProfile {
        name: name.to_owned(),
        receive_interval: Duration::from_millis(300),
        transmit_interval: Duration::from_millis(transmit_ms),
        detect_multiplier: 3,
        echo_interval: Duration::from_millis(50),
        echo_mode: false,
        passive_mode: false,
        minimum_ttl: 254,
    }
}

fn config(peers: &[Peer], profiles: &[BfdProfile]) -> Config {
    Config {
        peers: peers.iter().map(|p| (p.name.clone(), p.clone())).collect(),
        bfd_profiles: profiles
            .iter()
            .map(|p| (p.name.clone(), p.clone()))
            .collect(),
        ..Config::default()
    }
}

/// The BGP sessions of `config`'s peers on a node at 198.51.100.11.
fn bgp(config: &Config) -> BTreeMap<String, (SessionSpec, RouteSet)> {
    let node = NodeAddresses::from_list(&["198.51.100.11".parse().expect("ip")]);
    config
        .peers
        .values()
        .map(|p| {
            let spec = session_spec(p, "node-a", node).expect("session");
            (p.name.clone(), (spec, RouteSet::new()))
        })
        .collect()
}

fn connected() -> Vec<IpNetwork> {
    vec![NODE_NET.parse().expect("net")]
}

fn key(peer: &str, is_multihop: bool) -> SessionKey {
    SessionKey {
        peer: peer.parse().expect("ip"),
        local: None,
        is_multihop,
        interface: None,
    }
}

#[test]
fn a_peer_with_a_profile_gets_a_bfd_session_with_the_profile_fields() {
    let mut fast = profile("fast", 100);
    fast.receive_interval = Duration::from_millis(150);
    fast.detect_multiplier = 5;
    fast.passive_mode = true;
    fast.minimum_ttl = 250;
    let c = config(
        &[
            peer("tor", "198.51.100.1", Some("fast")),
            peer("plain", "198.51.100.2", None),
        ],
        &[fast],
    );
    let w = wanted(&c, &bgp(&c), &connected());
    let want = key("198.51.100.1", false);
    assert_eq!(w.guards, BTreeMap::from([("tor".to_owned(), want.clone())]));
    let guard = &w.sessions[&want];
    assert_eq!(
        guard.profile,
        Profile {
            receive_interval: Duration::from_millis(150),
            transmit_interval: Duration::from_millis(100),
            detect_multiplier: 5,
            echo_interval: Duration::from_millis(50),
            echo_mode: false,
            passive_mode: true,
            minimum_ttl: 250,
        }
    );
    assert_eq!(guard.peers, BTreeSet::from(["tor".to_owned()]));
    assert!(w.refused.is_empty(), "{:?}", w.refused);
}

#[test]
fn the_session_leaves_from_the_peers_source_address() {
    let mut p = peer("tor", "198.51.100.1", Some("fast"));
    p.source_address = Some("198.51.100.50".parse().expect("ip"));
    let c = config(&[p], &[profile("fast", 300)]);
    let w = wanted(&c, &bgp(&c), &connected());
    let key = &w.guards["tor"];
    assert_eq!(key.local, Some("198.51.100.50".parse().expect("ip")));
}

#[test]
fn multihop_is_chosen_as_frr_chooses_it() {
    // (case, peer address, peer AS (None: dynamic internal), ebgpMultiHop, multihop?)
    let rows: [(&str, &str, Option<u32>, bool, bool); 6] = [
        (
            "eBGP on the link",
            "198.51.100.1",
            Some(64513),
            false,
            false,
        ),
        (
            "eBGP off the link without multihop",
            "203.0.113.1",
            Some(64513),
            false,
            false,
        ),
        ("eBGP multihop", "203.0.113.1", Some(64513), true, true),
        (
            "iBGP on the link",
            "198.51.100.1",
            Some(64512),
            false,
            false,
        ),
        ("iBGP off the link", "203.0.113.1", Some(64512), false, true),
        (
            "dynamic iBGP off the link",
            "203.0.113.1",
            None,
            false,
            true,
        ),
    ];
    for (case, address, asn, multihop, expected) in rows {
        let mut p = peer("p", address, Some("fast"));
        p.peer_asn = asn.map_or(PeerAsn::Internal, PeerAsn::Fixed);
        p.ebgp_multihop = multihop;
        let c = config(&[p], &[profile("fast", 300)]);
        let w = wanted(&c, &bgp(&c), &connected());
        assert_eq!(w.guards["p"].is_multihop, expected, "{case}");
    }
}

#[test]
fn a_peer_in_a_vrf_runs_without_bfd_and_says_why() {
    let mut p = peer("red", "198.51.100.1", Some("fast"));
    p.vrf = Some("red".into());
    let c = config(&[p], &[profile("fast", 300)]);
    let w = wanted(&c, &bgp(&c), &connected());
    assert!(w.sessions.is_empty() && w.guards.is_empty());
    assert_eq!(w.refused.len(), 1);
    assert_eq!(w.refused[0].reason(), "BFDInVRFUnsupported");
    let text = w.refused[0].to_string();
    assert!(
        text.starts_with("BGPPeer/red: spec.bfdProfile:") && text.contains("VRF"),
        "{text}"
    );
}

#[test]
fn two_peers_of_one_address_share_a_session_and_the_second_profile_is_reported() {
    let mut a = peer("a", "198.51.100.1", Some("fast"));
    a.port = 179;
    let mut b = peer("b", "198.51.100.1", Some("slow"));
    b.port = 1179;
    let c = config(&[a, b], &[profile("fast", 100), profile("slow", 1000)]);
    let w = wanted(&c, &bgp(&c), &connected());
    let k = key("198.51.100.1", false);
    assert_eq!(w.sessions.len(), 1);
    assert_eq!(
        w.sessions[&k].peers,
        BTreeSet::from(["a".to_owned(), "b".to_owned()])
    );
    assert_eq!(
        w.sessions[&k].profile.transmit_interval,
        Duration::from_millis(100)
    );
    assert_eq!(w.guards["b"], k, "b is guarded all the same");
    assert_eq!(w.refused.len(), 1);
    assert_eq!(w.refused[0].reason(), "BFDProfileConflict");
    assert!(
        w.refused[0].to_string().contains("BFDProfile/fast applies"),
        "{}",
        w.refused[0]
    );
}

#[test]
fn a_profile_change_is_applied_in_place_and_a_new_address_replaces_the_session() {
    let c = config(
        &[peer("tor", "198.51.100.1", Some("fast"))],
        &[profile("fast", 300)],
    );
    let w = wanted(&c, &bgp(&c), &connected());
    let first = changes(&BTreeMap::new(), &w);
    assert_eq!(
        first.add,
        vec![(
            key("198.51.100.1", false),
            to_profile(&profile("fast", 300))
        )]
    );
    assert!(first.update.is_empty() && first.remove.is_empty());
    let running: BTreeMap<SessionKey, Profile> = first.add.into_iter().collect();
    assert_eq!(changes(&running, &w), Changes::default(), "nothing to do");

    let c = config(
        &[peer("tor", "198.51.100.1", Some("fast"))],
        &[profile("fast", 100)],
    );
    let edited = changes(&running, &wanted(&c, &bgp(&c), &connected()));
    assert!(edited.add.is_empty() && edited.remove.is_empty());
    assert_eq!(edited.update.len(), 1);
    assert_eq!(
        edited.update[0].1.transmit_interval,
        Duration::from_millis(100)
    );

    let c = config(
        &[peer("tor", "198.51.100.2", Some("fast"))],
        &[profile("fast", 300)],
    );
    let moved = changes(&running, &wanted(&c, &bgp(&c), &connected()));
    assert_eq!(moved.remove, vec![key("198.51.100.1", false)]);
    assert_eq!(moved.add.len(), 1);

    let c = config(&[peer("tor", "198.51.100.1", None)], &[]);
    let dropped = changes(&running, &wanted(&c, &bgp(&c), &connected()));
    assert_eq!(dropped.remove, vec![key("198.51.100.1", false)]);
    assert!(dropped.add.is_empty());
}

fn status(state: State, remote_state: State) -> Status {
    Status {
        state,
        diag: Diag::None,
        remote_state,
        remote_diag: Diag::None,
        remote_discr: 1,
        tx_interval: Some(Duration::from_millis(300)),
        detection_time: Some(Duration::from_millis(900)),
        is_polling: false,
    }
}

#[test]
fn the_gate_holds_bgp_only_after_bfd_was_up_and_went_down() {
    use State::{AdminDown, Down, Init, Up};
    // (step, our state, the peer's state, gate after, BGP may run)
    let story: [(&str, State, State, Gate, bool); 9] = [
        ("a new session is Down", Down, Down, Gate::Unarmed, true),
        ("the handshake", Init, Down, Gate::Unarmed, true),
        ("BFD is Up", Up, Up, Gate::Up, true),
        ("the path fails", Down, Up, Gate::Down, false),
        ("the peer answers again", Init, Down, Gate::Down, false),
        ("BFD is Up again", Up, Up, Gate::Up, true),
        (
            "the peer turns BFD off",
            Down,
            AdminDown,
            Gate::Unarmed,
            true,
        ),
        (
            "the peer's packets stop",
            Down,
            AdminDown,
            Gate::Unarmed,
            true,
        ),
        ("BFD is back", Up, Up, Gate::Up, true),
    ];
    let mut gate = Gate::default();
    for (step, ours, theirs, want, runs) in story {
        gate = gate.next(&status(ours, theirs));
        assert_eq!(gate, want, "{step}");
        assert_eq!(gate.allows_bgp(), runs, "{step}");
    }
}

#[test]
fn only_the_sessions_whose_bfd_went_down_are_held() {
    let c = config(
        &[
            peer("a", "198.51.100.1", Some("fast")),
            peer("b", "198.51.100.2", Some("fast")),
            peer("c", "198.51.100.3", None),
            peer("d", "198.51.100.4", Some("fast")),
        ],
        &[profile("fast", 300)],
    );
    let sessions = bgp(&c);
    let w = wanted(&c, &sessions, &connected());
    let gates = BTreeMap::from([
        (key("198.51.100.1", false), Gate::Down),
        (key("198.51.100.2", false), Gate::Up),
        // d's BFD session could not start: no gate, unguarded.
    ]);
    assert_eq!(held(&w.guards, &gates), BTreeSet::from(["a".to_owned()]));
    assert_eq!(
        w.guards.keys().map(String::as_str).collect::<Vec<_>>(),
        ["a", "b", "d"],
        "c has no profile, d's session is known but not running"
    );
}
