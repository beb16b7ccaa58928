//! BFD with the real `ferrolb-speaker`, kubesim and real routers: FRR (zebra + bgpd + bfdd,
//! `neighbor X bfd`, 300 ms × 3) and BIRD (`bfd on`).
//!
//! - A one-way cut of the node–router link (nftables drop of one source at one end; carrier
//!   and the other direction stay up), 300 ms × 3: FRR must withdraw the node's route within
//!   1.2 s, measured at the router's RIB, whichever direction fails. Without BFD the same cut
//!   costs the hold time (9 s here, to keep the test bounded; MetalLB's default is 90 s).
//!   Trials: `FERROLB_BFD_TRIALS` per direction (default 3; about 2 s per cut and recovery).
//! - Sessions come up with FRR's bfdd and BIRD; a BFDProfile edit is renegotiated in place
//!   (Poll Sequence) without a BFD flap or a BGP restart; `echoMode: true` makes the
//!   configuration Invalid naming `spec.echoMode`, and the last good profile stays in force.
//!
//! On 2 cores: the cut test about 27 s with 3 trials (60 s with 10), the other about 7 s.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrolb_api::types::{BFDProfile, BGPPeer, ConfigurationState};
use ferrolb_netlab::routers::{Bird, Families, Frr, Local, Neighbor, Router};
use ferrolb_netlab::{self as netlab, eventually, eventually_async};
use ferrolb_tests::cluster::{
    BGP_POOL, Binaries, ClusterLab, NAMESPACE, NODE_AS, ROUTER_AS, ROUTER_V4,
};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

const WEB: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const BIRD_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 253);
const BIRD_AS: u32 = 64514;
/// The budget from the cut to the router's withdrawal.
const BUDGET: Duration = Duration::from_millis(1200);
/// 300 ms × 3, less one interval and its jitter: no BFD detection can be faster.
const FASTEST: Duration = Duration::from_millis(450);
const SETTLE: Duration = Duration::from_secs(30);

fn binaries() -> Binaries {
    Binaries {
        speaker: PathBuf::from(env!("CARGO_BIN_EXE_ferrolb-speaker")),
        controller: None,
    }
}

fn object(kind: &str, name: &str, spec: Value) -> Value {
    let version = if kind == "BGPPeer" {
        "metallb.io/v1beta2"
    } else {
        "metallb.io/v1beta1"
    };
    json!({"apiVersion": version, "kind": kind, "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec})
}

fn router(lab: &ClusterLab) -> &Frr {
    lab.router.as_ref().expect("the lab has a router")
}

/// The lab with bfdd at the router and `neighbor <node-1> bfd` in bgpd, the BGP pool and its
/// advertisement, BFDProfile `fast` (300 ms × 3), and BGPPeer `router` using it (hold 9 s).
async fn lab(tag: &str) -> ClusterLab {
    let mut lab = ClusterLab::start(tag, 1, true, binaries())
        .await
        .expect("lab starts");
    let node = lab.nodes[0].v4.to_string();
    let ClusterLab { router, net, .. } = &mut lab;
    let router = router.as_mut().expect("router");
    router
        .start_bfdd(
            net,
            "hostname router\nlog stdout\nlog timestamp precision 3\n",
        )
        .expect("bfdd");
    router
        .configure(&[
            &format!("router bgp {ROUTER_AS}"),
            &format!("neighbor {node} bfd"),
        ])
        .expect("neighbor bfd");
    for o in [
        object("IPAddressPool", "bgp", json!({"addresses": BGP_POOL})),
        object(
            "BFDProfile",
            "fast",
            json!({"receiveInterval": 300, "transmitInterval": 300, "detectMultiplier": 3}),
        ),
        object(
            "BGPPeer",
            "router",
            json!({"myASN": NODE_AS, "peerASN": ROUTER_AS, "peerAddress": ROUTER_V4.to_string(),
                   "holdTime": "9s", "bfdProfile": "fast"}),
        ),
        object(
            "BGPAdvertisement",
            "bgp",
            json!({"ipAddressPools": ["bgp"]}),
        ),
    ] {
        lab.create(o).expect("configuration");
    }
    lab
}

async fn serve_web(lab: &mut ClusterLab) {
    lab.start_speakers().expect("speaker");
    lab.create_service("web", json!({}), false, &[0], &[WEB.into()])
        .await
        .expect("service");
}

/// Whether FRR has a path to the Service.
fn has_route(lab: &ClusterLab) -> bool {
    router(lab)
        .json(&format!("show bgp ipv4 unicast {WEB}/32 json"))
        .ok()
        .and_then(|v| v["paths"].as_array().map(|p| !p.is_empty()))
        .unwrap_or(false)
}

/// FRR's `connectionsDropped` for node-1: how often its BGP session ended.
fn connections_dropped(lab: &ClusterLab) -> Option<u64> {
    let node = lab.nodes[0].v4.to_string();
    let v = router(lab)
        .json(&format!("show bgp neighbors {node} json"))
        .ok()?;
    v[&node]["connectionsDropped"].as_u64()
}

/// How often the speaker started a BGP session (its own restarts, not the peer's).
fn starting_sessions(lab: &ClusterLab) -> usize {
    lab.log("speaker-node-1")
        .lines()
        .filter(|l| l.contains("starting BGP session"))
        .count()
}

fn show(lab: &ClusterLab) -> String {
    let frr = router(lab);
    format!(
        "--- speaker\n{}\n--- bfdd\n{}\n--- bgp\n{}",
        lab.log("speaker-node-1"),
        frr.bfdd_vty(&["show bfd peers"]).unwrap_or_default(),
        frr.vty("show bgp summary").unwrap_or_default()
    )
}

/// Waits until the route is at the router, the BGP session Established and BFD Up at both
/// ends (FRR's bfdd and our metric).
async fn settled(lab: &ClusterLab, with_bfd: bool) {
    let node: IpAddr = lab.nodes[0].v4.into();
    let ours = format!("metallb_bfd_session_up{{peer=\"{ROUTER_V4}\",vrf=\"default\"}}");
    let ok = eventually(SETTLE, Duration::from_millis(50), || {
        let bgp = router(lab).session_state(node).is_ok() && has_route(lab);
        let bfd = !with_bfd
            || (router(lab)
                .bfd_peer(node, false)
                .is_ok_and(|p| p.status == "up")
                && lab.speaker_metric(0, &ours) == Some(1.0));
        (bgp && bfd).then_some(())
    })
    .await;
    assert!(ok.is_some(), "never settled\n{}", show(lab));
}

/// Cuts one direction (`role` stops hearing `source` on eth0) and returns how long the router
/// kept the route; heals after.
async fn cut_until_withdrawn(
    lab: &ClusterLab,
    role: &str,
    source: &str,
    within: Duration,
) -> Duration {
    let cut = Instant::now();
    lab.net.drop_from(role, "eth0", source).expect("cut");
    let gone = eventually(within, Duration::from_millis(5), || {
        (!has_route(lab)).then(|| cut.elapsed())
    })
    .await;
    lab.net.heal(role).expect("heal");
    match gone {
        Some(took) => took,
        None => panic!(
            "{role} not hearing {source}: FRR kept the route for {within:?}\n{}",
            show(lab)
        ),
    }
}

fn report(what: &str, mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p50 = times[(times.len() - 1) / 2];
    let max = times[times.len() - 1];
    println!(
        "{what}: {} trials, p50 {:.0} ms, max {:.0} ms, min {:.0} ms",
        times.len(),
        ms(p50),
        ms(max),
        ms(times[0])
    );
    (p50, max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_way_cut_makes_frr_withdraw_within_1_2_s_with_bfd_and_after_the_hold_time_without() {
    if !netlab::can_run(&["curl", "python3", "nft", Frr::BGPD, Frr::BFDD]) {
        return;
    }
    let trials: usize = std::env::var("FERROLB_BFD_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut lab = lab("spkbfd").await;
    serve_web(&mut lab).await;
    let node = lab.nodes[0].v4.to_string();
    let router_ip = ROUTER_V4.to_string();
    settled(&lab, true).await;

    let mut at_router = Vec::new();
    let mut at_node = Vec::new();
    for i in 0..trials {
        // Cuts spread over a transmit interval, not right after the last packet.
        let phase = |k: usize| Duration::from_millis((k as u64 * 97) % 300);
        tokio::time::sleep(phase(2 * i)).await;
        // Node → router lost: FRR's bfdd notices and bgpd withdraws.
        at_router.push(cut_until_withdrawn(&lab, "router", &node, Duration::from_secs(5)).await);
        settled(&lab, true).await;
        tokio::time::sleep(phase(2 * i + 1)).await;
        // Router → node lost: our BFD notices, the speaker closes the BGP session (its Cease
        // still reaches the router) and tells the router Down in its BFD packets.
        at_node.push(cut_until_withdrawn(&lab, "node-1", &router_ip, Duration::from_secs(5)).await);
        settled(&lab, true).await;
    }
    for (what, times) in [
        ("BFD, node → router cut, FRR withdraws", &at_router),
        ("BFD, router → node cut, FRR withdraws", &at_node),
    ] {
        let (_, max) = report(what, times.clone());
        assert!(max <= BUDGET, "{what}: {times:?} over {BUDGET:?}");
        assert!(
            times.iter().all(|t| *t >= FASTEST),
            "{what}: {times:?}: faster than BFD can be, something else withdrew"
        );
    }
    // Every cut took our session Down once (timeout, or FRR saying Down); the counters reach
    // the metrics with the next housekeeping round (every 5 s).
    let downs = format!("metallb_bfd_session_down_events{{peer=\"{ROUTER_V4}\",vrf=\"default\"}}");
    let want = (2 * trials) as f64;
    let counted = eventually(Duration::from_secs(8), Duration::from_millis(200), || {
        (lab.speaker_metric(0, &downs) == Some(want)).then_some(())
    })
    .await;
    assert!(
        counted.is_some(),
        "{downs}: {:?}, want {want}",
        lab.speaker_metric(0, &downs)
    );

    // Without BFD at either end: the hold timer (9 s, keepalives every 3 s) is what notices.
    // Dropping `bfdProfile` stops our BFD session (AdminDown) but must not restart our BGP
    // session. FRR 8.4 does restart its side once either way: its bgpd takes our AdminDown
    // for a failure, and its bfdd sends a plain Down when bgpd lets go of the session.
    let starts = starting_sessions(&lab);
    let peers: Api<BGPPeer> = Api::namespaced(lab.sim.client(), NAMESPACE);
    peers
        .patch(
            "router",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"bfdProfile": null}})),
        )
        .await
        .expect("peer without BFD");
    let ours = format!("metallb_bfd_session_up{{peer=\"{ROUTER_V4}\",vrf=\"default\"}}");
    let off = eventually(SETTLE, Duration::from_millis(100), || {
        let metrics = lab.speaker_metrics(0)?;
        (!metrics.contains(&ours)).then_some(())
    })
    .await;
    assert!(off.is_some(), "our BFD session never went\n{}", show(&lab));
    router(&lab)
        .configure(&[
            &format!("router bgp {ROUTER_AS}"),
            &format!("no neighbor {node} bfd"),
        ])
        .expect("no neighbor bfd");
    settled(&lab, false).await;
    assert_eq!(
        starting_sessions(&lab),
        starts,
        "dropping bfdProfile restarted our BGP session\n{}",
        show(&lab)
    );
    let hold = cut_until_withdrawn(&lab, "router", &node, Duration::from_secs(15)).await;
    println!(
        "no BFD, node → router cut, FRR withdraws after the hold time (9 s): {:.1} s",
        hold.as_secs_f64()
    );
    assert!(
        hold >= Duration::from_secs(5),
        "{hold:?}: the hold timer (9 s, keepalive 3 s) cannot fire before 6 s"
    );
}

/// `(result, errorSummary)` of the speaker's ConfigurationState.
async fn config_state(lab: &ClusterLab) -> Option<(String, String)> {
    let api: Api<ConfigurationState> = Api::namespaced(lab.sim.client(), NAMESPACE);
    let status = api.get_opt("speaker-node-1").await.ok()??.status?;
    let result = serde_json::to_value(status.result?).ok()?;
    Some((result.as_str()?.to_owned(), status.error_summary))
}

/// BIRD on the switch at 192.0.2.253, peering with node-1 with `bfd on`.
fn start_bird(lab: &mut ClusterLab) -> Bird {
    lab.net
        .add_host("bird", "eth0", &["192.0.2.253/24", "2001:db8::253/64"])
        .expect("BIRD's host");
    let local = Local {
        asn: BIRD_AS,
        v4: BIRD_V4,
        v6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x253),
    };
    let node = Neighbor {
        bfd: true,
        ..Neighbor::new(
            lab.nodes[0].v4.into(),
            NODE_AS,
            Families {
                ipv4_unicast: true,
                ipv6_unicast: false,
            },
        )
    };
    Bird::start(&mut lab.net, "bird", &local, &[node]).expect("BIRD")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bfd_comes_up_with_frr_and_bird_and_a_profile_edit_is_renegotiated_without_a_restart() {
    if !netlab::can_run(&["curl", "python3", "bird", Frr::BGPD, Frr::BFDD]) {
        return;
    }
    let mut lab = lab("spkbfdi").await;
    let bird = start_bird(&mut lab);
    lab.create(object(
        "BGPPeer",
        "bird",
        json!({"myASN": NODE_AS, "peerASN": BIRD_AS, "peerAddress": BIRD_V4.to_string(),
               "holdTime": "9s", "bfdProfile": "fast"}),
    ))
    .expect("BIRD's peer");
    serve_web(&mut lab).await;
    let node: IpAddr = lab.nodes[0].v4.into();
    settled(&lab, true).await;
    let bird_up = eventually(SETTLE, Duration::from_millis(100), || {
        let bgp = bird.session_state(node).is_ok();
        let bfd = bird.bfd_session(node).ok().filter(|s| s.state == "Up");
        bfd.filter(|_| bgp)
    })
    .await;
    let Some(bird_before) = bird_up else {
        panic!(
            "BIRD: BGP {:?}, BFD {:?}\n{}",
            bird.session_state(node),
            bird.bfd_session(node),
            show(&lab)
        );
    };
    let frr_before = router(&lab).bfd_peer(node, false).expect("FRR's BFD peer");
    assert_eq!(
        (frr_before.remote_transmit_ms, frr_before.remote_receive_ms),
        (300, 300),
        "{frr_before:?}"
    );
    assert_eq!(
        (bird_before.interval_ms, bird_before.timeout_ms),
        (300, 900),
        "{bird_before:?}"
    );
    let metric = |name: &str, peer: Ipv4Addr| {
        lab.speaker_metric(0, &format!("{name}{{peer=\"{peer}\",vrf=\"default\"}}"))
    };
    // Counters reach the metrics with the next housekeeping round (every 5 s).
    let counted = eventually(SETTLE, Duration::from_millis(200), || {
        [ROUTER_V4, BIRD_V4]
            .iter()
            .all(|p| metric("metallb_bfd_control_packet_input", *p).is_some_and(|n| n > 0.0))
            .then_some(())
    })
    .await;
    assert!(counted.is_some(), "{:?}", lab.speaker_metrics(0));
    for peer in [ROUTER_V4, BIRD_V4] {
        assert_eq!(metric("metallb_bfd_session_up", peer), Some(1.0), "{peer}");
        assert!(metric("metallb_bfd_control_packet_output", peer).is_some_and(|n| n > 0.0));
        assert_eq!(metric("metallb_bfd_session_up_events", peer), Some(1.0));
        assert_eq!(metric("metallb_bfd_echo_packet_input", peer), Some(0.0));
        assert_eq!(metric("metallb_bfd_echo_packet_output", peer), Some(0.0));
    }
    let dropped = connections_dropped(&lab);
    let frr_downs = router(&lab).bfd_down_events(node, false).ok();

    // 100 ms out, 200 ms in, × 4: FRR sees our new timers, BIRD sends at our 200 ms and
    // waits 4 × 100 ms; nobody leaves Up and no BGP session restarts.
    let profiles: Api<BFDProfile> = Api::namespaced(lab.sim.client(), NAMESPACE);
    let edit =
        json!({"spec": {"receiveInterval": 200, "transmitInterval": 100, "detectMultiplier": 4}});
    profiles
        .patch("fast", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .expect("profile edit");
    let renegotiated = eventually(SETTLE, Duration::from_millis(50), || {
        let frr = router(&lab).bfd_peer(node, false).ok()?;
        let b = bird.bfd_session(node).ok()?;
        assert_eq!(frr.status, "up", "FRR left Up: {frr:?}");
        assert_eq!(b.state, "Up", "BIRD left Up: {b:?}");
        let done = (
            frr.remote_transmit_ms,
            frr.remote_receive_ms,
            frr.remote_multiplier,
        ) == (100, 200, 4)
            && (b.interval_ms, b.timeout_ms) == (200, 400);
        done.then_some(b)
    })
    .await;
    let Some(bird_after) = renegotiated else {
        panic!(
            "not renegotiated: FRR {:?}, BIRD {:?}\n{}",
            router(&lab).bfd_peer(node, false),
            bird.bfd_session(node),
            show(&lab)
        );
    };
    let moved = bird_after
        .since_ms()
        .zip(bird_before.since_ms())
        .map(|(a, b)| a.abs_diff(b));
    assert!(
        moved.is_some_and(|ms| ms <= 10),
        "BIRD's BFD session restarted: {bird_before:?} then {bird_after:?}"
    );
    assert_eq!(router(&lab).bfd_down_events(node, false).ok(), frr_downs);
    assert_eq!(
        connections_dropped(&lab),
        dropped,
        "FRR's BGP session restarted"
    );
    assert!(
        bird.session_state(node).is_ok(),
        "BIRD's BGP session left Established"
    );
    for peer in [ROUTER_V4, BIRD_V4] {
        assert_eq!(
            metric("metallb_bfd_session_down_events", peer),
            Some(0.0),
            "{peer}"
        );
    }
    let starts = starting_sessions(&lab);
    assert_eq!(starts, 2, "one start per peer\n{}", show(&lab));

    // echoMode: the profile is Invalid and ignored; its last good version stays in force.
    profiles
        .patch(
            "fast",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"echoMode": true, "transmitInterval": 300}})),
        )
        .await
        .expect("echo edit");
    let invalid = eventually_async(SETTLE, Duration::from_millis(100), || async {
        config_state(&lab)
            .await
            .filter(|(result, summary)| result == "Invalid" && summary.contains("spec.echoMode"))
    })
    .await;
    assert!(
        invalid.is_some(),
        "ConfigurationState: {:?}",
        config_state(&lab).await
    );
    let frr = router(&lab).bfd_peer(node, false).expect("FRR's BFD peer");
    assert_eq!(
        (frr.status.as_str(), frr.remote_transmit_ms),
        ("up", 100),
        "the last good profile stays: {frr:?}"
    );
}
