//! The namespace lab of the BFD interop tests: a FerroLB node, a forwarding hop and a router
//! namespace where the test starts FRR (zebra + bfdd) or BIRD; skip rules, polling with
//! deadlines, and teardown on drop (also when a test panics).
//!
//! ```text
//!   [<p>n1] eth0 192.0.2.1/24      ──veth── p1 192.0.2.254/24      [<p>r]   single hop
//!           2001:db8:1::1/64                   2001:db8:1::fe/64
//!   [<p>n1] eth1 203.0.113.1/24    ──veth── fwa 203.0.113.254/24 [<p>fw] fwb 198.51.100.254/24
//!           2001:db8:3::1/64                  2001:db8:3::fe/64        2001:db8:2::fe/64
//!                                                        ──veth── eth1 198.51.100.1/24  [<p>r]
//!                                                                      2001:db8:2::1/64  multihop
//! ```
//! `fw` forwards both families; n1 and r route each other's multihop prefix through it, so
//! multihop packets arrive with TTL 254. Built on `ferrolb-netlab` (namespaces, links,
//! processes stopped by PID, the runtime inside n1, the skip rule); the FRR bfdd and BIRD BFD
//! helpers are in `routers`. Everything is removed on drop, also when a test panics: the node's
//! runtime first, then the lab (daemons by PID, then namespaces).

#![allow(dead_code)]

pub(crate) mod routers;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrolb_netlab::{Netlab, NsRuntime};
use ferrolb_proto::bfd::{Bfd, DriverConfig, Profile, SessionHandle, SessionKey, SessionSpec};

pub(crate) use ferrolb_netlab::can_run;

/// How long any single condition may take on a loaded 2-core machine.
pub(crate) const DEADLINE: Duration = ferrolb_netlab::routers::DEADLINE;

/// The four paths of the lab: (name, our address, the router's, multihop).
pub(crate) const PATHS: [(&str, &str, &str, bool); 4] = [
    ("single hop IPv4", "192.0.2.1", "192.0.2.254", false),
    ("single hop IPv6", "2001:db8:1::1", "2001:db8:1::fe", false),
    ("multihop IPv4", "203.0.113.1", "198.51.100.1", true),
    ("multihop IPv6", "2001:db8:3::1", "2001:db8:2::1", true),
];

/// Runs a command that must succeed.
pub(crate) fn must(args: &[&str]) {
    ferrolb_netlab::must(args).unwrap_or_else(|e| panic!("{e}"));
}

/// Polls `check` until it returns `Ok` or `timeout` passes; then panics with `what` and the
/// last observation. `check` returns `Err(observation)` while the condition does not hold.
pub(crate) fn poll<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    check: impl FnMut() -> Result<T, String>,
) -> T {
    ferrolb_netlab::poll(what, timeout, interval, check).unwrap_or_else(|e| panic!("{e}"))
}

/// The FerroLB node: a tokio runtime inside n1 with the BFD task on it.
#[derive(Debug)]
pub(crate) struct Node {
    runtime: NsRuntime,
    /// The BFD task's handle (its sockets live in n1).
    pub(crate) bfd: Bfd,
}

impl Node {
    fn start(ns: &str) -> Node {
        let runtime = NsRuntime::start(ns).unwrap_or_else(|e| panic!("{e}"));
        let (bfd, _task) =
            runtime.block_on(async { ferrolb_proto::bfd::spawn(DriverConfig::default()) });
        Node { runtime, bfd }
    }

    /// Runs a future on the node's runtime and waits for its result.
    pub(crate) fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.block_on(fut)
    }

    /// Adds a session and returns its handle.
    pub(crate) fn add(&self, key: SessionKey, profile: Profile) -> SessionHandle {
        let bfd = self.bfd.clone();
        self.block_on(async move { bfd.add(SessionSpec { key, profile }).await })
            .expect("session added")
    }

    /// Changes a session's profile.
    pub(crate) fn update(&self, key: &SessionKey, profile: Profile) {
        let bfd = self.bfd.clone();
        let key = key.clone();
        self.block_on(async move { bfd.update(&key, profile).await })
            .expect("session updated");
    }
}

/// The key of one of [`PATHS`].
pub(crate) fn key(ours: &str, theirs: &str, is_multihop: bool) -> SessionKey {
    SessionKey {
        peer: theirs.parse().expect("address"),
        local: Some(ours.parse().expect("address")),
        is_multihop,
        interface: None,
    }
}

/// The node and the namespaces and daemons of one test. Field order is drop order: the node's
/// runtime stops before its namespace goes.
#[derive(Debug)]
pub(crate) struct Lab {
    node: Node,
    pub(crate) net: Netlab,
}

impl Lab {
    /// The topology of the module doc, with the FerroLB node running.
    pub(crate) fn new() -> Lab {
        Self::build().unwrap_or_else(|e| panic!("{e}"))
    }

    fn build() -> Result<Lab, ferrolb_netlab::LabError> {
        let mut net = Netlab::new("bfd")?;
        for role in ["n1", "fw", "r"] {
            net.add_namespace(role)?;
        }
        net.link(
            ("n1", "eth0", &["192.0.2.1/24", "2001:db8:1::1/64"]),
            ("r", "p1", &["192.0.2.254/24", "2001:db8:1::fe/64"]),
        )?;
        net.link(
            ("n1", "eth1", &["203.0.113.1/24", "2001:db8:3::1/64"]),
            ("fw", "fwa", &["203.0.113.254/24", "2001:db8:3::fe/64"]),
        )?;
        net.link(
            ("fw", "fwb", &["198.51.100.254/24", "2001:db8:2::fe/64"]),
            ("r", "eth1", &["198.51.100.1/24", "2001:db8:2::1/64"]),
        )?;
        for (role, prefix, via) in [
            ("n1", "198.51.100.0/24", "203.0.113.254"),
            ("n1", "2001:db8:2::/64", "2001:db8:3::fe"),
            ("r", "203.0.113.0/24", "198.51.100.254"),
            ("r", "2001:db8:3::/64", "2001:db8:2::fe"),
        ] {
            net.exec_ok(role, &["ip", "route", "add", prefix, "via", via])?;
        }
        for role in ["n1", "r"] {
            // A blackhole rule at preference 10 (`drop_from`) must come before local delivery.
            for family in ["-4", "-6"] {
                net.exec_ok(
                    role,
                    &[
                        "ip", family, "rule", "add", "pref", "100", "lookup", "local",
                    ],
                )?;
                net.exec_ok(
                    role,
                    &["ip", family, "rule", "del", "pref", "0", "lookup", "local"],
                )?;
            }
        }
        net.sysctl("fw", "net.ipv4.ip_forward=1")?;
        net.sysctl("fw", "net.ipv6.conf.all.forwarding=1")?;
        let node = Node::start(&net.ns("n1"));
        Ok(Lab { node, net })
    }

    /// The full name of a namespace of this lab (`n1`, `fw`, `r`).
    pub(crate) fn ns(&self, role: &str) -> String {
        self.net.ns(role)
    }

    /// The FerroLB node.
    pub(crate) fn node(&self) -> &Node {
        &self.node
    }

    /// A private directory for one daemon, owned by `owner` when given.
    pub(crate) fn daemon_dir(&self, name: &str, owner: Option<&str>) -> PathBuf {
        let dir = self.net.path(name);
        std::fs::create_dir_all(&dir).expect("daemon dir");
        if let Some(owner) = owner {
            must(&["chown", "-R", owner, dir.to_str().expect("utf-8")]);
        }
        dir
    }

    /// Starts `args` inside namespace `role` in the foreground; output goes to `log`.
    pub(crate) fn start_daemon(&mut self, name: &str, role: &str, args: &[&str], log: &Path) {
        self.net
            .spawn(name, role, args, &[], log)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Waits until `path` exists (a daemon's socket), failing early if a daemon died.
    pub(crate) fn wait_for_file(&mut self, path: &Path) {
        let net = &mut self.net;
        poll(
            &format!("{} appears", path.display()),
            DEADLINE,
            Duration::from_millis(50),
            || {
                if let Err(e) = net.processes().check_alive() {
                    panic!("{e}");
                }
                if path.exists() {
                    Ok(())
                } else {
                    Err("absent".into())
                }
            },
        );
    }

    /// Drops, at namespace `role`'s input, every packet from `source` arriving on `iif`: one
    /// direction of a link fails while the other keeps working and the sender notices nothing.
    /// (This kernel has neither `sch_netem` nor nftables; policy routing is always there.)
    pub(crate) fn drop_from(&self, role: &str, source: &str, iif: &str) {
        self.rule("add", role, source, iif);
    }

    /// Undoes [`Lab::drop_from`].
    pub(crate) fn heal_from(&self, role: &str, source: &str, iif: &str) {
        self.rule("del", role, source, iif);
    }

    fn rule(&self, action: &str, role: &str, source: &str, iif: &str) {
        let family = if is_v6(source) { "-6" } else { "-4" };
        self.net
            .exec_ok(
                role,
                &[
                    "ip",
                    family,
                    "rule",
                    action,
                    "pref",
                    "10",
                    "from",
                    source,
                    "iif",
                    iif,
                    "blackhole",
                ],
            )
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Whether an address is IPv6.
pub(crate) fn is_v6(addr: &str) -> bool {
    addr.parse::<IpAddr>().is_ok_and(|a| a.is_ipv6())
}
