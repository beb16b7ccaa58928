//! The BGP interop tests' lab, on `ferrolb-netlab`: the router daemon (FRR, BIRD or GoBGP) runs
//! in the switch namespace, on `br0`, and node namespaces run FerroLB's own peer drivers on a
//! tokio runtime inside each node. Also included by `benches/bgp_update_rate.rs`.
//!
//! ```text
//!   [n1] eth0 ──veth── p-n1 ┐
//!                           ├─ br0 [sw] 192.0.2.254/24, 2001:db8:1::fe/64, the router daemon
//!   [n2] eth0 ──veth── p-n2 ┘
//! ```
//! Node `i` has 192.0.2.i/24 and 2001:db8:1::i/64. Everything is removed on drop, also when a
//! test panics: the nodes' runtimes first, then the lab (daemons by PID, then namespaces).

#![allow(dead_code)]

mod incoming;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrolb_netlab::routers::{self, Local};
use ferrolb_netlab::{Netlab, NsRuntime, counters};
use ferrolb_proto::bgp::driver::{self, Event, PeerConfig};
use ferrolb_proto::bgp::fsm::Config;
use ferrolb_proto::bgp::md5::{self, Md5Key};
use ferrolb_proto::bgp::open::{Families, LocalSpeaker, Negotiated, PeerAs};
use ferrolb_proto::bgp::packing::RouteSet;
use tokio::sync::mpsc;

pub(crate) use ferrolb_netlab::can_run;
pub(crate) use incoming::hand_over;
// Each test binary uses some of them.
#[allow(unused_imports)]
pub(crate) use ferrolb_netlab::routers::{Bird, Frr, Gobgp, Neighbor, RibPath, Router};

/// How long any single condition may take on a loaded 2-core machine.
pub(crate) const DEADLINE: Duration = routers::DEADLINE;

/// The router's AS and addresses on the bridge.
pub(crate) const ROUTER_AS: u32 = 64600;
pub(crate) const ROUTER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
pub(crate) const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0xfe);
const ROUTER: Local = Local {
    asn: ROUTER_AS,
    v4: ROUTER4,
    v6: ROUTER6,
};

/// Runs a command and returns its output; panics only when it cannot be started.
pub(crate) fn run(args: &[&str]) -> std::process::Output {
    ferrolb_netlab::run(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a command that must succeed.
pub(crate) fn must(args: &[&str]) {
    ferrolb_netlab::must(args).unwrap_or_else(|e| panic!("{e}"));
}

/// Polls `check` until it returns `Ok` or `timeout` passes; then panics with `what` and the
/// last observation.
pub(crate) fn poll<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    check: impl FnMut() -> Result<T, String>,
) -> T {
    ferrolb_netlab::poll(what, timeout, interval, check).unwrap_or_else(|e| panic!("{e}"))
}

/// The router's view of a neighbor exchanging `families` (FerroLB's type, as the tests use it).
pub(crate) fn neighbor(addr: IpAddr, remote_as: u32, families: Families) -> Neighbor {
    let families = routers::Families {
        ipv4_unicast: families.ipv4_unicast,
        ipv6_unicast: families.ipv6_unicast,
    };
    Neighbor::new(addr, remote_as, families)
}

/// A session configuration for the lab: fast retries, a given hold time, both families.
pub(crate) fn session(local_as: u32, peer_as: u32, router_id: Ipv4Addr) -> Config {
    let mut c = Config::new(LocalSpeaker {
        local_as,
        peer_as: PeerAs::Fixed(peer_as),
        router_id,
        hold_time: Duration::from_secs(30),
        families: Families::DUAL,
        graceful_restart: None,
        extended_message: true,
    });
    c.connect_retry_initial = Duration::from_millis(200);
    c.connect_retry_max = Duration::from_secs(2);
    c
}

/// A peer configuration dialling `peer` from `local`.
pub(crate) fn dial(session: Config, peer: IpAddr, local: IpAddr) -> PeerConfig {
    PeerConfig {
        local_addr: Some(local),
        ..PeerConfig::new(session, SocketAddr::new(peer, 179))
    }
}

/// A FerroLB node: a tokio runtime inside the node's namespace, on which the peer drivers (and
/// their sockets) live.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) ns: String,
    runtime: NsRuntime,
}

impl Node {
    fn start(ns: String) -> Node {
        let runtime = NsRuntime::start(&ns).unwrap_or_else(|e| panic!("{e}"));
        Node { ns, runtime }
    }

    /// Starts a peer driver in this node's namespace.
    pub(crate) fn peer(&self, config: PeerConfig) -> Peer {
        let _guard = self.runtime.handle().enter();
        let (cmd, events, _task) = driver::spawn(config);
        Peer {
            name: format!("{} → {}", self.ns, config.peer_addr),
            cmd,
            events,
        }
    }

    /// Runs a future on the node's runtime (inside its namespace) in the background.
    pub(crate) fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.runtime.spawn(fut);
    }

    /// Runs a future on the node's runtime (inside its namespace) and waits for its result.
    pub(crate) fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.block_on(fut)
    }

    /// Listens on `addr` in this node's namespace and hands every accepted connection to the
    /// passive peer behind `to`; with a key, connections from `peer` must be MD5-signed with it.
    pub(crate) fn listen(
        &self,
        addr: SocketAddr,
        peer: IpAddr,
        key: Option<Md5Key>,
        to: mpsc::Sender<driver::Command>,
    ) {
        self.block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
            if let Some(key) = key {
                md5::set_key_on_listener(&listener, peer, Some(&key)).expect("TCP_MD5SIG");
            }
            tokio::spawn(hand_over(listener, to));
        });
    }
}

/// One FerroLB peer driver, seen from the test thread.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) name: String,
    pub(crate) cmd: mpsc::Sender<driver::Command>,
    pub(crate) events: mpsc::Receiver<Event>,
}

impl Peer {
    /// Waits for the next event matching `pick`, skipping others.
    pub(crate) fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> T {
        let mut seen = Vec::new();
        poll(
            &format!("{}: {what}", self.name),
            timeout,
            Duration::from_millis(20),
            || {
                while let Ok(ev) = self.events.try_recv() {
                    if let Some(v) = pick(&ev) {
                        return Ok(v);
                    }
                    seen.push(format!("{ev:?}"));
                }
                Err(seen.join(", "))
            },
        )
    }

    /// Waits until the session is Established.
    pub(crate) fn wait_up(&mut self) -> Negotiated {
        self.wait_for("Established", DEADLINE, |ev| match ev {
            Event::Up(n) => Some(*n),
            _ => None,
        })
    }

    /// Replaces the routes announced on this session.
    pub(crate) fn set_routes(&self, routes: RouteSet) {
        self.cmd
            .blocking_send(driver::Command::SetRoutes(routes))
            .expect("peer task alive");
    }

    /// Whether the driver reported the session down since the last look.
    pub(crate) fn went_down(&mut self) -> bool {
        let mut down = false;
        while let Ok(ev) = self.events.try_recv() {
            down |= matches!(ev, Event::Down(_));
        }
        down
    }
}

/// The router namespace (the switch), the nodes and their drivers of one test.
#[derive(Debug)]
pub(crate) struct Lab {
    /// Dropped after the nodes (field order).
    nodes: Vec<Node>,
    pub(crate) net: Netlab,
}

impl Lab {
    /// The router's bridge with `nodes` node namespaces plugged into it.
    pub(crate) fn new(nodes: usize) -> Lab {
        let net = Netlab::new("bgp").unwrap_or_else(|e| panic!("{e}"));
        net.address_switch(&["192.0.2.254/24", &format!("{ROUTER6}/64")])
            .unwrap_or_else(|e| panic!("{e}"));
        let mut lab = Lab {
            nodes: Vec::new(),
            net,
        };
        for i in 1..=nodes {
            let (v4, v6) = (format!("192.0.2.{i}/24"), format!("2001:db8:1::{i}/64"));
            let ns = lab
                .net
                .add_host(&format!("n{i}"), "eth0", &[&v4, &v6])
                .unwrap_or_else(|e| panic!("{e}"));
            lab.nodes.push(Node::start(ns));
        }
        lab
    }

    /// A node one routed hop away: namespace `far` behind node `via`, which forwards.
    ///
    /// ```text
    ///   [far] eth0 198.51.100.1/24 ──veth── hop0 198.51.100.254/24 [n<via>] eth0 ── br0 [sw]
    /// ```
    /// The router reaches 198.51.100.0/24 via node `via`. Returns the new node's number.
    pub(crate) fn add_far_node(&mut self, via: usize) -> usize {
        let hop = format!("n{via}");
        let far = self
            .net
            .add_namespace("far")
            .unwrap_or_else(|e| panic!("{e}"));
        self.net
            .link(
                ("far", "eth0", &["198.51.100.1/24"]),
                (&hop, "hop0", &["198.51.100.254/24"]),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        self.net
            .exec_ok(
                "far",
                &["ip", "route", "add", "default", "via", "198.51.100.254"],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        self.net
            .sysctl(&hop, "net.ipv4.ip_forward=1")
            .unwrap_or_else(|e| panic!("{e}"));
        let via_addr = format!("192.0.2.{via}");
        self.net
            .exec_ok(
                Netlab::SWITCH,
                &["ip", "route", "add", "198.51.100.0/24", "via", &via_addr],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        self.nodes.push(Node::start(far));
        self.nodes.len()
    }

    /// The full name of a namespace of this lab (`n1`, ...).
    pub(crate) fn ns(&self, role: &str) -> String {
        self.net.ns(role)
    }

    /// The router namespace.
    pub(crate) fn router_ns(&self) -> String {
        self.net.switch_ns()
    }

    /// Node `i` (1-based).
    pub(crate) fn node(&self, i: usize) -> &Node {
        &self.nodes[i - 1]
    }

    /// Adds an address (with prefix length) to node `i`'s eth0.
    pub(crate) fn add_addr(&self, i: usize, cidr: &str) {
        self.net
            .add_address(&format!("n{i}"), "eth0", cidr)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// FRR (zebra + bgpd) in the router namespace with `neighbors`.
    pub(crate) fn frr(&mut self, neighbors: &[Neighbor]) -> Frr {
        Frr::start_with(&mut self.net, Netlab::SWITCH, &ROUTER, neighbors)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// BIRD in the router namespace with `neighbors`.
    pub(crate) fn bird(&mut self, neighbors: &[Neighbor]) -> Bird {
        Bird::start(&mut self.net, Netlab::SWITCH, &ROUTER, neighbors)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// GoBGP in the router namespace with `neighbors`.
    pub(crate) fn gobgp(&mut self, neighbors: &[Neighbor]) -> Gobgp {
        Gobgp::start(&mut self.net, Netlab::SWITCH, &ROUTER, neighbors)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A path in the lab's directory.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.net.path(name)
    }

    /// Starts `args` inside namespace `role` in the foreground; output goes to `log`.
    pub(crate) fn start_daemon(
        &mut self,
        name: &str,
        role: &str,
        args: &[&str],
        log: &Path,
    ) -> u32 {
        self.net
            .spawn(name, role, args, &[], log)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Stops the latest process started under `name` now (by its PID).
    pub(crate) fn stop_daemon(&mut self, name: &str) {
        let processes = self.net.processes();
        if let Some(pid) = processes.pid(name) {
            processes.stop(pid);
        }
    }

    /// The log of the process started under `name`.
    pub(crate) fn daemon_log(&mut self, name: &str) -> String {
        self.net.processes().log(name)
    }

    /// Panics if a daemon has exited, with the end of its log.
    pub(crate) fn assert_daemons_alive(&mut self) {
        self.net
            .processes()
            .check_alive()
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// A counter of `/proc/net/snmp` in namespace `ns`, e.g. (`Icmp`, `OutTimeExcds`).
    pub(crate) fn snmp(&self, ns: &str, group: &str, name: &str) -> u64 {
        counters::net_counter(ns, "snmp", group, name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A `TcpExt` counter of `/proc/net/netstat` in namespace `ns` (e.g. `TCPMD5Failure`).
    pub(crate) fn tcp_ext(&self, ns: &str, name: &str) -> u64 {
        counters::net_counter(ns, "netstat", "TcpExt", name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The router's kernel routes to `PREFIX` (family from the prefix), empty when none.
    pub(crate) fn router_kernel_route(&self, prefix: &str) -> String {
        self.net
            .routes(Netlab::SWITCH, prefix)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}
