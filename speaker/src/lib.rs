//! `ferrolb-speaker`: makes Service IPs reachable from each node (L2: ARP/NDP; BGP: sessions with
//! the operator's routers).
//!
//! Pure modules (no I/O, no clock): every decision of the speaker.
//! - [`plan`]: from the cluster's state to what this node announces.
//! - [`cluster`]: API objects read as the plan's and liveness's inputs.
//! - [`inputs`]: Services and endpoints kept as the plan's view, one watch event at a time.
//! - [`liveness`]: which nodes are alive, the gossip quorum, and whether L2 claims may be made.
//! - [`carrier`]: when to leave the membership for carrier loss, and when to rejoin.
//! - [`schedule`]: when to plan (watch lists, debounce, membership settling).
//! - [`interfaces`]: which interfaces an L2 announcement uses; [`links`]: the node's links.
//! - [`apply`]: the changes from what is announced to what the plan wants; the BGP sessions.
//! - [`status`]: the status objects wanted, and the writes to get there.
//! - [`events`]: the Kubernetes Events to publish, and their text.
//!
//! Edges: [`members`] (gossip over authenticated UDP; it beats the responder's heartbeat),
//! [`daemon`] (watches, responder, BGP sessions, API writes: it carries out what the pure
//! modules decide), [`metrics`] and [`http`], [`memory`] (allocator settings).

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
