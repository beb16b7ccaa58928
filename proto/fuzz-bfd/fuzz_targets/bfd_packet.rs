//! BFD Control packets from the network, as the BFD task takes them: `packet::decode` of the
//! whole input, then of every 24-byte chunk, each accepted packet fed to a session (as if the
//! demultiplexer had chosen it) with the time advancing by the chunk's last byte and timers
//! firing in between. Checks that what decodes re-encodes to the same bytes, and that whatever
//! the peer says, our packets never carry both Poll and Final and say at least 1 s while not Up.
#![no_main]

use std::time::{Duration, Instant};

use ferrolb_proto::bfd::fsm::{Input, Jitter, Output, Params, Session};
use ferrolb_proto::bfd::packet::{CONTROL_LEN, State, decode, encode};
use libfuzzer_sys::fuzz_target;

fn check_sent(outputs: &[Output]) {
    for o in outputs {
        if let Output::Send(p) = o {
            assert!(!(p.poll && p.is_final), "{p:?}");
            if p.state != State::Up {
                assert!(p.desired_min_tx_us >= 1_000_000, "{p:?}");
            }
            assert_eq!(p.my_discr, 1);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = decode(data) {
        let again = encode(&p);
        // The Length byte may be larger in the input; everything else must match.
        assert_eq!(again[..3], data[..3]);
        assert_eq!(again[4..], data[4..CONTROL_LEN]);
    }
    let mut s = Session::new(
        1,
        Params {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_mult: 3,
            is_passive: data.first().is_some_and(|b| b & 1 == 1),
        },
    );
    let mut now = Instant::now();
    check_sent(&s.step(now, Input::Start(Jitter(0))));
    for chunk in data.chunks(CONTROL_LEN) {
        now += Duration::from_millis(u64::from(*chunk.last().unwrap_or(&0)) * 10);
        for input in [
            Input::TransmitTimerExpired(Jitter(u16::from(chunk[0]) << 8)),
            Input::DetectTimerExpired,
        ] {
            check_sent(&s.step(now, input));
        }
        if let Ok(p) = decode(chunk) {
            check_sent(&s.step(now, Input::Received(p)));
        }
    }
});
