//! Bursts larger than one receive batch (64 frames) against the responder's reader
//! thread, in the namespace lab of `l2_lab` (needs root). Checks counts, not timing:
//! performance is shown by `benches/l2_vs_kernel`.

mod l2_lab;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ferrolb_proto::l2::counters::{Family, QUEUE_OVERFLOW};
use ferrolb_proto::l2::ethernet::{ETHERTYPE_IPV6, EthernetHeader};
use ferrolb_proto::l2::ndp::NeighborSolicitation;
use ferrolb_proto::l2::socket::PacketSocket;
use ferrolb_proto::l2::{MacAddr, addr, arp};

use ferrolb_netlab::netns;
use l2_lab::{Lab, VIP4, VIP6, can_run, counters_of, fast};

/// Questions per family: several batches' worth, well inside the receive buffer.
const BURST: usize = 1000;

fn arp_request(mac: MacAddr) -> Vec<u8> {
    let mut req = arp::gratuitous_request(VIP4, mac);
    req.sender_ip = Ipv4Addr::new(192, 0, 2, 1);
    req.to_bytes()
}

fn solicitation(mac: MacAddr) -> Vec<u8> {
    NeighborSolicitation {
        eth: EthernetHeader {
            dst: addr::solicited_node_mac(VIP6),
            src: mac,
            ethertype: ETHERTYPE_IPV6,
        },
        src: "2001:db8::1".parse().expect("literal"),
        dst: addr::solicited_node(VIP6),
        target: VIP6,
        source_lla: Some(mac),
    }
    .to_bytes()
}

#[test]
fn a_burst_of_questions_larger_than_a_batch_is_answered_in_full_for_both_families() {
    if !can_run(&["ip"]) {
        return;
    }
    let lab = Lab::new();
    let cli = lab.ns("cli");
    let index = lab.net.ifindex("cli", "cli0").expect("client index");
    let mac: MacAddr = lab
        .net
        .mac("cli", "cli0")
        .expect("client MAC")
        .parse()
        .expect("a MAC address");
    lab.with_responder(fast(), move |r| async move {
        for ip in [IpAddr::V4(VIP4), IpAddr::V6(VIP6)] {
            r.announce(ip, ["spk0".to_owned()]).await.expect("announce");
        }
        let before = r.counters().await.expect("counters");
        // Back to back, no pacing; a full send buffer refuses a frame rather than
        // waiting, so count what actually left.
        let client = netns::spawn_in(&cli, move || {
            [
                (Family::V4, arp_request(mac)),
                (Family::V6, solicitation(mac)),
            ]
            .map(|(family, frame)| {
                let socket = PacketSocket::open(index, family).expect("client socket");
                (0..BURST).filter(|_| socket.send(&frame).is_ok()).count() as u64
            })
        });
        let sent = tokio::task::spawn_blocking(move || {
            client.join().expect("client thread").expect("setns")
        })
        .await
        .expect("join task");
        assert!(
            sent.iter().all(|n| *n > 64),
            "too few questions left: {sent:?}"
        );

        // Wait (bounded) for the replies to be counted; the check is on counts only.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = r.counters().await.expect("counters");
            let replies = [Family::V4, Family::V6].map(|f| {
                counters_of(&now, "spk0", f).replies_sent
                    - counters_of(&before, "spk0", f).replies_sent
            });
            if replies == sent || Instant::now() > deadline {
                for f in [Family::V4, Family::V6] {
                    let c = counters_of(&now, "spk0", f);
                    assert_eq!(c.dropped.get(QUEUE_OVERFLOW), None, "{f}: {c:?}");
                    assert_eq!(c.send_errors, 0, "{f}: {c:?}");
                }
                assert_eq!(replies, sent, "replies (ARP, NDP) for the questions sent");
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}
