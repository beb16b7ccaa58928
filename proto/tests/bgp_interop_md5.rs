//! TCP MD5 (RFC 2385) against FRR in network namespaces (needs root and FRR; see `bgp_lab`).
//!
//! One FRR, four sessions from node 1, each from its own source address and each with FRR's
//! password "right-pw":
//! - .1: we dial with the right key → Established;
//! - .12: we dial with a wrong key → never Established;
//! - .13: FRR dials our listener, which has the right key → Established;
//! - .14: FRR dials our listener, which has a wrong key → never Established.
//!
//! "Never" is made definite with the kernel's own counter of rejected signatures
//! (`TcpExt TCPMD5Failure`) on both sides, then a few more seconds of watching.
//!
//! BIRD and GoBGP (passive) get the two dialling cases.

mod bgp_lab;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bgp_lab::{
    Bird, DEADLINE, Frr, Gobgp, Lab, Neighbor, Peer, ROUTER_AS, ROUTER4, Router, can_run, dial,
    neighbor, poll, session,
};
use ferrolb_proto::bgp::driver::PeerConfig;
use ferrolb_proto::bgp::md5::Md5Key;
use ferrolb_proto::bgp::open::Families;

const PASSWORD: &str = "right-pw";
const OUR_AS: u32 = 64512;

fn key(password: &str) -> Option<Md5Key> {
    Some(Md5Key::new(password.as_bytes()).expect("valid key"))
}

#[test]
fn frr_session_comes_up_with_the_right_md5_password_and_never_with_a_wrong_one() {
    if !can_run(&["ip", Frr::ZEBRA, Frr::BGPD]) {
        return;
    }
    let mut lab = Lab::new(1);
    let addr = |last: u8| IpAddr::V4(Ipv4Addr::new(192, 0, 2, last));
    for cidr in ["192.0.2.12/24", "192.0.2.13/24", "192.0.2.14/24"] {
        lab.add_addr(1, cidr);
    }
    let router = IpAddr::V4(ROUTER4);
    let node = lab.node(1);

    // Our two listening sessions are ready before FRR starts dialling them.
    let mut listening: Vec<(IpAddr, Peer)> = Vec::new();
    for (last, password) in [(13, PASSWORD), (14, "wrong-pw")] {
        let local = addr(last);
        let config = PeerConfig {
            is_passive: true,
            ..dial(
                session(OUR_AS, ROUTER_AS, Ipv4Addr::new(192, 0, 2, last)),
                router,
                local,
            )
        };
        let peer = node.peer(config);
        node.listen(
            SocketAddr::new(local, 179),
            router,
            key(password),
            peer.cmd.clone(),
        );
        listening.push((local, peer));
    }
    let neighbors: Vec<Neighbor> = [1, 12, 13, 14]
        .into_iter()
        .map(|last| Neighbor {
            password: Some(PASSWORD.into()),
            is_passive: last <= 12,
            ..neighbor(addr(last), OUR_AS, Families::DUAL)
        })
        .collect();
    let frr = lab.frr(&neighbors);
    let node = lab.node(1);
    let mut dialling: Vec<(IpAddr, Peer)> = [(1, PASSWORD), (12, "wrong-pw")]
        .into_iter()
        .map(|(last, password)| {
            let local = addr(last);
            let config = PeerConfig {
                md5_key: key(password),
                ..dial(
                    session(OUR_AS, ROUTER_AS, Ipv4Addr::new(192, 0, 2, last)),
                    router,
                    local,
                )
            };
            (local, node.peer(config))
        })
        .collect();

    let [(right_dial, dial_ok), (wrong_dial, dial_bad)] = &mut dialling[..] else {
        unreachable!()
    };
    let [(right_listen, listen_ok), (wrong_listen, listen_bad)] = &mut listening[..] else {
        unreachable!()
    };
    dial_ok.wait_up();
    frr.wait_established(*right_dial)
        .expect("router session Established");
    listen_ok.wait_up();
    frr.wait_established(*right_listen)
        .expect("router session Established");

    // The kernels saw (and dropped) wrongly signed segments in both directions.
    let node_ns = lab.ns("n1");
    let router_ns = lab.router_ns();
    poll(
        "TCPMD5Failure counted on both sides",
        DEADLINE,
        Duration::from_millis(200),
        || {
            let (r, n) = (
                lab.tcp_ext(&router_ns, "TCPMD5Failure"),
                lab.tcp_ext(&node_ns, "TCPMD5Failure"),
            );
            if r > 0 && n > 0 {
                Ok(())
            } else {
                Err(format!("router {r}, node {n}"))
            }
        },
    );
    let watch_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < watch_until {
        for (who, peer) in [
            (*wrong_dial, &mut *dial_bad),
            (*wrong_listen, &mut *listen_bad),
        ] {
            assert!(
                frr.session_state(who).is_err(),
                "FRR established {who} with a wrong password"
            );
            if let Ok(ev) = peer.events.try_recv() {
                panic!("{who} with a wrong password reported {ev:?}");
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(!dial_ok.went_down() && !listen_ok.went_down());
}

/// Two dialling sessions to a passive router with password [`PASSWORD`]: from .1 with it,
/// from .12 with another. Only the first comes up; the router's kernel counts the other's
/// rejected segments.
fn only_the_right_password_dials_in(lab: &Lab, router: &dyn Router) {
    let addr = |last: u8| IpAddr::V4(Ipv4Addr::new(192, 0, 2, last));
    let node = lab.node(1);
    let mut peers: Vec<Peer> = [(1, PASSWORD), (12, "wrong-pw")]
        .into_iter()
        .map(|(last, password)| {
            let config = PeerConfig {
                md5_key: key(password),
                ..dial(
                    session(OUR_AS, ROUTER_AS, Ipv4Addr::new(192, 0, 2, last)),
                    IpAddr::V4(ROUTER4),
                    addr(last),
                )
            };
            node.peer(config)
        })
        .collect();
    let [ok, bad] = &mut peers[..] else {
        unreachable!()
    };
    ok.wait_up();
    router
        .wait_established(addr(1))
        .expect("router session Established");
    let router_ns = lab.router_ns();
    poll(
        "TCPMD5Failure counted by the router's kernel",
        DEADLINE,
        Duration::from_millis(200),
        || match lab.tcp_ext(&router_ns, "TCPMD5Failure") {
            0 => Err("0".into()),
            _ => Ok(()),
        },
    );
    let watch_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < watch_until {
        assert!(
            router.session_state(addr(12)).is_err(),
            "{} established a session with a wrong password",
            router.name()
        );
        if let Ok(ev) = bad.events.try_recv() {
            panic!("the session with a wrong password reported {ev:?}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(!ok.went_down());
}

fn password_neighbors() -> Vec<Neighbor> {
    [1, 12]
        .into_iter()
        .map(|last| Neighbor {
            password: Some(PASSWORD.into()),
            ..neighbor(
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)),
                OUR_AS,
                Families::DUAL,
            )
        })
        .collect()
}

#[test]
fn bird_takes_only_the_session_with_the_right_md5_password() {
    if !can_run(&["ip", Bird::BIRD]) {
        return;
    }
    let mut lab = Lab::new(1);
    lab.add_addr(1, "192.0.2.12/24");
    let bird = lab.bird(&password_neighbors());
    only_the_right_password_dials_in(&lab, &bird);
}

#[test]
fn gobgp_takes_only_the_session_with_the_right_md5_password() {
    if !can_run(&["ip", Gobgp::GOBGPD, "gobgp"]) {
        return;
    }
    let mut lab = Lab::new(1);
    lab.add_addr(1, "192.0.2.12/24");
    let gobgp = lab.gobgp(&password_neighbors());
    only_the_right_password_dials_in(&lab, &gobgp);
}
