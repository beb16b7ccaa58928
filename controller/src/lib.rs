//! `ferrolb-controller`: gives LoadBalancer Services their external IPs.
//!
//! - [`admission`]: what the validating webhook admits, judged against the cluster.
//! - [`alloc`]: the pure allocator: pools, sharing, families, restrictions.
//! - [`plan`]: what one Service should look like (ingress IPs, pool annotation, Events).
//! - [`reconcile`]: the watch-and-write shell around `alloc` and `plan`.
//! - [`validate`]: the offline `validate` subcommand, checking manifests with the same code the
//!   webhook will use.
//!
//! The allocator, reconciler, webhook and leader election come with the controller issue.

pub mod admission;
pub mod alloc;
pub mod plan;
pub mod reconcile;
pub mod validate;
