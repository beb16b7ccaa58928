//! A hostile peer against a process that also answers ARP: 1M prefixes and 10k ROUTE-REFRESH
//! from a peer that never reads what we send. The process's memory must stay bounded, and the
//! other BGP session and the L2 responder of the same process must keep working.
//!
//! ```text
//!   [cli] eth0 192.0.2.1 ──── br0 ──── eth0 [spk]  one multi-thread runtime (2 workers):
//!         arping 192.0.2.50                          L2 responder (sockets only), answers .50
//!                                                    driver H ──lo──▶ hostile fake peer
//!                                                    driver G ──lo──▶ good fake peer
//! ```
//! Needs root and arping (the namespaces and the responder's raw sockets).

mod bgp_fake;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bgp_fake::{
    Fake, HOLD_SECS, V6_PER_UPDATE, WAIT, drain, our_config, reset_peak_rss, route_refresh,
    rss_kib, table_v4, until, update_v6, wait_event,
};
use ferrolb_netlab::command::{must_in, text};
use ferrolb_netlab::{Netlab, can_run, netns};
use ferrolb_proto::bgp::driver::{Command, Event, PeerHandle, start};
use ferrolb_proto::bgp::packet::{Received, encode_keepalive};
use ferrolb_proto::bgp::packing::RouteSet;
use ferrolb_proto::bgp::received::count;
use ferrolb_proto::l2::counters::Family;
use ferrolb_proto::l2::{Responder, ResponderConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const PREFIXES: u64 = 1_000_000;
const REFRESHES: u64 = 10_000;
/// Our table towards the hostile peer: what each re-advertisement would copy.
const TABLE: u32 = 60_000;
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
/// The bound this test states: the process's peak resident set during the attack stays within
/// this much of what it was before.
const RSS_GROWTH_BOUND_KIB: u64 = 16 * 1024;

/// The hostile peer's stream: UPDATEs with 1M IPv6 /128s, ROUTE-REFRESHes spread among them,
/// written in 64 KiB chunks; it never reads.
async fn flood(mut fake: Fake) -> Fake {
    let updates = PREFIXES.div_ceil(V6_PER_UPDATE as u64);
    let mut chunk = Vec::with_capacity(80 * 1024);
    let mut refreshes = 0;
    for i in 0..updates {
        let first = i * V6_PER_UPDATE as u64;
        let n = (PREFIXES - first).min(V6_PER_UPDATE as u64) as usize;
        chunk.extend_from_slice(&update_v6(first, n));
        while refreshes * updates < REFRESHES * (i + 1) {
            chunk.extend_from_slice(&route_refresh());
            refreshes += 1;
        }
        if chunk.len() >= 64 * 1024 || i + 1 == updates {
            fake.stream.write_all(&chunk).await.expect("flood write");
            chunk.clear();
        }
    }
    assert_eq!(refreshes, REFRESHES);
    fake
}

/// The good peer: reads everything, counts the IPv4 prefixes we announce, sends KEEPALIVEs.
fn serve_good_peer(mut fake: Fake, announced: Arc<AtomicU64>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3));
        loop {
            tokio::select! {
                m = fake.recv() => match m {
                    Some(Received::Update(u)) => {
                        announced.fetch_add(count(&u).announced[0], Ordering::Relaxed);
                    }
                    Some(Received::Notification(n)) => panic!("the good session got {n}"),
                    Some(_) => {}
                    None => return,
                },
                _ = tick.tick() => fake.send(&encode_keepalive()).await,
            }
        }
    });
}

/// Asks for the VIP from the client namespace while the attack runs; the answers must come
/// from the speaker's MAC.
async fn arping(cli: String, mac: String) {
    let out = tokio::task::spawn_blocking(move || {
        let vip = VIP.to_string();
        ferrolb_netlab::command::run_in(
            &cli,
            &[
                "arping", "-c", "20", "-W", "0.1", "-w", "20", "-I", "eth0", &vip,
            ],
        )
    })
    .await
    .expect("arping task")
    .expect("arping runs");
    let said = text(&out).to_lowercase();
    assert!(out.status.success(), "arping got no answer: {said}");
    assert!(said.contains(&mac), "answers not from {mac}: {said}");
}

/// Starts driver and fake peer on loopback; returns both once Established.
async fn session(routes: RouteSet, hold_secs: u16) -> (PeerHandle, Fake) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let mut peer = start(our_config(addr));
    peer.commands
        .send(Command::SetRoutes(routes))
        .await
        .expect("peer task alive");
    let fake = Fake::accept(&listener, hold_secs).await;
    wait_event(&mut peer.events, "Up", |e| {
        matches!(e, Event::Up(_)).then_some(())
    })
    .await;
    (peer, fake)
}

async fn attack(cli: String, mac: String) {
    let (responder, _task) = Responder::start(ResponderConfig {
        fast_path: false,
        ..ResponderConfig::default()
    })
    .await
    .expect("responder");
    responder
        .announce(IpAddr::V4(VIP), ["eth0".to_owned()])
        .await
        .expect("announce");
    let (mut hostile, hostile_fake) = session(table_v4(0, TABLE), 90).await;
    let (mut good, good_fake) = session(table_v4(100_000, 1000), HOLD_SECS).await;
    let good_announced = Arc::new(AtomicU64::new(0));
    serve_good_peer(good_fake, Arc::clone(&good_announced));
    until("the good peer has our 1000 routes", || {
        good_announced.load(Ordering::Relaxed) == 1000
    })
    .await;
    // Let the initial table fill the socket buffers, then measure from here.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_before, _) = rss_kib();
    reset_peak_rss();
    let answered_before = replies(&responder).await;

    let began = Instant::now();
    let asking = tokio::spawn(arping(cli, mac));
    let flooding = tokio::spawn(flood(hostile_fake));
    // Meanwhile the good session takes a change of routes.
    good.commands
        .send(Command::SetRoutes(table_v4(100_000, 2000)))
        .await
        .expect("good peer task alive");
    until("the good peer gets the 1000 new routes", || {
        good_announced.load(Ordering::Relaxed) == 2000
    })
    .await;
    let _hostile_fake = flooding.await.expect("flood");
    let stats = Arc::clone(&hostile.stats);
    until("every prefix and refresh read", || {
        let s = stats.snapshot();
        s.prefixes_announced[1] == PREFIXES && s.route_refreshes_received == REFRESHES
    })
    .await;
    let took = began.elapsed();
    asking.await.expect("arping answered");
    let (rss_after, peak) = rss_kib();
    let s = stats.snapshot();
    let answered = replies(&responder).await - answered_before;
    println!(
        "hostile peer: {PREFIXES} prefixes and {REFRESHES} refreshes read in {took:?}; \
         RSS before {rss_before} KiB, peak {peak} KiB (+{} KiB), after {rss_after} KiB; \
         {} refreshes merged, {} bytes queued; {answered} ARP replies during the attack",
        peak.saturating_sub(rss_before),
        s.route_refreshes_merged,
        s.write_queue_bytes,
    );
    assert!(
        peak.saturating_sub(rss_before) < RSS_GROWTH_BOUND_KIB,
        "peak RSS grew by {} KiB (bound {RSS_GROWTH_BOUND_KIB} KiB)",
        peak - rss_before
    );
    // One table of 60k /32s is about 320 kB; without merging 10k refreshes would queue 3 GB.
    assert!(s.write_queue_bytes < 1024 * 1024, "{s:?}");
    assert!(s.route_refreshes_merged >= REFRESHES - 1000, "{s:?}");
    assert_eq!(s.updates_unreadable, 0, "{s:?}");
    assert!(answered >= 20, "{answered} ARP replies");
    for (name, peer) in [("hostile", &mut hostile), ("good", &mut good)] {
        let events = drain(&mut peer.events);
        assert!(
            !events.iter().any(|e| matches!(e, Event::Down(_))),
            "the {name} session went down: {events:?}"
        );
    }
}

async fn replies(responder: &Responder) -> u64 {
    let counters = responder.counters().await.expect("counters");
    counters
        .get(&("eth0".to_owned(), Family::V4))
        .map_or(0, |c| c.replies_sent)
}

#[test]
fn a_peer_flooding_prefixes_and_refreshes_without_reading_costs_bounded_memory_and_stops_nothing() {
    if !can_run(&["ip", "arping"]) {
        return;
    }
    let mut lab = Netlab::new("bgp-hostile").expect("lab");
    lab.add_host("cli", "eth0", &["192.0.2.1/24"])
        .expect("client");
    let spk = lab
        .add_host("spk", "eth0", &["192.0.2.10/24"])
        .expect("speaker");
    let mac = lab.mac("spk", "eth0").expect("speaker MAC");
    must_in(&spk, &["ip", "link", "set", "lo", "up"]).expect("lo up");
    let cli = lab.ns("cli");
    let joined = netns::spawn_in(&spk, move || {
        // Worker threads are made by this thread, inside the namespace.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            tokio::time::timeout(Duration::from_secs(240), attack(cli, mac))
                .await
                .unwrap_or_else(|_| panic!("the attack did not end within 240 s (step {WAIT:?})"));
        });
    })
    .join();
    match joined {
        Ok(result) => result.expect("entered the namespace"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
