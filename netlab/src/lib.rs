//! `ferrolb-netlab`: FerroLB's network lab for tests and benches — network namespaces on one
//! machine joined by veths and a bridge, processes started inside them, and real routers and
//! clients (FRR, BIRD, GoBGP, arping, ndisc6). No Kubernetes and no FerroLB inside, so that
//! `ferrolb-proto`'s tests can use it as well as the cluster lab of `ferrolb-tests`.
//!
//! Rules of the lab: documentation addresses only, a unique name prefix per lab
//! (`fl-<tag>-<pid>-<n>-`), no route that leaves the machine, processes stopped by PID only, and
//! everything torn down on drop, also when a test panics.
//!
//! - [`prereq`]: the one root/program check with the one skip rule ([`can_run`]).
//! - [`lab`]: [`Netlab`] — namespaces, the switch, hosts, links, addresses, forwarding, teardown.
//! - [`cut`]: one-way link failures (nftables drops of one source on one interface).
//! - [`process`]: processes started inside namespaces, stopped by PID, their logs.
//! - [`netns`]: running a thread, a future or a listener inside a namespace.
//! - [`runtime`]: [`NsRuntime`], a tokio runtime living inside a namespace.
//! - [`command`]: running commands on the host or inside a namespace.
//! - [`poll`]: waiting on a condition with a deadline ([`poll()`], [`eventually`]).
//! - [`accept`]: accept loops that pause on EMFILE and the like instead of spinning.
//! - [`routers`]: FRR, BIRD and GoBGP — configuration, start, RIB reads ([`Router`]).
//! - [`l2`]: who answers ARP and NDP (`arping`, `ndisc6`), and every MAC that answers ARP.
//! - [`counters`]: kernel counters of a namespace, CPU and memory of a process.
//! - [`error`]: the lab's one error type, [`LabError`].
//! - `sys`: the only unsafe code (setns, geteuid, sysconf, an AF_PACKET socket).
//!
//! ```no_run
//! use ferrolb_netlab::{Netlab, can_run};
//! # fn demo() -> Result<(), ferrolb_netlab::LabError> {
//! if !can_run(&["arping"]) {
//!     return Ok(());
//! }
//! let mut lab = Netlab::new("demo")?;
//! lab.add_host("client", "eth0", &["192.0.2.1/24"])?;
//! lab.add_host("server", "eth0", &["192.0.2.2/24"])?;
//! lab.exec_ok("client", &["arping", "-c", "1", "-I", "eth0", "192.0.2.2"])?;
//! # Ok(()) }
//! ```

pub mod accept;
pub mod command;
pub mod counters;
pub mod cut;
pub mod error;
mod forward;
pub mod l2;
pub mod lab;
pub mod netns;
pub mod poll;
pub mod prereq;
pub mod process;
pub mod routers;
pub mod runtime;
mod sys;

pub use accept::AcceptErrors;
pub use command::{must, run, text};
pub use error::{LabError, io_error};
pub use lab::Netlab;
pub use poll::{eventually, eventually_async, poll};
pub use prereq::can_run;
pub use routers::{Bird, Families, Frr, Gobgp, Local, Neighbor, RibPath, Router, frr};
pub use runtime::NsRuntime;
