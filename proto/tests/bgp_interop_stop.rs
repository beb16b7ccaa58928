//! How our stops land at FRR 8.4 with graceful restart (RFC 4724), with and without RFC 8538's
//! N bit (`bgp graceful-restart notification`, FRR's default): a stop before a planned restart
//! leaves our route in FRR's RIB, marked stale, until the restarted speaker's End-of-RIB; a real
//! stop (a Hard Reset with the N bit, a plain CEASE without) makes FRR drop it at once.
//! Namespaces from `ferrolb-netlab`; needs root and FRR.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use ferrolb_netlab::routers::{Families, Frr, Local, Neighbor, frr};
use ferrolb_netlab::{Netlab, NsRuntime, can_run, poll};
use ferrolb_proto::bgp::driver::{Command, Event, PeerConfig, PeerHandle, start};
use ferrolb_proto::bgp::fsm::{Config, DownReason};
use ferrolb_proto::bgp::open::{LocalSpeaker, Negotiated, PeerAs};
use ferrolb_proto::bgp::packing::{NextHop, RouteAttrs, RouteSet};

const OUR_AS: u32 = 64512;
const ROUTER_AS: u32 = 64513;
const NODE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
const PREFIX: &str = "203.0.113.50/32";
const DEADLINE: Duration = Duration::from_secs(30);

/// FRR with graceful restart; without the N bit when `notification` is false.
fn start_frr(lab: &mut Netlab, notification: bool) -> Frr {
    let local = Local {
        asn: ROUTER_AS,
        v4: ROUTER,
        v6: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0xfe),
    };
    let neighbor = Neighbor::new(
        IpAddr::V4(NODE),
        OUR_AS,
        Families {
            ipv4_unicast: true,
            ipv6_unicast: false,
        },
    );
    let mut gr = String::from(" no bgp default ipv4-unicast\n bgp graceful-restart\n");
    if !notification {
        gr += " no bgp graceful-restart notification\n";
    }
    let conf = frr::config(&local, &[neighbor]).replace(" no bgp default ipv4-unicast\n", &gr);
    Frr::start(lab, "r", &conf).expect("FRR starts")
}

/// Our speaker with GR (120 s), restarting or not, announcing [`PREFIX`].
fn speaker(rt: &NsRuntime, is_restarting: bool) -> PeerHandle {
    let mut session = Config::new(LocalSpeaker {
        local_as: OUR_AS,
        peer_as: PeerAs::Fixed(ROUTER_AS),
        router_id: NODE,
        hold_time: Duration::from_secs(30),
        families: ferrolb_proto::bgp::open::Families {
            ipv4_unicast: true,
            ipv6_unicast: false,
        },
        graceful_restart: Some(Duration::from_secs(120)),
        extended_message: true,
    });
    session.is_restarting = is_restarting;
    session.connect_retry_initial = Duration::from_millis(200);
    let config = PeerConfig {
        local_addr: Some(IpAddr::V4(NODE)),
        ..PeerConfig::new(session, SocketAddr::new(IpAddr::V4(ROUTER), 179))
    };
    let attrs = RouteAttrs {
        next_hop: NextHop::V4(NODE),
        communities: BTreeSet::new(),
        large_communities: BTreeSet::new(),
        local_pref: None,
    };
    let routes: RouteSet = [(PREFIX.parse().expect("prefix"), attrs)].into();
    let _guard = rt.handle().enter();
    let peer = start(config);
    peer.commands
        .try_send(Command::SetRoutes(routes))
        .expect("room for the routes");
    peer
}

/// Waits on `rt` for the next Up (its negotiation) or Down (its reason) of `peer`.
fn next_event(rt: &NsRuntime, mut peer: PeerHandle) -> (PeerHandle, Event) {
    rt.block_on(async move {
        loop {
            let ev = tokio::time::timeout(DEADLINE, peer.events.recv())
                .await
                .expect("an event in time")
                .expect("peer task alive");
            if matches!(ev, Event::Up(_) | Event::Down(_)) {
                return (peer, ev);
            }
        }
    })
}

fn up(rt: &NsRuntime, peer: PeerHandle) -> (PeerHandle, Negotiated) {
    match next_event(rt, peer) {
        (peer, Event::Up(n)) => (peer, n),
        (_, other) => panic!("expected Up, got {other:?}"),
    }
}

/// FRR's path for [`PREFIX`]: `Some(is_stale)`, or `None` when it has none.
fn path(frr: &Frr) -> Option<bool> {
    let v = frr
        .json(&format!("show bgp ipv4 unicast {PREFIX} json"))
        .ok()?;
    let p = v["paths"].as_array()?.first()?.clone();
    Some(p["stale"].as_bool().unwrap_or(false))
}

fn wait_path(frr: &Frr, want: Option<bool>, what: &str) -> Duration {
    let since = Instant::now();
    poll(what, DEADLINE, Duration::from_millis(20), || {
        let got = path(frr);
        if got == want {
            Ok(since.elapsed())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .expect(what)
}

fn stop(rt: &NsRuntime, peer: PeerHandle, command: Command) -> DownReason {
    let commands = peer.commands.clone();
    rt.block_on(async move { commands.send(command).await.expect("peer task alive") });
    match next_event(rt, peer) {
        (_, Event::Down(reason)) => reason,
        (_, other) => panic!("expected Down, got {other:?}"),
    }
}

/// A planned restart keeps the route (stale until End-of-RIB), a stop drops it at once.
fn story(notification: bool) {
    if !can_run(&["ip", Frr::ZEBRA, Frr::BGPD]) {
        return;
    }
    let mut lab = Netlab::new("bgp-stop").expect("lab");
    lab.add_host("r", "eth0", &["192.0.2.254/24"])
        .expect("router host");
    lab.add_host("n1", "eth0", &["192.0.2.1/24"])
        .expect("node host");
    let frr = start_frr(&mut lab, notification);
    let rt = NsRuntime::start(&lab.ns("n1")).expect("runtime in n1");

    let (first, negotiated) = up(&rt, speaker(&rt, false));
    assert_eq!(
        negotiated.has_graceful_notification(),
        notification,
        "N bit negotiated: {negotiated:?}"
    );
    wait_path(&frr, Some(false), "FRR holds our route");

    let down = stop(&rt, first, Command::StopForRestart);
    assert_eq!(down, DownReason::PlannedRestart);
    wait_path(
        &frr,
        Some(true),
        "FRR keeps our route, stale, after the quiet stop",
    );
    let v = frr
        .json(&format!("show bgp neighbors {NODE} json"))
        .expect("neighbor");
    println!(
        "N bit {notification}: FRR after the planned stop: lastResetDueTo {}, lastNotificationReason {}",
        v[NODE.to_string()]["lastResetDueTo"],
        v[NODE.to_string()]["lastNotificationReason"]
    );

    let (second, negotiated) = up(&rt, speaker(&rt, true));
    assert!(negotiated.graceful_restart.is_some());
    let cleared = wait_path(&frr, Some(false), "End-of-RIB clears the stale mark");
    println!("N bit {notification}: stale mark cleared {cleared:?} after Established");

    let down = stop(&rt, second, Command::Stop);
    assert_eq!(down, DownReason::AdminStop);
    let gone = wait_path(&frr, None, "FRR drops our route after a real stop");
    assert!(
        gone < Duration::from_secs(5),
        "dropped after {gone:?}, not kept for the restart time"
    );
    let v = frr
        .json(&format!("show bgp neighbors {NODE} json"))
        .expect("neighbor");
    println!(
        "N bit {notification}: FRR after the real stop: {} / {}",
        v[NODE.to_string()]["lastResetDueTo"],
        v[NODE.to_string()]["lastNotificationReason"]
    );
}

#[test]
fn with_the_n_bit_a_planned_stop_keeps_our_route_at_frr_and_a_hard_reset_drops_it() {
    story(true);
}

#[test]
fn without_the_n_bit_a_planned_stop_sends_no_notification_and_a_cease_drops_the_route() {
    story(false);
}
