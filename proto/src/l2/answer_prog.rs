//! The in-kernel fast path of the responder, as eBPF instructions: a TCX ingress
//! program that answers the common, well-formed questions in the kernel's receive path
//! and hands everything else, untouched, to the socket path (`TCX_NEXT`).
//!
//! It answers exactly what `decide` answers, in the same bytes, for two layouts:
//! - an ARP request (42 octets, or more with Ethernet padding, trimmed to 42) for an
//!   address announced on the receiving interface: rewritten in place into the reply
//!   `arp::reply` builds;
//! - a neighbour solicitation of exactly 86 octets (32 octets of ICMPv6: the fixed part
//!   and one source link-layer address option of length 1) from a unicast source, to
//!   the target's solicited-node group or the target itself, with a valid checksum:
//!   rewritten into the solicited advertisement `ndp::advertisement_for` builds.
//!
//! Then `bpf_redirect(ifindex, 0)` sends it out of the same interface. Frames with a
//! stripped VLAN tag, DAD probes, other option layouts and anything malformed or not
//! announced go on to the sockets. The proof of "same bytes as `decide`" is a test
//! (`fast_path_tests`), run through `BPF_PROG_TEST_RUN`.
//!
//! The program only reads the frame directly; the reply is built on the stack and
//! written with `bpf_skb_store_bytes`. A direct packet write would make the verifier
//! add a prologue that unshares every cloned frame (TCP over veth, or any frame while
//! a packet tap runs) before the program even looks at it: a copy paid by unrelated
//! traffic. This way only answered questions are unshared.
//!
//! Maps (file descriptors baked into the program):
//! - addresses: hash, key (ifindex, IPv6 or v4-mapped IPv4; `KEY_LEN`), value our
//!   MAC (`VALUE_LEN` octets, the last two zero);
//! - counters: per-CPU array of `COUNTERS` u64 (`ARP_SEEN`...);
//! - deadline: array of one u64, the CLOCK_MONOTONIC time in ns after which the
//!   program answers nothing (the speaker's heartbeat moves it forward; `u64::MAX`:
//!   no heartbeat required). A frozen speaker (SIGSTOP, a hung runtime) would otherwise
//!   keep answering from the kernel after another node took its addresses over.
//!
//! Pure: builds instructions; loading and attaching is `fast_path`'s job.

use super::ebpf::{Alu, BuildError, Builder, Insn, Jmp, Label, Reg, Size};
use super::ipv6::NEXT_HEADER_ICMPV6;
use super::ndp::{TYPE_NEIGHBOR_ADVERTISEMENT, TYPE_NEIGHBOR_SOLICITATION};

/// Octets of an address map key: ifindex (u32, host order), then 16 octets of address.
pub const KEY_LEN: u32 = 20;
/// Octets of an address map value: the MAC and two zero octets.
pub const VALUE_LEN: u32 = 8;

/// Counter slot: ARP frames the program looked at.
pub const ARP_SEEN: u32 = 0;
/// Counter slot: ARP requests it answered.
pub const ARP_ANSWERED: u32 = 1;
/// Counter slot: neighbour solicitations (ICMPv6 type 135) it looked at.
pub const NS_SEEN: u32 = 2;
/// Counter slot: neighbour solicitations it answered.
pub const NS_ANSWERED: u32 = 3;
/// Number of counter slots.
pub const COUNTERS: u32 = 4;

/// TCX verdict: run the next program, then the normal stack (the socket path).
pub const TCX_NEXT: i32 = -1;
/// TCX verdict of `bpf_redirect` (TC_ACT_REDIRECT).
pub const TCX_REDIRECT: i32 = 7;

// Offsets in `struct __sk_buff` (include/uapi/linux/bpf.h).
const SKB_LEN: i16 = 0;
const SKB_VLAN_PRESENT: i16 = 20;
const SKB_IFINDEX: i16 = 40;
const SKB_DATA: i16 = 76;
const SKB_DATA_END: i16 = 80;

// Helper numbers (enum bpf_func_id).
const FN_MAP_LOOKUP_ELEM: i32 = 1;
const FN_KTIME_GET_NS: i32 = 5;
const FN_SKB_STORE_BYTES: i32 = 9;
const FN_REDIRECT: i32 = 23;
const FN_SKB_CHANGE_TAIL: i32 = 38;

// Frame offsets (Ethernet header at 0).
const ETH_DST: i16 = 0;
const ETH_SRC: i16 = 6;
const ETH_TYPE: i16 = 12;
const ARP_FIXED: i16 = 14; // htype, ptype (4 octets), hlen, plen (2), op (2)
const ARP_OP: i16 = 20;
const ARP_SHA: i16 = 22;
const ARP_SPA: i16 = 28;
const ARP_THA: i16 = 32;
const ARP_TPA: i16 = 38;
const ARP_FRAME_LEN: i32 = 42;
const IP6_VERSION: i16 = 14;
const IP6_PAYLOAD_LEN: i16 = 18;
const IP6_NEXT_HEADER: i16 = 20;
const IP6_HOP_LIMIT: i16 = 21;
const IP6_SRC: i16 = 22;
const IP6_DST: i16 = 38;
const ICMP: i16 = 54;
const ICMP_CODE: i16 = 55;
const ICMP_CHECKSUM: i16 = 56;
const ICMP_FLAGS: i16 = 58;
const ND_TARGET: i16 = 62;
const ND_OPTION: i16 = 78;
const ND_OPTION_MAC: i16 = 80;
const NS_FRAME_LEN: i32 = 86;
const NS_ICMP_LEN: u16 = 32;

// Stack slots (below the frame pointer R10).
const STACK_KEY: i16 = -24;
const STACK_COUNTER_INDEX: i16 = -4;
/// The time read before the deadline lookup (between the ARP and NS buffers).
const STACK_NOW: i16 = -80;
/// The ARP reply is built here (8-aligned: every even offset is 2-aligned).
const ARP_BUF: i16 = -72;
/// The NA is built here: 2 mod 8, so its octet 22 (the checksummed part) is 8-aligned.
const NS_BUF: i16 = -206;

// Registers kept across helper calls.
const CTX: Reg = Reg::R6;
const DATA: Reg = Reg::R7;
const DATA_END: Reg = Reg::R8;
const MAC: Reg = Reg::R9;

/// The value a 2-octet field in network order has when loaded by the (native-order)
/// BPF load: compare loaded fields with this, never with the number itself.
fn wire16(bytes: [u8; 2]) -> i32 {
    i32::from(u16::from_ne_bytes(bytes))
}

/// The same for a 4-octet field; compare with `jump32_imm`.
fn wire32(bytes: [u8; 4]) -> i32 {
    i32::from_ne_bytes(bytes)
}

/// The program for the maps open as `addresses`, `counters` and `deadline`.
///
/// Refused on big-endian hosts: the register nibbles of every instruction, the `wire16`/
/// `wire32` constants and the map keys are laid out for a little-endian kernel, and nobody has
/// run the program on a big-endian one. There the sockets answer alone.
pub fn program(addresses: i32, counters: i32, deadline: i32) -> Result<Vec<Insn>, BuildError> {
    if cfg!(target_endian = "big") {
        return Err(BuildError::BigEndianHost);
    }
    let maps = Maps {
        addresses,
        counters,
        deadline,
    };
    let mut b = Builder::new();
    let pass = b.label();
    let arp = b.label();
    let ns = b.label();
    let redirect = b.label();

    b.mov64(CTX, Reg::R1);
    b.load(Size::W, Reg::R2, CTX, SKB_VLAN_PRESENT);
    b.jump_imm(Jmp::Ne, Reg::R2, 0, pass);
    load_packet_pointers(&mut b);
    need(&mut b, 14, pass);
    b.load(Size::H, Reg::R2, DATA, ETH_TYPE);
    b.jump_imm(Jmp::Eq, Reg::R2, wire16([0x08, 0x06]), arp);
    b.jump_imm(Jmp::Eq, Reg::R2, wire16([0x86, 0xdd]), ns);
    b.goto(pass);

    b.bind(arp);
    answer_arp(&mut b, maps, pass, redirect);

    b.bind(ns);
    answer_ns(&mut b, maps, pass, redirect);

    b.bind(redirect);
    b.load(Size::W, Reg::R1, CTX, SKB_IFINDEX);
    b.mov64_imm(Reg::R2, 0);
    b.call(FN_REDIRECT);
    b.exit();

    b.bind(pass);
    b.mov64_imm(Reg::R0, TCX_NEXT);
    b.exit();
    b.finish()
}

/// The descriptors of the program's maps.
#[derive(Clone, Copy)]
struct Maps {
    addresses: i32,
    counters: i32,
    deadline: i32,
}

fn load_packet_pointers(b: &mut Builder) {
    b.load(Size::W, DATA, CTX, SKB_DATA);
    b.load(Size::W, DATA_END, CTX, SKB_DATA_END);
}

/// Goes to `otherwise` unless the packet has at least `len` octets in the linear part.
fn need(b: &mut Builder, len: i32, otherwise: Label) {
    b.mov64(Reg::R2, DATA);
    b.alu64_imm(Alu::Add, Reg::R2, len);
    b.jump(Jmp::Gt, Reg::R2, DATA_END, otherwise);
}

/// Adds one to counter `slot` (clobbers R0-R5).
fn count(b: &mut Builder, counters: i32, slot: u32) {
    let done = b.label();
    b.store_imm(Size::W, Reg::R10, STACK_COUNTER_INDEX, slot as i32);
    b.ld_map_fd(Reg::R1, counters);
    b.mov64(Reg::R2, Reg::R10);
    b.alu64_imm(Alu::Add, Reg::R2, i32::from(STACK_COUNTER_INDEX));
    b.call(FN_MAP_LOOKUP_ELEM);
    b.jump_imm(Jmp::Eq, Reg::R0, 0, done);
    b.mov64_imm(Reg::R1, 1);
    b.atomic_add(Size::Dw, Reg::R0, 0, Reg::R1);
    b.bind(done);
}

/// Looks up the key written at `STACK_KEY`; goes to `otherwise` when the address is
/// not announced on this interface, else leaves our MAC's address in `MAC`.
fn lookup_mac(b: &mut Builder, addresses: i32, otherwise: Label) {
    b.ld_map_fd(Reg::R1, addresses);
    b.mov64(Reg::R2, Reg::R10);
    b.alu64_imm(Alu::Add, Reg::R2, i32::from(STACK_KEY));
    b.call(FN_MAP_LOOKUP_ELEM);
    b.jump_imm(Jmp::Eq, Reg::R0, 0, otherwise);
    b.mov64(MAC, Reg::R0);
}

/// Stores the receiving interface's index as the first field of the key.
fn key_ifindex(b: &mut Builder) {
    b.load(Size::W, Reg::R2, CTX, SKB_IFINDEX);
    b.store(Size::W, Reg::R10, STACK_KEY, Reg::R2);
}

/// Goes to `then` when the 6 octets at `DATA + at` are our MAC (clobbers R2, R3).
fn if_our_mac(b: &mut Builder, at: i16, then: Label) {
    let differs = b.label();
    b.load(Size::W, Reg::R2, DATA, at);
    b.load(Size::W, Reg::R3, MAC, 0);
    b.jump(Jmp::Ne, Reg::R2, Reg::R3, differs);
    b.load(Size::H, Reg::R2, DATA, at + 4);
    b.load(Size::H, Reg::R3, MAC, 4);
    b.jump(Jmp::Eq, Reg::R2, Reg::R3, then);
    b.bind(differs);
}

/// Copies `len` (even) octets from `src + from` to the stack at `R10 + to`, two at a
/// time (stack stores must be aligned; `to` is even). Clobbers R2.
fn copy16(b: &mut Builder, to: i16, src: Reg, from: i16, len: i16) {
    for i in (0..len).step_by(2) {
        b.load(Size::H, Reg::R2, src, from + i);
        b.store(Size::H, Reg::R10, to + i, Reg::R2);
    }
}

/// Overwrites the first `len` octets of the frame with the stack buffer at
/// `R10 + buf` (bpf_skb_store_bytes, which unshares a cloned frame first); goes to
/// `otherwise` if it fails. Packet pointers are invalid afterwards.
/// Goes to `otherwise` when the speaker's heartbeat deadline has passed (or cannot be
/// read): a stalled speaker must not answer. Clobbers R0-R5; call it before the frame
/// is changed, so a stale question goes to the stack untouched.
fn heartbeat_fresh(b: &mut Builder, deadline: i32, otherwise: Label) {
    b.call(FN_KTIME_GET_NS);
    b.store(Size::Dw, Reg::R10, STACK_NOW, Reg::R0);
    b.store_imm(Size::W, Reg::R10, STACK_COUNTER_INDEX, 0);
    b.ld_map_fd(Reg::R1, deadline);
    b.mov64(Reg::R2, Reg::R10);
    b.alu64_imm(Alu::Add, Reg::R2, i32::from(STACK_COUNTER_INDEX));
    b.call(FN_MAP_LOOKUP_ELEM);
    b.jump_imm(Jmp::Eq, Reg::R0, 0, otherwise);
    b.load(Size::Dw, Reg::R1, Reg::R0, 0);
    b.load(Size::Dw, Reg::R2, Reg::R10, STACK_NOW);
    b.jump(Jmp::Gt, Reg::R2, Reg::R1, otherwise);
}

/// Goes to `otherwise` unless the 6 octets at `DATA + at` are a unicast, non-zero MAC:
/// an answer sent there reaches exactly one host.
fn unicast_mac(b: &mut Builder, at: i16, otherwise: Label) {
    b.load(Size::B, Reg::R2, DATA, at);
    b.jump_imm(Jmp::Set, Reg::R2, 1, otherwise);
    b.load(Size::W, Reg::R2, DATA, at);
    b.load(Size::H, Reg::R3, DATA, at + 4);
    b.alu64(Alu::Or, Reg::R2, Reg::R3);
    b.jump_imm(Jmp::Eq, Reg::R2, 0, otherwise);
}

fn store_frame(b: &mut Builder, buf: i16, len: i32, otherwise: Label) {
    b.mov64(Reg::R1, CTX);
    b.mov64_imm(Reg::R2, 0);
    b.mov64(Reg::R3, Reg::R10);
    b.alu64_imm(Alu::Add, Reg::R3, i32::from(buf));
    b.mov64_imm(Reg::R4, len);
    b.mov64_imm(Reg::R5, 0);
    b.call(FN_SKB_STORE_BYTES);
    b.jump_imm(Jmp::Ne, Reg::R0, 0, otherwise);
}

/// Goes to `otherwise` unless the octet at `DATA + at` is `value`.
fn expect_u8(b: &mut Builder, at: i16, value: u8, otherwise: Label) {
    b.load(Size::B, Reg::R2, DATA, at);
    b.jump_imm(Jmp::Ne, Reg::R2, i32::from(value), otherwise);
}

/// Goes to `otherwise` unless the two octets at `DATA + at` are `value`.
fn expect_u16(b: &mut Builder, at: i16, value: [u8; 2], otherwise: Label) {
    b.load(Size::H, Reg::R2, DATA, at);
    b.jump_imm(Jmp::Ne, Reg::R2, wire16(value), otherwise);
}

/// Goes to `otherwise` unless the four octets at `DATA + at` are `value`.
fn expect_u32(b: &mut Builder, at: i16, value: [u8; 4], otherwise: Label) {
    b.load(Size::W, Reg::R2, DATA, at);
    b.jump32_imm(Jmp::Ne, Reg::R2, wire32(value), otherwise);
}

/// Goes to `otherwise` unless `len` octets at `DATA + a` equal those at `DATA + b`
/// (`len` a multiple of 4; clobbers R2, R3).
fn expect_same(b: &mut Builder, a: i16, other: i16, len: i16, otherwise: Label) {
    for i in (0..len).step_by(4) {
        b.load(Size::W, Reg::R2, DATA, a + i);
        b.load(Size::W, Reg::R3, DATA, other + i);
        b.jump(Jmp::Ne, Reg::R2, Reg::R3, otherwise);
    }
}

fn answer_arp(b: &mut Builder, maps: Maps, pass: Label, redirect: Label) {
    let dst_is_ours = b.label();
    let dst_not_broadcast = b.label();
    let trimmed = b.label();

    count(b, maps.counters, ARP_SEEN);
    need(b, ARP_FRAME_LEN, pass);
    // Hardware type 1, protocol 0x0800, lengths 6 and 4, operation request.
    expect_u32(b, ARP_FIXED, [0, 1, 0x08, 0x00], pass);
    expect_u16(b, ARP_FIXED + 4, [6, 4], pass);
    expect_u16(b, ARP_OP, [0, 1], pass);
    // The sender MAC is unicast and not zero.
    unicast_mac(b, ARP_SHA, pass);
    // Not gratuitous: sender IP differs from target IP.
    b.load(Size::W, Reg::R2, DATA, ARP_SPA);
    b.load(Size::W, Reg::R3, DATA, ARP_TPA);
    b.jump(Jmp::Eq, Reg::R2, Reg::R3, pass);
    // Key: ifindex, ::ffff:target.
    key_ifindex(b);
    b.store_imm(Size::W, Reg::R10, STACK_KEY + 4, 0);
    b.store_imm(Size::W, Reg::R10, STACK_KEY + 8, 0);
    b.store_imm(
        Size::W,
        Reg::R10,
        STACK_KEY + 12,
        wire32([0, 0, 0xff, 0xff]),
    );
    b.store(Size::W, Reg::R10, STACK_KEY + 16, Reg::R3);
    lookup_mac(b, maps.addresses, pass);
    if_our_mac(b, ETH_SRC, pass);
    // Ethernet destination: broadcast or our MAC.
    b.load(Size::W, Reg::R2, DATA, ETH_DST);
    b.jump32_imm(Jmp::Ne, Reg::R2, -1, dst_not_broadcast);
    b.load(Size::H, Reg::R2, DATA, ETH_DST + 4);
    b.jump_imm(Jmp::Eq, Reg::R2, 0xffff, dst_is_ours);
    b.bind(dst_not_broadcast);
    if_our_mac(b, ETH_DST, dst_is_ours);
    b.goto(pass);
    b.bind(dst_is_ours);

    // Padding after the 42 octets is cut, as `decide` replies with 42 octets.
    b.load(Size::W, Reg::R2, CTX, SKB_LEN);
    b.jump_imm(Jmp::Eq, Reg::R2, ARP_FRAME_LEN, trimmed);
    b.mov64(Reg::R1, CTX);
    b.mov64_imm(Reg::R2, ARP_FRAME_LEN);
    b.mov64_imm(Reg::R3, 0);
    b.call(FN_SKB_CHANGE_TAIL);
    b.jump_imm(Jmp::Ne, Reg::R0, 0, pass);
    load_packet_pointers(b);
    need(b, ARP_FRAME_LEN, pass);
    b.bind(trimmed);

    // RFC 826: swap sender and target, put in our addresses, opcode reply.
    copy16(b, ARP_BUF, DATA, ARP_SHA, 6);
    copy16(b, ARP_BUF + ETH_SRC, MAC, 0, 6);
    // EtherType, hardware and protocol types and lengths: as received (checked).
    copy16(b, ARP_BUF + ETH_TYPE, DATA, ETH_TYPE, ARP_OP - ETH_TYPE);
    b.store_imm(Size::H, Reg::R10, ARP_BUF + ARP_OP, wire16([0, 2]));
    copy16(b, ARP_BUF + ARP_SHA, MAC, 0, 6);
    copy16(b, ARP_BUF + ARP_SPA, DATA, ARP_TPA, 4);
    copy16(b, ARP_BUF + ARP_THA, DATA, ARP_SHA, 6);
    copy16(b, ARP_BUF + ARP_TPA, DATA, ARP_SPA, 4);
    heartbeat_fresh(b, maps.deadline, pass);
    store_frame(b, ARP_BUF, ARP_FRAME_LEN, pass);
    count(b, maps.counters, ARP_ANSWERED);
    b.goto(redirect);
}

/// R2 = the ones' complement sum (RFC 1071) of the ICMPv6 pseudo-header and message
/// of an 86-octet NS or NA frame at `base + at` (`at` = 0 for the frame's first
/// octet): source, destination and the 32-octet message are contiguous at 22..86; the
/// upper-layer length (32) and next header (58) are added as a constant. The sum is
/// in the byte order of the loads, so it is stored or compared as loaded (RFC 1071
/// §2(B)). `base + at + 22` must be 4-aligned on the stack. Clobbers R3.
fn icmpv6_sum(b: &mut Builder, base: Reg, at: i16) {
    b.mov64_imm(Reg::R2, 0);
    for off in (IP6_SRC..NS_FRAME_LEN as i16).step_by(4) {
        b.load(Size::W, Reg::R3, base, at + off);
        b.alu64(Alu::Add, Reg::R2, Reg::R3);
    }
    let pseudo = NS_ICMP_LEN + u16::from(NEXT_HEADER_ICMPV6);
    b.alu64_imm(Alu::Add, Reg::R2, wire16(pseudo.to_be_bytes()));
    // Fold 64 → 32 → 16 bits, carries added back in.
    for _ in 0..2 {
        b.mov64(Reg::R3, Reg::R2);
        b.alu64_imm(Alu::Rsh, Reg::R3, 32);
        b.alu32(Alu::Mov, Reg::R2, Reg::R2);
        b.alu64(Alu::Add, Reg::R2, Reg::R3);
    }
    for _ in 0..2 {
        b.mov64(Reg::R3, Reg::R2);
        b.alu64_imm(Alu::Rsh, Reg::R3, 16);
        b.alu64_imm(Alu::And, Reg::R2, 0xffff);
        b.alu64(Alu::Add, Reg::R2, Reg::R3);
    }
}

fn answer_ns(b: &mut Builder, maps: Maps, pass: Label, redirect: Label) {
    let dst_checked = b.label();
    let not_target = b.label();
    let eth_dst_ok = b.label();

    need(b, i32::from(ICMP) + 1, pass);
    expect_u8(b, IP6_NEXT_HEADER, NEXT_HEADER_ICMPV6, pass);
    expect_u8(b, ICMP, TYPE_NEIGHBOR_SOLICITATION, pass);
    count(b, maps.counters, NS_SEEN);
    b.load(Size::W, Reg::R2, CTX, SKB_LEN);
    b.jump_imm(Jmp::Ne, Reg::R2, NS_FRAME_LEN, pass);
    need(b, NS_FRAME_LEN, pass);
    b.load(Size::B, Reg::R2, DATA, IP6_VERSION);
    b.alu64_imm(Alu::And, Reg::R2, 0xf0);
    b.jump_imm(Jmp::Ne, Reg::R2, 0x60, pass);
    expect_u16(b, IP6_PAYLOAD_LEN, NS_ICMP_LEN.to_be_bytes(), pass);
    // RFC 4861 §7.1.1: hop limit 255, code 0.
    expect_u8(b, IP6_HOP_LIMIT, 255, pass);
    expect_u8(b, ICMP_CODE, 0, pass);
    // Exactly one option: source link-layer address, length 1 (8 octets), naming one
    // host (the answer goes there).
    expect_u16(b, ND_OPTION, [1, 1], pass);
    unicast_mac(b, ND_OPTION_MAC, pass);
    // Target and source not multicast; source not :: (DAD goes to the sockets).
    b.load(Size::B, Reg::R2, DATA, ND_TARGET);
    b.jump_imm(Jmp::Eq, Reg::R2, 0xff, pass);
    b.load(Size::B, Reg::R2, DATA, IP6_SRC);
    b.jump_imm(Jmp::Eq, Reg::R2, 0xff, pass);
    b.load(Size::Dw, Reg::R2, DATA, IP6_SRC);
    b.load(Size::Dw, Reg::R3, DATA, IP6_SRC + 8);
    b.alu64(Alu::Or, Reg::R2, Reg::R3);
    b.jump_imm(Jmp::Eq, Reg::R2, 0, pass);
    // Destination: the target itself, or its solicited-node group ff02::1:ffXX:XXXX.
    expect_same(b, IP6_DST, ND_TARGET, 16, not_target);
    b.goto(dst_checked);
    b.bind(not_target);
    expect_u32(b, IP6_DST, [0xff, 0x02, 0, 0], pass);
    expect_u32(b, IP6_DST + 4, [0, 0, 0, 0], pass);
    expect_u32(b, IP6_DST + 8, [0, 0, 0, 1], pass);
    expect_u8(b, IP6_DST + 12, 0xff, pass);
    b.load(Size::H, Reg::R2, DATA, IP6_DST + 13);
    b.load(Size::H, Reg::R3, DATA, ND_TARGET + 13);
    b.jump(Jmp::Ne, Reg::R2, Reg::R3, pass);
    b.load(Size::B, Reg::R2, DATA, IP6_DST + 15);
    b.load(Size::B, Reg::R3, DATA, ND_TARGET + 15);
    b.jump(Jmp::Ne, Reg::R2, Reg::R3, pass);
    b.bind(dst_checked);
    icmpv6_sum(b, DATA, 0);
    b.jump_imm(Jmp::Ne, Reg::R2, 0xffff, pass);
    // Key: ifindex, target.
    key_ifindex(b);
    for i in (0..16).step_by(4) {
        b.load(Size::W, Reg::R2, DATA, ND_TARGET + i);
        b.store(Size::W, Reg::R10, STACK_KEY + 4 + i, Reg::R2);
    }
    lookup_mac(b, maps.addresses, pass);
    if_our_mac(b, ETH_SRC, pass);
    // Ethernet destination: our MAC, or 33:33 + the low 32 bits of a multicast
    // destination address (RFC 2464 §7).
    if_our_mac(b, ETH_DST, eth_dst_ok);
    expect_u8(b, IP6_DST, 0xff, pass);
    expect_u16(b, ETH_DST, [0x33, 0x33], pass);
    b.load(Size::W, Reg::R2, DATA, ETH_DST + 2);
    b.load(Size::W, Reg::R3, DATA, IP6_DST + 12);
    b.jump(Jmp::Ne, Reg::R2, Reg::R3, pass);
    b.bind(eth_dst_ok);

    // RFC 4861 §7.2.4: to the asker (its link-layer option), from the target, S and O
    // set, our MAC as the target link-layer address; traffic class and flow label 0.
    copy16(b, NS_BUF, DATA, ND_OPTION_MAC, 6);
    copy16(b, NS_BUF + ETH_SRC, MAC, 0, 6);
    copy16(b, NS_BUF + ETH_TYPE, DATA, ETH_TYPE, 2);
    b.store_imm(Size::H, Reg::R10, NS_BUF + IP6_VERSION, wire16([0x60, 0]));
    b.store_imm(Size::H, Reg::R10, NS_BUF + IP6_VERSION + 2, 0);
    // Payload length, next header, hop limit: as received (checked).
    copy16(b, NS_BUF + IP6_PAYLOAD_LEN, DATA, IP6_PAYLOAD_LEN, 4);
    copy16(b, NS_BUF + IP6_SRC, DATA, ND_TARGET, 16);
    copy16(b, NS_BUF + IP6_DST, DATA, IP6_SRC, 16);
    b.store_imm(
        Size::H,
        Reg::R10,
        NS_BUF + ICMP,
        wire16([TYPE_NEIGHBOR_ADVERTISEMENT, 0]),
    );
    b.store_imm(Size::H, Reg::R10, NS_BUF + ICMP_CHECKSUM, 0);
    b.store_imm(Size::H, Reg::R10, NS_BUF + ICMP_FLAGS, wire16([0x60, 0]));
    b.store_imm(Size::H, Reg::R10, NS_BUF + ICMP_FLAGS + 2, 0);
    copy16(b, NS_BUF + ND_TARGET, DATA, ND_TARGET, 16);
    b.store_imm(Size::H, Reg::R10, NS_BUF + ND_OPTION, wire16([2, 1]));
    copy16(b, NS_BUF + ND_OPTION_MAC, MAC, 0, 6);
    icmpv6_sum(b, Reg::R10, NS_BUF);
    b.alu64_imm(Alu::Xor, Reg::R2, 0xffff);
    b.store(Size::H, Reg::R10, NS_BUF + ICMP_CHECKSUM, Reg::R2);
    heartbeat_fresh(b, maps.deadline, pass);
    store_frame(b, NS_BUF, NS_FRAME_LEN, pass);
    count(b, maps.counters, NS_ANSWERED);
    b.goto(redirect);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_builds_and_fits_the_classic_limit() {
        let insns = program(3, 4, 5).expect("builds");
        assert!(insns.len() < 4096, "{} instructions", insns.len());
    }

    /// The golden listing beside this file is the program as a reviewer reads it: every change
    /// to the program shows in a commit as a diff of that listing.
    /// `FERROLB_UPDATE_GOLDEN=1` rewrites it.
    #[test]
    fn the_program_matches_its_golden_listing() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/l2/answer_prog.golden");
        let listing = super::super::ebpf_text::listing(&program(3, 4, 5).expect("builds"));
        if std::env::var_os("FERROLB_UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &listing).expect("write the golden listing");
        }
        let golden = std::fs::read_to_string(path).expect("read the golden listing");
        assert!(
            golden == listing,
            "the fast path program changed: review the difference and rerun with \
             FERROLB_UPDATE_GOLDEN=1 to accept it\n{}",
            first_difference(&golden, &listing)
        );
    }

    fn first_difference(golden: &str, now: &str) -> String {
        let line = golden
            .lines()
            .zip(now.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| golden.lines().count().min(now.lines().count()));
        format!(
            "first difference at line {}: golden {:?}, now {:?}",
            line + 1,
            golden.lines().nth(line),
            now.lines().nth(line)
        )
    }

    #[test]
    fn wire_constants_match_the_octets_a_native_load_sees() {
        let frame = [0x08u8, 0x06, 0xff, 0xff, 0, 0];
        assert_eq!(
            i32::from(u16::from_ne_bytes([frame[0], frame[1]])),
            wire16([0x08, 0x06])
        );
        assert_eq!(
            i32::from_ne_bytes([frame[2], frame[3], frame[4], frame[5]]),
            wire32([0xff, 0xff, 0, 0])
        );
    }
}
