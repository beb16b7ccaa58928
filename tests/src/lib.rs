//! `ferrolb-tests`: test harnesses, integration and end-to-end tests.
//!
//! - [`kubesim`]: an in-process Kubernetes API server speaking the real HTTP API, so the real
//!   kube-rs client, `kubectl` and Helm talk to it unmodified (binary: `kubesim`).
//! - [`netlab`]: hosts built from network namespaces, with FRR routers and processes inside.
//! - [`chart`]: FerroLB's Helm chart through the Helm v4 engine: lint, render, install.
//! - [`cluster`]: kubesim + netlab + FerroLB's binaries as one lab: the speaker's end-to-end tests
//!   and the `ferrolb-lab` demo.

pub mod chart;
pub mod cluster;
pub mod kubesim;
pub mod netlab;
