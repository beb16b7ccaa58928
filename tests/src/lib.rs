//! `ferrolb-tests`: test harnesses, integration and end-to-end tests.
//!
//! - [`kubesim`]: an in-process Kubernetes API server speaking the real HTTP API, so the real
//!   kube-rs client, `kubectl` and Helm talk to it unmodified (binary: `kubesim`).
//! - `netlab` (network namespaces with real routers) and the `ferrolb-lab` demo arrive with the
//!   speaker issues.

pub mod kubesim;
