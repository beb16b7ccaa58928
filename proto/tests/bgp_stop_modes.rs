//! How a session ends on our side, as pure state machine steps (RFC 4724 Graceful Restart,
//! RFC 8538 Notification support): a planned restart leaves the peer holding our routes, a real
//! stop makes it drop them, and automatic stops use the Hard Reset where RFC 8538 §5.1 asks.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ferrolb_proto::bgp::fsm::{Config, ConnId, DownReason, Input, Output, Session, TimerKind};
use ferrolb_proto::bgp::notification::Notification;
use ferrolb_proto::bgp::open::{
    Capabilities, Families, GracefulRestart, LocalSpeaker, Open, PeerAs,
};
use ferrolb_proto::bgp::packet::{Received, decode, encode_open};

const C1: ConnId = ConnId(1);

/// What the peer's OPEN says about Graceful Restart.
#[derive(Debug, Clone, Copy)]
enum PeerGr {
    None,
    Plain,
    WithNBit,
}

fn config() -> Config {
    Config::new(LocalSpeaker {
        local_as: 64512,
        peer_as: PeerAs::Fixed(64513),
        router_id: Ipv4Addr::new(192, 0, 2, 10),
        hold_time: Duration::from_secs(90),
        families: Families::DUAL,
        graceful_restart: Some(Duration::from_secs(120)),
        extended_message: false,
    })
}

fn peer_open(gr: PeerGr) -> Open {
    let graceful_restart = |is_notification| GracefulRestart {
        restart_time: Duration::from_secs(120),
        is_restarting: false,
        is_notification,
        families: Families::DUAL,
        forwarding: Families::DUAL,
    };
    Open {
        version: 4,
        my_as: 64513,
        hold_time_secs: 90,
        bgp_id: Ipv4Addr::new(192, 0, 2, 200),
        capabilities: Capabilities {
            families: Families::DUAL,
            four_octet_as: Some(64513),
            route_refresh: true,
            graceful_restart: match gr {
                PeerGr::None => None,
                PeerGr::Plain => Some(graceful_restart(false)),
                PeerGr::WithNBit => Some(graceful_restart(true)),
            },
            extended_message: false,
        },
    }
}

fn established(gr: PeerGr) -> (Session, Instant) {
    let t0 = Instant::now();
    let mut s = Session::new(config());
    s.step(t0, Input::ManualStart);
    s.step(t0, Input::TcpConnectionAcknowledged(C1));
    s.step(t0, Input::BgpOpen(C1, peer_open(gr)));
    let out = s.step(t0, Input::KeepAliveMsg(C1));
    assert!(matches!(out.last(), Some(Output::SessionUp(..))), "{out:?}");
    (s, t0)
}

/// The outputs on the wire and the session report, without the timer bookkeeping.
fn effects(outputs: Vec<Output>) -> Vec<Output> {
    outputs
        .into_iter()
        .filter(|o| !matches!(o, Output::ArmTimer(..) | Output::CancelTimer(..)))
        .collect()
}

fn shutdown() -> Notification {
    Notification::new(6, 2)
}

#[test]
fn each_stop_sends_what_keeps_or_drops_our_routes_at_the_peer() {
    let hard_reset_shutdown = Notification::with_data(6, 9, vec![6, 2]);
    let rows: Vec<(&str, PeerGr, Input, Vec<Output>)> = vec![
        (
            "a stop without GR: Administrative Shutdown",
            PeerGr::None,
            Input::ManualStop,
            vec![
                Output::SendNotification(C1, shutdown()),
                Output::CloseConnection(C1),
                Output::SessionDown(DownReason::AdminStop),
            ],
        ),
        (
            "a stop with GR but no N bit: Administrative Shutdown (any NOTIFICATION drops routes)",
            PeerGr::Plain,
            Input::ManualStop,
            vec![
                Output::SendNotification(C1, shutdown()),
                Output::CloseConnection(C1),
                Output::SessionDown(DownReason::AdminStop),
            ],
        ),
        (
            "a stop with the N bit: a Hard Reset carrying Administrative Shutdown",
            PeerGr::WithNBit,
            Input::ManualStop,
            vec![
                Output::SendNotification(C1, hard_reset_shutdown),
                Output::CloseConnection(C1),
                Output::SessionDown(DownReason::AdminStop),
            ],
        ),
        (
            "a planned restart without GR: nothing to keep, a plain stop",
            PeerGr::None,
            Input::ManualStopForRestart,
            vec![
                Output::SendNotification(C1, shutdown()),
                Output::CloseConnection(C1),
                Output::SessionDown(DownReason::AdminStop),
            ],
        ),
        (
            "a planned restart with GR only: close TCP without a NOTIFICATION",
            PeerGr::Plain,
            Input::ManualStopForRestart,
            vec![
                Output::CloseConnection(C1),
                Output::SessionDown(DownReason::PlannedRestart),
            ],
        ),
        (
            "a planned restart with the N bit: Administrative Reset, never a Hard Reset",
            PeerGr::WithNBit,
            Input::ManualStopForRestart,
            vec![
                Output::SendNotification(C1, Notification::new(6, 4)),
                Output::CloseConnection(C1),
                Output::SessionDown(DownReason::PlannedRestart),
            ],
        ),
    ];
    for (sentence, gr, input, expected) in rows {
        let (mut s, t0) = established(gr);
        assert_eq!(effects(s.step(t0, input)), expected, "{sentence}");
        assert!(
            s.step(
                t0 + Duration::from_secs(600),
                Input::ConnectRetryTimerExpires
            )
            .is_empty(),
            "{sentence}: a stopped session does not restart by itself"
        );
        assert_eq!(s.config(), &config(), "{sentence}: config unchanged");
    }
}

#[test]
fn automatic_stops_use_the_hard_reset_only_for_max_prefixes_and_come_back_later() {
    let max = Notification::max_prefixes(1, 1, 1000);
    let rows: Vec<(&str, PeerGr, Notification, Notification)> = vec![
        (
            "max prefixes without the N bit",
            PeerGr::Plain,
            max.clone(),
            max.clone(),
        ),
        (
            "max prefixes with the N bit: Hard Reset, the peer drops our routes",
            PeerGr::WithNBit,
            max.clone(),
            max.clone().into_hard_reset(),
        ),
        (
            "out of resources with the N bit: plain, the peer keeps our routes while we retry",
            PeerGr::WithNBit,
            Notification::out_of_resources(),
            Notification::out_of_resources(),
        ),
    ];
    for (sentence, gr, reason, sent) in rows {
        let (mut s, t0) = established(gr);
        let out = s.step(t0, Input::AutomaticStop(reason.clone()));
        assert_eq!(
            effects(out.clone()),
            vec![
                Output::SendNotification(C1, sent),
                Output::CloseConnection(C1),
                Output::SessionDown(DownReason::LocalNotification(reason)),
            ],
            "{sentence}"
        );
        let restart_at = out.iter().find_map(|o| match o {
            Output::ArmTimer(TimerKind::ConnectRetry, at) => Some(*at),
            _ => None,
        });
        let restart_at = restart_at.unwrap_or_else(|| panic!("{sentence}: no restart delay"));
        assert_eq!(
            s.step(restart_at, Input::ConnectRetryTimerExpires).first(),
            Some(&Output::Connect),
            "{sentence}: the session dials again after the delay"
        );
    }
}

#[test]
fn an_automatic_stop_without_a_session_does_nothing() {
    let mut s = Session::new(config());
    let t0 = Instant::now();
    s.step(t0, Input::ManualStart);
    assert_eq!(
        s.step(t0, Input::AutomaticStop(Notification::out_of_resources())),
        vec![]
    );
}

#[test]
fn our_open_sets_the_n_bit_and_a_peer_s_n_bit_is_read() {
    let open = config().local.open();
    let gr = open.capabilities.graceful_restart.expect("GR capability");
    assert!(gr.is_notification);
    let bytes = encode_open(&open).expect("encodes");
    // Capability 64 (GR), then the 16-bit flags and time: R=0x8000, N=0x4000, 120 s.
    let at = bytes
        .windows(2)
        .position(|w| w[0] == 64)
        .expect("GR capability on the wire");
    let flags = u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]);
    assert_eq!(flags, 0x4000 | 120);
    let Ok(Received::Open(back)) = decode(&bytes, false) else {
        panic!("our OPEN decodes")
    };
    assert_eq!(back, open);
}
