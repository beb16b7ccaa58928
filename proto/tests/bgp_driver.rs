//! Two instances of our own peer driver over loopback, and a raw client sending garbage.

#[path = "bgp_lab/incoming.rs"]
mod incoming;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::BytesMut;
use ferrolb_proto::bgp::driver::{Command, Event, PeerConfig, spawn};
use ferrolb_proto::bgp::fsm::{Config, DownReason};
use ferrolb_proto::bgp::notification::Notification;
use ferrolb_proto::bgp::open::{Families, LocalSpeaker, PeerAs};
use ferrolb_proto::bgp::packet::{Received, decode, split_frame};
use ferrolb_proto::bgp::packing::{NextHop, RouteAttrs, RouteSet};
use ipnet::{IpNet, Ipv4Net};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

fn speaker(local_as: u32, peer_as: u32, id: [u8; 4]) -> Config {
    let mut c = Config::new(LocalSpeaker {
        local_as,
        peer_as: PeerAs::Fixed(peer_as),
        router_id: Ipv4Addr::from(id),
        hold_time: Duration::from_secs(9),
        families: Families::DUAL,
        graceful_restart: None,
        extended_message: true,
    });
    c.connect_retry_initial = Duration::from_millis(50);
    c
}

/// Accepts every connection on `listener` and hands it to the passive peer task.
fn forward_incoming(listener: TcpListener, to: mpsc::Sender<Command>) {
    tokio::spawn(incoming::hand_over(listener, to));
}

async fn next_event(events: &mut mpsc::Receiver<Event>) -> Event {
    timeout(WAIT, events.recv())
        .await
        .expect("event in time")
        .expect("task alive")
}

/// The next Up or Down, skipping reports of UPDATEs sent.
async fn next_session_event(events: &mut mpsc::Receiver<Event>) -> Event {
    loop {
        match next_event(events).await {
            Event::RoutesSent { .. } => {}
            other => return other,
        }
    }
}

#[tokio::test]
async fn two_of_our_drivers_reach_established_exchange_routes_and_shut_down_cleanly() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let unused: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let (b_cmd, mut b_events, b_task) = spawn(PeerConfig {
        is_passive: true,
        ..PeerConfig::new(speaker(64513, 64512, [192, 0, 2, 2]), unused)
    });
    forward_incoming(listener, b_cmd.clone());
    let (a_cmd, mut a_events, a_task) =
        spawn(PeerConfig::new(speaker(64512, 64513, [192, 0, 2, 1]), addr));

    let Event::Up(a_neg) = next_event(&mut a_events).await else {
        panic!("A not up")
    };
    let Event::Up(b_neg) = next_session_event(&mut b_events).await else {
        panic!("B not up")
    };
    assert_eq!((a_neg.peer_as, b_neg.peer_as), (64513, 64512));
    assert!(a_neg.extended_message && a_neg.four_octet_as);
    assert_eq!(a_neg.hold_time, Duration::from_secs(9));
    // The initial (empty) table is followed by one End-of-RIB per family.
    assert_eq!(
        next_event(&mut a_events).await,
        Event::RoutesSent {
            updates: 2,
            skipped: 0
        }
    );

    let routes: RouteSet = (0..1000u32)
        .map(|i| {
            let net = Ipv4Net::new(Ipv4Addr::from(0x6440_0000 + i), 32).expect("valid prefix");
            let attrs = RouteAttrs {
                next_hop: NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)),
                communities: BTreeSet::new(),
                large_communities: BTreeSet::new(),
                local_pref: None,
            };
            (IpNet::V4(net), attrs)
        })
        .collect();
    a_cmd.send(Command::SetRoutes(routes)).await.expect("send");
    assert_eq!(
        next_event(&mut a_events).await,
        Event::RoutesSent {
            updates: 1,
            skipped: 0
        }
    );

    a_cmd.send(Command::Stop).await.expect("send");
    let down = next_session_event(&mut b_events).await;
    assert_eq!(
        down,
        Event::Down(DownReason::PeerNotification(Notification::new(6, 2)))
    );
    timeout(WAIT, a_task)
        .await
        .expect("A ends")
        .expect("A did not panic");
    b_cmd.send(Command::Stop).await.expect("send");
    timeout(WAIT, b_task)
        .await
        .expect("B ends")
        .expect("B did not panic");
}

/// Reads messages until the peer closes; returns them decoded.
async fn read_all(stream: &mut TcpStream) -> Vec<Received> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    loop {
        let n = timeout(WAIT, stream.read_buf(&mut buf))
            .await
            .expect("read in time")
            .unwrap_or(0);
        while let Ok(Some(frame)) = split_frame(&mut buf, 4096) {
            out.push(decode(&frame, false).expect("our own messages decode"));
        }
        if n == 0 {
            return out;
        }
    }
}

#[tokio::test]
async fn a_bad_header_gets_a_notification_and_closes_only_that_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (cmd, _events, task) = spawn(PeerConfig {
        is_passive: true,
        ..PeerConfig::new(speaker(64513, 64512, [192, 0, 2, 2]), addr)
    });
    forward_incoming(listener, cmd.clone());

    let mut client = TcpStream::connect(addr).await.expect("connect");
    client.write_all(&[0u8; 19]).await.expect("write");
    let got = read_all(&mut client).await;
    assert!(matches!(got.first(), Some(Received::Open(_))), "{got:?}");
    assert_eq!(
        got.get(1),
        Some(&Received::Notification(Notification::new(1, 1)))
    );
    assert_eq!(got.len(), 2);

    // The task lives on and, after its restart delay, serves the next connection.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!task.is_finished());
    let mut client = TcpStream::connect(addr).await.expect("connect");
    let mut header = vec![0xffu8; 16];
    // An UPDATE claiming 65535 bytes before Extended Messages were negotiated.
    header.extend_from_slice(&[0xff, 0xff, 2]);
    client.write_all(&header).await.expect("write");
    let got = read_all(&mut client).await;
    assert!(matches!(got.first(), Some(Received::Open(_))), "{got:?}");
    assert_eq!(
        got.get(1),
        Some(&Received::Notification(Notification::with_data(
            1,
            2,
            vec![0xff, 0xff]
        )))
    );

    cmd.send(Command::Stop).await.expect("send");
    timeout(WAIT, task)
        .await
        .expect("ends")
        .expect("did not panic");
}
