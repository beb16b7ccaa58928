//! The bench's namespaces: a client and a speaker joined by one veth pair, torn down on
//! drop (also on panic), plus the `ip`/proc helpers the figures need.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;

use ferrolb_proto::l2::MacAddr;

/// Runs `ip ARGS`; panics with its stderr when it fails.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `[cli] cli0 ──veth── spk0 [spk]` (the Responder with the fast path, and iperf3's),
/// an identical `cli1 ──veth── spk1` where the kernel owns 198.51.100.2 /
/// 2001:db8:1::2, and `cli2 ──veth── spk2` for a second Responder with sockets only;
/// so each answerer sees only its own questions.
pub struct Lab {
    pub cli: String,
    pub spk: String,
}

impl Lab {
    pub fn new() -> Lab {
        let prefix = format!("fl2k-{}-", std::process::id());
        let lab = Lab {
            cli: format!("{prefix}cli"),
            spk: format!("{prefix}spk"),
        };
        for ns in [&lab.cli, &lab.spk] {
            ip(&["netns", "add", ns]);
        }
        for (c, s) in [("cli0", "spk0"), ("cli1", "spk1"), ("cli2", "spk2")] {
            ip(&[
                "link", "add", c, "netns", &lab.cli, "type", "veth", "peer", "name", s, "netns",
                &lab.spk,
            ]);
        }
        for (ns, dev, v4, v6) in [
            (&lab.cli, "cli0", "192.0.2.1/24", "2001:db8::1/64"),
            (&lab.spk, "spk0", "192.0.2.2/24", "2001:db8::2/64"),
            (&lab.cli, "cli1", "198.51.100.1/24", "2001:db8:1::1/64"),
            (&lab.spk, "spk1", "198.51.100.2/24", "2001:db8:1::2/64"),
            (&lab.cli, "cli2", "203.0.113.1/24", "2001:db8:2::1/64"),
            (&lab.spk, "spk2", "203.0.113.2/24", "2001:db8:2::2/64"),
        ] {
            ip(&["-n", ns, "addr", "add", v4, "dev", dev]);
            ip(&["-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        lab
    }

    pub fn mac(&self, ns: &str, dev: &str) -> MacAddr {
        ip(&["-n", ns, "-br", "link", "show", dev])
            .split_whitespace()
            .find_map(|w| w.parse().ok())
            .expect("a MAC")
    }

    pub fn ifindex(&self, ns: &str, dev: &str) -> u32 {
        ip(&["-n", ns, "-o", "link", "show", dev])
            .split(':')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .expect("an index")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.cli, &self.spk] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Moves the calling thread (only) into namespace `ns`.
pub fn enter(ns: &str) {
    let file = File::open(format!("/run/netns/{ns}")).expect("namespace file");
    // SAFETY: `file` is an open namespace file; setns(2) moves only the calling thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// (rx packets, tx packets) of `dev` as seen from the calling thread's namespace.
pub fn dev_packets(dev: &str) -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev").expect("/proc/net/dev");
    text.lines()
        .find_map(|l| {
            let (name, rest) = l.split_once(':')?;
            if name.trim() != dev {
                return None;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            Some((*f.get(1)?, *f.get(9)?))
        })
        .expect("device in /proc/net/dev")
}

/// The calling thread's kernel id.
pub fn gettid() -> i32 {
    // SAFETY: gettid(2) has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

/// Gives the calling thread (the client: prober and flooder) nice -20, so that it
/// stands for a remote sender whose speed does not depend on this machine's other
/// load; the kernel and the Responder rows get the same sender.
pub fn raise_priority() {
    // SAFETY: setpriority(2) on this thread's id; plain integers only.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, gettid() as libc::id_t, -20) };
    assert_eq!(rc, 0, "setpriority: {}", std::io::Error::last_os_error());
}
