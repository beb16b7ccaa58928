//! How many BFD sessions one BFD task carries, and at what CPU cost: N sessions at MetalLB's
//! default 300 ms × 3 between two FerroLB drivers, each on its own thread in its own network
//! namespace, joined by one veth (IPv6; driver A has one address, driver B one per session on
//! `lo`, reached through B's link address so that neither side holds thousands of neighbours).
//! After every session is Up and its Poll Sequence done, the CPU time (utime + stime from
//! `/proc/self/task/<tid>/stat`) of each driver's thread is measured over a window and printed
//! as % of one core, with A's packet rates, A's wake-ups per second, and what must stay zero:
//! sessions that left Up, datagrams the drivers discarded in the window, and datagrams the
//! kernel dropped for a full receive buffer (`Udp6RcvbufErrors`).
//!
//! Needs root (namespaces). `BFD_BENCH_SESSIONS` (comma-separated, default `1000`),
//! `BFD_BENCH_WINDOW_SECS` (default 20) and `BFD_BENCH_SLACK_MS` (the drivers' timer slack,
//! default 5) set the runs:
//!
//! ```sh
//! cargo bench -p ferrolb-proto --bench bfd_sessions
//! BFD_BENCH_SESSIONS=1000,2000,4000 cargo bench -p ferrolb-proto --bench bfd_sessions
//! ```

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::{IpAddr, Ipv6Addr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_proto::bfd::counters::SessionCounters;
use ferrolb_proto::bfd::{
    Bfd, DriverConfig, Profile, SessionHandle, SessionKey, SessionSpec, State,
};

const A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xbfd, 0, 0, 0, 0, 1);
/// B's address on the link, the next hop of its session addresses.
const B_LINK: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xbfd, 0, 0, 0, 0, 2);

fn b_addr(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0xbfd, 0, 0, 0, 1, i as u16)
}

fn must(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One driver: a thread in its namespace with a current-thread runtime, and its thread id.
struct Driver {
    bfd: Bfd,
    handle: tokio::runtime::Handle,
    tid: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Driver {
    fn start(ns: &str, config: DriverConfig) -> Driver {
        let ns = ns.to_owned();
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            ferrolb_netlab::netns::enter(&ns).unwrap();
            let tid = std::fs::read_link("/proc/thread-self").unwrap();
            let tid = tid.file_name().unwrap().to_string_lossy().into_owned();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (bfd, _task) = rt.block_on(async { ferrolb_proto::bfd::spawn(config) });
            tx.send((bfd, rt.handle().clone(), tid)).unwrap();
            rt.block_on(async move {
                let _ = stop_rx.await;
            });
        });
        let (bfd, handle, tid) = rx.recv().unwrap();
        Driver {
            bfd,
            handle,
            tid,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn add_all(&self, keys: Vec<SessionKey>) -> Vec<SessionHandle> {
        let bfd = self.bfd.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        self.handle.spawn(async move {
            let mut out = Vec::new();
            for key in keys {
                let spec = SessionSpec {
                    key,
                    profile: Profile::default(),
                };
                out.push(bfd.add(spec).await.unwrap());
            }
            tx.send(out).unwrap();
        });
        rx.recv().unwrap()
    }

    /// Voluntary context switches of the driver's thread (each a sleep and a wake-up).
    fn wakeups(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/self/task/{}/status", self.tid)).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// utime + stime of the driver's thread, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{}/stat", self.tid)).unwrap();
        ferrolb_netlab::counters::parse_cpu_ticks(&stat).unwrap()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Two namespaces and a veth; removed on drop.
struct Netns(Vec<String>);

impl Netns {
    fn new(sessions: usize) -> Netns {
        let p = format!("fbfdbench{}-", std::process::id());
        let (a, b) = (format!("{p}a"), format!("{p}b"));
        let ns = Netns(vec![a.clone(), b.clone()]);
        for n in &ns.0 {
            must(&["ip", "netns", "add", n]);
            must(&["ip", "-n", n, "link", "set", "lo", "up"]);
        }
        must(&[
            "ip", "link", "add", "eth0", "netns", &a, "type", "veth", "peer", "name", "eth0",
            "netns", &b,
        ]);
        for n in &ns.0 {
            must(&[
                "ip",
                "netns",
                "exec",
                n,
                "sysctl",
                "-qw",
                "net.ipv6.conf.eth0.accept_dad=0",
            ]);
            must(&["ip", "-n", n, "link", "set", "eth0", "up"]);
        }
        let a_cidr = format!("{A}/64");
        let b_cidr = format!("{B_LINK}/64");
        let via = B_LINK.to_string();
        for args in [
            [
                "-n",
                a.as_str(),
                "addr",
                "add",
                a_cidr.as_str(),
                "dev",
                "eth0",
                "nodad",
            ],
            [
                "-n",
                b.as_str(),
                "addr",
                "add",
                b_cidr.as_str(),
                "dev",
                "eth0",
                "nodad",
            ],
        ] {
            must(&[&["ip"], &args[..]].concat());
        }
        must(&[
            "ip",
            "-n",
            &a,
            "route",
            "add",
            "2001:db8:bfd::1:0/112",
            "via",
            &via,
        ]);
        let mut batch = String::new();
        for i in 1..=sessions {
            batch += &format!("addr add {}/128 dev lo\n", b_addr(i));
        }
        let mut child = Command::new("ip")
            .args(["-n", &b, "-batch", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(batch.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// Datagrams the drivers discarded (any `DropReason`) so far.
fn dropped(drivers: &[&Driver]) -> u64 {
    drivers
        .iter()
        .flat_map(|d| d.bfd.drops().snapshot())
        .map(|(_, n)| n)
        .sum()
}

/// Datagrams the kernel dropped in namespace `ns` because a UDP socket's buffer was full.
fn rcvbuf_errors(ns: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/snmp6"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Udp6RcvbufErrors"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn sum(handles: &[SessionHandle], f: impl Fn(&Arc<SessionCounters>) -> u64) -> u64 {
    handles.iter().map(|h| f(&h.counters)).sum()
}

fn run(sessions: usize, window: Duration, config: DriverConfig, ticks_per_sec: f64) {
    let ns = Netns::new(sessions);
    let a = Driver::start(&ns.0[0], config);
    let b = Driver::start(&ns.0[1], config);
    let key = |peer: Ipv6Addr, local: Ipv6Addr| SessionKey {
        peer: IpAddr::V6(peer),
        local: Some(IpAddr::V6(local)),
        is_multihop: false,
        interface: None,
    };
    let started = Instant::now();
    let ha = a.add_all((1..=sessions).map(|i| key(b_addr(i), A)).collect());
    let hb = b.add_all((1..=sessions).map(|i| key(A, b_addr(i))).collect());
    let all_up = |h: &[SessionHandle]| {
        h.iter().all(|s| {
            let st = *s.status.borrow();
            st.state == State::Up && !st.is_polling
        })
    };
    while !(all_up(&ha) && all_up(&hb)) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not all Up in 120 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let up_after = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let (ca, cb) = (a.cpu_ticks(), b.cpu_ticks());
    let wa = a.wakeups();
    let drops_before = dropped(&[&a, &b]);
    let downs_before =
        sum(&ha, |c| c.snapshot().down_events) + sum(&hb, |c| c.snapshot().down_events);
    let overflows = rcvbuf_errors(&ns.0[0]) + rcvbuf_errors(&ns.0[1]);
    let out_a = sum(&ha, |c| c.snapshot().control_out);
    let in_a = sum(&ha, |c| c.snapshot().control_in);
    let t0 = Instant::now();
    std::thread::sleep(window);
    let secs = t0.elapsed().as_secs_f64();
    let pct = |ticks: u64| ticks as f64 / ticks_per_sec / secs * 100.0;
    let (da, db) = (a.cpu_ticks() - ca, b.cpu_ticks() - cb);
    let wake_rate = (a.wakeups() - wa) as f64 / secs;
    let overflows = rcvbuf_errors(&ns.0[0]) + rcvbuf_errors(&ns.0[1]) - overflows;
    let out_rate = (sum(&ha, |c| c.snapshot().control_out) - out_a) as f64 / secs;
    let in_rate = (sum(&ha, |c| c.snapshot().control_in) - in_a) as f64 / secs;
    let downs = sum(&ha, |c| c.snapshot().down_events) + sum(&hb, |c| c.snapshot().down_events)
        - downs_before;
    if downs + downs_before > 0 {
        let mut diags = std::collections::BTreeMap::new();
        for h in ha.iter().chain(&hb) {
            if h.counters.snapshot().down_events > 0 {
                let st = *h.status.borrow();
                *diags
                    .entry(format!("{:?}/{:?}", st.diag, st.remote_diag))
                    .or_insert(0) += 1;
            }
        }
        println!(
            "  left Up before the window: {downs_before}, in it: {downs}; last diag local/remote: {diags:?}"
        );
    }
    let drops = dropped(&[&a, &b]) - drops_before;
    println!(
        "{sessions:>8}  {:>7.1} s  {:>5.0} s  {:>10.2} %  {:>10.2} %  {:>8.0}  {:>8.0}  {:>8.0}  {downs:>6}  {drops:>5}  {overflows:>9}",
        up_after.as_secs_f64(),
        secs,
        pct(da),
        pct(db),
        out_rate,
        in_rate,
        wake_rate,
    );
    assert_eq!(downs, 0, "sessions went down during the window");
    assert_eq!(drops, 0, "datagrams discarded during the window");
    assert_eq!(overflows, 0, "receive buffers overflowed during the window");
}

fn main() {
    if !ferrolb_netlab::can_run(&[]) {
        return;
    }
    let counts: Vec<usize> = std::env::var("BFD_BENCH_SESSIONS")
        .unwrap_or_else(|_| "1000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let window = Duration::from_secs(
        std::env::var("BFD_BENCH_WINDOW_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    );
    let mut config = DriverConfig::default();
    if let Some(ms) = std::env::var("BFD_BENCH_SLACK_MS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        config.timer_slack = Duration::from_millis(ms);
    }
    let ticks = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    let ticks_per_sec: f64 = String::from_utf8_lossy(&ticks.stdout)
        .trim()
        .parse()
        .unwrap();
    println!(
        "BFD sessions at 300 ms x 3 between two drivers (two namespaces, one veth, IPv6), timer slack {:?}; CPU of each driver's thread",
        config.timer_slack
    );
    println!(
        "sessions  all Up in  window  driver A CPU  driver B CPU  A pkts/s out        in  wakeups/s   downs  drops  overflows"
    );
    for n in counts {
        run(n, window, config, ticks_per_sec);
    }
}
