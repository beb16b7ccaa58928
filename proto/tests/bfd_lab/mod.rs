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
//! multihop packets arrive with TTL 254. Every name starts with `fbfd<pid>-<n>-`. Daemons run
//! with `ip netns exec` (the child's PID is the daemon's), each in its own directory, and are
//! stopped with `kill PID`. Self-contained: the `netlab` crate did not exist yet when this was
//! written.

#![allow(dead_code)]

#[path = "../bgp_lab/netns.rs"]
mod netns;
pub(crate) mod routers;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferrolb_proto::bfd::{Bfd, DriverConfig, Profile, SessionHandle, SessionKey, SessionSpec};
use tokio::sync::oneshot;

/// How long any single condition may take on a loaded 2-core machine.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);

/// The four paths of the lab: (name, our address, the router's, multihop).
pub(crate) const PATHS: [(&str, &str, &str, bool); 4] = [
    ("single hop IPv4", "192.0.2.1", "192.0.2.254", false),
    ("single hop IPv6", "2001:db8:1::1", "2001:db8:1::fe", false),
    ("multihop IPv4", "203.0.113.1", "198.51.100.1", true),
    ("multihop IPv6", "2001:db8:3::1", "2001:db8:2::1", true),
];

/// Whether the test can run here: root and every program in `programs`. Prints why not and
/// returns false on a developer machine; panics when CI=true so CI never passes by skipping.
pub(crate) fn can_run(programs: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !netns::is_root() {
        missing.push("root (network namespaces)".to_owned());
    }
    for program in programs {
        let found = if program.starts_with('/') {
            Path::new(program).exists()
        } else {
            run(&["sh", "-c", &format!("command -v {program}")])
                .status
                .success()
        };
        if !found {
            missing.push(format!("`{program}`"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "SKIPPED: this test needs {} (bash scripts/install-deps.sh)",
        missing.join(", ")
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{message}; CI=true does not allow skipping");
    }
    println!("{message}");
    false
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

/// A daemon started by the test, stopped by its PID on drop.
#[derive(Debug)]
struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The FerroLB node: a thread inside n1's namespace running a tokio runtime with the BFD task.
#[derive(Debug)]
pub(crate) struct Node {
    handle: tokio::runtime::Handle,
    /// The BFD task's handle (its sockets live in n1).
    pub(crate) bfd: Bfd,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Node {
    fn start(ns: String) -> Node {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            netns::enter(&ns).unwrap_or_else(|e| panic!("setns {ns}: {e}"));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let (bfd, _task) =
                rt.block_on(async { ferrolb_proto::bfd::spawn(DriverConfig::default()) });
            let _ = tx.send((rt.handle().clone(), bfd));
            rt.block_on(async move {
                let _ = stop_rx.await;
            });
        });
        let (handle, bfd) = rx.recv().expect("node thread started");
        Node {
            handle,
            bfd,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Runs a future on the node's runtime and waits for its result.
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

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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

/// Namespaces, the node and daemons of one test; everything is removed on drop.
#[derive(Debug)]
pub(crate) struct Lab {
    pub(crate) prefix: String,
    pub(crate) dir: tempfile::TempDir,
    namespaces: Vec<String>,
    pub(crate) node: Option<Node>,
    daemons: Vec<Daemon>,
}

impl Lab {
    /// The topology of the module doc, with the FerroLB node running.
    pub(crate) fn new() -> Lab {
        let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let dir = tempfile::Builder::new()
            .prefix("fbfd")
            .tempdir()
            .expect("temp dir");
        let mut lab = Lab {
            prefix: format!("fbfd{}-{n}-", std::process::id()),
            dir,
            namespaces: Vec::new(),
            node: None,
            daemons: Vec::new(),
        };
        let [n1, fw, r] = ["n1", "fw", "r"].map(|role| lab.add_ns(role));
        lab.veth(&n1, "eth0", &r, "p1");
        lab.veth(&n1, "eth1", &fw, "fwa");
        lab.veth(&fw, "fwb", &r, "eth1");
        for (ns, dev, cidrs) in [
            (&n1, "eth0", ["192.0.2.1/24", "2001:db8:1::1/64"]),
            (&r, "p1", ["192.0.2.254/24", "2001:db8:1::fe/64"]),
            (&n1, "eth1", ["203.0.113.1/24", "2001:db8:3::1/64"]),
            (&fw, "fwa", ["203.0.113.254/24", "2001:db8:3::fe/64"]),
            (&fw, "fwb", ["198.51.100.254/24", "2001:db8:2::fe/64"]),
            (&r, "eth1", ["198.51.100.1/24", "2001:db8:2::1/64"]),
        ] {
            for cidr in cidrs {
                let mut args = vec!["ip", "-n", ns, "addr", "add", cidr, "dev", dev];
                if cidr.contains(':') {
                    args.push("nodad");
                }
                must(&args);
            }
        }
        for (ns, prefix, via) in [
            (&n1, "198.51.100.0/24", "203.0.113.254"),
            (&n1, "2001:db8:2::/64", "2001:db8:3::fe"),
            (&r, "203.0.113.0/24", "198.51.100.254"),
            (&r, "2001:db8:3::/64", "2001:db8:2::fe"),
        ] {
            must(&["ip", "-n", ns, "route", "add", prefix, "via", via]);
        }
        local_rule_last(&n1);
        local_rule_last(&r);
        for sysctl in ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"] {
            must(&["ip", "netns", "exec", &fw, "sysctl", "-qw", sysctl]);
        }
        lab.node = Some(Node::start(n1));
        lab
    }

    fn add_ns(&mut self, role: &str) -> String {
        let name = self.ns(role);
        must(&["ip", "netns", "add", &name]);
        self.namespaces.push(name.clone());
        must(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        name
    }

    fn veth(&self, ns_a: &str, a: &str, ns_b: &str, b: &str) {
        must(&[
            "ip", "link", "add", a, "netns", ns_a, "type", "veth", "peer", "name", b, "netns", ns_b,
        ]);
        for (ns, dev) in [(ns_a, a), (ns_b, b)] {
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
            must(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
    }

    /// The full name of a namespace of this lab (`n1`, `fw`, `r`).
    pub(crate) fn ns(&self, role: &str) -> String {
        format!("{}{role}", self.prefix)
    }

    /// The FerroLB node.
    pub(crate) fn node(&self) -> &Node {
        self.node.as_ref().expect("node running")
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
                self.dir.path().to_str().expect("utf-8"),
            ]);
        }
        dir
    }

    /// Starts `args` inside namespace `ns` in the foreground; output goes to `log`.
    pub(crate) fn start_daemon(&mut self, name: &str, ns: &str, args: &[&str], log: &Path) {
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
        self.daemons.push(Daemon {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        });
    }

    /// Panics if a daemon has exited, with the end of its log.
    pub(crate) fn assert_daemons_alive(&mut self) {
        for d in &mut self.daemons {
            if let Ok(Some(status)) = d.child.try_wait() {
                let log = std::fs::read_to_string(&d.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                panic!(
                    "{} exited ({status}); log, last lines first:\n{}",
                    d.name,
                    tail.join("\n")
                );
            }
        }
    }

    /// Waits until `path` exists (a daemon's socket), failing early if a daemon died.
    pub(crate) fn wait_for_file(&mut self, path: &Path) {
        let deadline = Instant::now() + DEADLINE;
        while !path.exists() {
            self.assert_daemons_alive();
            assert!(
                Instant::now() < deadline,
                "{} never appeared",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
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
        let ns = self.ns(role);
        must(&[
            "ip",
            family,
            "-n",
            &ns,
            "rule",
            action,
            "pref",
            "10",
            "from",
            source,
            "iif",
            iif,
            "blackhole",
        ]);
    }
}

/// Moves the `lookup local` rule of `ns` after preference 10, so that a blackhole rule there
/// ([`Lab::drop_from`]) applies to packets for local addresses too.
fn local_rule_last(ns: &str) {
    for family in ["-4", "-6"] {
        must(&[
            "ip", family, "-n", ns, "rule", "add", "pref", "100", "lookup", "local",
        ]);
        must(&[
            "ip", family, "-n", ns, "rule", "del", "pref", "0", "lookup", "local",
        ]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(node) = &mut self.node {
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

/// The address family name FRR and BIRD print.
pub(crate) fn is_v6(addr: &str) -> bool {
    addr.parse::<IpAddr>().is_ok_and(|a| a.is_ipv6())
}
