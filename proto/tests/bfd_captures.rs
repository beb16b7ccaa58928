//! Control packets captured from FRR 8.4 bfdd and BIRD 2.0.12 (and FerroLB talking to them) in
//! the lab, in `tests/fixtures/bfd/`: each must decode, re-encode to the same bytes, and carry
//! what the capture shows; and fed to one of our sessions, the peers' packets of a handshake must
//! bring it Up.
//!
//! File format, one packet a line (`#` starts a comment):
//! `<sender> <source address> <source port> <destination port> <TTL> <payload hex>`.

use std::path::Path;
use std::time::{Duration, Instant};

use ferrolb_proto::bfd::fsm::{Input, Jitter, Params, Session};
use ferrolb_proto::bfd::packet::{ControlPacket, Diag, State, decode, encode};

struct Captured {
    file: String,
    sender: String,
    source: String,
    source_port: u16,
    is_multihop: bool,
    ttl: u8,
    bytes: Vec<u8>,
}

fn load() -> Vec<Captured> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bfd");
    let mut all = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no capture files in {}", dir.display());
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        let file = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let before = all.len();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [sender, source, sport, dport, ttl, hex] = fields[..] else {
                panic!("{file}: bad line {line:?}");
            };
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            all.push(Captured {
                file: file.clone(),
                sender: sender.to_owned(),
                source: source.to_owned(),
                source_port: sport.parse().expect("port"),
                is_multihop: match dport {
                    "3784" => false,
                    "4784" => true,
                    other => panic!("{file}: not a BFD port: {other}"),
                },
                ttl: ttl.parse().expect("ttl"),
                bytes,
            });
        }
        assert!(all.len() - before >= 10, "{file}: too few packets");
    }
    all
}

fn decoded(c: &Captured) -> ControlPacket {
    decode(&c.bytes)
        .unwrap_or_else(|e| panic!("{} {} {}: {}", c.file, c.sender, c.source, e.reason()))
}

#[test]
fn every_captured_packet_decodes_and_encodes_back_to_its_bytes() {
    let all = load();
    for sender in ["frr", "bird", "ferrolb"] {
        assert!(
            all.iter().any(|c| c.sender == sender),
            "no packets from {sender}"
        );
    }
    for c in &all {
        let p = decoded(c);
        let at = format!("{} {} {}", c.file, c.sender, c.source);
        assert_eq!(encode(&p).to_vec(), c.bytes, "{at}");
        assert!(!(p.poll && p.is_final), "{at}");
        if !c.is_multihop {
            assert_eq!(c.ttl, 255, "{at}: RFC 5881 §5");
        }
        if c.sender == "ferrolb" {
            // Ours, as the router received them.
            assert!(
                (49152..=65535).contains(&c.source_port),
                "{at}: RFC 5881 §4"
            );
            let hops = u8::from(c.is_multihop);
            assert_eq!(c.ttl, 255 - hops, "{at}: sent with 255");
            assert_eq!(p.required_min_echo_rx_us, 0, "{at}: no echo");
            assert!(!p.demand, "{at}");
            // FRR's first Down after a timeout still carries its fast interval; ours never do.
            if p.state != State::Up {
                assert!(p.desired_min_tx_us >= 1_000_000, "{at}: slow while not Up");
            }
        }
    }
}

#[test]
fn the_captures_show_what_the_routers_do() {
    let all = load();
    let has = |sender: &str, f: &dyn Fn(&ControlPacket) -> bool| {
        all.iter().any(|c| c.sender == sender && f(&decoded(c)))
    };
    assert!(
        has("frr", &|p| p.state == State::Down
            && p.diag == Diag::ControlDetectionTimeExpired
            && p.your_discr == 0),
        "FRR says Down with diag 1 after a timeout"
    );
    assert!(
        has("frr", &|p| p.required_min_echo_rx_us == 50_000),
        "FRR advertises a 50 ms echo receive interval even with echo off"
    );
    assert!(
        all.iter()
            .any(|c| c.sender == "bird" && c.is_multihop && c.ttl == 64),
        "BIRD sends multihop packets with TTL 64, under MetalLB's default minimumTtl of 254"
    );
    assert!(
        all.iter()
            .any(|c| c.sender == "frr" && c.is_multihop && c.ttl == 255),
        "FRR sends multihop packets with TTL 255"
    );
    assert!(
        has("ferrolb", &|p| p.state == State::AdminDown
            && p.diag == Diag::AdministrativelyDown),
        "a removed session announces AdminDown"
    );
    for sender in ["frr", "bird", "ferrolb"] {
        assert!(
            has(sender, &|p| p.state == State::Up && p.poll),
            "{sender} polls"
        );
        assert!(
            has(sender, &|p| p.state == State::Up && p.is_final),
            "{sender} answers"
        );
    }
}

#[test]
fn a_captured_handshake_brings_our_session_up() {
    let all = load();
    for sender in ["frr", "bird"] {
        // The peer's first Down (Your Discriminator 0), then its Init or Up naming "us": we take
        // the discriminator it named as ours, so its packets select our session.
        let peer = all
            .iter()
            .filter(|c| c.sender == sender)
            .map(decoded)
            .collect::<Vec<_>>();
        let first_down = peer
            .iter()
            .find(|p| p.state == State::Down && p.your_discr == 0 && p.diag == Diag::None)
            .or_else(|| {
                peer.iter()
                    .find(|p| p.state == State::Down && p.your_discr == 0)
            })
            .unwrap_or_else(|| panic!("{sender}: no Down packet"));
        let answer = peer
            .iter()
            .find(|p| {
                p.my_discr == first_down.my_discr && matches!(p.state, State::Init | State::Up)
            })
            .unwrap_or_else(|| panic!("{sender}: no Init/Up of the same session"));
        let mut s = Session::new(
            answer.your_discr,
            Params {
                desired_min_tx: Duration::from_millis(300),
                required_min_rx: Duration::from_millis(300),
                detect_mult: 3,
                is_passive: false,
            },
        );
        let t = Instant::now();
        s.step(t, Input::Start(Jitter(0)));
        s.step(t, Input::Received(*first_down));
        assert_eq!(s.state(), State::Init, "{sender}");
        s.step(t + Duration::from_millis(10), Input::Received(*answer));
        assert_eq!(s.state(), State::Up, "{sender}");
    }
}
