//! FerroLB's BFD against FRR 8.4 bfdd and BIRD 2.0.12 in network namespaces: single hop and
//! multihop (through a forwarding namespace), IPv4 and IPv6, sessions Up at both ends; a profile
//! change renegotiates the intervals while the router's session never leaves Up and shows the
//! new values; passive mode waits for the router; an IPv6 link-local session runs on its
//! interface.
//!
//! BIRD sends multihop packets with the system's default TTL (64), not 255, so its multihop
//! sessions need a profile with a `minimumTtl` under 63 (as they would with MetalLB and FRR).

mod bfd_lab;

use std::time::{Duration, Instant};

use bfd_lab::routers::{Bird, Frr, FrrPeer};
use bfd_lab::{DEADLINE, Lab, PATHS, can_run, key, poll};
use ferrolb_proto::bfd::{DropReason, Profile, SessionHandle, SessionKey, State};

const MS: Duration = Duration::from_millis(1);

/// Waits until our side of `s` is Up with no poll running.
fn wait_our_up(name: &str, s: &SessionHandle) {
    poll(
        &format!("{name}: FerroLB Up"),
        DEADLINE,
        Duration::from_millis(50),
        || {
            let st = *s.status.borrow();
            if st.state == State::Up && !st.is_polling {
                Ok(())
            } else {
                Err(format!("{st:?}"))
            }
        },
    );
}

fn start_sessions(lab: &Lab, profile: Profile) -> Vec<SessionHandle> {
    PATHS
        .iter()
        .map(|(_, ours, theirs, mh)| lab.node().add(key(ours, theirs, *mh), profile))
        .collect()
}

/// Looks at the router's view of every path (`check(i)` asserts it is still Up and says whether
/// it shows the new timers) every 20 ms, for at least 2 s and until every path shows them.
fn while_renegotiating(router: &str, mut check: impl FnMut(usize) -> bool) {
    let started = Instant::now();
    let mut seen = [false; 4];
    while !(seen.iter().all(|s| *s) && started.elapsed() >= Duration::from_secs(2)) {
        assert!(
            started.elapsed() < DEADLINE,
            "{router} never showed the new timers: {seen:?}"
        );
        for (i, seen) in seen.iter_mut().enumerate() {
            *seen |= check(i);
        }
        std::thread::sleep(20 * MS);
    }
}

/// A profile of MetalLB's defaults with other timers.
fn timers(receive_ms: u32, transmit_ms: u32, multiplier: u8) -> Profile {
    Profile {
        receive_interval: receive_ms * MS,
        transmit_interval: transmit_ms * MS,
        detect_multiplier: multiplier,
        ..Profile::default()
    }
}

#[test]
fn frr_sessions_come_up_on_every_path_and_renegotiate_without_a_flap() {
    if !can_run(&[Frr::ZEBRA, Frr::BFDD]) {
        return;
    }
    let mut lab = Lab::new();
    let mut peers: Vec<FrrPeer> = PATHS
        .iter()
        .map(|(_, ours, theirs, mh)| FrrPeer::on(ours, theirs, *mh))
        .collect();
    let frr = Frr::start(&mut lab, &peers);
    let sessions = start_sessions(&lab, Profile::default());
    for ((name, ours, _, mh), s) in PATHS.iter().zip(&sessions) {
        poll(&format!("{name}: FRR Up"), DEADLINE, 100 * MS, || {
            let st = frr.peer(ours, *mh)?;
            if st.status == "up" && st.remote_id == u64::from(s.local_discr) {
                Ok(())
            } else {
                Err(format!("{st:?}"))
            }
        });
        wait_our_up(name, s);
        let st = *s.status.borrow();
        assert_eq!(st.tx_interval, Some(300 * MS), "{name}");
        assert_eq!(st.detection_time, Some(900 * MS), "{name}");
    }
    let downs: Vec<u64> = PATHS
        .iter()
        .map(|(_, ours, _, mh)| frr.down_events(ours, *mh).expect("counters"))
        .collect();

    // Our profile changes: FRR must show the new values and stay Up throughout.
    let changed = timers(200, 250, 5);
    for s in &sessions {
        lab.node().update(&s.key, changed);
    }
    while_renegotiating("FRR", |i| {
        let (name, ours, _, mh) = PATHS[i];
        let st = frr.peer(ours, mh).expect("FRR answers");
        assert_eq!(
            st.status, "up",
            "{name}: FRR left Up during renegotiation: {st:?}"
        );
        (
            st.remote_receive_ms,
            st.remote_transmit_ms,
            st.remote_multiplier,
        ) == (200, 250, 5)
    });
    for ((name, _, _, _), s) in PATHS.iter().zip(&sessions) {
        wait_our_up(name, s);
        let st = *s.status.borrow();
        assert_eq!(
            st.tx_interval,
            Some(300 * MS),
            "{name}: max(our 250, FRR's 300)"
        );
        assert_eq!(
            st.detection_time,
            Some(900 * MS),
            "{name}: 3 × max(our 200, FRR's 300)"
        );
        assert_eq!(s.counters.snapshot().down_events, 0, "{name}");
    }

    // FRR's profile changes: it polls us, we follow without leaving Up.
    for p in &mut peers {
        p.receive_ms = 100;
        p.transmit_ms = 120;
        p.multiplier = 4;
        frr.set_timers(p).expect("FRR reconfigured");
    }
    for ((name, _, _, _), s) in PATHS.iter().zip(&sessions) {
        poll(
            &format!("{name}: new FRR timers"),
            DEADLINE,
            50 * MS,
            || {
                let st = *s.status.borrow();
                if st.tx_interval == Some(250 * MS) && st.detection_time == Some(800 * MS) {
                    Ok(())
                } else {
                    Err(format!("{st:?}"))
                }
            },
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    for ((name, ours, _, mh), (s, before)) in PATHS.iter().zip(sessions.iter().zip(&downs)) {
        assert_eq!(
            s.counters.snapshot().down_events,
            0,
            "{name}: FerroLB never left Up"
        );
        assert_eq!(s.status.borrow().state, State::Up, "{name}");
        assert_eq!(
            frr.down_events(ours, *mh).expect("counters"),
            *before,
            "{name}: FRR never left Up"
        );
    }
}

const BIRD_BODY: &str = "  interface \"p1\" { interval 300 ms; multiplier 3; };
  multihop { interval 300 ms; multiplier 3; };
  neighbor 192.0.2.1 dev \"p1\" local 192.0.2.254;
  neighbor 2001:db8:1::1 dev \"p1\" local 2001:db8:1::fe;
  neighbor 203.0.113.1 local 198.51.100.1 multihop;
  neighbor 2001:db8:3::1 local 2001:db8:2::1 multihop;
";

#[test]
fn bird_sessions_come_up_on_every_path_and_renegotiate_without_a_flap() {
    if !can_run(&["bird", "birdc"]) {
        return;
    }
    let mut lab = Lab::new();
    let bird = Bird::start(&mut lab, BIRD_BODY);
    let sessions = start_sessions(&lab, Profile::default());
    // BIRD sends multihop packets with the system's default TTL (64), not 255: one hop away
    // they arrive with 63, under MetalLB's (and FRR's) default minimumTtl of 254, and are
    // dropped. A profile with a lower minimumTtl lets them in, without restarting the session.
    poll(
        "BIRD's multihop packets dropped for their TTL",
        DEADLINE,
        50 * MS,
        || {
            let n = lab.node().bfd.drops().get(DropReason::TtlBelowMinimum);
            (n >= 2).then_some(()).ok_or(format!("{n} drops"))
        },
    );
    let low_ttl = Profile {
        minimum_ttl: 60,
        ..Profile::default()
    };
    for ((_, _, _, mh), s) in PATHS.iter().zip(&sessions) {
        if *mh {
            lab.node().update(&s.key, low_ttl);
        }
    }
    let mut since = Vec::new();
    for ((name, ours, _, _), s) in PATHS.iter().zip(&sessions) {
        let st = poll(&format!("{name}: BIRD Up"), DEADLINE, 100 * MS, || {
            let st = bird.session(ours)?;
            if st.state == "Up" && st.interval_ms == 300 && st.timeout_ms == 900 {
                Ok(st)
            } else {
                let drops = lab.node().bfd.drops().snapshot();
                let drops: Vec<_> = drops.iter().filter(|(_, n)| *n > 0).collect();
                Err(format!(
                    "{st:?}; FerroLB {:?}; drops {drops:?}",
                    *s.status.borrow()
                ))
            }
        });
        since.push(st);
        wait_our_up(name, s);
    }

    // BIRD sends at max(its 300, our receive 500) and waits 4 × max(its 300, our transmit 400).
    for s in &sessions {
        let profile = Profile {
            minimum_ttl: 60,
            ..timers(500, 400, 4)
        };
        lab.node().update(&s.key, profile);
    }
    while_renegotiating("BIRD", |i| {
        let (name, ours, _, _) = PATHS[i];
        let st = bird.session(ours).expect("BIRD answers");
        assert_eq!(st.state, "Up", "{name}: BIRD left Up: {st:?}");
        // BIRD prints `since` from its monotonic clock: it moves by a millisecond or so.
        let moved = st
            .since_ms()
            .zip(since[i].since_ms())
            .map(|(a, b)| a.abs_diff(b));
        assert!(
            moved.is_some_and(|ms| ms <= 10),
            "{name}: BIRD's session restarted: since {} then {}",
            since[i].since,
            st.since
        );
        st.interval_ms == 500 && st.timeout_ms == 1600
    });

    // BIRD's interval changes: it polls us, we follow.
    bird.reconfigure(&BIRD_BODY.replace("300 ms", "100 ms"))
        .expect("BIRD reconfigured");
    for ((name, ours, _, _), s) in PATHS.iter().zip(&sessions) {
        poll(
            &format!("{name}: new BIRD timers"),
            DEADLINE,
            50 * MS,
            || {
                let st = *s.status.borrow();
                if st.tx_interval == Some(400 * MS) && st.detection_time == Some(1500 * MS) {
                    Ok(())
                } else {
                    Err(format!("{st:?}"))
                }
            },
        );
        let b = bird.session(ours).expect("BIRD answers");
        assert_eq!(b.state, "Up", "{name}");
        assert_eq!(
            s.counters.snapshot().down_events,
            0,
            "{name}: FerroLB never left Up"
        );
    }
}

#[test]
fn a_passive_session_sends_nothing_until_frr_speaks_then_comes_up() {
    if !can_run(&[Frr::ZEBRA, Frr::BFDD]) {
        return;
    }
    let mut lab = Lab::new();
    let passive = Profile {
        passive_mode: true,
        ..Profile::default()
    };
    let (name, ours, theirs, mh) = PATHS[0];
    let s = lab.node().add(key(ours, theirs, mh), passive);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        s.counters.snapshot().control_out,
        0,
        "silent while FRR is absent"
    );
    let frr = Frr::start(&mut lab, &[FrrPeer::on(ours, theirs, mh)]);
    wait_our_up(name, &s);
    poll("FRR Up", DEADLINE, 100 * MS, || {
        let st = frr.peer(ours, mh)?;
        (st.status == "up").then_some(()).ok_or(format!("{st:?}"))
    });
}

/// The IPv6 link-local address of `dev` in namespace `role` of the lab.
fn link_local(lab: &Lab, role: &str, dev: &str) -> String {
    let out = lab
        .net
        .exec_ok(
            role,
            &[
                "ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "link",
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    out.split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .unwrap_or_else(|| panic!("no link-local address on {dev} in {role}: {out}"))
        .to_owned()
}

#[test]
fn an_ipv6_link_local_session_with_frr_comes_up_on_its_interface() {
    if !can_run(&[Frr::ZEBRA, Frr::BFDD]) {
        return;
    }
    let mut lab = Lab::new();
    let ours = link_local(&lab, "n1", "eth0");
    let theirs = link_local(&lab, "r", "p1");
    let frr = Frr::start(&mut lab, &[FrrPeer::on(&ours, &theirs, false)]);
    let k = SessionKey {
        interface: Some("eth0".to_owned()),
        ..key(&ours, &theirs, false)
    };
    let s = lab.node().add(k, Profile::default());
    wait_our_up("link-local", &s);
    poll("FRR Up", DEADLINE, 100 * MS, || {
        let st = frr.peer(&ours, false)?;
        if st.status == "up" && st.remote_id == u64::from(s.local_discr) {
            Ok(())
        } else {
            Err(format!("{st:?}"))
        }
    });
}
