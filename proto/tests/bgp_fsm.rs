//! Story tables for the BGP session state machine (RFC 4271 §8), plus a property test.
//!
//! Each story is one session fed inputs in order; every step names what happened and lists the
//! outputs it must produce, exactly and in order. After each step the configuration is unchanged.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ferrolb_proto::bgp::fsm::{
    Config, ConnId, DownReason, Input, Output, Session, State, TimerKind,
};
use ferrolb_proto::bgp::notification::Notification;
use ferrolb_proto::bgp::open::{
    AS_TRANS, Capabilities, Families, GracefulRestart, LocalSpeaker, Negotiated, Open, PeerAs,
};
use proptest::prelude::*;

const OUR_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const PEER_HIGH_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 200);
const PEER_LOW_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const C1: ConnId = ConnId(1);
const C2: ConnId = ConnId(2);

fn local(peer_as: PeerAs) -> LocalSpeaker {
    LocalSpeaker {
        local_as: 64512,
        peer_as,
        router_id: OUR_ID,
        hold_time: Duration::from_secs(90),
        families: Families::DUAL,
        graceful_restart: None,
        extended_message: true,
    }
}

fn config() -> Config {
    let mut c = Config::new(local(PeerAs::Fixed(64513)));
    c.connect_retry_max = Duration::from_secs(8);
    c
}

fn peer_open(asn: u16, hold_secs: u16, id: Ipv4Addr) -> Open {
    Open {
        version: 4,
        my_as: asn,
        hold_time_secs: hold_secs,
        bgp_id: id,
        capabilities: Capabilities {
            families: Families::DUAL,
            four_octet_as: Some(u32::from(asn)),
            route_refresh: true,
            graceful_restart: None,
            extended_message: false,
        },
    }
}

fn negotiated(hold_secs: u64, id: Ipv4Addr) -> Negotiated {
    Negotiated {
        peer_as: 64513,
        peer_id: id,
        is_ibgp: false,
        hold_time: Duration::from_secs(hold_secs),
        keepalive: Duration::from_secs(hold_secs / 3),
        four_octet_as: true,
        families: Families::DUAL,
        route_refresh: true,
        graceful_restart: None,
        extended_message: false,
    }
}

fn secs(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

/// One step of a story: a sentence, the time offset in seconds, the input, the expected outputs.
type Step = (&'static str, u64, Input, Vec<Output>);

fn run_story(config: Config, t0: Instant, steps: Vec<Step>) -> Session {
    let mut session = Session::new(config);
    for (sentence, at, input, expected) in steps {
        let got = session.step(secs(t0, at), input);
        assert_eq!(got, expected, "step `{sentence}`");
        assert_eq!(
            session.config(),
            &config,
            "config changed in step `{sentence}`"
        );
    }
    session
}

/// ManualStart … OPEN exchanged … first KEEPALIVE: the common prefix of many stories.
fn establish(t0: Instant, config: Config) -> Vec<Step> {
    let our_open = config.local.open();
    vec![
        (
            "manual start dials and arms connect retry",
            0,
            Input::ManualStart,
            vec![
                Output::Connect,
                Output::ArmTimer(TimerKind::ConnectRetry, secs(t0, 1)),
            ],
        ),
        (
            "the dial succeeds: send OPEN, wait 240 s for the peer's",
            0,
            Input::TcpConnectionAcknowledged(C1),
            vec![
                Output::CancelTimer(TimerKind::ConnectRetry),
                Output::SendOpen(C1, our_open),
                Output::ArmTimer(TimerKind::Hold, secs(t0, 240)),
            ],
        ),
        (
            "the peer's OPEN arrives: answer KEEPALIVE, arm hold 30 s and keepalive 10 s",
            1,
            Input::BgpOpen(C1, peer_open(64513, 30, PEER_HIGH_ID)),
            vec![
                Output::SendKeepalive(C1),
                Output::ArmTimer(TimerKind::Hold, secs(t0, 31)),
                Output::ArmTimer(TimerKind::Keepalive, secs(t0, 11)),
            ],
        ),
        (
            "the peer's KEEPALIVE arrives: session up",
            2,
            Input::KeepAliveMsg(C1),
            vec![
                Output::ArmTimer(TimerKind::Hold, secs(t0, 32)),
                Output::SessionUp(C1, negotiated(30, PEER_HIGH_ID)),
            ],
        ),
    ]
}

#[test]
fn active_open_reaches_established_after_open_and_keepalive() {
    let t0 = Instant::now();
    let s = run_story(config(), t0, establish(t0, config()));
    assert_eq!(s.state(), State::Established);
}

#[test]
fn established_session_sends_keepalives_every_third_of_the_hold_time() {
    let t0 = Instant::now();
    let mut steps = establish(t0, config());
    steps.extend([
        (
            "the keepalive timer fires: send KEEPALIVE and re-arm",
            11,
            Input::KeepaliveTimerExpires,
            vec![
                Output::SendKeepalive(C1),
                Output::ArmTimer(TimerKind::Keepalive, secs(t0, 21)),
            ],
        ),
        (
            "an UPDATE from the peer restarts the hold timer",
            12,
            Input::UpdateMsg(C1),
            vec![Output::ArmTimer(TimerKind::Hold, secs(t0, 42))],
        ),
        (
            "a ROUTE-REFRESH restarts the hold timer and asks to send every route again",
            13,
            Input::RouteRefreshMsg(C1),
            vec![
                Output::ArmTimer(TimerKind::Hold, secs(t0, 43)),
                Output::ReadvertiseRoutes(C1),
            ],
        ),
    ]);
    run_story(config(), t0, steps);
}

#[test]
fn passive_start_never_dials_and_accepts_the_peer() {
    let t0 = Instant::now();
    let cfg = config();
    let s = run_story(
        cfg,
        t0,
        vec![
            (
                "a passive start only listens",
                0,
                Input::ManualStartPassive,
                vec![],
            ),
            (
                "the peer connects: send OPEN",
                5,
                Input::TcpConnectionConfirmed(C1),
                vec![
                    Output::SendOpen(C1, cfg.local.open()),
                    Output::ArmTimer(TimerKind::Hold, secs(t0, 245)),
                ],
            ),
        ],
    );
    assert_eq!(s.state(), State::OpenSent);
}

#[test]
fn stopped_session_refuses_incoming_connections() {
    let t0 = Instant::now();
    run_story(
        config(),
        t0,
        vec![(
            "a connection to an Idle session is closed",
            0,
            Input::TcpConnectionConfirmed(C1),
            vec![Output::CloseConnection(C1)],
        )],
    );
}

#[test]
fn failed_dials_back_off_exponentially_up_to_the_cap() {
    let t0 = Instant::now();
    let retry = |at: u64| Output::ArmTimer(TimerKind::ConnectRetry, secs(t0, at));
    run_story(
        config(),
        t0,
        vec![
            (
                "start dials, retry in 1 s",
                0,
                Input::ManualStart,
                vec![Output::Connect, retry(1)],
            ),
            (
                "the dial is refused: listen, retry in 2 s",
                0,
                Input::TcpConnectionFails(None),
                vec![retry(2)],
            ),
            (
                "retry fires: dial again, next in 4 s",
                2,
                Input::ConnectRetryTimerExpires,
                vec![Output::Connect, retry(6)],
            ),
            (
                "refused again: retry in 8 s",
                2,
                Input::TcpConnectionFails(None),
                vec![retry(10)],
            ),
            (
                "retry fires: dial, capped at 8 s",
                10,
                Input::ConnectRetryTimerExpires,
                vec![Output::Connect, retry(18)],
            ),
            (
                "refused: still 8 s",
                10,
                Input::TcpConnectionFails(None),
                vec![retry(18)],
            ),
        ],
    );
}

#[test]
fn jitter_shortens_each_connect_retry_delay() {
    let mut cfg = config();
    cfg.jitter_percent = 25;
    let t0 = Instant::now();
    run_story(
        cfg,
        t0,
        vec![(
            "start dials, retry after 750 ms",
            0,
            Input::ManualStart,
            vec![
                Output::Connect,
                Output::ArmTimer(TimerKind::ConnectRetry, t0 + Duration::from_millis(750)),
            ],
        )],
    );
}

#[test]
fn stale_timer_expiries_are_ignored() {
    let t0 = Instant::now();
    let mut steps = establish(t0, config());
    steps.extend([
        (
            "a hold expiry before its deadline does nothing",
            20,
            Input::HoldTimerExpires,
            vec![],
        ),
        (
            "a connect retry expiry when none is armed does nothing",
            20,
            Input::ConnectRetryTimerExpires,
            vec![],
        ),
    ]);
    let s = run_story(config(), t0, steps);
    assert_eq!(s.state(), State::Established);
}

#[test]
fn hold_time_is_the_smaller_of_both_and_keepalive_a_third() {
    let t0 = Instant::now();
    let s = run_story(config(), t0, establish(t0, config()));
    let neg = s.negotiated().copied();
    assert_eq!(
        neg.map(|n| (n.hold_time, n.keepalive)),
        Some((Duration::from_secs(30), Duration::from_secs(10)))
    );
}

#[test]
fn hold_time_zero_means_no_keepalives_and_no_hold_timer() {
    let t0 = Instant::now();
    let mut steps = establish(t0, config());
    steps.truncate(2);
    steps.extend([
        (
            "the peer proposes 0: cancel the hold timer, arm no keepalive",
            1,
            Input::BgpOpen(C1, peer_open(64513, 0, PEER_HIGH_ID)),
            vec![
                Output::SendKeepalive(C1),
                Output::CancelTimer(TimerKind::Hold),
            ],
        ),
        (
            "KEEPALIVE: up, with no timer at all",
            2,
            Input::KeepAliveMsg(C1),
            vec![Output::SessionUp(C1, negotiated(0, PEER_HIGH_ID))],
        ),
    ]);
    run_story(config(), t0, steps);
}

/// OpenSent with C1, then the peer's OPEN is rejected with `notification`; back to Idle.
fn open_rejected(open: Open, notification: Notification, cfg: Config) {
    let t0 = Instant::now();
    let mut steps = establish(t0, cfg);
    steps.truncate(2);
    steps.push((
        "the OPEN is refused with a NOTIFICATION, the connection closed, restart in 2 s",
        1,
        Input::BgpOpen(C1, open),
        vec![
            Output::SendNotification(C1, notification),
            Output::CloseConnection(C1),
            Output::CancelTimer(TimerKind::Hold),
            Output::ArmTimer(TimerKind::ConnectRetry, secs(t0, 3)),
        ],
    ));
    let s = run_story(cfg, t0, steps);
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn hold_time_of_one_or_two_seconds_is_refused_as_unacceptable() {
    for hold in [1, 2] {
        open_rejected(
            peer_open(64513, hold, PEER_HIGH_ID),
            Notification::new(2, 6),
            config(),
        );
    }
}

#[test]
fn open_with_a_version_other_than_4_is_refused_naming_version_4() {
    let mut open = peer_open(64513, 90, PEER_HIGH_ID);
    open.version = 3;
    open_rejected(open, Notification::with_data(2, 1, vec![0, 4]), config());
}

#[test]
fn open_from_an_unexpected_as_is_refused_as_bad_peer_as() {
    open_rejected(
        peer_open(64999, 90, PEER_HIGH_ID),
        Notification::with_data(2, 2, 64999u16.to_be_bytes()),
        config(),
    );
    let mut internal = config();
    internal.local.peer_as = PeerAs::Internal;
    open_rejected(
        peer_open(64513, 90, PEER_HIGH_ID),
        Notification::with_data(2, 2, 64513u16.to_be_bytes()),
        internal,
    );
    let mut external = config();
    external.local.peer_as = PeerAs::External;
    open_rejected(
        peer_open(64512, 90, PEER_HIGH_ID),
        Notification::with_data(2, 2, 64512u16.to_be_bytes()),
        external,
    );
}

#[test]
fn four_octet_peer_as_is_read_from_the_capability_behind_as_trans() {
    let mut cfg = config();
    cfg.local.peer_as = PeerAs::Fixed(4_200_000_001);
    let mut open = peer_open(64513, 90, PEER_HIGH_ID);
    open.my_as = AS_TRANS;
    open.capabilities.four_octet_as = Some(4_200_000_001);
    let neg = ferrolb_proto::bgp::open::negotiate(&cfg.local, &open);
    assert_eq!(neg.map(|n| n.peer_as), Ok(4_200_000_001));
    // Without the capability, AS_TRANS itself is never a valid peer.
    open.capabilities.four_octet_as = None;
    open_rejected(
        open,
        Notification::with_data(2, 2, AS_TRANS.to_be_bytes()),
        cfg,
    );
}

#[test]
fn zero_identifier_and_our_own_identifier_over_ibgp_are_refused() {
    open_rejected(
        peer_open(64513, 90, Ipv4Addr::UNSPECIFIED),
        Notification::new(2, 3),
        config(),
    );
    let mut ibgp = config();
    ibgp.local.peer_as = PeerAs::Internal;
    open_rejected(peer_open(64512, 90, OUR_ID), Notification::new(2, 3), ibgp);
    // eBGP may share an identifier (RFC 6286).
    let neg = ferrolb_proto::bgp::open::negotiate(&config().local, &peer_open(64513, 90, OUR_ID));
    assert!(neg.is_ok());
}

#[test]
fn capabilities_negotiate_to_what_both_sides_announced() {
    let mut cfg = config();
    cfg.local.graceful_restart = Some(Duration::from_secs(120));
    let mut open = peer_open(64513, 180, PEER_HIGH_ID);
    open.capabilities = Capabilities {
        families: Families {
            ipv4_unicast: true,
            ipv6_unicast: false,
        },
        four_octet_as: None,
        route_refresh: false,
        graceful_restart: Some(GracefulRestart {
            restart_time: Duration::from_secs(60),
            is_restarting: true,
            is_notification: false,
            families: Families::DUAL,
            forwarding: Families::default(),
        }),
        extended_message: true,
    };
    let neg = ferrolb_proto::bgp::open::negotiate(&cfg.local, &open);
    let expected = Negotiated {
        peer_as: 64513,
        peer_id: PEER_HIGH_ID,
        is_ibgp: false,
        hold_time: Duration::from_secs(90),
        keepalive: Duration::from_secs(30),
        four_octet_as: false,
        families: Families {
            ipv4_unicast: true,
            ipv6_unicast: false,
        },
        route_refresh: false,
        graceful_restart: Some(GracefulRestart {
            restart_time: Duration::from_secs(60),
            is_restarting: true,
            is_notification: false,
            families: Families::DUAL,
            forwarding: Families::default(),
        }),
        extended_message: true,
    };
    assert_eq!(neg, Ok(expected));
    assert_eq!(expected.max_message_len(), 65535);
}

#[test]
fn hold_timer_expiry_sends_hold_timer_expired_and_takes_the_session_down() {
    let t0 = Instant::now();
    let mut steps = establish(t0, config());
    steps.push((
        "no message for 30 s: NOTIFICATION 4/0, close, down, restart after backoff",
        32,
        Input::HoldTimerExpires,
        vec![
            Output::SendNotification(C1, Notification::new(4, 0)),
            Output::CloseConnection(C1),
            Output::CancelTimer(TimerKind::Keepalive),
            Output::SessionDown(DownReason::LocalNotification(Notification::new(4, 0))),
            Output::ArmTimer(TimerKind::ConnectRetry, secs(t0, 34)),
        ],
    ));
    steps.push((
        "the restart delay ends: dial again",
        34,
        Input::ConnectRetryTimerExpires,
        vec![
            Output::Connect,
            Output::ArmTimer(TimerKind::ConnectRetry, secs(t0, 36)),
        ],
    ));
    run_story(config(), t0, steps);
}

#[test]
fn manual_stop_sends_cease_administrative_shutdown() {
    let t0 = Instant::now();
    let mut steps = establish(t0, config());
    steps.push((
        "manual stop: CEASE 6/2, close, down, no restart",
        5,
        Input::ManualStop,
        vec![
            Output::SendNotification(C1, Notification::new(6, 2)),
            Output::CloseConnection(C1),
            Output::SessionDown(DownReason::AdminStop),
            Output::CancelTimer(TimerKind::Hold),
            Output::CancelTimer(TimerKind::Keepalive),
        ],
    ));
    let s = run_story(config(), t0, steps);
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn peer_notification_takes_the_session_down_with_its_reason() {
    let t0 = Instant::now();
    let mut steps = establish(t0, config());
    steps.push((
        "the peer sends CEASE 6/4: close, down with the peer's reason",
        5,
        Input::NotifMsg(C1, Notification::new(6, 4)),
        vec![
            Output::CloseConnection(C1),
            Output::CancelTimer(TimerKind::Hold),
            Output::CancelTimer(TimerKind::Keepalive),
            Output::SessionDown(DownReason::PeerNotification(Notification::new(6, 4))),
            Output::ArmTimer(TimerKind::ConnectRetry, secs(t0, 7)),
        ],
    ));
    run_story(config(), t0, steps);
}

#[test]
fn malformed_update_is_answered_with_its_notification() {
    let t0 = Instant::now();
    let mut steps = establish(t0, config());
    steps.push((
        "the decoder reports a malformed attribute list: send 3/1, down",
        5,
        Input::UpdateMsgErr(C1, Notification::new(3, 1)),
        vec![
            Output::SendNotification(C1, Notification::new(3, 1)),
            Output::CloseConnection(C1),
            Output::CancelTimer(TimerKind::Hold),
            Output::CancelTimer(TimerKind::Keepalive),
            Output::SessionDown(DownReason::LocalNotification(Notification::new(3, 1))),
            Output::ArmTimer(TimerKind::ConnectRetry, secs(t0, 7)),
        ],
    ));
    run_story(config(), t0, steps);
}

#[test]
fn keepalive_before_open_is_a_finite_state_machine_error() {
    let t0 = Instant::now();
    let mut steps = establish(t0, config());
    steps.truncate(2);
    steps.push((
        "KEEPALIVE in OpenSent: NOTIFICATION 5/1",
        1,
        Input::KeepAliveMsg(C1),
        vec![
            Output::SendNotification(C1, Notification::new(5, 1)),
            Output::CloseConnection(C1),
            Output::CancelTimer(TimerKind::Hold),
            Output::ArmTimer(TimerKind::ConnectRetry, secs(t0, 3)),
        ],
    ));
    run_story(config(), t0, steps);
}

#[test]
fn collision_keeps_the_connection_opened_by_the_higher_identifier() {
    let t0 = Instant::now();
    let cfg = config();
    // The peer's identifier is higher: its connection (incoming C2) wins, ours (C1) is closed.
    let mut steps = establish(t0, cfg);
    steps.truncate(2);
    steps.extend([
        (
            "the peer also connects: send OPEN on the second connection",
            1,
            Input::TcpConnectionConfirmed(C2),
            vec![Output::SendOpen(C2, cfg.local.open())],
        ),
        (
            "the peer's OPEN on ours tells its identifier is higher: drop ours",
            2,
            Input::BgpOpen(C1, peer_open(64513, 30, PEER_HIGH_ID)),
            vec![
                Output::SendNotification(C1, Notification::new(6, 7)),
                Output::CloseConnection(C1),
                Output::ArmTimer(TimerKind::Hold, secs(t0, 242)),
            ],
        ),
        (
            "the peer's OPEN on its connection: OpenConfirm there",
            3,
            Input::BgpOpen(C2, peer_open(64513, 30, PEER_HIGH_ID)),
            vec![
                Output::SendKeepalive(C2),
                Output::ArmTimer(TimerKind::Hold, secs(t0, 33)),
                Output::ArmTimer(TimerKind::Keepalive, secs(t0, 13)),
            ],
        ),
        (
            "KEEPALIVE on the winner: up on C2",
            4,
            Input::KeepAliveMsg(C2),
            vec![
                Output::ArmTimer(TimerKind::Hold, secs(t0, 34)),
                Output::SessionUp(C2, negotiated(30, PEER_HIGH_ID)),
            ],
        ),
    ]);
    run_story(cfg, t0, steps);

    // Our identifier is higher: our connection (outgoing C1) wins, the peer's (C2) is closed.
    let mut steps = establish(t0, cfg);
    steps.truncate(2);
    steps.extend([
        (
            "the peer also connects: send OPEN on the second connection",
            1,
            Input::TcpConnectionConfirmed(C2),
            vec![Output::SendOpen(C2, cfg.local.open())],
        ),
        (
            "the peer's OPEN on its connection tells its identifier is lower: drop it",
            2,
            Input::BgpOpen(C2, peer_open(64513, 30, PEER_LOW_ID)),
            vec![
                Output::SendNotification(C2, Notification::new(6, 7)),
                Output::CloseConnection(C2),
            ],
        ),
        (
            "the peer's OPEN on ours: OpenConfirm",
            3,
            Input::BgpOpen(C1, peer_open(64513, 30, PEER_LOW_ID)),
            vec![
                Output::SendKeepalive(C1),
                Output::ArmTimer(TimerKind::Hold, secs(t0, 33)),
                Output::ArmTimer(TimerKind::Keepalive, secs(t0, 13)),
            ],
        ),
    ]);
    let s = run_story(cfg, t0, steps);
    assert_eq!(s.state(), State::OpenConfirm);
}

#[test]
fn collision_with_an_established_session_closes_the_new_connection() {
    let t0 = Instant::now();
    let mut steps = establish(t0, config());
    steps.push((
        "the peer connects again while up: CEASE 6/7 on the newcomer",
        5,
        Input::TcpConnectionConfirmed(C2),
        vec![
            Output::SendNotification(C2, Notification::new(6, 7)),
            Output::CloseConnection(C2),
        ],
    ));
    let s = run_story(config(), t0, steps);
    assert_eq!(s.state(), State::Established);
}

fn arb_input() -> impl Strategy<Value = Input> {
    let conn = (1u64..4).prop_map(ConnId);
    let notif = (0u8..8, 0u8..8).prop_map(|(c, s)| Notification::new(c, s));
    let open = (
        any::<bool>(),
        0u16..100,
        prop_oneof![
            Just(PEER_HIGH_ID),
            Just(PEER_LOW_ID),
            Just(OUR_ID),
            Just(Ipv4Addr::UNSPECIFIED)
        ],
        3u8..6,
    )
        .prop_map(|(is_peer_as, hold, id, version)| {
            let mut o = peer_open(if is_peer_as { 64513 } else { 64512 }, hold, id);
            o.version = version;
            o
        });
    prop_oneof![
        Just(Input::ManualStart),
        Just(Input::ManualStop),
        Just(Input::ManualStartPassive),
        Just(Input::ConnectRetryTimerExpires),
        Just(Input::HoldTimerExpires),
        Just(Input::KeepaliveTimerExpires),
        conn.clone().prop_map(Input::TcpConnectionAcknowledged),
        conn.clone().prop_map(Input::TcpConnectionConfirmed),
        proptest::option::of(conn.clone()).prop_map(Input::TcpConnectionFails),
        (conn.clone(), open).prop_map(|(c, o)| Input::BgpOpen(c, o)),
        (conn.clone(), notif.clone()).prop_map(|(c, n)| Input::BgpHeaderErr(c, n)),
        (conn.clone(), notif.clone()).prop_map(|(c, n)| Input::NotifMsg(c, n)),
        (conn.clone(), notif).prop_map(|(c, n)| Input::UpdateMsgErr(c, n)),
        conn.clone().prop_map(Input::KeepAliveMsg),
        conn.clone().prop_map(Input::UpdateMsg),
        conn.prop_map(Input::RouteRefreshMsg),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// No sequence panics; Established (SessionUp) only follows an OPEN and then a KEEPALIVE
    /// received on the same connection; SessionDown only follows SessionUp; nothing is ever sent
    /// on a connection that was closed or never reported.
    #[test]
    fn no_input_sequence_panics_and_established_needs_open_then_keepalive(
        steps in proptest::collection::vec((0u64..400, arb_input()), 0..60)
    ) {
        let t0 = Instant::now();
        let mut session = Session::new(config());
        let mut opened: HashSet<ConnId> = HashSet::new();
        let mut live: HashSet<ConnId> = HashSet::new();
        let mut is_up = false;
        let mut now = t0;
        for (dt, input) in steps {
            now += Duration::from_secs(dt);
            let before = session.state();
            let was_open = match &input { Input::BgpOpen(c, _) => Some(*c), _ => None };
            let keepalive_on = match &input { Input::KeepAliveMsg(c) => Some(*c), _ => None };
            if let Input::TcpConnectionAcknowledged(c) | Input::TcpConnectionConfirmed(c) = &input {
                live.insert(*c);
            }
            let out = session.step(now, input);
            for o in &out {
                match o {
                    Output::SessionUp(c, _) => {
                        prop_assert_eq!(before, State::OpenConfirm);
                        prop_assert_eq!(keepalive_on, Some(*c));
                        prop_assert!(opened.contains(c));
                        is_up = true;
                    }
                    Output::SessionDown(_) => {
                        prop_assert!(is_up);
                        is_up = false;
                    }
                    Output::CloseConnection(c) => {
                        opened.remove(c);
                        live.remove(c);
                    }
                    Output::SendOpen(c, _) | Output::SendKeepalive(c) | Output::SendNotification(c, _) => {
                        prop_assert!(live.contains(c), "sent on closed {:?}", c);
                    }
                    _ => {}
                }
            }
            if let Some(c) = was_open.filter(|_| session.state() == State::OpenConfirm) {
                opened.insert(c);
            }
            prop_assert_eq!(session.state() == State::Established, is_up);
        }
    }
}

#[test]
fn connection_lost_in_open_sent_goes_back_to_listening_with_a_retry() {
    let t0 = Instant::now();
    let mut steps = establish(t0, config());
    steps.truncate(2);
    steps.push((
        "the connection drops before the peer's OPEN: Active, retry in 2 s",
        1,
        Input::TcpConnectionFails(Some(C1)),
        vec![
            Output::CloseConnection(C1),
            Output::CancelTimer(TimerKind::Hold),
            Output::ArmTimer(TimerKind::ConnectRetry, secs(t0, 3)),
        ],
    ));
    steps.push((
        "the peer connects meanwhile: OpenSent on its connection",
        2,
        Input::TcpConnectionConfirmed(C2),
        vec![
            Output::CancelTimer(TimerKind::ConnectRetry),
            Output::SendOpen(C2, config().local.open()),
            Output::ArmTimer(TimerKind::Hold, secs(t0, 242)),
        ],
    ));
    let s = run_story(config(), t0, steps);
    assert_eq!(s.state(), State::OpenSent);
}

#[test]
fn manual_stop_while_dialling_cancels_the_dial() {
    let t0 = Instant::now();
    let mut steps = establish(t0, config());
    steps.truncate(1);
    steps.push((
        "stop while the dial is in flight: cancel it and the retry timer",
        0,
        Input::ManualStop,
        vec![
            Output::CancelConnect,
            Output::CancelTimer(TimerKind::ConnectRetry),
        ],
    ));
    steps.push((
        "a late connect retry expiry does nothing",
        5,
        Input::ConnectRetryTimerExpires,
        vec![],
    ));
    let s = run_story(config(), t0, steps);
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn a_passive_session_restarts_into_listening_after_an_error() {
    let t0 = Instant::now();
    let cfg = config();
    let s = run_story(
        cfg,
        t0,
        vec![
            (
                "a passive start only listens",
                0,
                Input::ManualStartPassive,
                vec![],
            ),
            (
                "the peer connects: send OPEN",
                0,
                Input::TcpConnectionConfirmed(C1),
                vec![
                    Output::SendOpen(C1, cfg.local.open()),
                    Output::ArmTimer(TimerKind::Hold, secs(t0, 240)),
                ],
            ),
            (
                "the peer sends garbage: 1/1, Idle for 2 s",
                1,
                Input::BgpHeaderErr(C1, Notification::new(1, 1)),
                vec![
                    Output::SendNotification(C1, Notification::new(1, 1)),
                    Output::CloseConnection(C1),
                    Output::CancelTimer(TimerKind::Hold),
                    Output::ArmTimer(TimerKind::ConnectRetry, secs(t0, 3)),
                ],
            ),
            (
                "a connection during the restart delay is refused",
                2,
                Input::TcpConnectionConfirmed(C2),
                vec![Output::CloseConnection(C2)],
            ),
            (
                "the restart delay ends: listen again, never dial",
                3,
                Input::ConnectRetryTimerExpires,
                vec![],
            ),
        ],
    );
    assert_eq!(s.state(), State::Active);
}

#[test]
fn collision_in_open_confirm_is_resolved_when_the_second_open_arrives() {
    let t0 = Instant::now();
    let cfg = config();
    let mut steps = establish(t0, cfg);
    steps.truncate(3);
    steps.extend([
        (
            "the peer connects while we wait for its KEEPALIVE: OPEN on the newcomer",
            2,
            Input::TcpConnectionConfirmed(C2),
            vec![Output::SendOpen(C2, cfg.local.open())],
        ),
        (
            "its OPEN there: its identifier is higher, so its connection replaces ours",
            3,
            Input::BgpOpen(C2, peer_open(64513, 30, PEER_HIGH_ID)),
            vec![
                Output::SendNotification(C1, Notification::new(6, 7)),
                Output::CloseConnection(C1),
                Output::CancelTimer(TimerKind::Keepalive),
                Output::SendKeepalive(C2),
                Output::ArmTimer(TimerKind::Hold, secs(t0, 33)),
                Output::ArmTimer(TimerKind::Keepalive, secs(t0, 13)),
            ],
        ),
        (
            "a late KEEPALIVE on the closed connection does nothing",
            3,
            Input::KeepAliveMsg(C1),
            vec![],
        ),
    ]);
    let s = run_story(cfg, t0, steps);
    assert_eq!(s.state(), State::OpenConfirm);
}

#[test]
fn a_connection_reported_twice_changes_nothing() {
    let t0 = Instant::now();
    let mut steps = establish(t0, config());
    steps.truncate(3);
    steps.push((
        "the driver reports the live connection again: ignored, not closed",
        2,
        Input::TcpConnectionAcknowledged(C1),
        vec![],
    ));
    steps.push((
        "its KEEPALIVE still brings the session up",
        2,
        Input::KeepAliveMsg(C1),
        vec![
            Output::ArmTimer(TimerKind::Hold, secs(t0, 32)),
            Output::SessionUp(C1, negotiated(30, PEER_HIGH_ID)),
        ],
    ));
    run_story(config(), t0, steps);
}
