//! Wire protocols FerroLB speaks, with no Kubernetes in them.
//!
//! Codecs are pure (bytes in, values out); state machines are pure (`step(now, input) -> outputs`);
//! the small drivers that own sockets and timers live beside them.
//!
//! - [`bfd`]: BFD sessions (RFC 5880 state machine, RFC 5881/5883 over UDP) that guard BGP.
//! - [`bgp`]: BGP-4 sessions (RFC 4271 state machine, capabilities, framing) and update packing.
//! - [`l2`]: ARP and NDP: pure codecs and answer rules, AF_PACKET sockets, the `Responder`.
//! - [`time`]: optional deadlines as the drivers' `select!` loops wait on them.
pub mod bfd;
pub mod bgp;
pub mod l2;
pub mod time;
