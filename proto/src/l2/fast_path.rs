//! The in-kernel fast path of one responder: the address map shared by its interfaces,
//! and per interface the program (`answer_prog`), its counters and the bpf_link that
//! attaches it at TCX ingress.
//!
//! ```text
//!   driver ── announce/withdraw ──► AddressMap (hash: ifindex, ip → MAC)
//!   Heartbeat::beat ──────────────────► AddressMap's deadline (array: 1 × u64 ns)
//!     │                                  ▲ lookup
//!     └─ open interface ──► FastPath: program ── TCX ingress link (owned fd)
//!                                      └─ counters (per-CPU array) ──► sync() ──► InterfaceCounters
//! ```
//! The link is the only thing keeping the program attached: dropping the `FastPath`
//! or the process dying (SIGKILL included) detaches it, so a crashed speaker stops
//! answering and another node can take its addresses over.
//!
//! Order matters on changes: an address enters the map only after the socket path
//! serves it (group joined), and leaves the map before the socket path stops, so no
//! question is answered after `withdraw` returns and none is lost in between.
//! Decides nothing about frames (the program does, as `decide` would).

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use super::addr::MacAddr;
use super::answer_prog::{self, ARP_ANSWERED, ARP_SEEN, COUNTERS, KEY_LEN, NS_ANSWERED, NS_SEEN};
use super::bpf_sys::{self, Map};
use super::counters::{Family, InterfaceCounters};

/// Most (interface, address) pairs one responder can serve in the kernel; beyond
/// that, inserts fail and the socket path answers the rest. Entries are allocated
/// as they are inserted (BPF_F_NO_PREALLOC), so the limit costs no memory.
pub const MAX_ADDRESSES: u32 = 16 * 1024;

/// Why the fast path could not start on an interface.
#[derive(Debug, thiserror::Error)]
pub enum FastPathError {
    /// A map could not be created.
    #[error("creating the {map} map: {source}")]
    Map {
        /// Which map.
        map: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The program did not build (a bug: labels or jump range).
    #[error("building the program: {0}")]
    Build(#[from] super::ebpf::BuildError),
    /// The kernel refused the program.
    #[error("loading the program: {source}; verifier: {log}")]
    Load {
        /// The OS error.
        source: io::Error,
        /// The verifier's log (may be empty).
        log: String,
    },
    /// The program could not be attached (no TCX before Linux 6.6, no CAP_NET_ADMIN).
    #[error("attaching at TCX ingress: {source}")]
    Attach {
        /// The OS error.
        source: io::Error,
    },
}

impl FastPathError {
    /// The OS error number, for the log line.
    pub fn errno(&self) -> Option<i32> {
        match self {
            FastPathError::Map { source, .. }
            | FastPathError::Load { source, .. }
            | FastPathError::Attach { source } => source.raw_os_error(),
            FastPathError::Build(_) => None,
        }
    }

    /// Stable CamelCase label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            FastPathError::Map { .. } => "FastPathMap",
            FastPathError::Build(_) => "FastPathBuild",
            FastPathError::Load { .. } => "FastPathLoad",
            FastPathError::Attach { .. } => "FastPathAttach",
        }
    }
}

/// The address map key: ifindex in host order (as the program reads it from the
/// `__sk_buff`), then the address as 16 octets (IPv4 v4-mapped, ::ffff:a.b.c.d).
pub fn key(ifindex: u32, ip: IpAddr) -> [u8; KEY_LEN as usize] {
    let mut out = [0u8; KEY_LEN as usize];
    out[..4].copy_from_slice(&ifindex.to_ne_bytes());
    let octets = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    out[4..].copy_from_slice(&octets);
    out
}

/// The address map value: the MAC and two zero octets.
fn value(mac: MacAddr) -> [u8; answer_prog::VALUE_LEN as usize] {
    let mut out = [0u8; answer_prog::VALUE_LEN as usize];
    out[..6].copy_from_slice(&mac.0);
    out
}

/// The (interface, address) → MAC map of one responder, and the heartbeat deadline after
/// which it answers nothing; read by every program.
#[derive(Debug)]
pub struct AddressMap {
    map: Map,
    /// One u64: CLOCK_MONOTONIC ns after which the programs pass every frame on.
    deadline: Map,
    /// Stride of per-CPU counter values.
    possible_cpus: usize,
}

impl AddressMap {
    /// Creates the map. Needs CAP_BPF (or root).
    pub fn create() -> Result<Arc<AddressMap>, FastPathError> {
        let map_err = |map| move |source| FastPathError::Map { map, source };
        let possible_cpus = bpf_sys::possible_cpus().map_err(map_err("counters"))?;
        let map = Map::create(
            bpf_sys::MAP_TYPE_HASH,
            KEY_LEN,
            answer_prog::VALUE_LEN,
            MAX_ADDRESSES,
            bpf_sys::MAP_F_NO_PREALLOC,
            1,
            "ferrolb_l2_addr",
        )
        .map_err(map_err("address"))?;
        let deadline = Map::create(bpf_sys::MAP_TYPE_ARRAY, 4, 8, 1, 0, 1, "ferrolb_l2_beat")
            .map_err(map_err("deadline"))?;
        let addresses = AddressMap {
            map,
            deadline,
            possible_cpus,
        };
        addresses
            .set_deadline(u64::MAX)
            .map_err(map_err("deadline"))?;
        Ok(Arc::new(addresses))
    }

    /// The programs answer until CLOCK_MONOTONIC passes `deadline_ns`.
    pub fn set_deadline(&self, deadline_ns: u64) -> io::Result<()> {
        self.deadline
            .update(&0u32.to_ne_bytes(), &deadline_ns.to_ne_bytes())
    }

    /// Answers for `ip` on `ifindex` with `mac`.
    pub fn insert(&self, ifindex: u32, ip: IpAddr, mac: MacAddr) -> io::Result<()> {
        self.map.update(&key(ifindex, ip), &value(mac))
    }

    /// Stops answering for `ip` on `ifindex`; absent is fine.
    pub fn remove(&self, ifindex: u32, ip: IpAddr) -> io::Result<()> {
        match self.map.delete(&key(ifindex, ip)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// The MAC answered for `ip` on `ifindex`, if any (tests and diagnostics).
    pub fn get(&self, ifindex: u32, ip: IpAddr) -> io::Result<Option<MacAddr>> {
        match self.map.lookup(&key(ifindex, ip)) {
            Ok(v) => Ok(v.get(..6).and_then(|m| m.try_into().ok()).map(MacAddr)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A loaded program with its counters, not attached anywhere (tests run it with
/// `BPF_PROG_TEST_RUN`; `FastPath` attaches it).
#[derive(Debug)]
pub struct Program {
    fd: OwnedFd,
    counters: Map,
}

impl Program {
    /// Builds and loads the program for `addresses`, with fresh counters.
    pub fn load(addresses: &AddressMap, name: &str) -> Result<Program, FastPathError> {
        let counters = Map::create(
            bpf_sys::MAP_TYPE_PERCPU_ARRAY,
            4,
            8,
            COUNTERS,
            0,
            addresses.possible_cpus,
            "ferrolb_l2_cnt",
        )
        .map_err(|source| FastPathError::Map {
            map: "counters",
            source,
        })?;
        let insns = answer_prog::program(
            addresses.map.raw_fd(),
            counters.raw_fd(),
            addresses.deadline.raw_fd(),
        )?;
        let fd = bpf_sys::load_sched_cls(&insns, name).map_err(|e| FastPathError::Load {
            source: e.source,
            log: e.log,
        })?;
        Ok(Program { fd, counters })
    }

    /// The sum over CPUs of each counter slot (`answer_prog::ARP_SEEN`...).
    pub fn counters(&self) -> io::Result<[u64; COUNTERS as usize]> {
        let mut out = [0u64; COUNTERS as usize];
        for (slot, total) in (0u32..).zip(&mut out) {
            let per_cpu = self.counters.lookup(&slot.to_ne_bytes())?;
            *total = per_cpu
                .chunks_exact(8)
                .filter_map(|c| c.try_into().ok().map(u64::from_ne_bytes))
                .fold(0u64, u64::wrapping_add);
        }
        Ok(out)
    }

    /// Runs the program once on `frame` as received on `ifindex` (0 or 1: loopback);
    /// returns its verdict and the frame it leaves. Needs CAP_BPF (or root).
    pub fn test_run(&self, frame: &[u8], ifindex: u32) -> io::Result<(i32, Vec<u8>)> {
        let run = bpf_sys::test_run(self.fd.as_fd(), frame, ifindex)?;
        Ok((run.retval, run.frame))
    }
}

/// The fast path of one interface: its program attached at TCX ingress, and the
/// addresses it put in the shared map.
#[derive(Debug)]
pub struct FastPath {
    /// Keeps the program attached; closed on drop (or by the kernel on process exit).
    #[expect(dead_code, reason = "held for its Drop, which detaches the program")]
    link: OwnedFd,
    program: Program,
    addresses: Arc<AddressMap>,
    ifindex: u32,
    mac: MacAddr,
    /// Addresses inserted for this interface, removed on drop.
    inserted: BTreeSet<IpAddr>,
    /// Counter values already added to `interface_counters`.
    synced: [u64; COUNTERS as usize],
    interface_counters: Arc<InterfaceCounters>,
}

impl FastPath {
    /// Loads the program and attaches it at TCX ingress of `ifindex`. Needs CAP_BPF
    /// and CAP_NET_ADMIN and Linux 6.6 or later.
    pub fn attach(
        interface: &str,
        ifindex: u32,
        mac: MacAddr,
        addresses: Arc<AddressMap>,
        interface_counters: Arc<InterfaceCounters>,
    ) -> Result<FastPath, FastPathError> {
        let program = Program::load(&addresses, &format!("ferrolb_{interface}"))?;
        let link = bpf_sys::attach_tcx_ingress(program.fd.as_fd(), ifindex)
            .map_err(|source| FastPathError::Attach { source })?;
        Ok(FastPath {
            link,
            program,
            addresses,
            ifindex,
            mac,
            inserted: BTreeSet::new(),
            synced: [0; COUNTERS as usize],
            interface_counters,
        })
    }

    /// Answers for `ip` in the kernel from now on.
    pub fn announce(&mut self, ip: IpAddr) -> io::Result<()> {
        self.addresses.insert(self.ifindex, ip, self.mac)?;
        self.inserted.insert(ip);
        Ok(())
    }

    /// Stops answering for `ip` in the kernel; when this returns, no new run of the
    /// program finds it.
    pub fn withdraw(&mut self, ip: IpAddr) -> io::Result<()> {
        self.addresses.remove(self.ifindex, ip)?;
        self.inserted.remove(&ip);
        Ok(())
    }

    /// Adds what the program counted since the last call to the interface counters: a
    /// question it answered counts as seen and as a reply sent, like one the socket
    /// path answered.
    pub fn sync(&mut self) -> io::Result<()> {
        let now = self.program.counters()?;
        let delta = |slot: u32| {
            let i = slot as usize;
            now.get(i)
                .zip(self.synced.get(i))
                .map_or(0, |(n, s)| n.saturating_sub(*s))
        };
        self.interface_counters
            .family(Family::V4)
            .answered_in_kernel(delta(ARP_SEEN), delta(ARP_ANSWERED));
        self.interface_counters
            .family(Family::V6)
            .answered_in_kernel(delta(NS_SEEN), delta(NS_ANSWERED));
        self.synced = now;
        Ok(())
    }
}

impl Drop for FastPath {
    fn drop(&mut self) {
        let _ = self.sync();
        for ip in std::mem::take(&mut self.inserted) {
            if let Err(e) = self.addresses.remove(self.ifindex, ip) {
                tracing::warn!(%ip, ifindex = self.ifindex, error = %e, "l2 fast path entry not removed");
            }
        }
    }
}
