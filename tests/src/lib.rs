//! `ferrolb-tests`: FerroLB's end-to-end lab.
//!
//! - [`cluster`]: kubesim (`ferrolb-kubesim`) + the network lab (`ferrolb-netlab`) + FerroLB's
//!   binaries as one cluster on one machine: the speaker's end-to-end tests and benches, and
//!   the `ferrolb-lab` demo binary.

pub mod cluster;
