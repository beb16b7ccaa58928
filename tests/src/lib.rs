//! `ferrolb-tests`: FerroLB's end-to-end lab.
//!
//! - [`cluster`]: kubesim (`ferrolb-kubesim`) + the network lab (`ferrolb-netlab`) + FerroLB's
//!   binaries as one cluster on one machine: the speaker's end-to-end tests and benches, and
//!   the `ferrolb-lab` demo binary.
//! - [`chaos`]: the chaos suite on that cluster — faults one after another while clients probe
//!   the Services; its test (`tests/chaos.rs`) and bench (`benches/chaos.rs`).

pub mod chaos;
pub mod cluster;
