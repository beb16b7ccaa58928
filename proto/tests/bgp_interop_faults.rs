//! Faults against FRR in network namespaces (needs root and FRR; see `bgp_lab`):
//! - our process freezes (SIGSTOP): FRR's hold timer expires and it drops the session and our
//!   route; once thawed, the session comes back by itself;
//! - a peer that sends malformed messages gets the right NOTIFICATION and loses its session,
//!   while the FRR session of the same process stays up. (An UPDATE we cannot parse is not one
//!   of them: it is counted and the session stays, see `bgp_hostile_peer.rs`.)

mod bgp_lab;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bgp_lab::{
    DEADLINE, Frr, Lab, Neighbor, ROUTER_AS, ROUTER4, RibPath, Router, can_run, dial, must,
    neighbor, poll, session,
};
use bytes::BytesMut;
use ferrolb_proto::bgp::driver::{Command, Event, PeerConfig, spawn};
use ferrolb_proto::bgp::fsm::DownReason;
use ferrolb_proto::bgp::open::{Capabilities, Families, Open};
use ferrolb_proto::bgp::packet::{Received, decode, encode_keepalive, encode_open, split_frame};
use ferrolb_proto::bgp::packing::{NextHop, RouteAttrs, RouteSet};
use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const OUR_AS: u32 = 64512;
const HOLD_SECS: u16 = 9;
const PREFIX: &str = "203.0.113.50/32";

/// The route the frozen speaker announces.
fn announced(next_hop: Ipv4Addr) -> RouteSet {
    let attrs = RouteAttrs {
        next_hop: NextHop::V4(next_hop),
        communities: BTreeSet::new(),
        large_communities: BTreeSet::new(),
        local_pref: None,
    };
    [(PREFIX.parse::<IpNet>().expect("prefix"), attrs)].into()
}

/// The speaker process of the hold-timer test: the same test run again (inside the node's
/// namespace) with `FBGP_SPEAK=<local IPv4>`. It dials FRR, announces [`PREFIX`], and prints
/// one `FBGP <event>` line per driver event until it is killed.
fn speaker_child(local: &str) {
    let local: Ipv4Addr = local.parse().expect("FBGP_SPEAK is an IPv4 address");
    let mut config = session(OUR_AS, ROUTER_AS, local);
    config.local.hold_time = Duration::from_secs(u64::from(HOLD_SECS));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let (cmd, mut events, _task) = spawn(dial(config, IpAddr::V4(ROUTER4), IpAddr::V4(local)));
        cmd.send(Command::SetRoutes(announced(local)))
            .await
            .expect("peer task alive");
        while let Some(ev) = events.recv().await {
            let line = match ev {
                Event::Up(_) => "up".to_owned(),
                Event::Down(reason) => format!("down {}", reason.reason()),
                Event::RoutesSent { updates, .. } => format!("sent {updates}"),
            };
            println!("FBGP {line}");
        }
    });
}

#[test]
fn frr_drops_a_frozen_speaker_within_the_hold_time_and_takes_it_back_when_thawed() {
    if let Ok(local) = std::env::var("FBGP_SPEAK") {
        speaker_child(&local);
        return;
    }
    if !can_run(&["ip", "kill", Frr::ZEBRA, Frr::BGPD]) {
        return;
    }
    let mut lab = Lab::new(1);
    let node = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let frr = lab.frr(&[Neighbor {
        hold_time_secs: Some(HOLD_SECS),
        ..neighbor(node, OUR_AS, Families::DUAL)
    }]);
    let exe = std::env::current_exe().expect("test binary");
    let exe = exe.to_str().expect("utf-8 path");
    let log = lab.path("speaker.log");
    let args = [
        "env",
        "FBGP_SPEAK=192.0.2.1",
        exe,
        "--exact",
        "frr_drops_a_frozen_speaker_within_the_hold_time_and_takes_it_back_when_thawed",
        "--nocapture",
        "--test-threads",
        "1",
    ];
    let pid = lab.start_daemon("speaker", "n1", &args, &log).to_string();
    frr.wait_established(node)
        .expect("router session Established");
    let ours = RibPath {
        next_hop: node,
        as_path: vec![OUR_AS],
        communities: Vec::new(),
        large_communities: Vec::new(),
        local_pref: None,
    };
    frr.wait_paths(PREFIX, vec![ours.clone()])
        .expect("router RIB as expected");
    let hold = frr
        .json(&format!("show bgp neighbors {node} json"))
        .expect("neighbor")[node.to_string()]["bgpTimerHoldTimeMsecs"]
        .as_u64();
    assert_eq!(
        hold,
        Some(u64::from(HOLD_SECS) * 1000),
        "negotiated hold time"
    );

    must(&["kill", "-STOP", &pid]);
    let frozen_at = Instant::now();
    poll(
        "FRR drops the frozen session",
        DEADLINE,
        Duration::from_millis(100),
        || match frr.session_state(node) {
            Ok(()) => Err("still Established".into()),
            Err(_) => Ok(()),
        },
    );
    let gap = frozen_at.elapsed();
    let hold = Duration::from_secs(u64::from(HOLD_SECS));
    // The last keepalive left at most a keepalive interval (hold / 3) before the freeze.
    assert!(
        gap >= hold - hold / 3 - Duration::from_millis(500) && gap <= hold + Duration::from_secs(3),
        "FRR dropped the session {gap:?} after the freeze, hold time {hold:?}"
    );
    let neighbor = frr
        .json(&format!("show bgp neighbors {node} json"))
        .expect("neighbor");
    // FRR itself sent NOTIFICATION 4/0 (Hold Timer Expired).
    let n = &neighbor[node.to_string()];
    assert_eq!(
        (
            n["lastErrorCodeSubcode"].as_str(),
            n["lastResetDueTo"].as_str()
        ),
        (Some("0400"), Some("BGP Notification send")),
        "{n}"
    );
    frr.wait_paths(PREFIX, Vec::new())
        .expect("router RIB as expected");
    println!("FRR dropped the frozen speaker {gap:?} after SIGSTOP (hold time {hold:?})");

    must(&["kill", "-CONT", &pid]);
    frr.wait_established(node)
        .expect("router session Established");
    frr.wait_paths(PREFIX, vec![ours])
        .expect("router RIB as expected");
    // libtest's "test speaker_child ... " has no newline: the first event shares its line.
    let said = lab.daemon_log("speaker");
    let events: Vec<&str> = said
        .lines()
        .filter_map(|l| Some(&l[l.find("FBGP ")? + 5..]))
        .collect();
    let ups = events.iter().filter(|e| **e == "up").count();
    assert!(ups >= 2, "the speaker came back up: {events:?}");
    assert!(events.iter().any(|e| e.starts_with("down")), "{events:?}");
}

/// An OPEN from the fake peer (AS 64700, IPv4 unicast, 4-octet AS).
fn fake_open(version: u8) -> Vec<u8> {
    let open = Open {
        version,
        my_as: 64700,
        hold_time_secs: 30,
        bgp_id: Ipv4Addr::new(192, 0, 2, 2),
        capabilities: Capabilities {
            families: Families {
                ipv4_unicast: true,
                ipv6_unicast: false,
            },
            four_octet_as: Some(64700),
            ..Capabilities::default()
        },
    };
    encode_open(&open).expect("OPEN encodes").to_vec()
}

fn header(len: u16, kind: u8) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&len.to_be_bytes());
    m.push(kind);
    m
}

/// One malformed message and the NOTIFICATION it must draw.
struct Bad {
    what: &'static str,
    /// Reach Established with the driver before sending it.
    establish_first: bool,
    bytes: Vec<u8>,
    code: u8,
    /// `None`: any subcode of `code`.
    subcode: Option<u8>,
}

impl Bad {
    fn before_open(what: &'static str, bytes: Vec<u8>, code: u8, subcode: Option<u8>) -> Bad {
        Bad {
            what,
            establish_first: false,
            bytes,
            code,
            subcode,
        }
    }

    fn established(what: &'static str, bytes: Vec<u8>, code: u8, subcode: Option<u8>) -> Bad {
        Bad {
            establish_first: true,
            ..Bad::before_open(what, bytes, code, subcode)
        }
    }
}

/// Reads messages until the driver closes the connection.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<Received> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    loop {
        let n = tokio::time::timeout(DEADLINE, stream.read_buf(&mut buf))
            .await
            .expect("the driver answers or closes in time")
            .unwrap_or(0);
        while let Ok(Some(frame)) = split_frame(&mut buf, 65535) {
            out.push(decode(&frame, true).expect("the driver's messages decode"));
        }
        if n == 0 {
            return out;
        }
    }
}

/// Connects to the driver until it answers with its OPEN (it refuses connections while it
/// waits out its restart delay after the previous error).
async fn connect_to_driver(addr: SocketAddr) -> (TcpStream, BytesMut) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        assert!(Instant::now() < deadline, "the driver never sent its OPEN");
        if let Ok(mut s) = TcpStream::connect(addr).await {
            let mut buf = BytesMut::new();
            let read = tokio::time::timeout(Duration::from_secs(2), s.read_buf(&mut buf)).await;
            if matches!(read, Ok(Ok(n)) if n > 0) {
                return (s, buf);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One malformed exchange: optionally reach Established first, then send `bad`; returns the
/// NOTIFICATION (code, subcode) the driver answered with before closing.
async fn inject(addr: SocketAddr, establish: bool, bad: Vec<u8>) -> (u8, u8) {
    let (mut s, _their_open) = connect_to_driver(addr).await;
    if establish {
        s.write_all(&fake_open(4)).await.expect("write");
        s.write_all(&encode_keepalive()).await.expect("write");
    }
    s.write_all(&bad).await.expect("write");
    let got = read_until_closed(&mut s).await;
    match got.iter().rev().find_map(|m| match m {
        Received::Notification(n) => Some((n.code, n.subcode)),
        _ => None,
    }) {
        Some(n) => n,
        None => panic!("no NOTIFICATION before the close: {got:?}"),
    }
}

#[test]
fn malformed_messages_close_only_their_own_session_and_the_frr_session_stays_up() {
    if !can_run(&["ip", Frr::ZEBRA, Frr::BGPD]) {
        return;
    }
    let mut lab = Lab::new(2);
    lab.add_addr(1, "192.0.2.11/24");
    let node = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let frr = lab.frr(&[neighbor(node, OUR_AS, Families::DUAL)]);
    let n1 = lab.node(1);
    // Session A: with FRR. Session B: passive, for the fake peer at 192.0.2.2 (node 2).
    let mut a = n1.peer(dial(
        session(OUR_AS, ROUTER_AS, Ipv4Addr::new(192, 0, 2, 1)),
        IpAddr::V4(ROUTER4),
        node,
    ));
    let b_addr: SocketAddr = "192.0.2.11:179".parse().expect("address");
    let fake: IpAddr = "192.0.2.2".parse().expect("address");
    let mut b = n1.peer(PeerConfig {
        is_passive: true,
        ..dial(
            session(OUR_AS, 64700, Ipv4Addr::new(192, 0, 2, 11)),
            fake,
            b_addr.ip(),
        )
    });
    n1.listen(b_addr, fake, None, b.cmd.clone());
    a.wait_up();
    frr.wait_established(node)
        .expect("router session Established");
    a.set_routes(announced(Ipv4Addr::new(192, 0, 2, 1)));

    let fix_len = |mut m: Vec<u8>| {
        let len = m.len() as u16;
        m[16..18].copy_from_slice(&len.to_be_bytes());
        m
    };
    let mut bad_marker = header(19, 4);
    bad_marker[3] = 0;
    let cases = [
        Bad::before_open("OPEN with version 3", fake_open(3), 2, Some(1)),
        Bad::established("bad marker", bad_marker, 1, Some(1)),
        Bad::established("bad length", header(5000, 2), 1, Some(2)),
        Bad::established("unknown type 9", header(19, 9), 1, Some(3)),
        Bad::established(
            "KEEPALIVE with a body",
            fix_len([header(0, 4), vec![0]].concat()),
            1,
            Some(2),
        ),
    ];
    let n2 = lab.node(2);
    for bad in cases {
        let what = bad.what;
        let (code, subcode) = n2.block_on(inject(b_addr, bad.establish_first, bad.bytes));
        println!("{what}: NOTIFICATION {code}/{subcode}");
        assert_eq!(code, bad.code, "{what}: subcode {subcode}");
        if let Some(want) = bad.subcode {
            assert_eq!(subcode, want, "{what}");
        }
        if bad.establish_first {
            let down = b.wait_for(what, DEADLINE, |ev| match ev {
                Event::Down(reason) => Some(reason.clone()),
                _ => None,
            });
            assert!(
                matches!(down, DownReason::LocalNotification(ref n) if n.code == code),
                "{what}: {down:?}"
            );
        }
    }

    // Session A never noticed: still Established on both sides, never reset, route in place.
    assert!(!a.went_down(), "the FRR session went down");
    frr.session_state(node).expect("FRR still Established");
    let v = frr
        .json(&format!("show bgp neighbors {node} json"))
        .expect("neighbor");
    assert_eq!(
        v[node.to_string()]["connectionsDropped"].as_u64(),
        Some(0),
        "{v}"
    );
    frr.wait_paths(
        PREFIX,
        vec![RibPath {
            next_hop: node,
            as_path: vec![OUR_AS],
            communities: Vec::new(),
            large_communities: Vec::new(),
            local_pref: None,
        }],
    )
    .expect("router RIB as expected");
    drop(b);
}
