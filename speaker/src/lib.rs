//! `ferrolb-speaker`: makes Service IPs reachable from each node (L2: ARP/NDP; BGP: sessions with
//! the operator's routers).
//!
//! Pure modules (no I/O, no clock):
//! - [`plan`]: from the cluster's state to what this node announces.
//! - [`cluster`]: API objects read as the plan's inputs.
//! - [`inputs`]: Services and endpoints kept as the plan's view, one watch event at a time.
//! - [`interfaces`]: which interfaces an L2 announcement uses.
//! - [`apply`]: the changes from what is announced to what the plan wants.
//! - [`status`]: the status objects wanted, and the writes to get there.
//!
//! Edges: [`members`] (gossip over UDP), [`daemon`] (watches, responder, BGP sessions, API
//! writes), [`metrics`] and [`http`], [`memory`] (allocator settings).

pub mod apply;
pub mod carrier;
pub mod cluster;
pub mod daemon;
pub mod events;
pub mod http;
pub mod inputs;
pub mod interfaces;
pub mod links;
pub mod liveness;
pub mod members;
pub mod memory;
pub mod metrics;
pub mod plan;
pub mod schedule;
pub mod status;
