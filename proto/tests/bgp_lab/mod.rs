//! The namespace lab of the BGP interop tests: one router namespace with a bridge, node
//! namespaces that run FerroLB peer drivers, the routers (FRR, BIRD, GoBGP) started by the test,
//! skip rules, polling with deadlines, and teardown on drop (also when a test panics).
//!
//! ```text
//!   [<p>n1] eth0 ──veth── p1 ┐
//!                            ├─ br0 [<p>r] 192.0.2.254/24, 2001:db8:1::fe/64, the router daemon
//!   [<p>n2] eth0 ──veth── p2 ┘
//! ```
//! Node `i` has 192.0.2.i/24 and 2001:db8:1::i/64. Every name starts with `fbgp<pid>-<n>-`.
//! Daemons run with `ip netns exec` (so the child's PID is the daemon's), each with its own
//! directory, and are stopped with `kill PID`.

#![allow(dead_code)]

pub(crate) mod netns;
pub(crate) mod routers;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferrolb_proto::bgp::driver::{self, Event, PeerConfig};
use ferrolb_proto::bgp::fsm::Config;
use ferrolb_proto::bgp::md5::{self, Md5Key};
use ferrolb_proto::bgp::open::{Families, LocalSpeaker, Negotiated, PeerAs};
use ferrolb_proto::bgp::packing::RouteSet;
use tokio::sync::{mpsc, oneshot};

/// How long any single condition may take on a loaded 2-core machine.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// The router's addresses on the bridge.
pub(crate) const ROUTER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
pub(crate) const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0xfe);

static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);

/// Whether the test can run here: root and every program in `programs`. Prints why not and
/// returns false on a developer machine; panics when CI=true so CI never passes by skipping.
pub(crate) fn can_run(programs: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !netns::is_root() {
        missing.push("root (network namespaces, routers on port 179)".to_owned());
    }
    for program in programs {
        if !is_installed(program) {
            missing.push(format!("`{program}`"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "SKIPPED: this test needs {} (apt-get install -y frr bird2 gobgpd iproute2)",
        missing.join(", ")
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{message}; CI=true does not allow skipping");
    }
    println!("{message}");
    false
}

fn is_installed(program: &str) -> bool {
    if program.starts_with('/') {
        return Path::new(program).exists();
    }
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs a command and returns its output; panics only when it cannot be started.
pub(crate) fn run(args: &[&str]) -> Output {
    let (program, rest) = args.split_first().expect("a command");
    Command::new(program)
        .args(rest)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

/// Runs a command that must succeed.
pub(crate) fn must(args: &[&str]) {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `check` until it returns `Ok` or `timeout` passes; then panics with `what` and the
/// last observation. `check` returns `Err(observation)` while the condition does not hold.
pub(crate) fn poll<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(seen) if Instant::now() >= deadline => {
                panic!("{what}: not within {timeout:?}; last seen: {seen}")
            }
            Err(_) => std::thread::sleep(interval),
        }
    }
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

/// A daemon started by the test, stopped by its PID on drop.
#[derive(Debug)]
struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
    /// Stopped on purpose: its exit is no failure.
    is_stopped: bool,
}

impl Daemon {
    fn stop(&mut self) {
        self.is_stopped = true;
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").arg(&pid).status();
        // A process the test froze (SIGSTOP) acts on SIGTERM once continued.
        let _ = Command::new("kill").args(["-CONT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SIGKILL to this child only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A FerroLB node: a thread inside the node's namespace running a tokio runtime on which the
/// peer drivers (and their sockets) live.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) ns: String,
    handle: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Node {
    fn start(ns: String) -> Node {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread_ns = ns.clone();
        let thread = std::thread::spawn(move || {
            netns::enter(&thread_ns).unwrap_or_else(|e| panic!("setns {thread_ns}: {e}"));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let _ = handle_tx.send(rt.handle().clone());
            rt.block_on(async move {
                let _ = stop_rx.await;
            });
        });
        let handle = handle_rx.recv().expect("node thread started");
        Node {
            ns,
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Starts a peer driver in this node's namespace.
    pub(crate) fn peer(&self, config: PeerConfig) -> Peer {
        let _guard = self.handle.enter();
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
        self.handle.spawn(fut);
    }

    /// Runs a future on the node's runtime (inside its namespace) and waits for its result.
    pub(crate) fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().expect("node runtime alive")
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
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    if to.send(driver::Command::Incoming(stream)).await.is_err() {
                        return;
                    }
                }
            });
        });
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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

/// Namespaces, nodes and daemons of one test; everything is removed on drop.
#[derive(Debug)]
pub(crate) struct Lab {
    pub(crate) prefix: String,
    pub(crate) dir: tempfile::TempDir,
    namespaces: Vec<String>,
    nodes: Vec<Node>,
    daemons: Vec<Daemon>,
}

impl Lab {
    /// A router namespace with a bridge and `nodes` node namespaces attached to it.
    pub(crate) fn new(nodes: usize) -> Lab {
        let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let dir = tempfile::Builder::new()
            .prefix("fbgp")
            .tempdir()
            .expect("temp dir");
        let mut lab = Lab {
            prefix: format!("fbgp{}-{n}-", std::process::id()),
            dir,
            namespaces: Vec::new(),
            nodes: Vec::new(),
            daemons: Vec::new(),
        };
        let r = lab.add_ns("r");
        must(&["ip", "-n", &r, "link", "set", "lo", "up"]);
        must(&["ip", "-n", &r, "link", "add", "br0", "type", "bridge"]);
        no_dad(&r, "br0");
        must(&["ip", "-n", &r, "link", "set", "br0", "up"]);
        must(&[
            "ip",
            "-n",
            &r,
            "addr",
            "add",
            "192.0.2.254/24",
            "dev",
            "br0",
        ]);
        let r6 = format!("{ROUTER6}/64");
        must(&["ip", "-n", &r, "addr", "add", &r6, "dev", "br0", "nodad"]);
        for i in 1..=nodes {
            let ns = lab.add_ns(&format!("n{i}"));
            let port = format!("p{i}");
            must(&[
                "ip", "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port,
                "netns", &r,
            ]);
            no_dad(&ns, "eth0");
            no_dad(&r, &port);
            must(&["ip", "-n", &r, "link", "set", &port, "master", "br0", "up"]);
            must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            must(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            lab.add_addr(i, &format!("192.0.2.{i}/24"));
            lab.add_addr(i, &format!("2001:db8:1::{i}/64"));
            let node = Node::start(ns);
            lab.nodes.push(node);
        }
        lab
    }

    /// A node one routed hop away: namespace `far` behind node `via`, which forwards.
    ///
    /// ```text
    ///   [far] eth0 198.51.100.1/24 ──veth── hop0 198.51.100.254/24 [n<via>] eth0 ── br0 [r]
    /// ```
    /// The router reaches 198.51.100.0/24 via node `via`. Returns the new node's number.
    pub(crate) fn add_far_node(&mut self, via: usize) -> usize {
        let far = self.add_ns("far");
        let hop = self.ns(&format!("n{via}"));
        must(&[
            "ip", "link", "add", "eth0", "netns", &far, "type", "veth", "peer", "name", "hop0",
            "netns", &hop,
        ]);
        must(&["ip", "-n", &far, "link", "set", "lo", "up"]);
        must(&["ip", "-n", &far, "link", "set", "eth0", "up"]);
        must(&["ip", "-n", &hop, "link", "set", "hop0", "up"]);
        must(&[
            "ip",
            "-n",
            &far,
            "addr",
            "add",
            "198.51.100.1/24",
            "dev",
            "eth0",
        ]);
        must(&[
            "ip",
            "-n",
            &hop,
            "addr",
            "add",
            "198.51.100.254/24",
            "dev",
            "hop0",
        ]);
        must(&[
            "ip",
            "-n",
            &far,
            "route",
            "add",
            "default",
            "via",
            "198.51.100.254",
        ]);
        must(&[
            "ip",
            "netns",
            "exec",
            &hop,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        let via_addr = format!("192.0.2.{via}");
        must(&[
            "ip",
            "-n",
            &self.router_ns(),
            "route",
            "add",
            "198.51.100.0/24",
            "via",
            &via_addr,
        ]);
        self.nodes.push(Node::start(far));
        self.nodes.len()
    }

    /// A counter of `/proc/net/snmp` in namespace `ns`, e.g. (`Icmp`, `OutTimeExcds`).
    pub(crate) fn snmp(&self, ns: &str, group: &str, name: &str) -> u64 {
        let out = run(&["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let prefix = format!("{group}:");
        let rows: Vec<Vec<&str>> = text
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .map(|l| l.split_whitespace().collect())
            .collect();
        let [names, values] = &rows[..] else {
            panic!("no {group} rows in {text}");
        };
        let i = names
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("no {name} in {group}"));
        values[i].parse().expect("a counter")
    }

    fn add_ns(&mut self, role: &str) -> String {
        let name = self.ns(role);
        must(&["ip", "netns", "add", &name]);
        self.namespaces.push(name.clone());
        name
    }

    /// The full name of a namespace of this lab (`r`, `n1`, ...).
    pub(crate) fn ns(&self, role: &str) -> String {
        format!("{}{role}", self.prefix)
    }

    /// The router namespace.
    pub(crate) fn router_ns(&self) -> String {
        self.ns("r")
    }

    /// Node `i` (1-based).
    pub(crate) fn node(&self, i: usize) -> &Node {
        &self.nodes[i - 1]
    }

    /// Adds an address (with prefix length) to node `i`'s eth0.
    pub(crate) fn add_addr(&self, i: usize, cidr: &str) {
        let ns = self.ns(&format!("n{i}"));
        let mut args = vec!["ip", "-n", &ns, "addr", "add", cidr, "dev", "eth0"];
        if cidr.contains(':') {
            args.push("nodad");
        }
        must(&args);
    }

    /// A private directory for one daemon, owned by `owner` when given.
    pub(crate) fn daemon_dir(&self, name: &str, owner: Option<&str>) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).expect("daemon dir");
        if let Some(owner) = owner {
            must(&[
                "chown",
                "-R",
                owner,
                self.dir.path().to_str().expect("utf-8 path"),
            ]);
        }
        dir
    }

    /// Starts `args` inside namespace `ns` in the foreground; output goes to `log`.
    pub(crate) fn start_daemon(&mut self, name: &str, ns: &str, args: &[&str], log: &Path) -> u32 {
        let out = std::fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let pid = child.id();
        self.daemons.push(Daemon {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            is_stopped: false,
        });
        pid
    }

    /// Stops the daemon started under `name` now (by its PID).
    pub(crate) fn stop_daemon(&mut self, name: &str) {
        for d in self.daemons.iter_mut().filter(|d| d.name == name) {
            d.stop();
        }
    }

    /// The log of the daemon started under `name`.
    pub(crate) fn daemon_log(&self, name: &str) -> String {
        self.daemons
            .iter()
            .find(|d| d.name == name)
            .and_then(|d| std::fs::read_to_string(&d.log).ok())
            .unwrap_or_default()
    }

    /// Panics if a daemon has exited, with the end of its log.
    pub(crate) fn assert_daemons_alive(&mut self) {
        for d in self.daemons.iter_mut().filter(|d| !d.is_stopped) {
            if let Ok(Some(status)) = d.child.try_wait() {
                let log = std::fs::read_to_string(&d.log).unwrap_or_default();
                let tail: String = log.lines().rev().take(20).collect::<Vec<_>>().join("\n");
                panic!(
                    "{} exited ({status}); log (last lines first):\n{tail}",
                    d.name
                );
            }
        }
    }

    /// A `TcpExt` counter of `/proc/net/netstat` in namespace `ns` (e.g. `TCPMD5Failure`).
    pub(crate) fn tcp_ext(&self, ns: &str, name: &str) -> u64 {
        let out = run(&["ip", "netns", "exec", ns, "cat", "/proc/net/netstat"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let rows: Vec<Vec<&str>> = text
            .lines()
            .filter(|l| l.starts_with("TcpExt:"))
            .map(|l| l.split_whitespace().collect())
            .collect();
        let [names, values] = &rows[..] else {
            panic!("no TcpExt rows in {text}");
        };
        let i = names
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("no {name} in TcpExt"));
        values[i].parse().expect("a counter")
    }

    /// `ip -n ROUTER route show PREFIX` (family from the prefix).
    pub(crate) fn router_kernel_route(&self, prefix: &str) -> String {
        let family = if prefix.contains(':') { "-6" } else { "-4" };
        let out = run(&[
            "ip",
            family,
            "-n",
            &self.router_ns(),
            "route",
            "show",
            prefix,
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// No duplicate address detection on a lab link: addresses are usable at once.
fn no_dad(ns: &str, dev: &str) {
    for sysctl in ["accept_dad=0", "accept_ra=0", "router_solicitations=0"] {
        must(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{dev}.{sysctl}"),
        ]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.shut_down();
        }
        for daemon in &mut self.daemons {
            daemon.stop();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A peer configuration dialling `peer` from `local`.
pub(crate) fn dial(session: Config, peer: IpAddr, local: IpAddr) -> PeerConfig {
    PeerConfig {
        local_addr: Some(local),
        ..PeerConfig::new(session, SocketAddr::new(peer, 179))
    }
}
