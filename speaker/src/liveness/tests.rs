//! Who is alive and when new claims may be made, from values.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::plan::Interfaces;

fn node(name: &str, ready: Option<bool>) -> NodeHealth {
    NodeHealth {
        name: name.to_owned(),
        ready,
        address: None,
    }
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|n| (*n).to_owned()).collect()
}

/// A view of `nodes` from node-a at `now`, gossip off, not stepped down.
fn view<'a>(nodes: &'a [NodeHealth], now: Instant) -> View<'a> {
    View {
        me: "node-a",
        gossip: None,
        nodes,
        is_stepped_down: false,
        settles_at: None,
        now,
    }
}

#[test]
fn without_gossip_every_node_not_reported_not_ready_is_alive() {
    let nodes = [
        node("node-a", Some(true)),
        node("node-b", None),
        node("node-c", Some(false)),
    ];
    let verdict = judge(&view(&nodes, Instant::now()));
    assert_eq!(verdict.live, names(&["node-a", "node-b"]));
    assert_eq!(verdict.claims, Claims::Allowed, "nothing to wait for");
}

#[test]
fn the_gossip_view_decides_who_is_alive_minus_nodes_reported_not_ready() {
    let nodes = [
        node("node-a", Some(true)),
        node("node-b", Some(true)),
        node("node-c", Some(false)),
    ];
    let gossip = names(&["node-a", "node-c", "node-z"]);
    let mut v = view(&nodes, Instant::now());
    v.gossip = Some(&gossip);
    assert_eq!(
        live_nodes(&v),
        names(&["node-a", "node-z"]),
        "node-b's speaker is not in the gossip; node-c's kubelet says NotReady"
    );
}

#[test]
fn a_stepped_down_node_is_not_alive_to_itself() {
    let nodes = [node("node-a", Some(true)), node("node-b", Some(true))];
    let gossip = names(&["node-a", "node-b"]);
    let mut v = view(&nodes, Instant::now());
    v.gossip = Some(&gossip);
    v.is_stepped_down = true;
    assert_eq!(live_nodes(&v), names(&["node-b"]));
}

#[test]
fn new_claims_wait_until_the_gossip_shows_every_node_not_reported_not_ready() {
    let now = Instant::now();
    let nodes = [
        node("node-a", Some(true)),
        node("node-b", None),
        node("node-c", Some(false)),
    ];
    let partial = names(&["node-a"]);
    let mut v = view(&nodes, now);
    v.settles_at = Some(now + Duration::from_secs(2));
    v.gossip = Some(&partial);
    assert_eq!(
        judge(&v).claims,
        Claims::Held(Hold::Settling),
        "node-b may run a speaker we have not heard from"
    );
    let full = names(&["node-a", "node-b"]);
    v.gossip = Some(&full);
    assert_eq!(
        judge(&v).claims,
        Claims::Allowed,
        "a NotReady node is not waited for"
    );
}

#[test]
fn new_claims_wait_no_longer_than_the_settle_deadline() {
    let now = Instant::now();
    let nodes = [node("node-a", Some(true)), node("node-b", Some(true))];
    let alone = names(&["node-a"]);
    let mut v = view(&nodes, now);
    v.gossip = Some(&alone);
    v.settles_at = Some(now + Duration::from_secs(2));
    assert_eq!(judge(&v).claims, Claims::Held(Hold::Settling));
    v.now = now + Duration::from_secs(2);
    assert_eq!(
        judge(&v).claims,
        Claims::Allowed,
        "node-b runs no speaker: stop waiting for it"
    );
}

#[test]
fn while_claims_are_held_only_answered_ips_are_kept() {
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    let announcement = L2Announcement {
        services: names(&["ns/a"]),
        interfaces: Interfaces::All,
    };
    let planned: BTreeMap<IpAddr, L2Announcement> = [
        (ip("192.0.2.1"), announcement.clone()),
        (ip("192.0.2.2"), announcement),
    ]
    .into();
    let answered: L2State = [(ip("192.0.2.1"), names(&["eth0"]))].into();
    let mut held = planned.clone();
    restrain(Claims::Held(Hold::Settling), &mut held, &answered);
    assert_eq!(held.keys().collect::<Vec<_>>(), [&ip("192.0.2.1")]);
    let mut allowed = planned.clone();
    restrain(Claims::Allowed, &mut allowed, &answered);
    assert_eq!(allowed, planned);
}

#[test]
fn the_speakers_of_nodes_missing_from_the_gossip_are_asked_to_join() {
    let mut a = node("node-a", Some(true));
    a.address = Some("192.0.2.11".parse().expect("ip"));
    let mut b = node("node-b", Some(true));
    b.address = Some("192.0.2.12".parse().expect("ip"));
    let mut c = node("node-c", Some(true));
    c.address = Some("192.0.2.13".parse().expect("ip"));
    let no_address = node("node-d", Some(true));
    let nodes = [a, b, c, no_address];
    let gossip = names(&["node-b"]);
    assert_eq!(
        join_seeds("node-a", &gossip, &nodes, 7946),
        vec!["192.0.2.13:7946".parse::<SocketAddr>().expect("addr")],
        "not ourselves, not who is in, not who has no address"
    );
}

#[test]
fn gossip_binds_where_told_else_on_the_first_own_address() {
    let own = [
        "192.0.2.11".parse().expect("ip"),
        "2001:db8::11".parse().expect("ip"),
    ];
    let told: SocketAddr = "198.51.100.1:9000".parse().expect("addr");
    assert_eq!(gossip_address(Some(told), 7946, &own), Some(told));
    assert_eq!(
        gossip_address(None, 7946, &own),
        Some("192.0.2.11:7946".parse().expect("addr"))
    );
    assert_eq!(gossip_address(None, 7946, &[]), None);
}

fn cluster() -> impl Strategy<Value = (Vec<NodeHealth>, Option<BTreeSet<String>>, bool)> {
    let nodes =
        proptest::collection::vec(prop_oneof![Just(None), any::<bool>().prop_map(Some)], 1..8);
    (nodes, any::<Option<u8>>(), any::<bool>()).prop_map(|(ready, gossip_mask, stepped_down)| {
        let nodes: Vec<NodeHealth> = ready
            .iter()
            .enumerate()
            .map(|(i, r)| node(&format!("node-{i}"), *r))
            .collect();
        let gossip = gossip_mask.map(|mask| {
            nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, n)| n.name.clone())
                .collect()
        });
        (nodes, gossip, stepped_down)
    })
}

proptest! {
    /// The live set never holds a NotReady node, nor this node while stepped down, nor a node
    /// the gossip (when on) does not show; and claims never wait past the settle deadline.
    #[test]
    fn the_live_set_only_narrows_its_source_and_claims_wait_at_most_until_settled(
        (nodes, gossip, stepped_down) in cluster(),
        waited_ms in 0u64..4000,
    ) {
        let start = Instant::now();
        let v = View {
            me: "node-0",
            gossip: gossip.as_ref(),
            nodes: &nodes,
            is_stepped_down: stepped_down,
            settles_at: gossip.as_ref().map(|_| start + Duration::from_secs(2)),
            now: start + Duration::from_millis(waited_ms),
        };
        let verdict = judge(&v);
        for name in &verdict.live {
            let source_has = match &gossip {
                Some(g) => g.contains(name),
                None => nodes.iter().any(|n| &n.name == name),
            };
            prop_assert!(source_has);
            prop_assert!(!nodes.iter().any(|n| &n.name == name && n.ready == Some(false)));
        }
        if stepped_down {
            prop_assert!(!verdict.live.contains("node-0"));
        }
        if waited_ms >= 2000 || gossip.is_none() {
            prop_assert_eq!(verdict.claims, Claims::Allowed);
        }
    }
}
