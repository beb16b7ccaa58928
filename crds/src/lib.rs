//! `ferrolb-api`: the MetalLB-compatible API that every FerroLB component shares.
//!
//! - [`types`]: the `metallb.io` custom resources, exactly as MetalLB serves them.
//! - [`crd`]: the CustomResourceDefinitions generated from [`types`].
//! - [`addr`]: address ranges (CIDRs and `a-b`), sizes, overlaps, `avoidBuggyIPs`.
//! - [`selector`]: label selector matching, validation and canonical form.
//! - [`service`]: what FerroLB reads from a Service (annotations, requested IPs, families, ports).
//! - [`community`]: BGP community values. [`duration`]: Go duration strings.
//! - [`validate`]: the rules one object satisfies on its own.
//! - [`config`]: the resolved [`config::Config`] built from all objects, with cross-object rules.
//! - [`error`]: configuration problems naming kind, object, field and reason.
//! - [`config_state`]: what a component's `ConfigurationState` says about those problems.
//! - [`manifest`]: reading multi-document YAML into typed objects.
//! - [`key`]: the `namespace/name` key of an object.
//!
//! Everything here is pure: no I/O, no clock, no randomness.

pub mod addr;
pub mod community;
pub mod config;
pub mod config_state;
pub mod crd;
pub mod duration;
pub mod error;
pub mod key;
pub mod manifest;
pub mod selector;
pub mod service;
pub mod types;
pub mod validate;
