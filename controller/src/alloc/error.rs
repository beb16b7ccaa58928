//! Why an allocation fails or an address is taken back.

use std::net::IpAddr;

use ferrolb_api::addr::Family;

use super::selection::Refusal;

/// Why a Service cannot get (or keep) addresses. Each variant is something the user can read in
/// the Service's Events and fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The `address-pool` annotation names no valid pool.
    #[error("pool {0:?} does not exist")]
    UnknownPool(String),
    /// The pool does not admit the Service.
    #[error("pool {pool:?} does not allow this service: {}", refusal_text(*refusal))]
    PoolNotAllowed {
        /// The pool.
        pool: String,
        /// Which restriction refuses.
        refusal: Refusal,
    },
    /// A requested IP lies in no pool (or not in the named one).
    #[error("IP {ip} is not in {}", pool.as_deref().map_or("any pool".to_owned(), |p| format!("pool {p:?}")))]
    NotInPool {
        /// The IP.
        ip: IpAddr,
        /// The pool it had to be in, if one was named.
        pool: Option<String>,
    },
    /// The Service now requests other IPs than it holds.
    #[error("the service now requests {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    RequestChanged(Vec<IpAddr>),
    /// Requested IPs from two pools.
    #[error("requested IPs {0} and {1} are in different pools")]
    DifferentPools(IpAddr, IpAddr),
    /// A requested IP the pool excludes (`avoidBuggyIPs`).
    #[error("requested IP {ip} ends in .0 or .255 and pool {pool:?} avoids such addresses")]
    BuggyIp {
        /// The IP.
        ip: IpAddr,
        /// The pool.
        pool: String,
    },
    /// The IP is held by Services this one may not share with.
    #[error("IP {ip} is in use by {holder} and cannot be shared: {why}")]
    InUse {
        /// The IP.
        ip: IpAddr,
        /// One Service holding it.
        holder: String,
        /// Which sharing rule fails.
        why: &'static str,
    },
    /// No pool has a free (or shareable) address of the needed families.
    #[error("no available IPs{}", families_text(.0))]
    Exhausted(Vec<Family>),
}

fn refusal_text(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::Namespace => "its namespace is not among the pool's namespaces",
        Refusal::ServiceSelector => "its labels match none of the pool's serviceSelectors",
    }
}

fn families_text(families: &[Family]) -> String {
    match families {
        [] => String::new(),
        [one] => format!(" for {one}"),
        many => format!(
            " for {}",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    }
}

impl AllocError {
    /// Stable CamelCase reason for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            AllocError::UnknownPool(_) => "UnknownPool",
            AllocError::PoolNotAllowed { .. } => "PoolNotAllowed",
            AllocError::NotInPool { .. } => "NotInPool",
            AllocError::DifferentPools(..) => "DifferentPools",
            AllocError::RequestChanged(_) => "RequestChanged",
            AllocError::BuggyIp { .. } => "BuggyIP",
            AllocError::InUse { .. } => "IPInUse",
            AllocError::Exhausted(_) => "NoAvailableIPs",
        }
    }
}
