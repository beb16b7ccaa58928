//! What goes into the allocator and what comes out: the request of one Service, the outcome of
//! an assignment, and a pool's usage. Values only.

use std::net::IpAddr;

use ferrolb_api::addr::Family;
use ferrolb_api::service::LoadBalancerRequest;

use super::{AllocError, Requester};

/// Everything the allocator needs to know about one Service.
#[derive(Debug, Clone, Copy)]
pub struct ServiceRequest<'a> {
    /// `namespace/name`.
    pub key: &'a str,
    /// Namespace and labels, for pool restrictions.
    pub requester: Requester<'a>,
    /// What the Service asks for.
    pub request: &'a LoadBalancerRequest,
}

/// What a Service holds after [`Allocator::assign`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The pool the IPs come from.
    pub pool: String,
    /// One IP per family, primary family first.
    pub ips: Vec<IpAddr>,
    /// How this differs from before.
    pub change: Change,
    /// A PreferDualStack Service got one family only.
    pub missing_family: Option<Family>,
}

/// How an [`Outcome`] differs from what the Service held before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Same IPs as before.
    Kept,
    /// The Service held nothing and now holds IPs.
    Allocated,
    /// A PreferDualStack Service that held one family gained the other.
    Extended,
    /// The IPs held were no longer allowed and were replaced (MetalLB's `ClearAssignment`).
    Replaced {
        /// The IPs given up.
        cleared: Vec<IpAddr>,
        /// Why they were no longer allowed.
        why: AllocError,
    },
}

/// Addresses of one pool, for the pool's status and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolUsage {
    /// Distinct IPv4 addresses held.
    pub assigned_v4: u128,
    /// Distinct IPv6 addresses held.
    pub assigned_v6: u128,
    /// IPv4 addresses still free.
    pub available_v4: u128,
    /// IPv6 addresses still free.
    pub available_v6: u128,
}
