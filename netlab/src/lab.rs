//! [`Netlab`]: one lab's namespaces, links and processes, all named with the lab's unique prefix
//! and all removed on drop (also when a test panics).
//!
//! ```text
//!   [<prefix>sw]  br0 (the switch; it may hold addresses itself, e.g. a router on the segment)
//!     ├─ p-<role> ──veth── <iface> [<prefix><role>]   add_host / plug
//!     └─ ...
//!   [<prefix>a] <iface> ──veth── <iface> [<prefix>b]   link (point to point)
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::command::{must, must_in, run, run_in};
use crate::error::{LabError, io_error};
use crate::poll::poll;
use crate::process::Processes;
use crate::{forward, netns};

/// Labs made by this process so far: part of every prefix, so parallel tests never collide.
static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);

/// One end of a point-to-point link: (host role, interface name, addresses in CIDR notation).
pub type End<'a> = (&'a str, &'a str, &'a [&'a str]);

/// A lab: a switch namespace with bridge `br0`, and the hosts, links and processes added to it.
#[derive(Debug)]
pub struct Netlab {
    /// `fl-<tag>-<pid>-<n>-`: starts every namespace name of this lab.
    prefix: String,
    /// Created so far, deleted on drop (last first).
    namespaces: Vec<String>,
    processes: Processes,
    /// TCP forwarders, aborted on drop.
    forwards: Vec<JoinHandle<()>>,
    /// Configurations, logs and control sockets of the lab's processes; removed on drop.
    dir: tempfile::TempDir,
}

impl Netlab {
    /// The switch namespace's role.
    pub const SWITCH: &'static str = "sw";
    /// The switch's bridge.
    pub const BRIDGE: &'static str = "br0";

    /// Creates the switch. `tag` names the lab in every namespace (`fl-<tag>-<pid>-<n>-<role>`).
    pub fn new(tag: &str) -> Result<Self, LabError> {
        let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("fl-{tag}-{}-{n}-", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir()
            .map_err(io_error("lab directory"))?;
        let mut lab = Netlab {
            prefix,
            namespaces: Vec::new(),
            processes: Processes::default(),
            forwards: Vec::new(),
            dir,
        };
        let sw = lab.add_namespace(Self::SWITCH)?;
        let br = Self::BRIDGE;
        ip_in(&sw, &["link", "add", br, "type", "bridge"])?;
        // Forward at once: no listening/learning delay on a fresh port.
        ip_in(
            &sw,
            &["link", "set", br, "type", "bridge", "forward_delay", "0"],
        )?;
        prepare_interface(&sw, br)?;
        ip_in(&sw, &["link", "set", br, "up"])?;
        Ok(lab)
    }

    /// `fl-<tag>-<pid>-<n>-`, the start of every namespace name of this lab.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full namespace name of `role`.
    pub fn ns(&self, role: &str) -> String {
        format!("{}{role}", self.prefix)
    }

    /// The switch's full namespace name.
    pub fn switch_ns(&self) -> String {
        self.ns(Self::SWITCH)
    }

    /// The lab's private directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the lab's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A namespace `role` with only `lo` (up); links come with [`Netlab::plug`] or
    /// [`Netlab::link`].
    pub fn add_namespace(&mut self, role: &str) -> Result<String, LabError> {
        let name = self.ns(role);
        must(&["ip", "netns", "add", &name])?;
        self.namespaces.push(name.clone());
        ip_in(&name, &["link", "set", "lo", "up"])?;
        Ok(name)
    }

    /// A host namespace `role` whose interface `iface` is plugged into the switch on port
    /// `p-<role>`, with `addresses` (CIDR; IPv6 without duplicate address detection).
    pub fn add_host(
        &mut self,
        role: &str,
        iface: &str,
        addresses: &[&str],
    ) -> Result<String, LabError> {
        let ns = self.add_namespace(role)?;
        self.plug(role, iface, &format!("p-{role}"), addresses)?;
        Ok(ns)
    }

    /// Plugs another interface `iface` of host `role` into the switch, on switch port `port`.
    pub fn plug(
        &mut self,
        role: &str,
        iface: &str,
        port: &str,
        addresses: &[&str],
    ) -> Result<(), LabError> {
        let (ns, sw) = (self.ns(role), self.switch_ns());
        must(&[
            "ip", "link", "add", iface, "netns", &ns, "type", "veth", "peer", "name", port,
            "netns", &sw,
        ])?;
        prepare_interface(&sw, port)?;
        ip_in(&sw, &["link", "set", port, "master", Self::BRIDGE, "up"])?;
        bring_up(&ns, iface, addresses)?;
        wait_addresses_usable(&ns)?;
        wait_addresses_usable(&sw)
    }

    /// A point-to-point veth link between two existing namespaces.
    pub fn link(&mut self, a: End<'_>, b: End<'_>) -> Result<(), LabError> {
        let (ns_a, ns_b) = (self.ns(a.0), self.ns(b.0));
        must(&[
            "ip", "link", "add", a.1, "netns", &ns_a, "type", "veth", "peer", "name", b.1, "netns",
            &ns_b,
        ])?;
        bring_up(&ns_a, a.1, a.2)?;
        bring_up(&ns_b, b.1, b.2)?;
        wait_addresses_usable(&ns_a)?;
        wait_addresses_usable(&ns_b)
    }

    /// Gives the switch itself addresses on `br0` (a host every plugged host reaches).
    pub fn address_switch(&self, addresses: &[&str]) -> Result<(), LabError> {
        let sw = self.switch_ns();
        for address in addresses {
            add_address(&sw, Self::BRIDGE, address)?;
        }
        wait_addresses_usable(&sw)
    }

    /// Adds an address (CIDR; IPv6 without duplicate address detection) to `iface` of `role`.
    pub fn add_address(&self, role: &str, iface: &str, address: &str) -> Result<(), LabError> {
        let ns = self.ns(role);
        add_address(&ns, iface, address)?;
        wait_addresses_usable(&ns)
    }

    /// Runs a command inside `role`.
    pub fn exec(&self, role: &str, args: &[&str]) -> Result<Output, LabError> {
        run_in(&self.ns(role), args)
    }

    /// Runs a command inside `role` that must succeed; returns its stdout.
    pub fn exec_ok(&self, role: &str, args: &[&str]) -> Result<String, LabError> {
        must_in(&self.ns(role), args)
    }

    /// Sets a sysctl (`net.ipv4.ip_forward=1`) inside `role`.
    pub fn sysctl(&self, role: &str, setting: &str) -> Result<(), LabError> {
        self.exec_ok(role, &["sysctl", "-qw", setting]).map(|_| ())
    }

    /// Sets `iface` of `role` up or down.
    pub fn set_link(&self, role: &str, iface: &str, up: bool) -> Result<(), LabError> {
        let state = if up { "up" } else { "down" };
        ip_in(&self.ns(role), &["link", "set", iface, state]).map(|_| ())
    }

    /// The MAC address of `iface` in `role`, as `ip` prints it (lower case).
    pub fn mac(&self, role: &str, iface: &str) -> Result<String, LabError> {
        let text = ip_in(&self.ns(role), &["-br", "link", "show", iface])?;
        crate::l2::find_mac(&text).ok_or_else(|| LabError::Missing {
            what: format!("the MAC of {iface} in {role}"),
            detail: text,
        })
    }

    /// The interface index of `iface` in `role`.
    pub fn ifindex(&self, role: &str, iface: &str) -> Result<u32, LabError> {
        let text = ip_in(&self.ns(role), &["-o", "link", "show", iface])?;
        text.split(':')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| LabError::Missing {
                what: format!("the index of {iface} in {role}"),
                detail: text,
            })
    }

    /// The kernel routes of `role` to `prefix` (`ip route show PREFIX`, family from the
    /// prefix), trimmed; empty when there is none.
    pub fn routes(&self, role: &str, prefix: &str) -> Result<String, LabError> {
        let family = if prefix.contains(':') { "-6" } else { "-4" };
        let out = must(&["ip", family, "-n", &self.ns(role), "route", "show", prefix])?;
        Ok(out.trim().to_owned())
    }

    /// Forwards TCP connections made to `listen` inside `role` to `target` in the caller's
    /// namespace, until the lab is dropped. Needs a tokio runtime.
    pub fn forward(
        &mut self,
        role: &str,
        listen: SocketAddr,
        target: SocketAddr,
    ) -> Result<(), LabError> {
        let ns = self.ns(role);
        let std_listener = netns::bind_tcp_in(&ns, listen)
            .map_err(io_error(format!("binding {listen} in {ns}")))?;
        let listener =
            tokio::net::TcpListener::from_std(std_listener).map_err(io_error("listener"))?;
        self.forwards.push(forward::spawn(listener, target));
        Ok(())
    }

    /// Starts a long-running process inside `role`, output to `log`; returns its PID.
    pub fn spawn(
        &mut self,
        name: &str,
        role: &str,
        args: &[&str],
        envs: &[(&str, &str)],
        log: &Path,
    ) -> Result<u32, LabError> {
        let ns = self.ns(role);
        self.processes.start(name, &ns, args, envs, log)
    }

    /// The processes the lab started (signals, stops, logs, liveness).
    pub fn processes(&mut self) -> &mut Processes {
        &mut self.processes
    }

    /// Sends `signal` ("KILL", "TERM", "STOP", "CONT") to a process the lab started.
    pub fn signal(&self, pid: u32, signal: &str) -> Result<(), LabError> {
        self.processes.signal(pid, signal)
    }

    /// Waits for a process the lab started to end (after a signal); forgets it.
    pub fn reap(&mut self, pid: u32) -> Option<ExitStatus> {
        self.processes.reap(pid)
    }

    /// Names of started processes that have ended, with their status.
    pub fn exited(&mut self) -> Vec<(String, ExitStatus)> {
        self.processes.exited()
    }
}

impl Drop for Netlab {
    fn drop(&mut self) {
        for forward in &self.forwards {
            forward.abort();
        }
        // Only processes this lab started, by PID.
        self.processes.kill_all();
        for ns in self.namespaces.iter().rev() {
            let _ = run(&["ip", "netns", "delete", ns]);
        }
    }
}

/// `ip -n NS ARGS...`, which must succeed; its stdout.
fn ip_in(ns: &str, args: &[&str]) -> Result<String, LabError> {
    let mut full = vec!["ip", "-n", ns];
    full.extend_from_slice(args);
    must(&full)
}

/// Prepares `iface` in `ns`, gives it `addresses` and sets it up.
fn bring_up(ns: &str, iface: &str, addresses: &[&str]) -> Result<(), LabError> {
    prepare_interface(ns, iface)?;
    for address in addresses {
        add_address(ns, iface, address)?;
    }
    ip_in(ns, &["link", "set", iface, "up"]).map(|_| ())
}

/// How long the kernel may take to make a new IPv6 address usable.
const ADDRESS_READY: Duration = Duration::from_secs(30);

/// Waits until no IPv6 address on a link with carrier in `ns` is still tentative. Even without
/// DAD the kernel finishes an address (and joins its solicited-node group) in a work item that
/// needs the RTNL lock; on a machine busy creating and deleting namespaces that can take
/// seconds, and a test that sends at once finds no neighbour. A link without carrier (a bridge
/// with no port yet) keeps its addresses tentative and is not waited for.
fn wait_addresses_usable(ns: &str) -> Result<(), LabError> {
    poll(
        &format!("IPv6 addresses in {ns} usable"),
        ADDRESS_READY,
        Duration::from_millis(10),
        || {
            let text =
                ip_in(ns, &["-6", "addr", "show", "tentative"]).map_err(|e| e.to_string())?;
            let waiting = tentative_on_live_links(&text);
            if waiting.is_empty() {
                Ok(())
            } else {
                Err(waiting.join(", "))
            }
        },
    )
}

/// The tentative addresses of links that have carrier, in `ip -6 addr show tentative` output
/// (`N: name: <FLAGS> ...` lines, each followed by its `inet6 ADDR ...` lines). Pure.
pub(crate) fn tentative_on_live_links(text: &str) -> Vec<String> {
    let mut live = false;
    let mut found = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(address) = trimmed.strip_prefix("inet6 ") {
            if live {
                found.extend(address.split_whitespace().next().map(str::to_owned));
            }
        } else if !line.starts_with(' ') {
            live = line.contains("LOWER_UP");
        }
    }
    found
}

/// No duplicate address detection and no router solicitations: addresses are usable at once.
/// IPv6 addresses survive the link going down, as IPv4 ones do, so that a link taken down and
/// back (a crashed node returning) has its addresses again.
fn prepare_interface(ns: &str, iface: &str) -> Result<(), LabError> {
    for sysctl in [
        "accept_dad=0",
        "accept_ra=0",
        "router_solicitations=0",
        "keep_addr_on_down=1",
    ] {
        let setting = format!("net.ipv6.conf.{iface}.{sysctl}");
        must_in(ns, &["sysctl", "-qw", &setting])?;
    }
    Ok(())
}

fn add_address(ns: &str, iface: &str, address: &str) -> Result<(), LabError> {
    let mut args = vec!["ip", "-n", ns, "addr", "add", address, "dev", iface];
    if address.contains(':') {
        args.push("nodad");
    }
    must(&args).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tentative_addresses_of_links_with_carrier_are_waited_for() {
        let text = "\
2: br0: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 state DOWN qlen 1000
    inet6 2001:db8:1::fe/64 scope global tentative
       valid_lft forever preferred_lft forever
5: eth0@if4: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 state UP qlen 1000
    inet6 2001:db8::1/64 scope global tentative
       valid_lft forever preferred_lft forever
";
        assert_eq!(tentative_on_live_links(text), vec!["2001:db8::1/64"]);
        assert!(tentative_on_live_links("").is_empty());
    }
}
