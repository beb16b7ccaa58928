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

static NO_SPEAKERS: BTreeSet<String> = BTreeSet::new();

/// A view of `nodes` from node-a at `now`, gossip off, no other speaker known, not stepped
/// down.
fn view<'a>(nodes: &'a [NodeHealth], now: Instant) -> View<'a> {
    View {
        me: "node-a",
        gossip: None,
        nodes,
        speakers: &NO_SPEAKERS,
        quorum_rule: QuorumRule::Majority,
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

/// Three Ready nodes, each running a speaker.
fn three_speakers() -> (Vec<NodeHealth>, BTreeSet<String>) {
    let nodes = vec![
        node("node-a", Some(true)),
        node("node-b", Some(true)),
        node("node-c", Some(true)),
    ];
    (nodes, names(&["node-a", "node-b", "node-c"]))
}

/// The operator's choice for a two-node cluster: availability over split safety.
#[test]
fn with_the_quorum_rule_off_a_speaker_alone_may_claim() {
    let (nodes, speakers) = three_speakers();
    let alone = names(&["node-a"]);
    let now = Instant::now();
    let mut v = view(&nodes, now);
    v.gossip = Some(&alone);
    v.speakers = &speakers;
    v.settles_at = Some(now);
    v.quorum_rule = QuorumRule::Off;
    let verdict = judge(&v);
    assert_eq!(verdict.quorum, None);
    assert_eq!(verdict.claims, Claims::Allowed);
}

#[test]
fn a_speaker_that_sees_only_itself_among_three_answers_for_nothing() {
    let (nodes, speakers) = three_speakers();
    let alone = names(&["node-a"]);
    let now = Instant::now();
    let mut v = view(&nodes, now);
    v.gossip = Some(&alone);
    v.speakers = &speakers;
    v.settles_at = Some(now);
    let verdict = judge(&v);
    assert_eq!(
        verdict.quorum,
        Some(Quorum {
            seen: 1,
            speakers: 3,
            has_majority: false
        })
    );
    assert_eq!(verdict.claims, Claims::Held(Hold::NoQuorum));
    assert_eq!(
        verdict.live,
        names(&["node-a"]),
        "alone it would rank first for every IP: the quorum is what stops it"
    );
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    let mut planned: BTreeMap<IpAddr, L2Announcement> = [(
        ip("192.0.2.1"),
        L2Announcement {
            services: names(&["ns/a"]),
            interfaces: Interfaces::All,
        },
    )]
    .into();
    let answered: L2State = [(ip("192.0.2.1"), names(&["eth0"]))].into();
    restrain(verdict.claims, &mut planned, &answered);
    assert!(
        planned.is_empty(),
        "without quorum even an IP answered until now is dropped"
    );
}

#[test]
fn two_of_three_hold_quorum_and_claim_at_once() {
    let (nodes, speakers) = three_speakers();
    let two = names(&["node-b", "node-c"]);
    let now = Instant::now();
    let mut v = view(&nodes, now);
    v.me = "node-b";
    v.gossip = Some(&two);
    v.speakers = &speakers;
    v.settles_at = Some(now);
    assert_eq!(judge(&v).claims, Claims::Allowed);
    assert_eq!(quorum(&v).map(|q| (q.seen, q.speakers)), Some((2, 3)));
}

#[test]
fn on_an_even_split_the_half_with_the_lowest_node_name_keeps_quorum() {
    let nodes = [node("node-a", Some(true)), node("node-b", Some(true))];
    let speakers = names(&["node-a", "node-b"]);
    let now = Instant::now();
    let a_alone = names(&["node-a"]);
    let b_alone = names(&["node-b"]);
    let mut v = view(&nodes, now);
    v.speakers = &speakers;
    v.gossip = Some(&a_alone);
    assert!(quorum(&v).is_some_and(|q| q.has_majority), "node-a wins");
    v.me = "node-b";
    v.gossip = Some(&b_alone);
    assert!(quorum(&v).is_some_and(|q| !q.has_majority), "node-b loses");
}

#[test]
fn the_speaker_set_is_ready_nodes_with_a_configuration_state_plus_this_node() {
    let nodes = [
        node("node-a", Some(true)),
        node("node-b", Some(true)),
        node("node-c", Some(false)),
        node("node-d", None),
        node("node-e", Some(true)),
    ];
    // node-c is NotReady; node-e runs no speaker; node-z has a state but no Node.
    let speakers = names(&["node-b", "node-c", "node-d", "node-z"]);
    let mut v = view(&nodes, Instant::now());
    v.speakers = &speakers;
    assert_eq!(speaker_set(&v), names(&["node-a", "node-b", "node-d"]));
    let gossip = names(&["node-a", "node-c", "node-e", "node-z"]);
    v.gossip = Some(&gossip);
    assert_eq!(
        quorum(&v),
        Some(Quorum {
            seen: 1,
            speakers: 3,
            has_majority: false
        }),
        "gossip members outside the set do not count"
    );
}

#[test]
fn with_gossip_off_there_is_no_quorum_rule() {
    let (nodes, speakers) = three_speakers();
    let mut v = view(&nodes, Instant::now());
    v.speakers = &speakers;
    let verdict = judge(&v);
    assert_eq!(verdict.quorum, None);
    assert_eq!(verdict.claims, Claims::Allowed);
}

#[test]
fn a_lone_speaker_in_a_cluster_of_one_holds_quorum() {
    let nodes = [node("node-a", Some(true))];
    let me = names(&["node-a"]);
    let mut v = view(&nodes, Instant::now());
    v.gossip = Some(&me);
    assert_eq!(
        quorum(&v),
        Some(Quorum {
            seen: 1,
            speakers: 1,
            has_majority: true
        }),
        "its own ConfigurationState not seen yet: it counts itself"
    );
}

fn cluster() -> impl Strategy<
    Value = (
        Vec<NodeHealth>,
        Option<BTreeSet<String>>,
        BTreeSet<String>,
        bool,
    ),
> {
    let nodes =
        proptest::collection::vec(prop_oneof![Just(None), any::<bool>().prop_map(Some)], 1..8);
    (nodes, any::<Option<u8>>(), any::<u8>(), any::<bool>()).prop_map(
        |(ready, gossip_mask, speaker_mask, stepped_down)| {
            let nodes: Vec<NodeHealth> = ready
                .iter()
                .enumerate()
                .map(|(i, r)| node(&format!("node-{i}"), *r))
                .collect();
            let pick = |mask: u8| -> BTreeSet<String> {
                nodes
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, n)| n.name.clone())
                    .collect()
            };
            // The gossip always shows this node (node-0) itself.
            let gossip = gossip_mask.map(|mask| pick(mask | 1));
            (nodes.clone(), gossip, pick(speaker_mask), stepped_down)
        },
    )
}

proptest! {
    /// The live set never holds a NotReady node, nor this node while stepped down, nor a node
    /// the gossip (when on) does not show; claims never wait past the settle deadline unless
    /// quorum is lost; and without quorum nothing is claimed or kept.
    #[test]
    fn the_live_set_only_narrows_its_source_and_claims_wait_at_most_until_settled(
        (nodes, gossip, speakers, stepped_down) in cluster(),
        waited_ms in 0u64..4000,
    ) {
        let start = Instant::now();
        let v = View {
            me: "node-0",
            gossip: gossip.as_ref(),
            nodes: &nodes,
            speakers: &speakers,
            quorum_rule: QuorumRule::Majority,
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
        prop_assert_eq!(verdict.quorum.is_none(), gossip.is_none());
        let has_quorum = verdict.quorum.is_none_or(|q| q.has_majority);
        if !has_quorum {
            prop_assert_eq!(verdict.claims, Claims::Held(Hold::NoQuorum));
        } else if waited_ms >= 2000 || gossip.is_none() {
            prop_assert_eq!(verdict.claims, Claims::Allowed);
        }
    }

    /// However a speaker set splits in two (each side's gossip shows its own side), exactly
    /// one side holds quorum: never both (two owners per IP), never neither (nobody answers)
    /// unless a side is empty.
    #[test]
    fn exactly_one_side_of_a_split_holds_quorum(
        count in 1usize..9,
        side_mask in any::<u16>(),
    ) {
        let nodes: Vec<NodeHealth> =
            (0..count).map(|i| node(&format!("node-{i}"), Some(true))).collect();
        let all: BTreeSet<String> = nodes.iter().map(|n| n.name.clone()).collect();
        let side = |on_left: bool| -> BTreeSet<String> {
            all.iter()
                .enumerate()
                .filter(|(i, _)| (side_mask & (1 << i) != 0) == on_left)
                .map(|(_, n)| n.clone())
                .collect()
        };
        let (left, right) = (side(true), side(false));
        let holds = |side: &BTreeSet<String>| {
            let Some(me) = side.first() else { return false };
            let now = Instant::now();
            let v = View {
                me,
                gossip: Some(side),
                nodes: &nodes,
                speakers: &all,
                quorum_rule: QuorumRule::Majority,
                is_stepped_down: false,
                settles_at: None,
                now,
            };
            quorum(&v).is_some_and(|q| q.has_majority)
        };
        let sides = [holds(&left), holds(&right)];
        prop_assert_eq!(sides.iter().filter(|h| **h).count(), 1, "left {:?} right {:?}", left, right);
    }
}
