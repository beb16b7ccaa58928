//! The L2 responder: answers ARP (RFC 826) and IPv6 neighbour discovery (RFC 4861) for
//! the Service addresses this node announces, on raw sockets, without promiscuous mode;
//! where the kernel allows, the common questions are answered first by a TCX ingress
//! program in the kernel's receive path (`fast_path`), the rest by the sockets.
//!
//! Pure modules (no I/O, no clock):
//! - `addr`: MAC addresses, solicited-node groups and their multicast MACs.
//! - `ethernet`: the Ethernet II header and bounds-checked reads.
//! - `arp`: the ARP codec, replies and gratuitous ARP.
//! - `ipv6`: the fixed IPv6 header.
//! - `checksum`: the Internet checksum and the ICMPv6 pseudo-header.
//! - `ndp`: neighbour solicitation checks and neighbour advertisements.
//! - `verdict`: `Verdict` and `DropReason`, the outcome for one frame.
//! - `decide`: frame + interface MAC + announced addresses → `Verdict`.
//! - `plan`: which addresses to join, leave and announce per interface.
//! - `filter`: the classic BPF programs that let only questions through.
//! - `counters`: per-interface, per-family counters (atomics).
//! - `ebpf`: an eBPF instruction builder (opcodes, labels, jump fixups).
//! - `answer_prog`: the in-kernel fast path program, built with `ebpf`; its listing (by
//!   `ebpf_text`) is kept as `answer_prog.golden`, so each change to it is a reviewable diff.
//! - `ebpf_text`: instructions as text in the verifier's notation.
//! - `error`: `L2Error`, failures of the socket layer and the responder.
//!
//! I/O (Linux only):
//! - `sys`: the raw socket syscalls; with `bpf_sys`, the only `unsafe` in `l2`.
//! - `bpf_sys`: bpf(2): maps, program load, TCX attach, test runs.
//! - `heartbeat`: the speaker's heartbeat; both answer paths fall silent when it stops.
//! - `fast_path`: the address map, and per interface the attached program and its
//!   counters (answers in the kernel's receive path; the sockets get the rest).
//! - `socket`: one filtered AF_PACKET socket per interface and family.
//! - `membership`: solicited-node group joins (packet membership and MLD).
//! - `link`: interface add/remove/carrier events over rtnetlink.
//! - `reader`: the per-interface thread that answers questions in batches.
//! - `served`: one served interface: sockets, reader, fast path, memberships, announcements.
//! - `driver`: the `Responder` task that ties them together.

pub mod addr;
pub mod answer_prog;
pub mod arp;
pub mod checksum;
pub mod counters;
pub mod decide;
pub mod ebpf;
pub mod ebpf_text;
pub mod error;
pub mod ethernet;
pub mod filter;
pub mod ipv6;
pub mod ndp;
pub mod plan;
pub mod verdict;

#[cfg(target_os = "linux")]
mod bpf_sys;
#[cfg(target_os = "linux")]
pub mod driver;
#[cfg(target_os = "linux")]
pub mod fast_path;
#[cfg(target_os = "linux")]
pub mod heartbeat;
#[cfg(target_os = "linux")]
pub mod link;
#[cfg(target_os = "linux")]
pub mod membership;
#[cfg(target_os = "linux")]
mod reader;
#[cfg(target_os = "linux")]
mod served;
#[cfg(target_os = "linux")]
pub mod socket;
#[cfg(target_os = "linux")]
mod sys;

pub use addr::MacAddr;
pub use decide::{Announced, decide};
#[cfg(target_os = "linux")]
pub use driver::{AnswerPath, Responder, ResponderConfig};
pub use verdict::{DropReason, Verdict};

#[cfg(test)]
mod captured_tests;
#[cfg(all(test, target_os = "linux"))]
mod fast_path_tests;
#[cfg(test)]
mod prop_tests;
