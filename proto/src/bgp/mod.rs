//! BGP-4 for FerroLB's speaker: a pure session state machine, pure update packing, and the glue
//! to the `netgauze-bgp-pkt` wire codec.
//!
//! - `driver`: the tokio task per peer that owns sockets and timers around `fsm`.
//! - `md5`: TCP MD5 signatures (RFC 2385) on dialling and listening sockets; unsafe (FFI) code,
//!   with `sockopt`'s one `setsockopt`.
//! - `notification`: NOTIFICATION (code, subcode, data) values.
//! - `open`: OPEN contents, validation and capability negotiation.
//! - `fsm`: the RFC 4271 §8 session state machine (`step(now, input) -> outputs`).
//! - `packing`: pure update packing, desired vs advertised routes → encoded UPDATEs.
//! - `received`: prefixes a peer sends, counted per family but never kept; the max-prefix guard.
//! - `sockopt`: TTL / hop limit, GTSM's minimum TTL, TCP keepalive and user timeout, and the
//!   device (VRF) name of a session's sockets.
//! - `packet`: netgauze glue: the length-checked framer, decoding, OPEN/KEEPALIVE/NOTIFICATION.

pub mod driver;
pub mod fsm;
pub mod md5;
pub mod notification;
pub mod open;
pub mod packet;
pub mod packing;
pub mod received;
pub mod sockopt;
