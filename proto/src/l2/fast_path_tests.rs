//! The in-kernel program against `decide`, frame by frame, through BPF_PROG_TEST_RUN
//! (no network): for every frame it either passes the frame on unchanged (TCX_NEXT),
//! or returns TCX_REDIRECT with exactly the bytes `decide` replies with, and `decide`
//! does reply. Captured frames, hostile cases and generated/mutated frames.
//!
//! Needs root (CAP_BPF); without it each test says why and passes, unless CI=true.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;

use super::addr::MacAddr;
use super::answer_prog::{ARP_ANSWERED, ARP_SEEN, NS_ANSWERED, NS_SEEN, TCX_NEXT, TCX_REDIRECT};
use super::arp;
use super::captured_tests::{ARPING_REQUEST, KERNEL_DAD_NS, NDISC6_NS, hex};
use super::counters::InterfaceCounters;
use super::decide::decide;
use super::decide::tests::{ASKER, ns_for, who_has};
use super::fast_path::{AddressMap, FastPath, FastPathError, Program};
use super::verdict::Verdict;

const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
/// BPF_PROG_TEST_RUN runs on the loopback device (ifindex 1).
const LO: u32 = 1;
/// An interface the frames never arrive on.
const OTHER_IFINDEX: u32 = 7;

fn vip4() -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 10)
}

fn vip6() -> Ipv6Addr {
    "2001:db8::10".parse().expect("literal")
}

/// Announced on the other interface only.
fn elsewhere4() -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 7)
}

fn elsewhere6() -> Ipv6Addr {
    "2001:db8::77".parse().expect("literal")
}

/// A loaded program with VIP4 and VIP6 announced on `LO`, and the `elsewhere`
/// addresses on another interface. `None` (after saying why) without CAP_BPF.
struct Rig {
    addresses: Arc<AddressMap>,
    program: Program,
    /// What `decide` is told is announced on `LO`.
    announced: BTreeSet<IpAddr>,
}

fn rig() -> Option<Rig> {
    let addresses = match AddressMap::create() {
        Ok(a) => a,
        Err(e) => {
            let message = format!("SKIPPED: the fast path test needs root (CAP_BPF): {e}");
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{message}; CI=true does not allow skipping");
            }
            println!("{message}");
            return None;
        }
    };
    let program = Program::load(&addresses, "ferrolb_test").expect("program loads");
    let announced: BTreeSet<IpAddr> = [IpAddr::V4(vip4()), IpAddr::V6(vip6())].into();
    for ip in &announced {
        addresses.insert(LO, *ip, OUR_MAC).expect("insert");
    }
    for ip in [IpAddr::V4(elsewhere4()), IpAddr::V6(elsewhere6())] {
        addresses
            .insert(OTHER_IFINDEX, ip, MacAddr([0x02, 0, 0, 0, 0, 0x07]))
            .expect("insert");
    }
    Some(Rig {
        addresses,
        program,
        announced,
    })
}

/// What the program did with one frame.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Passed,
    Answered(Vec<u8>),
}

/// BPF_PROG_TEST_RUN refuses (EINVAL) IPv4 and IPv6 frames shorter than their
/// network header; the program passes those on (its length checks come first), but
/// the test cannot show it.
fn is_runnable(frame: &[u8]) -> bool {
    match frame.get(12..14) {
        Some([0x08, 0x00]) => frame.len() >= 14 + 20,
        Some([0x86, 0xdd]) => frame.len() >= 14 + 40,
        Some(_) => true,
        None => false,
    }
}

impl Rig {
    /// Runs the program on `frame` and checks it against `decide`.
    fn run(&self, frame: &[u8]) -> Outcome {
        let (retval, out) = self.program.test_run(frame, LO).expect("test run");
        let verdict = decide(frame, OUR_MAC, &self.announced);
        match retval {
            TCX_NEXT => {
                assert_eq!(out, frame, "a passed frame must be untouched");
                Outcome::Passed
            }
            TCX_REDIRECT => {
                let Verdict::Reply(reply) = verdict else {
                    panic!("answered in the kernel, but decide says {verdict:?}: {frame:02x?}");
                };
                assert_eq!(
                    out, reply,
                    "the kernel's reply differs from decide's for {frame:02x?}"
                );
                Outcome::Answered(out)
            }
            other => panic!("unexpected verdict {other} for {frame:02x?}"),
        }
    }
}

#[test]
fn captured_arping_request_is_answered_in_the_kernel_exactly_as_decide_would() {
    let Some(rig) = rig() else { return };
    // 58 octets: the padding is trimmed to decide's 42-octet reply.
    let out = rig.run(&hex(ARPING_REQUEST));
    assert!(
        matches!(out, Outcome::Answered(ref r) if r.len() == 42),
        "{out:?}"
    );
    let c = rig.program.counters().expect("counters");
    assert_eq!((c[ARP_SEEN as usize], c[ARP_ANSWERED as usize]), (1, 1));
}

#[test]
fn captured_ndisc6_solicitation_is_answered_in_the_kernel_exactly_as_decide_would() {
    let Some(rig) = rig() else { return };
    let out = rig.run(&hex(NDISC6_NS));
    assert!(matches!(out, Outcome::Answered(_)), "{out:?}");
    let c = rig.program.counters().expect("counters");
    assert_eq!((c[NS_SEEN as usize], c[NS_ANSWERED as usize]), (1, 1));
}

#[test]
fn the_kernels_own_dad_probe_goes_to_the_sockets() {
    let Some(rig) = rig() else { return };
    assert_eq!(rig.run(&hex(KERNEL_DAD_NS)), Outcome::Passed);
}

#[test]
fn built_questions_for_announced_addresses_are_answered_and_others_passed() {
    let Some(rig) = rig() else { return };
    assert!(matches!(
        rig.run(&who_has(vip4()).to_bytes()),
        Outcome::Answered(_)
    ));
    assert!(matches!(
        rig.run(&ns_for(vip6()).to_bytes()),
        Outcome::Answered(_)
    ));
    // Unicast NS to the target itself, to our MAC (reachability confirmation).
    let mut unicast = ns_for(vip6());
    unicast.dst = vip6();
    unicast.eth.dst = OUR_MAC;
    assert!(matches!(rig.run(&unicast.to_bytes()), Outcome::Answered(_)));
    // ARP unicast to our MAC.
    let mut bytes = who_has(vip4()).to_bytes();
    bytes[..6].copy_from_slice(&OUR_MAC.0);
    assert!(matches!(rig.run(&bytes), Outcome::Answered(_)));
    for frame in [
        who_has(Ipv4Addr::new(192, 0, 2, 99)).to_bytes(),
        ns_for("2001:db8::99".parse().expect("literal")).to_bytes(),
    ] {
        assert_eq!(rig.run(&frame), Outcome::Passed);
    }
}

#[test]
fn addresses_announced_on_another_interface_are_not_answered_here() {
    let Some(rig) = rig() else { return };
    assert_eq!(rig.run(&who_has(elsewhere4()).to_bytes()), Outcome::Passed);
    assert_eq!(rig.run(&ns_for(elsewhere6()).to_bytes()), Outcome::Passed);
}

#[test]
fn a_removed_address_is_no_longer_answered() {
    let Some(rig) = rig() else { return };
    rig.addresses
        .remove(LO, IpAddr::V4(vip4()))
        .expect("remove");
    rig.addresses
        .remove(LO, IpAddr::V6(vip6()))
        .expect("remove");
    assert_eq!(
        rig.addresses.get(LO, IpAddr::V4(vip4())).expect("get"),
        None
    );
    let (retval, _) = rig
        .program
        .test_run(&who_has(vip4()).to_bytes(), LO)
        .expect("run");
    assert_eq!(retval, TCX_NEXT);
    let (retval, _) = rig
        .program
        .test_run(&ns_for(vip6()).to_bytes(), LO)
        .expect("run");
    assert_eq!(retval, TCX_NEXT);
}

#[test]
fn attaching_to_a_missing_interface_fails_with_its_errno_for_the_warning() {
    let Some(rig) = rig() else { return };
    let err = FastPath::attach(
        "gone0",
        999_999,
        OUR_MAC,
        rig.addresses.clone(),
        Arc::new(InterfaceCounters::default()),
    )
    .expect_err("no such interface");
    assert!(matches!(err, FastPathError::Attach { .. }), "{err}");
    assert_eq!(err.errno(), Some(libc::ENODEV), "{err}");
    assert_eq!(err.reason(), "FastPathAttach");
}

#[test]
fn hostile_frames_are_passed_on_untouched() {
    let Some(rig) = rig() else { return };
    let arp = who_has(vip4()).to_bytes();
    let ns = ns_for(vip6()).to_bytes();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    for len in 14..arp.len() {
        cases.push(("truncated ARP", arp[..len].to_vec()));
    }
    for len in 14 + 40..ns.len() {
        cases.push(("truncated NS", ns[..len].to_vec()));
    }
    let edit = |frame: &[u8], at: usize, value: u8| {
        let mut f = frame.to_vec();
        f[at] = value;
        f
    };
    cases.extend([
        ("ARP reply", edit(&arp, 21, 2)),
        ("ARP hlen 8", edit(&arp, 18, 8)),
        ("ARP multicast sender", edit(&arp, 22, 0x03)),
        (
            "ARP from our own MAC",
            arp.replace_octets(6..12, &OUR_MAC.0),
        ),
        (
            "ARP to another MAC",
            arp.replace_octets(0..6, &[2, 0, 0, 0, 0, 0x55]),
        ),
        (
            "gratuitous ARP",
            arp.replace_octets(28..32, &vip4().octets()),
        ),
        ("NS hop limit 64", resum(edit(&ns, 21, 64))),
        ("NS code 1", resum(edit(&ns, 55, 1))),
        ("NS bad checksum", edit(&ns, 57, ns[57] ^ 1)),
        ("NS option length 0", resum(edit(&ns, 79, 0))),
        ("NS option length 2", resum(edit(&ns, 79, 2))),
        ("NS target lla option", resum(edit(&ns, 78, 2))),
        ("NS payload length 24", resum(edit(&ns, 19, 24))),
        ("NS payload length 40", resum(edit(&ns, 19, 40))),
        ("NS multicast source", resum(edit(&ns, 22, 0xff))),
        (
            "NS from our own MAC",
            resum(ns.replace_octets(6..12, &OUR_MAC.0)),
        ),
        ("NS to another group MAC", resum(edit(&ns, 5, 0x99))),
        ("NS with trailing octets", [ns.clone(), vec![0; 8]].concat()),
        (
            "NS asking for a broadcast answer",
            resum(ns.replace_octets(80..86, &[0xff; 6])),
        ),
        (
            "NS asking for an all-nodes answer",
            resum(ns.replace_octets(80..86, &[0x33, 0x33, 0, 0, 0, 1])),
        ),
        (
            "NS asking for an answer to nobody",
            resum(ns.replace_octets(80..86, &[0; 6])),
        ),
    ]);
    let mut dad = ns_for(vip6());
    dad.src = Ipv6Addr::UNSPECIFIED;
    dad.source_lla = None;
    cases.push(("DAD probe", dad.to_bytes()));
    let mut no_option = ns_for(vip6());
    no_option.source_lla = None;
    cases.push(("NS without an option", no_option.to_bytes()));
    for (what, frame) in cases {
        assert_eq!(rig.run(&frame), Outcome::Passed, "{what}");
    }
}

#[test]
fn a_stale_heartbeat_silences_the_kernel_and_a_beat_brings_it_back() {
    let Some(rig) = rig() else { return };
    let questions = [who_has(vip4()).to_bytes(), ns_for(vip6()).to_bytes()];
    rig.addresses.set_deadline(0).expect("deadline in the past");
    for frame in &questions {
        assert_eq!(rig.run(frame), Outcome::Passed, "stale: {frame:02x?}");
    }
    rig.addresses.set_deadline(u64::MAX).expect("no deadline");
    for frame in &questions {
        assert!(matches!(rig.run(frame), Outcome::Answered(_)));
    }
}

/// Recomputes the ICMPv6 checksum of an 86-octet NS frame after an edit, so the
/// edited field, not the checksum, is what the program must refuse.
fn resum(mut frame: Vec<u8>) -> Vec<u8> {
    if frame.len() != 86 {
        return frame;
    }
    frame[56] = 0;
    frame[57] = 0;
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[22..38]).expect("16"));
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[38..54]).expect("16"));
    let sum = super::checksum::icmpv6(src, dst, &frame[54..86]);
    frame[56..58].copy_from_slice(&sum.to_be_bytes());
    frame
}

trait ReplaceOctets {
    fn replace_octets(&self, range: std::ops::Range<usize>, with: &[u8]) -> Vec<u8>;
}

impl ReplaceOctets for Vec<u8> {
    fn replace_octets(&self, range: std::ops::Range<usize>, with: &[u8]) -> Vec<u8> {
        let mut out = self.clone();
        out[range].copy_from_slice(with);
        out
    }
}

/// A question near the answered ones: for an announced, elsewhere or unknown address,
/// in either family, broadcast/group or unicast, sometimes padded.
fn near_valid() -> impl Strategy<Value = Vec<u8>> {
    let v4s = prop_oneof![
        Just(vip4()),
        Just(elsewhere4()),
        any::<[u8; 4]>().prop_map(Ipv4Addr::from)
    ];
    let v6s = prop_oneof![
        Just(vip6()),
        Just(elsewhere6()),
        any::<[u8; 16]>().prop_map(Ipv6Addr::from)
    ];
    let arp = (v4s, any::<[u8; 6]>(), any::<bool>(), 0usize..20).prop_map(
        |(target, sender, unicast, pad)| {
            let mut req = arp::gratuitous_request(target, MacAddr(sender));
            req.sender_ip = Ipv4Addr::new(192, 0, 2, 1);
            if unicast {
                req.eth.dst = OUR_MAC;
            }
            let mut bytes = req.to_bytes();
            bytes.resize(bytes.len() + pad, 0);
            bytes
        },
    );
    let ns = (v6s, any::<[u8; 6]>(), any::<bool>()).prop_map(|(target, sender, unicast)| {
        let mut ns = ns_for(target);
        ns.eth.src = MacAddr(sender);
        ns.source_lla = Some(MacAddr(sender));
        if unicast {
            ns.dst = target;
            ns.eth.dst = OUR_MAC;
        }
        ns.to_bytes()
    });
    prop_oneof![arp, ns]
}

/// One rig for all generated cases (loading a program per case is slow).
fn shared_rig() -> Option<&'static Rig> {
    static RIG: OnceLock<Option<Rig>> = OnceLock::new();
    RIG.get_or_init(rig).as_ref()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_kernel_answers_only_as_decide_does_for_mutated_questions(
        frame in near_valid(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        fix_checksum in any::<bool>(),
    ) {
        let Some(rig) = shared_rig() else { return Ok(()) };
        let mut frame = frame;
        for (at, value) in edits {
            let len = frame.len();
            frame[at % len] = value;
        }
        if fix_checksum {
            frame = resum(frame);
        }
        prop_assume!(is_runnable(&frame));
        rig.run(&frame);
    }

    #[test]
    fn every_well_formed_question_for_an_announced_address_is_answered_in_the_kernel(
        sender in any::<[u8; 6]>().prop_map(|mut m| { m[0] &= 0xfe; m[5] |= 1; MacAddr(m) }),
        asker_ip in any::<[u8; 16]>().prop_map(|mut o| { o[0] = 0xfe; o[1] = 0x80; Ipv6Addr::from(o) }),
        flow_label in any::<[u8; 3]>(),
        unicast in any::<bool>(),
        pad in 0usize..19,
    ) {
        let Some(rig) = shared_rig() else { return Ok(()) };
        let mut req = arp::gratuitous_request(vip4(), sender);
        req.sender_ip = Ipv4Addr::new(192, 0, 2, 1);
        if unicast {
            req.eth.dst = OUR_MAC;
        }
        let mut arp_frame = req.to_bytes();
        arp_frame.resize(arp_frame.len() + pad, 0);
        let mut ns = ns_for(vip6());
        ns.eth.src = sender;
        ns.source_lla = Some(sender);
        ns.src = asker_ip;
        if unicast {
            ns.dst = vip6();
            ns.eth.dst = OUR_MAC;
        }
        // A flow label is not covered by the checksum.
        let mut ns_frame = ns.to_bytes();
        ns_frame[15] = flow_label[0] & 0x0f;
        ns_frame[16..18].copy_from_slice(&flow_label[1..]);
        for frame in [arp_frame, ns_frame] {
            prop_assert!(matches!(rig.run(&frame), Outcome::Answered(_)), "{frame:02x?}");
        }
    }

    #[test]
    fn the_kernel_answers_only_as_decide_does_for_random_frames(
        ethertype in prop_oneof![Just([0x08u8, 0x06]), Just([0x86, 0xdd]), any::<[u8; 2]>()],
        body in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let Some(rig) = shared_rig() else { return Ok(()) };
        let mut frame = vec![0xff; 6];
        frame.extend_from_slice(&ASKER.0);
        frame.extend_from_slice(&ethertype);
        frame.extend_from_slice(&body);
        prop_assume!(is_runnable(&frame));
        rig.run(&frame);
    }
}
