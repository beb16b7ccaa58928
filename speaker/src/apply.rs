//! What to change so that the node announces what the plan says. Pure: the announced state and
//! the wanted state in, the changes out; [`crate::daemon`] carries them out.
//!
//! - `l2`: IPs to announce (with their interfaces) and to withdraw.
//! - `bgp`: the session each selected `BGPPeer` needs, and the routes it should carry.
//! - `bfd`: the BFD sessions guarding them, and whether a guarded BGP session may run.
//! - `stop`: whether SIGTERM stops the BGP sessions for a restart or withdraws the routes.

pub mod bfd;
pub mod bgp;
pub mod l2;
pub mod stop;
