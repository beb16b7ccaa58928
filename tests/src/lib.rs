//! `ferrolb-tests`: FerroLB's end-to-end lab.
//!
//! - [`cluster`]: kubesim (`ferrolb-kubesim`) + the network lab (`ferrolb-netlab`) + FerroLB's
//!   binaries as one cluster on one machine: the speaker's end-to-end tests and benches, and
//!   the `ferrolb-lab` demo binary.
//! - [`chart`]: FerroLB's Helm chart through the Helm v4 engine: lint, render, install, and the
//!   chart "kubelet" that runs the binaries as the installed workloads say.
//! - [`chaos`]: the chaos suite on that cluster — faults one after another while clients probe
//!   the Services; its test (`tests/chaos.rs`) and bench (`benches/chaos.rs`).

pub mod chaos;
pub mod chart;
pub mod cluster;
