//! Session options the speaker takes from MetalLB's `BGPPeer`, as pure values: Graceful Restart
//! flags in our OPEN across a restart (RFC 4724), the keepalive time, validation, the TTL rule
//! for eBGP multihop, VRF device names, and the OPEN version octet on the wire.

#[path = "bgp_lab/incoming.rs"]
mod incoming;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ferrolb_proto::bgp::driver::{DeviceName, PeerConfig};
use ferrolb_proto::bgp::fsm::{Config, ConfigError, ConnId, Input, Output, Session};
use ferrolb_proto::bgp::open::{
    Capabilities, Families, GracefulRestart, LocalSpeaker, Open, PeerAs, keepalive_interval,
};
use ferrolb_proto::bgp::packet::{Received, decode, encode_open};

const C1: ConnId = ConnId(1);
const C2: ConnId = ConnId(2);
const PEER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 200);

fn local(peer_as: PeerAs, graceful_restart: Option<Duration>) -> LocalSpeaker {
    LocalSpeaker {
        local_as: 64512,
        peer_as,
        router_id: Ipv4Addr::new(192, 0, 2, 10),
        hold_time: Duration::from_secs(90),
        families: Families::DUAL,
        graceful_restart,
        extended_message: false,
    }
}

fn gr_config(is_restarting: bool) -> Config {
    let mut c = Config::new(local(PeerAs::Fixed(64513), Some(Duration::from_secs(120))));
    c.is_restarting = is_restarting;
    c
}

fn peer_open(hold_secs: u16) -> Open {
    Open {
        version: 4,
        my_as: 64513,
        hold_time_secs: hold_secs,
        bgp_id: PEER_ID,
        capabilities: Capabilities {
            families: Families::DUAL,
            four_octet_as: Some(64513),
            route_refresh: true,
            graceful_restart: None,
            extended_message: false,
        },
    }
}

/// The OPEN the session sends on connection `id` (it must send exactly one).
fn sent_open(outputs: &[Output], id: ConnId) -> Open {
    let opens: Vec<Open> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::SendOpen(c, open) if *c == id => Some(*open),
            _ => None,
        })
        .collect();
    assert_eq!(opens.len(), 1, "{outputs:?}");
    opens[0]
}

fn gr_of(open: &Open) -> GracefulRestart {
    open.capabilities
        .graceful_restart
        .expect("graceful restart capability")
}

/// Dials, exchanges OPENs and KEEPALIVEs on `id`; returns our OPEN.
fn establish(s: &mut Session, now: Instant, id: ConnId, hold_secs: u16) -> Open {
    let out = s.step(now, Input::TcpConnectionAcknowledged(id));
    let open = sent_open(&out, id);
    s.step(now, Input::BgpOpen(id, peer_open(hold_secs)));
    let out = s.step(now, Input::KeepAliveMsg(id));
    assert!(
        out.iter().any(|o| matches!(o, Output::SessionUp(..))),
        "{out:?}"
    );
    open
}

#[test]
fn a_restarted_speaker_sets_the_restart_bit_until_its_first_session_is_up() {
    let t0 = Instant::now();
    let mut s = Session::new(gr_config(true));
    s.step(t0, Input::ManualStart);
    let first = establish(&mut s, t0, C1, 90);
    let gr = gr_of(&first);
    assert!(gr.is_restarting, "R bit on the first OPEN after a restart");
    assert_eq!(gr.restart_time, Duration::from_secs(120));
    assert_eq!(
        (gr.families, gr.forwarding),
        (Families::DUAL, Families::DUAL)
    );

    // The connection drops; the session retries on its own and opens a new connection.
    s.step(t0, Input::TcpConnectionFails(Some(C1)));
    let later = t0 + Duration::from_secs(60);
    s.step(later, Input::ConnectRetryTimerExpires);
    let second = establish(&mut s, later, C2, 90);
    assert!(
        !gr_of(&second).is_restarting,
        "the restart is over once a session was up: R clear"
    );
    assert_eq!(s.config(), &gr_config(true), "config unchanged");
}

#[test]
fn a_first_start_announces_graceful_restart_without_the_restart_bit() {
    let t0 = Instant::now();
    let mut s = Session::new(gr_config(false));
    s.step(t0, Input::ManualStart);
    let gr = gr_of(&establish(&mut s, t0, C1, 90));
    assert!(!gr.is_restarting);
    assert_eq!(
        (gr.families, gr.forwarding),
        (Families::DUAL, Families::DUAL)
    );
}

#[test]
fn forwarding_not_preserved_clears_every_forwarding_bit() {
    let mut c = gr_config(true);
    c.is_forwarding_preserved = false;
    let gr = gr_of(&Session::new(c).our_open());
    assert!(gr.is_restarting);
    assert_eq!(gr.families, Families::DUAL);
    assert_eq!(gr.forwarding, Families::default());
}

#[test]
fn without_a_restart_time_no_graceful_restart_capability_is_sent_even_when_restarting() {
    let mut c = Config::new(local(PeerAs::Fixed(64513), None));
    c.is_restarting = true;
    assert_eq!(
        Session::new(c).our_open().capabilities.graceful_restart,
        None
    );
}

#[test]
fn graceful_restart_flags_and_families_survive_the_wire_both_ways() {
    let mut open = Session::new(gr_config(true)).our_open();
    let gr = open.capabilities.graceful_restart.as_mut().expect("GR");
    gr.forwarding = Families {
        ipv4_unicast: false,
        ipv6_unicast: true,
    };
    let bytes = encode_open(&open).expect("encodes");
    assert_eq!(decode(&bytes, false), Ok(Received::Open(open)));
}

#[test]
fn encode_open_writes_the_version_it_is_given() {
    let mut open = Session::new(gr_config(false)).our_open();
    assert_eq!(encode_open(&open).expect("encodes")[19], 4);
    open.version = 3;
    let bytes = encode_open(&open).expect("encodes");
    assert_eq!(bytes[19], 3, "version octet right after the header");
}

#[test]
fn keepalive_is_the_configured_time_capped_at_a_third_of_the_hold_time() {
    // (hold, configured keepalive, interval)
    let rows = [
        (90, None, 30),
        (90, Some(10), 10),
        (90, Some(60), 30),
        (9, Some(5), 3),
        (10, None, 3),
        (3, Some(3), 1),
        (0, Some(0), 0),
        (0, None, 0),
    ];
    for (hold, configured, want) in rows {
        let got = keepalive_interval(
            Duration::from_secs(hold),
            configured.map(Duration::from_secs),
        );
        assert_eq!(
            got,
            Duration::from_secs(want),
            "hold {hold} s, keepalive {configured:?}"
        );
    }
}

#[test]
fn a_configured_keepalive_time_arms_the_keepalive_timer() {
    let t0 = Instant::now();
    let mut c = gr_config(false);
    c.keepalive_time = Some(Duration::from_secs(5));
    let mut s = Session::new(c);
    s.step(t0, Input::ManualStart);
    s.step(t0, Input::TcpConnectionAcknowledged(C1));
    let out = s.step(t0, Input::BgpOpen(C1, peer_open(60)));
    assert!(
        out.contains(&Output::ArmTimer(
            ferrolb_proto::bgp::fsm::TimerKind::Keepalive,
            t0 + Duration::from_secs(5)
        )),
        "{out:?}"
    );
    s.step(t0, Input::KeepAliveMsg(C1));
    let neg = s.negotiated().expect("negotiated");
    assert_eq!(
        (neg.hold_time, neg.keepalive),
        (Duration::from_secs(60), Duration::from_secs(5))
    );
}

#[test]
fn validation_refuses_what_the_rfcs_forbid() {
    let with = |hold: u64, keepalive: Option<u64>, restart: Option<u64>| {
        let mut c = Config::new(local(PeerAs::External, restart.map(Duration::from_secs)));
        c.local.hold_time = Duration::from_secs(hold);
        c.keepalive_time = keepalive.map(Duration::from_secs);
        c.validate()
    };
    assert_eq!(with(90, None, None), Ok(()));
    assert_eq!(with(90, Some(30), Some(120)), Ok(()));
    assert_eq!(
        with(90, Some(90), None),
        Ok(()),
        "MetalLB allows up to the hold time"
    );
    assert_eq!(with(0, None, None), Ok(()));
    assert_eq!(with(0, Some(0), None), Ok(()));
    assert_eq!(
        with(2, None, None),
        Err(ConfigError::HoldTime { hold_secs: 2 })
    );
    assert_eq!(
        with(90, Some(91), None),
        Err(ConfigError::KeepaliveTime {
            keepalive_secs: 91,
            hold_secs: 90
        })
    );
    assert_eq!(
        with(90, Some(0), None),
        Err(ConfigError::KeepaliveTime {
            keepalive_secs: 0,
            hold_secs: 90
        })
    );
    assert_eq!(
        with(90, None, Some(4096)),
        Err(ConfigError::RestartTime { restart_secs: 4096 })
    );
    let mut c = Config::new(local(PeerAs::External, None));
    c.local.router_id = Ipv4Addr::UNSPECIFIED;
    assert_eq!(c.validate(), Err(ConfigError::RouterId));
}

#[test]
fn ebgp_without_multihop_uses_ttl_one_and_everything_else_255() {
    let addr: SocketAddr = "192.0.2.254:179".parse().expect("address");
    // (peer AS setting, ebgp_multihop, TTL)
    let rows = [
        (PeerAs::Fixed(64513), false, 1),
        (PeerAs::Fixed(64513), true, 255),
        (PeerAs::External, false, 1),
        (PeerAs::External, true, 255),
        (PeerAs::Fixed(64512), false, 255),
        (PeerAs::Internal, false, 255),
    ];
    for (peer_as, ebgp_multihop, ttl) in rows {
        let config = PeerConfig {
            ebgp_multihop,
            ..PeerConfig::new(Config::new(local(peer_as, None)), addr)
        };
        assert_eq!(config.ttl(), ttl, "{peer_as:?} multihop {ebgp_multihop}");
    }
}

#[test]
fn device_names_follow_the_kernels_rules() {
    assert_eq!(
        DeviceName::new("vrf-red").map(|d| d.to_string()),
        Ok("vrf-red".to_owned())
    );
    assert!(DeviceName::new("fifteen-chars-x").is_ok());
    for bad in ["", "sixteen-chars-xx", "a/b", "a b", "a:b", ".", ".."] {
        assert!(DeviceName::new(bad).is_err(), "{bad:?}");
    }
}

/// Two of our drivers over loopback: A has just restarted (GR, `is_restarting`), B accepts.
/// A's initial table and End-of-RIB wait for the speaker's first `SetRoutes`, so the peer
/// never sees an End-of-RIB that would flush our stale routes before the table is known.
#[tokio::test]
async fn after_a_restart_end_of_rib_waits_for_the_speakers_first_route_set() {
    use ferrolb_proto::bgp::driver::{Command, Event, spawn};
    use ferrolb_proto::bgp::packing::{NextHop, RouteAttrs, RouteSet};
    use tokio::sync::mpsc::Receiver;
    use tokio::time::timeout;

    async fn next(events: &mut Receiver<Event>) -> Event {
        timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("event in time")
            .expect("task alive")
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut b = Config::new(LocalSpeaker {
        router_id: Ipv4Addr::new(192, 0, 2, 2),
        local_as: 64513,
        ..local(PeerAs::Fixed(64512), Some(Duration::from_secs(120)))
    });
    b.connect_retry_initial = Duration::from_millis(50);
    let unused: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let (b_cmd, mut b_events, _b_task) = spawn(PeerConfig {
        is_passive: true,
        ..PeerConfig::new(b, unused)
    });
    tokio::spawn(incoming::hand_over(listener, b_cmd.clone()));
    let mut a = gr_config(true);
    a.connect_retry_initial = Duration::from_millis(50);
    let (a_cmd, mut a_events, _a_task) = spawn(PeerConfig::new(a, addr));

    let Event::Up(neg) = next(&mut a_events).await else {
        panic!("A not up")
    };
    assert!(neg.graceful_restart.is_some(), "B announced GR");
    // B (not restarting) sends its empty table and End-of-RIB at once.
    assert!(matches!(next(&mut b_events).await, Event::Up(_)));
    assert_eq!(
        next(&mut b_events).await,
        Event::RoutesSent {
            updates: 2,
            skipped: 0
        }
    );
    let attrs = RouteAttrs {
        next_hop: NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)),
        communities: Default::default(),
        large_communities: Default::default(),
        local_pref: None,
    };
    let routes: RouteSet = [("203.0.113.7/32".parse().expect("prefix"), attrs)].into();
    a_cmd
        .send(Command::SetRoutes(routes))
        .await
        .expect("A alive");
    // A's first report: one UPDATE, then End-of-RIB for IPv4 and IPv6 (nothing before it).
    assert_eq!(
        next(&mut a_events).await,
        Event::RoutesSent {
            updates: 3,
            skipped: 0
        }
    );
    a_cmd.send(Command::Stop).await.expect("A alive");
    b_cmd.send(Command::Stop).await.expect("B alive");
}
