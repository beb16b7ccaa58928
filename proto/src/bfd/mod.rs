//! BFD (RFC 5880) for FerroLB's speaker: asynchronous mode over UDP, single hop (RFC 5881) and
//! multihop (RFC 5883), IPv4 and IPv6, so that a BGP session learns of a dead path in
//! well under a second. Echo and Demand mode are not run (a profile asking for echo is refused).
//!
//! Pure (no I/O, no clock, no randomness):
//! - `packet`: the Control packet codec; the decoder refuses what RFC 5880 §6.8.6 discards.
//! - `fsm`: one session's state machine, `step(now, input) -> outputs`.
//! - `demux`: which session a packet belongs to, TTL rules, discriminators and source ports.
//! - `profile`: MetalLB's `BFDProfile` fields, defaults and bounds → session parameters.
//! - `timers`: every session's deadlines in one queue, served on a grid of the timer slack.
//! - `fasthash`: the hasher of the task's maps.
//! - `counters`: per-session and per-drop-reason counters (atomics), MetalLB metric names.
//! - `error`: `DropReason`, `ProfileError`, `BfdError`.
//!
//! I/O:
//! - `socket`: listeners that report TTL, destination and interface; per-session senders.
//! - `driver`: the BFD task and the speaker's `Bfd` handle (add, update, remove sessions;
//!   watch their status).
//!
//! ```no_run
//! use ferrolb_proto::bfd::{self, DriverConfig, Profile, SessionKey, SessionSpec, State};
//! # async fn demo() -> Result<(), ferrolb_proto::bfd::BfdError> {
//! let (bfd, _task) = bfd::spawn(DriverConfig::default());
//! let key = SessionKey {
//!     peer: "192.0.2.254".parse().expect("address"),
//!     local: Some("192.0.2.1".parse().expect("address")),
//!     is_multihop: false,
//!     interface: None,
//! };
//! let mut session = bfd.add(SessionSpec { key, profile: Profile::default() }).await?;
//! // The BGP session follows: torn down when BFD leaves Up, allowed again when it is back.
//! while session.status.changed().await.is_ok() {
//!     let is_up = session.status.borrow().state == State::Up;
//!     # let _ = is_up;
//! }
//! # Ok(()) }
//! ```

pub mod counters;
pub mod demux;
pub mod driver;
pub mod error;
pub mod fasthash;
pub mod fsm;
pub mod packet;
pub mod profile;
pub mod socket;
pub mod timers;

pub use demux::SessionKey;
pub use driver::{Bfd, DriverConfig, Ports, SessionHandle, SessionSpec, spawn};
pub use error::{BfdError, DropReason, ProfileError};
pub use fsm::Status;
pub use packet::{Diag, State};
pub use profile::Profile;
