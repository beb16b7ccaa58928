//! The BFD task over real UDP sockets, without root: two drivers in this process talk over
//! loopback, each listening on its own free port and sending to the other's. Waits are on
//! conditions with deadlines; intervals are short so that each test takes a few seconds.

use std::net::UdpSocket;
use std::time::Duration;

use ferrolb_proto::bfd::packet::{ControlPacket, Diag, State, encode};
use ferrolb_proto::bfd::{
    Bfd, BfdError, DriverConfig, DropReason, Ports, Profile, ProfileError, SessionHandle,
    SessionKey, SessionSpec, Status, spawn,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(10);

fn free_port(ip: &str) -> u16 {
    UdpSocket::bind((ip, 0))
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

/// Two drivers that send to each other's listening ports.
fn pair(ip: &str) -> ((Bfd, JoinHandle<()>), (Bfd, JoinHandle<()>)) {
    let a = Ports {
        single_hop: free_port(ip),
        multihop: free_port(ip),
    };
    let b = Ports {
        single_hop: free_port(ip),
        multihop: free_port(ip),
    };
    (
        spawn(DriverConfig {
            listen: a,
            peer: b,
            ..DriverConfig::default()
        }),
        spawn(DriverConfig {
            listen: b,
            peer: a,
            ..DriverConfig::default()
        }),
    )
}

fn fast() -> Profile {
    Profile {
        receive_interval: Duration::from_millis(50),
        transmit_interval: Duration::from_millis(50),
        ..Profile::default()
    }
}

fn key(peer: &str, local: &str) -> SessionKey {
    SessionKey {
        peer: peer.parse().expect("address"),
        local: Some(local.parse().expect("address")),
        is_multihop: false,
        interface: None,
    }
}

async fn add(bfd: &Bfd, key: SessionKey, profile: Profile) -> SessionHandle {
    bfd.add(SessionSpec { key, profile })
        .await
        .expect("session added")
}

async fn wait_for(
    rx: &mut watch::Receiver<Status>,
    what: &str,
    f: impl FnMut(&Status) -> bool,
) -> Status {
    let result = tokio::time::timeout(DEADLINE, rx.wait_for(f))
        .await
        .map(|r| r.map(|s| *s));
    match result {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => panic!("{what}: the BFD task ended"),
        Err(_) => panic!("{what}: not within {DEADLINE:?}; last {:?}", *rx.borrow()),
    }
}

async fn wait_up(h: &mut SessionHandle) -> Status {
    wait_for(&mut h.status, "Up", |s| {
        s.state == State::Up && !s.is_polling
    })
    .await
}

#[tokio::test]
async fn two_drivers_bring_ipv4_and_ipv6_sessions_up_and_count_their_packets() {
    for (a_ip, b_ip) in [("127.0.0.1", "127.0.0.2"), ("::1", "::1")] {
        let ((a, _), (b, _)) = pair(a_ip);
        let mut sa = add(&a, key(b_ip, a_ip), fast()).await;
        let mut sb = add(&b, key(a_ip, b_ip), fast()).await;
        let status = wait_up(&mut sa).await;
        wait_up(&mut sb).await;
        assert_eq!(status.remote_discr, sb.local_discr, "{a_ip}");
        assert_eq!(status.tx_interval, Some(Duration::from_millis(50)));
        assert_eq!(status.detection_time, Some(Duration::from_millis(150)));
        let counters = sa.counters.snapshot();
        assert!(
            counters.control_in >= 2 && counters.control_out >= 2,
            "{counters:?}"
        );
        assert_eq!(counters.up_events, 1);
        assert_eq!(counters.down_events, 0);
    }
}

#[tokio::test]
async fn a_profile_change_renegotiates_the_intervals_without_leaving_up() {
    let ((a, _), (b, _)) = pair("127.0.0.1");
    let mut sa = add(&a, key("127.0.0.2", "127.0.0.1"), fast()).await;
    let mut sb = add(&b, key("127.0.0.1", "127.0.0.2"), fast()).await;
    wait_up(&mut sa).await;
    wait_up(&mut sb).await;
    let slower = Profile {
        receive_interval: Duration::from_millis(200),
        transmit_interval: Duration::from_millis(120),
        detect_multiplier: 4,
        ..Profile::default()
    };
    a.update(&sa.key, slower).await.expect("updated");
    let seen = wait_for(&mut sb.status, "B sends at A's new receive interval", |s| {
        s.tx_interval == Some(Duration::from_millis(200))
    })
    .await;
    assert_eq!(
        seen.detection_time,
        Some(Duration::from_millis(480)),
        "4 × 120 ms"
    );
    let a_now = wait_for(&mut sa.status, "A sends at its new 120 ms", |s| {
        s.tx_interval == Some(Duration::from_millis(120)) && !s.is_polling
    })
    .await;
    assert_eq!(
        a_now.detection_time,
        Some(Duration::from_millis(600)),
        "3 × 200 ms"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (name, h) in [("A", &sa), ("B", &sb)] {
        let c = h.counters.snapshot();
        assert_eq!((c.up_events, c.down_events), (1, 0), "{name} never left Up");
        assert_eq!(h.status.borrow().state, State::Up);
    }
}

#[tokio::test]
async fn a_peer_that_stops_answering_is_down_after_its_detection_time() {
    let ((a, _), (b, b_task)) = pair("127.0.0.1");
    let mut sa = add(&a, key("127.0.0.2", "127.0.0.1"), fast()).await;
    let mut sb = add(&b, key("127.0.0.1", "127.0.0.2"), fast()).await;
    wait_up(&mut sa).await;
    wait_up(&mut sb).await;
    let killed = tokio::time::Instant::now();
    b_task.abort();
    let status = wait_for(&mut sa.status, "A Down", |s| s.state == State::Down).await;
    let took = killed.elapsed();
    assert_eq!(status.diag, Diag::ControlDetectionTimeExpired);
    assert!(
        took <= Duration::from_millis(400),
        "150 ms detection, took {took:?}"
    );
    assert_eq!(sa.counters.snapshot().down_events, 1);
}

#[tokio::test]
async fn a_removed_session_says_admin_down_so_the_peer_sees_no_failure() {
    let ((a, _), (b, _)) = pair("127.0.0.1");
    let mut sa = add(&a, key("127.0.0.2", "127.0.0.1"), fast()).await;
    let mut sb = add(&b, key("127.0.0.1", "127.0.0.2"), fast()).await;
    wait_up(&mut sa).await;
    wait_up(&mut sb).await;
    a.remove(&sa.key).await.expect("removed");
    let status = wait_for(&mut sb.status, "B Down", |s| s.state == State::Down).await;
    assert_eq!(status.diag, Diag::NeighborSignaledSessionDown);
    assert_eq!(status.remote_state, State::AdminDown);
    // The key can be used again at once, even while the old session still announces.
    let mut again = add(&a, sa.key.clone(), fast()).await;
    assert_ne!(again.local_discr, sa.local_discr);
    wait_up(&mut again).await;
}

#[tokio::test]
async fn a_stopped_driver_tells_its_peers_admin_down() {
    let ((a, _), (b, b_task)) = pair("127.0.0.1");
    let mut sa = add(&a, key("127.0.0.2", "127.0.0.1"), fast()).await;
    let mut sb = add(&b, key("127.0.0.1", "127.0.0.2"), fast()).await;
    wait_up(&mut sa).await;
    wait_up(&mut sb).await;
    drop(b);
    drop(sb);
    b_task.await.expect("B ends cleanly");
    let status = wait_for(&mut sa.status, "A Down", |s| s.state == State::Down).await;
    assert_eq!(status.diag, Diag::NeighborSignaledSessionDown);
}

#[tokio::test]
async fn requests_the_task_cannot_serve_are_refused_with_a_reason() {
    let ((a, _), _) = pair("127.0.0.1");
    let echo = Profile {
        echo_mode: true,
        ..Profile::default()
    };
    let err = a
        .add(SessionSpec {
            key: key("127.0.0.2", "127.0.0.1"),
            profile: echo,
        })
        .await
        .expect_err("echo refused");
    assert!(
        matches!(
            err,
            BfdError::Profile(ProfileError::EchoModeUnsupported { field: "echoMode" })
        ),
        "{err}"
    );
    assert_eq!(err.reason(), "BFDEchoModeUnsupported");
    let sa = add(&a, key("127.0.0.2", "127.0.0.1"), fast()).await;
    let dup = a
        .add(SessionSpec {
            key: sa.key.clone(),
            profile: fast(),
        })
        .await
        .expect_err("duplicate");
    assert_eq!(dup.reason(), "BFDDuplicateSession");
    let mixed = a
        .add(SessionSpec {
            key: key("::1", "127.0.0.1"),
            profile: fast(),
        })
        .await
        .expect_err("mixed families");
    assert_eq!(mixed.reason(), "BFDBadAddress");
    let unknown = a
        .update(&key("127.0.0.9", "127.0.0.1"), fast())
        .await
        .expect_err("unknown");
    assert_eq!(unknown.reason(), "BFDUnknownSession");
}

#[tokio::test]
async fn bad_datagrams_are_counted_by_reason_and_change_nothing() {
    let port = free_port("127.0.0.1");
    let (a, _task) = spawn(DriverConfig {
        listen: Ports {
            single_hop: port,
            multihop: free_port("127.0.0.1"),
        },
        peer: Ports::RFC,
        ..DriverConfig::default()
    });
    let sa = add(&a, key("127.0.0.2", "127.0.0.1"), fast()).await;
    let sender = UdpSocket::bind("127.0.0.2:0").expect("bind");
    sender.set_ttl(255).expect("ttl");
    let good = ControlPacket {
        diag: Diag::None,
        state: State::Down,
        poll: false,
        is_final: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discr: 42,
        your_discr: 0,
        desired_min_tx_us: 1_000_000,
        required_min_rx_us: 50_000,
        required_min_echo_rx_us: 0,
    };
    let mut bad_version = encode(&good);
    bad_version[0] = 0x40;
    sender
        .send_to(&bad_version, ("127.0.0.1", port))
        .expect("send");
    sender
        .send_to(
            &encode(&ControlPacket {
                your_discr: 7,
                ..good
            }),
            ("127.0.0.1", port),
        )
        .expect("send");
    let stranger = UdpSocket::bind("127.0.0.3:0").expect("bind");
    stranger.set_ttl(255).expect("ttl");
    stranger
        .send_to(&encode(&good), ("127.0.0.1", port))
        .expect("send");
    sender.set_ttl(254).expect("ttl");
    sender
        .send_to(&encode(&good), ("127.0.0.1", port))
        .expect("send");
    let expect = [
        DropReason::BadVersion,
        DropReason::UnknownDiscriminator,
        DropReason::NoSessionForAddress,
        DropReason::TtlNot255,
    ];
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while expect.iter().any(|r| a.drops().get(*r) == 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            a.drops().snapshot()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for r in expect {
        assert_eq!(a.drops().get(r), 1, "{}", r.reason());
    }
    assert_eq!(sa.counters.snapshot().control_in, 0);
    assert_eq!(sa.status.borrow().state, State::Down);
    sender.set_ttl(255).expect("ttl");
    sender
        .send_to(&encode(&good), ("127.0.0.1", port))
        .expect("send");
    let mut status = sa.status.clone();
    wait_for(&mut status, "Init after a good packet", |s| {
        s.state == State::Init
    })
    .await;
}
