//! `netlab`: hosts built from network namespaces on one machine — a switch (a bridge in its own
//! namespace), hosts plugged into it, point-to-point links, processes started inside them, and
//! TCP forwarding from a namespace to the host's loopback (so speakers in "node" namespaces
//! reach an API server the test runs in-process).
//!
//! Rules of the lab: only documentation addresses inside it, a unique name prefix per lab, no
//! route that leaves the machine, processes stopped by PID, and everything torn down on drop,
//! also after a failed assertion.
//!
//! - `netns`: entering a namespace from a thread (setns), the one unsafe call.
//! - `frr`: an FRR router (zebra + bgpd) in a namespace, read over its vty socket.

pub mod frr;
mod netns;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

pub use netns::{bind_tcp_in, spawn_in};

static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);

/// Failures of lab plumbing (a command that failed, a file that could not be written).
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A command exited unsuccessfully.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// An OS call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

pub(crate) fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
    let what = what.into();
    move |source| LabError::Io { what, source }
}

/// Whether tests needing root and `tools` can run here. Prints why not and returns false on a
/// developer machine; panics when `CI=true`, so CI never passes by skipping.
pub fn can_run(tools: &[&str]) -> bool {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let mut missing: Vec<String> = Vec::new();
    if !is_root {
        missing.push("root (CAP_NET_ADMIN, CAP_NET_RAW)".into());
    }
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            missing.push(format!("`{tool}`"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "SKIPPED: this test needs {} (bash scripts/install-deps.sh installs them)",
        missing.join(", ")
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{message}; CI=true does not allow skipping"
    );
    println!("{message}");
    false
}

/// Runs a command and returns its output (never fails: a missing program is an error output).
pub fn run(args: &[&str]) -> Result<Output, LabError> {
    let (program, rest) = args.split_first().ok_or_else(|| LabError::Command {
        command: String::new(),
        stderr: "empty command".into(),
    })?;
    Command::new(program)
        .args(rest)
        .output()
        .map_err(io_error(format!("running {args:?}")))
}

/// Runs a command that must succeed.
pub fn must(args: &[&str]) -> Result<String, LabError> {
    let out = run(args)?;
    if !out.status.success() {
        return Err(LabError::Command {
            command: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A process the lab started, stopped by PID on drop.
#[derive(Debug)]
struct Started {
    name: String,
    child: Child,
}

/// A lab: a switch namespace with bridge `br0`, and whatever hosts and processes are added.
#[derive(Debug)]
pub struct Netlab {
    prefix: String,
    namespaces: Vec<String>,
    processes: Vec<Started>,
    forwards: Vec<JoinHandle<()>>,
    dir: tempfile::TempDir,
}

impl Netlab {
    /// The switch namespace's role name.
    pub const SWITCH: &'static str = "sw";

    /// Creates the switch. `tag` goes into every namespace name (`fl-TAG-PID-N-role`).
    pub fn new(tag: &str) -> Result<Self, LabError> {
        let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let mut lab = Netlab {
            prefix: format!("fl-{tag}-{}-{n}-", std::process::id()),
            namespaces: Vec::new(),
            processes: Vec::new(),
            forwards: Vec::new(),
            dir: tempfile::tempdir().map_err(io_error("lab directory"))?,
        };
        let sw = lab.add_namespace(Self::SWITCH)?;
        must(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        // Forward at once: no STP listening/learning delay on a fresh port.
        must(&[
            "ip",
            "-n",
            &sw,
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "forward_delay",
            "0",
        ])?;
        must(&["ip", "-n", &sw, "link", "set", "br0", "up"])?;
        must(&["ip", "-n", &sw, "link", "set", "lo", "up"])?;
        Ok(lab)
    }

    /// The full namespace name of a role.
    pub fn ns(&self, role: &str) -> String {
        format!("{}{role}", self.prefix)
    }

    /// A private directory of the lab (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn add_namespace(&mut self, role: &str) -> Result<String, LabError> {
        let name = self.ns(role);
        must(&["ip", "netns", "add", &name])?;
        self.namespaces.push(name.clone());
        must(&["ip", "-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }

    /// Gives the switch itself addresses on `br0` (a host the others reach, e.g. for an API
    /// server forward).
    pub fn address_switch(&self, addresses: &[&str]) -> Result<(), LabError> {
        let sw = self.ns(Self::SWITCH);
        for address in addresses {
            add_address(&sw, "br0", address)?;
        }
        Ok(())
    }

    /// A new host namespace `role` whose interface `iface` is plugged into the switch, with
    /// `addresses` (CIDR notation; IPv6 without duplicate address detection).
    pub fn add_host(
        &mut self,
        role: &str,
        iface: &str,
        addresses: &[&str],
    ) -> Result<String, LabError> {
        let ns = self.add_namespace(role)?;
        let port = format!("p-{role}");
        let sw = self.ns(Self::SWITCH);
        must(&[
            "ip", "link", "add", iface, "netns", &ns, "type", "veth", "peer", "name", &port,
            "netns", &sw,
        ])?;
        must(&["ip", "-n", &sw, "link", "set", &port, "master", "br0", "up"])?;
        prepare_interface(&ns, iface)?;
        for address in addresses {
            add_address(&ns, iface, address)?;
        }
        must(&["ip", "-n", &ns, "link", "set", iface, "up"])?;
        Ok(ns)
    }

    /// A point-to-point link between two existing hosts.
    pub fn link(
        &mut self,
        a: (&str, &str, &[&str]),
        b: (&str, &str, &[&str]),
    ) -> Result<(), LabError> {
        let (ns_a, ns_b) = (self.ns(a.0), self.ns(b.0));
        must(&[
            "ip", "link", "add", a.1, "netns", &ns_a, "type", "veth", "peer", "name", b.1, "netns",
            &ns_b,
        ])?;
        for (ns, iface, addresses) in [(&ns_a, a.1, a.2), (&ns_b, b.1, b.2)] {
            prepare_interface(ns, iface)?;
            for address in addresses {
                add_address(ns, iface, address)?;
            }
            must(&["ip", "-n", ns, "link", "set", iface, "up"])?;
        }
        Ok(())
    }

    /// Adds a host namespace not plugged into anything (links come with [`Netlab::link`]).
    pub fn add_isolated_host(&mut self, role: &str) -> Result<String, LabError> {
        self.add_namespace(role)
    }

    /// Runs a command inside a host.
    pub fn exec(&self, role: &str, args: &[&str]) -> Result<Output, LabError> {
        let ns = self.ns(role);
        let mut full = vec!["ip", "netns", "exec", ns.as_str()];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Runs a command inside a host; it must succeed.
    pub fn exec_ok(&self, role: &str, args: &[&str]) -> Result<String, LabError> {
        let ns = self.ns(role);
        let mut full = vec!["ip", "netns", "exec", ns.as_str()];
        full.extend_from_slice(args);
        must(&full)
    }

    /// Starts a long-running process inside a host, output to `log`. Returns its PID
    /// (`ip netns exec` execs the program, so it is the program's own PID).
    pub fn spawn(
        &mut self,
        name: &str,
        role: &str,
        args: &[&str],
        envs: &[(&str, &str)],
        log: &Path,
    ) -> Result<u32, LabError> {
        let ns = self.ns(role);
        let out =
            std::fs::File::create(log).map_err(io_error(format!("creating {}", log.display())))?;
        let err = out.try_clone().map_err(io_error("log file"))?;
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (key, value) in envs {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .map_err(io_error(format!("starting {name}")))?;
        let pid = child.id();
        self.processes.push(Started {
            name: name.to_owned(),
            child,
        });
        Ok(pid)
    }

    /// Sends `signal` (e.g. "KILL", "TERM", "STOP", "CONT") to a process the lab started.
    pub fn signal(&self, pid: u32, signal: &str) -> Result<(), LabError> {
        must(&["kill", &format!("-{signal}"), &pid.to_string()]).map(|_| ())
    }

    /// Waits for a process the lab started to end (after a signal); forgets it.
    pub fn reap(&mut self, pid: u32) -> Option<std::process::ExitStatus> {
        let index = self.processes.iter().position(|p| p.child.id() == pid)?;
        let mut started = self.processes.remove(index);
        started.child.wait().ok()
    }

    /// Names of started processes that have exited, with their status.
    pub fn exited(&mut self) -> Vec<(String, std::process::ExitStatus)> {
        self.processes
            .iter_mut()
            .filter_map(|p| Some((p.name.clone(), p.child.try_wait().ok()??)))
            .collect()
    }

    /// Forwards TCP connections made to `listen` inside host `role` to `target` in the
    /// caller's namespace, until the lab is dropped. Needs a tokio runtime.
    pub fn forward(
        &mut self,
        role: &str,
        listen: SocketAddr,
        target: SocketAddr,
    ) -> Result<(), LabError> {
        let ns = self.ns(role);
        let std_listener =
            bind_tcp_in(&ns, listen).map_err(io_error(format!("binding {listen} in {ns}")))?;
        let listener =
            tokio::net::TcpListener::from_std(std_listener).map_err(io_error("listener"))?;
        self.forwards.push(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
        Ok(())
    }

    /// The MAC address of `iface` in host `role`.
    pub fn mac(&self, role: &str, iface: &str) -> Result<String, LabError> {
        let text = must(&["ip", "-n", &self.ns(role), "-br", "link", "show", iface])?;
        text.split_whitespace()
            .find(|w| w.len() == 17 && w.matches(':').count() == 5)
            .map(str::to_owned)
            .ok_or_else(|| LabError::Command {
                command: format!("ip -br link show {iface}"),
                stderr: format!("no MAC in {text:?}"),
            })
    }

    /// A path inside the lab directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// No DAD, no router solicitations: addresses are usable at once.
fn prepare_interface(ns: &str, iface: &str) -> Result<(), LabError> {
    for sysctl in ["accept_dad=0", "accept_ra=0", "router_solicitations=0"] {
        must(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{iface}.{sysctl}"),
        ])?;
    }
    Ok(())
}

fn add_address(ns: &str, iface: &str, address: &str) -> Result<(), LabError> {
    if address.contains(':') {
        must(&[
            "ip", "-n", ns, "addr", "add", address, "dev", iface, "nodad",
        ])
        .map(|_| ())
    } else {
        must(&["ip", "-n", ns, "addr", "add", address, "dev", iface]).map(|_| ())
    }
}

impl Drop for Netlab {
    fn drop(&mut self) {
        for forward in &self.forwards {
            forward.abort();
        }
        for started in &mut self.processes {
            // Only processes this lab started, by PID.
            let _ = started.child.kill();
            let _ = started.child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = run(&["ip", "netns", "delete", ns]);
        }
    }
}

/// Polls `check` every `every` until it returns `Ok`, or fails with its last error after
/// `within`.
pub fn poll<T>(
    what: &str,
    within: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = std::time::Instant::now() + within;
    loop {
        match check() {
            Ok(value) => return Ok(value),
            Err(e) if std::time::Instant::now() >= deadline => return Err(format!("{what}: {e}")),
            Err(_) => std::thread::sleep(every),
        }
    }
}
