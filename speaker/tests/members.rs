//! Gossip membership between real speakers' tasks on loopback UDP.

use std::collections::BTreeSet;
use std::time::Duration;

use ferrolb_speaker::members::{Budget, Key, Members, SpeakerId};
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

async fn start(node: &str, key: &Key) -> Members {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    let me = SpeakerId {
        node: node.to_owned(),
        addr,
        generation: 1,
    };
    Members::start(me, socket, key.clone(), &Budget::Lan).expect("start")
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
    members.remove(1).leave().await;
    for member in &members {
        converge(member, &names(&["node-a", "node-c"])).await;
    }
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
