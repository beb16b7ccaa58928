//! Gossip membership between real speakers' tasks on loopback UDP.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrolb_speaker::members::{
    Budget, Counters, Heart, Key, Keys, Lapse, Members, Setup, SpeakerId,
};
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

async fn start(node: &str, key: &Key) -> Members {
    start_with_keys(node, Keys::from(key.clone())).await
}

async fn start_with_keys(node: &str, keys: Keys) -> Members {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    let me = SpeakerId {
        node: node.to_owned(),
        addr,
        generation: 1,
    };
    Members::start(me, socket, keys, &Budget::Lan).expect("start")
}

/// Waits (up to a generous deadline: this is correctness, not speed) until `member` sees `want`.
async fn converge(member: &Members, want: &BTreeSet<String>) {
    let mut live = member.live();
    let reached = timeout(Duration::from_secs(10), live.wait_for(|now| now == want)).await;
    assert!(
        reached.is_ok(),
        "saw {:?}, wanted {want:?}",
        *member.live().borrow()
    );
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|n| (*n).to_owned()).collect()
}

async fn cluster(key: &Key, nodes: &[&str]) -> Vec<Members> {
    let mut members = Vec::new();
    for node in nodes {
        members.push(start(node, key).await);
    }
    let seed = members[0].local_addr();
    for member in &members[1..] {
        member.join(vec![seed]).await;
    }
    for member in &members {
        converge(member, &names(nodes)).await;
    }
    members
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speakers_learn_each_other_through_one_seed() {
    let key = Key::new(*b"memberlist secret key 0001");
    let members = cluster(&key, &["node-a", "node-b", "node-c", "node-d"]).await;
    assert!(members.iter().all(|m| {
        m.counters()
            .dropped_auth
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_speaker_is_declared_dead_by_everyone() {
    let key = Key::new(*b"memberlist secret key 0002");
    let mut members = cluster(&key, &["node-a", "node-b", "node-c", "node-d", "node-e"]).await;
    members.remove(2).crash();
    for member in &members {
        converge(member, &names(&["node-a", "node-b", "node-d", "node-e"])).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_speaker_is_gone_from_every_view() {
    let key = Key::new(*b"memberlist secret key 0003");
    let mut members = cluster(&key, &["node-a", "node-b", "node-c"]).await;
    let leaving = members.remove(1);
    let lapse = leaving.lapse();
    leaving.leave().await;
    for member in &members {
        converge(member, &names(&["node-a", "node-c"])).await;
    }
    assert_eq!(
        *lapse.borrow(),
        None,
        "leaving on purpose is no lapse (the daemon would rejoin at once)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_with_another_key_cannot_join_and_its_packets_are_counted() {
    let key = Key::new(*b"the right key");
    let members = cluster(&key, &["node-a", "node-b"]).await;
    let intruder = start("intruder", &Key::new(*b"the wrong key")).await;
    intruder.join(vec![members[0].local_addr()]).await;
    let garbage = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    garbage
        .send_to(b"\x00\x01 not a gossip packet", members[0].local_addr())
        .await
        .expect("send");
    let counted = timeout(Duration::from_secs(5), async {
        while members[0]
            .counters()
            .dropped_auth
            .load(std::sync::atomic::Ordering::Relaxed)
            < 2
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        counted.is_ok(),
        "the intruder's announce and the garbage must be counted as dropped"
    );
    assert_eq!(*members[0].live().borrow(), names(&["node-a", "node-b"]));
    assert_eq!(*intruder.live().borrow(), names(&["intruder"]));
}

/// On paused time the clock only moves when every task waits, so the time measured here is the
/// gossip's own timers (probe period, probe RTT, suspicion) and not the machine's load: the LAN
/// budget's promise, checked without flakiness.
#[tokio::test(start_paused = true)]
async fn on_paused_time_a_crash_is_declared_dead_within_the_lan_budget() {
    let key = Key::new(*b"memberlist secret key 0004");
    let mut members = cluster(&key, &["node-a", "node-b", "node-c", "node-d"]).await;
    members.remove(1).crash();
    let crashed = Instant::now();
    for member in &members {
        converge(member, &names(&["node-a", "node-c", "node-d"])).await;
    }
    let took = crashed.elapsed();
    assert!(
        took <= Duration::from_millis(800),
        "declared dead everywhere after {took:?} of gossip time"
    );
}

/// A leave is announced, not detected: the others drop the speaker without waiting for a
/// probe to fail.
#[tokio::test(start_paused = true)]
async fn on_paused_time_a_leave_is_seen_before_any_probe_could_fail() {
    let key = Key::new(*b"memberlist secret key 0005");
    let mut members = cluster(&key, &["node-a", "node-b", "node-c"]).await;
    let left = Instant::now();
    members.remove(2).leave().await;
    for member in &members {
        converge(member, &names(&["node-a", "node-b"])).await;
    }
    let took = left.elapsed();
    assert!(
        took < Duration::from_millis(30),
        "gone after {took:?}, within the probe RTT"
    );
}

/// The keys of each step of a rotation from key A to key B (see `Keys`): before, B accepted, B
/// primary with A accepted, after.
fn rotation_steps() -> [Keys; 4] {
    let a = || Key::new(*b"the key before rotation");
    let b = || Key::new(*b"the key after rotation!");
    [
        Keys::new(a(), vec![]),
        Keys::new(a(), vec![b()]),
        Keys::new(b(), vec![a()]),
        Keys::new(b(), vec![]),
    ]
}

/// Speakers with `keys`, joined through the first; waits until each sees all of them.
async fn mixed_cluster(keys: &[Keys]) -> Vec<Members> {
    let mut members = Vec::new();
    for (i, keys) in keys.iter().enumerate() {
        members.push(start_with_keys(&format!("node-{i}"), keys.clone()).await);
    }
    let seed = members[0].local_addr();
    for member in &members[1..] {
        member.join(vec![seed]).await;
    }
    members
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speakers_one_rotation_step_apart_form_one_membership() {
    let steps = rotation_steps();
    for pair in steps.windows(2) {
        // Two speakers at one step, one at the next, as in the middle of a rolling restart.
        let members = mixed_cluster(&[pair[0].clone(), pair[1].clone(), pair[0].clone()]).await;
        for member in &members {
            converge(member, &names(&["node-0", "node-1", "node-2"])).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipping_a_rotation_step_splits_the_membership() {
    let steps = rotation_steps();
    let members = mixed_cluster(&[steps[0].clone(), steps[2].clone()]).await;
    let refused = timeout(Duration::from_secs(5), async {
        while members[0].counters().dropped("BadTag") == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        refused.is_ok(),
        "node-0 (key A only) refuses node-1's datagrams (sealed with B)"
    );
    assert_eq!(*members[0].live().borrow(), names(&["node-0"]));
}

/// Forwards every datagram sent to its address on to `to`, keeping a copy of each: a wire an
/// attacker can read.
struct Tap {
    addr: SocketAddr,
    captured: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Tap {
    async fn start(to: SocketAddr) -> Tap {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("addr");
        let captured = Arc::new(Mutex::new(Vec::new()));
        let copies = captured.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((len, _)) = socket.recv_from(&mut buf).await {
                copies.lock().expect("lock").push(buf[..len].to_vec());
                let _ = socket.send_to(&buf[..len], to).await;
            }
        });
        Tap { addr, captured }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_datagram_sent_again_is_refused() {
    let key = Key::new(*b"memberlist secret key 0006");
    let a = start("node-a", &key).await;
    // node-b is known to the others at the tap's address: everything sent to it is captured.
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let b_addr = socket.local_addr().expect("addr");
    let tap = Tap::start(b_addr).await;
    let me = SpeakerId {
        node: "node-b".into(),
        addr: tap.addr,
        generation: 1,
    };
    let b = Members::start(me, socket, key.clone(), &Budget::Lan).expect("start");
    b.join(vec![a.local_addr()]).await;
    converge(&a, &names(&["node-a", "node-b"])).await;
    converge(&b, &names(&["node-a", "node-b"])).await;
    let captured = tap.captured.lock().expect("lock").clone();
    assert!(captured.len() >= 2, "the tap saw node-a's datagrams");
    let dropped_before = b.counters().dropped_auth.load(Ordering::Relaxed);
    assert_eq!(dropped_before, 0, "nothing dropped between honest speakers");
    let attacker = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let replayed = &captured[captured.len() - 2..];
    for datagram in replayed {
        attacker.send_to(datagram, b_addr).await.expect("replay");
    }
    let counted = timeout(Duration::from_secs(5), async {
        while b.counters().dropped_auth.load(Ordering::Relaxed) < replayed.len() as u64 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        counted.is_ok(),
        "each replayed datagram is refused: dropped {}",
        b.counters().dropped_auth.load(Ordering::Relaxed)
    );
    assert_eq!(b.counters().dropped("Duplicate"), replayed.len() as u64);
}

/// A heart that counts its beats.
fn counting_heart(timeout: Duration) -> (Heart, Arc<AtomicU64>) {
    let beats = Arc::new(AtomicU64::new(0));
    let counter = beats.clone();
    let heart = Heart {
        timeout,
        beat: Arc::new(move || {
            counter.fetch_add(1, Ordering::Relaxed);
        }),
    };
    (heart, beats)
}

#[tokio::test(start_paused = true)]
async fn on_paused_time_a_membership_beats_four_times_per_heartbeat_timeout() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let me = SpeakerId {
        node: "node-a".into(),
        addr: socket.local_addr().expect("addr"),
        generation: 1,
    };
    let (heart, beats) = counting_heart(Duration::from_millis(100));
    let setup = Setup {
        keys: Keys::from(Key::new(*b"k")),
        budget: Budget::Lan,
        heart: Some(heart),
        counters: Arc::new(Counters::default()),
    };
    let members = Members::start_with(me, socket, setup).expect("start");
    tokio::time::sleep(Duration::from_millis(1_010)).await;
    let counted = beats.load(Ordering::Relaxed);
    assert!(
        (40..=42).contains(&counted),
        "{counted} beats in 1 s at one per 25 ms"
    );
    assert_eq!(*members.lapse().borrow(), None);
}

/// Forwards datagrams to `to` unless cut.
struct Cable {
    addr: SocketAddr,
    is_cut: Arc<AtomicBool>,
}

impl Cable {
    async fn start(to: SocketAddr) -> Cable {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("addr");
        let is_cut = Arc::new(AtomicBool::new(false));
        let cut = is_cut.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((len, _)) = socket.recv_from(&mut buf).await {
                if !cut.load(Ordering::Relaxed) {
                    let _ = socket.send_to(&buf[..len], to).await;
                }
            }
        });
        Cable { addr, is_cut }
    }
}

/// node-a and node-c, and node-b behind a cable the test can cut (its inbound datagrams);
/// node-b beats `heart`. Returns them once all see each other.
async fn cluster_with_cable(key: &Key, heart: Option<Heart>) -> (Vec<Members>, Members, Cable) {
    let mut others = Vec::new();
    for node in ["node-a", "node-c"] {
        others.push(start(node, key).await);
    }
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let cable = Cable::start(socket.local_addr().expect("addr")).await;
    let me = SpeakerId {
        node: "node-b".into(),
        addr: cable.addr,
        generation: 1,
    };
    let setup = Setup {
        keys: Keys::from(key.clone()),
        budget: Budget::Lan,
        heart,
        counters: Arc::new(Counters::default()),
    };
    let b = Members::start_with(me, socket, setup).expect("start");
    others[1].join(vec![others[0].local_addr()]).await;
    b.join(vec![others[0].local_addr()]).await;
    let all = names(&["node-a", "node-b", "node-c"]);
    for member in others.iter().chain([&b]) {
        converge(member, &all).await;
    }
    (others, b, cable)
}

/// On paused time (the gossip's own timers, not the machine's load): the responder of a
/// speaker cut off from the others falls silent before any of them declares it dead, so no
/// other node can take an IP over while it still answers.
#[tokio::test(start_paused = true)]
async fn on_paused_time_a_cut_off_speaker_is_silent_before_the_others_declare_it_dead() {
    let key = Key::new(*b"memberlist secret key 0007");
    let timeout = Duration::from_millis(100);
    let last_beat = Arc::new(Mutex::new(None::<Instant>));
    let beaten = last_beat.clone();
    let heart = Heart {
        timeout,
        beat: Arc::new(move || *beaten.lock().expect("lock") = Some(Instant::now())),
    };
    let (others, b, cable) = cluster_with_cable(&key, Some(heart)).await;
    let cut = Instant::now();
    cable.is_cut.store(true, Ordering::Relaxed);
    let mut views = others[0].live();
    let mut other_views = others[1].live();
    tokio::select! {
        _ = views.wait_for(|l| !l.contains("node-b")) => {}
        _ = other_views.wait_for(|l| !l.contains("node-b")) => {}
    }
    let declared_dead = Instant::now();
    let silent = last_beat.lock().expect("lock").expect("node-b beat") + timeout;
    assert!(
        silent < declared_dead,
        "node-b answered until {:?} after the cut, but was declared dead after {:?}",
        silent - cut,
        declared_dead - cut
    );
    assert_eq!(*b.lapse().borrow(), Some(Lapse::Deaf));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_the_others_declared_dead_lapses_when_it_hears_so() {
    let key = Key::new(*b"memberlist secret key 0008");
    // No heart: only the news of its death can lapse node-b.
    let (others, b, cable) = cluster_with_cable(&key, None).await;
    cable.is_cut.store(true, Ordering::Relaxed);
    for member in &others {
        converge(member, &names(&["node-a", "node-c"])).await;
    }
    assert_eq!(*b.lapse().borrow(), None);
    cable.is_cut.store(false, Ordering::Relaxed);
    let mut lapse = b.lapse();
    let lapsed = timeout(Duration::from_secs(10), lapse.wait_for(Option::is_some)).await;
    assert!(
        matches!(lapsed, Ok(Ok(seen)) if *seen == Some(Lapse::DeclaredDead)),
        "node-b learns that it was declared dead"
    );
}

/// A lapsed membership is replaced by a new one on the same address: stopping the old one must
/// close its socket first (a crash only asks the runtime to drop it, some time later).
#[tokio::test]
async fn a_stopped_membership_frees_its_address_for_the_next_one() {
    let key = Key::new(*b"memberlist secret key 0009");
    let first = start("node-a", &key).await;
    let addr = first.local_addr();
    first.stop().await;
    let again = UdpSocket::bind(addr).await;
    assert!(again.is_ok(), "rebinding {addr}: {again:?}");
}
