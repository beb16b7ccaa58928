//! `ferrolb-speaker`: makes Service IPs reachable from each node (L2: ARP/NDP; BGP: sessions with
//! the operator's routers).
//!
//! - [`members`]: which speakers are alive (SWIM gossip, authenticated UDP).
//! - [`plan`]: a pure function from the cluster's state to what this node announces.
//!
//! Membership, the L2 responder, BGP sessions and the daemon come with the speaker issue.

pub mod members;
pub mod plan;
