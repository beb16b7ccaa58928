//! The BFD session state machine: a story table for one session, then two sessions joined by a
//! simulated link (`bfd_sim`) for the handshake, timers, Poll/Final and failures, and property
//! tests for what must hold whatever happens.

mod bfd_sim;

use std::time::{Duration, Instant};

use bfd_sim::{End, Link, params};
use ferrolb_proto::bfd::fsm::{Input, Jitter, Output, Params, SLOW_TX, Session, TimerKind};
use ferrolb_proto::bfd::packet::{ControlPacket, Diag, State};
use proptest::prelude::*;

const MS: Duration = Duration::from_millis(1);

/// A packet from the peer (discriminator 7) in `state`, 300 ms × 3.
fn peer(state: State, your_discr: u32) -> ControlPacket {
    ControlPacket {
        diag: Diag::None,
        state,
        poll: false,
        is_final: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discr: 7,
        your_discr,
        desired_min_tx_us: 300_000,
        required_min_rx_us: 300_000,
        required_min_echo_rx_us: 0,
    }
}

fn sends(out: &[Output]) -> Vec<ControlPacket> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(p) => Some(*p),
            _ => None,
        })
        .collect()
}

fn state_change(out: &[Output]) -> Option<(State, State, Diag)> {
    out.iter().find_map(|o| match o {
        Output::StateChanged { from, to, diag } => Some((*from, *to, *diag)),
        _ => None,
    })
}

fn armed(out: &[Output], kind: TimerKind) -> Option<Instant> {
    out.iter().find_map(|o| match o {
        Output::ArmTimer(k, at) if *k == kind => Some(*at),
        _ => None,
    })
}

/// What one step must show.
struct Expect {
    state: State,
    diag: Diag,
    /// Packets sent by the step, as (P, F) bits; `None`: not checked.
    sent: Option<Vec<(bool, bool)>>,
}

#[test]
fn one_session_story() {
    let p = params(300, 300, 3);
    let mut s = Session::new(1, p);
    let t = Instant::now();
    let mut final_for_poll = peer(State::Up, 1);
    final_for_poll.is_final = true;
    let steps: Vec<(&str, Duration, Input, Expect)> = vec![
        (
            "starts Down and sends a Down packet at once",
            Duration::ZERO,
            Input::Start(Jitter(0)),
            Expect {
                state: State::Down,
                diag: Diag::None,
                sent: Some(vec![(false, false)]),
            },
        ),
        (
            "hears the peer Down: goes Init, sends nothing extra",
            100 * MS,
            Input::Received(peer(State::Down, 0)),
            Expect {
                state: State::Init,
                diag: Diag::None,
                sent: Some(vec![]),
            },
        ),
        (
            "hears the peer Up: goes Up and says so at once, polling to leave the slow 1 s rate",
            200 * MS,
            Input::Received(peer(State::Up, 1)),
            Expect {
                state: State::Up,
                diag: Diag::None,
                sent: Some(vec![(true, false)]),
            },
        ),
        (
            "until the Final, periodic packets carry the Poll bit",
            1000 * MS,
            Input::TransmitTimerExpired(Jitter(0)),
            Expect {
                state: State::Up,
                diag: Diag::None,
                sent: Some(vec![(true, false)]),
            },
        ),
        (
            "the peer's Final ends the poll",
            1010 * MS,
            Input::Received(final_for_poll),
            Expect {
                state: State::Up,
                diag: Diag::None,
                sent: Some(vec![]),
            },
        ),
        (
            "the peer polls: we answer at once with Final and without Poll",
            1100 * MS,
            Input::Received(ControlPacket {
                poll: true,
                ..peer(State::Up, 1)
            }),
            Expect {
                state: State::Up,
                diag: Diag::None,
                sent: Some(vec![(false, true)]),
            },
        ),
        (
            "the peer says Down: we go Down with diag 3 and say so at once",
            1200 * MS,
            Input::Received(peer(State::Down, 1)),
            Expect {
                state: State::Down,
                diag: Diag::NeighborSignaledSessionDown,
                sent: Some(vec![(false, false)]),
            },
        ),
        (
            "the peer says Down again: Init",
            1300 * MS,
            Input::Received(peer(State::Down, 1)),
            Expect {
                state: State::Init,
                diag: Diag::None,
                sent: Some(vec![]),
            },
        ),
        (
            "silence for the Detection Time: Down with diag 1, said at once",
            1300 * MS + 3 * SLOW_TX,
            Input::DetectTimerExpired,
            Expect {
                state: State::Down,
                diag: Diag::ControlDetectionTimeExpired,
                sent: Some(vec![(false, false)]),
            },
        ),
        (
            "held down by configuration: AdminDown with diag 7, announced at once",
            5000 * MS,
            Input::AdminDown,
            Expect {
                state: State::AdminDown,
                diag: Diag::AdministrativelyDown,
                sent: Some(vec![(false, false)]),
            },
        ),
        (
            "while AdminDown, the peer's packets change nothing",
            5100 * MS,
            Input::Received(peer(State::Init, 1)),
            Expect {
                state: State::AdminDown,
                diag: Diag::AdministrativelyDown,
                sent: Some(vec![]),
            },
        ),
        (
            "released: Down",
            5200 * MS,
            Input::AdminUp,
            Expect {
                state: State::Down,
                diag: Diag::None,
                sent: None,
            },
        ),
    ];
    for (sentence, at, input, expect) in steps {
        let out = s.step(t + at, input);
        assert_eq!(s.state(), expect.state, "{sentence}: {out:?}");
        assert_eq!(s.status().diag, expect.diag, "{sentence}");
        if let Some(bits) = expect.sent {
            let got: Vec<(bool, bool)> = sends(&out).iter().map(|p| (p.poll, p.is_final)).collect();
            assert_eq!(got, bits, "{sentence}: {out:?}");
        }
        for packet in sends(&out) {
            assert_eq!(
                packet.state, expect.state,
                "{sentence}: packets carry the new state"
            );
        }
        assert_eq!(s.params(), p, "{sentence}: the configuration is unchanged");
    }
}

#[test]
fn two_sessions_reach_up_through_the_three_way_handshake() {
    let mut link = Link::new(params(300, 300, 3), params(300, 300, 3));
    link.start();
    link.run_until_up();
    let t0 = link.t0;
    let a = link.changes(End::A, t0);
    let b = link.changes(End::B, t0);
    for changes in [&a, &b] {
        assert!(
            changes == &vec![(State::Down, State::Init), (State::Init, State::Up)]
                || changes == &vec![(State::Down, State::Up)],
            "{changes:?}"
        );
    }
    assert!(
        link.now - t0 <= 2 * SLOW_TX + 10 * MS,
        "Up within two slow intervals"
    );
}

#[test]
fn packets_go_at_the_slow_rate_until_up_then_at_the_negotiated_one() {
    let mut link = Link::new(params(300, 300, 3), params(300, 300, 3));
    link.start();
    link.run_until_up();
    let up_at = link.now;
    for (_, p) in link.sent(End::A, link.t0) {
        if p.state != State::Up {
            assert_eq!(p.desired_min_tx_us, 1_000_000, "{p:?}");
        }
    }
    link.run_for(Duration::from_secs(3));
    let late: Vec<Instant> = link
        .sent(End::A, up_at + Duration::from_secs(1))
        .iter()
        .filter(|(_, p)| !p.is_final)
        .map(|(t, _)| *t)
        .collect();
    for pair in late.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            300 * MS,
            "whole 300 ms intervals with jitter 0"
        );
    }
    assert_eq!(link.a.session.status().tx_interval, Some(300 * MS));
    assert_eq!(link.a.session.status().detection_time, Some(900 * MS));
}

#[test]
fn the_transmit_interval_is_the_larger_of_our_desired_tx_and_their_required_rx() {
    let mut link = Link::new(params(100, 50, 3), params(500, 300, 5));
    link.start();
    link.run_until_up();
    link.run_for(Duration::from_secs(3));
    let a = link.a.session.status();
    let b = link.b.session.status();
    assert_eq!(a.tx_interval, Some(300 * MS), "max(100 ours, 300 theirs)");
    assert_eq!(b.tx_interval, Some(500 * MS), "max(500 ours, 50 theirs)");
    assert_eq!(
        a.detection_time,
        Some(5 * 500 * MS),
        "B's mult × max(50, B's 500)"
    );
    assert_eq!(
        b.detection_time,
        Some(3 * 300 * MS),
        "A's mult × max(300, A's 100)"
    );
}

#[test]
fn a_silent_peer_takes_the_session_down_after_its_detection_time() {
    let mut link = Link::new(params(300, 300, 3), params(300, 300, 3));
    link.start();
    link.run_until_up();
    link.run_for(Duration::from_secs(3));
    let cut = link.now;
    link.b_to_a = false;
    link.run_for(Duration::from_secs(2));
    let last_heard = link
        .sent(End::B, link.t0)
        .iter()
        .filter(|(t, _)| *t < cut)
        .map(|(t, _)| *t)
        .max()
        .expect("B sent");
    let down = link
        .a
        .log
        .iter()
        .find_map(|(t, o)| match o {
            Output::StateChanged {
                to: State::Down,
                diag,
                ..
            } => Some((*t, *diag)),
            _ => None,
        })
        .expect("A went down");
    assert_eq!(down.1, Diag::ControlDetectionTimeExpired);
    assert_eq!(
        down.0 - (last_heard + link.delay),
        900 * MS,
        "3 × 300 ms after the last packet"
    );
    let b_down = link.b.log.iter().find_map(|(_, o)| match o {
        Output::StateChanged {
            from: State::Up,
            diag,
            ..
        } => Some(*diag),
        _ => None,
    });
    assert_eq!(
        b_down,
        Some(Diag::NeighborSignaledSessionDown),
        "B hears A say Down"
    );
}

#[test]
fn a_profile_change_renegotiates_the_intervals_without_leaving_up() {
    let mut link = Link::new(params(300, 300, 3), params(300, 300, 3));
    link.start();
    link.run_until_up();
    link.run_for(Duration::from_secs(2));
    let change = link.now;
    link.feed(End::A, Input::Reconfigure(params(100, 100, 3)));
    link.run_for(Duration::from_secs(2));
    assert_eq!(link.changes(End::A, change), vec![]);
    assert_eq!(link.changes(End::B, change), vec![]);
    assert_eq!(
        link.a.session.status().tx_interval,
        Some(300 * MS),
        "B still wants 300 ms"
    );
    assert_eq!(
        link.b.session.status().tx_interval,
        Some(300 * MS),
        "B's own 300 ms"
    );
    assert_eq!(link.b.session.status().detection_time, Some(900 * MS));
    assert_eq!(link.a.session.status().detection_time, Some(900 * MS));
    link.feed(End::B, Input::Reconfigure(params(100, 100, 3)));
    link.run_for(Duration::from_secs(2));
    assert_eq!(link.a.session.status().tx_interval, Some(100 * MS));
    assert_eq!(link.b.session.status().tx_interval, Some(100 * MS));
    assert_eq!(link.a.session.status().detection_time, Some(300 * MS));
    assert_eq!(link.changes(End::A, change), vec![]);
    assert_eq!(link.changes(End::B, change), vec![]);
    let polls = link
        .sent(End::A, change)
        .iter()
        .filter(|(_, p)| p.poll)
        .count();
    assert!(polls >= 1, "the change went out with the Poll bit");
    assert!(!link.a.session.status().is_polling && !link.b.session.status().is_polling);
}

#[test]
fn an_increased_desired_tx_takes_effect_only_after_the_final() {
    // B's multiplier of 10 gives A 3 s of patience while B's packets are cut.
    let mut link = Link::new(params(300, 300, 3), params(300, 300, 10));
    link.start();
    link.run_until_up();
    link.run_for(Duration::from_secs(2));
    link.b_to_a = false;
    link.feed(End::A, Input::Reconfigure(params(1000, 300, 3)));
    link.run_for(Duration::from_millis(1500));
    let status = link.a.session.status();
    assert!(status.is_polling, "no Final can arrive");
    assert_eq!(
        status.tx_interval,
        Some(300 * MS),
        "§6.8.3: the old interval until the Final"
    );
    link.b_to_a = true;
    link.run_for(Duration::from_secs(1));
    assert!(!link.a.session.status().is_polling);
    assert_eq!(link.a.session.status().tx_interval, Some(1000 * MS));
}

#[test]
fn a_reduced_required_rx_is_relied_on_only_after_the_final() {
    let mut link = Link::new(params(300, 600, 3), params(100, 300, 3));
    link.start();
    link.run_until_up();
    link.run_for(Duration::from_secs(2));
    assert_eq!(link.a.session.status().detection_time, Some(1800 * MS));
    link.b_to_a = false;
    link.feed(End::A, Input::Reconfigure(params(300, 100, 3)));
    assert_eq!(
        link.a.session.status().detection_time,
        Some(1800 * MS),
        "§6.8.3: the previous Required Min RX until the Poll ends"
    );
    link.b_to_a = true;
    link.run_for(Duration::from_secs(1));
    assert_eq!(link.a.session.status().detection_time, Some(300 * MS));
}

#[test]
fn a_second_change_during_a_poll_waits_for_a_packet_without_final() {
    let mut s = Session::new(1, params(300, 300, 3));
    let t = Instant::now();
    s.step(t, Input::Start(Jitter(0)));
    s.step(t, Input::Received(peer(State::Init, 1)));
    let first = s.step(t + SLOW_TX, Input::TransmitTimerExpired(Jitter(0)));
    assert_eq!(sends(&first)[0].desired_min_tx_us, 300_000, "the Up poll");
    s.step(t + SLOW_TX + MS, Input::Reconfigure(params(200, 300, 3)));
    let mut fin = peer(State::Up, 1);
    fin.is_final = true;
    s.step(t + SLOW_TX + 2 * MS, Input::Received(fin));
    assert!(!s.status().is_polling, "the first poll ended");
    let next = s.step(
        t + SLOW_TX + 300 * MS,
        Input::TransmitTimerExpired(Jitter(0)),
    );
    let p = sends(&next)[0];
    assert!(
        !p.poll && p.desired_min_tx_us == 300_000,
        "the second change waits: {p:?}"
    );
    s.step(t + SLOW_TX + 310 * MS, Input::Received(peer(State::Up, 1)));
    assert!(
        s.status().is_polling,
        "a packet without F lets the second poll start"
    );
    let next = s.step(
        t + SLOW_TX + 600 * MS,
        Input::TransmitTimerExpired(Jitter(0)),
    );
    let p = sends(&next)[0];
    assert!(p.poll && p.desired_min_tx_us == 200_000, "{p:?}");
}

#[test]
fn a_passive_session_is_silent_until_it_hears_the_peer_and_again_after_it_times_out() {
    let passive = Params {
        is_passive: true,
        ..params(300, 300, 3)
    };
    let mut s = Session::new(1, passive);
    let t = Instant::now();
    let out = s.step(t, Input::Start(Jitter(0)));
    assert!(
        sends(&out).is_empty(),
        "§6.1: nothing before the peer's discriminator is known"
    );
    assert_eq!(s.status().tx_interval, None);
    let out = s.step(t + 10 * MS, Input::Received(peer(State::Down, 0)));
    assert_eq!(sends(&out).len(), 1, "answers at once");
    assert_eq!(sends(&out)[0].your_discr, 7);
    let detect = armed(&out, TimerKind::Detect).expect("detect armed");
    let out = s.step(detect, Input::DetectTimerExpired);
    assert_eq!(
        state_change(&out),
        Some((State::Init, State::Down, Diag::ControlDetectionTimeExpired))
    );
    assert!(
        out.contains(&Output::CancelTimer(TimerKind::Transmit)),
        "§6.8.7: silent again"
    );
    assert_eq!(s.status().remote_discr, 0, "§6.8.1: RemoteDiscr cleared");
}

#[test]
fn a_peer_saying_admin_down_takes_us_down_but_not_from_down() {
    let mut s = Session::new(1, params(300, 300, 3));
    let t = Instant::now();
    s.step(t, Input::Start(Jitter(0)));
    let out = s.step(t, Input::Received(peer(State::AdminDown, 0)));
    assert_eq!(state_change(&out), None, "Down stays Down");
    s.step(t, Input::Received(peer(State::Init, 1)));
    assert_eq!(s.state(), State::Up);
    let out = s.step(t, Input::Received(peer(State::AdminDown, 1)));
    assert_eq!(
        state_change(&out),
        Some((State::Up, State::Down, Diag::NeighborSignaledSessionDown))
    );
}

#[test]
fn a_retired_session_announces_admin_down_for_a_detection_time_then_is_forgotten() {
    let mut link = Link::new(params(300, 300, 3), params(300, 300, 3));
    link.start();
    link.run_until_up();
    link.run_for(Duration::from_secs(2));
    let at = link.now;
    let out = link.feed(End::A, Input::Retire);
    assert_eq!(sends(&out).len(), 1, "announced at once");
    assert_eq!(sends(&out)[0].state, State::AdminDown);
    let retire = armed(&out, TimerKind::Retire).expect("linger armed");
    assert_eq!(retire - at, 3 * SLOW_TX, "DetectMult × the slow interval");
    link.run_for(Duration::from_secs(4));
    assert!(link.a.log.iter().any(|(_, o)| *o == Output::Retired));
    assert_eq!(link.b.session.state(), State::Down);
    assert_eq!(
        link.b.session.status().diag,
        Diag::NeighborSignaledSessionDown
    );
    assert!(
        !link
            .changes(End::B, at)
            .iter()
            .any(|_| link.b.log.iter().any(|(_, o)| matches!(
                o,
                Output::StateChanged {
                    diag: Diag::ControlDetectionTimeExpired,
                    ..
                }
            ))),
        "the peer never times out on us"
    );
}

#[test]
fn a_peer_in_demand_mode_or_wanting_no_packets_stops_our_periodic_packets() {
    for (sentence, packet) in [
        (
            "demand mode",
            ControlPacket {
                demand: true,
                ..peer(State::Up, 1)
            },
        ),
        (
            "Required Min RX 0",
            ControlPacket {
                required_min_rx_us: 0,
                ..peer(State::Up, 1)
            },
        ),
    ] {
        let mut s = Session::new(1, params(300, 300, 3));
        let t = Instant::now();
        s.step(t, Input::Start(Jitter(0)));
        s.step(t, Input::Received(peer(State::Init, 1)));
        // Let the Up poll finish so Demand mode can apply.
        s.step(
            t,
            Input::Received(ControlPacket {
                is_final: true,
                ..peer(State::Up, 1)
            }),
        );
        let out = s.step(t + MS, Input::Received(packet));
        assert!(
            out.contains(&Output::CancelTimer(TimerKind::Transmit)),
            "{sentence}: {out:?}"
        );
        assert_eq!(s.status().tx_interval, None, "{sentence}");
        let out = s.step(
            t + 2 * MS,
            Input::Received(ControlPacket {
                poll: true,
                ..packet
            }),
        );
        assert_eq!(sends(&out).len(), 1, "{sentence}: a Poll is still answered");
    }
}

#[test]
fn expiries_of_rearmed_or_cancelled_timers_are_ignored() {
    let mut s = Session::new(1, params(300, 300, 3));
    let t = Instant::now();
    s.step(t, Input::Start(Jitter(0)));
    let out = s.step(t + 10 * MS, Input::Received(peer(State::Down, 0)));
    let first = armed(&out, TimerKind::Detect).expect("armed");
    s.step(t + 20 * MS, Input::Received(peer(State::Up, 1)));
    let out = s.step(first, Input::DetectTimerExpired);
    assert!(out.is_empty(), "re-armed later: {out:?}");
    let out = s.step(t + 30 * MS, Input::TransmitTimerExpired(Jitter(0)));
    assert!(sends(&out).is_empty(), "not due yet");
}

/// The interval after a periodic packet sent with `jitter` at `mult`.
fn interval_with(jitter: u16, mult: u8) -> Duration {
    let mut s = Session::new(1, params(1000, 300, mult));
    let t = Instant::now();
    let out = s.step(t, Input::Start(Jitter(jitter)));
    armed(&out, TimerKind::Transmit).expect("transmit armed") - t
}

#[test]
fn jitter_cuts_0_to_25_percent_or_10_to_25_with_detect_mult_1() {
    assert_eq!(interval_with(0, 3), 1000 * MS);
    assert_eq!(interval_with(u16::MAX, 3), 750 * MS);
    assert_eq!(interval_with(0, 1), 900 * MS);
    assert_eq!(interval_with(u16::MAX, 1), 750 * MS);
}

proptest! {
    #[test]
    fn every_interval_stays_within_the_jitter_band(jitter: u16, mult in 1u8..=5) {
        let d = interval_with(jitter, mult);
        let most = if mult == 1 { 900 * MS } else { 1000 * MS };
        prop_assert!(d >= 750 * MS && d <= most, "{d:?}");
    }

    /// Whatever the peer sends and whenever timers fire, our packets never carry both P and
    /// F, say at least 1 s while not Up, and name the peer once it is known.
    #[test]
    fn our_packets_keep_the_rfc_rules_whatever_the_peer_does(
        steps in prop::collection::vec((0u8..6, 0u8..4, any::<bool>(), any::<bool>(), 1u64..400), 1..60)
    ) {
        let mut s = Session::new(1, params(300, 300, 3));
        let mut t = Instant::now();
        s.step(t, Input::Start(Jitter(0)));
        for (kind, state, poll, fin, gap) in steps {
            t += Duration::from_millis(gap);
            let input = match kind {
                0 | 1 => Input::Received(ControlPacket {
                    poll: poll && !fin,
                    is_final: fin,
                    ..peer(State::from_wire(state), if state <= 1 { 0 } else { 1 })
                }),
                2 => Input::TransmitTimerExpired(Jitter(gap as u16)),
                3 => Input::DetectTimerExpired,
                4 => Input::Reconfigure(params(100 + gap, 100 + gap, 3)),
                _ => Input::AdminUp,
            };
            for p in sends(&s.step(t, input)) {
                prop_assert!(!(p.poll && p.is_final));
                if p.state != State::Up {
                    prop_assert!(p.desired_min_tx_us >= 1_000_000, "{p:?}");
                }
                prop_assert_eq!(p.my_discr, 1);
                prop_assert_eq!(p.your_discr, s.status().remote_discr);
            }
        }
    }
}
