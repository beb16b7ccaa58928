//! How fast the gossip declares a crashed speaker dead, and how fast a leaving one is gone, on
//! loopback with the LAN budget. Prints p50 / p90 / max over the trials; run with
//! `cargo bench -p ferrolb-speaker --bench members_detection`.

use std::time::{Duration, Instant};

use ferrolb_speaker::members::{Budget, Key, Members, SpeakerId};
use tokio::net::UdpSocket;

const TRIALS: usize = 20;
const NODES: usize = 5;

/// `NODES` speakers that all see each other, with their node names.
async fn cluster(key: &Key, trial: usize) -> Vec<(String, Members)> {
    let mut members = Vec::new();
    for i in 0..NODES {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("addr");
        let me = SpeakerId {
            node: format!("node-{i}"),
            addr,
            generation: trial as u64,
        };
        members.push((
            me.node.clone(),
            Members::start(me, socket, key.clone(), &Budget::Lan).expect("start"),
        ));
    }
    let seed = members[0].1.local_addr();
    for (_, m) in &members[1..] {
        m.join(vec![seed]).await;
    }
    for (_, m) in &members {
        let mut live = m.live();
        live.wait_for(|l| l.len() == NODES)
            .await
            .expect("converged");
    }
    members
}

/// Time until every remaining member no longer lists `gone`.
async fn gone_everywhere(remaining: &[(String, Members)], gone: &str, since: Instant) -> Duration {
    for (_, m) in remaining {
        let mut live = m.live();
        live.wait_for(|l| !l.contains(gone)).await.expect("watch");
    }
    since.elapsed()
}

fn summary(label: &str, mut gaps: Vec<Duration>) {
    gaps.sort();
    let at = |q: f64| gaps[((gaps.len() - 1) as f64 * q).round() as usize];
    println!(
        "members: {label:<22} p50 {:>6.0} ms  p90 {:>6.0} ms  max {:>6.0} ms  ({} trials, {NODES} nodes)",
        at(0.5).as_secs_f64() * 1e3,
        at(0.9).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3,
        gaps.len()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let key = Key::new(*b"bench key for gossip detection");
    let (mut crash, mut leave) = (Vec::new(), Vec::new());
    for trial in 0..TRIALS {
        let mut members = cluster(&key, trial).await;
        let (name, victim) = members.remove(1 + trial % (NODES - 1));
        let started = Instant::now();
        victim.crash();
        crash.push(gone_everywhere(&members, &name, started).await);

        let (name, leaver) = members.remove(members.len() - 1);
        let started = Instant::now();
        leaver.leave().await;
        leave.push(gone_everywhere(&members, &name, started).await);
        for (_, m) in members {
            m.crash();
        }
    }
    summary("crash → declared dead", crash);
    summary("graceful leave → gone", leave);
}
