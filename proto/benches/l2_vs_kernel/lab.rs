//! The bench's namespaces (on `ferrolb-netlab`): a client and a speaker joined by three veth
//! pairs, torn down on drop (also on panic), plus the per-thread helpers the figures need.

use ferrolb_netlab::{Netlab, counters, netns};
use ferrolb_proto::l2::MacAddr;

/// `[cli] cli0 ──veth── spk0 [spk]` (the Responder with the fast path, and iperf3's),
/// an identical `cli1 ──veth── spk1` where the kernel owns 198.51.100.2 /
/// 2001:db8:1::2, and `cli2 ──veth── spk2` for a second Responder with sockets only;
/// so each answerer sees only its own questions.
pub struct Lab {
    net: Netlab,
    pub cli: String,
    pub spk: String,
}

impl Lab {
    pub fn new() -> Lab {
        let mut net = Netlab::new("l2k").expect("lab");
        for role in ["cli", "spk"] {
            net.add_namespace(role).expect("namespace");
        }
        for (c, s, v4, v6) in [
            (
                "cli0",
                "spk0",
                ["192.0.2.1/24", "192.0.2.2/24"],
                ["2001:db8::1/64", "2001:db8::2/64"],
            ),
            (
                "cli1",
                "spk1",
                ["198.51.100.1/24", "198.51.100.2/24"],
                ["2001:db8:1::1/64", "2001:db8:1::2/64"],
            ),
            (
                "cli2",
                "spk2",
                ["203.0.113.1/24", "203.0.113.2/24"],
                ["2001:db8:2::1/64", "2001:db8:2::2/64"],
            ),
        ] {
            net.link(("cli", c, &[v4[0], v6[0]]), ("spk", s, &[v4[1], v6[1]]))
                .expect("veth pair");
        }
        let (cli, spk) = (net.ns("cli"), net.ns("spk"));
        Lab { net, cli, spk }
    }

    /// The MAC of `dev` in the client namespace.
    pub fn client_mac(&self, dev: &str) -> MacAddr {
        let mac = self.net.mac("cli", dev).expect("MAC");
        mac.parse().expect("a MAC address")
    }

    /// The interface index of `dev` in the client namespace.
    pub fn client_ifindex(&self, dev: &str) -> u32 {
        self.net.ifindex("cli", dev).expect("an index")
    }
}

/// Moves the calling thread (only) into namespace `ns`.
pub fn enter(ns: &str) {
    netns::enter(ns).expect("setns");
}

/// (rx packets, tx packets) of `dev` as seen from the calling thread's namespace.
pub fn dev_packets(dev: &str) -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev").expect("/proc/net/dev");
    counters::parse_link_packets(&text, dev).expect("device in /proc/net/dev")
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
