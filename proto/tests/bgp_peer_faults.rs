//! Our peer driver against a broken or careless peer (a fake peer written byte by byte, see
//! `bgp_fake`), one behaviour each:
//! - an UPDATE we cannot parse is counted and the session stays up; a framing error still
//!   resets it (RFC 7606's spirit: we keep no RIB);
//! - the max-prefix guard ends the session with Cease 6/1 (RFC 4486), re-announcements do not
//!   count twice;
//! - a peer that stops reading while our routes churn is reset with Cease / Out of Resources
//!   and its queue is freed;
//! - GTSM (RFC 5082): we send TTL 255 and accept nothing below it;
//! - hold time 0: a peer whose link goes down silently is noticed within the configured bound
//!   (namespaces: needs root).

mod bgp_fake;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bgp_fake::{
    Fake, HOLD_SECS, WAIT, drain, message, our_config, table_v4, until, update_v4, update_v6,
    update_v6_with_len, wait_event,
};
use ferrolb_netlab::{Netlab, NsRuntime, can_run};
use ferrolb_proto::bgp::driver::{Command, Event, PeerConfig, start};
use ferrolb_proto::bgp::fsm::DownReason;
use ferrolb_proto::bgp::notification::Notification;
use ferrolb_proto::bgp::packet::{Received, encode_keepalive};
use ferrolb_proto::bgp::sockopt::set_min_ttl;
use tokio::net::TcpListener;

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    (l, addr)
}

fn notifications(got: &[Received]) -> Vec<Notification> {
    got.iter()
        .filter_map(|m| match m {
            Received::Notification(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_we_cannot_parse_is_counted_and_the_session_stays_up() {
    let (l, addr) = listener().await;
    let mut peer = start(our_config(addr));
    let mut fake = Fake::accept(&l, HOLD_SECS).await;
    wait_event(&mut peer.events, "Up", |e| {
        matches!(e, Event::Up(_)).then_some(())
    })
    .await;

    let bad = [
        // An IPv4 prefix of 33 bits.
        update_v4(&[33, 198, 51, 100, 1, 0]),
        // A /32 with two of its four octets.
        update_v4(&[32, 198, 51]),
        // An IPv6 prefix of 129 bits in MP_REACH_NLRI.
        update_v6_with_len(0, 1, 129),
    ];
    for m in &bad {
        fake.send(m).await;
    }
    fake.send(&update_v6(0, 10)).await;
    fake.send(&encode_keepalive()).await;
    let stats = peer.stats.clone();
    until("four UPDATEs counted", || {
        stats.snapshot().updates_received == 4
    })
    .await;
    let s = stats.snapshot();
    assert_eq!(s.updates_unreadable, 3, "{s:?}");
    assert_eq!(s.prefixes_announced, [0, 10], "{s:?}");

    // Longer than one keepalive interval (3 s): our KEEPALIVEs flow, nothing else happens.
    let (got, closed) = fake.recv_for(Duration::from_millis(3500)).await;
    assert!(!closed, "the session was closed: {got:?}");
    assert_eq!(notifications(&got), vec![], "{got:?}");
    assert!(got.contains(&Received::KeepAlive), "{got:?}");
    assert!(
        !drain(&mut peer.events)
            .iter()
            .any(|e| matches!(e, Event::Down(_))),
        "the session went down"
    );

    // A framing error (bad marker) still ends the connection, with 1/1.
    let mut bad_marker = message(4, &[]);
    bad_marker[0] = 0;
    fake.send(&bad_marker).await;
    let (got, closed) = fake.recv_for(WAIT).await;
    assert!(closed);
    assert_eq!(notifications(&got), vec![Notification::new(1, 1)]);
    let down = wait_event(&mut peer.events, "Down", |e| match e {
        Event::Down(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert_eq!(down, DownReason::LocalNotification(Notification::new(1, 1)));
    let _ = peer.commands.send(Command::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_max_prefix_guard_ends_the_session_with_cease_1_and_counts_each_prefix_once() {
    let (l, addr) = listener().await;
    let config = PeerConfig {
        max_prefixes: Some(1000),
        ..our_config(addr)
    };
    let mut peer = start(config);
    let mut fake = Fake::accept(&l, HOLD_SECS).await;
    wait_event(&mut peer.events, "Up", |e| {
        matches!(e, Event::Up(_)).then_some(())
    })
    .await;

    // The same 1000 prefixes three times: replacements, not new prefixes.
    for _ in 0..3 {
        for first in (0..1000).step_by(200) {
            fake.send(&update_v6(first, 200)).await;
        }
    }
    let stats = peer.stats.clone();
    until("3000 announcements counted", || {
        stats.snapshot().prefixes_announced[1] == 3000
    })
    .await;
    let (got, closed) = fake.recv_for(Duration::from_millis(300)).await;
    assert!(!closed && notifications(&got).is_empty(), "{got:?}");

    fake.send(&update_v6(1000, 1)).await;
    let (got, closed) = fake.recv_for(WAIT).await;
    assert!(closed, "the session ends");
    // AFI 2, SAFI 1, limit 1000.
    let cease = Notification::with_data(6, 1, vec![0, 2, 1, 0, 0, 0x03, 0xe8]);
    assert_eq!(notifications(&got), vec![cease.clone()]);
    let down = wait_event(&mut peer.events, "Down", |e| match e {
        Event::Down(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert_eq!(down, DownReason::LocalNotification(cease));
    // The session comes back after the restart delay, and the guard starts from nothing.
    let mut again = Fake::accept(&l, HOLD_SECS).await;
    wait_event(&mut peer.events, "Up again", |e| {
        matches!(e, Event::Up(_)).then_some(())
    })
    .await;
    again.send(&update_v6(5000, 200)).await;
    let (got, closed) = again.recv_for(Duration::from_millis(500)).await;
    assert!(!closed && notifications(&got).is_empty(), "{got:?}");
    let _ = peer.commands.send(Command::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_while_our_routes_churn_is_reset_with_out_of_resources() {
    let (l, addr) = listener().await;
    let limit = 256 * 1024;
    let config = PeerConfig {
        write_queue_limit: limit,
        ..our_config(addr)
    };
    let mut config = config;
    // Long enough that no hold timer ends the session first.
    config.session.local.hold_time = Duration::from_secs(90);
    let mut peer = start(config);
    // The fake completes the handshake, then never reads again.
    let _fake = Fake::accept(&l, 90).await;
    wait_event(&mut peer.events, "Up", |e| {
        matches!(e, Event::Up(_)).then_some(())
    })
    .await;
    let stats = peer.stats.clone();
    let started = Instant::now();
    let mut rounds = 0u32;
    let down = loop {
        assert!(
            started.elapsed() < WAIT,
            "no reset after {rounds} table swaps: {:?}",
            stats.snapshot()
        );
        // Two disjoint tables of 20k routes in turn: each swap withdraws 20k and announces 20k.
        let table = table_v4((rounds % 2) * 20_000, 20_000);
        peer.commands
            .send(Command::SetRoutes(table))
            .await
            .expect("peer task alive");
        rounds += 1;
        let events = drain(&mut peer.events);
        if let Some(Event::Down(reason)) = events.iter().find(|e| matches!(e, Event::Down(_))) {
            break reason.clone();
        }
        let queued = stats.snapshot().write_queue_bytes;
        assert!(
            queued <= limit,
            "{queued} bytes queued over the limit {limit}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        down,
        DownReason::LocalNotification(Notification::out_of_resources())
    );
    assert_eq!(stats.snapshot().write_queue_overflows, 1);
    // The closed connection's writer gives up within its grace and frees the queue.
    until("the queue is freed", || {
        stats.snapshot().write_queue_bytes == 0
    })
    .await;
    println!(
        "reset after {rounds} swaps in {:?}: {:?}",
        started.elapsed(),
        stats.snapshot()
    );
    let _ = peer.commands.send(Command::Stop).await;
}

/// A listener on loopback whose accepted connections send with `ttl` and, with `min_ttl`,
/// drop what arrives below it (a router's GTSM).
fn ttl_listener(ttl: u32, min_ttl: Option<u8>) -> (TcpListener, SocketAddr) {
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.set_ttl_v4(ttl).expect("IP_TTL");
    if let Some(min) = min_ttl {
        set_min_ttl(&s, false, min).expect("IP_MINTTL");
    }
    s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .expect("bind");
    s.listen(16).expect("listen");
    s.set_nonblocking(true).expect("non-blocking");
    let l = TcpListener::from_std(s.into()).expect("tokio listener");
    let addr = l.local_addr().expect("addr");
    (l, addr)
}

/// Whether our driver with `gtsm` gets a connection accepted by `l` within 2 s.
async fn is_accepted(l: &TcpListener, addr: SocketAddr, gtsm: bool) -> bool {
    let peer = start(PeerConfig {
        gtsm,
        ..our_config(addr)
    });
    let accepted = tokio::time::timeout(Duration::from_secs(2), l.accept()).await;
    let _ = peer.commands.send(Command::Stop).await;
    accepted.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtsm_sends_ttl_255_and_accepts_nothing_from_further_away() {
    let (gtsm_router, addr) = ttl_listener(255, Some(255));
    // Without GTSM a directly connected eBGP session sends TTL 1: a GTSM router drops it.
    assert!(!is_accepted(&gtsm_router, addr, false).await);
    let mut peer = start(PeerConfig {
        gtsm: true,
        ..our_config(addr)
    });
    let _fake = Fake::accept(&gtsm_router, HOLD_SECS).await;
    wait_event(&mut peer.events, "Up with GTSM", |e| {
        matches!(e, Event::Up(_)).then_some(())
    })
    .await;
    let _ = peer.commands.send(Command::Stop).await;

    // A peer whose packets arrive with TTL 254 (one hop further, or spoofed from afar).
    let (far, addr) = ttl_listener(254, None);
    assert!(
        is_accepted(&far, addr, false).await,
        "reachable without GTSM"
    );
    assert!(
        !is_accepted(&far, addr, true).await,
        "GTSM drops its SYN-ACK: the handshake never completes"
    );
}

#[test]
fn with_hold_time_0_a_peer_that_goes_silent_is_noticed_within_the_dead_peer_timeout() {
    if !can_run(&["ip"]) {
        return;
    }
    let mut lab = Netlab::new("bgp-dead").expect("lab");
    lab.add_namespace("a").expect("ns a");
    lab.add_namespace("b").expect("ns b");
    lab.link(
        ("a", "eth0", &["192.0.2.1/24"]),
        ("b", "eth0", &["192.0.2.2/24"]),
    )
    .expect("link");
    let bound = Duration::from_secs(6);
    let (a, b) = (
        NsRuntime::start(&lab.ns("a")).expect("runtime a"),
        NsRuntime::start(&lab.ns("b")).expect("runtime b"),
    );
    let b_addr = SocketAddr::from(([192, 0, 2, 2], 179));
    // B: our own driver, passive, behind a listener; both sides propose hold time 0.
    let zero_hold = |addr: SocketAddr, local: Ipv4Addr| {
        let mut c = our_config(addr);
        c.session.local.hold_time = Duration::ZERO;
        c.session.local.router_id = local;
        c.dead_peer_timeout = bound;
        c
    };
    let b_peer = {
        let _guard = b.handle().enter();
        let mut config = zero_hold(
            SocketAddr::from(([192, 0, 2, 1], 179)),
            Ipv4Addr::new(192, 0, 2, 2),
        );
        config.is_passive = true;
        config.session.local.local_as = bgp_fake::PEER_AS;
        config.session.local.peer_as = ferrolb_proto::bgp::open::PeerAs::Fixed(bgp_fake::OUR_AS);
        start(config)
    };
    let b_cmd = b_peer.commands.clone();
    b.block_on(async move {
        let l = TcpListener::bind(b_addr).await.expect("bind in b");
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                if b_cmd.send(Command::Incoming(s)).await.is_err() {
                    return;
                }
            }
        });
    });
    let mut a_peer = {
        let _guard = a.handle().enter();
        let mut config = zero_hold(b_addr, Ipv4Addr::new(192, 0, 2, 1));
        config.local_addr = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        start(config)
    };
    let (negotiated, mut a_peer) = a.block_on(async move {
        let n = wait_event(&mut a_peer.events, "Up", |e| match e {
            Event::Up(n) => Some(*n),
            _ => None,
        })
        .await;
        (n, a_peer)
    });
    assert_eq!(negotiated.hold_time, Duration::ZERO);

    // B vanishes without a word: its link goes down, nothing reaches A any more.
    lab.set_link("b", "eth0", false).expect("link down");
    let gone_at = Instant::now();
    let down = a.block_on(async move {
        wait_event(&mut a_peer.events, "Down", |e| match e {
            Event::Down(r) => Some(r.clone()),
            _ => None,
        })
        .await
    });
    let noticed = gone_at.elapsed();
    println!("hold time 0: the silent peer was noticed after {noticed:?} (bound {bound:?})");
    assert_eq!(down, DownReason::ConnectionLost);
    assert!(
        noticed <= bound + Duration::from_secs(2),
        "noticed after {noticed:?}, bound {bound:?}"
    );
    drop(b_peer);
}
